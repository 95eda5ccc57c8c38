//! Attacks on EVFILT_SIGNAL (docs/semantics.md §5.9, cases S1-S19 of §7.7): the library's
//! handler, the program's kept actions, the per-signal eventfds, under races, fork, low
//! descriptor limits and odd input.
//!
//! Signals and their actions are process-wide, so every test runs in a process of its own
//! (this binary re-executed to run only that test, see `isolated::in_child`).

#[macro_use]
mod isolated;
mod util;

use kq::{Kevent, Kqueue, Personality, EVFILT_SIGNAL, EV_ADD, EV_CLEAR, EV_DELETE};
use kq::{EV_DISABLE, EV_ENABLE, EV_ONESHOT};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use util::{ch, ch_ok, get, kq, poll, poll_fd};

fn sig(ident: i32, flags: u16) -> Kevent {
    Kevent::new(ident as usize, EVFILT_SIGNAL, flags, 0, 0, null_mut())
}

/// Sends `s` to the calling thread: delivered (and counted) before this returns.
fn raise(s: i32) {
    // SAFETY: raise only sends a signal.
    assert_eq!(unsafe { libc::raise(s) }, 0);
}

fn tgkill_self(s: i32) {
    // SAFETY: sends a signal to this thread.
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::syscall(libc::SYS_gettid),
            s,
        )
    };
}

fn action_of(handler: usize, flags: i32, mask: &[i32]) -> libc::sigaction {
    // SAFETY: all zeroes is a valid sigaction (empty mask).
    let mut a: libc::sigaction = unsafe { std::mem::zeroed() };
    a.sa_sigaction = handler;
    a.sa_flags = flags;
    for &m in mask {
        // SAFETY: sigaddset writes the set.
        unsafe { libc::sigaddset(&mut a.sa_mask, m) };
    }
    a
}

