//! EVFILT_READ and EVFILT_WRITE on the counting descriptors the BSDs share with Linux:
//! eventfd (NetBSD and FreeBSD) and timerfd (both as well), in both personalities.
//!
//! R7 (`data` = what is there to read) and W4 (`data` = room to write) for these kinds:
//! - eventfd READ: `data` is the counter, active while it is not 0 (both kernels);
//! - eventfd WRITE: active while the counter is below its maximum (2^64 - 2); `data` is the
//!   counter on NetBSD, the room left (2^64 - 2 - counter, as a signed 64-bit number, so
//!   -2 - counter) on FreeBSD;
//! - timerfd READ: active while expirations are unread; `data` is their number on NetBSD,
//!   0 on FreeBSD (its filter leaves `data` alone);
//! - timerfd WRITE: refused with EINVAL by both.
//!
//! The library reads the counters without consuming them (`/proc/self/fdinfo`), so a read
//! after the event still gets them all.

mod counterutil;
mod fdutil;
mod util;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread;
use std::time::Duration;

use counterutil::*;
use fdutil::*;
use kq::*;
use util::*;

/// What EVFILT_WRITE reports in `data` for an eventfd holding `count`.
fn write_data(p: Personality, count: u64) -> isize {
    match p {
        Personality::FreeBsd => (EVENTFD_MAX - count) as i64 as isize,
        _ => count as i64 as isize,
    }
}

/// R7, eventfd: `data` is the counter, as both kernels' eventfd filter reports it, level
/// (more writes raise it), without consuming it; a read that empties it ends the event.
fn r7_eventfd_data_is_the_counter(p: Personality) {
    let kq = kq(p);
    let e = eventfd();
    let ei = id(&e);
    ch_ok(&kq, &[rd(ei, EV_ADD, 1)]);
    expect_no_events(&kq);
    add(&e, 3);
    assert_fd_event(
        &expect_one(&kq),
        ei,
        EVFILT_READ,
        delivered_flags(p, EV_ADD),
        3,
    );
    add(&e, 4);
    assert_eq!(expect_one(&kq).data, 7);
    // Still there: looking did not consume it.
    assert_eq!(expect_one(&kq).data, 7);
    assert_eq!(read_count(&e), Some(7));
    expect_no_events(&kq);
    // A counter above 2^63 shows as a negative `data` (the 64-bit value reinterpreted).
    add(&e, 1 << 63);
    assert_eq!(expect_one(&kq).data, i64::MIN as isize);
    assert_eq!(read_count(&e), Some(1 << 63));
    expect_no_events(&kq);
}

/// R7, eventfd with EV_CLEAR: each write is news and the event carries the whole counter;
/// no event again until the next write.
fn r7_eventfd_clear_reports_the_counter(p: Personality) {
    let kq = kq(p);
    let e = eventfd();
    let ei = id(&e);
    ch_ok(&kq, &[rd(ei, EV_ADD | EV_CLEAR, 2)]);
    add(&e, 2);
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, ev.data, udata(&ev)), (EVFILT_READ, 2, 2));
    expect_no_events(&kq);
    add(&e, 5);
    assert_eq!(expect_one(&kq).data, 7);
    expect_no_events(&kq);
}

