//! Benchmarks of the kq engine, each against the raw Linux primitive in the same run.
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
//!   in one kevent()). `kq` runs on a kqueue whose descriptor was never asked for,
//!   `kq_fd_exposed` on one whose descriptor was taken once with `AsFd::as_fd()` (as a
//!   program that nests the kqueue in another event loop does). Raw: eventfd write,
//!   epoll_wait(0), read.
//! - `add_user_events`: EV_ADD of user events into one fresh kqueue in chunks of 1024
//!   changes per kevent(). There is no raw Linux counterpart at one million (one eventfd
//!   per event stops under the 20,000 fd limit), so the group has three lines: kq at 1M
//!   (the target), kq and eventfd()+epoll_ctl(ADD) at 10,000 (the per-event cost of the
//!   raw primitive, which is what libkqueue pays), and 1M inserts into a hashbrown map of
//!   80-byte entries with the engine's hasher (the floor for any (ident, filter) index).
//!   Memory per knote is measured by `examples/knote_memory.rs`.
//! - `idle_descriptors`: 10,000 descriptors (both ends of 5,000 socketpairs; fewer if the
//!   RLIMIT_NOFILE hard limit is lower, the count is the benchmark's parameter), one of
//!   them with a byte unread. kq: EVFILT_READ (level-triggered) on each, kevent() with 64
//!   slots and a zero timeout returns the ready one with its byte count. Raw: the same
//!   descriptors in one epoll, epoll_wait(64, 0) (`epoll_wait`), and the same followed by
//!   ioctl(FIONREAD) on the ready descriptor (`epoll_wait_fionread`, the like-for-like:
//!   kevent() reports the byte count).
//! - `add_delete_descriptors`: the same descriptors. kq: one kevent() with an EV_ADD
//!   EVFILT_READ change for each, then one with an EV_DELETE for each. Raw: epoll_ctl(ADD)
//!   for each, then epoll_ctl(DEL) for each. Throughput is per descriptor.
//! - `tcp_echo`: TCP round trip over loopback. The client (the measuring thread) writes 64
//!   bytes and waits for them in a blocking read; the server thread's loop waits for the
//!   connection to be readable, reads and writes back. kq: the server waits in kevent() on
//!   an EVFILT_READ knote. Raw: it waits in epoll_wait().
//!
//! The descriptor benchmarks need EVFILT_READ on sockets; where the engine refuses EV_ADD
//! of it, their kq lines are skipped with a message and the raw lines still run.
//!
//! Criterion measures the lines of a group one after the other in the same run, not
//! interleaved; `benches/c/bench.c` interleaves its rounds, through the C library.
//!
//! Run: `cargo bench -p kq --bench kq` (add a name to filter, e.g. `-- pingpong`), then
//! `python3 crates/kq/benches/summary.py` for the ratios.

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use kq::{Kevent, Kqueue, EVFILT_READ, EVFILT_USER, EV_ADD, EV_CLEAR, EV_DELETE, NOTE_TRIGGER};
use rustix::event::{epoll, eventfd, EventfdFlags};
use rustix::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use rustix::time::Timespec;
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
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

    // The same on a kqueue whose descriptor a program has asked for once.
    let exposed = user_kqueue();
    black_box(exposed.as_fd());
    g.bench_function("kq_fd_exposed", |bench| {
        bench.iter(|| {
            kq_fire(black_box(&exposed));
            kq_collect(black_box(&exposed), Some(Duration::ZERO));
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

/// At most this many descriptors for the descriptor benchmarks.
const DESCRIPTORS: usize = 10_000;
/// Descriptors left for everything else in the process.
const FD_RESERVE: libc::rlim_t = 256;

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns (soft limit in force, hard).
fn raise_nofile() -> (libc::rlim_t, libc::rlim_t) {
    // SAFETY: an all-zero rlimit is a valid value for getrlimit to overwrite.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `rl` is valid for writes.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    assert_eq!(r, 0, "getrlimit(RLIMIT_NOFILE)");
    if rl.rlim_cur < rl.rlim_max {
        let want = libc::rlimit {
            rlim_cur: rl.rlim_max,
            rlim_max: rl.rlim_max,
        };
        // SAFETY: `want` is valid for reads.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            rl = want;
        }
    }
    (rl.rlim_cur, rl.rlim_max)
}

/// Both ends of socketpairs, all idle except `ends[1]`, which has one byte unread.
struct Descriptors {
    /// The socketpair ends, in pairs.
    ends: Vec<UnixStream>,
}

impl Descriptors {
    /// Up to `DESCRIPTORS` descriptors, fewer if RLIMIT_NOFILE's hard limit is too low.
    fn new() -> Descriptors {
        let (soft, hard) = raise_nofile();
        let n = (soft
            .saturating_sub(FD_RESERVE)
            .min(DESCRIPTORS as libc::rlim_t) as usize)
            & !1;
        assert!(
            n >= 2,
            "RLIMIT_NOFILE is too low for the descriptor benchmarks"
        );
        let mut ends = Vec::with_capacity(n);
        for _ in 0..n / 2 {
            let (a, b) = UnixStream::pair().expect("socketpair");
            ends.push(a);
            ends.push(b);
        }
        (&ends[0]).write_all(b"x").expect("write to a socketpair");
        println!(
            "descriptors: {n} (both ends of {} socketpairs; RLIMIT_NOFILE {soft}, hard {hard}){}",
            n / 2,
            if n < DESCRIPTORS {
                ", fewer than 10,000: the hard limit is too low"
            } else {
                ""
            }
        );
        Descriptors { ends }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.ends.iter().map(|s| s.as_raw_fd())
    }

    /// The descriptor with a byte to read.
    fn ready(&self) -> RawFd {
        self.ends[1].as_raw_fd()
    }
}

fn read_change(fd: RawFd, flags: u16) -> Kevent {
    Kevent::new(fd as usize, EVFILT_READ, flags, 0, 0, null_mut())
}

/// EV_ADD of EVFILT_READ (level-triggered) for every descriptor of `fds`, in one kevent().
fn kq_add_reads(kq: &Kqueue, fds: impl Iterator<Item = RawFd>) -> std::io::Result<()> {
    let changes: Vec<Kevent> = fds.map(|fd| read_change(fd, EV_ADD)).collect();
    kq.kevent(&changes, &mut [], None).map(drop)
}

/// Says that the kq line of `what` is skipped because EV_ADD failed with `e`.
fn skipped(what: &str, e: &std::io::Error) {
    println!("{what}/kq skipped: EV_ADD of EVFILT_READ on a socket failed: {e}");
}

/// An epoll holding `fds` (EPOLLIN, level-triggered), each with its number as data.
fn epoll_with(fds: impl Iterator<Item = RawFd>) -> OwnedFd {
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll_create");
    for fd in fds {
        epoll_add(&ep, fd);
    }
    ep
}

fn borrow(fd: RawFd) -> rustix::fd::BorrowedFd<'static> {
    // SAFETY: every number passed here belongs to a descriptor that the benchmark keeps
    // open for as long as it uses the borrow.
    unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) }
}

