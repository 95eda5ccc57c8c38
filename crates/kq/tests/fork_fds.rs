//! fork() and the library's own descriptors (docs/semantics.md §3.3, case U35 of §7): in a
//! forked child, a kqueue owned by a Rust value keeps every descriptor it had (its owner
//! closes them, when it drops the value) while every operation on it gives EBADF; a
//! kqueue handed out as a raw descriptor (as C's `kqueue()` does) leaves nothing in the
//! child, and neither does one the program closed while a reference to it was still held
//! (a thread inside `kevent()`), nor the library's descriptors for the whole process.
//!
//! Each test runs in a process of its own (`isolated::in_child`), so that the descriptors
//! of other tests running in parallel do not show; the child of the fork reports through
//! its exit status and a pipe.

#[macro_use]
mod isolated;
mod util;

use kq::*;
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;
use util::ch_ok;

/// The write end of the pipe a forked child reports through (-1: none), left out of
/// [`open_fds`].
static VERDICT: AtomicI32 = AtomicI32::new(-1);

/// The open descriptors of this process, each with what /proc says it is.
fn open_fds() -> BTreeMap<RawFd, String> {
    // The numbers first: the directory's own descriptor is closed before they are looked at.
    let numbers: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    numbers
        .into_iter()
        .filter(|&n| n != VERDICT.load(Ordering::Relaxed))
        .filter_map(|n| {
            let t = std::fs::read_link(format!("/proc/self/fd/{n}")).ok()?;
            Some((n, t.to_string_lossy().into_owned()))
        })
        .collect()
}

/// The descriptors in `now` that are not in `before`.
fn added(before: &BTreeMap<RawFd, String>, now: &BTreeMap<RawFd, String>) -> Vec<RawFd> {
    now.keys()
        .filter(|n| !before.contains_key(n))
        .copied()
        .collect()
}

/// Runs `child` in a process made by fork(); panics with its message unless it returns
/// `Ok`. The child ends with `_exit`.
fn forked(child: impl FnOnce() -> Result<(), String>) {
    let mut p = [0; 2];
    // SAFETY: pipe2 fills two ints.
    assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child runs `child`, writes its verdict and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        VERDICT.store(p[1], Ordering::Relaxed);
        // SAFETY: the child's own copy of the read end; an alarm ends a child that hangs.
        unsafe {
            libc::close(p[0]);
            libc::alarm(10);
        }
        let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child))
            .unwrap_or_else(|_| Err("panicked".into()));
        let code = match &verdict {
            Ok(()) => 0,
            Err(m) => {
                // SAFETY: `m` is readable for its length; p[1] is our pipe.
                unsafe { libc::write(p[1], m.as_ptr().cast(), m.len().min(4000)) };
                1
            }
        };
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: our copy of the write end.
    unsafe { libc::close(p[1]) };
    let mut buf = vec![0u8; 4096];
    // SAFETY: reads into `buf` (up to its length) from our read end, then closes it.
    let n = unsafe {
        let n = libc::read(p[0], buf.as_mut_ptr().cast(), buf.len());
        libc::close(p[0]);
        n
    };
    let mut status = 0;
    // SAFETY: reaps our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let msg = String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child failed (wait status {status:#x}): {msg}"
    );
}

/// A child of this process that exits when `hold` (its read end) reaches EOF.
struct Sleeper {
    pid: libc::pid_t,
    hold: Option<OwnedFd>,
}

impl Sleeper {
    fn start() -> Sleeper {
        let (rd, wr) = rustix_pipe();
        // SAFETY: the child only reads and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            drop(wr);
            let mut c = 0u8;
            // SAFETY: reads one byte into `c`.
            unsafe {
                libc::read(rd.as_raw_fd(), (&raw mut c).cast(), 1);
                libc::_exit(7)
            };
        }
        drop(rd);
        Sleeper {
            pid,
            hold: Some(wr),
        }
    }

    /// Lets the child exit and reaps it.
    fn finish(mut self) {
        self.hold = None;
        let mut status = 0;
        // SAFETY: reaps our child.
        assert_eq!(unsafe { libc::waitpid(self.pid, &mut status, 0) }, self.pid);
    }
}

