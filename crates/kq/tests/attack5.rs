//! Attacks on "closing a kqueue detaches its knotes at once": close() of a kqueue number
//! (the C library's interposed close: `fdclose_begin`, the close, `fdclose_end`) and the
//! drop of a Rust `Kqueue` detach every knote of the kqueue before they return, whatever
//! else is going on with the kqueue at that moment: threads blocked in `kevent()` on it or
//! applying change lists that add knotes of every filter, a `Waker`, the process monitor
//! posting NOTE_TRACK forks and exits, timers firing, signals arriving for EVFILT_SIGNAL
//! knotes, kqueues watching it, a filter hook or a change or event list of the call in
//! progress, a signal handler, fork() in another thread. Afterwards nothing is reported
//! for the kqueue, no thread hangs, and no descriptor of the library is left behind.
//!
//! Descriptor counts, signal actions and fork() are process-wide, so each test runs in a
//! process of its own (`isolated::in_child`). Deadlines only detect hangs.

#[macro_use]
mod isolated;

use kq::filter::{register_filter, Context, Filter};
use kq::*;
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The hang detector of every wait in these tests.
const HANG: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Descriptors.

/// The open descriptors of this process, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Census {
    total: usize,
    pidfd: usize,
    inotify: usize,
    timerfd: usize,
    eventpoll: usize,
    eventfd: usize,
    socket: usize,
}

fn census() -> Census {
    let mut c = Census::default();
    let dir = std::fs::read_dir("/proc/self/fd").unwrap();
    for e in dir.flatten() {
        let Ok(t) = std::fs::read_link(e.path()) else {
            continue; // the directory's own descriptor, closed meanwhile
        };
        let t = t.to_string_lossy().into_owned();
        if t.starts_with("/proc/") && t.ends_with("/fd") {
            continue; // the directory's own descriptor
        }
        c.total += 1;
        match t.as_str() {
            "anon_inode:[pidfd]" => c.pidfd += 1,
            "anon_inode:inotify" => c.inotify += 1,
            "anon_inode:[timerfd]" => c.timerfd += 1,
            "anon_inode:[eventpoll]" => c.eventpoll += 1,
            "anon_inode:[eventfd]" => c.eventfd += 1,
            s if s.starts_with("socket:") => c.socket += 1,
            _ => {}
        }
    }
    c
}

/// The descriptors now, once the process-wide ones a kqueue handed out as a number brings
/// (the background thread's, where close() is not reported to the library) exist.
fn baseline() -> Census {
    close_kq(raw_kq(Personality::NetBsd));
    census()
}

/// Waits (at most [`HANG`]) until the descriptors are those of `base` again: the kqueue's
/// own descriptors go with the last thread that held it, the process events connector with
/// the monitor thread's next turn.
#[track_caller]
fn settle(base: Census, what: &str) {
    let start = Instant::now();
    loop {
        let now = census();
        if now == base {
            return;
        }
        if start.elapsed() > HANG {
            panic!("{what}: descriptors {now:?}, before {base:?}");
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// The descriptors a close must release before it returns: process descriptors and
/// inotify instances (the kqueue's own epoll, eventfd and timerfds go with its last
/// holder).
#[track_caller]
fn released_at_once(base: Census, what: &str) {
    let now = census();
    assert_eq!(
        (now.pidfd, now.inotify),
        (base.pidfd, base.inotify),
        "{what}: knote descriptors left after the close returned: {now:?}, before {base:?}"
    );
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut p = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `p`.
    assert_eq!(
        unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) },
        0
    );
    // SAFETY: two new descriptors, owned from here on.
    unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) }
}

fn socketpair() -> (OwnedFd, OwnedFd) {
    let mut p = [0; 2];
    // SAFETY: socketpair writes two descriptors into `p`.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
            p.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0);
    // SAFETY: two new descriptors, owned from here on.
    unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) }
}

/// A file for EVFILT_VNODE (removed at once: the descriptor keeps it).
fn temp_file() -> OwnedFd {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "kq-attack5-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f.into()
}

// ---------------------------------------------------------------------------------------
// Processes.

/// Forks a child that sleeps until it is killed.
fn sleeping_child() -> i32 {
    // SAFETY: the child only calls prctl and pause (async-signal-safe) until it is killed.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            loop {
                libc::pause();
            }
        }
    }
    pid
}

/// Forks a child that forks short-lived children (which exit at once) until it is killed:
/// connector events for NOTE_TRACK.
fn forking_child() -> i32 {
    // SAFETY: the child only forks, waits, sleeps and exits (async-signal-safe).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            loop {
                let g = libc::fork();
                if g == 0 {
                    libc::_exit(0);
                }
                if g > 0 {
                    libc::waitpid(g, null_mut(), 0);
                }
                libc::usleep(300);
            }
        }
    }
    pid
}

fn kill_child(pid: i32) {
    // SAFETY: killing and reaping our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, null_mut(), 0);
    }
}

