//! EVFILT_PROC when the process events connector loses events (docs/semantics.md §5.11,
//! cases P4 and P5 of §7.9): the connector's socket overflows while the library's thread
//! that reads it is held up, and Linux drops the events that do not fit. No NOTE_EXIT may
//! be lost then: the watched process's exit is still reported with its status, and so is
//! the exit of every child a tracking knote was made for; the knotes of tracked processes
//! get NOTE_TRACKERR (the forks that were lost made no knote). Also without a loss: a
//! knote asking for forks, added after the main thread of its process ended, still gets
//! the exit.
//!
//! Each test runs in a process of its own, this binary started again with
//! `KQ_PROC_CONNECTOR_RCVBUF=1` (the smallest receive buffer Linux gives: a few events).
//! The library's thread is held up by a filter of the test whose attach waits, in another
//! thread, with the kqueue's lock held: the thread's first post to that kqueue waits too.
//! Once the loss has been seen, the test gives the library's socket a large buffer again
//! (it finds it among the process's descriptors), so that no later overflow, made by the
//! other processes of the system, comes to the rescue of what is checked. Where the
//! connector cannot be had (no permission, another namespace, or `KQ_NO_PROC_CONNECTOR`)
//! the tests say so and skip themselves.

mod util;

use kq::filter::{register_filter, Context, Filter};
use kq::*;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use util::kq;

const RCVBUF: &str = "KQ_PROC_CONNECTOR_RCVBUF";

/// Runs test `name` of this binary again in a process of its own with the smallest
/// connector buffer; in that process, runs `body`.
fn small_buffer(name: &str, body: impl FnOnce()) {
    if std::env::var_os(RCVBUF).is_some() {
        body();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(RCVBUF, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{name} failed:\n{text}");
    assert!(text.contains("1 passed"), "{name} did not run:\n{text}");
}

/// Set while a [`Stall`] attach waits; the attach returns once `RELEASE` is set.
static STALLED: AtomicBool = AtomicBool::new(false);
static RELEASE: AtomicBool = AtomicBool::new(false);

/// A filter whose attach waits (up to 20 s) until `RELEASE`, with the kqueue's lock held.
struct Stall;

impl Filter for Stall {
    fn attach(&self, _kn: &mut Knote, _cx: &mut Context<'_>) -> Result<(), Errno> {
        STALLED.store(true, Ordering::SeqCst);
        let end = Instant::now() + Duration::from_secs(20);
        while !RELEASE.load(Ordering::SeqCst) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn event(&self, _kn: &mut Knote, _hint: i64, _cx: &mut Context<'_>) -> bool {
        false
    }
}

fn stall_filter() -> i16 {
    static NUMBER: OnceLock<i16> = OnceLock::new();
    *NUMBER.get_or_init(|| register_filter("PROC_LOST_STALL", Arc::new(Stall)).unwrap())
}

/// Holds `kq`'s lock in another thread until the returned closure is called (which waits
/// for the thread).
fn hold_lock(kq: &Arc<Kqueue>) -> impl FnOnce() {
    STALLED.store(false, Ordering::SeqCst);
    RELEASE.store(false, Ordering::SeqCst);
    let kq = Arc::clone(kq);
    let f = stall_filter();
    let t = std::thread::spawn(move || {
        let add = Kevent::new(1, f, EV_ADD, 0, 0, null_mut());
        kq.kevent(&[add], &mut [], None).unwrap();
    });
    while !STALLED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    move || {
        RELEASE.store(true, Ordering::SeqCst);
        t.join().unwrap();
    }
}

/// An integer socket option of `fd`, if it has it.
fn sockopt(fd: RawFd, opt: libc::c_int) -> Option<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are live and of the sizes given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(v)
}

/// Gives the library's connector socket, if it is open (no knote may want its events
/// any more), a large receive buffer (8 MiB, or what net.core.rmem_max allows).
fn enlarge_connector_buffer() {
    let numbers: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let Some(sock) = numbers.into_iter().find(|&n| {
        sockopt(n, libc::SO_DOMAIN) == Some(libc::AF_NETLINK)
            && sockopt(n, libc::SO_PROTOCOL) == Some(libc::NETLINK_CONNECTOR)
    }) else {
        return;
    };
    let size: libc::c_int = 8 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: `size` is a live c_int of the length given.
        let r = unsafe {
            libc::setsockopt(
                sock,
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            break;
        }
    }
}

/// Collects events until one on `pid` has NOTE_TRACKERR (events were lost), then
/// enlarges the connector's buffer. Returns the events.
fn until_loss_seen(kq: &Kqueue, pid: i32) -> Vec<Kevent> {
    let evs = collect_until(kq, |e| {
        e.iter()
            .any(|e| e.ident == pid as usize && e.fflags & NOTE_TRACKERR != 0)
    });
    enlarge_connector_buffer();
    evs
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut p = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `p`.
    assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: two new descriptors, owned from here on.
    unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) }
}

