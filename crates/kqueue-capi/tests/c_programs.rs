//! Builds every C test program of `tests/c/` against `include/sys/event.h` and the
//! libkqueue.so of this build, runs it and asserts that it exits with status 0.
//!
//! One `#[test]` per program, so a failure is named; the program's own output (one
//! `ok`/`FAIL` line per SPEC case) is printed, and shown by cargo when the test fails.
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
const RUN_LIMIT: Duration = Duration::from_secs(120);

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

/// Compiles tests/c/<name>.c and returns the executable.
fn compile(name: &str, how: Build) -> PathBuf {
    let s = setup();
    let cxx = how == Build::Cxx;
    let src = s.root.join("tests/c").join(format!("{name}.c"));
    let exe = s.out_dir.join(match how {
        Build::C => name.to_string(),
        Build::Cxx => format!("{name}-cxx"),
        Build::Static => format!("{name}-static"),
    });
    let mut cmd = Command::new(compiler(cxx));
    cmd.args(["-Wall", "-Werror", "-g", "-O1"])
        .arg("-I")
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
    let s = setup();
    let mut child = Command::new(exe)
        .current_dir(&s.out_dir)
        .env("LD_LIBRARY_PATH", &s.lib_dir)
        .env_remove("KQUEUE_PERSONALITY")
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
    println!(
        "$ LD_LIBRARY_PATH={} {}",
        s.lib_dir.display(),
        exe.display()
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

/// One `#[test]` per C program in tests/c/, named after it, and the list of them.
macro_rules! c_programs {
    ($($name:ident),* $(,)?) => {
        const PROGRAMS: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                c_program(stringify!($name));
            }
        )*
    };
}

c_programs!(abi, close, dup, eintr, errors, fork, leak, lifetime, poll, timer, user);

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
/// statically.
#[test]
fn abi_static() {
    run(&compile("abi", Build::Static));
    run(&compile("fork", Build::Static));
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
    let mut listed: Vec<String> = PROGRAMS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed, "tests/c/*.c and PROGRAMS differ");
}