/// Sets the action of `s` with the C library's sigaction (as a program would).
fn set_raw(s: i32, handler: usize, flags: i32) -> libc::sigaction {
    let a = action_of(handler, flags, &[]);
    // SAFETY: all zeroes is a valid sigaction.
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

/// Same handler, flags (but SA_RESTORER, which the C library adds) and mask.
fn same(x: &libc::sigaction, y: &libc::sigaction) -> bool {
    const SA_RESTORER: i32 = 0x0400_0000;
    // SAFETY: sigismember reads the sets.
    let mask = (1..=64)
        .all(|n| unsafe { libc::sigismember(&x.sa_mask, n) == libc::sigismember(&y.sa_mask, n) });
    x.sa_sigaction == y.sa_sigaction
        && (x.sa_flags & !SA_RESTORER) == (y.sa_flags & !SA_RESTORER)
        && mask
}

fn ours_installed(s: i32, program: usize) -> bool {
    let h = raw_action(s).sa_sigaction;
    h != program && h != libc::SIG_DFL && h != libc::SIG_IGN
}

/// Sum of the `data` of the signal events of `kq` collected with a zero timeout.
fn drain(kq: &Kqueue, s: i32) -> isize {
    let mut total = 0;
    loop {
        let evs = poll(kq, 8);
        if evs.is_empty() {
            return total;
        }
        for e in evs {
            assert_eq!((e.ident, e.filter), (s as usize, EVFILT_SIGNAL), "{e:?}");
            assert!(e.data > 0, "{e:?}");
            total += e.data;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Readability of the kqueue descriptor.

/// S15 (attack) add_after_earlier_posts_not_readable: once a signal was posted while watched,
/// its eventfd stays readable for good; a new knote on it (in another kqueue) must not make
/// that kqueue's descriptor readable while it has nothing to report, and a post then must.
fn s15_add_after_earlier_posts_not_readable(p: Personality) {
    let s = libc::SIGUSR1;
    set_raw(s, libc::SIG_IGN, 0);
    let k1 = kq(p);
    ch_ok(&k1, &[sig(s, EV_ADD)]);
    raise(s);
    assert_eq!(drain(&k1, s), 1);
    let k2 = kq(p);
    assert_eq!(poll_fd(&k2, 0), 0);
    ch_ok(&k2, &[sig(s, EV_ADD)]);
    assert_eq!(poll_fd(&k2, 0), 0, "readable with nothing pending");
    raise(s);
    assert_eq!(poll_fd(&k2, 0), libc::POLLIN);
    assert_eq!(drain(&k2, s), 1);
    assert_eq!(poll_fd(&k2, 0), 0);
    // The same for a knote deleted and added again in one kqueue.
    ch_ok(&k2, &[sig(s, EV_DELETE)]);
    ch_ok(&k2, &[sig(s, EV_ADD)]);
    assert_eq!(poll_fd(&k2, 0), 0, "readable with nothing pending");
    assert_eq!(drain(&k1, s), 1);
}

// ---------------------------------------------------------------------------------------
// SA_RESETHAND and handlers that change things.

static RESET_CALLS: AtomicUsize = AtomicUsize::new(0);
extern "C" fn reset_handler(_: i32) {
    RESET_CALLS.fetch_add(1, Ordering::SeqCst);
}

/// S14 (attack) resethand_once_under_concurrent_delivery: a SA_RESETHAND handler runs once,
/// however many threads take the signal at the same moment (the others get the default:
/// SIGWINCH is ignored by default); every delivery is counted.
fn s14_resethand_once_concurrent(p: Personality) {
    let s = libc::SIGWINCH;
    let kq = kq(p);
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    const THREADS: usize = 6;
    let mut extra = 0;
    for round in 0..200 {
        RESET_CALLS.store(0, Ordering::SeqCst);
        let a = action_of(
            reset_handler as extern "C" fn(i32) as usize,
            libc::SA_RESETHAND,
            &[],
        );
        // SAFETY: the handler only counts.
        unsafe { kq::signal::set_action(s, &a) }.unwrap();
        let go = Arc::new(Barrier::new(THREADS));
        let ts: Vec<_> = (0..THREADS)
            .map(|_| {
                let go = Arc::clone(&go);
                std::thread::spawn(move || {
                    go.wait();
                    tgkill_self(s);
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        let calls = RESET_CALLS.load(Ordering::SeqCst);
        assert!(calls >= 1, "round {round}: handler not called");
        extra += calls - 1;
        assert_eq!(
            kq::signal::action(s).unwrap().sa_sigaction,
            libc::SIG_DFL,
            "round {round}"
        );
        assert_eq!(drain(&kq, s), THREADS as isize, "round {round}");
    }
    assert_eq!(extra, 0, "SA_RESETHAND handler called more than once");
}

static HANDLER_KQ: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);
static SELF_DELETE_CALLS: AtomicUsize = AtomicUsize::new(0);
static SELF_DELETE_RESULT: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn deleting_handler(s: i32) {
    SELF_DELETE_CALLS.fetch_add(1, Ordering::SeqCst);
    let fd = HANDLER_KQ.load(Ordering::SeqCst);
    // SAFETY: the kqueue lives until the test ends.
    let kq = kq::Kqueue::find(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }).unwrap();
    let r = kq.kevent(&[sig(s, EV_DELETE)], &mut [], None);
    SELF_DELETE_RESULT.store(
        match r {
            Ok(_) => 0,
            Err(e) => e.raw_os_error().unwrap_or(-1),
        },
        Ordering::SeqCst,
    );
}

/// S7 (attack) handler_deletes_last_knote: the program's handler deletes the last knote on
/// its own signal: the program's action is back at once (exactly), the handler ran once,
/// the next post runs it directly.
fn s7_handler_deletes_last_knote(p: Personality) {
    let s = libc::SIGUSR2;
    let prog = action_of(
        deleting_handler as extern "C" fn(i32) as usize,
        libc::SA_RESTART,
        &[libc::SIGHUP],
    );
    // SAFETY: valid action.
    assert_eq!(unsafe { libc::sigaction(s, &prog, null_mut()) }, 0);
    let before = raw_action(s);
    let kq = Kqueue::builder().personality(p).build().unwrap();
    let fd = kq.try_into_fd().unwrap();
    HANDLER_KQ.store(std::os::fd::AsRawFd::as_raw_fd(&fd), Ordering::SeqCst);
    let k = kq::Kqueue::find(std::os::fd::AsFd::as_fd(&fd)).unwrap();
    k.kevent(&[sig(s, EV_ADD)], &mut [], None).unwrap();
    assert!(ours_installed(s, prog.sa_sigaction));
    raise(s);
    assert_eq!(SELF_DELETE_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(SELF_DELETE_RESULT.load(Ordering::SeqCst), 0);
    assert!(same(&raw_action(s), &before), "restored from the handler");
    let mut evs = [Kevent::default(); 2];
    assert_eq!(
        k.kevent(&[], &mut evs, Some(Duration::ZERO)).unwrap(),
        0,
        "the knote is gone with its event"
    );
    raise(s);
    assert_eq!(SELF_DELETE_CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(SELF_DELETE_RESULT.load(Ordering::SeqCst), libc::ENOENT);
}

static CHANGER_CALLS: AtomicUsize = AtomicUsize::new(0);
static SECOND_CALLS: AtomicUsize = AtomicUsize::new(0);
extern "C" fn second_handler(_: i32) {
    SECOND_CALLS.fetch_add(1, Ordering::SeqCst);
}
extern "C" fn changing_handler(s: i32) {
    CHANGER_CALLS.fetch_add(1, Ordering::SeqCst);
    let a = action_of(second_handler as extern "C" fn(i32) as usize, 0, &[]);
    // SAFETY: the handler only counts.
    let old = unsafe { kq::signal::set_action(s, &a) }.unwrap();
    assert_eq!(
        old.sa_sigaction,
        changing_handler as extern "C" fn(i32) as usize
    );
}

/// S3 (attack) handler_changes_own_action: a handler replaces its own action through
/// `kq::signal::set_action`; the next post runs the new handler, both are counted.
fn s3_handler_changes_own_action(p: Personality) {
    let s = libc::SIGUSR1;
    let kq = kq(p);
    set_raw(s, changing_handler as extern "C" fn(i32) as usize, 0);
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    raise(s);
    raise(s);
    assert_eq!(CHANGER_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(SECOND_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(drain(&kq, s), 2);
    ch_ok(&kq, &[sig(s, EV_DELETE)]);
    assert_eq!(
        raw_action(s).sa_sigaction,
        second_handler as extern "C" fn(i32) as usize
    );
}

// ---------------------------------------------------------------------------------------
// siginfo.

/// Queues real-time signal `s` with value `v` to the calling thread (rt_tgsigqueueinfo,
/// `si_code` SI_QUEUE), as sigqueue() would to the process.
fn queue_here(s: i32, v: u64) {
    // siginfo_t on Linux: si_signo, si_errno, si_code (ints), then at offset 16 si_pid,
    // si_uid and at 24 si_value.
    let mut info = [0u64; 16];
    // SAFETY: getpid/getuid take no arguments.
    let (pid, uid) = unsafe { (libc::getpid(), libc::getuid()) };
    info[0] = s as u32 as u64;
    info[1] = libc::SI_QUEUE as u32 as u64;
    info[2] = pid as u32 as u64 | (uid as u64) << 32;
    info[3] = v;
    // SAFETY: a siginfo buffer of the kernel's size; sends to this thread.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            pid,
            libc::syscall(libc::SYS_gettid),
            s,
            info.as_ptr(),
        )
    };
    assert_eq!(
        r,
        0,
        "rt_tgsigqueueinfo: {}",
        std::io::Error::last_os_error()
    );
}

static INFO_SEEN: std::sync::Mutex<Vec<(i32, i32, i32, usize)>> = std::sync::Mutex::new(Vec::new());
static INFO_COUNT: AtomicUsize = AtomicUsize::new(0);
static INFO_SLOTS: [std::sync::atomic::AtomicU64; 64] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 64];
extern "C" fn info_record(s: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel's siginfo for an SA_SIGINFO handler.
    let i = unsafe { &*info };
    // SAFETY: si_value is valid for sigqueue().
    let v = unsafe { i.si_value().sival_ptr } as usize as u64;
    let n = INFO_COUNT.fetch_add(1, Ordering::SeqCst);
    if n < 64 {
        INFO_SLOTS[n].store(
            (s as u64)
                | ((i.si_signo as u64) << 8)
                | ((i.si_code as u8 as u64) << 16)
                | v << 24
                | ((!ctx.is_null()) as u64) << 63,
            Ordering::SeqCst,
        );
    }
}

/// S3 (attack) siginfo_passed_on: an SA_SIGINFO handler of a watched real-time signal gets
/// the siginfo of each post (signal, SI_QUEUE, the value sent by sigqueue) and a context.
fn s3_siginfo_passed_on(p: Personality) {
    let s = libc::SIGRTMIN() + 2;
    let kq = kq(p);
    let a = action_of(
        info_record as extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) as usize,
        libc::SA_SIGINFO,
        &[],
    );
    // SAFETY: valid action.
    assert_eq!(unsafe { libc::sigaction(s, &a, null_mut()) }, 0);
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    // Queued while blocked, then delivered in order.
    // SAFETY: blocks a signal in this thread.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigaddset(&mut set, s);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
    }
    for v in 1..=5u64 {
        queue_here(s, v);
    }
    // SAFETY: restores the mask: the five are delivered.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, null_mut()) };
    assert_eq!(INFO_COUNT.load(Ordering::SeqCst), 5);
    for (k, slot) in INFO_SLOTS.iter().take(5).enumerate() {
        let w = slot.load(Ordering::SeqCst);
        assert_eq!(w & 0xff, s as u64);
        assert_eq!((w >> 8) & 0xff, s as u64, "si_signo");
        assert_eq!((w >> 16) & 0xff, libc::SI_QUEUE as u8 as u64, "si_code");
        assert_eq!((w >> 24) & 0xffff, k as u64 + 1, "si_value");
        assert_eq!(w >> 63, 1, "context");
    }
    assert_eq!(drain(&kq, s), 5);
    let _ = &INFO_SEEN;
}

// ---------------------------------------------------------------------------------------
// Storms.

static STORM_CALLS: AtomicUsize = AtomicUsize::new(0);
extern "C" fn storm_handler(_: i32) {
    STORM_CALLS.fetch_add(1, Ordering::SeqCst);
}

/// S17 (attack) storm_with_add_delete_in_many_kqueues: real-time signals queued from
/// several threads while other threads add and delete knotes on the signal in several
/// kqueues (and close kqueues that still watch it): the program's handler runs exactly once
/// per signal, a knote that lived through the storm counts every one, and the program's
/// action is back exactly at the end.
fn s17_storm_with_add_delete(p: Personality) {
    let s = libc::SIGRTMIN() + 3;
    let prog = action_of(
        storm_handler as extern "C" fn(i32) as usize,
        libc::SA_RESTART | libc::SA_NODEFER,
        &[libc::SIGHUP, libc::SIGPIPE],
    );
    // SAFETY: valid action.
    assert_eq!(unsafe { libc::sigaction(s, &prog, null_mut()) }, 0);
    let before = raw_action(s);
    let keeper = kq(p);
    ch_ok(&keeper, &[sig(s, EV_ADD)]);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..3)
        .map(|_| {
            let sent = Arc::clone(&sent);
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    let val = libc::sigval {
                        sival_ptr: null_mut(),
                    };
                    // SAFETY: queues a signal to this process.
                    if unsafe { libc::sigqueue(libc::getpid(), s, val) } == 0 {
                        sent.fetch_add(1, Ordering::SeqCst);
                    } else {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let churners: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let ks: Vec<Kqueue> = (0..3).map(|_| kq(p)).collect();
                    for k in &ks {
                        ch_ok(k, &[sig(s, EV_ADD)]);
                    }
                    ch_ok(&ks[0], &[sig(s, EV_DELETE)]);
                    let _ = poll(&ks[1], 4);
                    ch_ok(&ks[1], &[sig(s, EV_DISABLE)]);
                    ch_ok(&ks[1], &[sig(s, EV_ENABLE)]);
                    n += 1;
                    drop(ks); // two of them still watching
                }
                n
            })
        })
        .collect();
    let mut counted = 0;
    for t in senders {
        t.join().unwrap();
        counted += drain(&keeper, s);
    }
    stop.store(true, Ordering::SeqCst);
    for t in churners {
        assert!(t.join().unwrap() > 0);
    }
    // Every queued signal is delivered by now (each sender's own thread or another).
    let deadline = Instant::now() + Duration::from_secs(5);
    let total = sent.load(Ordering::SeqCst);
    while STORM_CALLS.load(Ordering::SeqCst) < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    counted += drain(&keeper, s);
    assert_eq!(STORM_CALLS.load(Ordering::SeqCst), total, "handler calls");
    assert_eq!(counted as usize, total, "counted by the knote that stayed");
    ch_ok(&keeper, &[sig(s, EV_DELETE)]);
    assert!(same(&raw_action(s), &before), "action restored exactly");
}

// ---------------------------------------------------------------------------------------
// Default actions.

/// S4 (attack) default_core_dump: a watched signal whose default dumps core (SIGQUIT raised,
/// SIGSEGV from a real fault, SIGABRT from abort()) still kills the process by that signal.
fn s4_default_core_dump(p: Personality) {
    for (what, expect) in [
        (0, libc::SIGQUIT),
        (1, libc::SIGSEGV),
        (2, libc::SIGABRT),
        (3, libc::SIGSYS),
    ] {
        // SAFETY: the child uses the library and dies.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            // No core file for the test.
            let lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: plain call.
            unsafe { libc::setrlimit(libc::RLIMIT_CORE, &lim) };
            let kq = kq(p);
            ch_ok(&kq, &[sig(expect, EV_ADD)]);
            match what {
                0 => raise(libc::SIGQUIT),
                3 => raise(libc::SIGSYS),
                1 => {
                    // SAFETY: deliberately faults.
                    unsafe {
                        std::ptr::write_volatile(std::ptr::without_provenance_mut::<u64>(16), 1)
                    };
                }
                2 => std::process::abort(),
                _ => {}
            }
            // SAFETY: exits the child (not reached if the signal killed it).
            unsafe { libc::_exit(4) };
        }
        let mut status = 0;
        // SAFETY: waits for our child.
        assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == expect,
            "case {what}: status {status:#x}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Descriptor limits.

/// S7 (attack) emfile_first_knote: with no descriptor left for the signal's eventfd, the
/// first EV_ADD on a signal fails with EMFILE and leaves no trace (the action untouched, no
/// knote); once a descriptor is free it works.
fn s7_emfile_first_knote(p: Personality) {
    let s = libc::SIGUSR1;
    set_raw(s, libc::SIG_IGN, 0);
    let kq = kq(p);
    // Make a kqueue's other descriptors exist first (user event).
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain calls.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let mut fillers = Vec::new();
    loop {
        // SAFETY: plain call.
        let fd = unsafe { libc::dup(0) };
        if fd < 0 {
            break;
        }
        fillers.push(fd);
        if fillers.len() > 100_000 {
            break;
        }
    }
    let lower = libc::rlimit {
        rlim_cur: (fillers.last().copied().unwrap_or(3) + 1) as u64,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: plain call.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lower) };
    let r = ch(&kq, &[sig(s, EV_ADD)]);
    let e = r.expect_err("EV_ADD with no descriptor left");
    assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
    assert_eq!(raw_action(s).sa_sigaction, libc::SIG_IGN);
    let r = ch(&kq, &[sig(s, EV_DELETE)]);
    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ENOENT));
    // SAFETY: closes our fillers.
    unsafe { libc::close(fillers.pop().unwrap()) };
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    raise(s);
    assert_eq!(drain(&kq, s), 1);
    ch_ok(&kq, &[sig(s, EV_DELETE)]);
    assert_eq!(raw_action(s).sa_sigaction, libc::SIG_IGN);
    for fd in fillers {
        // SAFETY: closes our fillers.
        unsafe { libc::close(fd) };
    }
    // SAFETY: plain call.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
}