/// In a child: blocks until a byte (or end of file) arrives on `fd`.
fn child_wait(fd: RawFd) {
    let mut b = 0u8;
    // SAFETY: one byte into a live buffer.
    unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
}

fn send_byte(w: &OwnedFd) {
    // SAFETY: one byte from a live buffer.
    assert_eq!(
        unsafe { libc::write(w.as_raw_fd(), b"x".as_ptr().cast(), 1) },
        1
    );
}

/// Forks a child that runs `f` and exits with what it returns.
fn fork_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs `f` then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        let code = f();
        // SAFETY: ends the child without the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// In a child: makes `n` children, which wait for a byte on a pipe; then lets them all
/// exit and reaps them.
fn burst(n: usize) {
    let mut p = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `p`; the grandchildren read one byte and
    // exit; each is reaped.
    unsafe {
        libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC);
        let mut kids = Vec::with_capacity(n);
        for _ in 0..n {
            let c = libc::fork();
            if c == 0 {
                child_wait(p[0]);
                libc::_exit(0);
            }
            kids.push(c);
        }
        for _ in 0..n {
            libc::write(p[1], b"x".as_ptr().cast(), 1);
        }
        for c in kids {
            libc::waitpid(c, null_mut(), 0);
        }
    }
}

/// Waits until child `pid` has exited (without reaping it).
fn wait_exited(pid: i32) {
    // SAFETY: all zeroes is a valid siginfo_t; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; WNOWAIT leaves the child to be reaped.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(r, 0, "waitid: {}", io::Error::last_os_error());
}

fn reap(pid: i32) -> i32 {
    let mut st = 0;
    // SAFETY: `st` is a live int.
    assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
    st
}

const fn exited(code: i32) -> i32 {
    (code & 0xff) << 8
}

/// Collects events until `done` says so, or for 10 s.
fn collect_for(kq: &Kqueue, mut done: impl FnMut(&[Kevent]) -> bool) -> Vec<Kevent> {
    let end = Instant::now() + Duration::from_secs(10);
    let mut all = Vec::new();
    let mut ev = [Kevent::default(); 64];
    while !done(&all) && Instant::now() < end {
        let n = kq
            .kevent(&[], &mut ev, Some(Duration::from_millis(50)))
            .unwrap();
        all.extend_from_slice(&ev[..n]);
    }
    all
}

/// Collects events until `done` says so; fails after 10 s with what came.
fn collect_until(kq: &Kqueue, mut done: impl FnMut(&[Kevent]) -> bool) -> Vec<Kevent> {
    let all = collect_for(kq, &mut done);
    assert!(done(&all), "timed out after 10 s; events so far: {all:#?}");
    all
}

/// Adds a tracking knote on `pid`; `false` (the test skips) without the connector.
fn track(kq: &Kqueue, pid: i32, fflags: u32) -> bool {
    let add = Kevent::new(pid as usize, EVFILT_PROC, EV_ADD, fflags, 0, null_mut());
    match kq.kevent(&[add], &mut [], None) {
        Ok(_) => true,
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            println!("skipped: no process events connector");
            false
        }
        Err(e) => panic!("EV_ADD: {e}"),
    }
}