fn rustix_pipe() -> (OwnedFd, OwnedFd) {
    let mut p = [0; 2];
    // SAFETY: pipe2 fills two ints.
    assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both numbers were just returned and are owned by nothing else.
    unsafe {
        use std::os::fd::FromRawFd;
        (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1]))
    }
}

/// A regular file of its own, unlinked.
fn temp_file() -> std::fs::File {
    let path = std::env::temp_dir().join(format!(
        "kq-fork-fds-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("temporary file");
    std::fs::remove_file(&path).expect("unlink");
    f
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Registers a knote of every kind that makes the library open descriptors: timers on
/// both clocks, EVFILT_VNODE and EVFILT_READ on regular files, EVFILT_SIGNAL, EVFILT_PROC
/// (a process descriptor; forks and execs through the connector where Linux gives it),
/// EVFILT_FS, EVFILT_USER.
fn use_everything(kq: &Kqueue, f1: &std::fs::File, f2: &std::fs::File, child: libc::pid_t) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as isize;
    let ev = |ident: usize, filter: i16, flags: u16, fflags: u32, data: isize| {
        Kevent::new(ident, filter, flags, fflags, data, null_mut())
    };
    ch_ok(
        kq,
        &[
            ev(1, EVFILT_TIMER, EV_ADD, 0, 60_000),
            ev(
                2,
                EVFILT_TIMER,
                EV_ADD,
                NOTE_ABSOLUTE | NOTE_SECONDS,
                now + 3600,
            ),
            ev(
                f1.as_raw_fd() as usize,
                EVFILT_VNODE,
                EV_ADD | EV_CLEAR,
                NOTE_WRITE,
                0,
            ),
            ev(
                f2.as_raw_fd() as usize,
                EVFILT_READ,
                EV_ADD | EV_CLEAR,
                0,
                0,
            ),
            ev(libc::SIGUSR1 as usize, EVFILT_SIGNAL, EV_ADD, 0, 0),
            ev(child as usize, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0),
            ev(0, EVFILT_FS, EV_ADD, 0, 0),
            ev(3, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0),
        ],
    );
    // The connector may be refused (EOPNOTSUPP): then only the process descriptor.
    let forks = ev(
        child as usize,
        EVFILT_PROC,
        EV_ADD,
        NOTE_EXIT | NOTE_FORK | NOTE_EXEC,
        0,
    );
    if let Err(e) = kq.kevent(&[forks], &mut [], None) {
        assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}");
    }
}

/// What the child finds: `Err` lists every descriptor in `now` not in `allowed`.
fn only(allowed: &BTreeMap<RawFd, String>, what: &str) -> Result<(), String> {
    let extra: Vec<String> = open_fds()
        .into_iter()
        .filter(|(n, _)| !allowed.contains_key(n))
        .map(|(n, t)| format!("{n} ({t})"))
        .collect();
    if extra.is_empty() {
        Ok(())
    } else {
        Err(format!("{what}: the child holds {}", extra.join(", ")))
    }
}

/// EBADF, as every operation on an inherited kqueue gives.
fn ebadf<T: std::fmt::Debug>(what: &str, r: io::Result<T>) -> Result<(), String> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(()),
        other => Err(format!("{what}: {other:?}, not EBADF")),
    }
}

