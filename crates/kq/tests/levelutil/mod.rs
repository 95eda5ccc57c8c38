//! Helpers shared by the tests of level-triggered registrations (`level.rs`,
//! `attack_level.rs`).

#![allow(dead_code)]

use std::os::fd::AsRawFd;
use std::thread;
use std::time::{Duration, Instant};

use crate::fdutil::*;
use crate::util::*;
use kq::*;

/// Whether level registrations are in use (`KQ_NO_LEVEL` unset). Without them the kqueue
/// descriptor stays readable after a read until a scan finds the knote drained, as on the
/// BSDs; everything else is the same.
pub fn level_on() -> bool {
    std::env::var_os("KQ_NO_LEVEL").is_none()
}

/// Whether poll(2) finds the kqueue descriptor readable now.
pub fn readable(kq: &Kqueue) -> bool {
    poll_fd(kq, 0) & libc::POLLIN != 0
}

/// Waits (up to 1 s) until at least `n` bytes are readable at `fd` (loopback TCP delivers
/// asynchronously).
#[track_caller]
pub fn settle(fd: &impl AsRawFd, n: isize) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while fionread(fd) < n {
        assert!(Instant::now() < deadline, "{n} bytes never became readable");
        thread::sleep(Duration::from_millis(1));
    }
}

/// The READ record of `ev` for `fd`, with its data and EV_EOF.
#[track_caller]
pub fn assert_read(ev: &Kevent, fd: &impl AsRawFd, data: isize, eof: bool) {
    assert_eq!(
        (ev.ident, ev.filter, ev.data, ev.flags & EV_EOF != 0),
        (id(fd), EVFILT_READ, data, eof),
        "{ev:?}"
    );
}

/// After a scan found nothing, the kqueue descriptor is not readable.
#[track_caller]
pub fn scanned_empty(kq: &Kqueue, what: &str) {
    let evs = poll(kq, 4);
    assert!(evs.is_empty(), "{what}: {evs:?}");
    assert!(!readable(kq), "{what}: scanned empty, still readable");
}

/// The processor time this thread has used.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) },
        0
    );
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A blocking kevent() with a 50 ms timeout on `kq` returns nothing, after its timeout,
/// having slept rather than spun; the kqueue descriptor is not readable then.
#[track_caller]
pub fn waits_quietly(kq: &Kqueue, what: &str) {
    let (t0, cpu0) = (Instant::now(), thread_cpu());
    let evs = get(kq, 4, Some(Duration::from_millis(50)));
    let (waited, cpu) = (t0.elapsed(), thread_cpu() - cpu0);
    assert!(evs.is_empty(), "{what}: {evs:?}");
    assert!(waited >= Duration::from_millis(45), "{what}: {waited:?}");
    assert!(
        cpu < Duration::from_millis(40),
        "{what}: the wait used {cpu:?} of processor time in {waited:?}"
    );
    assert!(!readable(kq), "{what}: readable with nothing pending");
}

/// An epoll instance watching a descriptor (a kqueue's, as an event loop nesting the
/// kqueue does) edge-triggered.
pub struct EdgeWatcher(std::os::fd::OwnedFd);

impl EdgeWatcher {
    pub fn new(fd: &impl AsRawFd) -> EdgeWatcher {
        use std::os::fd::FromRawFd;
        // SAFETY: plain system call.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0);
        // SAFETY: just returned by epoll_create1, owned here.
        let ep = unsafe { std::os::fd::OwnedFd::from_raw_fd(ep) };
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: 1,
        };
        // SAFETY: both descriptors are open; ev is a live epoll_event.
        let r = unsafe {
            libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev)
        };
        assert_eq!(r, 0);
        EdgeWatcher(ep)
    }

    /// The edges waiting (waiting up to `ms` for one).
    pub fn edges(&self, ms: i32) -> usize {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 4];
        // SAFETY: evs has room for 4 entries.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), evs.as_mut_ptr(), 4, ms) };
        assert!(n >= 0);
        n as usize
    }

    /// Takes every edge waiting.
    pub fn drain(&self) {
        while self.edges(0) > 0 {}
    }
}
