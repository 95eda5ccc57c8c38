//! Builds every C test program of `tests/c/` against `include/sys/event.h` (or, for a
//! program listed with an include directory of its own, the header found there first, such
//! as the NetBSD-flavour `include/netbsd/sys/event.h`) and the libkqueue.so of this build,
//! runs it and asserts that it exits with status 0.
//!
//! One `#[test]` per program, so a failure is named; the program's own output (one
//! `ok`/`FAIL` line per case, named as in docs/semantics.md §7) is printed, and shown by
//! cargo when the test fails.
//!
//! Finding the library: `cargo test` compiles this crate's library, with every crate type
//! of its `[lib]` (cdylib included), into the same `deps/` directory as this test binary,
//! before running the test; so `<dir of this executable>/libkqueue.so` is the library of
//! exactly the sources under test, in the current profile and target directory, whatever
//! `CARGO_TARGET_DIR` or `--release` say. A build script could not do this (it runs before
//! the library exists), and running `cargo build` from the test would nest cargo inside
//! cargo (lock contention, another profile's flags). That nested build is kept only as a
//! fallback for a test binary that is run by hand without its library beside it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A program taking longer than this is killed and fails (each has its own watchdog too).
const RUN_LIMIT: Duration = Duration::from_secs(900);

struct Setup {
    /// The repository root (holds include/ and tests/c/).
    root: PathBuf,
    /// A directory holding libkqueue.so and libkqueue.so.0, links to the library under test.
    lib_dir: PathBuf,
    /// Where the compiled programs go.
    out_dir: PathBuf,
    /// libkqueue.a, built beside libkqueue.so.
    static_lib: PathBuf,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .expect("repository root");
        let exe = std::env::current_exe().expect("test executable path");
        let deps = exe.parent().expect("deps directory").to_path_buf();
        let profile_dir = deps.parent().expect("profile directory").to_path_buf();
        let lib = find_library(&root, &deps, &profile_dir);

        let out_dir = profile_dir.join("c-tests");
        let lib_dir = out_dir.join("lib");
        std::fs::create_dir_all(&lib_dir).expect("create c-tests directory");
        // The programs record the soname, libkqueue.so.0, as their dependency: link both
        // names to the library so that -L and LD_LIBRARY_PATH both find it.
        for name in ["libkqueue.so", "libkqueue.so.0"] {
            replace_symlink(&lib, &lib_dir.join(name));
        }
        Setup {
            root,
            lib_dir,
            out_dir,
            static_lib: lib.with_file_name("libkqueue.a"),
        }
    })
}

fn find_library(root: &Path, deps: &Path, profile_dir: &Path) -> PathBuf {
    for candidate in [deps.join("libkqueue.so"), profile_dir.join("libkqueue.so")] {
        if candidate.is_file() {
            return candidate;
        }
    }
    // Fallback (see the module comment): build the library of this profile.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args(["build", "-p", "kqueue-capi"]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build -p kqueue-capi");
    assert!(status.success(), "cargo build -p kqueue-capi failed");
    let lib = profile_dir.join("libkqueue.so");
    assert!(
        lib.is_file(),
        "{} not found after cargo build",
        lib.display()
    );
    lib
}

/// Points `link` at `target`, atomically (other test processes may be doing the same).
fn replace_symlink(target: &Path, link: &Path) {
    let tmp = link.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).expect("create symlink");
    std::fs::rename(&tmp, link).expect("rename symlink");
}

/// The compiler: $CC / $CXX, else cc / c++.
fn compiler(cxx: bool) -> String {
    let (var, default) = if cxx { ("CXX", "c++") } else { ("CC", "cc") };
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

fn have_compiler(cxx: bool) -> bool {
    Command::new(compiler(cxx))
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// How a test program is built.
#[derive(Clone, Copy, PartialEq)]
enum Build {
    /// C, linked with -lkqueue (libkqueue.so).
    C,
    /// C++, linked with -lkqueue.
    Cxx,
    /// C, linked with libkqueue.a.
    Static,
}

/// The include directory of program `name`, relative to the repository root, searched
/// before `include/` (its `<sys/event.h>` wins): the `=> "dir"` of its entry in
/// `c_programs!`.
fn include_dir(name: &str) -> Option<&'static str> {
    PROGRAMS
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, dir)| *dir)
}

/// Compiles tests/c/<name>.c and returns the executable.
fn compile(name: &str, how: Build) -> PathBuf {
    compile_as(name, how, "")
}

