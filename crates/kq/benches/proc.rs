//! EVFILT_PROC against the raw Linux mechanism, in the same run.
//!
//! `child_exits`: 1,000 children, each blocked reading a pipe, are watched; they are let
//! go, and once every one of them has exited (a zombie) their exits are collected. The time
//! measured is the registration plus the collection (making, releasing and reaping the
//! children is not counted: it is the same work on both sides and would swamp the rest).
//! - kq: one kevent() with 1,000 EV_ADD NOTE_EXIT changes, then kevent() with 64 slots
//!   until 1,000 exit records (wait status in `data`) have come.
//! - raw: pidfd_open() and epoll_ctl(ADD) for each child, then epoll_wait(64) until 1,000
//!   descriptors were ready, with waitid(P_PIDFD, WEXITED|WNOWAIT) for the status and
//!   close() of the descriptor for each (what a program watching children through pidfds
//!   does, and what the library does for it).
//!
//! Run: `cargo bench -p kq --bench proc`, then `python3 crates/kq/benches/summary.py`.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use kq::{Kevent, Kqueue, EVFILT_PROC, EV_ADD, NOTE_EXIT};
use std::hint::black_box;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::null_mut;
use std::time::{Duration, Instant};

const CHILDREN: usize = 1000;

/// Children blocked reading a pipe until `release`.
struct Children {
    pids: Vec<i32>,
    gate: OwnedFd,
}

impl Children {
    fn spawn(n: usize) -> Children {
        let mut p = [0; 2];
        // SAFETY: pipe2 writes two descriptors into `p`.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: two new descriptors, owned from here on.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
        let rfd = r.as_raw_fd();
        let pids = (0..n)
            .map(|_| {
                // SAFETY: the child only reads, then _exits (async-signal-safe calls).
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0, "fork");
                if pid == 0 {
                    let mut b = 0u8;
                    // SAFETY: one byte into a live buffer; then the child ends.
                    unsafe {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        libc::read(rfd, (&mut b as *mut u8).cast(), 1);
                        libc::_exit(3);
                    }
                }
                pid
            })
            .collect();
        Children { pids, gate: w }
    }

    /// Lets every child exit and waits until each is a zombie.
    fn release(&self) {
        let bytes = vec![b'x'; self.pids.len()];
        let mut off = 0;
        while off < bytes.len() {
            // SAFETY: writes from a live buffer.
            let n = unsafe {
                libc::write(
                    self.gate.as_raw_fd(),
                    bytes[off..].as_ptr().cast(),
                    bytes.len() - off,
                )
            };
            assert!(n > 0);
            off += n as usize;
        }
        for &pid in &self.pids {
            // SAFETY: siginfo_t is plain data; waitid fills it (without reaping).
            let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let r = unsafe {
                libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut si,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            assert_eq!(r, 0);
        }
    }

    fn reap(self) {
        for pid in self.pids {
            // SAFETY: reaps our own child.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
    }
}

/// One round with kevent(): the time of the registration plus the collection.
fn kq_round() -> Duration {
    let kids = Children::spawn(CHILDREN);
    let kq = Kqueue::new().expect("kqueue");
    let changes: Vec<Kevent> = kids
        .pids
        .iter()
        .map(|&p| Kevent::new(p as usize, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, null_mut()))
        .collect();
    let t0 = Instant::now();
    kq.kevent(&changes, &mut [], None).expect("EV_ADD");
    let add = t0.elapsed();
    kids.release();
    let mut ev = [Kevent::default(); 64];
    let t1 = Instant::now();
    let mut got = 0;
    while got < CHILDREN {
        let n = kq.kevent(&[], &mut ev, None).expect("kevent");
        for e in &ev[..n] {
            black_box(e.data);
        }
        got += n;
    }
    let collect = t1.elapsed();
    drop(kq);
    kids.reap();
    add + collect
}

/// One round with pidfd_open + epoll + waitid(WNOWAIT).
fn raw_round() -> Duration {
    let kids = Children::spawn(CHILDREN);
    // SAFETY: epoll_create1 returns a new descriptor or -1.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0);
    let t0 = Instant::now();
    for &pid in &kids.pids {
        // SAFETY: pidfd_open takes integers and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
        assert!(fd >= 0, "pidfd_open");
        let mut e = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: registers a descriptor of ours with a live event.
        assert_eq!(
            unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut e) },
            0
        );
    }
    let add = t0.elapsed();
    kids.release();
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
    let t1 = Instant::now();
    let mut got = 0;
    while got < CHILDREN {
        // SAFETY: `events` has room for 64 entries.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), 64, -1) };
        assert!(n >= 0);
        for e in &events[..n as usize] {
            let fd = e.u64 as RawFd;
            // SAFETY: siginfo_t is plain data; waitid fills it without reaping.
            let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: as above; then the descriptor, ours, is closed (which also takes it
            // out of the epoll).
            unsafe {
                libc::waitid(
                    libc::P_PIDFD,
                    fd as libc::id_t,
                    &mut si,
                    libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
                );
                black_box(si.si_status());
                libc::close(fd);
            }
        }
        got += n as usize;
    }
    let collect = t1.elapsed();
    // SAFETY: closes our epoll.
    unsafe { libc::close(ep) };
    kids.reap();
    add + collect
}

fn child_exits(c: &mut Criterion) {
    let mut g = c.benchmark_group("child_exits");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(CHILDREN as u64));
    g.bench_function("kq", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| kq_round()).sum())
    });
    g.bench_function("raw_pidfd_epoll", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| raw_round()).sum())
    });
    g.finish();
}

criterion_group!(benches, child_exits);
criterion_main!(benches);
