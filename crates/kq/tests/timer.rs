//! EVFILT_TIMER (docs/semantics.md §5.4) and the timer cases of its §7.4 (T1, T3-T10) plus
//! G24, scaled down to timers of 100 ms or less. Sections (§) cited here are that
//! document's.
//!
//! Every test holds `SERIAL`: the 4096-timer limit is process-wide (T10), and serial runs
//! keep the timing assertions honest on a loaded 2-core machine. Counts are checked against
//! bounds computed from the measured elapsed time: a count can never exceed the number of
//! whole periods elapsed, and may lag it by at most one expiry.

mod util;

use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kq::*;
use util::*;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn timer(ident: usize, flags: u16, fflags: u32, data: isize) -> Kevent {
    Kevent::new(ident, EVFILT_TIMER, flags, fflags, data, ptr(0))
}

/// The flags a timer added with `flags` reports: relative timers force EV_CLEAR (§5.4).
fn timer_flags(p: Personality, flags: u16) -> u16 {
    delivered_flags(p, flags | EV_CLEAR)
}

/// Asserts a timer record.
#[track_caller]
fn assert_timer(ev: &Kevent, ident: usize, flags: u16) {
    assert_eq!(
        (ev.ident, ev.filter, ev.flags, ev.fflags),
        (ident, EVFILT_TIMER, flags, 0),
        "{ev:?}"
    );
}

/// Whole periods in `d`.
fn periods(d: Duration, period: Duration) -> isize {
    (d.as_nanos() / period.as_nanos()) as isize
}

/// Waits (at most 30 s) for exactly one record.
#[track_caller]
fn wait_one(kq: &Kqueue) -> Kevent {
    let evs = get(kq, 4, Some(Duration::from_secs(30)));
    assert_eq!(
        evs.len(),
        1,
        "expected one timer record within 30 s, got {evs:?}"
    );
    evs[0]
}

/// T1 kevent_zerotimer (NB t_kevent): a 1 ms timer is accepted and fires.
fn t1_zerotimer(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    ch_ok(&kq, &[timer(1, EV_ADD, 0, 1)]);
    let ev = wait_one(&kq);
    assert_timer(&ev, 1, timer_flags(p, EV_ADD));
    assert!(ev.data >= 1, "{ev:?}");
    ch_ok(&kq, &[timer(1, EV_DELETE, 0, 0)]);
}

/// T2 basic_timer (NB t_timer, scaled from 1 s / 6 s to 20 ms / 60 ms): a periodic timer
/// reports five times in about five periods; re-added as EV_ONESHOT (FreeBSD: deleted and
/// added again as EV_ONESHOT) it fires once, after its interval; deleting the consumed oneshot is ENOENT; then the kqueue stays quiet.
fn t2_basic_timer(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let start = Instant::now();
    ch_ok(&kq, &[timer(1, EV_ADD, 0, 20)]);
    let mut total = 0;
    for _ in 0..5 {
        total += wait_one(&kq).data;
    }
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(99), "{elapsed:?}");
    assert!(
        total >= 5 && total <= periods(elapsed, Duration::from_millis(20)),
        "{total} expirations in {elapsed:?}"
    );
    // FreeBSD's re-add keeps the stored flags, so the periodic timer would stay periodic:
    // there the oneshot is a new timer.
    if p == Personality::FreeBsd {
        ch_ok(&kq, &[timer(1, EV_DELETE, 0, 0)]);
    }
    let readd = Instant::now();
    ch_ok(&kq, &[timer(1, EV_ADD | EV_ONESHOT, 0, 60)]);
    let ev = wait_one(&kq);
    assert!(
        readd.elapsed() >= Duration::from_millis(59),
        "{:?}",
        readd.elapsed()
    );
    assert_timer(&ev, 1, timer_flags(p, EV_ADD | EV_ONESHOT));
    assert_eq!(ev.data, 1);
    ch_err(&kq, &[timer(1, EV_DELETE, 0, 0)], libc::ENOENT);
    assert!(get(&kq, 4, Some(Duration::from_millis(100))).is_empty());
}