/// Starts the process monitor (its thread and wakeup eventfd live as long as the process)
/// with a NOTE_TRACK knote on `pid` that goes at once, and waits until its process events
/// connector is closed again.
fn warm_up_monitor(pid: i32) {
    let sockets = census().socket;
    let kq = Kqueue::new().unwrap();
    let _ = kq.kevent(
        &[ev(pid as usize, EVFILT_PROC, EV_ADD, NOTE_TRACK, 0)],
        &mut [],
        None,
    );
    drop(kq);
    let start = Instant::now();
    while census().socket != sockets {
        assert!(start.elapsed() < HANG, "the connector stays open");
        thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------------------
// Kqueues.

/// A kqueue handed out as a raw descriptor, as C's kqueue() makes it.
fn raw_kq(p: Personality) -> RawFd {
    Kqueue::new_raw_fd(p).unwrap()
}

/// The kqueue behind number `n`, held by the caller (a `KqueueRef` keeps the kqueue, not
/// the number, which it does not touch again after finding it).
fn hold(n: RawFd) -> io::Result<KqueueRef<'static>> {
    // SAFETY: the number is only looked up here; what the result uses afterwards is the
    // kqueue found, not the number.
    Kqueue::find(unsafe { BorrowedFd::borrow_raw(n) })
}

/// close() of a kqueue number as the C library's interposed close() makes it.
fn close_kq(n: RawFd) {
    let t = kq::fdclose_begin(n);
    // SAFETY: closes a number this test made and owns.
    assert_eq!(unsafe { libc::close(n) }, 0);
    kq::fdclose_end(n, t);
}

fn ev(ident: usize, filter: i16, flags: u16, fflags: u32, data: isize) -> Kevent {
    Kevent::new(ident, filter, flags, fflags, data, null_mut())
}

fn errno<T: std::fmt::Debug>(r: io::Result<T>) -> i32 {
    r.expect_err("the call should fail")
        .raw_os_error()
        .unwrap_or(0)
}

fn poll(kq: &Kqueue) -> io::Result<Vec<Kevent>> {
    let mut evs = [Kevent::default(); 16];
    let n = kq.kevent(&[], &mut evs, Some(Duration::ZERO))?;
    Ok(evs[..n].to_vec())
}

/// What knotes of every filter watch.
struct Objects {
    pipe_r: OwnedFd,
    pipe_w: OwnedFd,
    file: OwnedFd,
    sock: OwnedFd,
    _peer: OwnedFd,
    child: i32,
}

impl Objects {
    fn new() -> Objects {
        let (pipe_r, pipe_w) = pipe();
        let (sock, peer) = socketpair();
        Objects {
            pipe_r,
            pipe_w,
            file: temp_file(),
            sock,
            _peer: peer,
            child: sleeping_child(),
        }
    }

    /// EV_ADD changes of every filter (user events and timers numbered from `base`), with
    /// `flags` added.
    fn every_filter(&self, base: usize, flags: u16) -> Vec<Kevent> {
        let f = EV_ADD | flags;
        vec![
            ev(base, EVFILT_USER, f, NOTE_TRIGGER, 0),
            ev(base, EVFILT_TIMER, f, 0, 1),
            ev(self.pipe_r.as_raw_fd() as usize, EVFILT_READ, f, 0, 0),
            ev(self.pipe_w.as_raw_fd() as usize, EVFILT_WRITE, f, 0, 0),
            ev(
                self.file.as_raw_fd() as usize,
                EVFILT_VNODE,
                f,
                NOTE_WRITE | NOTE_ATTRIB | NOTE_EXTEND,
                0,
            ),
            ev(self.child as usize, EVFILT_PROC, f, NOTE_EXIT, 0),
            ev(libc::SIGURG as usize, EVFILT_SIGNAL, f, 0, 0),
            ev(self.sock.as_raw_fd() as usize, EVFILT_EMPTY, f, 0, 0),
            ev(0, EVFILT_FS, f, 0, 0),
        ]
    }

    /// [`Objects::every_filter`] in round `round` of many: EVFILT_VNODE every 100th round
    /// and EVFILT_FS every 50th only (the close of a kqueue's inotify instance waits for
    /// the kernel to free its watches, some milliseconds; the mount table takes long to
    /// read).
    fn every_filter_sometimes(&self, base: usize, round: usize) -> Vec<Kevent> {
        let mut changes = self.every_filter(base, 0);
        changes.retain(|c| {
            (c.filter != EVFILT_VNODE || round.is_multiple_of(100))
                && (c.filter != EVFILT_FS || round.is_multiple_of(50))
        });
        changes
    }

    /// Some activity on the objects: a byte through the pipe, a write to the file.
    fn stir(&self) {
        // SAFETY: one byte from a live buffer to descriptors we own.
        unsafe {
            libc::write(self.pipe_w.as_raw_fd(), b"x".as_ptr().cast(), 1);
            libc::pwrite(self.file.as_raw_fd(), b"x".as_ptr().cast(), 1, 0);
            let mut b = [0u8; 64];
            libc::read(self.pipe_r.as_raw_fd(), b.as_mut_ptr().cast(), b.len());
        }
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        kill_child(self.child);
    }
}

/// Runs `f` in a thread and waits for it at most [`HANG`]: a hang fails the test (the
/// thread is left behind).
#[track_caller]
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = thread::spawn(move || {
        let r = f();
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(HANG) {
        Ok(()) => t.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e),
        },
        Err(_) => panic!("{what}: still running after {HANG:?} (a hang)"),
    }
}

/// Raises the soft descriptor limit to the hard one.
fn raise_fd_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur = rl.rlim_max.min(64 * 1024);
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
    }
}

/// One round of knotes of every filter in a throwaway kqueue, so that the process-wide
/// descriptors (a signal's eventfd, the background thread's) exist before a baseline is
/// taken.
fn warm_up(p: Personality, objs: &Objects) {
    let kq = Kqueue::with_personality(p).unwrap();
    kq.kevent(&objs.every_filter(1, 0), &mut [], None).unwrap();
    drop(kq);
}

// ---------------------------------------------------------------------------------------
// G29 kq_close_wakes, U34 close_kq_removes: close() against threads blocked in kevent() and
// threads applying change lists that add knotes of every filter.

/// G29 kq_close_wakes, U34 close_kq_removes: 40 times, a kqueue (a raw number, as C's
/// kqueue() makes it) has three threads asleep in kevent() with no timeout and two
/// threads looping on kevent() calls whose change lists add (or delete) knotes of every
/// filter, then scan; the main thread closes the number. Every thread returns EBADF, the
/// process descriptors and inotify instances of the knotes are gone when close() returns
/// (while the threads still hold the kqueue), the SIGURG action is the program's again, and
/// once the threads are gone every descriptor the kqueue had is too.
fn g29_close_vs_sleepers_and_change_lists_of_every_filter(p: Personality) {
    let objs = Arc::new(Objects::new());
    warm_up(p, &objs);
    let base = baseline();
    for round in 0..40 {
        let n = raw_kq(p);
        let go = Arc::new(std::sync::Barrier::new(6));
        let mut threads = Vec::new();
        for _ in 0..3 {
            let kq = hold(n).unwrap();
            let go = Arc::clone(&go);
            threads.push(thread::spawn(move || {
                go.wait();
                let mut evs = [Kevent::default(); 4];
                loop {
                    match kq.kevent(&[], &mut evs, None) {
                        Ok(_) => continue,
                        Err(e) => return e.raw_os_error(),
                    }
                }
            }));
        }
        for t in 0..2usize {
            let kq = hold(n).unwrap();
            let go = Arc::clone(&go);
            let objs = Arc::clone(&objs);
            threads.push(thread::spawn(move || {
                go.wait();
                let mut evs = [Kevent::default(); 8];
                for i in 0usize.. {
                    let flags = if i % 3 == 2 { EV_DELETE } else { 0 };
                    let mut changes = objs.every_filter(100 + t, flags);
                    if flags == EV_DELETE {
                        for c in &mut changes {
                            c.flags = EV_DELETE;
                        }
                    }
                    // Errors of single changes (ENOENT of a delete) come back as entries.
                    if let Err(e) = kq.kevent(&changes, &mut evs, Some(Duration::ZERO)) {
                        return e.raw_os_error();
                    }
                    objs.stir();
                }
                None
            }));
        }
        go.wait();
        thread::sleep(Duration::from_millis(1 + round % 5));
        close_kq(n);
        released_at_once(base, &format!("{p:?} round {round}"));
        let action = kq::signal::action(libc::SIGURG).unwrap();
        assert_eq!(action.sa_sigaction, libc::SIG_DFL, "{p:?} round {round}");
        for t in threads {
            let r = within("a thread using the closed kqueue", move || {
                t.join().unwrap()
            });
            assert_eq!(r, Some(libc::EBADF), "{p:?} round {round}");
        }
        settle(base, &format!("{p:?} round {round}"));
    }
}