fn epoll_add(ep: &OwnedFd, fd: RawFd) {
    epoll::add(
        ep,
        borrow(fd),
        epoll::EventData::new_u64(fd as u64),
        epoll::EventFlags::IN,
    )
    .expect("epoll_ctl(ADD)");
}

const ZERO_TS: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

fn no_epoll_events<const N: usize>() -> [epoll::Event; N] {
    [epoll::Event {
        flags: epoll::EventFlags::empty(),
        data: epoll::EventData::new_u64(0),
    }; N]
}

/// The bytes waiting on `fd` (ioctl FIONREAD).
fn fionread(fd: RawFd) -> i32 {
    let mut avail: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which is valid for writes.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut avail) };
    assert_eq!(r, 0, "ioctl(FIONREAD)");
    avail
}

fn descriptors(c: &mut Criterion) {
    let set = Descriptors::new();
    idle_descriptors(c, &set);
    add_delete_descriptors(c, &set);
}

fn idle_descriptors(c: &mut Criterion, set: &Descriptors) {
    let n = set.len();
    let ready = set.ready();
    let mut g = c.benchmark_group("idle_descriptors");
    g.throughput(Throughput::Elements(1));

    let kq = Kqueue::new().expect("kqueue");
    match kq_add_reads(&kq, set.fds()) {
        Err(e) => skipped("idle_descriptors", &e),
        Ok(()) => {
            let mut ev = [Kevent::default(); 64];
            let got = kq
                .kevent(&[], &mut ev, Some(Duration::ZERO))
                .expect("kevent");
            assert!(
                got == 1
                    && ev[0].ident == ready as usize
                    && ev[0].filter == EVFILT_READ
                    && ev[0].data == 1,
                "kevent() did not report the ready descriptor with data 1: {:?}",
                &ev[..got]
            );
            g.bench_with_input(BenchmarkId::new("kq", n), &n, |bench, _| {
                bench.iter(|| {
                    let got = kq
                        .kevent(&[], &mut ev, Some(Duration::ZERO))
                        .expect("kevent");
                    assert!(got == 1 && ev[0].ident == ready as usize, "lost event");
                })
            });
        }
    }

    let ep = epoll_with(set.fds());
    let mut evs = no_epoll_events::<64>();
    g.bench_with_input(BenchmarkId::new("epoll_wait", n), &n, |bench, _| {
        bench.iter(|| {
            let got = epoll::wait(&ep, &mut evs, Some(&ZERO_TS)).expect("epoll_wait");
            assert!(got == 1 && evs[0].data.u64() == ready as u64, "lost event");
        })
    });
    g.bench_with_input(
        BenchmarkId::new("epoll_wait_fionread", n),
        &n,
        |bench, _| {
            bench.iter(|| {
                let got = epoll::wait(&ep, &mut evs, Some(&ZERO_TS)).expect("epoll_wait");
                assert!(got == 1, "lost event");
                let avail = fionread(evs[0].data.u64() as RawFd);
                assert_eq!(avail, 1, "the byte is gone");
            })
        },
    );
    g.finish();
}