/// T3 count_expirations (NB t_timer, scaled: 20 ms period, 110 ms sleep, about 5): `data`
/// is the number of expirations since the last delivery, then it restarts from 0.
fn t3_count_expirations(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let period = Duration::from_millis(20);
    let before_add = Instant::now();
    ch_ok(&kq, &[timer(1, EV_ADD, 0, 20)]);
    let after_add = Instant::now();
    sleep(Duration::from_millis(110));
    let before_poll = Instant::now();
    let ev = expect_one(&kq);
    let after_poll = Instant::now();
    assert_timer(&ev, 1, timer_flags(p, EV_ADD));
    let lo = (periods(before_poll - after_add, period) - 1).max(1);
    let hi = periods(after_poll - before_add, period);
    assert!(
        (lo..=hi).contains(&ev.data),
        "data {} not in {lo}..={hi}",
        ev.data
    );
    assert!(
        ev.data >= 3,
        "data {} after a 110 ms sleep of a 20 ms timer",
        ev.data
    );

    // The count restarts after a delivery (which happened between before_poll and
    // after_poll): at most one more expiry than whole periods since before_poll.
    let (first_lo, first_hi) = (before_poll, after_poll);
    sleep(Duration::from_millis(50));
    let before_poll = Instant::now();
    let ev = expect_one(&kq);
    let hi = periods(Instant::now() - first_lo, period) + 1;
    let lo = (periods(before_poll - first_hi, period) - 1).max(1);
    assert!(
        (lo..=hi).contains(&ev.data),
        "second data {} not in {lo}..={hi}",
        ev.data
    );
}

/// Current CLOCK_REALTIME time since the epoch.
fn realtime() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// T4 abstime (NB t_timer): NOTE_ABSOLUTE at CLOCK_REALTIME now + 50 ms, in ms, us and ns.
/// It fires at the deadline with data 1. [NB] does not force EV_CLEAR on absolute timers, so
/// the fired timer is reported again by the next poll (§5.4). [FB]: reported once (the
/// engine forces EV_CLEAR there; FreeBSD's own test uses EV_ONESHOT: unchecked, §0).
fn t4_abstime(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let units: [(u32, u128); 3] = [(0, 1_000_000), (NOTE_USECONDS, 1_000), (NOTE_NSECONDS, 1)];
    for (unit, ns_per_unit) in units {
        let start = Instant::now();
        let deadline = realtime() + Duration::from_millis(50);
        // Where `data` has 32 bits (i686), a time since the epoch in these units does not
        // fit: only NOTE_SECONDS can say one there (see `absolute_at`).
        let Ok(data) = isize::try_from(deadline.as_nanos() / ns_per_unit) else {
            continue;
        };
        ch_ok(&kq, &[timer(1, EV_ADD, NOTE_ABSOLUTE | unit, data)]);
        expect_no_events(&kq);
        let ev = wait_one(&kq);
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(48),
            "unit {unit:#x}: fired after {waited:?}"
        );
        assert!(
            realtime() >= deadline - Duration::from_millis(1),
            "unit {unit:#x}: early"
        );
        assert_eq!(
            (ev.ident, ev.filter, ev.fflags, ev.data),
            (1, EVFILT_TIMER, 0, 1),
            "{ev:?}"
        );
        match p {
            Personality::NetBsd => {
                assert_eq!(
                    ev.flags, EV_ADD,
                    "EV_CLEAR is not forced on absolute timers"
                );
                let again = expect_one(&kq);
                assert_eq!((again.ident, again.data), (1, 1), "{again:?}");
            }
            Personality::FreeBsd => expect_no_events(&kq),
            _ => unimplemented!("another personality"),
        }
        ch_ok(&kq, &[timer(1, EV_DELETE, 0, 0)]);
        expect_no_events(&kq);
    }
}

/// An absolute timer change's unit and data for about `at` (since the epoch), and the
/// deadline they say: microseconds where they fit in `data`, else (32-bit targets, whose
/// `data` is 32 bits) whole seconds, rounded up.
fn absolute_at(at: Duration) -> (u32, isize, Duration) {
    match isize::try_from(at.as_micros()) {
        Ok(us) => (NOTE_USECONDS, us, at),
        Err(_) => {
            let secs = at.as_secs() + 1;
            (NOTE_SECONDS, secs as isize, Duration::from_secs(secs))
        }
    }
}

