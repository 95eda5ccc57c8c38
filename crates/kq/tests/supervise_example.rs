//! Runs the supervisor example (`examples/supervise.rs`) with scripted scenarios: children
//! that exit are restarted up to the limit; SIGTERM stops the rest; children that ignore
//! SIGTERM are killed when the grace period ends, or by a second SIGINT. Needs EVFILT_PROC,
//! EVFILT_SIGNAL and EVFILT_TIMER.
//!
//! The example runs in a process of its own (it ignores SIGTERM and SIGINT, forks, and
//! waits for its children): this test binary started again with `SUPERVISE_ARGS` set, in
//! which [`supervise_child`] runs the example's `run` and exits with its status.

#[allow(dead_code)]
#[path = "../examples/supervise.rs"]
mod supervise;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Separates the arguments in `SUPERVISE_ARGS`.
const SEP: char = '\u{1f}';

/// The example itself, when this binary was started by [`run`]; nothing otherwise.
#[test]
fn supervise_child() {
    if let Ok(args) = std::env::var("SUPERVISE_ARGS") {
        let code = supervise::run(args.split(SEP).map(String::from).collect());
        std::process::exit(code);
    }
}

/// Runs the example with `args`; `script` sees each output line and may act on the child.
/// Returns every line of the example, once it exited 0 (within 30 s).
fn run(args: &[&str], mut script: impl FnMut(&str, &Child)) -> Vec<String> {
    let exe = std::env::current_exe().expect("test executable");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "supervise_child",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env("SUPERVISE_ARGS", args.join(&SEP.to_string()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the example");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            // The test harness's own lines.
            Ok(line) if line.is_empty() || line.starts_with("running ") => {}
            Ok(line) => {
                script(&line, &child);
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the example still ran after 30 s: {lines:#?}");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}: {lines:#?}");
    lines
}

fn count(lines: &[String], what: &str) -> usize {
    lines.iter().filter(|l| l.contains(what)).count()
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill() of our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

/// Two children that exit with status 5 at once, one restart each: four exits, two
/// restarts, two "no restarts left", then the example ends by itself.
#[test]
fn supervise_restarts_up_to_the_limit() {
    let lines = run(&["-n", "2", "-r", "1", "sh", "-c", "exit 5"], |_, _| {});
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
}

/// Three sleeping children; SIGTERM once all three started: each is stopped with SIGTERM.
#[test]
fn supervise_stops_on_sigterm() {
    let mut started = 0;
    let lines = run(&["-n", "3", "-r", "5", "sleep", "30"], |line, child| {
        if line.starts_with("started child") {
            started += 1;
            if started == 3 {
                // Time for the children to exec: a signal that reaches a child before it
                // has reset its actions finds SIGTERM ignored (the grace period then ends
                // it, as below).
                std::thread::sleep(Duration::from_millis(300));
                signal(child, libc::SIGTERM);
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
}

/// Children that ignore SIGTERM and one SIGTERM: the grace period (3 s) ends with SIGKILL.
#[test]
fn supervise_grace_period_kills() {
    let mut started = 0;
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
        |line, child| {
            if line.starts_with("started child") {
                started += 1;
                if started == 2 {
                    std::thread::sleep(Duration::from_millis(300));
                    signal(child, libc::SIGTERM);
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
}

/// Children that ignore SIGTERM: the first SIGINT asks them to stop, the second kills them.
#[test]
fn supervise_second_sigint_kills() {
    let mut started = 0;
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
        |line, child| {
            if line.starts_with("started child") {
                started += 1;
                if started == 2 {
                    std::thread::sleep(Duration::from_millis(300));
                    signal(child, libc::SIGINT);
                }
            } else if line.starts_with("SIGINT: stopping") {
                std::thread::sleep(Duration::from_millis(300));
                signal(child, libc::SIGINT);
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
