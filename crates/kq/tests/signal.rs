//! EVFILT_SIGNAL (docs/semantics.md §5.9, cases S1-S17 of §7.7): posts are counted while
//! the signal's own disposition goes on working.
//!
//! Signals and their actions are process-wide, so every test runs in a process of its own:
//! the test re-executes this binary to run only itself (`isolated::in_child`), with the test's body
//! in the child.

#[macro_use]
mod isolated;
mod util;

use kq::{Kevent, Kqueue, Personality, EVFILT_SIGNAL, EV_ADD, EV_CLEAR, EV_DELETE};
use kq::{EV_DISABLE, EV_ENABLE, EV_ONESHOT};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use util::{ch_err, ch_ok, delivered_flags, expect_no_events, get, kq, poll};

fn sig(ident: i32, flags: u16) -> Kevent {
    Kevent::new(ident as usize, EVFILT_SIGNAL, flags, 0, 0, null_mut())
}

/// Sends `s` to the calling thread: delivered (and counted) before this returns.
fn raise(s: i32) {
    // SAFETY: raise only sends a signal.
    assert_eq!(unsafe { libc::raise(s) }, 0);
}

/// Sets the action of `s` with the C library's sigaction (as a program would).
fn set_raw(s: i32, handler: usize, flags: i32) -> libc::sigaction {
    // SAFETY: all zeroes is a valid sigaction (empty mask).
    let mut a: libc::sigaction = unsafe { std::mem::zeroed() };
    a.sa_sigaction = handler;
    a.sa_flags = flags;
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: valid action; the handlers used here are async-signal-safe.
    assert_eq!(unsafe { libc::sigaction(s, &a, &mut old) }, 0);
    old
}

/// The action of `s` as the kernel has it (the C library's sigaction, query only).
fn raw_action(s: i32) -> libc::sigaction {
    // SAFETY: all zeroes is a valid sigaction.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a query: writes `old` only.
    assert_eq!(unsafe { libc::sigaction(s, std::ptr::null(), &mut old) }, 0);
    old
}

/// Waits up to 5 s for one event and returns it.
#[track_caller]
fn one(kq: &Kqueue) -> Kevent {
    let evs = get(kq, 4, Some(Duration::from_secs(5)));
    assert_eq!(evs.len(), 1, "expected one event, got {evs:?}");
    evs[0]
}

#[track_caller]
fn assert_signal(p: Personality, ev: &Kevent, s: i32, flags: u16, data: isize) {
    assert_eq!(
        (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data),
        (
            s as usize,
            EVFILT_SIGNAL,
            delivered_flags(p, flags) | EV_CLEAR,
            0,
            data
        ),
        "record {ev:?}"
    );
}

static HANDLED: AtomicUsize = AtomicUsize::new(0);
extern "C" fn count_handler(_: i32) {
    HANDLED.fetch_add(1, Ordering::SeqCst);
}

static INFO_OK: AtomicUsize = AtomicUsize::new(0);
extern "C" fn info_handler(s: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel's siginfo, passed on by the library.
    if !ctx.is_null() && unsafe { (*info).si_signo } == s {
        INFO_OK.fetch_add(1, Ordering::SeqCst);
    }
}