/// Compiles tests/c/<name>.c into an executable whose name ends with `suffix` (so that a
/// test running a program with other settings does not replace the one another test is
/// running) and returns it.
fn compile_as(name: &str, how: Build, suffix: &str) -> PathBuf {
    let s = setup();
    let cxx = how == Build::Cxx;
    let src = s.root.join("tests/c").join(format!("{name}.c"));
    let exe = s.out_dir.join(match how {
        Build::C => format!("{name}{suffix}"),
        Build::Cxx => format!("{name}-cxx{suffix}"),
        Build::Static => format!("{name}-static{suffix}"),
    });
    let mut cmd = Command::new(compiler(cxx));
    cmd.args(["-Wall", "-Werror", "-g", "-O1"]);
    if let Some(dir) = include_dir(name) {
        cmd.arg("-I").arg(s.root.join(dir));
    }
    cmd.arg("-I")
        .arg(s.root.join("include"))
        .arg("-I")
        .arg(s.root.join("tests/c"));
    if cxx {
        cmd.args(["-x", "c++"]).arg(&src).args(["-x", "none"]);
    } else {
        cmd.arg(&src);
    }
    if how == Build::Static {
        // What a Rust staticlib needs besides libc (see rustc --print native-static-libs).
        cmd.arg(&s.static_lib).args(["-lpthread", "-ldl", "-lm"]);
    } else {
        cmd.arg("-L")
            .arg(&s.lib_dir)
            .args(["-lkqueue", "-lpthread"]);
    }
    cmd.arg("-o").arg(&exe);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", compiler(cxx)));
    assert!(
        out.status.success(),
        "compiling {} failed ({:?}):\n{}{}",
        src.display(),
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Runs a compiled program with the library under test; panics unless it exits with 0.
fn run(exe: &Path) {
    run_with(exe, &[], &[]);
}

/// Runs a compiled program with arguments and extra environment variables, its library
/// path being the library under test; panics unless it exits with 0.
fn run_with(exe: &Path, args: &[&str], envs: &[(&str, &std::ffi::OsStr)]) {
    let s = setup();
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .current_dir(&s.out_dir)
        .env("LD_LIBRARY_PATH", &s.lib_dir)
        .env_remove("KQUEUE_PERSONALITY");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the program") {
            break Some(status);
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let env_text: String = envs
        .iter()
        .map(|(k, v)| format!("{k}={} ", v.to_string_lossy()))
        .collect();
    println!(
        "$ LD_LIBRARY_PATH={} {env_text}{} {}",
        s.lib_dir.display(),
        exe.display(),
        args.join(" ")
    );
    print!("{out}");
    if !err.is_empty() {
        println!("--- stderr ---\n{err}");
    }
    match status {
        None => panic!("{} still running after {RUN_LIMIT:?}", exe.display()),
        Some(st) => assert!(
            st.success(),
            "{} failed: {st}\n{out}\n--- stderr ---\n{err}",
            exe.display()
        ),
    }
}

fn c_program(name: &str) {
    let exe = compile(name, Build::C);
    run(&exe);
}

/// One `#[test]` per C program in tests/c/, named after it, and the list of them, each
/// with its own include directory if it is given as `name => "dir"`.
macro_rules! c_programs {
    ($($name:ident $(=> $dir:literal)?),* $(,)?) => {
        const PROGRAMS: &[(&str, Option<&str>)] =
            &[$((stringify!($name), c_programs!(@dir $($dir)?))),*];
        $(
            #[test]
            fn $name() {
                c_program(stringify!($name));
            }
        )*
    };
    (@dir) => { None };
    (@dir $dir:literal) => { Some($dir) };
}

c_programs!(
    abi,
    attack,
    attack2,
    attack3,
    attack5,
    attack_level,
    attack_vnode,
    attack_signal,
    attack_signal_netbsd => "include/netbsd",
    bypass,
    cancel,
    close,
    closegaps,
    closegaps_netbsd => "include/netbsd",
    dup,
    eintr,
    empty,
    errors,
    fdcounter,
    fdepoll,
    fdfilter,
    fork,
    fork_fds,
    fs,
    interpose,
    leak,
    level,
    lifetime,
    netbsd => "include/netbsd",
    poll,
    proc,
    proc_netbsd => "include/netbsd",
    signal,
    timer,
    user,
    vnode,
);

/// The header also compiles as C++ (extern "C", no C-only constructs in the macros).
#[test]
fn abi_cxx() {
    if !have_compiler(true) {
        println!("no C++ compiler ({}): skipped", compiler(true));
        return;
    }
    let exe = compile("abi", Build::Cxx);
    run(&exe);
}

/// libkqueue.a works too: the ABI program and the fork program (atfork handlers) linked
/// statically, and the NetBSD-flavour program (its entry points are in the archive too).
#[test]
fn abi_static() {
    run(&compile("abi", Build::Static));
    run(&compile("fork", Build::Static));
    run(&compile("netbsd", Build::Static));
}

/// The interposed close() and friends work the same in a program linked with libkqueue.a
/// (their definitions then live in the executable).
#[test]
fn interpose_static() {
    run(&compile("interpose", Build::Static));
    run(&compile("signal", Build::Static));
}

/// Runs `cmd` (a compiler or nm), panicking with its output unless it succeeds; returns
/// its standard output.
fn checked_output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The interposed functions, as the dynamic and the static library must define them.
const INTERPOSED: [&str; 5] = ["close", "dup", "dup2", "dup3", "close_range"];

/// Whether an `nm` listing defines `name` as a text symbol.
fn defines(listing: &str, name: &str) -> bool {
    listing.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() == 3 && f[1] == "T" && f[2] == name
    })
}