// ---------------------------------------------------------------------------------------
// Fork.

/// S8 (attack) fork_while_signals_fly: threads queue signals to the process while the main
/// thread forks again and again; each child finds the program's action back (exactly, in
/// the kernel), can watch the signal in a kqueue of its own and count its own posts, and its
/// posts do not reach the parent's knote; the parent counts every signal it was sent.
fn s8_fork_while_signals_fly(p: Personality) {
    let s = libc::SIGRTMIN() + 4;
    let prog = action_of(
        storm_handler as extern "C" fn(i32) as usize,
        libc::SA_RESTART,
        &[libc::SIGHUP],
    );
    // SAFETY: valid action.
    assert_eq!(unsafe { libc::sigaction(s, &prog, null_mut()) }, 0);
    let before = raw_action(s);
    let keeper = kq(p);
    ch_ok(&keeper, &[sig(s, EV_ADD)]);
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let sent = Arc::clone(&sent);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let val = libc::sigval {
                        sival_ptr: null_mut(),
                    };
                    // SAFETY: queues a signal to this process.
                    if unsafe { libc::sigqueue(libc::getpid(), s, val) } == 0 {
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
            })
        })
        .collect();
    let mut counted = 0;
    for round in 0..40 {
        // SAFETY: the child only makes async-signal-safe calls and the library's, and exits.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            let code = (|| {
                let now = raw_action(s);
                if !same(&now, &before) {
                    return 10;
                }
                let Ok(k) = Kqueue::with_personality(p) else {
                    return 11;
                };
                if keeper
                    .kevent(&[], &mut [], None)
                    .err()
                    .and_then(|e| e.raw_os_error())
                    != Some(libc::EBADF)
                {
                    return 12;
                }
                if k.kevent(&[sig(s, EV_ADD)], &mut [], None).is_err() {
                    return 13;
                }
                for _ in 0..3 {
                    raise(s);
                }
                let mut evs = [Kevent::default(); 4];
                match k.kevent(&[], &mut evs, Some(Duration::ZERO)) {
                    Ok(1) if evs[0].data == 3 => {}
                    _ => return 14,
                }
                drop(k);
                if !same(&raw_action(s), &before) {
                    return 15;
                }
                0
            })();
            // SAFETY: exits the child.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our child.
        loop {
            let r = unsafe { libc::waitpid(child, &mut status, 0) };
            if r == child {
                break;
            }
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EINTR)
            );
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "round {round}: status {status:#x}"
        );
        counted += drain(&keeper, s);
    }
    stop.store(true, Ordering::SeqCst);
    for t in senders {
        t.join().unwrap();
    }
    let total = sent.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    while STORM_CALLS.load(Ordering::SeqCst) < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    counted += drain(&keeper, s);
    assert_eq!(STORM_CALLS.load(Ordering::SeqCst), total);
    assert_eq!(counted as usize, total);
}

