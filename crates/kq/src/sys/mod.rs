//! Thin wrappers of the Linux calls the engine uses. Nothing here knows about kqueues or
//! knotes: each file is one mechanism (`epoll`, `eventfd`, `timerfd`, descriptor queries in
//! `io`, signal masks in `signals`, `/proc/self/fdinfo` in `fdinfo`, the mount table in
//! `mounts`), and all of the crate's `unsafe` for system calls lives in this module.

// Everything here is Linux's: epoll, eventfd, timerfd, inotify, /proc. Say so at once rather
// than with a page of unresolved names.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "kq implements kqueue(2) on Linux (epoll, eventfd, timerfd); \
     other systems have a kqueue of their own or need another backend"
);

pub(crate) mod cnproc;
pub(crate) mod epoll;
pub(crate) mod fdinfo;
pub(crate) mod inotify;
pub(crate) mod io;
pub(crate) mod mounts;
pub(crate) mod pidfd;
pub(crate) mod sigaction;
pub(crate) mod signals;
pub(crate) mod timerfd;

use crate::kevent::Errno;
use rustix::fd::{BorrowedFd, RawFd};
use rustix::time::{ClockId, Nsecs, Secs, Timespec};

pub(crate) use rustix::fd::OwnedFd as Fd;

/// The clocks of timers: relative timers run on CLOCK_MONOTONIC, NOTE_ABSOLUTE ones on
/// CLOCK_REALTIME.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Clock {
    Monotonic = 0,
    Realtime = 1,
}

/// The time on `clock` in nanoseconds (CLOCK_REALTIME: since the epoch; never before it
/// here, as no deadline is).
pub(crate) fn now_ns(clock: Clock) -> u64 {
    let id = match clock {
        Clock::Monotonic => ClockId::Monotonic,
        Clock::Realtime => ClockId::Realtime,
    };
    let t = rustix::time::clock_gettime(id);
    (t.tv_sec.max(0) as u64) * 1_000_000_000 + t.tv_nsec as u64
}

pub(crate) fn ns_ts(ns: u64) -> Timespec {
    Timespec {
        // u64::MAX ns is 584 years: the seconds fit in rustix's 64-bit `Secs` on every
        // target (it passes 64-bit times to the kernel on 32-bit ones too).
        tv_sec: (ns / 1_000_000_000) as Secs,
        tv_nsec: (ns % 1_000_000_000) as Nsecs,
    }
}

/// Descriptor number `fd` borrowed for the current call. The number may be closed, or
/// reused by another file, at any moment by another thread: every use of the borrow is a
/// system call that then fails (EBADF) or works on the other file, which callers check by
/// file identity; no memory safety depends on it.
pub(crate) fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    debug_assert!(fd >= 0);
    // SAFETY: `fd` is not -1 (callers pass numbers in 0..=INT_MAX). See above: the borrow is
    // only handed to system calls, whose failure on a stale number is an ordinary error.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// `ident` as a descriptor number: EBADF for values outside 0..=INT_MAX.
pub(crate) fn fd_number(ident: usize) -> Result<RawFd, Errno> {
    RawFd::try_from(ident).map_err(|_| Errno::BADF)
}

/// `eventfd(0, EFD_CLOEXEC|EFD_NONBLOCK)`.
pub(crate) fn eventfd() -> Result<Fd, Errno> {
    use rustix::event::{eventfd, EventfdFlags};
    Ok(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?)
}

/// Adds one to an eventfd's counter (it becomes readable, and its pollers are woken).
pub(crate) fn eventfd_add(fd: BorrowedFd<'_>) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// Resets an eventfd's counter to zero (it stops being readable).
pub(crate) fn eventfd_drain(fd: BorrowedFd<'_>) {
    let mut b = [0u8; 8];
    let _ = rustix::io::read(fd, &mut b);
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, 0)`.
pub(crate) fn dup_cloexec(fd: BorrowedFd<'_>) -> Result<Fd, Errno> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 0)?)
}

/// `getpid()`.
pub(crate) fn getpid() -> i32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// Whether `e` says the process ran out of descriptors.
pub(crate) fn is_fd_exhaustion(e: Errno) -> bool {
    e.0 == libc::EMFILE || e.0 == libc::ENFILE
}

/// `poll(fds, timeout_ms)` (-1: no timeout), its result ignored: the caller looks at
/// `revents` (all zero after a timeout, an error or a signal).
pub(crate) fn poll_fds(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) {
    // SAFETY: `fds` is a live, writable array of the length given.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        for p in fds {
            p.revents = 0;
        }
    }
}

/// Closes descriptor number `fd` whose owner was forgotten (in a child after fork).
pub(crate) fn close_number(fd: RawFd) {
    // SAFETY: the caller gives up the number, which no live owner uses any more.
    unsafe { libc::close(fd) };
}
