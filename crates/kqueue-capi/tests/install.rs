//! `make install` and `make uninstall` (the top-level Makefile), as a user of the C library
//! runs them: a release build installed under a temporary prefix, a C program built with
//! nothing but `pkg-config --cflags --libs libkqueue` and run against the installed
//! library, then the uninstall, which must leave no file of the library behind.
//!
//! The release build goes to its own target directory (`<target>/make-install`, beside
//! the profile directories of this build), so it never waits for the cargo that runs this
//! test, and later runs reuse it. It is a build of the C library crate alone: about as
//! long as a release build of the engine.
//!
//! The programs run against the installed library are the release build's checks too:
//! `tests/c/netbsd.c` (through the `libkqueue-netbsd` module) and
//! `tests/c/libkqueue2/compat.c` (a program built for libkqueue 2.x).
//!
//! Needs make, pkg-config and a C compiler (`.ci/run` installs them); skipped, saying so,
//! when pkg-config cannot be found.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The installed library's file name: the soname's major number (0, libkqueue's) and this
/// crate's minor version.
fn real_name() -> String {
    format!("libkqueue.so.0.{}", env!("CARGO_PKG_VERSION_MINOR"))
}

/// The files `make install` puts under a prefix, relative to it.
fn installed() -> BTreeSet<String> {
    [
        "include/kqueue/netbsd/sys/event.h",
        "include/kqueue/sys/event.h",
        "lib/libkqueue.a",
        "lib/libkqueue.so",
        "lib/libkqueue.so.0",
        &format!("lib/{}", real_name()),
        "lib/pkgconfig/libkqueue-netbsd.pc",
        "lib/pkgconfig/libkqueue.pc",
        "share/man/man3/kevent.3",
        "share/man/man3/kqueue.3",
        "share/man/man3/kqueue_netbsd.3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// `<target>`: the test executable is `<target>/<profile>/deps/install-<hash>`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .expect("target directory above <profile>/deps")
        .to_path_buf()
}

fn found(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn compiler() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_string())
}

/// Runs `cmd`, panicking with its output unless it succeeds.
fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `make <args>` in the repository, with the test's own target directory for cargo.
fn make(args: &[&str], cargo_target: &Path) -> Output {
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(root())
        .args(args)
        .arg(format!("CARGO_TARGET_DIR={}", cargo_target.display()))
        // The cargo that runs this test (CARGO) builds the release library too.
        .arg(format!(
            "CARGO={}",
            std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
        ));
    let out = run(&mut cmd);
    println!("$ make {}\n{}", args.join(" "), stdout(&out));
    out
}

/// Every file and symbolic link under `dir`, relative to it (directories left out).
fn files_under(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let e = e.expect("directory entry");
            let path = e.path();
            let ty = e.file_type().expect("file type");
            if ty.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).expect("under the base");
                out.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// `pkg-config <args> libkqueue` with the prefix's pkgconfig directory alone.
fn pkg_config(prefix: &Path, args: &[&str]) -> String {
    pkg_config_module(prefix, "libkqueue", args)
}

/// `pkg-config <args> <module>` with the prefix's pkgconfig directory alone.
fn pkg_config_module(prefix: &Path, module: &str, args: &[&str]) -> String {
    let out = run(Command::new("pkg-config")
        .args(args)
        .arg(module)
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .env("PKG_CONFIG_LIBDIR", prefix.join("lib/pkgconfig")));
    stdout(&out).trim().to_string()
}

/// Compiles `sources` with `extra` arguments and the flags pkg-config gives, into `exe`.
fn build_with_pkg_config(prefix: &Path, sources: &[PathBuf], extra: &[&str], exe: &Path) {
    build_with_module(prefix, "libkqueue", sources, extra, exe)
}

/// As [`build_with_pkg_config`], with the flags of pkg-config module `module`.
fn build_with_module(prefix: &Path, module: &str, sources: &[PathBuf], extra: &[&str], exe: &Path) {
    let flags = pkg_config_module(prefix, module, &["--cflags", "--libs"]);
    let mut cmd = Command::new(compiler());
    cmd.args(["-Wall", "-Werror", "-O1"])
        .args(extra)
        .args(sources)
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(exe);
    run(&mut cmd);
    println!("built {} with: {flags}", exe.display());
}

/// Runs `exe` against the installed library (LD_LIBRARY_PATH is the prefix's lib alone);
/// panics unless it exits with 0 within two minutes. Returns its standard output.
fn run_installed(prefix: &Path, exe: &Path) -> String {
    let mut child = Command::new(exe)
        .env("LD_LIBRARY_PATH", prefix.join("lib"))
        .env_remove("LD_PRELOAD")
        .env_remove("KQUEUE_PERSONALITY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("program output");
    let text = stdout(&out);
    println!(
        "$ {}\n{text}{}",
        exe.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} failed: {}",
        exe.display(),
        out.status
    );
    text
}