/// S1 sig [NetBSD t_sig]: SIGUSR1 ignored (SIG_IGN set before EV_ADD); a child process sends
/// five SIGUSR1 to the parent, 50 ms apart; the parent, looping on kevent() with a 1 s
/// timeout, sees five events (each with data 1 unless two posts met before a collect), and
/// kevent() never fails.
fn s1_sig(p: Personality) {
    let parent = std::process::id() as i32;
    // The child starts sending once the parent is ready (however long that takes).
    let mut go = [0 as libc::c_int; 2];
    // SAFETY: pipe writes two descriptors into `go`.
    assert_eq!(unsafe { libc::pipe2(go.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child only reads, sleeps, sends signals and exits (async-signal-safe).
    let child = unsafe { libc::fork() };
    assert!(child >= 0);
    if child == 0 {
        // SAFETY: as above.
        unsafe {
            let mut b = 0u8;
            libc::read(go[0], (&mut b as *mut u8).cast(), 1);
            for _ in 0..5 {
                libc::kill(parent, libc::SIGUSR1);
                libc::usleep(50_000);
            }
            libc::_exit(0);
        }
    }
    let kq = kq(p);
    assert_eq!(
        kq::filter::filter_by_name("EVFILT_SIGNAL").unwrap(),
        EVFILT_SIGNAL
    );
    set_raw(libc::SIGUSR1, libc::SIG_IGN, 0);
    ch_ok(&kq, &[sig(libc::SIGUSR1, EV_ADD | EV_ENABLE)]);
    // SAFETY: writes one byte from a live buffer to our pipe, then closes both ends.
    unsafe {
        assert_eq!(libc::write(go[1], b"g".as_ptr().cast(), 1), 1);
        libc::close(go[0]);
        libc::close(go[1]);
    }
    let (mut returns, mut posts) = (0, 0);
    let start = Instant::now();
    while posts < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {posts} posts seen"
        );
        let mut ev = [Kevent::default()];
        let n = kq
            .kevent(&[], &mut ev, Some(Duration::from_secs(1)))
            .expect("kevent must not fail");
        if n == 1 {
            assert_signal(p, &ev[0], libc::SIGUSR1, EV_ADD | EV_ENABLE, ev[0].data);
            assert!(ev[0].data >= 1);
            returns += 1;
            posts += ev[0].data;
        }
    }
    assert_eq!(posts, 5);
    assert!(returns >= 1);
    let mut status = 0;
    // SAFETY: waits for our child.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    // The signal is still ignored, and nothing more is pending.
    expect_no_events(&kq);
}

/// S2 [FreeBSD signal.c add, del, get, disable, enable, oneshot]: get gives data 1 with
/// EV_CLEAR; a deleted knote sees nothing; a disabled knote reports nothing but keeps
/// counting (enabled: data 2); a oneshot knote fires once and is gone.
fn s2_add_del_get_disable_enable_oneshot(p: Personality) {
    let s = libc::SIGUSR1;
    set_raw(s, libc::SIG_IGN, 0);
    let kq = kq(p);
    // add, del
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    ch_ok(&kq, &[sig(s, EV_DELETE)]);
    raise(s);
    expect_no_events(&kq);
    ch_err(&kq, &[sig(s, EV_DELETE)], libc::ENOENT);
    // get
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    raise(s);
    assert_signal(p, &one(&kq), s, EV_ADD, 1);
    expect_no_events(&kq);
    // disable, enable
    ch_ok(&kq, &[sig(s, EV_DISABLE)]);
    raise(s);
    expect_no_events(&kq);
    ch_ok(&kq, &[sig(s, EV_ENABLE)]);
    raise(s);
    assert_signal(p, &one(&kq), s, EV_ADD, 2);
    ch_ok(&kq, &[sig(s, EV_DELETE)]);
    // oneshot
    ch_ok(&kq, &[sig(s, EV_ADD | EV_ONESHOT)]);
    raise(s);
    assert_signal(p, &one(&kq), s, EV_ADD | EV_ONESHOT, 1);
    raise(s);
    expect_no_events(&kq);
    ch_err(&kq, &[sig(s, EV_DELETE)], libc::ENOENT);
}

/// S3 handler_still_runs: a handler installed before EV_ADD, and one installed after it
/// through `kq::signal::set_action` (SA_SIGINFO: the siginfo and context are passed on),
/// run for every post, and every post is counted.
fn s3_handler_still_runs(p: Personality) {
    let s = libc::SIGUSR2;
    set_raw(s, count_handler as extern "C" fn(i32) as usize, 0);
    let kq = kq(p);
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    for _ in 0..3 {
        raise(s);
    }
    assert_eq!(HANDLED.load(Ordering::SeqCst), 3);
    assert_signal(p, &one(&kq), s, EV_ADD, 3);
    // The program's action, as the library keeps it; the kernel has the library's.
    let kept = kq::signal::action(s).unwrap();
    assert_eq!(
        kept.sa_sigaction,
        count_handler as extern "C" fn(i32) as usize
    );
    assert_ne!(raw_action(s).sa_sigaction, kept.sa_sigaction);
    // A new handler while watched.
    let mut a = kq::signal::default();
    a.sa_sigaction =
        info_handler as extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) as usize;
    a.sa_flags = libc::SA_SIGINFO;
    // SAFETY: the handler only counts.
    let old = unsafe { kq::signal::set_action(s, &a) }.unwrap();
    assert_eq!(
        old.sa_sigaction,
        count_handler as extern "C" fn(i32) as usize
    );
    raise(s);
    raise(s);
    assert_eq!(INFO_OK.load(Ordering::SeqCst), 2);
    assert_eq!(HANDLED.load(Ordering::SeqCst), 3);
    assert_signal(p, &one(&kq), s, EV_ADD, 2);
}