/// G29 kq_close_wakes for a Rust owner: the same, the kqueue's owner being dropped while
/// the threads use it through `Kqueue::find`.
fn g29_drop_vs_sleepers_and_change_lists_of_every_filter(p: Personality) {
    let objs = Arc::new(Objects::new());
    warm_up(p, &objs);
    let base = baseline();
    for round in 0..40 {
        let owner = Kqueue::with_personality(p).unwrap();
        let n = owner.as_raw_fd();
        let go = Arc::new(std::sync::Barrier::new(5));
        let mut threads = Vec::new();
        for t in 0..4usize {
            let kq = hold(n).unwrap();
            let go = Arc::clone(&go);
            let objs = Arc::clone(&objs);
            threads.push(thread::spawn(move || {
                go.wait();
                let mut evs = [Kevent::default(); 8];
                for i in 0usize.. {
                    let r = if t < 2 {
                        kq.kevent(&[], &mut evs, None)
                    } else {
                        let changes = objs.every_filter(200 + t + i % 2, 0);
                        kq.kevent(&changes, &mut evs, Some(Duration::ZERO))
                    };
                    if let Err(e) = r {
                        return e.raw_os_error();
                    }
                }
                None
            }));
        }
        go.wait();
        thread::sleep(Duration::from_millis(1 + round % 5));
        drop(owner);
        released_at_once(base, &format!("{p:?} round {round}"));
        for t in threads {
            let r = within("a thread using the dropped kqueue", move || {
                t.join().unwrap()
            });
            assert_eq!(r, Some(libc::EBADF), "{p:?} round {round}");
        }
        settle(base, &format!("{p:?} round {round}"));
    }
}

// ---------------------------------------------------------------------------------------
// U31 cross_thread_wakeup: the drop of the owner against a Waker.

/// U31 cross_thread_wakeup against a drop: 2,000 times, a thread wakes the kqueue through
/// a `Waker` as fast as it can while the owner drops it. The kqueue's process descriptor is
/// closed when the drop returns, even when the waker held the kqueue at that moment; the
/// waker then gets EBADF.
fn u31_drop_vs_waker_releases_at_once(p: Personality) {
    let child = sleeping_child();
    let base = baseline();
    for round in 0..2000 {
        let kq = Kqueue::with_personality(p).unwrap();
        kq.kevent(
            &[ev(child as usize, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0)],
            &mut [],
            None,
        )
        .unwrap();
        let waker = kq.waker(1).unwrap();
        let woke = Arc::new(AtomicBool::new(false));
        let w = Arc::clone(&woke);
        let t = thread::spawn(move || loop {
            match waker.wake() {
                Ok(()) => w.store(true, Ordering::Relaxed),
                Err(e) => return e.raw_os_error(),
            }
        });
        while !woke.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
        drop(kq);
        released_at_once(base, &format!("{p:?} round {round}"));
        assert_eq!(t.join().unwrap(), Some(libc::EBADF));
    }
    kill_child(child);
    settle(base, &format!("{p:?}"));
}

// ---------------------------------------------------------------------------------------
// U37 kq_readable_on_trigger: a kqueue watching one that is closed.

/// U37 kq_readable_on_trigger, then the watched kqueue's owner is dropped while another
/// thread holds it (a `KqueueRef` here; the process monitor, a `Waker` or a watching
/// kqueue's look in a program): the watching kqueue reports nothing more for it, level
/// knote or not, though the number stays open until the holder lets go.
fn u37_watcher_reports_nothing_for_a_dropped_kqueue(p: Personality) {
    for flags in [0, EV_CLEAR] {
        let inner = Kqueue::with_personality(p).unwrap();
        let n = inner.as_raw_fd();
        inner
            .kevent(
                &[
                    ev(1, EVFILT_USER, EV_ADD, 0, 0),
                    ev(1, EVFILT_USER, 0, NOTE_TRIGGER, 0),
                ],
                &mut [],
                None,
            )
            .unwrap();
        let outer = Kqueue::with_personality(p).unwrap();
        outer
            .kevent(
                &[ev(n as usize, EVFILT_READ, EV_ADD | flags, 0, 0)],
                &mut [],
                None,
            )
            .unwrap();
        let got = poll(&outer).unwrap();
        assert_eq!(got.len(), 1, "{p:?} {flags:#x}");
        assert_eq!((got[0].ident, got[0].data), (n as usize, 1));
        let held = hold(n).unwrap();
        drop(inner);
        assert_eq!(
            errno(held.kevent(&[], &mut [Kevent::default()], Some(Duration::ZERO))),
            libc::EBADF
        );
        assert_eq!(errno(held.trigger(1, 0)), libc::EBADF);
        for _ in 0..3 {
            let got = poll(&outer).unwrap();
            assert!(
                got.is_empty(),
                "{p:?} {flags:#x}: the watcher reported {got:?} for a dropped kqueue"
            );
            let mut evs = [Kevent::default(); 4];
            let r = outer
                .kevent(&[], &mut evs, Some(Duration::from_millis(5)))
                .unwrap();
            assert_eq!(r, 0, "{p:?} {flags:#x}: {:?}", &evs[..r]);
        }
        drop(held);
        assert!(poll(&outer).unwrap().is_empty());
    }
}

/// U37 kq_readable_on_trigger, then the watched kqueue's number is closed (as C closes
/// it) while another thread triggers it as fast as it can: once close() returned, the
/// watcher reports nothing for that number, and its knote is gone.
fn u37_watcher_reports_nothing_for_a_closed_kqueue(p: Personality) {
    for round in 0..200 {
        let n = raw_kq(p);
        let inner = hold(n).unwrap();
        inner
            .kevent(
                &[ev(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0)],
                &mut [],
                None,
            )
            .unwrap();
        let outer = Kqueue::with_personality(p).unwrap();
        outer
            .kevent(&[ev(n as usize, EVFILT_READ, EV_ADD, 0, 0)], &mut [], None)
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let t = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if inner.trigger(1, 0).is_err() {
                    break;
                }
            }
        });
        thread::sleep(Duration::from_micros(200));
        close_kq(n);
        // The number is free: nothing takes it meanwhile but what this thread opens.
        let got = poll(&outer).unwrap();
        assert!(
            got.is_empty(),
            "{p:?} round {round}: {got:?} after the close"
        );
        let mut evs = [Kevent::default(); 4];
        assert_eq!(
            outer
                .kevent(&[], &mut evs, Some(Duration::from_millis(2)))
                .unwrap(),
            0
        );
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        assert!(poll(&outer).unwrap().is_empty());
    }
}