/// U35 (Rust-owned): the child keeps the descriptors of a `Kqueue` it inherited, with
/// every operation on it failing with EBADF, until it drops the value, which closes them
/// all; the library's descriptors for the whole process (a signal's eventfd, the
/// connector, the timer thread's epoll) and those of a kqueue handed out as a raw
/// descriptor are gone in the child from the start.
fn u35_rust_owned_kqueue_keeps_its_descriptors(p: Personality) {
    let f1 = temp_file();
    let f2 = temp_file();
    let sleeper = Sleeper::start();
    let baseline = open_fds();
    // A kqueue as C's kqueue() makes it, with the same knotes.
    let raw = Kqueue::with_personality(p).unwrap();
    use_everything(&raw, &f1, &f2, sleeper.pid);
    let raw: OwnedFd = raw.try_into_fd().unwrap();
    let with_raw = open_fds();
    let kq = Kqueue::with_personality(p).unwrap();
    use_everything(&kq, &f1, &f2, sleeper.pid);
    let with_both = open_fds();
    let owned = added(&with_raw, &with_both);
    assert!(owned.contains(&kq.as_raw_fd()));
    // Its epoll and eventfd, two timerfds, an inotify instance, a process descriptor, the
    // mount table.
    assert!(owned.len() >= 7, "the kqueue's descriptors: {owned:?}");
    let mut allowed = baseline.clone();
    for n in &owned {
        allowed.insert(*n, with_both[n].clone());
    }
    let raw_number = raw.as_raw_fd();
    // Taken (and dropped) in the child only.
    let mut slot = Some(kq);
    forked(|| {
        let kq = slot.take().ok_or("no kqueue")?;
        only(&allowed, "before the drop")?;
        for n in &owned {
            if with_both.get(n) != open_fds().get(n) {
                return Err(format!("descriptor {n} of the kqueue changed"));
            }
        }
        let mut evs = [Kevent::default(); 4];
        ebadf("a poll", kq.kevent(&[], &mut evs, Some(Duration::ZERO)))?;
        ebadf("a wait", kq.kevent(&[], &mut evs, None))?;
        let trigger = Kevent::new(3, EVFILT_USER, 0, NOTE_TRIGGER, 0, null_mut());
        ebadf("a trigger", kq.kevent(&[trigger], &mut [], None))?;
        let add = Kevent::new(9, EVFILT_TIMER, EV_ADD, 0, 5, null_mut());
        ebadf("an EV_ADD", kq.kevent(&[add], &mut [], None))?;
        ebadf("Kqueue::find", Kqueue::find(kq.as_fd()).map(drop))?;
        // SAFETY: only looked up; the number is not open in the child.
        let gone = unsafe { BorrowedFd::borrow_raw(raw_number) };
        ebadf("the raw kqueue", Kqueue::find(gone).map(drop))?;
        drop(kq);
        only(&baseline, "after the drop")
    });
    // The parent's kqueues are intact.
    let kq = slot.expect("the parent's kqueue");
    let trigger = Kevent::new(3, EVFILT_USER, 0, NOTE_TRIGGER, 0, null_mut());
    ch_ok(&kq, &[trigger]);
    let found = Kqueue::find(raw.as_fd()).unwrap();
    ch_ok(&found, &[trigger]);
    let mut evs = [Kevent::default(); 8];
    assert!(kq.kevent(&[], &mut evs, Some(Duration::ZERO)).unwrap() >= 1);
    assert!(found.kevent(&[], &mut evs, Some(Duration::ZERO)).unwrap() >= 1);
    drop(found);
    kq::fdclose(raw.as_raw_fd());
    drop(raw);
    drop(kq);
    sleeper.finish();
}

/// U35 (closed, still referenced): a kqueue handed out as a raw descriptor and closed by
/// the program while a reference to it is still held (as a thread inside `kevent()` holds
/// one) is alive at the fork; the child holds none of its descriptors.
fn u35_closed_kqueue_still_referenced_leaves_nothing(p: Personality) {
    let f1 = temp_file();
    let f2 = temp_file();
    let sleeper = Sleeper::start();
    let baseline = open_fds();
    let kq = Kqueue::with_personality(p).unwrap();
    use_everything(&kq, &f1, &f2, sleeper.pid);
    let number = kq.try_into_fd().unwrap().into_raw_fd();
    // SAFETY: the number stays open until the close below, and `found` is not used after
    // it but to be dropped.
    let borrowed = unsafe { BorrowedFd::borrow_raw(number) };
    let found = Kqueue::find(borrowed).unwrap();
    kq::fdclose(number);
    // SAFETY: the program's own number of the kqueue, closed as close() would.
    assert_eq!(unsafe { libc::close(number) }, 0);
    let mut evs = [Kevent::default(); 1];
    // The kqueue is closed: the reference sees it so.
    assert_eq!(
        found
            .kevent(&[], &mut evs, Some(Duration::ZERO))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EBADF)
    );
    forked(|| only(&baseline, "a closed kqueue still referenced at the fork"));
    drop(found);
    sleeper.finish();
}

isolated_both!(
    u35_rust_owned_kqueue_keeps_its_descriptors,
    u35_closed_kqueue_still_referenced_leaves_nothing,
);