/// S4 default_terminate: a process that watches SIGTERM with its default action still dies
/// by it (exit status: killed by SIGTERM); a default-ignore signal (SIGURG) is counted and
/// ignored.
fn s4_default_terminate(p: Personality) {
    // SAFETY: the child uses the library and exits; nothing else runs in it.
    let child = unsafe { libc::fork() };
    assert!(child >= 0);
    if child == 0 {
        let kq = kq(p);
        ch_ok(
            &kq,
            &[sig(libc::SIGURG, EV_ADD), sig(libc::SIGTERM, EV_ADD)],
        );
        raise(libc::SIGURG);
        let evs = poll(&kq, 4);
        let ok = evs.len() == 1 && evs[0].ident == libc::SIGURG as usize && evs[0].data == 1;
        if !ok {
            // SAFETY: exits the child.
            unsafe { libc::_exit(3) };
        }
        raise(libc::SIGTERM);
        // SAFETY: exits the child (not reached if SIGTERM killed it).
        unsafe { libc::_exit(4) };
    }
    let mut status = 0;
    // SAFETY: waits for our child.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGTERM,
        "status {status:#x}"
    );
}

/// S5 thread_directed: signals sent to one thread (pthread_kill) are counted, like those
/// sent to the process.
fn s5_thread_directed(p: Personality) {
    let s = libc::SIGUSR1;
    set_raw(s, libc::SIG_IGN, 0);
    let kq = kq(p);
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        tx.send(unsafe { libc::pthread_self() }).unwrap();
        let _ = done_rx.recv();
    });
    let thread = rx.recv().unwrap();
    for _ in 0..3 {
        // SAFETY: the thread is alive until `done` is sent.
        assert_eq!(unsafe { libc::pthread_kill(thread, s) }, 0);
        // Each post delivered before the next (standard signals merge while pending).
        let ev = one(&kq);
        assert_signal(p, &ev, s, EV_ADD, 1);
    }
    // SAFETY: sent to the process.
    assert_eq!(unsafe { libc::kill(libc::getpid(), s) }, 0);
    assert_signal(p, &one(&kq), s, EV_ADD, 1);
    done_tx.send(()).unwrap();
    t.join().unwrap();
}

/// S6 two_kqueues: two kqueues (one of each personality) watch one signal and each counts
/// on its own.
fn s6_two_kqueues(p: Personality) {
    let s = libc::SIGUSR1;
    set_raw(s, libc::SIG_IGN, 0);
    let a = kq(p);
    let b = kq(match p {
        Personality::NetBsd => Personality::FreeBsd,
        _ => Personality::NetBsd,
    });
    ch_ok(&a, &[sig(s, EV_ADD)]);
    ch_ok(&b, &[sig(s, EV_ADD)]);
    raise(s);
    assert_eq!(one(&a).data, 1);
    raise(s);
    assert_eq!(one(&b).data, 2);
    assert_eq!(one(&a).data, 1);
    drop(a);
    raise(s);
    assert_eq!(one(&b).data, 1);
}