/// Asserts that libkqueue.so exports and libkqueue.a defines each of `names`.
fn assert_exported(names: &[&str]) {
    let s = setup();
    let so = s.lib_dir.join("libkqueue.so");
    let dynamic = checked_output(Command::new("nm").args(["-D", "--defined-only"]).arg(&so));
    let archive = checked_output(Command::new("nm").arg(&s.static_lib));
    for &name in names {
        assert!(
            defines(&dynamic, name),
            "libkqueue.so does not export {name}"
        );
        assert!(
            defines(&archive, name),
            "libkqueue.a does not define {name}"
        );
        println!("ok: {name} in libkqueue.so and libkqueue.a");
    }
}

/// libkqueue.so exports close, dup, dup2, dup3 and close_range, and libkqueue.a defines
/// them.
#[test]
fn interposed_symbols_exported() {
    assert_exported(&INTERPOSED);
}

/// The functions that thread cancellation may unwind have no landing pad: `close()` and
/// `kevent()` (cancellation points), the other interposed functions and `kqueue()` (where
/// asynchronous cancellation may act as they return), and the helpers they call where it
/// may act (each looked for by name; one inlined is part of its caller). An unwinding for
/// cancellation that meets a landing pad of a function that cannot unwind ends the process
/// (the personality routine finds no call site, or a catch drops the unwinding: "exception
/// not rethrown"). A landing pad shows as an LSDA pointer in the function's FDE.
#[test]
fn cancellable_frames_have_no_landing_pads() {
    let s = setup();
    let so = s.lib_dir.join("libkqueue.so");
    let symbols = checked_output(Command::new("nm").args(["-C", "--defined-only"]).arg(&so));
    let frames = checked_output(Command::new("readelf").arg("--debug-dump=frames").arg(&so));
    let address = |name: &str| {
        symbols.lines().find_map(|l| {
            let mut f = l.splitn(3, ' ');
            let addr = f.next()?;
            let _kind = f.next()?;
            (f.next()? == name).then(|| addr.to_string())
        })
    };
    let mut checked = Vec::new();
    for name in [
        "close",
        "dup",
        "dup2",
        "dup3",
        "close_range",
        "kevent",
        "kqueue",
        "kqueue1",
        "kqueue::disable_cancellation",
        "kqueue::restore_cancellation",
        "kqueue::interpose::real_close",
    ] {
        let Some(addr) = address(name) else {
            assert!(name.contains("::"), "{name} is not defined");
            continue;
        };
        let pc = format!("pc={addr}..");
        let mut lines = frames.lines().skip_while(|l| !l.contains(&pc));
        assert!(lines.next().is_some(), "no FDE for {name} at {addr}");
        let lsda = lines.next().is_some_and(|l| {
            l.trim_start()
                .strip_prefix("Augmentation data:")
                .is_some_and(|bytes| bytes.split_whitespace().any(|b| b != "00"))
        });
        assert!(!lsda, "{name} has a landing pad (an LSDA in its FDE)");
        checked.push(name);
    }
    println!("ok: no landing pad in {checked:?}");
}

/// The interposed signal functions (EVFILT_SIGNAL), exported and defined the same way.
#[test]
fn signal_symbols_exported() {
    assert_exported(&[
        "sigaction",
        "signal",
        "bsd_signal",
        "sysv_signal",
        "__sysv_signal",
    ]);
}

/// The entry points of the NetBSD-flavour header, beside the libkqueue-compatible ones.
const NETBSD_ENTRY_POINTS: [&str; 3] = [
    "__kqueue_netbsd_kqueue",
    "__kqueue_netbsd_kqueue1",
    "__kqueue_netbsd_kevent",
];

/// libkqueue.so exports the NetBSD entry points, and libkqueue.a defines them, beside
/// kqueue, kqueue1 and kevent.
#[test]
fn netbsd_symbols_exported() {
    assert_exported(&NETBSD_ENTRY_POINTS);
    assert_exported(&["kqueue", "kqueue1", "kevent"]);
}