// ---------------------------------------------------------------------------------------
// U35 fork_not_inherited.

/// The library's kinds of descriptor open in this process (a fork's child).
fn library_kinds_open() -> usize {
    let c = census();
    c.pidfd + c.inotify + c.timerfd + c.eventpoll + c.eventfd
}

/// Forks a child that exits with the number of library-kind descriptors it has.
fn child_library_fds() -> i32 {
    // SAFETY: the child lists its descriptors and exits; the allocator is usable after
    // fork (glibc resets its locks), and nothing else of the parent's is used.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let n = library_kinds_open();
        // SAFETY: ends the child without the parent's destructors.
        unsafe { libc::_exit(n.min(100) as c_int) };
    }
    let mut st = 0;
    // SAFETY: reaping our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
    assert!(libc::WIFEXITED(st), "child status {st:#x}");
    libc::WEXITSTATUS(st)
}

/// U35 fork_not_inherited: a kqueue closed (its owner dropped, or its number closed) while
/// another thread of the parent still holds it is not inherited by a child forked before
/// the holder lets go: neither its epoll nor its eventfd nor its timerfd. Nothing in the
/// child would ever close them (the holder is a thread the child does not have).
fn u35_fork_after_close_while_held_inherits_nothing(p: Personality) {
    assert_eq!(child_library_fds(), 0, "before any kqueue");
    // The Rust owner dropped.
    let owner = Kqueue::with_personality(p).unwrap();
    owner
        .kevent(&[ev(1, EVFILT_TIMER, EV_ADD, 0, 60_000)], &mut [], None)
        .unwrap();
    let held = hold(owner.as_raw_fd()).unwrap();
    drop(owner);
    assert_eq!(child_library_fds(), 0, "a dropped kqueue, still held");
    drop(held);
    // The number closed.
    let n = raw_kq(p);
    let held = hold(n).unwrap();
    held.kevent(&[ev(1, EVFILT_TIMER, EV_ADD, 0, 60_000)], &mut [], None)
        .unwrap();
    close_kq(n);
    assert_eq!(child_library_fds(), 0, "a closed kqueue, still held");
    drop(held);
}

/// U35 fork_not_inherited against close(): a thread makes kqueues (raw numbers, as C's
/// kqueue()) with knotes of every filter and closes them, over and over, while the main
/// thread forks 300 children: none has a descriptor of the library.
fn u35_fork_racing_close_inherits_nothing(p: Personality) {
    let objs = Arc::new(Objects::new());
    let stop = Arc::new(AtomicBool::new(false));
    let (o, s) = (Arc::clone(&objs), Arc::clone(&stop));
    let t = thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            let n = raw_kq(p);
            let kq = hold(n).unwrap();
            let _ = kq.kevent(&o.every_filter(1, 0), &mut [], None);
            drop(kq);
            close_kq(n);
        }
    });
    for i in 0..300 {
        assert_eq!(child_library_fds(), 0, "{p:?} child {i}");
    }
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
}

// ---------------------------------------------------------------------------------------
// Closing from inside callbacks.

/// The owners a [`CloseInHook`] knote drops (by its ident), and the numbers it closes.
fn owners() -> &'static Mutex<HashMap<usize, Kqueue>> {
    static OWNERS: OnceLock<Mutex<HashMap<usize, Kqueue>>> = OnceLock::new();
    OWNERS.get_or_init(Default::default)
}

/// A filter whose attach drops the owner stored under the knote's ident (fflags 0), or
/// closes the kqueue number in `sdata` (fflags 1), or raises SIGUSR2 in its own thread
/// (fflags 2); whose event hook drops the owner for the hint [`DROP_OWNER`].
struct CloseInHook;

impl Filter for CloseInHook {
    fn attach(&self, kn: &mut Knote, _cx: &mut Context<'_>) -> Result<(), Errno> {
        match kn.sfflags() {
            0 => drop(owners().lock().unwrap().remove(&kn.ident())),
            1 => close_kq(kn.sdata() as RawFd),
            2 => {
                // SAFETY: a signal to this very thread; its handler is the test's.
                unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR2) };
            }
            _ => {}
        }
        Ok(())
    }

    fn event(&self, kn: &mut Knote, hint: i64, _cx: &mut Context<'_>) -> bool {
        if hint == DROP_OWNER {
            drop(owners().lock().unwrap().remove(&kn.ident()));
        }
        false
    }
}

/// The hint a [`CloseInHook`] knote's event hook drops its owner for.
const DROP_OWNER: i64 = 99;

fn close_in_hook() -> i16 {
    static N: OnceLock<i16> = OnceLock::new();
    *N.get_or_init(|| register_filter("ATTACK5_CLOSE_IN_HOOK", Arc::new(CloseInHook)).unwrap())
}

/// G29 kq_close_wakes from a filter hook: a custom filter's attach hook drops the owner of
/// the kqueue the change is applied to (the call going through a `KqueueRef`), or closes
/// its number. No deadlock (the hook runs with the kqueue locked); the call returns, the
/// kqueue is closed once it did (its process descriptor gone, the next call EBADF).
fn g29_close_in_a_filter_hook(p: Personality) {
    let child = sleeping_child();
    let f = close_in_hook();
    let base = baseline();
    for how in 0..2u32 {
        let (n, owner) = if how == 0 {
            let owner = Kqueue::with_personality(p).unwrap();
            (owner.as_raw_fd(), Some(owner))
        } else {
            (raw_kq(p), None)
        };
        let held = hold(n).unwrap();
        held.kevent(
            &[ev(child as usize, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0)],
            &mut [],
            None,
        )
        .unwrap();
        if let Some(o) = owner {
            owners().lock().unwrap().insert(7, o);
        }
        let r = within("a change whose hook closes its kqueue", move || {
            let r = held.kevent(&[ev(7, f, EV_ADD, how, n as isize)], &mut [], None);
            (held, r.map_err(|e| e.raw_os_error()))
        });
        let (held, r) = r;
        assert!(
            matches!(r, Ok(0) | Err(Some(libc::EBADF))),
            "{p:?} {how}: {r:?}"
        );
        released_at_once(base, &format!("{p:?} {how}"));
        assert_eq!(
            errno(held.kevent(&[], &mut [Kevent::default()], Some(Duration::ZERO))),
            libc::EBADF,
            "{p:?} {how}"
        );
        drop(held);
        settle(base, &format!("{p:?} {how}"));
    }
    kill_child(child);
}