fn add_delete_descriptors(c: &mut Criterion, set: &Descriptors) {
    let n = set.len();
    let mut g = c.benchmark_group("add_delete_descriptors");
    g.throughput(Throughput::Elements(n as u64));
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);

    let adds: Vec<Kevent> = set.fds().map(|fd| read_change(fd, EV_ADD)).collect();
    let dels: Vec<Kevent> = set.fds().map(|fd| read_change(fd, EV_DELETE)).collect();
    let kq = Kqueue::new().expect("kqueue");
    match kq.kevent(&adds[..1], &mut [], None) {
        Err(e) => skipped("add_delete_descriptors", &e),
        Ok(_) => {
            kq.kevent(&dels[..1], &mut [], None).expect("EV_DELETE");
            g.bench_with_input(BenchmarkId::new("kq", n), &n, |bench, _| {
                bench.iter(|| {
                    kq.kevent(&adds, &mut [], None).expect("EV_ADD");
                    kq.kevent(&dels, &mut [], None).expect("EV_DELETE");
                })
            });
        }
    }

    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll_create");
    g.bench_with_input(BenchmarkId::new("epoll_ctl", n), &n, |bench, _| {
        bench.iter(|| {
            for fd in set.fds() {
                epoll_add(&ep, fd);
            }
            for fd in set.fds() {
                epoll::delete(&ep, borrow(fd)).expect("epoll_ctl(DEL)");
            }
        })
    });
    g.finish();
}

const ECHO_BYTES: usize = 64;
/// Untimed round trips before the clock starts.
const ECHO_WARMUP: u64 = 100;
/// A wait that should be answered at once fails after this long instead of hanging.
const WAIT_LIMIT: Duration = Duration::from_secs(5);