/// S7 action_restored: the program's action (handler, flags, mask) is back exactly once the
/// last knote on the signal is gone (EV_DELETE, oneshot delivery, the kqueue's close), and
/// not before.
fn s7_action_restored(p: Personality) {
    let s = libc::SIGUSR2;
    // SAFETY: all zeroes is a valid sigaction.
    let mut a: libc::sigaction = unsafe { std::mem::zeroed() };
    a.sa_sigaction = count_handler as extern "C" fn(i32) as usize;
    a.sa_flags = libc::SA_RESTART | libc::SA_NODEFER;
    // SAFETY: sigaddset writes the set.
    unsafe { libc::sigaddset(&mut a.sa_mask, libc::SIGHUP) };
    // SAFETY: valid action, handler only counts.
    assert_eq!(unsafe { libc::sigaction(s, &a, null_mut()) }, 0);
    let before = raw_action(s);
    let same = |x: &libc::sigaction, y: &libc::sigaction| {
        // SAFETY: sigismember reads the sets.
        let mask = (1..=64).all(|n| unsafe {
            libc::sigismember(&x.sa_mask, n) == libc::sigismember(&y.sa_mask, n)
        });
        x.sa_sigaction == y.sa_sigaction && x.sa_flags == y.sa_flags && mask
    };
    let k1 = kq(p);
    let k2 = kq(p);
    ch_ok(&k1, &[sig(s, EV_ADD)]);
    ch_ok(&k2, &[sig(s, EV_ADD | EV_ONESHOT)]);
    assert!(!same(&raw_action(s), &before));
    assert!(same(&kq::signal::action(s).unwrap(), &before));
    ch_ok(&k1, &[sig(s, EV_DELETE)]);
    assert!(!same(&raw_action(s), &before));
    raise(s);
    assert_eq!(one(&k2).data, 1); // the oneshot goes
    assert!(
        same(&raw_action(s), &before),
        "restored after the last knote"
    );
    // The kqueue's close drops its knote too.
    ch_ok(&k1, &[sig(s, EV_ADD)]);
    assert!(!same(&raw_action(s), &before));
    drop(k1);
    assert!(same(&raw_action(s), &before));
    raise(s);
    assert_eq!(HANDLED.load(Ordering::SeqCst), 2);
}

/// S8 fork: in a child made by fork(), the program's actions are back (the inherited
/// kqueues are dead), and the child can watch the signal in a kqueue of its own.
fn s8_fork(p: Personality) {
    let s = libc::SIGUSR1;
    set_raw(s, libc::SIG_IGN, 0);
    let kq = kq(p);
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    assert_ne!(raw_action(s).sa_sigaction, libc::SIG_IGN);
    // SAFETY: the child only uses the library and exits.
    let child = unsafe { libc::fork() };
    assert!(child >= 0);
    if child == 0 {
        let code = (|| {
            if raw_action(s).sa_sigaction != libc::SIG_IGN {
                return 3;
            }
            raise(s); // ignored
            let mut ev = [Kevent::default()];
            if kq.kevent(&[], &mut ev, Some(Duration::ZERO)).is_ok() {
                return 4;
            }
            let mine = util::kq(p);
            if mine.kevent(&[sig(s, EV_ADD)], &mut [], None).is_err() {
                return 5;
            }
            raise(s);
            match mine.kevent(&[], &mut ev, Some(Duration::ZERO)) {
                Ok(1) if ev[0].data == 1 => 0,
                _ => 6,
            }
        })();
        // SAFETY: exits the child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our child.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status:#x}"
    );
    // The parent still counts.
    raise(s);
    assert_eq!(one(&kq).data, 1);
}