/// T4 (§3.4, §5.4): an absolute timer expiring while no thread is in kevent() makes the
/// kqueue descriptor readable on time (the library watches its CLOCK_REALTIME timerfd), and a
/// blocking kevent() wakes for it.
fn t4_abstime_wakes_pollers_and_sleepers(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let (unit, data, at) = absolute_at(realtime() + Duration::from_millis(40));
    let start = Instant::now();
    ch_ok(
        &kq,
        &[timer(1, EV_ADD | EV_ONESHOT, NOTE_ABSOLUTE | unit, data)],
    );
    assert_ne!(poll_fd(&kq, 60_000) & libc::POLLIN, 0);
    assert!(
        realtime() >= at - Duration::from_millis(1),
        "readable before the deadline"
    );
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(expect_one(&kq).data, 1);

    let (unit, data, at) = absolute_at(realtime() + Duration::from_millis(40));
    ch_ok(
        &kq,
        &[timer(2, EV_ADD | EV_ONESHOT, NOTE_ABSOLUTE | unit, data)],
    );
    let ev = wait_one(&kq);
    assert_eq!((ev.ident, ev.data), (2, 1));
    assert!(
        realtime() >= at - Duration::from_millis(1),
        "woke before the deadline"
    );
}

/// T8 abstime in the past (FB timer.c abstime_epoch / preboot): an absolute time already
/// past fires at once with data 1, and an EV_ONESHOT one is then gone.
fn t8_abstime_past(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    // In seconds where milliseconds since the epoch do not fit in `data` (32-bit targets).
    let past = realtime() - Duration::from_secs(10);
    let (unit, past) = match isize::try_from(past.as_millis()) {
        Ok(ms) => (0, ms),
        Err(_) => (NOTE_SECONDS, past.as_secs() as isize),
    };
    for (ident, data) in [(1, past), (2, 1)] {
        ch_ok(
            &kq,
            &[timer(
                ident,
                EV_ADD | EV_ONESHOT,
                NOTE_ABSOLUTE | unit,
                data,
            )],
        );
        let ev = wait_one(&kq);
        assert_eq!(
            (ev.ident, ev.filter, ev.data),
            (ident, EVFILT_TIMER, 1),
            "{ev:?}"
        );
        assert_ne!(ev.flags & EV_ONESHOT, 0);
        expect_no_events(&kq);
        ch_err(&kq, &[timer(ident, EV_DELETE, 0, 0)], libc::ENOENT);
    }
}

/// T5 timer_units (NB t_timer, scaled): 50 ms as milliseconds (the default), microseconds
/// and nanoseconds; none fires early, all fire. NOTE_SECONDS 1 does not fire within 60 ms.
fn t5_timer_units(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let start = Instant::now();
    ch_ok(
        &kq,
        &[
            timer(1, EV_ADD | EV_ONESHOT, 0, 50),
            timer(2, EV_ADD | EV_ONESHOT, NOTE_USECONDS, 50_000),
            timer(3, EV_ADD | EV_ONESHOT, NOTE_NSECONDS, 50_000_000),
            timer(4, EV_ADD | EV_ONESHOT, NOTE_SECONDS, 1),
        ],
    );
    let mut seen = Vec::new();
    while seen.len() < 3 && start.elapsed() < Duration::from_secs(30) {
        for ev in get(&kq, 4, Some(Duration::from_millis(100))) {
            let at = start.elapsed();
            if ev.ident == 4 {
                // Only possible on a very slow run; never before 1 s.
                assert!(
                    at >= Duration::from_millis(999),
                    "the 1 s timer fired after {at:?}"
                );
                continue;
            }
            assert!(
                at >= Duration::from_millis(48),
                "timer {} fired after {at:?}",
                ev.ident
            );
            assert_eq!(ev.data, 1, "{ev:?}");
            assert_timer(&ev, ev.ident, timer_flags(p, EV_ADD | EV_ONESHOT));
            seen.push(ev.ident);
        }
    }
    seen.sort();
    assert_eq!(seen, [1, 2, 3], "after {:?}", start.elapsed());
    if start.elapsed() < Duration::from_millis(900) {
        expect_no_events(&kq);
        ch_ok(&kq, &[timer(4, EV_DELETE, 0, 0)]);
    }
}