// ---------------------------------------------------------------------------------------
// Odd input.

/// S9 (attack) odd_input: fflags and data of the change are ignored (delivered fflags 0, data
/// the count); huge, negative and zero idents are accepted and never fire; every flag
/// combination with EV_ADD leaves the program's action intact.
fn s9_odd_input(p: Personality) {
    let s = libc::SIGUSR1;
    set_raw(s, libc::SIG_IGN, 0);
    let kq = kq(p);
    let odd = Kevent::new(
        s as usize,
        EVFILT_SIGNAL,
        EV_ADD,
        0xffff_ffff,
        -7,
        null_mut(),
    );
    ch_ok(&kq, &[odd]);
    raise(s);
    let evs = get(&kq, 4, Some(Duration::from_secs(5)));
    assert_eq!(evs.len(), 1);
    assert_eq!((evs[0].fflags, evs[0].data), (0, 1), "{:?}", evs[0]);
    assert!(evs[0].flags & EV_CLEAR != 0);
    ch_ok(&kq, &[sig(s, EV_DELETE)]);
    for ident in [
        0usize,
        65,
        128,
        usize::MAX,
        usize::MAX - 1,
        1 << 32,
        (1 << 32) + 10,
        32,
        33,
    ] {
        ch_ok(
            &kq,
            &[Kevent::new(ident, EVFILT_SIGNAL, EV_ADD, 0, 0, null_mut())],
        );
        ch_ok(
            &kq,
            &[Kevent::new(
                ident,
                EVFILT_SIGNAL,
                EV_DELETE,
                0,
                0,
                null_mut(),
            )],
        );
    }
    // (1<<32)+10 must not alias SIGUSR1 (10).
    ch_ok(
        &kq,
        &[Kevent::new(
            (1 << 32) + s as usize,
            EVFILT_SIGNAL,
            EV_ADD,
            0,
            0,
            null_mut(),
        )],
    );
    raise(s);
    assert!(poll(&kq, 4).is_empty());
    assert_eq!(raw_action(s).sa_sigaction, libc::SIG_IGN);
    ch_ok(
        &kq,
        &[Kevent::new(
            (1 << 32) + s as usize,
            EVFILT_SIGNAL,
            EV_DELETE,
            0,
            0,
            null_mut(),
        )],
    );
    for bits in 0u16..256 {
        let flags = EV_ADD | bits;
        let r = kq.kevent(&[sig(s, flags)], &mut [], None);
        let _ = r;
        let _ = kq.kevent(&[sig(s, EV_DELETE)], &mut [], None);
        assert_eq!(
            raw_action(s).sa_sigaction,
            libc::SIG_IGN,
            "flags {flags:#x}"
        );
    }
    let _ = EV_ONESHOT;
}