/// S9 uncatchable_accepted: numbers the library cannot watch are accepted as the BSDs
/// accept any number (SIGKILL, SIGSTOP, the C library's reserved 32 and 33, 0, 65, a huge
/// one), never fire, and can be deleted.
fn s9_uncatchable_accepted(p: Personality) {
    let kq = kq(p);
    let idents = [libc::SIGKILL, libc::SIGSTOP, 32, 33, 0, 65, i32::MAX];
    for &i in &idents {
        ch_ok(&kq, &[sig(i, EV_ADD)]);
    }
    ch_ok(
        &kq,
        &[Kevent::new(
            usize::MAX,
            EVFILT_SIGNAL,
            EV_ADD,
            0,
            0,
            null_mut(),
        )],
    );
    expect_no_events(&kq);
    for &i in &idents {
        ch_ok(&kq, &[sig(i, EV_DELETE)]);
    }
    ch_ok(
        &kq,
        &[Kevent::new(
            usize::MAX,
            EVFILT_SIGNAL,
            EV_DELETE,
            0,
            0,
            null_mut(),
        )],
    );
}

/// S10 blocked_counted_on_delivery: posts of a blocked standard signal are counted when it
/// is unblocked, merged into one, as Linux delivers them (BSD counts each post); those of a
/// real-time signal queue, and each is counted.
fn s10_blocked_counted_on_delivery(p: Personality) {
    let rt = libc::SIGRTMIN() + 1;
    for (s, expected) in [(libc::SIGUSR1, 1), (rt, 3)] {
        set_raw(s, libc::SIG_IGN, 0);
        let kq = kq(p);
        ch_ok(&kq, &[sig(s, EV_ADD)]);
        let mut set = kq::signal::default().sa_mask;
        // SAFETY: sigaddset writes the set; pthread_sigmask changes this thread's mask.
        unsafe {
            libc::sigaddset(&mut set, s);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, null_mut());
        }
        for _ in 0..3 {
            raise(s);
        }
        expect_no_events(&kq);
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, null_mut()) };
        assert_eq!(one(&kq).data, expected, "signal {s}");
    }
}

/// S11 ignored_sigchld: with SIGCHLD ignored, a SIGCHLD sent with kill() is counted by
/// NetBSD and not by FreeBSD (which records no ignored SIGCHLD); a child's exit posts none
/// (BSD and Linux send none to a parent that ignores SIGCHLD) and the child is reaped by
/// the system, as without the library.
fn s11_ignored_sigchld(p: Personality) {
    let s = libc::SIGCHLD;
    set_raw(s, libc::SIG_IGN, 0);
    let kq = kq(p);
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    raise(s);
    match p {
        Personality::NetBsd => assert_eq!(one(&kq).data, 1),
        _ => expect_no_events(&kq),
    }
    // SAFETY: the child exits at once.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: exits the child.
        unsafe { libc::_exit(0) };
    }
    assert!(child > 0);
    // Reaped by the system: waitpid waits for it, then finds no child.
    let mut status = 0;
    // SAFETY: waits for any child.
    let r = unsafe { libc::waitpid(child, &mut status, 0) };
    assert_eq!(r, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ECHILD)
    );
    expect_no_events(&kq);
    // With SIGCHLD at its default, a child's exit is a post (both kernels).
    // SAFETY: restores SIGCHLD's default through the library.
    unsafe { kq::signal::set_action(s, &kq::signal::default()) }.unwrap();
    // SAFETY: as above.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: exits the child.
        unsafe { libc::_exit(0) };
    }
    assert_eq!(one(&kq).data, 1);
    // SAFETY: reaps the child.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
}

