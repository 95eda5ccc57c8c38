//! The lifetime of a kqueue with a knote, made, used once and closed, against the raw Linux
//! objects it stands on, in the same run: what a close that detaches every knote itself
//! (and a Rust drop that always closes, then frees) costs.
//!
//! - `cycle_user`: kq: `Kqueue::new`, EV_ADD of a user event, its trigger, the event
//!   collected, the drop. Raw: an epoll and an eventfd made, the eventfd added to the
//!   epoll, written, the epoll waited on with a zero timeout, both closed.
//! - `cycle_timer`: the same with a timer (1 h) added beside the user event. Raw: a timerfd
//!   made, armed and added to the epoll too, and closed.
//! - `cycle_raw_number`: a kqueue handed out as a number (C's `kqueue()`), a user event
//!   added and triggered, collected, the number closed as the C library's close() does
//!   (`fdclose_begin`, close, `fdclose_end`). Raw: as `cycle_user`, with a dup of the
//!   epoll (the program's number) closed as well.
//!
//! Run: `cargo bench -p kq --bench lifetime`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kq::{Kevent, Kqueue, Personality, EVFILT_TIMER, EVFILT_USER, EV_ADD, EV_CLEAR, NOTE_TRIGGER};
use rustix::event::epoll;
use rustix::fd::{AsFd, OwnedFd};
use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};
use std::hint::black_box;
use std::os::fd::{BorrowedFd, FromRawFd};
use std::ptr::null_mut;
use std::time::Duration;

fn eventfd() -> OwnedFd {
    rustix::event::eventfd(
        0,
        rustix::event::EventfdFlags::NONBLOCK | rustix::event::EventfdFlags::CLOEXEC,
    )
    .expect("eventfd")
}

fn user_add() -> Kevent {
    Kevent::new(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, null_mut())
}

fn user_trigger() -> Kevent {
    Kevent::new(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, null_mut())
}

fn timer_add() -> Kevent {
    Kevent::new(2, EVFILT_TIMER, EV_ADD, 0, 3_600_000, null_mut())
}

/// The raw cycle: epoll + eventfd (+ timerfd), one wait, everything closed. `dup`: the
/// epoll is duplicated (a program's number) and that closed too.
fn raw_cycle(timer: bool, dup: bool) {
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
    let e = eventfd();
    epoll::add(
        &ep,
        e.as_fd(),
        epoll::EventData::new_u64(1),
        epoll::EventFlags::IN | epoll::EventFlags::ET,
    )
    .expect("epoll_ctl");
    let t = timer.then(|| {
        let t = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
        )
        .expect("timerfd");
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: 3600,
                tv_nsec: 0,
            },
        };
        timerfd_settime(&t, TimerfdTimerFlags::empty(), &spec).expect("timerfd_settime");
        epoll::add(
            &ep,
            t.as_fd(),
            epoll::EventData::new_u64(2),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )
        .expect("epoll_ctl");
        t
    });
    let copy = dup.then(|| rustix::io::fcntl_dupfd_cloexec(&ep, 0).expect("dup"));
    rustix::io::write(&e, &1u64.to_ne_bytes()).expect("write");
    let mut events = [epoll::Event {
        flags: epoll::EventFlags::empty(),
        data: epoll::EventData::new_u64(0),
    }; 4];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let n = epoll::wait(&ep, &mut events, Some(&zero)).expect("epoll_wait");
    assert_eq!(n, 1);
    black_box(&events);
    drop((copy, t, e, ep));
}

fn cycle_user(c: &mut Criterion) {
    let mut g = c.benchmark_group("cycle_user");
    g.throughput(Throughput::Elements(1));
    let mut ev = [Kevent::default(); 2];
    g.bench_function("kq", |b| {
        b.iter(|| {
            let kq = Kqueue::new().expect("kqueue");
            kq.kevent(&[user_add(), user_trigger()], &mut [], None)
                .expect("kevent");
            assert_eq!(
                kq.kevent(&[], &mut ev, Some(Duration::ZERO))
                    .expect("kevent"),
                1
            );
            drop(kq);
        })
    });
    g.bench_function("raw", |b| b.iter(|| raw_cycle(false, false)));
    g.finish();
}

fn cycle_timer(c: &mut Criterion) {
    let mut g = c.benchmark_group("cycle_timer");
    g.throughput(Throughput::Elements(1));
    let mut ev = [Kevent::default(); 2];
    g.bench_function("kq", |b| {
        b.iter(|| {
            let kq = Kqueue::new().expect("kqueue");
            kq.kevent(&[user_add(), timer_add(), user_trigger()], &mut [], None)
                .expect("kevent");
            assert_eq!(
                kq.kevent(&[], &mut ev, Some(Duration::ZERO))
                    .expect("kevent"),
                1
            );
            drop(kq);
        })
    });
    g.bench_function("raw", |b| b.iter(|| raw_cycle(true, false)));
    g.finish();
}

fn cycle_raw_number(c: &mut Criterion) {
    let mut g = c.benchmark_group("cycle_raw_number");
    g.throughput(Throughput::Elements(1));
    let mut ev = [Kevent::default(); 2];
    g.bench_function("kq", |b| {
        b.iter(|| {
            let n = Kqueue::new_raw_fd(Personality::FreeBsd).expect("kqueue");
            {
                // SAFETY: `n` is open until the close below, after the borrow ends.
                let kq = Kqueue::find(unsafe { BorrowedFd::borrow_raw(n) }).expect("find");
                kq.kevent(&[user_add(), user_trigger()], &mut [], None)
                    .expect("kevent");
                assert_eq!(
                    kq.kevent(&[], &mut ev, Some(Duration::ZERO))
                        .expect("kevent"),
                    1
                );
            }
            let token = kq::fdclose_begin(n);
            // SAFETY: the number made above, closed once.
            drop(unsafe { OwnedFd::from_raw_fd(n) });
            kq::fdclose_end(n, token);
        })
    });
    g.bench_function("raw", |b| b.iter(|| raw_cycle(false, true)));
    g.finish();
}

criterion_group!(benches, cycle_user, cycle_timer, cycle_raw_number);
criterion_main!(benches);