static REENTER_KQ: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);
static REENTER_OK: AtomicUsize = AtomicUsize::new(0);
static REENTER_DEADLK: AtomicUsize = AtomicUsize::new(0);
static REENTER_OTHER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn reentering_handler(_: i32) {
    let fd = REENTER_KQ.load(Ordering::SeqCst);
    // SAFETY: the kqueue lives until the test ends.
    let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    // Changes that allocate nothing (adding a knote allocates, which a handler may do only
    // where malloc() may be called: not when it interrupted an allocation).
    let r = kq::Kqueue::find(b).and_then(|k| {
        k.kevent(&[sig(libc::SIGUSR2, EV_DISABLE)], &mut [], None)?;
        k.kevent(&[sig(libc::SIGUSR2, EV_ENABLE)], &mut [], None)
    });
    match r {
        Ok(_) => REENTER_OK.fetch_add(1, Ordering::SeqCst),
        Err(e) if e.raw_os_error() == Some(libc::EDEADLK) => {
            REENTER_DEADLK.fetch_add(1, Ordering::SeqCst)
        }
        Err(e) => {
            REENTER_OTHER.store(e.raw_os_error().unwrap_or(-1), Ordering::SeqCst);
            0
        }
    };
}

/// S17 (attack) handler_kevent_during_library_calls: a watched signal's handler disables
/// and enables a signal knote with kevent() while the thread it interrupted is inside the
/// library (making and closing kqueues, kevent() on another kqueue): the handler's call
/// works or fails with EDEADLK, and nothing hangs.
fn s17_handler_kevent_during_library_calls(p: Personality) {
    let s = libc::SIGUSR1;
    set_raw(s, reentering_handler as extern "C" fn(i32) as usize, 0);
    set_raw(libc::SIGUSR2, libc::SIG_IGN, 0);
    let k0 = Kqueue::builder().personality(p).build().unwrap();
    ch_ok(&k0, &[sig(libc::SIGUSR2, EV_ADD)]);
    let fd = k0.try_into_fd().unwrap();
    REENTER_KQ.store(std::os::fd::AsRawFd::as_raw_fd(&fd), Ordering::SeqCst);
    let watcher = kq(p);
    ch_ok(&watcher, &[sig(s, EV_ADD)]);
    // SAFETY: the calling thread's handle.
    let main = unsafe { libc::pthread_self() };
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = Arc::clone(&stop);
        let main = main as usize;
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                // SAFETY: the main thread outlives this one.
                unsafe { libc::pthread_kill(main as libc::pthread_t, s) };
                std::thread::sleep(Duration::from_micros(20));
            }
        })
    };
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed() < Duration::from_secs(3) {
        let k = kq(p);
        ch_ok(&k, &[util::user(1, EV_ADD, 0, 0)]);
        let _ = poll(&k, 2);
        let _ = poll(&watcher, 2);
        let raw = Kqueue::new_raw_fd(p).unwrap();
        // SAFETY: our descriptor.
        drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) });
        kq::fdclose(raw);
        drop(k);
        rounds += 1;
    }
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    assert_eq!(REENTER_OTHER.load(Ordering::SeqCst), 0);
    assert!(REENTER_OK.load(Ordering::SeqCst) > 0);
    eprintln!(
        "rounds {rounds}, ok {}, EDEADLK {}",
        REENTER_OK.load(Ordering::SeqCst),
        REENTER_DEADLK.load(Ordering::SeqCst)
    );
}

static REARMS: AtomicUsize = AtomicUsize::new(0);
extern "C" fn rearming_handler(s: i32) {
    REARMS.fetch_add(1, Ordering::SeqCst);
    let a = action_of(
        rearming_handler as extern "C" fn(i32) as usize,
        libc::SA_RESETHAND,
        &[],
    );
    // SAFETY: this handler only counts and re-arms itself.
    let _ = unsafe { kq::signal::set_action(s, &a) };
}

/// S19 (attack) fork_while_handler_allocates: one thread forks again and again while another
/// allocates memory and takes a watched signal whose SA_RESETHAND handler re-arms itself
/// (the library's table is taken in the handler): no deadlock between the fork, which
/// holds the table and then takes the allocator's locks, and the handler, which interrupted
/// a thread holding an allocator lock.
fn s19_fork_while_handler_allocates(p: Personality) {
    let s = libc::SIGWINCH;
    let kq = kq(p);
    let a = action_of(
        rearming_handler as extern "C" fn(i32) as usize,
        libc::SA_RESETHAND,
        &[],
    );
    // SAFETY: valid action.
    unsafe { kq::signal::set_action(s, &a) }.unwrap();
    set_raw(libc::SIGUSR2, libc::SIG_IGN, 0);
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    let stop = Arc::new(AtomicBool::new(false));
    let allocators: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut keep: Vec<Vec<u8>> = Vec::new();
                let mut i = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    keep.push(vec![1u8; 16 + (i * 7919) % 4000]);
                    if keep.len() > 64 {
                        keep.drain(..32);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    // SAFETY: pthread handles of live threads.
    let targets: Vec<usize> = allocators
        .iter()
        .map(|t| std::os::unix::thread::JoinHandleExt::as_pthread_t(t) as usize)
        .collect();
    let sender = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                for &t in &targets {
                    // SAFETY: the targets live until `stop`.
                    unsafe { libc::pthread_kill(t as libc::pthread_t, s) };
                }
                std::thread::sleep(Duration::from_micros(30));
            }
        })
    };
    let start = Instant::now();
    let mut forks = 0;
    while start.elapsed() < Duration::from_secs(4) {
        // SAFETY: the child exits at once.
        let child = unsafe { libc::fork() };
        if child == 0 {
            // The program's action is back (the handler, or the default it reset to), and
            // the child can watch a signal (the table is usable).
            let h = raw_action(s).sa_sigaction;
            let mut code = 0;
            if h != rearming_handler as extern "C" fn(i32) as usize && h != libc::SIG_DFL {
                code = 1;
            } else if let Ok(k) = Kqueue::with_personality(p) {
                if k.kevent(&[sig(libc::SIGUSR2, EV_ADD)], &mut [], None)
                    .is_err()
                {
                    code = 2;
                } else {
                    tgkill_self(libc::SIGUSR2);
                    let mut evs = [Kevent::default(); 2];
                    match k.kevent(&[], &mut evs, Some(Duration::ZERO)) {
                        Ok(1) if evs[0].data == 1 => {}
                        _ => code = 3,
                    }
                }
            } else {
                code = 4;
            }
            // SAFETY: exits the child.
            unsafe { libc::_exit(code) };
        }
        assert!(child > 0);
        let mut status = 0;
        // SAFETY: waits for our child.
        while unsafe { libc::waitpid(child, &mut status, 0) } != child {}
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child status {status:#x}"
        );
        forks += 1;
    }
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    for t in allocators {
        t.join().unwrap();
    }
    eprintln!(
        "forks {forks}, handler runs {}",
        REARMS.load(Ordering::SeqCst)
    );
    assert!(REARMS.load(Ordering::SeqCst) > 0);
}

