//! EVFILT_READ on an eventfd, whose `data` is the counter, against the raw Linux mechanism,
//! in the same run.
//!
//! - `eventfd_count`: one write of 1 to the eventfd, the event collected with its count,
//!   the counter read (emptied), and a look that finds nothing. kq: a level READ knote,
//!   `kevent()` with a zero timeout (the count comes from `/proc/self/fdinfo/N`, read
//!   without consuming it). Raw: the eventfd in an edge-triggered epoll, `epoll_wait` with a
//!   zero timeout, the count from the read that empties it (Linux has no other way to learn
//!   it without consuming it, short of fdinfo).
//! - `eventfd_fdinfo`: what the count costs alone: the fdinfo read (open, read, parse,
//!   close) against a `poll()` of the descriptor, which is all the look cost before.
//!
//! Run: `cargo bench -p kq --bench counter`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kq::{Kevent, Kqueue, EVFILT_READ, EV_ADD};
use rustix::event::epoll;
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use std::hint::black_box;
use std::io::Read;
use std::ptr::null_mut;
use std::time::Duration;

fn eventfd() -> OwnedFd {
    rustix::event::eventfd(
        0,
        rustix::event::EventfdFlags::NONBLOCK | rustix::event::EventfdFlags::CLOEXEC,
    )
    .expect("eventfd")
}

fn add(fd: &OwnedFd, n: u64) {
    rustix::io::write(fd, &n.to_ne_bytes()).expect("write");
}

fn take(fd: &OwnedFd) -> u64 {
    let mut b = [0u8; 8];
    rustix::io::read(fd, &mut b).expect("read");
    u64::from_ne_bytes(b)
}

fn kevent_now(kq: &Kqueue, ev: &mut [Kevent]) -> usize {
    kq.kevent(&[], ev, Some(Duration::ZERO)).expect("kevent")
}

fn eventfd_count(c: &mut Criterion) {
    let mut g = c.benchmark_group("eventfd_count");
    g.throughput(Throughput::Elements(1));
    let e = eventfd();

    let kq = Kqueue::new().expect("kqueue");
    let reg = Kevent::new(
        e.as_raw_fd() as usize,
        EVFILT_READ,
        EV_ADD,
        0,
        0,
        null_mut(),
    );
    kq.kevent(&[reg], &mut [], None).expect("EV_ADD");
    let mut ev = [Kevent::default(); 1];
    g.bench_function("kq", |bench| {
        bench.iter(|| {
            add(&e, 1);
            assert_eq!(kevent_now(&kq, &mut ev), 1);
            assert_eq!(ev[0].data, 1);
            black_box(take(&e));
            assert_eq!(kevent_now(&kq, &mut ev), 0);
        })
    });
    drop(kq);

    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
    epoll::add(
        &ep,
        e.as_fd(),
        epoll::EventData::new_u64(1),
        epoll::EventFlags::IN | epoll::EventFlags::ET,
    )
    .expect("epoll_ctl");
    let mut events = [epoll::Event {
        flags: epoll::EventFlags::empty(),
        data: epoll::EventData::new_u64(0),
    }; 4];
    let zero = zero_ts();
    g.bench_function("epoll", |bench| {
        bench.iter(|| {
            add(&e, 1);
            let n = epoll::wait(&ep, &mut events, Some(&zero)).expect("epoll_wait");
            assert_eq!(n, 1);
            assert_eq!(black_box(take(&e)), 1);
            let n = epoll::wait(&ep, &mut events, Some(&zero)).expect("epoll_wait");
            assert_eq!(n, 0);
        })
    });
    g.finish();
}

fn eventfd_fdinfo(c: &mut Criterion) {
    let mut g = c.benchmark_group("eventfd_fdinfo");
    g.throughput(Throughput::Elements(1));
    let e = eventfd();
    add(&e, 3);
    let path = format!("/proc/self/fdinfo/{}", e.as_raw_fd());
    let mut text = String::with_capacity(256);
    g.bench_function("fdinfo", |bench| {
        bench.iter(|| {
            text.clear();
            std::fs::File::open(&path)
                .and_then(|mut f| f.read_to_string(&mut text))
                .expect("fdinfo");
            black_box(text.lines().find(|l| l.starts_with("eventfd-count:")));
        })
    });
    g.bench_function("poll", |bench| {
        bench.iter(|| {
            let mut p = [rustix::event::PollFd::new(&e, rustix::event::PollFlags::IN)];
            black_box(rustix::event::poll(&mut p, Some(&zero_ts())).expect("poll"));
        })
    });
    g.finish();
}

fn zero_ts() -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = eventfd_count, eventfd_fdinfo
}
criterion_main!(benches);
