//! Benchmarks of the kq engine, each against the raw Linux primitive in the same run
//! (issue 2 item 9).
//!
//! - `pingpong`: cross-thread round trip. kq: two kqueues with one EV_CLEAR user event
//!   each; thread A triggers B's event and blocks in kevent() (no timeout) for its own, B
//!   does the reverse. Raw: two eventfds, each in its own epoll; write, epoll_wait, read.
//!   Three placements of the two threads, because on a small machine the placement decides
//!   what is measured: `pingpong` (wherever the scheduler puts them), `pingpong_same_cpu`
//!   (both pinned to one CPU: each wakeup is a context switch) and `pingpong_two_cpus`
//!   (pinned to two CPUs: each wakeup wakes the other CPU from idle).
//! - `trigger_collect`: same thread. kq: a NOTE_TRIGGER change on an EV_CLEAR user event,
//!   then kevent() with a zero timeout that collects it (two calls; `kq_one_call` does both
//!   in one kevent()). Raw: eventfd write, epoll_wait(0), read.
//! - `add_user_events`: EV_ADD of user events into one fresh kqueue in chunks of 1024
//!   changes per kevent(). There is no raw Linux counterpart at one million (one eventfd
//!   per event stops under the 20,000 fd limit), so the group has three lines: kq at 1M
//!   (the target), kq and eventfd()+epoll_ctl(ADD) at 10,000 (the per-event cost of the
//!   raw primitive, which is what libkqueue pays), and 1M inserts into a hashbrown map of
//!   80-byte entries with the engine's hasher (the floor for any (ident, filter) index).
//!   Memory per knote is measured by `examples/knote_memory.rs`.
//!
//! Run: `cargo bench -p kq --bench kq` (add a name to filter, e.g. `-- pingpong`).

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use kq::{Kevent, Kqueue, EVFILT_USER, EV_ADD, EV_CLEAR, NOTE_TRIGGER};
use rustix::event::{epoll, eventfd, EventfdFlags};
use rustix::fd::OwnedFd;
use rustix::time::Timespec;
use std::hint::black_box;
use std::ptr::null_mut;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const IDENT: usize = 1;

fn add_clear(ident: usize) -> Kevent {
    Kevent::new(ident, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, null_mut())
}

fn trigger(ident: usize) -> Kevent {
    Kevent::new(ident, EVFILT_USER, 0, NOTE_TRIGGER, 0, null_mut())
}

/// A kqueue holding one EV_CLEAR user event, `IDENT`.
fn user_kqueue() -> Kqueue {
    let kq = Kqueue::new().expect("kqueue");
    kq.kevent(&[add_clear(IDENT)], &mut [], None)
        .expect("EV_ADD");
    kq
}

/// Triggers `IDENT` in `kq`.
fn kq_fire(kq: &Kqueue) {
    let n = kq
        .kevent(&[trigger(IDENT)], &mut [], None)
        .expect("trigger");
    debug_assert_eq!(n, 0);
}

/// Collects `IDENT` from `kq`, waiting up to `timeout`; panics unless it was delivered.
fn kq_collect(kq: &Kqueue, timeout: Option<Duration>) {
    let mut ev = [Kevent::default(); 1];
    let n = kq.kevent(&[], &mut ev, timeout).expect("kevent");
    assert!(n == 1 && ev[0].ident == IDENT, "lost event: n = {n}");
}

/// An eventfd registered (level-triggered, as event loops do) in its own epoll.
struct RawEvent {
    efd: OwnedFd,
    ep: OwnedFd,
}