extern "C" fn plain_handler(_: i32) {}

/// S7 (attack) raw_change_survives_delete: a program that replaced the library's handler
/// with a plain sigaction() (not seen by the library: the counting stops) keeps the action
/// it set when the last knote goes (EV_DELETE, or the kqueue's close): the library puts the
/// program's kept action back only where its own handler is still installed.
fn s7_raw_change_survives_delete(p: Personality) {
    let s = libc::SIGUSR1;
    set_raw(s, libc::SIG_IGN, 0);
    let kq = kq(p);
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    let h = plain_handler as extern "C" fn(i32) as usize;
    set_raw(s, h, libc::SA_RESTART);
    ch_ok(&kq, &[sig(s, EV_DELETE)]);
    assert_eq!(raw_action(s).sa_sigaction, h, "the program's own change");
    // Watched again: the new action is the one kept, and put back.
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    assert_eq!(kq::signal::action(s).unwrap().sa_sigaction, h);
    set_raw(s, libc::SIG_IGN, 0);
    drop(kq);
    assert_eq!(raw_action(s).sa_sigaction, libc::SIG_IGN);
}

/// S11 (attack) sigchld_flags_restored: the library's action for an ignored SIGCHLD carries
/// SA_NOCLDWAIT (so the kernel reaps); once the knote goes the program's flags are back
/// exactly (no SA_NOCLDWAIT left behind: children become zombies again when SIGCHLD is
/// SIG_DFL with SA_NOCLDSTOP).
fn s11_sigchld_flags_restored(p: Personality) {
    let s = libc::SIGCHLD;
    set_raw(s, libc::SIG_DFL, libc::SA_NOCLDSTOP);
    let before = raw_action(s);
    let kq = kq(p);
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    // SAFETY: SIG_IGN runs no code.
    unsafe { kq::signal::set_action(s, &kq::signal::ignore()) }.unwrap();
    assert_ne!(raw_action(s).sa_flags & libc::SA_NOCLDWAIT, 0);
    let mut back = kq::signal::default();
    back.sa_flags = libc::SA_NOCLDSTOP;
    // SAFETY: SIG_DFL runs no code.
    unsafe { kq::signal::set_action(s, &back) }.unwrap();
    ch_ok(&kq, &[sig(s, EV_DELETE)]);
    let now = raw_action(s);
    assert!(same(&now, &before), "flags {:#x}", now.sa_flags);
    // A child's exit leaves a zombie to wait for.
    // SAFETY: the child exits at once.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: exits the child.
        unsafe { libc::_exit(7) };
    }
    let mut status = 0;
    // SAFETY: waits for our child.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7);
}

/// S8 (attack) exec_after_fork_keeps_ignored: a watched signal the program ignores is
/// ignored (not caught) in a program exec'ed by a forked child (/proc/self/status).
fn s8_exec_after_fork_keeps_ignored(p: Personality) {
    let s = libc::SIGUSR1;
    set_raw(s, libc::SIG_IGN, 0);
    let kq = kq(p);
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    let mut cmd = std::process::Command::new("/bin/cat");
    cmd.arg("/proc/self/status");
    // A pre_exec hook makes the standard library fork() (without one it may use
    // posix_spawn, whose child runs no fork handler: see personality.md).
    // SAFETY: the hook does nothing.
    unsafe { std::os::unix::process::CommandExt::pre_exec(&mut cmd, || Ok(())) };
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"));
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let bit = 1u64 << (s - 1);
    assert_ne!(field("SigIgn:") & bit, 0, "ignored after exec");
    assert_eq!(field("SigCgt:") & bit, 0);
    raise(s);
    assert_eq!(drain(&kq, s), 1);
}

/// S15 (attack) nested_edges_per_post: the kqueue descriptor in an epoll (EPOLLET) gives an
/// edge for every post, even with the earlier ones uncollected; a thread asleep in
/// kevent() on a kqueue watching this one wakes for a post made by another thread.
fn s15_nested_edges_per_post(p: Personality) {
    use std::os::fd::AsRawFd;
    let s = libc::SIGUSR2;
    set_raw(s, libc::SIG_IGN, 0);
    let inner = Arc::new(kq(p));
    ch_ok(&inner, &[sig(s, EV_ADD)]);
    // SAFETY: plain calls on our descriptors.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0);
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLET) as u32,
        u64: 7,
    };
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, inner.as_raw_fd(), &mut ev) },
        0
    );
    let wait = |ms: i32| {
        let mut out = [libc::epoll_event { events: 0, u64: 0 }; 2];
        // SAFETY: a valid buffer.
        unsafe { libc::epoll_wait(ep, out.as_mut_ptr(), 2, ms) }
    };
    assert_eq!(wait(0), 0);
    for k in 0..3 {
        raise(s);
        assert_eq!(wait(1000), 1, "edge for post {k}");
        assert_eq!(wait(0), 0);
    }
    assert_eq!(drain(&inner, s), 3);
    assert_eq!(poll_fd(&inner, 0), 0);
    // A sleeper on an outer kqueue.
    let outer = Arc::new(kq(p));
    ch_ok(
        &outer,
        &[Kevent::new(
            inner.as_raw_fd() as usize,
            kq::EVFILT_READ,
            EV_ADD | EV_CLEAR,
            0,
            0,
            null_mut(),
        )],
    );
    let sleeper = {
        let outer = Arc::clone(&outer);
        std::thread::spawn(move || get(&outer, 2, Some(Duration::from_secs(10))))
    };
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: sends to this process; ignored by the program.
    unsafe { libc::kill(libc::getpid(), s) };
    let evs = sleeper.join().unwrap();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].filter, kq::EVFILT_READ);
    assert_eq!(drain(&inner, s), 1);
    // SAFETY: our descriptor.
    unsafe { libc::close(ep) };
}