/// T6 modify (NB t_timer) / T9 update (FB timer.c), scaled: re-adding restarts the timer and
/// drops the pending count.
fn t6_modify(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    // Two expirations pending, then a re-add: nothing pending right after it, and the first
    // new expiry comes a full period after the re-add.
    ch_ok(&kq, &[timer(1, EV_ADD, 0, 50)]);
    sleep(Duration::from_millis(120));
    let readd = Instant::now();
    ch_ok(&kq, &[timer(1, EV_ADD, 0, 50)]);
    expect_no_events(&kq);
    let ev = wait_one(&kq);
    let waited = readd.elapsed();
    assert!(
        waited >= Duration::from_millis(48),
        "fired {waited:?} after the re-add"
    );
    assert_eq!(ev.data, 1, "{ev:?}");

    // The count restarts: 20 ms timer, 80 ms, re-add, 80 ms: about 4, not about 8.
    let period = Duration::from_millis(20);
    ch_ok(&kq, &[timer(2, EV_ADD, 0, 20)]);
    sleep(Duration::from_millis(80));
    let readd = Instant::now();
    ch_ok(&kq, &[timer(2, EV_ADD, 0, 20)]);
    sleep(Duration::from_millis(80));
    let ev = poll(&kq, 4)
        .into_iter()
        .find(|e| e.ident == 2)
        .expect("timer 2");
    let hi = periods(readd.elapsed(), period);
    assert!(
        (1..=hi).contains(&ev.data),
        "data {} not in 1..={hi}",
        ev.data
    );

    // A re-add with a new period uses it.
    ch_ok(&kq, &[timer(1, EV_DELETE, 0, 0), timer(2, EV_DELETE, 0, 0)]);
    ch_ok(&kq, &[timer(3, EV_ADD, 0, 100)]);
    let readd = Instant::now();
    ch_ok(&kq, &[timer(3, EV_ADD, 0, 10)]);
    let ev = wait_one(&kq);
    let waited = readd.elapsed();
    assert!(waited >= Duration::from_millis(9), "{waited:?}");
    assert!(ev.data >= 1);
    ch_ok(&kq, &[timer(3, EV_DELETE, 0, 0)]);
}

/// T6 (§5.4 [NB]): a re-add replaces the stored flags (plus the forced EV_CLEAR): a periodic
/// timer re-added with EV_ONESHOT fires once and is gone.
#[test]
fn t6_modify_replaces_flags_netbsd() {
    let _s = serial();
    let kq = kq(Personality::NetBsd);
    ch_ok(&kq, &[timer(1, EV_ADD, 0, 20)]);
    ch_ok(&kq, &[timer(1, EV_ADD | EV_ONESHOT, 0, 20)]);
    let ev = wait_one(&kq);
    assert_timer(&ev, 1, EV_ADD | EV_ONESHOT | EV_CLEAR);
    ch_err(&kq, &[timer(1, EV_DELETE, 0, 0)], libc::ENOENT);
}

/// T6 modify, stored flags (`Personality::timer_modify_keeps_flags`): a timer created with
/// EV_ADD|EV_RECEIPT, then modified by an EV_ADD without EV_RECEIPT. NetBSD replaces the
/// stored flags with the modifying change's, so the delivered record has EV_ADD|EV_CLEAR;
/// FreeBSD never rewrites them, so it still carries the EV_RECEIPT given at creation (and
/// not EV_ADD, which FreeBSD never stores).
fn t6_modify_stored_flags_receipt(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    // Creation: the receipt is the one report of the call.
    let mut evs = [sentinel(); 1];
    let add = timer(1, EV_ADD | EV_RECEIPT, 0, 500);
    assert_eq!(kq.kevent(&[add], &mut evs, None).unwrap(), 1);
    assert_report(&evs[0], 1, EVFILT_TIMER, 0);
    // Modification without EV_RECEIPT: no report, and a shorter interval.
    ch_ok(&kq, &[timer(1, EV_ADD, 0, 10)]);
    let ev = wait_one(&kq);
    let flags = match p {
        Personality::NetBsd => EV_ADD | EV_CLEAR,
        Personality::FreeBsd => EV_RECEIPT | EV_CLEAR,
        _ => unimplemented!("another personality"),
    };
    assert_timer(&ev, 1, flags);
    assert!(ev.data >= 1, "{ev:?}");
    ch_ok(&kq, &[timer(1, EV_DELETE, 0, 0)]);
}