impl RawEvent {
    fn new() -> RawEvent {
        let efd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).expect("eventfd");
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll_create");
        epoll::add(
            &ep,
            &efd,
            epoll::EventData::new_u64(IDENT as u64),
            epoll::EventFlags::IN,
        )
        .expect("epoll_ctl");
        RawEvent { efd, ep }
    }

    /// eventfd write.
    fn fire(&self) {
        rustix::io::write(&self.efd, &1u64.to_ne_bytes()).expect("eventfd write");
    }

    /// epoll_wait (forever, or zero timeout) then the eventfd read that resets it.
    fn collect(&self, zero: bool) {
        let zero_ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let mut evs = [epoll::Event {
            flags: epoll::EventFlags::empty(),
            data: epoll::EventData::new_u64(0),
        }; 1];
        let n = loop {
            match epoll::wait(&self.ep, &mut evs, zero.then_some(&zero_ts)) {
                Err(rustix::io::Errno::INTR) => continue,
                r => break r.expect("epoll_wait"),
            }
        };
        assert!(n == 1 && evs[0].data.u64() == IDENT as u64, "lost event");
        let mut buf = [0u8; 8];
        rustix::io::read(&self.efd, &mut buf).expect("eventfd read");
    }
}

/// Where the two threads of a ping-pong run.
#[derive(Clone, Copy)]
enum Placement {
    /// Wherever the scheduler puts them.
    Free,
    /// Both on the first CPU this process may use: wakeups are context switches.
    SameCpu,
    /// On the first two CPUs this process may use: every wakeup crosses CPUs.
    TwoCpus,
}

/// The CPUs this thread may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bit set that sched_getaffinity fills in.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid for writes of its size.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    assert_eq!(r, 0, "sched_getaffinity");
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Restricts the calling thread to `cpus`.
fn pin(cpus: &[usize]) {
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: `cpu` came from `allowed_cpus`, so it is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is valid for reads of its size.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    assert_eq!(r, 0, "sched_setaffinity");
}

/// Runs `iters` round trips: `ping` on this thread, `pong` on a helper thread started
/// before the clock starts, both placed as `placement` says. Each gets the number of round
/// trips.
fn round_trips<P, Q>(iters: u64, placement: Placement, ping: P, pong: Q) -> Duration
where
    P: FnOnce(u64),
    Q: FnOnce(u64) + Send + 'static,
{
    let all = allowed_cpus();
    let (mine, theirs) = match placement {
        Placement::Free => (None, None),
        Placement::SameCpu => (Some(all[0]), Some(all[0])),
        Placement::TwoCpus => (Some(all[0]), Some(all[1])),
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let helper = thread::spawn(move || {
        if let Some(cpu) = theirs {
            pin(&[cpu]);
        }
        ready_tx.send(()).unwrap();
        pong(iters)
    });
    if let Some(cpu) = mine {
        pin(&[cpu]);
    }
    ready_rx.recv().unwrap();
    let start = Instant::now();
    ping(iters);
    let elapsed = start.elapsed();
    helper.join().unwrap();
    pin(&all);
    elapsed
}

fn pingpong(c: &mut Criterion) {
    let mut placements = vec![
        ("pingpong", Placement::Free),
        ("pingpong_same_cpu", Placement::SameCpu),
    ];
    if allowed_cpus().len() >= 2 {
        placements.push(("pingpong_two_cpus", Placement::TwoCpus));
    }
    for (group, placement) in placements {
        pingpong_group(c, group, placement);
    }
}

fn pingpong_group(c: &mut Criterion, group: &str, placement: Placement) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));

    let a = Arc::new(user_kqueue());
    let b = Arc::new(user_kqueue());
    g.bench_function("kq", |bench| {
        bench.iter_custom(|iters| {
            let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
            round_trips(
                iters,
                placement,
                |n| {
                    for _ in 0..n {
                        kq_fire(&b);
                        kq_collect(&a, None);
                    }
                },
                move |n| {
                    for _ in 0..n {
                        kq_collect(&b2, None);
                        kq_fire(&a2);
                    }
                },
            )
        })
    });

    let a = Arc::new(RawEvent::new());
    let b = Arc::new(RawEvent::new());
    g.bench_function("eventfd_epoll", |bench| {
        bench.iter_custom(|iters| {
            let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
            round_trips(
                iters,
                placement,
                |n| {
                    for _ in 0..n {
                        b.fire();
                        a.collect(false);
                    }
                },
                move |n| {
                    for _ in 0..n {
                        b2.collect(false);
                        a2.fire();
                    }
                },
            )
        })
    });
    g.finish();
}