/// G29 kq_close_wakes from a filter hook run by a post of another thread: the event hook
/// of a custom filter drops the owner of its kqueue (with the kqueue locked) while a thread
/// sleeps in the kqueue with no timeout. No deadlock; the post returns, the sleeper wakes
/// with EBADF, the kqueue's process descriptor is gone.
fn g29_close_in_a_filter_hook_wakes_a_sleeper(p: Personality) {
    let child = sleeping_child();
    let f = close_in_hook();
    let base = baseline();
    for round in 0..20 {
        let owner = Kqueue::with_personality(p).unwrap();
        let n = owner.as_raw_fd();
        let ident = 1000 + round;
        owner
            .kevent(
                &[
                    ev(child as usize, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0),
                    ev(ident, f, EV_ADD, 3, 0),
                ],
                &mut [],
                None,
            )
            .unwrap();
        let held = hold(n).unwrap();
        let poster = hold(n).unwrap();
        owners().lock().unwrap().insert(ident, owner);
        let sleeper = thread::spawn(move || {
            let mut evs = [Kevent::default(); 4];
            loop {
                if let Err(e) = held.kevent(&[], &mut evs, None) {
                    return e.raw_os_error();
                }
            }
        });
        thread::sleep(Duration::from_millis(2));
        let r = within("a post whose hook drops the kqueue", move || {
            poster
                .post(ident, f, DROP_OWNER)
                .map_err(|e| e.raw_os_error())
        });
        assert!(
            matches!(r, Ok(false) | Err(Some(libc::EBADF))),
            "{p:?}: {r:?}"
        );
        released_at_once(base, &format!("{p:?} round {round}"));
        let r = within("the sleeper", move || sleeper.join().unwrap());
        assert_eq!(r, Some(libc::EBADF));
        settle(base, &format!("{p:?} round {round}"));
    }
    kill_child(child);
}

/// An event list that drops a kqueue's owner when the first event is written to it.
struct DropOnPut {
    evs: Vec<Kevent>,
    owner: Option<Kqueue>,
}

impl EventList for &mut DropOnPut {
    fn len(&self) -> usize {
        self.evs.len()
    }
    fn put(&mut self, i: usize, ev: Kevent) {
        self.evs[i] = ev;
        drop(self.owner.take());
    }
}

/// A change list that drops a kqueue's owner when its second change is read.
struct DropOnGet {
    changes: Vec<Kevent>,
    owner: Option<Kqueue>,
}

impl ChangeList for &mut DropOnGet {
    fn len(&self) -> usize {
        self.changes.len()
    }
    fn get(&mut self, i: usize) -> Kevent {
        if i == 1 {
            drop(self.owner.take());
        }
        self.changes[i]
    }
}

/// G29 kq_close_wakes from the lists of the call: a `ChangeList` whose reading, or an
/// `EventList` whose writing, drops the owner of the kqueue the call works on (through a
/// `KqueueRef`). No deadlock; the call returns; the kqueue is closed afterwards.
fn g29_close_in_the_lists_of_the_call(p: Personality) {
    let child = sleeping_child();
    let base = baseline();
    for which in ["event list", "change list"] {
        let owner = Kqueue::with_personality(p).unwrap();
        let held = hold(owner.as_raw_fd()).unwrap();
        held.kevent(
            &[
                ev(child as usize, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0),
                ev(1, EVFILT_USER, EV_ADD, NOTE_TRIGGER, 0),
                ev(1, EVFILT_USER, 0, NOTE_TRIGGER, 0),
            ],
            &mut [],
            None,
        )
        .unwrap();
        let (held, r) = within(which, move || {
            let r = if which == "event list" {
                let mut list = DropOnPut {
                    evs: vec![Kevent::default(); 4],
                    owner: Some(owner),
                };
                held.kevent_raw(
                    &[][..],
                    &mut list,
                    Some(Timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    }),
                )
            } else {
                let mut list = DropOnGet {
                    changes: vec![
                        ev(2, EVFILT_USER, EV_ADD, 0, 0),
                        ev(3, EVFILT_USER, EV_ADD, 0, 0),
                        ev(4, EVFILT_USER, EV_ADD, 0, 0),
                    ],
                    owner: Some(owner),
                };
                held.kevent_raw(&mut list, &mut [][..], None)
            };
            (held, r.map_err(|e| e.raw_os_error()))
        });
        assert!(
            matches!(r, Ok(_) | Err(Some(libc::EBADF))),
            "{p:?} {which}: {r:?}"
        );
        released_at_once(base, &format!("{p:?} {which}"));
        assert_eq!(
            errno(held.kevent(&[], &mut [Kevent::default()], Some(Duration::ZERO))),
            libc::EBADF,
            "{p:?} {which}"
        );
        drop(held);
        settle(base, &format!("{p:?} {which}"));
    }
    kill_child(child);
}

/// The kqueue number the SIGUSR2 handler closes.
static CLOSE_IN_HANDLER: AtomicI32 = AtomicI32::new(-1);

extern "C" fn close_from_handler(_sig: c_int, _info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    let n = CLOSE_IN_HANDLER.swap(-1, Ordering::SeqCst);
    if n >= 0 {
        close_kq(n);
    }
}

/// G3 bad_kq_fd, U34 close_kq_removes, with the close made by a signal handler that
/// interrupted a kevent() on another kqueue while that call held its kqueue's lock (a
/// custom filter's attach hook raises the signal in its own thread, as a signal landing in
/// the middle of a long change list would). The library counts close() as reported to it
/// (`set_close_hooked`, as the C library does). No deadlock; once the interrupted call has
/// returned, the closed kqueue is closed: its process descriptor is gone, and its number,
/// given to a pipe, is no kqueue (EBADF), not the closed kqueue.
fn g3_close_from_a_signal_handler_inside_kevent(p: Personality) {
    kq::set_close_hooked(true);
    // SAFETY: a handler that only closes a number (the interposed close's work).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = close_from_handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, null_mut()), 0);
    }
    let child = sleeping_child();
    let f = close_in_hook();
    let base = baseline();
    for round in 0..20 {
        let n1 = raw_kq(p);
        let n2 = raw_kq(p);
        let kq2 = hold(n2).unwrap();
        kq2.kevent(
            &[ev(child as usize, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0)],
            &mut [],
            None,
        )
        .unwrap();
        drop(kq2);
        CLOSE_IN_HANDLER.store(n2, Ordering::SeqCst);
        let kq1 = hold(n1).unwrap();
        let kq1 = within(
            "a kevent() whose thread closes a kqueue in a signal handler",
            move || {
                kq1.kevent(&[ev(9, f, EV_ADD, 2, 0)], &mut [], None)
                    .unwrap();
                kq1
            },
        );
        assert_eq!(
            CLOSE_IN_HANDLER.load(Ordering::SeqCst),
            -1,
            "the handler ran"
        );
        released_at_once(base, &format!("{p:?} round {round}"));
        let (r, w) = pipe();
        // SAFETY: dup2 onto the number the handler closed (free now).
        assert_eq!(unsafe { libc::dup2(r.as_raw_fd(), n2) }, n2);
        assert_eq!(
            errno(hold(n2).map(drop)),
            libc::EBADF,
            "{p:?} round {round}: the closed kqueue's number, now a pipe, still names it"
        );
        // SAFETY: closing the copy made above (through fdclose, as C would).
        close_kq(n2);
        drop((r, w, kq1));
        close_kq(n1);
        settle(base, &format!("{p:?} round {round}"));
    }
    kill_child(child);
}