/// T6 modify, stored flags: a timer created EV_ONESHOT, modified by an EV_ADD without it.
/// NetBSD: the timer is periodic from then on (flags EV_ADD|EV_CLEAR, fires again, still
/// there to delete). FreeBSD: it stays oneshot (flags EV_ONESHOT|EV_CLEAR, data 1, gone
/// after its one delivery).
fn t6_modify_stored_flags_oneshot_kept(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    ch_ok(&kq, &[timer(1, EV_ADD | EV_ONESHOT, 0, 500)]);
    ch_ok(&kq, &[timer(1, EV_ADD, 0, 10)]);
    let ev = wait_one(&kq);
    match p {
        Personality::NetBsd => {
            assert_timer(&ev, 1, EV_ADD | EV_CLEAR);
            let again = wait_one(&kq);
            assert_timer(&again, 1, EV_ADD | EV_CLEAR);
            ch_ok(&kq, &[timer(1, EV_DELETE, 0, 0)]);
        }
        Personality::FreeBsd => {
            assert_timer(&ev, 1, EV_ONESHOT | EV_CLEAR);
            assert_eq!(ev.data, 1, "{ev:?}");
            sleep(Duration::from_millis(30));
            expect_no_events(&kq);
            ch_err(&kq, &[timer(1, EV_DELETE, 0, 0)], libc::ENOENT);
        }
        _ => unimplemented!("another personality"),
    }
}

/// T6 modify, stored flags: a periodic timer modified by EV_ADD|EV_ONESHOT|EV_DISPATCH.
/// NetBSD: the change's flags are stored, so it fires once, reports them, and is gone.
/// FreeBSD: the change's flags are not stored, so it stays periodic and enabled (reports
/// EV_CLEAR only, fires again, still there to delete).
fn t6_modify_stored_flags_not_taken(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    ch_ok(&kq, &[timer(1, EV_ADD, 0, 500)]);
    ch_ok(&kq, &[timer(1, EV_ADD | EV_ONESHOT | EV_DISPATCH, 0, 10)]);
    let ev = wait_one(&kq);
    match p {
        Personality::NetBsd => {
            assert_timer(&ev, 1, EV_ADD | EV_ONESHOT | EV_DISPATCH | EV_CLEAR);
            assert_eq!(ev.data, 1, "{ev:?}");
            ch_err(&kq, &[timer(1, EV_DELETE, 0, 0)], libc::ENOENT);
        }
        Personality::FreeBsd => {
            assert_timer(&ev, 1, EV_CLEAR);
            let again = wait_one(&kq);
            assert_timer(&again, 1, EV_CLEAR);
            ch_ok(&kq, &[timer(1, EV_DELETE, 0, 0)]);
        }
        _ => unimplemented!("another personality"),
    }
}

/// T6 (§5.4): a modification without EV_ADD (EV_DISABLE, EV_ENABLE) does not touch the
/// timer: the count accumulated since the add is kept, the period goes on.
fn t6_modify_without_add_keeps_timer(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let period = Duration::from_millis(20);
    let before_add = Instant::now();
    ch_ok(&kq, &[timer(1, EV_ADD, 0, 20)]);
    let after_add = Instant::now();
    sleep(Duration::from_millis(70));
    ch_ok(&kq, &[timer(1, EV_ENABLE, 0, 0), timer(1, 0, 0, 0)]);
    let before_poll = Instant::now();
    let ev = expect_one(&kq);
    let lo = (periods(before_poll - after_add, period) - 1).max(1);
    let hi = periods(before_add.elapsed(), period);
    assert!(
        (lo..=hi).contains(&ev.data),
        "data {} not in {lo}..={hi}",
        ev.data
    );
    assert!(
        ev.data >= 2,
        "the EV_ENABLE change dropped the count: {ev:?}"
    );
    assert_timer(&ev, 1, timer_flags(p, EV_ADD));
}

