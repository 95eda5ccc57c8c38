//! Plain level EVFILT_READ knotes (level-triggered epoll registrations once delivered),
//! each against the raw Linux loop in the same run, on one thread (no scheduler in the
//! figures):
//!
//! - `level_drain`: an AF_UNIX stream socket gets a byte, the loop takes the event, reads
//!   the byte, and looks once more, finding nothing (as an event loop that polls until
//!   empty does). kq: write, kevent() with a zero timeout (1 event), read, kevent() (0).
//!   Raw: the socket in an epoll (level-triggered); write, epoll_wait(0) (1 event),
//!   ioctl(FIONREAD) (what kevent() reports as `data`), read, epoll_wait(0) (0).
//! - `level_pending`: the byte is never read: the event is delivered again and again. kq:
//!   kevent() with a zero timeout. Raw: epoll_wait(0) and ioctl(FIONREAD).
//!
//! Both kq lines use a kqueue whose descriptor was exposed (`as_fd()`), as a C program's
//! is, so that its readability is kept exact. `KQ_NO_LEVEL=1` in the environment measures
//! the edge-triggered registrations instead.
//!
//! Run: `cargo bench -p kq --bench level`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kq::{Kevent, Kqueue, EVFILT_READ, EV_ADD};
use rustix::event::epoll;
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::ptr::null_mut;
use std::time::Duration;

/// A non-blocking AF_UNIX stream pair: (watched, peer).
fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("O_NONBLOCK");
    (a, b)
}

/// A kqueue, exposed, with a plain level EVFILT_READ knote on `fd`.
fn kq_on(fd: &impl AsRawFd) -> Kqueue {
    let kq = Kqueue::new().expect("kqueue");
    let _ = kq.as_fd();
    let add = Kevent::new(
        fd.as_raw_fd() as usize,
        EVFILT_READ,
        EV_ADD,
        0,
        0,
        null_mut(),
    );
    kq.kevent(&[add], &mut [], None)
        .expect("EV_ADD EVFILT_READ");
    kq
}

/// An epoll with `fd` registered level-triggered for input.
fn epoll_on(fd: &impl AsFd) -> OwnedFd {
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll_create1");
    epoll::add(&ep, fd, epoll::EventData::new_u64(1), epoll::EventFlags::IN)
        .expect("epoll_ctl(ADD)");
    ep
}

fn kevent_now(kq: &Kqueue, ev: &mut [Kevent; 1]) -> usize {
    kq.kevent(&[], ev, Some(Duration::ZERO))
        .expect("kevent(collect)")
}

fn epoll_now(ep: &OwnedFd) -> usize {
    let mut evs = [epoll::Event {
        flags: epoll::EventFlags::empty(),
        data: epoll::EventData::new_u64(0),
    }; 1];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    epoll::wait(ep, &mut evs, Some(&zero)).expect("epoll_wait")
}

fn fionread(fd: &impl AsFd) -> usize {
    rustix::io::ioctl_fionread(fd).expect("FIONREAD") as usize
}

fn level_drain(c: &mut Criterion) {
    let mut g = c.benchmark_group("level_drain");
    g.throughput(Throughput::Elements(1));
    let mut byte = [0u8; 1];

    let (mut a, mut b) = pair();
    let kq = kq_on(&a);
    let mut ev = [Kevent::default(); 1];
    g.bench_function("kq", |bench| {
        bench.iter(|| {
            b.write_all(b"x").expect("write");
            assert_eq!(kevent_now(&kq, &mut ev), 1);
            black_box(ev[0].data);
            a.read_exact(&mut byte).expect("read");
            assert_eq!(kevent_now(&kq, &mut ev), 0);
        })
    });
    drop(kq);

    let ep = epoll_on(&a);
    g.bench_function("epoll", |bench| {
        bench.iter(|| {
            b.write_all(b"x").expect("write");
            assert_eq!(epoll_now(&ep), 1);
            black_box(fionread(&a));
            a.read_exact(&mut byte).expect("read");
            assert_eq!(epoll_now(&ep), 0);
        })
    });
    g.finish();
}

fn level_pending(c: &mut Criterion) {
    let mut g = c.benchmark_group("level_pending");
    g.throughput(Throughput::Elements(1));
    let (a, mut b) = pair();
    b.write_all(b"x").expect("write");

    let kq = kq_on(&a);
    let mut ev = [Kevent::default(); 1];
    g.bench_function("kq", |bench| {
        bench.iter(|| {
            assert_eq!(kevent_now(&kq, &mut ev), 1);
            black_box(ev[0].data);
        })
    });
    drop(kq);

    let ep = epoll_on(&a);
    g.bench_function("epoll", |bench| {
        bench.iter(|| {
            assert_eq!(epoll_now(&ep), 1);
            black_box(fionread(&a));
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
    targets = level_drain, level_pending
}
criterion_main!(benches);