/// G3 bad_kq_fd: a kqueue number closed by a raw system call (which the library does not
/// see where close() is interposed: the number keeps naming the kqueue), then used in
/// kevent() with changes that make descriptors (a timer's timerfd, a process descriptor):
/// the descriptor may take the number the kqueue had, which tells the library that the
/// kqueue was closed, under that very kqueue's lock. No deadlock.
fn g3_raw_close_then_kevent_on_the_number(p: Personality) {
    kq::set_close_hooked(true);
    let child = sleeping_child();
    for (i, change) in [
        ev(1, EVFILT_TIMER, EV_ADD, 0, 60_000),
        ev(child as usize, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0),
    ]
    .into_iter()
    .enumerate()
    {
        let n = raw_kq(p);
        let kq = hold(n).unwrap();
        // Every lower number taken, so that the next descriptor made gets `n`.
        let filler = temp_file();
        let mut fillers = Vec::new();
        for k in 0..n {
            // SAFETY: F_GETFD looks at a number; dup2 takes a free one.
            unsafe {
                if libc::fcntl(k, libc::F_GETFD) == -1 {
                    assert_eq!(libc::dup2(filler.as_raw_fd(), k), k);
                    fillers.push(k);
                }
            }
        }
        // SAFETY: a raw close of our own number, which the library does not see.
        assert_eq!(unsafe { libc::syscall(libc::SYS_close, n) }, 0);
        let r = within(
            "kevent() on a number closed by a raw system call",
            move || {
                let r = kq
                    .kevent(&[change], &mut [], None)
                    .map_err(|e| e.raw_os_error());
                drop(kq);
                r
            },
        );
        assert!(
            matches!(r, Ok(0) | Err(Some(libc::EBADF))),
            "{p:?} {i}: {r:?}"
        );
        for k in fillers {
            // SAFETY: closing the copies made above.
            unsafe { libc::close(k) };
        }
        // Whatever took number `n` is the library's (the kqueue's timerfd or process
        // descriptor): the kqueue lives on or was closed, depending on who saw what; it
        // is found by nobody either way.
        let _ = hold(n).map(drop);
    }
    kill_child(child);
}

/// G3 bad_kq_fd at the descriptor limit: a kqueue number closed by a raw system call (the
/// library does not see it; close() is not reported in this process), then every free
/// descriptor taken, then a timer added to another kqueue: making its timerfd fails with
/// EMFILE, the library looks for kqueues closed unseen, finds this one and frees its
/// descriptors at once (with the other kqueue locked), and the timer is made.
fn g3_closed_unseen_kqueue_freed_for_a_timer_at_the_limit(p: Personality) {
    let other = Kqueue::with_personality(p).unwrap();
    let n = raw_kq(p);
    // SAFETY: a raw close of our own number, which the library does not see.
    assert_eq!(unsafe { libc::syscall(libc::SYS_close, n) }, 0);
    let filler = temp_file();
    let mut fillers = Vec::new();
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit; dup takes free numbers.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur = census().total as libc::rlim_t + 16;
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        loop {
            let k = libc::fcntl(filler.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0);
            if k < 0 {
                break;
            }
            fillers.push(k);
        }
    }
    let r = within("an EV_ADD at the descriptor limit", move || {
        let r = other.kevent(&[ev(1, EVFILT_TIMER, EV_ADD, 0, 60_000)], &mut [], None);
        drop(other);
        r.map_err(|e| e.raw_os_error())
    });
    for k in fillers {
        // SAFETY: closing the copies made above.
        unsafe { libc::close(k) };
    }
    assert_eq!(r, Ok(0), "{p:?}: the timer at the limit");
}

// ---------------------------------------------------------------------------------------
// P2/P3: the process monitor posting NOTE_TRACK forks and exits to a kqueue being closed.

/// P2 track, P3: a kqueue tracks (NOTE_TRACK|NOTE_FORK|NOTE_EXIT) a child that forks
/// children as fast as it can, each exiting at once, so that the process monitor posts
/// forks and exits to it all the time and makes a knote (and a process descriptor) for
/// each new child, while a thread collects. 20 times the kqueue is closed (its number, or
/// its owner dropped) in the middle of that: the process descriptors are gone when the
/// close returns, the monitor makes none for the closed kqueue afterwards, the collecting
/// thread gets EBADF.
fn p2_close_vs_note_track_posts(p: Personality) {
    let forker = forking_child();
    warm_up_monitor(forker);
    let base = baseline();
    for round in 0..20 {
        let by_number = round % 2 == 0;
        let (n, owner) = if by_number {
            (raw_kq(p), None)
        } else {
            let o = Kqueue::with_personality(p).unwrap();
            (o.as_raw_fd(), Some(o))
        };
        let kq = hold(n).unwrap();
        let add = ev(
            forker as usize,
            EVFILT_PROC,
            EV_ADD,
            NOTE_TRACK | NOTE_FORK | NOTE_EXIT,
            0,
        );
        if let Err(e) = kq.kevent(&[add], &mut [], None) {
            // No process events connector here (a sandbox): nothing to attack.
            assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}");
            eprintln!("skipped: no process events connector");
            drop(kq);
            if by_number {
                close_kq(n);
            }
            break;
        }
        let collector = thread::spawn(move || {
            let mut evs = [Kevent::default(); 32];
            loop {
                if let Err(e) = kq.kevent(&[], &mut evs, None) {
                    return e.raw_os_error();
                }
            }
        });
        thread::sleep(Duration::from_millis(20 + round as u64));
        match owner {
            Some(o) => drop(o),
            None => close_kq(n),
        }
        released_at_once(base, &format!("{p:?} round {round}"));
        thread::sleep(Duration::from_millis(10));
        released_at_once(base, &format!("{p:?} round {round}, 10 ms later"));
        let r = within("the collector of a closed kqueue", move || {
            collector.join().unwrap()
        });
        assert_eq!(r, Some(libc::EBADF));
        settle(base, &format!("{p:?} round {round}"));
    }
    kill_child(forker);
}

