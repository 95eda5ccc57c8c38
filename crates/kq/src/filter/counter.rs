//! EVFILT_READ and EVFILT_WRITE on the counting descriptors NetBSD and FreeBSD have as
//! well as Linux: eventfd and timerfd. What their filters report:
//!
//! | | NetBSD | FreeBSD |
//! |---|---|---|
//! | eventfd READ | active while the counter is not 0, `data` the counter | the same |
//! | eventfd WRITE | active while the counter is below 2^64 - 2, `data` the counter | active the same, `data` the room left: 2^64 - 2 - counter as a signed number |
//! | timerfd READ | active while expirations are unread, `data` their number | active the same, `data` 0 |
//! | timerfd WRITE | EINVAL | EINVAL |
//!
//! Linux's readiness of the two kinds is the same condition (an eventfd is POLLOUT while
//! its counter is below 2^64 - 2, a timerfd POLLIN while it has expirations). The numbers
//! come from `/proc/self/fdinfo/N` (`eventfd-count:`, `ticks:`), which does not consume
//! them; a periodic timerfd is asked for its setting first (`timerfd_gettime`), which counts
//! the periods that went by since it last expired, as a read would. Without /proc the
//! filters answer as for any other pollable descriptor: readiness, `data` 0.

use crate::kevent::Errno;
use crate::personality::Personality;
use crate::sys::{self, fdinfo, io, timerfd};
use std::os::fd::RawFd;

/// The counting kinds of anonymous-inode descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Counter {
    EventFd,
    TimerFd,
}

/// Which counter `fd` (an anonymous inode that is not a kqueue) is, if one.
pub(super) fn kind_of(fd: RawFd) -> Option<Counter> {
    match io::anon_inode_kind(sys::borrow(fd))?.as_str() {
        "eventfd" => Some(Counter::EventFd),
        "timerfd" => Some(Counter::TimerFd),
        _ => None,
    }
}

/// The largest value an eventfd counter can hold.
const EVENTFD_MAX: u64 = u64::MAX - 1;

/// What a counter filter found: whether it is active, and its `data`.
pub(super) struct Count {
    pub(super) active: bool,
    pub(super) data: i64,
}

/// EVFILT_READ on counter `kind` at `fd`; `None` when the number cannot be read (no /proc):
/// the caller answers from the descriptor's readiness then.
pub(super) fn read(fd: RawFd, kind: Counter, p: Personality) -> Option<Count> {
    match kind {
        Counter::EventFd => {
            let count = fdinfo::number(fd, b"eventfd-count:", 16)?;
            Some(Count {
                active: count != 0,
                data: count as i64,
            })
        }
        // FreeBSD's filter leaves `data` alone: readiness says it all.
        Counter::TimerFd if !p.timerfd_reports_expirations() => None,
        Counter::TimerFd => {
            timerfd::catch_up(sys::borrow(fd)).ok()?;
            let ticks = fdinfo::number(fd, b"ticks:", 10)?;
            Some(Count {
                active: ticks != 0,
                data: ticks as i64,
            })
        }
    }
}

/// EVFILT_WRITE on an eventfd at `fd` (a timerfd refuses it); `None` as for [`read`].
pub(super) fn write(fd: RawFd, p: Personality) -> Option<Count> {
    let count = fdinfo::number(fd, b"eventfd-count:", 16)?;
    Some(Count {
        active: count < EVENTFD_MAX,
        data: p.eventfd_write_data(count, EVENTFD_MAX),
    })
}

/// The errno of an EVFILT_WRITE registration on counter `kind`: neither kernel has a write
/// filter for a timerfd.
pub(super) fn refuses_write(kind: Counter) -> Option<Errno> {
    (kind == Counter::TimerFd).then_some(Errno::INVAL)
}