/// S12 wait_not_interrupted: a `kevent()` sleeping without a timeout in the thread that
/// takes an ignored, watched signal returns the signal's event, not EINTR; a `kevent()` on
/// a kqueue that does not watch it fails with EINTR (the signal had to be caught).
fn s12_wait_not_interrupted(p: Personality) {
    let s = libc::SIGUSR1;
    set_raw(s, libc::SIG_IGN, 0);
    let kq = std::sync::Arc::new(kq(p));
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    let other = util::kq(p);
    for watching in [true, false] {
        let (tx, rx) = std::sync::mpsc::channel();
        let k = std::sync::Arc::clone(&kq);
        let other_fd = {
            use std::os::fd::AsRawFd;
            other.as_raw_fd()
        };
        let waiter = std::thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            let mut ev = [Kevent::default()];
            if watching {
                k.kevent(&[], &mut ev, None).map(|n| (n, ev[0].data))
            } else {
                // SAFETY: the descriptor is borrowed while `other` lives (joined below).
                let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(other_fd) };
                let found = Kqueue::find(fd).unwrap();
                found
                    .kevent(&[], &mut ev, Some(Duration::from_secs(5)))
                    .map(|n| (n, ev[0].data))
            }
        });
        let thread = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: the thread is alive until joined.
        assert_eq!(unsafe { libc::pthread_kill(thread, s) }, 0);
        let r = waiter.join().unwrap();
        if watching {
            assert_eq!(r.unwrap(), (1, 1));
        } else {
            assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EINTR));
            assert_eq!(one(&kq).data, 1);
        }
    }
}

/// S13 default_stop: a process that watches SIGTSTP with its default action still stops
/// by it (reported to its parent as stopped by SIGTSTP), goes on once continued, and
/// counted the post.
fn s13_default_stop(p: Personality) {
    // SAFETY: the child uses the library and exits.
    let child = unsafe { libc::fork() };
    assert!(child >= 0);
    if child == 0 {
        // A process group of its own, whose parent is in another group of the session:
        // not orphaned, so the kernel does not discard a default-action SIGTSTP (as it
        // would in an orphaned group, whatever runs the tests).
        // SAFETY: plain call on this process.
        unsafe { libc::setpgid(0, 0) };
        let kq = kq(p);
        ch_ok(&kq, &[sig(libc::SIGTSTP, EV_ADD)]);
        raise(libc::SIGTSTP);
        let evs = poll(&kq, 4);
        let code = if evs.len() == 1 && evs[0].data == 1 {
            0
        } else {
            3
        };
        // SAFETY: exits the child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our child, reporting stops.
    assert_eq!(
        unsafe { libc::waitpid(child, &mut status, libc::WUNTRACED) },
        child
    );
    assert!(
        libc::WIFSTOPPED(status) && libc::WSTOPSIG(status) == libc::SIGTSTP,
        "status {status:#x}"
    );
    // SAFETY: continues our child.
    assert_eq!(unsafe { libc::kill(child, libc::SIGCONT) }, 0);
    // SAFETY: waits for our child.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status:#x}"
    );
}

/// S14 resethand: a handler with SA_RESETHAND runs once, the action then being the default
/// (here SIGURG's: ignore); every post is counted.
fn s14_resethand(p: Personality) {
    let s = libc::SIGURG;
    let kq = kq(p);
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    let mut a = kq::signal::default();
    a.sa_sigaction = count_handler as extern "C" fn(i32) as usize;
    a.sa_flags = libc::SA_RESETHAND;
    // SAFETY: the handler only counts.
    unsafe { kq::signal::set_action(s, &a) }.unwrap();
    raise(s);
    raise(s);
    assert_eq!(HANDLED.load(Ordering::SeqCst), 1);
    assert_eq!(kq::signal::action(s).unwrap().sa_sigaction, libc::SIG_DFL);
    assert_eq!(one(&kq).data, 2);
}

/// S15 kqueue_descriptor_readable: a post makes the kqueue descriptor readable (poll(2))
/// with no thread of the library awake, and a kqueue watching that kqueue sees it.
fn s15_kqueue_descriptor_readable(p: Personality) {
    use std::os::fd::AsRawFd;
    let s = libc::SIGUSR1;
    set_raw(s, libc::SIG_IGN, 0);
    let kq = kq(p);
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    let outer = util::kq(p);
    let read = Kevent::new(
        kq.as_raw_fd() as usize,
        kq::EVFILT_READ,
        EV_ADD,
        0,
        0,
        null_mut(),
    );
    ch_ok(&outer, &[read]);
    assert_eq!(util::poll_fd(&kq, 0), 0);
    raise(s);
    assert_ne!(util::poll_fd(&kq, 1000) & libc::POLLIN, 0);
    let ev = get(&outer, 4, Some(Duration::from_secs(5)));
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].filter, kq::EVFILT_READ);
    assert_eq!(one(&kq).data, 1);
    assert_eq!(util::poll_fd(&kq, 0), 0);
}