/// T7 add/del (FB timer.c): a deleted timer never fires; a second delete is ENOENT.
fn t7_add_del(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    ch_ok(&kq, &[timer(1, EV_ADD, 0, 20)]);
    ch_ok(&kq, &[timer(1, EV_DELETE, 0, 0)]);
    sleep(Duration::from_millis(50));
    expect_no_events(&kq);
    ch_err(&kq, &[timer(1, EV_DELETE, 0, 0)], libc::ENOENT);
    // Deleting a fired, undelivered timer discards its record.
    ch_ok(&kq, &[timer(2, EV_ADD, 0, 5)]);
    sleep(Duration::from_millis(30));
    ch_ok(&kq, &[timer(2, EV_DELETE, 0, 0)]);
    expect_no_events(&kq);
}

/// T7 oneshot (FB timer.c): fires once with data 1, never again; the consumed knote is gone.
fn t7_oneshot(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let start = Instant::now();
    ch_ok(&kq, &[timer(1, EV_ADD | EV_ONESHOT, 0, 20)]);
    let ev = wait_one(&kq);
    assert!(
        start.elapsed() >= Duration::from_millis(19),
        "{:?}",
        start.elapsed()
    );
    assert_timer(&ev, 1, timer_flags(p, EV_ADD | EV_ONESHOT));
    assert_eq!(ev.data, 1);
    sleep(Duration::from_millis(50));
    expect_no_events(&kq);
    ch_err(&kq, &[timer(1, EV_DELETE, 0, 0)], libc::ENOENT);
}

/// T7 periodic (FB timer.c): a periodic timer keeps firing; each get reports at least one
/// expiration, and three gets take at least three periods.
fn t7_periodic(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let start = Instant::now();
    ch_ok(&kq, &[timer(1, EV_ADD, 0, 20)]);
    let mut total = 0;
    for _ in 0..3 {
        let ev = wait_one(&kq);
        assert_timer(&ev, 1, timer_flags(p, EV_ADD));
        assert!(ev.data >= 1, "{ev:?}");
        total += ev.data;
    }
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(59), "{elapsed:?}");
    assert!(
        total <= periods(elapsed, Duration::from_millis(20)),
        "{total} in {elapsed:?}"
    );
    ch_ok(&kq, &[timer(1, EV_DELETE, 0, 0)]);
}

/// T7 disable_and_enable (FB timer.c) / §5.4: a disabled timer keeps counting; EV_ENABLE
/// delivers the count.
fn t7_disable_keeps_counting(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let period = Duration::from_millis(20);
    let before_add = Instant::now();
    ch_ok(&kq, &[timer(1, EV_ADD, 0, 20)]);
    let after_add = Instant::now();
    ch_ok(&kq, &[timer(1, EV_DISABLE, 0, 0)]);
    sleep(Duration::from_millis(110));
    expect_no_events(&kq);
    let before_enable = Instant::now();
    ch_ok(&kq, &[timer(1, EV_ENABLE, 0, 0)]);
    let ev = expect_one(&kq);
    let hi = periods(before_add.elapsed(), period);
    let lo = (periods(before_enable - after_add, period) - 1).max(1);
    assert_timer(&ev, 1, timer_flags(p, EV_ADD));
    assert!(
        (lo..=hi).contains(&ev.data),
        "data {} not in {lo}..={hi}",
        ev.data
    );
    assert!(ev.data >= 3, "data {}", ev.data);
}

/// T7 (FB timer.c disable_and_enable): a disabled oneshot timer fires after EV_ENABLE.
fn t7_disabled_oneshot_fires_after_enable(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    ch_ok(&kq, &[timer(1, EV_ADD | EV_ONESHOT, 0, 20)]);
    ch_ok(&kq, &[timer(1, EV_DISABLE, 0, 0)]);
    sleep(Duration::from_millis(60));
    expect_no_events(&kq);
    ch_ok(&kq, &[timer(1, EV_ENABLE, 0, 0)]);
    let ev = expect_one(&kq);
    assert_timer(&ev, 1, timer_flags(p, EV_ADD | EV_ONESHOT));
    assert_eq!(ev.data, 1);
    ch_err(&kq, &[timer(1, EV_DELETE, 0, 0)], libc::ENOENT);
    // Also created disabled.
    ch_ok(&kq, &[timer(2, EV_ADD | EV_ONESHOT | EV_DISABLE, 0, 10)]);
    sleep(Duration::from_millis(40));
    expect_no_events(&kq);
    ch_ok(&kq, &[timer(2, EV_ENABLE, 0, 0)]);
    assert_eq!(expect_one(&kq).ident, 2);
}