/// The NetBSD-flavour header alone compiles cleanly in strict ISO modes of C and C++ with
/// common warnings on, and binds kqueue(), kqueue1() and kevent() to the NetBSD entry
/// points (the object refers to those symbols and to no plain kqueue/kevent).
#[test]
fn netbsd_header_strict_modes() {
    let s = setup();
    let src = s.out_dir.join("netbsd_header_strict.c");
    std::fs::write(
        &src,
        "#include <sys/event.h>\n\
         int use_header(int kq, unsigned i, unsigned u, long d, void *p)\n\
         {\n\
         \tstruct kevent k[2];\n\
         \tEV_SET(&k[i], i, EVFILT_TIMER, EV_ADD | EV_ONESHOT, NOTE_USECONDS | NOTE_ABSTIME, d, p);\n\
         \tEV_SET(k + 1, u, EVFILT_USER, 0, NOTE_FFCOPY | NOTE_TRIGGER | u, 0, 0);\n\
         \treturn kevent(kq, k, 2, k, sizeof k / sizeof k[0], NULL) + kqueue() + kqueue1(0);\n\
         }\n",
    )
    .expect("write netbsd_header_strict.c");
    let mut modes = vec![(false, "-std=c99"), (false, "-std=c11")];
    if have_compiler(true) {
        modes.extend([(true, "-std=c++98"), (true, "-std=c++17")]);
    }
    let obj = s.out_dir.join("netbsd_header_strict.o");
    for (cxx, std) in modes {
        let mut cmd = Command::new(compiler(cxx));
        cmd.args([
            std,
            "-pedantic",
            "-Wall",
            "-Wextra",
            "-Wconversion",
            "-Werror",
        ])
        .arg("-I")
        .arg(s.root.join("include/netbsd"));
        if cxx {
            cmd.args(["-x", "c++"]);
        }
        cmd.arg("-c").arg(&src).arg("-o").arg(&obj);
        checked_output(&mut cmd);
        let undefined = checked_output(Command::new("nm").arg("-u").arg(&obj));
        let refs: Vec<&str> = undefined
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .collect();
        for name in NETBSD_ENTRY_POINTS {
            assert!(
                refs.contains(&name),
                "{std}: no reference to {name}: {refs:?}"
            );
        }
        for name in ["kqueue", "kqueue1", "kevent"] {
            assert!(!refs.contains(&name), "{std}: refers to {name}: {refs:?}");
        }
        println!("ok: {cmd:?}");
    }
}

/// Everything libkqueue.so exports: the entry points of the NetBSD-flavour header, the
/// functions of <sys/event.h> (libkqueue 2.x exports kqueue and kevent; kqueue1 is
/// NetBSD's) and the interposed functions (the close family, the sigaction family), sorted.
const EXPORTED: [&str; 16] = [
    "__kqueue_netbsd_kevent",
    "__kqueue_netbsd_kqueue",
    "__kqueue_netbsd_kqueue1",
    "__sysv_signal",
    "bsd_signal",
    "close",
    "close_range",
    "dup",
    "dup2",
    "dup3",
    "kevent",
    "kqueue",
    "kqueue1",
    "sigaction",
    "signal",
    "sysv_signal",
];

/// The dynamic symbol table holds exactly [`EXPORTED`] (nothing of Rust's leaks), the
/// version script says the same, and the soname is libkqueue 2.x's.
#[test]
fn exported_symbols_exact() {
    let s = setup();
    let so = s.lib_dir.join("libkqueue.so");
    let listing = checked_output(Command::new("nm").args(["-D", "--defined-only"]).arg(&so));
    let mut defined: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    defined.sort_unstable();
    assert_eq!(defined, EXPORTED, "libkqueue.so exports other symbols");

    let map = std::fs::read_to_string(s.root.join("crates/kqueue-capi/libkqueue.map"))
        .expect("read libkqueue.map");
    let mut global: Vec<&str> = map
        .split("global:")
        .nth(1)
        .and_then(|rest| rest.split("local:").next())
        .expect("a global: section before local:")
        .split(';')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    global.sort_unstable();
    assert_eq!(global, EXPORTED, "libkqueue.map lists other symbols");

    let dynamic = checked_output(Command::new("readelf").arg("-d").arg(&so));
    assert!(
        dynamic.contains("Library soname: [libkqueue.so.0]"),
        "soname is not libkqueue.so.0:\n{dynamic}"
    );
    println!("ok: exports {defined:?}, soname libkqueue.so.0");
}