/// A kqueue program that prints which libkqueue it runs with (from /proc/self/maps).
const PROGRAM: &str = r#"#include <sys/event.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	struct kevent ch[2], ev;
	struct timespec ts = { 5, 0 };
	char line[4096];
	int kq = kqueue();
	if (kq < 0)
		return 2;
	EV_SET(&ch[0], 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
	EV_SET(&ch[1], 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
	if (kevent(kq, ch, 2, &ev, 1, &ts) != 1 || ev.ident != 1 || ev.filter != EVFILT_USER)
		return 3;
	EV_SET(&ch[0], 2, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 10, NULL);
	if (kevent(kq, ch, 1, &ev, 1, &ts) != 1 || ev.ident != 2 || ev.filter != EVFILT_TIMER)
		return 4;
	if (close(kq) != 0)
		return 5;
	FILE *maps = fopen("/proc/self/maps", "r");
	if (!maps)
		return 6;
	while (fgets(line, sizeof line, maps))
		if (strstr(line, "libkqueue")) {
			printf("library: %s", strchr(line, '/'));
			break;
		}
	fclose(maps);
	return 0;
}
"#;

#[test]
fn make_install_pkg_config_uninstall() {
    for tool in ["make", "pkg-config"] {
        if !found(tool) {
            println!("SKIPPED: {tool} not found (.ci/run installs it: apt-get install -y {tool})");
            return;
        }
    }
    assert!(found(&compiler()), "no C compiler ({})", compiler());
    let cargo_target = target_dir().join("make-install");
    let work = cargo_target.join(format!("test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("create the work directory");
    let prefix = work.join("prefix");
    let prefix_arg = format!("PREFIX={}", prefix.display());

    // Install: the release build, then exactly the expected files.
    make(&["install", &prefix_arg], &cargo_target);
    assert_eq!(files_under(&prefix), installed(), "installed files");
    let lib = prefix.join("lib");
    assert_eq!(
        std::fs::read_link(lib.join("libkqueue.so.0")).expect("libkqueue.so.0 link"),
        Path::new(&real_name())
    );
    assert_eq!(
        std::fs::read_link(lib.join("libkqueue.so")).expect("libkqueue.so link"),
        Path::new("libkqueue.so.0")
    );
    let dynamic = stdout(&run(Command::new("readelf")
        .arg("-d")
        .arg(lib.join(real_name()))));
    assert!(dynamic.contains("Library soname: [libkqueue.so.0]"));
    let kevent3 = std::fs::read_to_string(prefix.join("share/man/man3/kevent.3")).unwrap();
    assert_eq!(kevent3, ".so man3/kqueue.3\n");
    assert_eq!(
        pkg_config(&prefix, &["--modversion"]),
        env!("CARGO_PKG_VERSION")
    );
    let flags = pkg_config(&prefix, &["--cflags", "--libs"]);
    let include = prefix.join("include/kqueue");
    assert!(
        flags.contains(&format!("-I{}", include.display()))
            && flags.contains(&format!("-L{}", lib.display()))
            && flags.contains("-lkqueue")
            && flags.contains("-lpthread"),
        "pkg-config flags: {flags}"
    );

    // A program built with pkg-config alone runs against the installed library.
    let src = work.join("prog.c");
    std::fs::write(&src, PROGRAM).expect("write prog.c");
    let exe = work.join("prog");
    build_with_pkg_config(&prefix, &[src], &[], &exe);
    let out = run_installed(&prefix, &exe);
    let so = lib.join(real_name());
    assert!(
        out.contains(&format!("library: {}", so.display())),
        "the program did not run with {}",
        so.display()
    );

    // The release build's libkqueue 2.x compatibility, and the NetBSD-flavour header
    // through its own pkg-config module.
    let tests_c = root().join("tests/c");
    let tests_c_arg = format!("-I{}", tests_c.display());
    let netbsd = work.join("netbsd");
    build_with_module(
        &prefix,
        "libkqueue-netbsd",
        &[tests_c.join("netbsd.c")],
        &["-g", &tests_c_arg],
        &netbsd,
    );
    run_installed(&prefix, &netbsd);
    let compat = work.join("compat");
    let compat_dir = tests_c.join("libkqueue2");
    let compat_arg = format!("-I{}", compat_dir.display());
    // Its own header first: the installed one must not be used.
    build_with_pkg_config(
        &prefix,
        &[compat_dir.join("compat.c")],
        &[&compat_arg],
        &compat,
    );
    run_installed(&prefix, &compat);

    // Uninstall: nothing of the library is left.
    make(&["uninstall", &prefix_arg], &cargo_target);
    assert_eq!(
        files_under(&prefix),
        BTreeSet::new(),
        "left after uninstall"
    );
    assert!(!prefix.join("include/kqueue").exists());

    // DESTDIR: a staged install of the same build (NOBUILD: no second cargo run) under
    // DESTDIR/PREFIX, whose pkg-config file names PREFIX; uninstall with the same DESTDIR.
    let stage = work.join("stage");
    let destdir_arg = format!("DESTDIR={}", stage.display());
    let staged = [
        "install",
        "NOBUILD=1",
        "PREFIX=/opt/kq",
        destdir_arg.as_str(),
    ];
    make(&staged, &cargo_target);
    let expected_staged: BTreeSet<String> =
        installed().iter().map(|s| format!("opt/kq/{s}")).collect();
    assert_eq!(files_under(&stage), expected_staged, "staged files");
    let pc = std::fs::read_to_string(stage.join("opt/kq/lib/pkgconfig/libkqueue.pc")).unwrap();
    assert!(pc.lines().any(|l| l == "prefix=/opt/kq"), "{pc}");
    make(
        &["uninstall", "PREFIX=/opt/kq", &destdir_arg],
        &cargo_target,
    );
    assert_eq!(files_under(&stage), BTreeSet::new(), "left after uninstall");

    let _ = std::fs::remove_dir_all(&work);
}