/// T10: an unknown fflags bit, two unit bits, data 0 ([NB]) and negative data ([FB]) are
/// EINVAL, as a report when there is room.
fn t10_invalid(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let mut bad = vec![
        timer(1, EV_ADD, 0x40, 10),
        timer(1, EV_ADD, 0x8000_0000, 10),
        timer(1, EV_ADD, NOTE_SECONDS | NOTE_USECONDS, 10),
        timer(1, EV_ADD, NOTE_USECONDS | NOTE_NSECONDS, 10),
        timer(1, EV_ADD, NOTE_SECONDS | NOTE_NSECONDS | NOTE_ABSOLUTE, 10),
    ];
    match p {
        // §5.4 [NB]: data == 0 (relative) is EINVAL.
        Personality::NetBsd => bad.push(timer(1, EV_ADD, 0, 0)),
        // §5.4 [FB]: negative data is EINVAL.
        Personality::FreeBsd => bad.push(timer(1, EV_ADD, 0, -1)),
        _ => unimplemented!("another personality"),
    }
    for c in bad {
        ch_err(&kq, &[c], libc::EINVAL);
        let mut evs = [sentinel(); 1];
        assert_eq!(kq.kevent(&[c], &mut evs, None).unwrap(), 1, "{c:?}");
        assert_report(&evs[0], 1, EVFILT_TIMER, libc::EINVAL);
        // Nothing was created.
        ch_err(&kq, &[timer(1, EV_DELETE, 0, 0)], libc::ENOENT);
    }
}

/// T10 / §5.4 divergence (`Personality::timer_accepts_zero`): a relative timer with
/// negative data is EINVAL in both; with data 0, NetBSD says EINVAL while FreeBSD
/// (unchecked) accepts it and fires after the shortest interval.
fn t10_zero_and_negative_data(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    ch_err(&kq, &[timer(1, EV_ADD, 0, -5)], libc::EINVAL);
    match p {
        Personality::NetBsd => ch_err(&kq, &[timer(1, EV_ADD, 0, 0)], libc::EINVAL),
        Personality::FreeBsd => {
            ch_ok(&kq, &[timer(1, EV_ADD | EV_ONESHOT, 0, 0)]);
            assert_eq!(wait_one(&kq).data, 1);
        }
        _ => unimplemented!("another personality"),
    }
}

/// T10: the 4097th timer of the process is ENOMEM (`kq_calloutmax` = 4096, system-wide in
/// the kernel, process-wide here), across kqueues; deleting or closing frees slots, and a
/// modification of an existing timer is not a new one.
fn t10_limit_4096(p: Personality) {
    let _s = serial();
    let a = kq(p);
    let far = |i: usize| timer(i, EV_ADD, NOTE_SECONDS, 60);
    for chunk in (0..4096).collect::<Vec<_>>().chunks(512) {
        let changes: Vec<_> = chunk.iter().map(|&i| far(i)).collect();
        ch_ok(&a, &changes);
    }
    ch_err(&a, &[far(4096)], libc::ENOMEM);
    let mut evs = [sentinel(); 1];
    assert_eq!(a.kevent(&[far(4096)], &mut evs, None).unwrap(), 1);
    assert_report(&evs[0], 4096, EVFILT_TIMER, libc::ENOMEM);
    // A modification is not a new timer.
    ch_ok(&a, &[far(7)]);
    // The limit counts every kqueue of the process.
    let b = kq(p);
    ch_err(&b, &[far(1)], libc::ENOMEM);
    // Deleting one frees one slot.
    ch_ok(&a, &[timer(0, EV_DELETE, 0, 0)]);
    ch_ok(&b, &[far(1)]);
    ch_err(&a, &[far(0)], libc::ENOMEM);
    // Closing a kqueue frees its timers.
    drop(a);
    let changes: Vec<_> = (2..100).map(far).collect();
    ch_ok(&b, &changes);
    // User events are not timers.
    ch_ok(&b, &[user(1, EV_ADD, 0, 0)]);
}

