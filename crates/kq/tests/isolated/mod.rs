//! Tests that each need a process of their own (signal actions are process-wide): the test
//! re-executes its own binary to run only itself ([`in_child`]), with its body in the child.
#![allow(dead_code, unused_macros)]

use std::time::{Duration, Instant};

/// Runs `body` in a fresh process (this test binary, running only test `name`). Fails if
/// the child fails, or takes more than 60 s (then with the child's output).
pub fn in_child(name: &str, body: impl FnOnce()) {
    if std::env::var("KQ_ISOLATED_CHILD").as_deref() == Ok(name) {
        body();
        return;
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("KQ_ISOLATED_CHILD", name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "child test {name} hung:\n{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        status.success(),
        "child test {name} failed ({status}):\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "child test {name} did not run:\n{text}"
    );
}

/// One `#[test]` per function `fn(Personality)`, each in a child process, in both
/// personalities: `s2::netbsd`, `s2::freebsd`.
macro_rules! isolated_both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn netbsd() {
                    $crate::isolated::in_child(concat!(stringify!($name), "::netbsd"), || {
                        super::$name(kq::Personality::NetBsd)
                    })
                }
                #[test]
                fn freebsd() {
                    $crate::isolated::in_child(concat!(stringify!($name), "::freebsd"), || {
                        super::$name(kq::Personality::FreeBsd)
                    })
                }
            }
        )*
    };
}

/// One `#[test]` per function `fn()`, in a child process.
macro_rules! isolated {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn run() {
                    $crate::isolated::in_child(concat!(stringify!($name), "::run"), super::$name)
                }
            }
        )*
    };
}