/// P4 (lost events): a tracked child makes 64 children while the library's thread is held
/// up, lets them exit, reaps them and exits with 5: events are lost (NOTE_TRACKERR), yet
/// its NOTE_EXIT comes with its status, every child with a NOTE_CHILD record has its exit
/// reported (NetBSD: a tracking knote per child, made from a fork event that came before
/// the loss although the child's exit event was lost), and the child can be reaped with
/// its status.
fn p4_lost_events_lose_no_exit(p: Personality) {
    let kq = Arc::new(kq(p));
    let (r, w) = pipe();
    let rfd = r.as_raw_fd();
    let pid = fork_child(|| {
        child_wait(rfd);
        burst(64);
        5
    });
    if !track(&kq, pid, NOTE_TRACK | NOTE_FORK | NOTE_EXIT) {
        send_byte(&w);
        reap(pid);
        return;
    }
    let release = hold_lock(&kq);
    send_byte(&w);
    wait_exited(pid);
    std::thread::sleep(Duration::from_millis(20));
    release();
    let mut evs = until_loss_seen(&kq, pid);
    let is_exit = |e: &Kevent| e.ident == pid as usize && e.fflags & NOTE_EXIT != 0;
    if !evs.iter().any(is_exit) {
        evs.extend(collect_until(&kq, |e| e.iter().any(is_exit)));
    }
    // Give the library's thread time to pass on what is left, then take everything.
    std::thread::sleep(Duration::from_millis(100));
    let mut more = [Kevent::default(); 64];
    loop {
        let n = kq.kevent(&[], &mut more, Some(Duration::ZERO)).unwrap();
        if n == 0 {
            break;
        }
        evs.extend_from_slice(&more[..n]);
    }
    let mine: Vec<&Kevent> = evs.iter().filter(|e| e.ident == pid as usize).collect();
    let exit = mine
        .iter()
        .find(|e| e.fflags & NOTE_EXIT != 0)
        .expect("exit");
    assert_eq!(exit.data, exited(5) as isize, "{p:?}: {exit:?}");
    assert!(exit.flags & EV_EOF != 0);
    if p == Personality::NetBsd {
        // Every child the library made a tracking knote for has its exit reported.
        let children: Vec<usize> = evs
            .iter()
            .filter(|e| e.fflags & NOTE_CHILD != 0 && e.ident != pid as usize)
            .map(|e| e.ident)
            .collect();
        let mut missing: Vec<usize> = children
            .iter()
            .copied()
            .filter(|c| {
                !evs.iter()
                    .any(|e| e.ident == *c && e.fflags & NOTE_EXIT != 0)
            })
            .collect();
        if !missing.is_empty() {
            // Late ones: wait for them (up to 10 s).
            let more = collect_for(&kq, |e| {
                missing
                    .iter()
                    .all(|c| e.iter().any(|e| e.ident == *c && e.fflags & NOTE_EXIT != 0))
            });
            missing.retain(|c| {
                !more
                    .iter()
                    .any(|e| e.ident == *c && e.fflags & NOTE_EXIT != 0)
            });
        }
        assert!(
            missing.is_empty(),
            "{p:?}: children tracked whose exit never came: {missing:?}"
        );
    }
    assert_eq!(reap(pid), exited(5));
}