/// A program compiled against a header shaped like libkqueue 2.x's own (not this
/// project's) runs against this library: same layout, constants and exported functions.
#[test]
fn libkqueue2_header() {
    let s = setup();
    let dir = s.root.join("tests/c/libkqueue2");
    let exe = s.out_dir.join("libkqueue2-compat");
    checked_output(
        Command::new(compiler(false))
            .args(["-Wall", "-Wextra", "-Werror", "-g", "-O1", "-I"])
            .arg(&dir)
            .arg(dir.join("compat.c"))
            .arg("-L")
            .arg(&s.lib_dir)
            .args(["-lkqueue", "-lpthread", "-o"])
            .arg(&exe),
    );
    // It needs libkqueue.so.0 and nothing of it but kqueue and kevent (close resolves to
    // the C library's where libkqueue is absent).
    let dynamic = checked_output(Command::new("readelf").arg("-d").arg(&exe));
    assert!(dynamic.contains("Shared library: [libkqueue.so.0]"));
    let undefined = checked_output(Command::new("nm").arg("-u").arg(&exe));
    let ours: Vec<&str> = undefined
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|name| !name.contains('@') && EXPORTED.contains(name))
        .collect();
    assert_eq!(ours, ["close", "kevent", "kqueue"]);
    run(&exe);
}

/// A program that says where close() is bound: argv[1] "ours" (in the object that defines
/// kqueue(), and the program's own calls go there) or "libc" (in the C library's object).
/// With -DSHIM it reaches libkqueue only through libshim.so.
const WHERE_IS_CLOSE: &str = r#"#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#ifdef SHIM
int shim_kqueue(void);
#endif
int main(int argc, char **argv)
{
	Dl_info c, k, r;
	void *cl = dlsym(RTLD_DEFAULT, "close");
	void *kq = dlsym(RTLD_DEFAULT, "kqueue");
#ifdef SHIM
	if (shim_kqueue() < 0)
		return 2;
#endif
	if (argc != 2 || !cl || !kq || !dladdr(cl, &c) || !dladdr(kq, &k) ||
	    !dladdr((void *)&read, &r))
		return 3;
	printf("close in %s, kqueue in %s, read in %s\n", c.dli_fname, k.dli_fname,
	       r.dli_fname);
	if (strcmp(argv[1], "libc") == 0)
		return strcmp(c.dli_fname, r.dli_fname) == 0 ? 0 : 4;
	if (strcmp(c.dli_fname, k.dli_fname) != 0)
		return 5;
	return (void *)&close == cl ? 0 : 6;
}
"#;

/// Compiles WHERE_IS_CLOSE into `name` with the extra arguments.
fn where_is_close(name: &str, extra: &[&std::ffi::OsStr]) -> PathBuf {
    let s = setup();
    let src = s.out_dir.join(format!("{name}.c"));
    std::fs::write(&src, WHERE_IS_CLOSE).expect("write the program");
    let exe = s.out_dir.join(name);
    checked_output(
        Command::new(compiler(false))
            .args(["-Wall", "-Werror"])
            .arg(&src)
            .args(extra)
            .arg("-o")
            .arg(&exe),
    );
    exe
}

/// LD_PRELOAD=libkqueue.so.0 puts the library's close() in effect for a program that was
/// not linked with it.
#[test]
fn interpose_preload() {
    let s = setup();
    let exe = where_is_close("where_is_close_preload", &["-ldl".as_ref()]);
    let preload = s.lib_dir.join("libkqueue.so.0");
    run_with(&exe, &["ours"], &[("LD_PRELOAD", preload.as_os_str())]);
}

/// A program that reaches libkqueue only through another shared library binds close() to
/// the C library: the interposition is not in effect there (as documented).
#[test]
fn interpose_not_through_other_library() {
    let s = setup();
    let shim_src = s.out_dir.join("shim.c");
    std::fs::write(
        &shim_src,
        "#include <sys/event.h>\nint shim_kqueue(void) { return kqueue(); }\n",
    )
    .expect("write shim.c");
    let shim_dir = s.out_dir.join("shim");
    std::fs::create_dir_all(&shim_dir).expect("create the shim directory");
    checked_output(
        Command::new(compiler(false))
            .args(["-Wall", "-Werror", "-shared", "-fPIC"])
            .arg("-I")
            .arg(s.root.join("include"))
            .arg(&shim_src)
            .arg("-L")
            .arg(&s.lib_dir)
            .args(["-lkqueue", "-o"])
            .arg(shim_dir.join("libshim.so")),
    );
    let rpath_link = format!("-Wl,-rpath-link,{}", s.lib_dir.display());
    let exe = where_is_close(
        "where_is_close_shim",
        &[
            "-DSHIM".as_ref(),
            "-L".as_ref(),
            shim_dir.as_os_str(),
            "-lshim".as_ref(),
            rpath_link.as_ref(),
            "-ldl".as_ref(),
        ],
    );
    let mut path = s.lib_dir.clone().into_os_string();
    path.push(":");
    path.push(&shim_dir);
    run_with(&exe, &["libc"], &[("LD_LIBRARY_PATH", &path)]);
}