// ---------------------------------------------------------------------------------------
// T7: timers firing.

/// T7 periodic: a kqueue with 50 periodic 1 ms timers, the background thread firing them
/// while nobody waits and a thread waiting meanwhile, is closed (number or owner) 50
/// times: the waiter gets EBADF, the descriptors go.
fn t7_close_vs_timers_firing(p: Personality) {
    let base = baseline();
    for round in 0..50 {
        let by_number = round % 2 == 0;
        let (n, owner) = if by_number {
            (raw_kq(p), None)
        } else {
            let o = Kqueue::with_personality(p).unwrap();
            (o.as_raw_fd(), Some(o))
        };
        let kq = hold(n).unwrap();
        let timers: Vec<Kevent> = (0..50).map(|i| ev(i, EVFILT_TIMER, EV_ADD, 0, 1)).collect();
        kq.kevent(&timers, &mut [], None).unwrap();
        let waiter = thread::spawn(move || {
            let mut evs = [Kevent::default(); 4];
            loop {
                thread::sleep(Duration::from_micros(300));
                if let Err(e) = kq.kevent(&[], &mut evs, None) {
                    return e.raw_os_error();
                }
            }
        });
        thread::sleep(Duration::from_millis(3));
        match owner {
            Some(o) => drop(o),
            None => close_kq(n),
        }
        let r = within("a waiter of a closed kqueue", move || {
            waiter.join().unwrap()
        });
        assert_eq!(r, Some(libc::EBADF));
        settle(base, &format!("{p:?} round {round}"));
    }
}

// ---------------------------------------------------------------------------------------
// S2: signals arriving for EVFILT_SIGNAL knotes.

static HITS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_hit(_sig: c_int, _info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    HITS.fetch_add(1, Ordering::Relaxed);
}

fn current_action(sig: c_int) -> libc::sigaction {
    // SAFETY: reads the action into a zeroed struct.
    unsafe {
        let mut a: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, null_mut(), &mut a), 0);
        a
    }
}

/// The signals of a mask that Linux has (1 to 64; the C library's `sigset_t` has room for
/// more, which `sigaction` leaves as it finds them).
fn signals_of(m: &libc::sigset_t) -> Vec<c_int> {
    // SAFETY: sigismember reads the set.
    (1..=64)
        .filter(|&s| unsafe { libc::sigismember(m, s) } == 1)
        .collect()
}

fn same_action(a: &libc::sigaction, b: &libc::sigaction) -> bool {
    a.sa_sigaction == b.sa_sigaction
        && a.sa_flags == b.sa_flags
        && signals_of(&a.sa_mask) == signals_of(&b.sa_mask)
}

/// S2 signal add/del against close: the program has a handler of its own for SIGUSR1
/// (SA_RESTART, SIGUSR2 in its mask), and a thread sends SIGUSR1 to the process without a
/// pause. 300 times a kqueue watches SIGUSR1 (and collects some of it), then goes: by
/// EV_DELETE, by close() of its number, or by the drop of its owner. After each, the
/// program's action is exactly what it was (handler, flags, mask), as the EV_DELETE leaves
/// it, and the program's handler keeps getting the signals.
fn s2_close_restores_the_signal_action_as_delete_does(p: Personality) {
    let s = libc::SIGUSR1;
    // SAFETY: a counting handler (async-signal-safe: one atomic add).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = count_hit as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaddset(&mut sa.sa_mask, libc::SIGUSR2);
        assert_eq!(libc::sigaction(s, &sa, null_mut()), 0);
    }
    let before = current_action(s);
    let stop = Arc::new(AtomicBool::new(false));
    let st = Arc::clone(&stop);
    let sender = thread::spawn(move || {
        while !st.load(Ordering::Relaxed) {
            // SAFETY: SIGUSR1 to the process; it has a handler.
            unsafe { libc::kill(libc::getpid(), s) };
            thread::sleep(Duration::from_micros(20));
        }
    });
    for round in 0..300 {
        let how = round % 3;
        let (n, owner) = if how == 1 {
            (raw_kq(p), None)
        } else {
            let o = Kqueue::with_personality(p).unwrap();
            (o.as_raw_fd(), Some(o))
        };
        let kq = hold(n).unwrap();
        kq.kevent(
            &[ev(s as usize, EVFILT_SIGNAL, EV_ADD, 0, 0)],
            &mut [],
            None,
        )
        .unwrap();
        let mut evs = [Kevent::default(); 2];
        let _ = kq.kevent(
            &[],
            &mut evs,
            Some(Duration::from_micros(200 * (round % 4))),
        );
        match how {
            0 => {
                kq.kevent(
                    &[ev(s as usize, EVFILT_SIGNAL, EV_DELETE, 0, 0)],
                    &mut [],
                    None,
                )
                .unwrap();
                drop(kq);
                drop(owner);
            }
            1 => {
                close_kq(n);
                drop(kq);
            }
            _ => {
                drop(owner);
                drop(kq);
            }
        }
        let now = current_action(s);
        assert!(
            same_action(&now, &before),
            "{p:?} round {round} (how {how}): action {:#x}/{:#x}/{:?}, was {:#x}/{:#x}/{:?}",
            now.sa_sigaction,
            now.sa_flags,
            signals_of(&now.sa_mask),
            before.sa_sigaction,
            before.sa_flags,
            signals_of(&before.sa_mask),
        );
    }
    let hits = HITS.load(Ordering::Relaxed);
    let start = Instant::now();
    while HITS.load(Ordering::Relaxed) == hits {
        assert!(
            start.elapsed() < HANG,
            "the program's handler gets no more signals"
        );
        thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
}

// ---------------------------------------------------------------------------------------
// Nested kqueues.