/// S7 (attack) closed_unseen_kqueue_restores: a kqueue handed out as a raw descriptor and
/// closed without the library being told (close() not interposed) is noticed by the
/// background sweep, which drops its knotes: the program's action comes back.
fn s7_closed_unseen_kqueue_restores(p: Personality) {
    let s = libc::SIGUSR1;
    set_raw(s, libc::SIG_IGN, 0);
    let fd = Kqueue::new_raw_fd(p).unwrap();
    {
        // SAFETY: our descriptor, open until the close below.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let k = Kqueue::find(b).unwrap();
        k.kevent(&[sig(s, EV_ADD)], &mut [], None).unwrap();
    }
    assert_ne!(raw_action(s).sa_sigaction, libc::SIG_IGN);
    // SAFETY: our descriptor.
    unsafe { libc::close(fd) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while raw_action(s).sa_sigaction != libc::SIG_IGN {
        assert!(Instant::now() < deadline, "action not restored");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// S7 (attack) no_descriptor_leak: many kqueues watching several signals, made and closed
/// (with and without EV_DELETE) again and again: the process ends with the descriptors it
/// had plus one eventfd per signal ever watched, and every action back.
fn s7_no_descriptor_leak(p: Personality) {
    let sigs = [libc::SIGUSR1, libc::SIGUSR2, libc::SIGRTMIN() + 5];
    for &s in &sigs {
        set_raw(s, libc::SIG_IGN, 0);
    }
    let count = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    // Warm up: the eventfds and the library's thread.
    {
        let k = kq(p);
        for &s in &sigs {
            ch_ok(&k, &[sig(s, EV_ADD)]);
        }
    }
    let base = count();
    for round in 0..300 {
        let ks: Vec<Kqueue> = (0..4).map(|_| kq(p)).collect();
        for (i, k) in ks.iter().enumerate() {
            for &s in &sigs {
                ch_ok(k, &[sig(s, EV_ADD)]);
            }
            if (i + round) % 2 == 0 {
                ch_ok(k, &[sig(sigs[0], EV_DELETE)]);
            }
        }
        raise(sigs[1]);
    }
    assert_eq!(count(), base);
    for &s in &sigs {
        assert_eq!(raw_action(s).sa_sigaction, libc::SIG_IGN);
    }
}

static ALT_LO: AtomicUsize = AtomicUsize::new(0);
static ALT_HI: AtomicUsize = AtomicUsize::new(0);
static ON_ALT: AtomicUsize = AtomicUsize::new(0);
static MASK_OK: AtomicUsize = AtomicUsize::new(0);
extern "C" fn where_handler(s: i32) {
    let local = 0u8;
    let a = std::ptr::addr_of!(local) as usize;
    if a >= ALT_LO.load(Ordering::SeqCst) && a < ALT_HI.load(Ordering::SeqCst) {
        ON_ALT.fetch_add(1, Ordering::SeqCst);
    }
    // SAFETY: reads this thread's mask.
    let mut cur: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur) };
    // SAFETY: sigismember reads the set.
    let (hup, own) = unsafe {
        (
            libc::sigismember(&cur, libc::SIGHUP),
            libc::sigismember(&cur, s),
        )
    };
    if hup == 1 && own == 1 {
        MASK_OK.fetch_add(1, Ordering::SeqCst);
    }
}

/// S3 (attack) handler_stack_and_mask: a program handler with SA_ONSTACK runs on the
/// alternate stack, with its sa_mask (SIGHUP) and its own signal blocked, as without the
/// library; the same after its action is changed while watched.
fn s3_handler_stack_and_mask(p: Personality) {
    let s = libc::SIGUSR1;
    let mut stack = vec![0u8; 256 * 1024];
    let lo = stack.as_mut_ptr() as usize;
    ALT_LO.store(lo, Ordering::SeqCst);
    ALT_HI.store(lo + stack.len(), Ordering::SeqCst);
    let ss = libc::stack_t {
        ss_sp: stack.as_mut_ptr().cast(),
        ss_flags: 0,
        ss_size: stack.len(),
    };
    // SAFETY: the stack lives until the end of the test (restored below).
    assert_eq!(unsafe { libc::sigaltstack(&ss, null_mut()) }, 0);
    let a = action_of(
        where_handler as extern "C" fn(i32) as usize,
        libc::SA_ONSTACK,
        &[libc::SIGHUP],
    );
    // SAFETY: valid action.
    assert_eq!(unsafe { libc::sigaction(s, &a, null_mut()) }, 0);
    let kq = kq(p);
    ch_ok(&kq, &[sig(s, EV_ADD)]);
    raise(s);
    assert_eq!(ON_ALT.load(Ordering::SeqCst), 1, "on the alternate stack");
    assert_eq!(MASK_OK.load(Ordering::SeqCst), 1, "mask in the handler");
    // SAFETY: the same handler.
    unsafe { kq::signal::set_action(s, &a) }.unwrap();
    raise(s);
    assert_eq!(ON_ALT.load(Ordering::SeqCst), 2);
    assert_eq!(MASK_OK.load(Ordering::SeqCst), 2);
    assert_eq!(drain(&kq, s), 2);
    drop(kq);
    let off = libc::stack_t {
        ss_sp: null_mut(),
        ss_flags: libc::SS_DISABLE,
        ss_size: 0,
    };
    // SAFETY: disables the alternate stack.
    unsafe { libc::sigaltstack(&off, null_mut()) };
}

static CLOSE_NUMBER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);
static CLOSES: AtomicUsize = AtomicUsize::new(0);
extern "C" fn closing_handler(_: i32) {
    // What an interposed close() does first: the library drops the number's knotes.
    kq::fdclose(CLOSE_NUMBER.load(Ordering::SeqCst));
    CLOSES.fetch_add(1, Ordering::SeqCst);
}