/// The header alone compiles cleanly in strict ISO modes of C and C++, with the warnings
/// programs commonly turn on (the test programs themselves use GNU C).
#[test]
fn header_strict_modes() {
    let s = setup();
    let src = s.out_dir.join("header_strict.c");
    std::fs::write(
        &src,
        "#include <sys/event.h>\n\
         int use_header(int kq, int i, unsigned u, long d, void *p)\n\
         {\n\
         \tstruct kevent k[2];\n\
         \tEV_SET(&k[i], (unsigned)i, EVFILT_TIMER, EV_ADD | EV_ONESHOT, NOTE_USECONDS, d, p);\n\
         \tEV_SET(k + 1, u, EVFILT_USER, 0, NOTE_FFCOPY | NOTE_TRIGGER | u, 0, 0);\n\
         \treturn kevent(kq, k, 2, k, 2, 0) + kqueue() + kqueue1(0);\n\
         }\n",
    )
    .expect("write header_strict.c");
    let mut modes = vec![(false, "-std=c99"), (false, "-std=c11")];
    if have_compiler(true) {
        modes.extend([(true, "-std=c++98"), (true, "-std=c++17")]);
    }
    for (cxx, std) in modes {
        let mut cmd = Command::new(compiler(cxx));
        cmd.args([
            std,
            "-pedantic",
            "-Wall",
            "-Wextra",
            "-Wconversion",
            "-Werror",
        ])
        .arg("-I")
        .arg(s.root.join("include"));
        if cxx {
            cmd.args(["-x", "c++"]);
        }
        cmd.arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(s.out_dir.join("header_strict.o"));
        let out = cmd.output().expect("run the compiler");
        assert!(
            out.status.success(),
            "{cmd:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("ok: {cmd:?}");
    }
}

/// Every tests/c/*.c has its #[test] above (a new program cannot be silently skipped).
#[test]
fn every_program_is_run() {
    let dir = setup().root.join("tests/c");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("read tests/c")
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? != "c" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    found.sort();
    let mut listed: Vec<String> = PROGRAMS.iter().map(|(s, _)| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed, "tests/c/*.c and PROGRAMS differ");
}

/// The fallbacks for kernels before 5.11, forced on this one: `KQ_NO_EPOLL_PWAIT2` makes
/// every wait use epoll_pwait (millisecond timeouts, rounded up); `KQ_NO_STATX` makes
/// EVFILT_VNODE look at files with fstat (where statx is refused, by a seccomp filter). The programs whose waits
/// matter most (timeouts, EINTR, wakeups, descriptor filters) must pass unchanged.
#[test]
fn kernel_fallbacks() {
    for name in [
        "eintr", "timer", "user", "fdfilter", "close", "netbsd", "cancel", "vnode", "empty",
    ] {
        let exe = compile(name, Build::C);
        run_with(
            &exe,
            &[],
            &[
                ("KQ_NO_EPOLL_PWAIT2", std::ffi::OsStr::new("1")),
                ("KQ_NO_STATX", std::ffi::OsStr::new("1")),
            ],
        );
    }
}

/// Every descriptor registration edge-triggered (`KQ_NO_LEVEL`), as before level
/// registrations: the descriptor filter programs pass unchanged.
#[test]
fn level_registrations_off() {
    for name in ["level", "attack_level", "fdfilter", "fdepoll", "poll"] {
        let exe = compile_as(name, Build::C, "-nolevel");
        run_with(&exe, &[], &[("KQ_NO_LEVEL", std::ffi::OsStr::new("1"))]);
    }
}

/// EVFILT_PROC on older kernels, forced on this one: without process descriptors
/// (`KQ_NO_PIDFD`, Linux before 5.3: children are polled, other processes refused), without
/// the exit status of PIDFD_GET_INFO (`KQ_NO_PIDFD_INFO`, before 6.15), and without the
/// process events connector (`KQ_NO_PROC_CONNECTOR`: NOTE_FORK, NOTE_EXEC and NOTE_TRACK
/// refused). The programs expect what the library does then.
#[test]
fn proc_kernel_fallbacks() {
    for name in ["proc", "proc_netbsd"] {
        let exe = compile_as(name, Build::C, "-fallbacks");
        for var in ["KQ_NO_PIDFD", "KQ_NO_PIDFD_INFO", "KQ_NO_PROC_CONNECTOR"] {
            run_with(&exe, &[], &[(var, std::ffi::OsStr::new("1"))]);
        }
    }
}

/// Without /proc (`KQ_NO_PROC_FDINFO`): the counters of eventfds and timerfds cannot be
/// read, so `data` is 0 and the events follow readiness; the program expects that.
#[test]
fn counters_without_proc_fdinfo() {
    let exe = compile_as("fdcounter", Build::C, "-noproc");
    run_with(
        &exe,
        &[],
        &[("KQ_NO_PROC_FDINFO", std::ffi::OsStr::new("1"))],
    );
}

/// EVFILT_FS as on kernels before 6.8, forced on this one: with `KQ_NO_LISTMOUNT` the
/// library tells mounts apart by mountinfo's ids alone. (An executable of its own: the `fs`
/// test may be compiling or running tests/c/fs.c's at the same time.)
#[test]
fn fs_without_listmount() {
    let exe = compile_as("fs", Build::C, "-nolistmount");
    run_with(&exe, &[], &[("KQ_NO_LISTMOUNT", std::ffi::OsStr::new("1"))]);
}

/// `examples/supervise.c`, scripted (EVFILT_PROC, EVFILT_SIGNAL, EVFILT_TIMER): children that
/// exit are restarted up to the limit and the program then ends by itself; SIGTERM stops
/// sleeping children; children that ignore SIGTERM are killed when the grace period (3 s)
/// ends, or by a second SIGINT. Each run must exit 0 within 30 s.
#[test]
fn example_supervise_runs() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;

    let s = setup();
    let exe = s.out_dir.join("supervise-run");
    let out = Command::new(compiler(false))
        .args(["-Wall", "-Werror", "-O1", "-I"])
        .arg(s.root.join("include"))
        .arg(s.root.join("examples/supervise.c"))
        .arg("-L")
        .arg(&s.lib_dir)
        .args(["-lkqueue", "-o"])
        .arg(&exe)
        .output()
        .expect("run the compiler");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Runs the example; `script` sees each line (and the child's pid) as it comes.
    let run = |args: &[&str], script: &mut dyn FnMut(&str, i32)| -> Vec<String> {
        let mut child = Command::new(&exe)
            .args(args)
            .env("LD_LIBRARY_PATH", &s.lib_dir)
            .env_remove("KQUEUE_PERSONALITY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start supervise");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut lines = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    script(&line, child.id() as i32);
                    println!("{line}");
                    lines.push(line);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("supervise still ran after 30 s: {lines:#?}");
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        let status = child.wait().expect("wait");
        assert!(status.success(), "{status}: {lines:#?}");
        lines
    };
    let count = |lines: &[String], what: &str| lines.iter().filter(|l| l.contains(what)).count();
    let kill = |pid: i32, sig: i32| {
        // SAFETY: kill() of our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    };

    // Restarts up to the limit, then the end.
    let lines = run(
        &["-n", "2", "-r", "1", "sh", "-c", "exit 5"],
        &mut |_, _| {},
    );
    let started = lines
        .iter()
        .filter(|l| l.starts_with("started child"))
        .count();
    assert_eq!(started, 2, "{lines:#?}");
    assert_eq!(count(&lines, "exited with status 5"), 4, "{lines:#?}");
    assert_eq!(count(&lines, "restarted child"), 2, "{lines:#?}");
    assert_eq!(count(&lines, "no restarts left"), 2, "{lines:#?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("no child left to run")
    );

    // SIGTERM once the three children started.
    let mut n = 0;
    let lines = run(&["-n", "3", "-r", "5", "sleep", "30"], &mut |line, pid| {
        if line.starts_with("started child") {
            n += 1;
            if n == 3 {
                // Time for the children to exec (a child reached before it has reset its
                // actions finds SIGTERM ignored; the grace period then ends it).
                std::thread::sleep(Duration::from_millis(300));
                kill(pid, libc::SIGTERM);
            }
        }
    });
    assert_eq!(
        count(&lines, "SIGTERM: stopping 3 children"),
        1,
        "{lines:#?}"
    );
    assert_eq!(count(&lines, "killed by signal 15"), 3, "{lines:#?}");
    assert_eq!(count(&lines, "restarted"), 0, "{lines:#?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("all children stopped")
    );

    // Children that ignore SIGTERM and one SIGTERM: SIGKILL when the grace period ends.
    let mut n = 0;
    let lines = run(
        &[
            "-n",
            "2",
            "-r",
            "5",
            "sh",
            "-c",
            "trap '' TERM; exec sleep 30",
        ],
        &mut |line, pid| {
            if line.starts_with("started child") {
                n += 1;
                if n == 2 {
                    std::thread::sleep(Duration::from_millis(300));
                    kill(pid, libc::SIGTERM);
                }
            }
        },
    );
    assert_eq!(
        count(&lines, "SIGTERM: stopping 2 children"),
        1,
        "{lines:#?}"
    );
    assert_eq!(
        count(&lines, "grace period over: killing 2 children"),
        1,
        "{lines:#?}"
    );
    assert_eq!(count(&lines, "killed by signal 9"), 2, "{lines:#?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("all children stopped")
    );

    // Children that ignore SIGTERM: SIGINT, then SIGINT again.
    let mut n = 0;
    let lines = run(
        &[
            "-n",
            "2",
            "-r",
            "5",
            "sh",
            "-c",
            "trap '' TERM; exec sleep 30",
        ],
        &mut |line, pid| {
            if line.starts_with("started child") {
                n += 1;
                if n == 2 {
                    // Time for the shells to set their trap.
                    std::thread::sleep(Duration::from_millis(300));
                    kill(pid, libc::SIGINT);
                }
            } else if line.starts_with("SIGINT: stopping") {
                std::thread::sleep(Duration::from_millis(300));
                kill(pid, libc::SIGINT);
            }
        },
    );
    assert_eq!(
        count(&lines, "SIGINT: stopping 2 children"),
        1,
        "{lines:#?}"
    );
    assert_eq!(
        count(&lines, "SIGINT again: killing 2 children"),
        1,
        "{lines:#?}"
    );
    assert_eq!(count(&lines, "killed by signal 9"), 2, "{lines:#?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("all children stopped")
    );
}

/// The README's C examples are complete programs: each is compiled against the header and
/// the library and must exit with 0.
#[test]
fn readme_c_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```c") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap_or_default()),
            (Some(text), l) => {
                text.push_str(l);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(!blocks.is_empty(), "no C example in README.md");
    let s = setup();
    for (i, code) in blocks.iter().enumerate() {
        let src = s.out_dir.join(format!("readme-{i}.c"));
        std::fs::write(&src, code).expect("write the example");
        let exe = s.out_dir.join(format!("readme-{i}"));
        let out = Command::new(compiler(false))
            .arg("-Wall")
            .arg("-Werror")
            .arg("-I")
            .arg(root.join("include"))
            .arg(&src)
            .arg("-L")
            .arg(&s.lib_dir)
            .args(["-lkqueue", "-lpthread", "-o"])
            .arg(&exe)
            .output()
            .expect("run the compiler");
        assert!(
            out.status.success(),
            "README C example {i} does not compile:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        run(&exe);
    }
}

/// Waits for every line of `want` on `lines` (in any order), failing after 10 s; any other
/// line fails too.
fn expect_lines(lines: &std::sync::mpsc::Receiver<String>, want: &[String]) {
    let mut missing = want.to_vec();
    while !missing.is_empty() {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("watch.c: still waiting for {missing:?}"));
        let i = missing
            .iter()
            .position(|m| *m == line)
            .unwrap_or_else(|| panic!("watch.c printed {line:?}, expected one of {missing:?}"));
        missing.remove(i);
    }
}

/// The C file watcher, `examples/watch.c`, through a scripted scenario: a file created in
/// the watched directory, written, renamed and deleted; each step waits for the lines the
/// watcher prints for it. Closing its standard input stops it.
#[test]
fn example_watch_c() {
    use std::io::{BufRead, BufReader, Write};
    let s = setup();
    let exe = s.out_dir.join("watch");
    let out = Command::new(compiler(false))
        .args(["-Wall", "-Werror", "-O1", "-I"])
        .arg(s.root.join("include"))
        .arg(s.root.join("examples/watch.c"))
        .arg("-L")
        .arg(&s.lib_dir)
        .args(["-lkqueue", "-o"])
        .arg(&exe)
        .output()
        .expect("run the compiler");
    assert!(
        out.status.success(),
        "examples/watch.c does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = s.out_dir.join(format!("watch-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let mut child = Command::new(&exe)
        .arg(&dir)
        .env("LD_LIBRARY_PATH", &s.lib_dir)
        .env_remove("KQUEUE_PERSONALITY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run watch");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let d = dir.display().to_string();
    let step = |want: &[&str]| {
        let want: Vec<String> = want.iter().map(|w| w.replace("DIR", &d)).collect();
        expect_lines(&lines, &want);
    };
    step(&["watching DIR"]);
    std::fs::File::create(dir.join("a")).unwrap();
    step(&["DIR: write", "new a"]);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("a"))
        .unwrap();
    f.write_all(b"hello\n").unwrap();
    drop(f);
    step(&["a: write extend"]);
    std::fs::rename(dir.join("a"), dir.join("b")).unwrap();
    step(&["a: rename", "a renamed to b", "DIR: write"]);
    std::fs::remove_file(dir.join("b")).unwrap();
    step(&["b: delete", "DIR: write"]);
    drop(child.stdin.take()); // end of its standard input: it stops
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("watch.c did not stop at the end of its input");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "watch.c: {status}");
    reader.join().unwrap();
    assert!(
        lines.try_recv().is_err(),
        "unexpected output after the scenario"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