/// A connected loopback TCP pair: (client, blocking with a read timeout; server,
/// non-blocking).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1");
    let client = TcpStream::connect(listener.local_addr().expect("local_addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    for s in [&client, &server] {
        s.set_nodelay(true).expect("TCP_NODELAY");
    }
    client
        .set_read_timeout(Some(WAIT_LIMIT))
        .expect("SO_RCVTIMEO");
    server.set_nonblocking(true).expect("O_NONBLOCK");
    (client, server)
}

/// The server's half of a round: reads what is there and writes it back. False at end of
/// file.
fn echo_once(conn: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    match conn.read(&mut buf) {
        Ok(0) => false,
        Ok(n) => {
            conn.write_all(&buf[..n]).expect("echo server: write");
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => true,
        Err(e) => panic!("echo server: read: {e}"),
    }
}

/// The client's half: writes 64 bytes and reads them back.
fn echo_round(client: &mut TcpStream) {
    let out = [b'e'; ECHO_BYTES];
    let mut back = [0u8; ECHO_BYTES];
    client.write_all(&out).expect("echo client: write");
    client.read_exact(&mut back).expect("echo client: read");
}

/// Which loop the echo server runs.
#[derive(Clone, Copy)]
enum Server {
    Kq,
    Epoll,
}

/// Times `iters` round trips against a server thread running `server`'s loop.
fn echo_run(iters: u64, server: Server) -> Duration {
    let (mut client, mut conn) = tcp_pair();
    let fd = conn.as_raw_fd();
    let helper = match server {
        Server::Kq => {
            let kq = Kqueue::new().expect("kqueue");
            kq_add_reads(&kq, std::iter::once(fd)).expect("EV_ADD EVFILT_READ");
            thread::spawn(move || {
                let mut ev = [Kevent::default(); 1];
                loop {
                    let n = match kq.kevent(&[], &mut ev, Some(WAIT_LIMIT)) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        r => r.expect("echo server: kevent"),
                    };
                    assert!(n == 1, "echo server: no event from kevent() in 5 s");
                    if !echo_once(&mut conn) {
                        return;
                    }
                }
            })
        }
        Server::Epoll => {
            let ep = epoll_with(std::iter::once(fd));
            thread::spawn(move || {
                let mut evs = no_epoll_events::<1>();
                let limit = Timespec {
                    tv_sec: WAIT_LIMIT.as_secs() as i64,
                    tv_nsec: 0,
                };
                loop {
                    let n = match epoll::wait(&ep, &mut evs, Some(&limit)) {
                        Err(rustix::io::Errno::INTR) => continue,
                        r => r.expect("echo server: epoll_wait"),
                    };
                    assert!(n == 1, "echo server: no event from epoll_wait() in 5 s");
                    if !echo_once(&mut conn) {
                        return;
                    }
                }
            })
        }
    };
    for _ in 0..ECHO_WARMUP {
        echo_round(&mut client);
    }
    let start = Instant::now();
    for _ in 0..iters {
        echo_round(&mut client);
    }
    let elapsed = start.elapsed();
    drop(client); // the server sees end of file and returns
    helper.join().expect("echo server panicked");
    elapsed
}

fn tcp_echo(c: &mut Criterion) {
    let mut g = c.benchmark_group("tcp_echo");
    g.throughput(Throughput::Elements(1));

    let (_client, server) = tcp_pair();
    let kq = Kqueue::new().expect("kqueue");
    match kq_add_reads(&kq, std::iter::once(server.as_raw_fd())) {
        Err(e) => skipped("tcp_echo", &e),
        Ok(()) => {
            g.bench_function("kq", |bench| {
                bench.iter_custom(|iters| echo_run(iters, Server::Kq))
            });
        }
    }
    drop(kq);
    g.bench_function("epoll", |bench| {
        bench.iter_custom(|iters| echo_run(iters, Server::Epoll))
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
    targets = pingpong, trigger_collect, add_events, descriptors, tcp_echo
}
criterion_main!(benches);
