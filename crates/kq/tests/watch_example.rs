//! Runs the file watcher example (`examples/watch.rs`) through a scripted scenario: a file
//! created in the watched directory, written, renamed and deleted; each step waits for the
//! lines the watcher must print for it (in any order within the step).

#[path = "../examples/watch.rs"]
mod watch;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut p = [-1; 2];
    // SAFETY: `p` has room for the two descriptors, which are then owned.
    unsafe {
        assert_eq!(libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC), 0);
        (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1]))
    }
}

/// Waits for every line of `want` (in any order), failing after 10 s; other lines are an
/// error too.
#[track_caller]
fn expect(lines: &mpsc::Receiver<String>, want: &[&str]) {
    let mut missing: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    while !missing.is_empty() {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("watcher: still waiting for {missing:?}"));
        let i = missing
            .iter()
            .position(|m| *m == line)
            .unwrap_or_else(|| panic!("watcher printed {line:?}, expected one of {missing:?}"));
        missing.remove(i);
    }
}

/// The scenario, for a watcher of `dir` whose output lines arrive on `lines`.
pub fn scenario(dir: &Path, lines: &mpsc::Receiver<String>) {
    let d = dir.display().to_string();
    expect(lines, &[&format!("watching {d}")]);
    std::fs::File::create(dir.join("a")).unwrap();
    expect(lines, &[&format!("{d}: write"), "new a"]);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("a"))
        .unwrap();
    f.write_all(b"hello\n").unwrap();
    drop(f);
    expect(lines, &["a: write extend"]);
    std::fs::rename(dir.join("a"), dir.join("b")).unwrap();
    expect(
        lines,
        &["a: rename", "a renamed to b", &format!("{d}: write")],
    );
    std::fs::remove_file(dir.join("b")).unwrap();
    expect(lines, &["b: delete", &format!("{d}: write")]);
}

#[test]
fn example_watch() {
    let dir = std::env::temp_dir().join(format!("kq-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let (stop_r, stop_w) = pipe();
    let (out_r, out_w) = pipe();
    let d2 = dir.clone();
    let watcher = std::thread::spawn(move || {
        let mut out = std::fs::File::from(out_w);
        watch::run(&d2, Some(stop_r.as_fd()), &mut out)
    });
    let (tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(std::fs::File::from(out_r)).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    scenario(&dir, &lines);
    drop(stop_w); // end of "standard input": the watcher stops
    watcher.join().unwrap().unwrap();
    reader.join().unwrap();
    assert!(
        lines.try_recv().is_err(),
        "unexpected output after the scenario"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
