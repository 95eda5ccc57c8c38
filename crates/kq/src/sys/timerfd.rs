//! timerfd: one per clock and kqueue, armed for the earliest timer deadline.

use super::{ns_ts, Clock, Fd};
use crate::kevent::Errno;
use rustix::fd::BorrowedFd;
use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
};

/// A non-blocking, close-on-exec timerfd on `clock`.
pub(crate) fn create(clock: Clock) -> Result<Fd, Errno> {
    let id = match clock {
        Clock::Monotonic => TimerfdClockId::Monotonic,
        Clock::Realtime => TimerfdClockId::Realtime,
    };
    Ok(timerfd_create(
        id,
        TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
    )?)
}

/// Arms `fd` for absolute `deadline` (ns on its clock; 0 disarms). Setting a timerfd also
/// resets its expiration count, so it stops being readable until the new deadline. An
/// absolute CLOCK_REALTIME timerfd follows changes of the wall clock.
pub(crate) fn arm(fd: BorrowedFd<'_>, deadline: u64) -> Result<(), Errno> {
    let spec = Itimerspec {
        it_interval: ns_ts(0),
        it_value: ns_ts(deadline),
    };
    timerfd_settime(fd, TimerfdTimerFlags::ABSTIME, &spec)?;
    Ok(())
}

/// Asks timerfd `fd` for its setting (`timerfd_gettime`), for the side effect: a periodic
/// timer that expired counts the periods missed since into its expirations (as a read would,
/// without consuming them), so that its fdinfo shows them all.
pub(crate) fn catch_up(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::time::timerfd_gettime(fd)?;
    Ok(())
}
