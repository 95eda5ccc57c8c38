//! Closing raw kqueue descriptors (as C's `kqueue()` hands them out, with close() reported
//! to the library as the C library's interposed close() does), against the raw Linux
//! mechanism, in the same run.
//!
//! - `kqueue_close/N`: a kqueue made and its number closed (`fdclose_begin`, close,
//!   `fdclose_end`), with N other descriptors open in the process. Closing a kqueue's last
//!   known number looks for copies of it the library was not told of (a dup made by
//!   `fcntl(F_DUPFD)`, by a system call, received over a socket): one listing of
//!   /proc/self/fd and a kcmp per descriptor, which grows with N. Raw: `epoll_create1` and
//!   `close`.
//! - `copy_close`: a copy of a kqueue number made through the library (`fddup`, as an
//!   interposed dup() does: recorded as one of the kqueue's numbers, with fork() kept out)
//!   and closed, the kqueue living on in its first number. Raw: `dup` and `close` of an
//!   epoll descriptor.
//!
//! Run: `cargo bench -p kq --bench close`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kq::{Kqueue, Personality};
use rustix::event::epoll;
use rustix::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::hint::black_box;
use std::time::Duration;

/// Closes `n` as an interposed close() does.
fn reported_close(n: RawFd) {
    let token = kq::fdclose_begin(n);
    // SAFETY: n is a descriptor this benchmark owns; it is closed once.
    drop(unsafe { OwnedFd::from_raw_fd(n) });
    kq::fdclose_end(n, token);
}

fn kqueue_close(c: &mut Criterion) {
    kq::set_close_hooked(true);
    let mut g = c.benchmark_group("kqueue_close");
    g.throughput(Throughput::Elements(1));
    let mut extra: Vec<OwnedFd> = Vec::new();
    for n in [0usize, 1000] {
        while extra.len() < n {
            extra.push(std::fs::File::open("/dev/null").expect("open").into());
        }
        g.bench_with_input(BenchmarkId::new("kq", n), &n, |b, _| {
            b.iter(|| {
                let fd = Kqueue::new_raw_fd(Personality::FreeBsd).expect("kqueue");
                reported_close(black_box(fd));
            })
        });
        g.bench_with_input(BenchmarkId::new("epoll", n), &n, |b, _| {
            b.iter(|| {
                let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
                drop(black_box(ep));
            })
        });
    }
    g.finish();
}

fn copy_close(c: &mut Criterion) {
    kq::set_close_hooked(true);
    let mut g = c.benchmark_group("copy_close");
    g.throughput(Throughput::Elements(1));
    let kq = Kqueue::new_raw_fd(Personality::FreeBsd).expect("kqueue");
    g.bench_function("kq", |b| {
        b.iter(|| {
            // SAFETY: dup of the kqueue number this benchmark owns.
            let d = kq::fddup(kq, || unsafe { libc::dup(kq) });
            assert!(d >= 0);
            reported_close(black_box(d));
        })
    });
    reported_close(kq);
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
    g.bench_function("epoll", |b| {
        b.iter(|| {
            // SAFETY: dup of a descriptor this benchmark owns.
            let d = unsafe { libc::dup(ep.as_raw_fd()) };
            assert!(d >= 0);
            // SAFETY: d was just made.
            drop(black_box(unsafe { OwnedFd::from_raw_fd(d) }));
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
    targets = kqueue_close, copy_close
}
criterion_main!(benches);