/// U37 with a chain of 1,000 kqueues (raw numbers), each watching the one before with
/// EVFILT_READ, while a thread triggers the innermost without a pause: the kqueue in the
/// middle is closed (its watcher's knote goes with it and reports nothing more), then the
/// outermost one while the inner ones have events, then the rest from the inside out. No
/// thread hangs, nothing is reported for a closed kqueue, and every descriptor goes.
fn u37_chain_of_1000_closed_while_events_flow(p: Personality) {
    const DEPTH: usize = 1000;
    raise_fd_limit();
    let base = baseline();
    let mut ns: Vec<RawFd> = Vec::with_capacity(DEPTH);
    for i in 0..DEPTH {
        let n = raw_kq(p);
        let kq = hold(n).unwrap();
        let change = match ns.last() {
            None => ev(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0),
            Some(&inner) => ev(inner as usize, EVFILT_READ, EV_ADD, 0, 0),
        };
        kq.kevent(&[change], &mut [], None)
            .unwrap_or_else(|e| panic!("kqueue {i}: {e}"));
        ns.push(n);
    }
    let innermost = hold(ns[0]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let st = Arc::clone(&stop);
    let trigger = thread::spawn(move || {
        let mut k = 0u64;
        while !st.load(Ordering::Relaxed) && innermost.trigger(1, 0).is_ok() {
            k += 1;
        }
        k
    });
    let outermost = hold(ns[DEPTH - 1]).unwrap();
    let mut evs = [Kevent::default(); 4];
    let got = outermost.kevent(&[], &mut evs, Some(HANG)).unwrap();
    assert_eq!(got, 1, "{p:?}: the chain carries the trigger outwards");
    // The middle one.
    let mid = DEPTH / 2;
    let watcher = hold(ns[mid + 1]).unwrap();
    close_kq(ns[mid]);
    for _ in 0..3 {
        let got = poll(&watcher).unwrap();
        assert!(got.is_empty(), "{p:?}: {got:?} for the closed kqueue");
        thread::sleep(Duration::from_millis(1));
    }
    drop(watcher);
    // The outermost, while the inner ones have events.
    drop(outermost);
    close_kq(ns[DEPTH - 1]);
    stop.store(true, Ordering::Relaxed);
    within("the trigger thread", move || trigger.join().unwrap());
    for (i, &n) in ns.iter().enumerate() {
        if i != mid && i != DEPTH - 1 {
            close_kq(n);
        }
    }
    settle(base, &format!("{p:?}"));
}

/// U37 with a chain of 1,000 Rust kqueues, dropped from the outermost in, then a chain
/// dropped from the innermost out, with a thread triggering the innermost meanwhile.
fn u37_chain_of_1000_dropped_while_events_flow(p: Personality) {
    const DEPTH: usize = 1000;
    raise_fd_limit();
    let base = baseline();
    for outside_in in [true, false] {
        let mut kqs: Vec<Kqueue> = Vec::with_capacity(DEPTH);
        for i in 0..DEPTH {
            let kq = Kqueue::with_personality(p).unwrap();
            let change = match kqs.last() {
                None => ev(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0),
                Some(inner) => ev(inner.as_raw_fd() as usize, EVFILT_READ, EV_ADD, 0, 0),
            };
            kq.kevent(&[change], &mut [], None)
                .unwrap_or_else(|e| panic!("kqueue {i}: {e}"));
            kqs.push(kq);
        }
        let innermost = hold(kqs[0].as_raw_fd()).unwrap();
        let t = thread::spawn(move || while innermost.trigger(1, 0).is_ok() {});
        thread::sleep(Duration::from_millis(5));
        if outside_in {
            while kqs.pop().is_some() {}
        } else {
            drop(kqs);
        }
        within("the trigger thread", move || t.join().unwrap());
        settle(base, &format!("{p:?} outside_in {outside_in}"));
    }
}

// ---------------------------------------------------------------------------------------
// Many cycles.

/// G2 close(kq), 20,000 times: a Rust kqueue is made, gets knotes of every filter and is
/// dropped (the personalities taking turns), while two threads do the same with kqueue
/// numbers they close (so that drops and closes interleave), and a kqueue tracking a
/// forking child keeps the process monitor busy making and dropping knotes. Afterwards the
/// descriptors are those of before.
fn g2_20000_drop_cycles_with_every_filter_and_the_monitor_busy() {
    let objs = Arc::new(Objects::new());
    warm_up(Personality::NetBsd, &objs);
    let forker = forking_child();
    warm_up_monitor(forker);
    let base = baseline();
    let tracker = Kqueue::new().unwrap();
    let track = ev(
        forker as usize,
        EVFILT_PROC,
        EV_ADD | EV_CLEAR,
        NOTE_TRACK | NOTE_EXIT,
        0,
    );
    if let Err(e) = tracker.kevent(&[track], &mut [], None) {
        // No process events connector here (a sandbox): the monitor stays idle.
        assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = {
        let tracker = hold(tracker.as_raw_fd()).unwrap();
        let s = Arc::clone(&stop);
        thread::spawn(move || {
            let mut evs = [Kevent::default(); 64];
            while !s.load(Ordering::Relaxed) {
                let _ = tracker.kevent(&[], &mut evs, Some(Duration::from_millis(5)));
            }
        })
    };
    let mut threads = Vec::new();
    for t in 0..2 {
        let (o, s) = (Arc::clone(&objs), Arc::clone(&stop));
        threads.push(thread::spawn(move || {
            let mut k = 0usize;
            while !s.load(Ordering::Relaxed) {
                let p = if k.is_multiple_of(2) {
                    Personality::FreeBsd
                } else {
                    Personality::NetBsd
                };
                let n = raw_kq(p);
                let kq = hold(n).unwrap();
                kq.kevent(&o.every_filter_sometimes(10 + t, k), &mut [], None)
                    .unwrap();
                drop(kq);
                close_kq(n);
                k += 1;
                thread::sleep(Duration::from_micros(100));
            }
            k
        }));
    }
    for i in 0..20_000usize {
        let p = if i % 2 == 0 {
            Personality::NetBsd
        } else {
            Personality::FreeBsd
        };
        let kq = Kqueue::with_personality(p).unwrap();
        kq.kevent(&objs.every_filter_sometimes(1, i), &mut [], None)
            .unwrap_or_else(|e| panic!("round {i}: {e}"));
        drop(kq);
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        within("a closing thread", move || t.join().unwrap());
    }
    within("the drainer", move || drainer.join().unwrap());
    drop(tracker);
    kill_child(forker);
    settle(base, "after 20,000 cycles");
}

isolated_both!(
    g29_close_vs_sleepers_and_change_lists_of_every_filter,
    g29_drop_vs_sleepers_and_change_lists_of_every_filter,
    u31_drop_vs_waker_releases_at_once,
    u37_watcher_reports_nothing_for_a_dropped_kqueue,
    u37_watcher_reports_nothing_for_a_closed_kqueue,
    u35_fork_after_close_while_held_inherits_nothing,
    u35_fork_racing_close_inherits_nothing,
    g29_close_in_a_filter_hook,
    g29_close_in_a_filter_hook_wakes_a_sleeper,
    g29_close_in_the_lists_of_the_call,
    g3_close_from_a_signal_handler_inside_kevent,
    g3_raw_close_then_kevent_on_the_number,
    g3_closed_unseen_kqueue_freed_for_a_timer_at_the_limit,
    p2_close_vs_note_track_posts,
    t7_close_vs_timers_firing,
    s2_close_restores_the_signal_action_as_delete_does,
    u37_chain_of_1000_closed_while_events_flow,
    u37_chain_of_1000_dropped_while_events_flow,
);

isolated!(g2_20000_drop_cycles_with_every_filter_and_the_monitor_busy);