/// R7, eventfd registered when already non-zero (the counter given at creation): the first
/// look reports it, with the descriptor registered without a look first (EV_ADD of READ on a
/// number the kqueue has no knote on).
fn r7_eventfd_initial_counter(p: Personality) {
    let kq = kq(p);
    // SAFETY: plain system call.
    let fd = unsafe { libc::eventfd(9, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: `fd` was just returned and nothing else owns it.
    let e = unsafe { OwnedFd::from_raw_fd(fd) };
    ch_ok(&kq, &[rd(id(&e), EV_ADD, 0)]);
    assert_eq!(expect_one(&kq).data, 9);
}

/// W4, eventfd: writable while the counter is below its maximum; `data` is the counter
/// (NetBSD) or the room left, as a signed number (FreeBSD). At the maximum it is not
/// writable; a read makes it writable again.
fn w4_eventfd_write_data(p: Personality) {
    let kq = kq(p);
    let e = eventfd();
    let ei = id(&e);
    ch_ok(&kq, &[wr(ei, EV_ADD, 3)]);
    assert_fd_event(
        &expect_one(&kq),
        ei,
        EVFILT_WRITE,
        delivered_flags(p, EV_ADD),
        write_data(p, 0),
    );
    add(&e, 5);
    assert_eq!(expect_one(&kq).data, write_data(p, 5));
    add(&e, EVENTFD_MAX - 5);
    expect_no_events(&kq);
    assert_eq!(read_count(&e), Some(EVENTFD_MAX));
    assert_eq!(expect_one(&kq).data, write_data(p, 0));
}

/// W4 and R7 on one eventfd: both knotes see the same counter.
fn w4_eventfd_read_and_write_knotes(p: Personality) {
    let kq = kq(p);
    let e = eventfd();
    let ei = id(&e);
    ch_ok(&kq, &[rd(ei, EV_ADD, 1), wr(ei, EV_ADD, 2)]);
    add(&e, 11);
    let mut evs = get(&kq, 4, Some(Duration::ZERO));
    evs.sort_by_key(|ev| ev.filter);
    assert_eq!(evs.len(), 2, "{evs:?}");
    // EVFILT_WRITE (-2) sorts before EVFILT_READ (-1).
    assert_eq!(
        (evs[0].filter, evs[0].data),
        (EVFILT_WRITE, write_data(p, 11))
    );
    assert_eq!((evs[1].filter, evs[1].data), (EVFILT_READ, 11));
}

/// R7, timerfd: active while expirations are unread. NetBSD's filter reports their number,
/// counted up to the look (a periodic timer's missed periods included), FreeBSD's `data` 0.
/// The look does not consume them: a read afterwards gets at least as many.
fn r7_timerfd_data_counts_expirations(p: Personality) {
    let kq = kq(p);
    let t = timerfd(Duration::from_millis(1), Duration::from_millis(1));
    let ti = id(&t);
    ch_ok(&kq, &[rd(ti, EV_ADD, 4)]);
    thread::sleep(Duration::from_millis(30));
    let ev = wait_one(&kq);
    assert_eq!((ev.ident, ev.filter), (ti, EVFILT_READ));
    let got = read_count(&t).expect("expirations to read");
    match p {
        Personality::FreeBsd => assert_eq!(ev.data, 0),
        _ => {
            // 30 ms of 1 ms periods: far more than the one expiration Linux counts until
            // the timer is read or asked about.
            assert!(ev.data >= 10, "expirations in data: {}", ev.data);
            assert!(got >= ev.data as u64, "read {got} < reported {}", ev.data);
        }
    }
    // Disarmed: nothing more.
    let off = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
    };
    // SAFETY: valid itimerspec.
    assert_eq!(
        unsafe { libc::timerfd_settime(t.as_raw_fd(), 0, &off, std::ptr::null_mut()) },
        0
    );
    expect_no_events(&kq);
}

/// R7, a one-shot timerfd: one expiration, `data` 1 (NetBSD) or 0 (FreeBSD); after the
/// read, nothing.
fn r7_timerfd_one_shot(p: Personality) {
    let kq = kq(p);
    let t = timerfd(Duration::from_millis(2), Duration::ZERO);
    ch_ok(&kq, &[rd(id(&t), EV_ADD | EV_CLEAR, 0)]);
    let ev = wait_one(&kq);
    let expected = if p == Personality::FreeBsd { 0 } else { 1 };
    assert_eq!((ev.filter, ev.data), (EVFILT_READ, expected));
    assert_eq!(read_count(&t), Some(1));
    expect_no_events(&kq);
}

/// W4, timerfd: neither kernel has a write filter for it: EVFILT_WRITE is refused with
/// EINVAL (as a return value, and as an EV_ERROR record), and no knote is made.
fn w4_timerfd_write_refused(p: Personality) {
    let kq = kq(p);
    let t = timerfd(Duration::from_secs(100), Duration::ZERO);
    let ti = id(&t);
    ch_err(&kq, &[wr(ti, EV_ADD, 0)], libc::EINVAL);
    let mut out = [sentinel(); 2];
    let n = kq
        .kevent(&[wr(ti, EV_ADD, 0)], &mut out, Some(Duration::ZERO))
        .unwrap();
    assert_eq!(n, 1);
    assert_report(&out[0], ti, EVFILT_WRITE, libc::EINVAL);
    ch_err(&kq, &[wr(ti, EV_DELETE, 0)], libc::ENOENT);
    // READ is fine.
    ch_ok(&kq, &[rd(ti, EV_ADD, 0)]);
    expect_no_events(&kq);
}

both!(
    r7_eventfd_data_is_the_counter,
    r7_eventfd_clear_reports_the_counter,
    r7_eventfd_initial_counter,
    w4_eventfd_write_data,
    w4_eventfd_read_and_write_knotes,
    r7_timerfd_data_counts_expirations,
    r7_timerfd_one_shot,
    w4_timerfd_write_refused,
);