/// S17 (attack) handler_close_during_library_calls: a watched signal's handler closes a
/// descriptor that carries knotes (the library's part of an interposed close(), which is
/// async-signal-safe for numbers without knotes) while the thread it interrupted is inside
/// kevent(), holding the lock of the kqueue with those knotes: nothing hangs (the knotes
/// then stay, as for a close the library does not see, and never fire for another file).
fn s17_handler_close_during_library_calls(p: Personality) {
    use std::os::fd::AsRawFd;
    let s = libc::SIGUSR1;
    set_raw(s, closing_handler as extern "C" fn(i32) as usize, 0);
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    CLOSE_NUMBER.store(a.as_raw_fd(), Ordering::SeqCst);
    let k = kq(p);
    let watcher = kq(p);
    ch_ok(&watcher, &[sig(s, EV_ADD)]);
    // SAFETY: the calling thread's handle.
    let main = unsafe { libc::pthread_self() } as usize;
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                // SAFETY: the main thread outlives this one.
                unsafe { libc::pthread_kill(main as libc::pthread_t, s) };
                std::thread::sleep(Duration::from_micros(20));
            }
        })
    };
    let read = Kevent::new(
        a.as_raw_fd() as usize,
        kq::EVFILT_READ,
        EV_ADD,
        0,
        0,
        null_mut(),
    );
    // The loop allocates only inside kevent() (adding the knote again), where the handler's
    // close goes unseen: a close that drops knotes allocates, which a handler may do only
    // where malloc() may be called.
    let mut evs = [Kevent::default(); 2];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        let _ = k.kevent(&[read], &mut [], None);
        let _ = k.kevent(&[], &mut evs, Some(Duration::ZERO));
    }
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    assert!(CLOSES.load(Ordering::SeqCst) > 0);
    drop(b);
}

/// S6 (attack) concurrent_collectors: three threads collect one kqueue's signal events
/// while two threads queue real-time signals to the process: every event has data of at
/// least 1, and the data add up to the signals sent.
fn s6_concurrent_collectors(p: Personality) {
    let s = libc::SIGRTMIN() + 6;
    set_raw(s, libc::SIG_IGN, 0);
    let k = Arc::new(kq(p));
    ch_ok(&k, &[sig(s, EV_ADD)]);
    let stop = Arc::new(AtomicBool::new(false));
    let collectors: Vec<_> = (0..3)
        .map(|_| {
            let k = Arc::clone(&k);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut total = 0isize;
                let mut evs = [Kevent::default(); 4];
                loop {
                    let done = stop.load(Ordering::SeqCst);
                    match k.kevent(&[], &mut evs, Some(Duration::from_millis(20))) {
                        Ok(n) => {
                            for e in &evs[..n] {
                                assert_eq!(e.ident, s as usize);
                                assert!(e.data >= 1, "{e:?}");
                                total += e.data;
                            }
                            if n == 0 && done {
                                return total;
                            }
                        }
                        Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                        Err(e) => panic!("kevent: {e}"),
                    }
                }
            })
        })
        .collect();
    let sent = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let sent = Arc::clone(&sent);
            std::thread::spawn(move || {
                for _ in 0..3000 {
                    let val = libc::sigval {
                        sival_ptr: null_mut(),
                    };
                    // SAFETY: queues a signal to this process.
                    if unsafe { libc::sigqueue(libc::getpid(), s, val) } == 0 {
                        sent.fetch_add(1, Ordering::SeqCst);
                    } else {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for t in senders {
        t.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let total: isize = collectors.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(
        total as usize + drain(&k, s) as usize,
        sent.load(Ordering::SeqCst)
    );
}

/// S11 (attack) sigchld_beside_proc: one kqueue watches a child's exit (EVFILT_PROC
/// NOTE_EXIT) and SIGCHLD (its default action): both are reported for the child's exit, the
/// exit status intact, the child reapable, and the kqueue's sleeper is woken by them; the
/// same with SIGCHLD set to a counting handler, which runs once.
fn s11_sigchld_beside_proc(p: Personality) {
    for handled in [false, true] {
        if handled {
            set_raw(libc::SIGCHLD, count_chld as extern "C" fn(i32) as usize, 0);
        }
        let k = kq(p);
        ch_ok(&k, &[sig(libc::SIGCHLD, EV_ADD)]);
        let mut fds = [0; 2];
        // SAFETY: a pipe for the child to wait on.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only reads and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let mut b = [0u8; 1];
            // SAFETY: waits for the parent, then exits.
            unsafe {
                libc::read(fds[0], b.as_mut_ptr().cast(), 1);
                libc::_exit(9);
            }
        }
        assert!(pid > 0);
        let proc_add = Kevent::new(
            pid as usize,
            kq::EVFILT_PROC,
            EV_ADD,
            kq::NOTE_EXIT,
            0,
            null_mut(),
        );
        ch_ok(&k, &[proc_add]);
        // SAFETY: lets the child exit.
        unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) };
        let mut seen_exit = None;
        let mut chld = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while (seen_exit.is_none() || chld == 0) && Instant::now() < deadline {
            let mut evs = [Kevent::default(); 4];
            let n = match k.kevent(&[], &mut evs, Some(Duration::from_millis(500))) {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => 0,
                Err(e) => panic!("kevent: {e}"),
            };
            for e in &evs[..n] {
                match e.filter {
                    kq::EVFILT_PROC => seen_exit = Some(e.data as i32),
                    EVFILT_SIGNAL => chld += e.data,
                    _ => panic!("{e:?}"),
                }
            }
        }
        assert_eq!(seen_exit, Some(9 << 8), "handled {handled}");
        assert!(chld >= 1, "handled {handled}");
        let mut status = 0;
        // SAFETY: reaps our child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert_eq!(status, 9 << 8);
        if handled {
            assert_eq!(CHLD_CALLS.load(Ordering::SeqCst), 1);
        }
        // SAFETY: closes our pipe.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}

static CHLD_CALLS: AtomicUsize = AtomicUsize::new(0);
extern "C" fn count_chld(_: i32) {
    CHLD_CALLS.fetch_add(1, Ordering::SeqCst);
}

isolated_both!(
    s11_sigchld_beside_proc,
    s6_concurrent_collectors,
    s17_handler_close_during_library_calls,
    s7_raw_change_survives_delete,
    s11_sigchld_flags_restored,
    s8_exec_after_fork_keeps_ignored,
    s15_nested_edges_per_post,
    s7_closed_unseen_kqueue_restores,
    s7_no_descriptor_leak,
    s3_handler_stack_and_mask,
    s19_fork_while_handler_allocates,
    s17_handler_kevent_during_library_calls,
    s15_add_after_earlier_posts_not_readable,
    s14_resethand_once_concurrent,
    s7_handler_deletes_last_knote,
    s3_handler_changes_own_action,
    s3_siginfo_passed_on,
    s17_storm_with_add_delete,
    s4_default_core_dump,
    s7_emfile_first_knote,
    s8_fork_while_signals_fly,
    s9_odd_input,
);
