//! The kqueue descriptor stays readable for as long as an event is pending, also while the
//! library's own thread takes in an expired timer (nobody in `kevent()`): it made the
//! descriptor idle for a moment, between resetting the timerfd that fired and marking the
//! event pending, and a poll() of the program then found no event where one was queued.
//! The moment is short, so the test repeats the expiry many times (without the fix it
//! failed a few times in a thousand rounds on a loaded machine, never with it).

mod util;

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use kq::*;
use util::*;

/// G32 kq_fstat_poll: a oneshot 1 ms timer fires with no thread in kevent(); once an epoll
/// watching the kqueue descriptor reports it readable, poll(2) finds it readable, and the
/// event is there to collect; 2,000 times in a row.
fn g32_readable_throughout_timer_expiry(p: Personality) {
    let kq = kq(p);
    // SAFETY: epoll_create1 makes a new descriptor, owned here.
    let ep = unsafe { OwnedFd::from_raw_fd(libc::epoll_create1(libc::EPOLL_CLOEXEC)) };
    let fd = kq.as_fd().as_raw_fd();
    let mut ee = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 1,
    };
    // SAFETY: registers the kqueue descriptor (open while `kq` lives) in our epoll.
    let r = unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ee) };
    assert_eq!(r, 0);
    let mut idle = 0;
    for round in 0..2000 {
        ch_ok(
            &kq,
            &[Kevent::new(
                1,
                EVFILT_TIMER,
                EV_ADD | EV_ONESHOT,
                0,
                1,
                std::ptr::null_mut(),
            )],
        );
        let mut out = [libc::epoll_event { events: 0, u64: 0 }];
        // SAFETY: waits on our epoll into a live array of one entry.
        let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), out.as_mut_ptr(), 1, 60_000) };
        assert_eq!(
            n, 1,
            "round {round}: the timer never made the kqueue readable"
        );
        if poll_fd(&kq, 0) & libc::POLLIN == 0 {
            idle += 1;
        }
        let evs = get(&kq, 4, Some(std::time::Duration::from_secs(30)));
        assert_eq!(evs.len(), 1, "round {round}: {evs:?}");
        assert_eq!((evs[0].ident, evs[0].filter), (1, EVFILT_TIMER));
    }
    assert_eq!(
        idle, 0,
        "rounds where poll(2) found the kqueue idle with its timer event pending"
    );
}

both!(g32_readable_throughout_timer_expiry);