/// S17 concurrent_watch_and_posts: while one thread posts a signal to itself 2000 times,
/// another adds and deletes a knote on it over and over (the library's handler installed
/// and removed each time) and a third switches the program's action between SIG_IGN and a
/// counting handler: a knote that stays counts every post, and the process never takes
/// the signal's default action (which would kill it).
fn s17_concurrent_watch_and_posts(p: Personality) {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    const POSTS: usize = 2000;
    let s = libc::SIGUSR1;
    set_raw(s, libc::SIG_IGN, 0);
    let stay = kq(p);
    ch_ok(&stay, &[sig(s, EV_ADD)]);
    let stop = Arc::new(AtomicBool::new(false));
    let toggler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let k = util::kq(p);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                ch_ok(&k, &[sig(s, EV_ADD)]);
                ch_ok(&k, &[sig(s, EV_DELETE)]);
                n += 1;
            }
            n
        })
    };
    let switcher = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut h = kq::signal::default();
            h.sa_sigaction = count_handler as extern "C" fn(i32) as usize;
            while !stop.load(Ordering::SeqCst) {
                // SAFETY: SIG_IGN, or a handler that only counts.
                unsafe {
                    kq::signal::set_action(s, &kq::signal::ignore()).unwrap();
                    kq::signal::set_action(s, &h).unwrap();
                }
            }
        })
    };
    let mut counted = 0;
    for i in 0..POSTS {
        raise(s);
        if i % 100 == 99 {
            counted += poll(&stay, 4).iter().map(|e| e.data).sum::<isize>();
        }
    }
    stop.store(true, Ordering::SeqCst);
    assert!(toggler.join().unwrap() > 0);
    switcher.join().unwrap();
    counted += poll(&stay, 4).iter().map(|e| e.data).sum::<isize>();
    assert_eq!(counted, POSTS as isize);
    assert!(HANDLED.load(Ordering::SeqCst) <= POSTS);
}

isolated_both!(
    s1_sig,
    s2_add_del_get_disable_enable_oneshot,
    s3_handler_still_runs,
    s4_default_terminate,
    s5_thread_directed,
    s6_two_kqueues,
    s7_action_restored,
    s8_fork,
    s9_uncatchable_accepted,
    s10_blocked_counted_on_delivery,
    s11_ignored_sigchld,
    s12_wait_not_interrupted,
    s13_default_stop,
    s14_resethand,
    s15_kqueue_descriptor_readable,
    s17_concurrent_watch_and_posts,
);

/// S16 action_of_unwatched: `kq::signal::action` and `set_action` are the C library's
/// sigaction for a signal no knote watches, and refuse what it refuses.
fn s16_action_of_unwatched() {
    let s = libc::SIGUSR2;
    // SAFETY: SIG_IGN runs no code.
    let old = unsafe { kq::signal::set_action(s, &kq::signal::ignore()) }.unwrap();
    assert_eq!(old.sa_sigaction, libc::SIG_DFL);
    assert_eq!(raw_action(s).sa_sigaction, libc::SIG_IGN);
    assert_eq!(kq::signal::action(s).unwrap().sa_sigaction, libc::SIG_IGN);
    // SAFETY: as above.
    let e = unsafe { kq::signal::set_action(libc::SIGKILL, &kq::signal::ignore()) };
    assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::EINVAL));
    assert_eq!(
        kq::signal::action(0).unwrap_err().raw_os_error(),
        Some(libc::EINVAL)
    );
}

isolated!(s16_action_of_unwatched);
