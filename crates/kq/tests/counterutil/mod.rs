//! Helpers of the eventfd/timerfd counter tests (`fd_counters.rs`, `attack3.rs`).

#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::fdutil::put_bytes;

/// The largest value an eventfd counter holds.
pub const EVENTFD_MAX: u64 = u64::MAX - 1;

/// Adds `n` to eventfd `e`'s counter.
pub fn add(e: &impl AsRawFd, n: u64) {
    put_bytes(e, &n.to_ne_bytes());
}

/// One read (which clears it) of an eventfd's counter or a timerfd's expiration count;
/// None when there is nothing (EAGAIN).
pub fn read_count(fd: &impl AsRawFd) -> Option<u64> {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is valid for 8 bytes.
    let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
    (r == 8).then(|| u64::from_ne_bytes(buf))
}

/// A non-blocking CLOCK_MONOTONIC timerfd, first expiring after `first`, then every
/// `interval` (zero: once).
pub fn timerfd(first: Duration, interval: Duration) -> OwnedFd {
    // SAFETY: plain system call.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    assert!(
        fd >= 0,
        "timerfd_create: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` was just returned and nothing else owns it.
    let t = unsafe { OwnedFd::from_raw_fd(fd) };
    let ts = |d: Duration| libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    };
    let spec = libc::itimerspec {
        it_interval: ts(interval),
        it_value: ts(first),
    };
    // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
    let r = unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) };
    assert_eq!(r, 0, "timerfd_settime: {}", std::io::Error::last_os_error());
    t
}