fn trigger_collect(c: &mut Criterion) {
    let mut g = c.benchmark_group("trigger_collect");
    g.throughput(Throughput::Elements(1));

    let kq = user_kqueue();
    g.bench_function("kq", |bench| {
        bench.iter(|| {
            kq_fire(black_box(&kq));
            kq_collect(black_box(&kq), Some(Duration::ZERO));
        })
    });
    g.bench_function("kq_one_call", |bench| {
        let mut ev = [Kevent::default(); 1];
        bench.iter(|| {
            let n = kq
                .kevent(&[trigger(IDENT)], &mut ev, Some(Duration::ZERO))
                .expect("kevent");
            assert!(n == 1 && ev[0].ident == IDENT, "lost event");
        })
    });

    let raw = RawEvent::new();
    g.bench_function("eventfd_epoll", |bench| {
        bench.iter(|| {
            black_box(&raw).fire();
            black_box(&raw).collect(true);
        })
    });
    g.finish();
}

const CHUNK: usize = 1024;

/// EV_ADD of idents `0..n` (EV_CLEAR user events) into `kq`, `CHUNK` changes per call.
fn add_user_events(kq: &Kqueue, n: usize) {
    let mut changes = Vec::with_capacity(CHUNK);
    let mut ident = 0;
    while ident < n {
        let end = (ident + CHUNK).min(n);
        changes.clear();
        changes.extend((ident..end).map(add_clear));
        kq.kevent(&changes, &mut [], None).expect("EV_ADD");
        ident = end;
    }
}

/// Times `iters` runs of `run` on a fresh value from `setup` each; the value is dropped
/// outside the clock.
fn timed_fresh<T, S: FnMut() -> T, R: FnMut(&mut T)>(
    iters: u64,
    mut setup: S,
    mut run: R,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut v = setup();
        let start = Instant::now();
        run(&mut v);
        total += start.elapsed();
        drop(black_box(v));
    }
    total
}

fn add_events(c: &mut Criterion) {
    let mut g = c.benchmark_group("add_user_events");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(6));

    for n in [1_000_000usize, 10_000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("kq", n), &n, |bench, &n| {
            bench.iter_custom(|iters| {
                timed_fresh(
                    iters,
                    || Kqueue::new().expect("kqueue"),
                    |kq| add_user_events(kq, n),
                )
            })
        });
    }

    // One eventfd per event plus epoll_ctl(ADD): what the raw primitive (and libkqueue)
    // costs per user event, at a size the fd limit allows.
    let n = 10_000usize;
    g.throughput(Throughput::Elements(n as u64));
    g.bench_with_input(BenchmarkId::new("eventfd_epoll_ctl", n), &n, |bench, &n| {
        bench.iter_custom(|iters| {
            timed_fresh(
                iters,
                || {
                    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll_create");
                    (ep, Vec::with_capacity(n))
                },
                |(ep, fds)| {
                    for i in 0..n {
                        let efd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
                            .expect("eventfd");
                        epoll::add(
                            &*ep,
                            &efd,
                            epoll::EventData::new_u64(i as u64),
                            epoll::EventFlags::IN,
                        )
                        .expect("epoll_ctl");
                        fds.push(efd);
                    }
                },
            )
        })
    });

    // The floor: inserting (ident, filter) -> 64-byte records into a hash map with the
    // engine's hasher, no locking, no kevent() decoding.
    let n = 1_000_000usize;
    g.throughput(Throughput::Elements(n as u64));
    g.bench_with_input(BenchmarkId::new("hashmap_floor", n), &n, |bench, &n| {
        bench.iter_custom(|iters| {
            timed_fresh(
                iters,
                hashbrown::HashMap::<(usize, i16), [u8; 64]>::new,
                |m| {
                    for i in 0..n {
                        m.insert((i, EVFILT_USER), [0u8; 64]);
                    }
                },
            )
        })
    });
    g.finish();
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
    targets = pingpong, trigger_collect, add_events
}
criterion_main!(benches);