/// G24 oneshot_udata (NB t_oneshot): a 1 ms EV_ONESHOT timer with udata 0xbeefcafe is
/// delivered with ident 1, data 1 and the udata intact.
fn g24_oneshot_udata(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let c = Kevent::new(1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 1, ptr(0xbeef_cafe));
    ch_ok(&kq, &[c]);
    let evs = get(&kq, 1, Some(Duration::from_secs(30)));
    assert_eq!(evs.len(), 1);
    assert_eq!(
        (evs[0].ident, evs[0].data, evs[0].udata),
        (1, 1, ptr(0xbeef_cafe)),
        "{:?}",
        evs[0]
    );
}

/// §2.4: udata is overwritten by every change, timers included; the EV_ENABLE's udata is
/// what the record carries ([FB]: unless EV_KEEPUDATA).
fn timer_udata_follows_changes(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    ch_ok(
        &kq,
        &[Kevent::new(
            1,
            EVFILT_TIMER,
            EV_ADD | EV_DISABLE,
            0,
            5,
            ptr(0x1),
        )],
    );
    sleep(Duration::from_millis(20));
    ch_ok(
        &kq,
        &[Kevent::new(1, EVFILT_TIMER, EV_ENABLE, 0, 0, ptr(0x2))],
    );
    assert_eq!(expect_one(&kq).udata, ptr(0x2));
}

/// Context switches of the library's timer thread so far (None if it is not running).
fn timer_thread_switches() -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        if std::fs::read_to_string(dir.join("comm")).ok()?.trim() == "kq-timers" {
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            return status
                .lines()
                .filter(|l| l.contains("ctxt_switches"))
                .map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
        }
    }
    None
}

/// §5.4 "data = expirations since the last delivery", with a fast periodic timer that
/// nobody reads for a while: every expiration is counted, and the library does not keep
/// waking up for a timer that is already pending (a 200 us timer left for 100 ms would
/// otherwise cost ~500 wakeups of its timer thread).
fn t3_pending_fast_timer_counts_without_waking(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let period = Duration::from_micros(200);
    let before_add = Instant::now();
    ch_ok(&kq, &[timer(1, EV_ADD, NOTE_USECONDS, 200)]);
    let after_add = Instant::now();
    sleep(Duration::from_millis(5)); // fired and pending by now
    let switches0 = timer_thread_switches().expect("the timer thread runs");
    sleep(Duration::from_millis(100));
    let switches1 = timer_thread_switches().expect("the timer thread runs");
    let before_read = Instant::now();
    let ev = expect_one(&kq);
    let hi = periods(before_add.elapsed(), period);
    let lo = periods(before_read - after_add, period);
    assert!(
        (lo..=hi).contains(&ev.data),
        "data {} not in {lo}..={hi}",
        ev.data
    );
    // Other tests' timers may wake the thread too (tests in this file run one at a time,
    // but the thread is shared): allow a few.
    assert!(
        switches1 - switches0 < 40,
        "the timer thread woke {} times for a pending timer",
        switches1 - switches0
    );
    // It goes on firing after the delivery.
    let ev = wait_one(&kq);
    assert!(ev.data >= 1);
}

both!(
    t1_zerotimer,
    t2_basic_timer,
    t3_count_expirations,
    t3_pending_fast_timer_counts_without_waking,
    t4_abstime,
    t4_abstime_wakes_pollers_and_sleepers,
    t8_abstime_past,
    t5_timer_units,
    t6_modify,
    t6_modify_without_add_keeps_timer,
    t6_modify_stored_flags_receipt,
    t6_modify_stored_flags_oneshot_kept,
    t6_modify_stored_flags_not_taken,
    t7_add_del,
    t7_oneshot,
    t7_periodic,
    t7_disable_keeps_counting,
    t7_disabled_oneshot_fires_after_enable,
    t10_invalid,
    t10_zero_and_negative_data,
    t10_limit_4096,
    g24_oneshot_udata,
    timer_udata_follows_changes,
);