/// P5 (lost events, main thread first): the watched child's main thread makes 64 children
/// while the library's thread is held up, then ends by itself (its exit event is among
/// those lost), while another thread of the child goes on; once the loss has been seen
/// (NOTE_TRACKERR), that thread ends the process with status 5: its NOTE_EXIT comes.
fn p5_lost_events_main_thread_exits_first(p: Personality) {
    let kq = Arc::new(kq(p));
    let (r, w) = pipe();
    let (r2, w2) = pipe();
    let (rfd, rfd2) = (r.as_raw_fd(), r2.as_raw_fd());
    let pid = fork_child(|| {
        std::thread::spawn(move || {
            child_wait(rfd2);
            // SAFETY: ends the whole process.
            unsafe { libc::_exit(5) };
        });
        child_wait(rfd);
        burst(64);
        // SAFETY: ends the main thread only; the other one goes on.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
        0
    });
    if !track(&kq, pid, NOTE_TRACK | NOTE_FORK | NOTE_EXIT) {
        send_byte(&w);
        send_byte(&w2);
        reap(pid);
        return;
    }
    let release = hold_lock(&kq);
    send_byte(&w);
    wait_zombie_leader(pid);
    std::thread::sleep(Duration::from_millis(20));
    release();
    let evs = until_loss_seen(&kq, pid);
    assert!(
        !evs.iter()
            .any(|e| e.ident == pid as usize && e.fflags & NOTE_EXIT != 0),
        "{p:?}: the exit before the process ended: {evs:#?}"
    );
    send_byte(&w2);
    let evs = collect_until(&kq, |e| {
        e.iter()
            .any(|e| e.ident == pid as usize && e.fflags & NOTE_EXIT != 0)
    });
    let exit = evs
        .iter()
        .find(|e| e.ident == pid as usize && e.fflags & NOTE_EXIT != 0)
        .unwrap();
    assert_eq!(exit.data, exited(5) as isize, "{p:?}: {exit:?}");
    assert_eq!(reap(pid), exited(5));
}

/// Waits until process `pid` is a zombie leader (its main thread has ended).
fn wait_zombie_leader(pid: i32) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = stat[stat.rfind(')').unwrap() + 2..].chars().next();
        if state == Some('Z') {
            return;
        }
        assert!(Instant::now() < end, "the main thread did not end: {stat}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// P5 (main thread first, no loss): a knote asking for forks is added on a child whose
/// main thread has already ended (the connector's exit event of the child is past) while
/// another thread goes on; when that thread ends the process with 7, the NOTE_EXIT comes,
/// with the status.
fn p5_fork_knote_after_main_thread_exit(p: Personality) {
    let kq = kq(p);
    let (r, w) = pipe();
    let rfd = r.as_raw_fd();
    let pid = fork_child(|| {
        std::thread::spawn(move || {
            child_wait(rfd);
            // SAFETY: ends the whole process.
            unsafe { libc::_exit(7) };
        });
        // SAFETY: ends the main thread only; the other one goes on.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
        0
    });
    wait_zombie_leader(pid);
    let add = Kevent::new(
        pid as usize,
        EVFILT_PROC,
        EV_ADD,
        NOTE_FORK | NOTE_EXIT,
        0,
        null_mut(),
    );
    match kq.kevent(&[add], &mut [], None) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            println!("skipped: no process events connector");
            send_byte(&w);
            reap(pid);
            return;
        }
        Err(e) => panic!("EV_ADD: {e}"),
    }
    send_byte(&w);
    let evs = collect_until(&kq, |e| e.iter().any(|e| e.fflags & NOTE_EXIT != 0));
    let exit = evs.iter().find(|e| e.fflags & NOTE_EXIT != 0).unwrap();
    assert_eq!(
        (exit.ident, exit.data),
        (pid as usize, exited(7) as isize),
        "{p:?}: {exit:?}"
    );
    assert_eq!(reap(pid), exited(7));
}

#[test]
fn p5_fork_knote_after_main_thread_exit_netbsd() {
    p5_fork_knote_after_main_thread_exit(Personality::NetBsd);
}

#[test]
fn p5_fork_knote_after_main_thread_exit_freebsd() {
    p5_fork_knote_after_main_thread_exit(Personality::FreeBsd);
}

macro_rules! small_buffer_both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn netbsd() {
                    super::small_buffer(concat!(stringify!($name), "::netbsd"), || {
                        super::$name(kq::Personality::NetBsd)
                    })
                }
                #[test]
                fn freebsd() {
                    super::small_buffer(concat!(stringify!($name), "::freebsd"), || {
                        super::$name(kq::Personality::FreeBsd)
                    })
                }
            }
        )*
    };
}

small_buffer_both!(
    p4_lost_events_lose_no_exit,
    p5_lost_events_main_thread_exits_first,
);
