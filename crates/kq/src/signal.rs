//! Signals watched by EVFILT_SIGNAL, and the program's own actions for them.
//!
//! BSD's EVFILT_SIGNAL counts every post of a signal to the process while the signal's
//! normal disposition goes on working: a handler still runs, `SIG_IGN` still ignores, a
//! default action that terminates the process still does. Linux has no such observer
//! (signalfd sees only signals blocked in every thread, which would change what the program
//! gets), so while a knote of any kqueue watches signal `S` the library installs a handler of
//! its own for `S` and keeps the program's action aside. The handler counts the post (one
//! process-wide counter per signal), writes to a per-signal eventfd that every kqueue
//! watching `S` has in its epoll, and then carries out the program's action itself: it
//! calls the program's handler (with the same `siginfo` and context, under the program's
//! `sa_mask`, honouring `SA_RESETHAND`), does nothing for `SIG_IGN` or a signal whose
//! default is to be ignored, stops the process for a default stop signal, and for a
//! default action that terminates the process restores `SIG_DFL` and raises the signal
//! again, so the process dies by it as it would have. When the last knote on `S` goes, the
//! program's action is put back exactly (unless the program replaced the library's handler
//! with a call the library did not see: what it set then stays).
//!
//! # Changing a watched signal's action
//!
//! While `S` is watched, a plain `sigaction()` on it would replace the library's handler
//! and stop the counting. The C library interposes `sigaction()`, `signal()`,
//! `bsd_signal()` and `sysv_signal()` for that reason; Rust programs (and C programs where
//! the interposition is not in effect) call [`set_action`] and [`action`] instead, which
//! work on any signal, watched or not: for a watched signal they change or read the saved
//! program action, and the library's handler goes on counting and applying it.
//!
//! # What differs from BSD
//!
//! - A signal is counted when it is delivered, not when it is posted: posts of a standard
//!   signal that Linux merges while one is pending (blocked, or not yet delivered) count
//!   once; a blocked signal is counted once unblocked; one taken by `sigwait()`,
//!   `sigwaitinfo()` or a signalfd is never counted. Real-time signals queue and are each
//!   counted.
//! - SIGKILL and SIGSTOP cannot be caught, nor the C library's reserved signals (32 and 33
//!   with glibc): their knotes, like those of numbers that are no signal, are accepted and
//!   never fire (BSD counts a SIGSTOP).
//! - A watched signal the program ignores, or whose default action is to be ignored or to
//!   stop the process, now has a handler: its delivery interrupts the system calls Linux
//!   never restarts after a handler (poll, epoll_wait, nanosleep, ...) with EINTR. A
//!   `kevent()` so interrupted goes on (and returns the signal's event when it watches it);
//!   a `kevent()` that then has nothing to return fails with EINTR.
//! - A signal sent to the process makes Linux interrupt the wait of every thread that
//!   starts waiting while it is pending (they all let it through), and the first thread to
//!   look takes it: a `kevent()` starting its sleep at that moment is interrupted with no
//!   handler run in its thread. It goes on sleeping, as on BSD, when it can tell: the
//!   library's handler did nothing in its thread, and no signal its wait let through has a
//!   handler of the program's (`program_handler_possible`). Where one has, the handler may
//!   have run in this thread, and the `kevent()` fails with EINTR (rarely: the signal must
//!   come just as the call goes to sleep). Fault signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
//!   SIGTRAP, SIGSYS) are left out of that look, their handlers (Rust installs some) serving
//!   faults, which a sleeping thread does not make: one sent with kill() and handled in a
//!   sleeping `kevent()`'s thread does not end its wait.
//! - A default stop is made by restoring `SIG_DFL` and raising the signal again: a post of
//!   the same signal while the process stops that way is not counted.
//! - An `exec` without `fork` (and a child of `posix_spawn` or `vfork`, which runs no
//!   `fork` handler: glibc's `system()` and `popen()`, `std::process::Command` without a
//!   `pre_exec` hook) starts with `SIG_DFL` for a watched signal the program ignores, where
//!   BSD keeps it ignored.

use crate::kevent::Errno;
use crate::process;
use crate::sys::{self, sigaction as sa, sigaction::Action, signals::SignalsBlocked};
use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};

/// Signal numbers are 1 ..= 64 on Linux (65 with MIPS's 128 left out: no signal above 64 is
/// ever delivered to a handler the C library installs).
const NSIG: usize = 65;

/// Words of a `sigset_t`, which the C library makes of `unsigned long`s.
const MASK_WORDS: usize = std::mem::size_of::<libc::sigset_t>() / std::mem::size_of::<usize>();
const _: () =
    assert!(MASK_WORDS * std::mem::size_of::<usize>() == std::mem::size_of::<libc::sigset_t>());

/// One copy of a saved action.
struct Copy {
    handler: AtomicUsize,
    flags: AtomicUsize,
    restorer: AtomicUsize,
    mask: [AtomicUsize; MASK_WORDS],
}

/// The program's action for one signal, written under the table's lock and read by the
/// signal handler without a lock. Two copies and a sequence number: a write fills the copy
/// not in use, then makes it current, so a reader never waits for a writer (it retries only
/// if the copy it read was rewritten meanwhile), and the child of a fork() made in the
/// middle of a write still finds a whole action, the one from before the write.
struct Saved {
    /// Twice the number of writes made, plus one while a write is under way; the current
    /// copy is `(seq / 2) % 2`.
    seq: AtomicUsize,
    copies: [Copy; 2],
}

impl Saved {
    const fn new() -> Saved {
        Saved {
            seq: AtomicUsize::new(0),
            copies: [const {
                Copy {
                    handler: AtomicUsize::new(libc::SIG_DFL),
                    flags: AtomicUsize::new(0),
                    restorer: AtomicUsize::new(0),
                    mask: [const { AtomicUsize::new(0) }; MASK_WORDS],
                }
            }; 2],
        }
    }

    /// Stores `a` (its handler, flags, restorer and mask). Only inside [`with_table`].
    fn store(&self, a: &Action) {
        let s = self.seq.load(Ordering::Relaxed) & !1;
        let c = &self.copies[(s / 2 + 1) % 2];
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        c.handler.store(a.sa_sigaction, Ordering::Relaxed);
        c.flags.store(a.sa_flags as u32 as usize, Ordering::Relaxed);
        c.restorer.store(sa::restorer(a), Ordering::Relaxed);
        // SAFETY: sigset_t is an array of MASK_WORDS unsigned longs (checked above), with no
        // padding: every bit pattern of either type is valid.
        let words: [usize; MASK_WORDS] = unsafe { std::mem::transmute(a.sa_mask) };
        for (w, v) in c.mask.iter().zip(words) {
            w.store(v, Ordering::Relaxed);
        }
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// The action, as last stored. Async-signal-safe, and waits for no writer.
    fn load(&self) -> Action {
        loop {
            let s = self.seq.load(Ordering::Acquire);
            let c = &self.copies[(s / 2) % 2];
            let handler = c.handler.load(Ordering::Relaxed);
            let flags = c.flags.load(Ordering::Relaxed) as u32 as c_int;
            let restorer = c.restorer.load(Ordering::Relaxed);
            let mut words = [0usize; MASK_WORDS];
            for (v, w) in words.iter_mut().zip(&c.mask) {
                *v = w.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            // The copy read is the current one, or the one before a write under way; it is
            // rewritten only by the write after that.
            if self.seq.load(Ordering::Relaxed).wrapping_sub(s & !1) <= 2 {
                let mut a = sa::action(handler);
                a.sa_flags = flags;
                sa::set_restorer(&mut a, restorer);
                // SAFETY: as in `store`.
                a.sa_mask =
                    unsafe { std::mem::transmute::<[usize; MASK_WORDS], libc::sigset_t>(words) };
                return a;
            }
        }
    }
}

/// One signal's counters, notification descriptor and saved program action.
struct Slot {
    /// Posts counted since the process started.
    posts: AtomicU64,
    /// Posts counted while the program's action was not `SIG_IGN` (FreeBSD does not record
    /// an ignored SIGCHLD).
    heeded: AtomicU64,
    /// The eventfd written for every counted post (-1 until the signal is first watched;
    /// then kept open, as a handler may be writing to it at any time).
    fd: AtomicI32,
    saved: Saved,
}

static SLOTS: [Slot; NSIG] = [const {
    Slot {
        posts: AtomicU64::new(0),
        heeded: AtomicU64::new(0),
        fd: AtomicI32::new(-1),
        saved: Saved::new(),
    }
}; NSIG];

/// Which signals are watched, by how many knotes, and where the library's handler is
/// installed; also serialises the writers of the saved actions. Used through
/// [`with_table`] only, so that a signal handler may use it too; its users take no other
/// lock of the library.
struct Table {
    watchers: [u32; NSIG],
    ours: [bool; NSIG],
}

/// The table and its lock: a spin lock, held only with every signal blocked in the holder
/// and only for a few `sigaction()` calls, which never waits for anything else. It is not
/// held across fork(): a handler that runs in another thread during a fork may need it,
/// and that thread may hold a lock of the C library the fork takes after its fork
/// handlers (malloc's), which would deadlock. The child instead finds the lock free (if a
/// thread that does not exist in the child held it, the child frees it) and works out what
/// to undo from the kernel's actions ([`fork_child`]).
struct Locked {
    busy: AtomicBool,
    table: UnsafeCell<Table>,
}

// SAFETY: `table` is reached only through `with_table`, by the thread that set `busy`.
unsafe impl Sync for Locked {}

static TABLE: Locked = Locked {
    busy: AtomicBool::new(false),
    table: UnsafeCell::new(Table {
        watchers: [0; NSIG],
        ours: [false; NSIG],
    }),
};

/// Signals whose action may be the library's handler (bit `sig - 1`): set before the
/// handler is installed, cleared after the program's action is back.
static INSTALLED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Signals this thread's handler took care of without running a program handler
    /// (ignored, or stopped by default): a wait they interrupted was not interrupted for
    /// the program.
    static ABSORBED: Cell<u64> = const { Cell::new(0) };
    /// Signals whose delivery to this thread the library's handler passed on to a program
    /// handler: a wait they interrupted was interrupted for the program.
    static HANDLED: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` on the table, with every signal blocked in this thread meanwhile, so that no
/// handler of this thread can run while it holds the table (a handler may need it).
fn with_table<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    let blocked = SignalsBlocked::new();
    let mut tries = 0u32;
    while TABLE
        .busy
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        // The holder runs in another thread (this one blocks every signal while it holds
        // the lock), and only makes a few system calls. Past a few turns, sleep: a holder
        // of lower real-time priority on this CPU runs only then (nanosleep is
        // async-signal-safe).
        tries = tries.saturating_add(1);
        if tries < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
    // SAFETY: `busy` is ours until the store below: no other reference to the table.
    let r = f(unsafe { &mut *TABLE.table.get() });
    TABLE.busy.store(false, Ordering::Release);
    drop(blocked);
    r
}

/// How many signals this thread absorbed so far (see `ABSORBED`): a `kevent()` whose wait
/// failed with EINTR compares it with the count from before the wait.
pub(crate) fn absorbed() -> u64 {
    ABSORBED.try_with(Cell::get).unwrap_or(0)
}

fn absorb() {
    let _ = ABSORBED.try_with(|a| a.set(a.get().wrapping_add(1)));
}

/// How many signals this thread's library handler passed on to a program handler so far
/// (see `HANDLED`).
pub(crate) fn handled() -> u64 {
    HANDLED.try_with(Cell::get).unwrap_or(0)
}

/// Signals whose handler serves the faults of the thread that makes them (a thread asleep
/// in a system call makes none).
const FAULTS: [c_int; 6] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// Whether a wait with signal mask `mask` can have been interrupted by a handler of the
/// program that the library did not run: some signal the mask lets through has a handler
/// in the kernel that is not the library's. Fault signals and the C library's reserved
/// signals are left out (their handlers serve faults and the C library's own threads
/// business). Up to 64 system calls: for a wait that failed with EINTR while the library's
/// handler did nothing in this thread, which a signal sent to the process and taken by
/// another thread can cause (Linux wakes every thread that lets a pending process signal
/// through, and the first to look takes it).
pub(crate) fn program_handler_possible(mask: &libc::sigset_t) -> bool {
    let ours = our_address();
    (1..NSIG as c_int).any(|s| {
        if !catchable(s as usize) || FAULTS.contains(&s) {
            return false;
        }
        // SAFETY: sigismember reads the set it is given.
        if unsafe { libc::sigismember(mask, s) } == 1 {
            return false;
        }
        let mut a = sa::action(libc::SIG_DFL);
        sa::sigaction(s, None, Some(&mut a)).is_ok()
            && is_handler(a.sa_sigaction)
            && a.sa_sigaction != ours
    })
}

/// Whether the library can install a handler for `sig`: not SIGKILL or SIGSTOP, not one of
/// the C library's reserved signals (between 31 and SIGRTMIN), not out of range.
fn catchable(sig: usize) -> bool {
    let Ok(s) = c_int::try_from(sig) else {
        return false;
    };
    (1..NSIG).contains(&sig)
        && s != libc::SIGKILL
        && s != libc::SIGSTOP
        && !(32..libc::SIGRTMIN()).contains(&s)
}

/// The default action of a signal on Linux.
enum Default {
    Ignore,
    Stop,
    Terminate,
}

fn default_of(sig: c_int) -> Default {
    match sig {
        libc::SIGCHLD | libc::SIGCONT | libc::SIGURG | libc::SIGWINCH => Default::Ignore,
        libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => Default::Stop,
        _ => Default::Terminate,
    }
}

fn is_handler(h: usize) -> bool {
    h != libc::SIG_DFL && h != libc::SIG_IGN
}

/// The library's action for `sig` while the program's is `prog`: the library's handler,
/// with the program's mask and mask-related flags where the program has a handler (so that
/// its handler runs under the mask it asked for), `SA_RESTART` unless the program's handler
/// lacks it (a signal that is ignored must not interrupt a restartable call), and for
/// SIGCHLD the program's `SA_NOCLDSTOP`/`SA_NOCLDWAIT` (plus `SA_NOCLDWAIT` when it ignores
/// SIGCHLD, which on Linux makes the kernel reap children).
fn ours_for(sig: c_int, prog: &Action) -> Action {
    let mut a =
        sa::action(handler as extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) as usize);
    let f = prog.sa_flags;
    a.sa_flags =
        libc::SA_SIGINFO | (f & (libc::SA_ONSTACK | libc::SA_NOCLDSTOP | libc::SA_NOCLDWAIT));
    if is_handler(prog.sa_sigaction) {
        a.sa_mask = prog.sa_mask;
        a.sa_flags |= f & (libc::SA_NODEFER | libc::SA_RESTART);
    } else {
        a.sa_flags |= libc::SA_RESTART;
    }
    if sig == libc::SIGCHLD && prog.sa_sigaction == libc::SIG_IGN {
        a.sa_flags |= libc::SA_NOCLDWAIT;
    }
    a
}

fn our_address() -> usize {
    handler as extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) as usize
}

/// Saves `a` as the program's action for `sig`, unless it is the library's own handler
/// (left behind by a race that this does not let go further).
fn save(sig: usize, a: &Action) {
    if a.sa_sigaction != our_address() {
        SLOTS[sig].saved.store(a);
    }
}

/// Installs the library's handler for `sig`, saving the program's action. With [`TABLE`]
/// held.
fn install(t: &mut Table, sig: usize) -> Result<(), Errno> {
    let s = sig as c_int;
    let mut old = sa::action(libc::SIG_DFL);
    sa::sigaction(s, None, Some(&mut old))?;
    // Saved before the handler can run; saved again from what the installation replaced,
    // in case the program changed it in between (with a call that is not interposed).
    save(sig, &old);
    INSTALLED.fetch_or(1 << (sig - 1), Ordering::SeqCst);
    let mut prev = sa::action(libc::SIG_DFL);
    sa::sigaction(s, Some(&ours_for(s, &old)), Some(&mut prev))?;
    save(sig, &prev);
    t.ours[sig] = true;
    Ok(())
}

/// Puts the library's handler back for `sig` after the handler let `SIG_DFL` act, if it is
/// still wanted.
fn reinstall(sig: c_int) {
    with_table(|t| {
        let i = sig as usize;
        if t.ours[i] {
            let _ = sa::sigaction(sig, Some(&ours_for(sig, &SLOTS[i].saved.load())), None);
        }
    });
}

/// A knote starts watching signal `ident`. Returns the eventfd to put in the kqueue's epoll,
/// or `None` for a number the library cannot watch (not a signal, SIGKILL, SIGSTOP, a
/// reserved signal): such a knote is accepted, as by BSD, and never fires. Each `Some`
/// must be matched by an [`unwatch`].
///
/// # Errors
///
/// EMFILE or ENFILE when no eventfd can be made; the C library's error if it refuses the
/// handler.
pub(crate) fn watch(ident: usize) -> Result<Option<RawFd>, Errno> {
    if !catchable(ident) {
        return Ok(None);
    }
    sa::resolve();
    let slot = &SLOTS[ident];
    if slot.fd.load(Ordering::Acquire) < 0 {
        // Made and published with no fork() in between (a child closes the published
        // ones).
        process::creating(|| {
            let made = process::with_fds(sys::eventfd)?;
            let fd = made.as_raw_fd();
            // Another thread may have made one first: then ours is dropped.
            if slot
                .fd
                .compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let _ = made.into_raw_fd();
                process::number_taken(fd);
                process::mark_library_fd(fd, true);
            }
            Ok::<(), Errno>(())
        })?;
    }
    with_table(|t| {
        if t.watchers[ident] == 0 {
            install(t, ident)?;
        }
        t.watchers[ident] += 1;
        Ok(Some(slot.fd.load(Ordering::Acquire)))
    })
}

/// A knote that [`watch`] accepted with `Some` stops watching `ident`: after the last one,
/// the program's action is put back.
pub(crate) fn unwatch(ident: usize) {
    if !catchable(ident) {
        return;
    }
    with_table(|t| {
        t.watchers[ident] = t.watchers[ident].saturating_sub(1);
        if t.watchers[ident] == 0 && t.ours[ident] {
            restore(ident as c_int);
            t.ours[ident] = false;
            INSTALLED.fetch_and(!(1 << (ident - 1)), Ordering::SeqCst);
        }
    });
}

/// Puts the program's kept action for `sig` back, if the library's handler is still the
/// kernel's action: a program that replaced it with a call the library does not see (a
/// plain `sigaction()` in Rust, `sigset()`) keeps what it set.
fn restore(sig: c_int) {
    let mut now = sa::action(libc::SIG_DFL);
    if sa::sigaction(sig, None, Some(&mut now)).is_ok() && now.sa_sigaction == our_address() {
        let _ = sa::sigaction(sig, Some(&SLOTS[sig as usize].saved.load()), None);
    }
}

/// Posts of signal `ident` counted so far (`heeded`: only those made while the program did
/// not ignore it).
pub(crate) fn count(ident: usize, heeded: bool) -> u64 {
    SLOTS.get(ident).map_or(0, |s| {
        if heeded {
            s.heeded.load(Ordering::SeqCst)
        } else {
            s.posts.load(Ordering::SeqCst)
        }
    })
}

/// The library's handler of every watched signal.
extern "C" fn handler(sig: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let errno = sa::errno();
    let Some(slot) = usize::try_from(sig).ok().and_then(|s| SLOTS.get(s)) else {
        return;
    };
    let mut act = slot.saved.load();
    let ignored = act.sa_sigaction == libc::SIG_IGN;
    // With SIGCHLD ignored, Linux (and BSD) sends no SIGCHLD for a child's exit or stop;
    // the library's handler made the kernel send one (CLD_* codes are positive, those of
    // kill() and sigqueue() not): it was never posted, so it is not counted.
    // SAFETY: `info` is what the kernel passed to this SA_SIGINFO handler.
    let never_posted = sig == libc::SIGCHLD && ignored && unsafe { sa::si_code(info) } > 0;
    // A child made by vfork() (or clone(CLONE_VM)) runs this handler on the parent's
    // memory until it execs: its signals are not the parent's to count.
    if !never_posted && process::in_library_process() {
        // Counted before the eventfd is written: a kqueue woken by it sees the new count.
        slot.posts.fetch_add(1, Ordering::SeqCst);
        if !ignored {
            slot.heeded.fetch_add(1, Ordering::SeqCst);
        }
        let fd = slot.fd.load(Ordering::Acquire);
        if fd >= 0 {
            sa::eventfd_post(fd);
        }
    }
    if is_handler(act.sa_sigaction) && act.sa_flags & libc::SA_RESETHAND != 0 {
        // The kernel resets the handler as it delivers the signal, under its lock: of
        // deliveries in several threads at once, one runs the handler and the others get
        // the default. The reset is made under the table's lock, and the action in force
        // is read again there: a delivery that finds it reset already acts on the default.
        act = with_table(|t| reset_handler(t, sig, slot));
    }
    let h = act.sa_sigaction;
    if is_handler(h) {
        let _ = HANDLED.try_with(|n| n.set(n.get().wrapping_add(1)));
        sa::set_errno(errno);
        // SAFETY: `h` is the program's handler for `sig` (not SIG_DFL or SIG_IGN), of the
        // kind its SA_SIGINFO flag says, called with what the kernel gave us; the kernel
        // set the mask the program asked for (our action carries its sa_mask and
        // SA_NODEFER). Nothing of ours needs cleaning up if it never returns (siglongjmp).
        unsafe { sa::call_handler(h, act.sa_flags & libc::SA_SIGINFO != 0, sig, info, context) };
        return;
    }
    if h != libc::SIG_IGN {
        match default_of(sig) {
            Default::Ignore => {}
            Default::Stop => stop(sig),
            Default::Terminate => terminate(sig),
        }
    }
    absorb();
    sa::set_errno(errno);
}

/// `SA_RESETHAND` for a delivery of `sig` that found a handler with that flag: with the
/// table held, returns the action the delivery is to carry out. If the handler is still
/// the action in force, the action becomes `SIG_DFL` (the flags and mask stay, as Linux
/// keeps them) and the handler is returned; otherwise another delivery reset it first (or
/// the program changed it), and the action now in force is returned.
fn reset_handler(t: &mut Table, sig: c_int, slot: &Slot) -> Action {
    let i = sig as usize;
    if t.ours[i] {
        let now = slot.saved.load();
        if is_handler(now.sa_sigaction) && now.sa_flags & libc::SA_RESETHAND != 0 {
            let mut reset = now;
            reset.sa_sigaction = libc::SIG_DFL;
            slot.saved.store(&reset);
            let _ = sa::sigaction(sig, Some(&ours_for(sig, &reset)), None);
        }
        return now;
    }
    // No longer watched: the program's action is the kernel's again (put back after this
    // delivery started), and the kernel would have reset it at the delivery.
    let mut now = sa::action(libc::SIG_DFL);
    if sa::sigaction(sig, None, Some(&mut now)).is_ok()
        && is_handler(now.sa_sigaction)
        && now.sa_flags & libc::SA_RESETHAND != 0
    {
        let mut reset = now;
        reset.sa_sigaction = libc::SIG_DFL;
        let _ = sa::sigaction(sig, Some(&reset), None);
    }
    now
}

/// The default action of a stop signal: `SIG_DFL` for a moment, the signal raised again at
/// this thread (the process stops there until continued), then the library's handler back.
fn stop(sig: c_int) {
    with_table(|t| {
        if t.ours[sig as usize] {
            let mut dfl = ours_for(sig, &SLOTS[sig as usize].saved.load());
            dfl.sa_sigaction = libc::SIG_DFL;
            let _ = sa::sigaction(sig, Some(&dfl), None);
        }
    });
    let old = sa::thread_mask(libc::SIG_UNBLOCK, &sa::set_of(sig));
    sa::raise_here(sig);
    sa::thread_mask(libc::SIG_SETMASK, &old);
    reinstall(sig);
}

/// The default action of a terminating signal: `SIG_DFL`, and the signal raised again at
/// this thread with only it unblocked, so that the process dies by it (with a core dump
/// where the default says so).
fn terminate(sig: c_int) {
    let old = sa::thread_mask(libc::SIG_BLOCK, &sa::full_set());
    let _ = sa::sigaction(sig, Some(&sa::action(libc::SIG_DFL)), None);
    sa::thread_mask(libc::SIG_UNBLOCK, &sa::set_of(sig));
    sa::raise_here(sig);
    // Still here: another thread made the signal caught meanwhile. Carry on counting.
    sa::thread_mask(libc::SIG_SETMASK, &old);
    reinstall(sig);
}

/// What [`intercept`] found.
#[doc(hidden)]
#[derive(Debug)]
pub enum Intercepted<R> {
    /// The signal is watched: the saved program action (before the change, if any).
    Watched(libc::sigaction),
    /// The signal is not watched: what the caller's own call returned.
    Unwatched(R),
}

/// The core of an interposed `sigaction()`: if `sig` is watched, reads the saved program
/// action and replaces it with `act` (if given), keeping the library's handler installed
/// (with the new action's mask and flags); otherwise runs `unwatched` (the C library's own
/// call), with no watch starting or ending meanwhile.
#[doc(hidden)]
pub fn intercept<R>(
    sig: c_int,
    act: Option<&libc::sigaction>,
    unwatched: impl FnOnce() -> R,
) -> Intercepted<R> {
    if !process::in_library_process() {
        // A child made by vfork() shares the parent's memory, not its signal actions: its
        // calls are its own (a handler it inherited from the library then goes away).
        return Intercepted::Unwatched(unwatched());
    }
    with_table(|t| {
        let i = usize::try_from(sig).unwrap_or(0);
        if (1..NSIG).contains(&i) && t.ours[i] {
            let old = SLOTS[i].saved.load();
            if let Some(a) = act {
                save(i, a);
                let mut prev = sa::action(libc::SIG_DFL);
                if sa::sigaction(sig, Some(&ours_for(sig, a)), Some(&mut prev)).is_ok()
                    && prev.sa_sigaction == our_address()
                {
                    // Kept as the C library would have installed it (it reads back with the
                    // flag and restorer the C library adds, as the library's action did).
                    save(i, &sa::as_installed(a, &prev));
                }
            }
            return Intercepted::Watched(old);
        }
        Intercepted::Unwatched(unwatched())
    })
}

/// The program's action for signal `sig`, as `sigaction(sig, NULL, &old)` gives it, also
/// while a knote watches the signal (the C library then reports the library's handler).
///
/// # Errors
///
/// EINVAL for a number that is not a signal.
///
/// ```
/// let a = kq::signal::action(libc::SIGUSR2)?;
/// assert_eq!(a.sa_sigaction, libc::SIG_DFL);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn action(sig: c_int) -> io::Result<libc::sigaction> {
    match intercept(sig, None, || {
        let mut old = sa::action(libc::SIG_DFL);
        sa::sigaction(sig, None, Some(&mut old)).map(|()| old)
    }) {
        Intercepted::Watched(old) => Ok(old),
        Intercepted::Unwatched(r) => Ok(r?),
    }
}

/// `sigaction(sig, act, &old)` for programs that watch signals with EVFILT_SIGNAL: sets the
/// program's action for `sig` and returns the one before. While a knote watches `sig` the
/// library's handler stays installed, keeps counting, and carries out `act`; otherwise this
/// is the C library's `sigaction()`. A plain `sigaction()` (or `signal()`) on a watched
/// signal in a Rust program replaces the library's handler and stops the counting until the
/// signal is watched afresh.
///
/// # Safety
///
/// As `sigaction()`: a handler in `act` must be safe to run at any point of any thread
/// (async-signal-safe), with the arguments its `SA_SIGINFO` flag says.
///
/// # Errors
///
/// As `sigaction()`: EINVAL for a number that is not a signal, for SIGKILL or SIGSTOP.
///
/// ```
/// use kq::{Kevent, Kqueue, EVFILT_SIGNAL, EV_ADD};
///
/// let kq = Kqueue::new()?;
/// kq.kevent(&[Kevent::new(libc::SIGURG as usize, EVFILT_SIGNAL, EV_ADD, 0, 0, std::ptr::null_mut())], &mut [], None)?;
/// // SAFETY: SIG_IGN runs no code.
/// let old = unsafe { kq::signal::set_action(libc::SIGURG, &kq::signal::ignore()) }?;
/// assert_eq!(kq::signal::action(libc::SIGURG)?.sa_sigaction, libc::SIG_IGN);
/// // SAFETY: the action from before.
/// unsafe { kq::signal::set_action(libc::SIGURG, &old) }?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub unsafe fn set_action(sig: c_int, act: &libc::sigaction) -> io::Result<libc::sigaction> {
    match intercept(sig, Some(act), || {
        let mut old = sa::action(libc::SIG_DFL);
        sa::sigaction(sig, Some(act), Some(&mut old)).map(|()| old)
    }) {
        Intercepted::Watched(old) => Ok(old),
        Intercepted::Unwatched(r) => Ok(r?),
    }
}

/// An action that ignores the signal (`SIG_IGN`, no flags, empty mask), for [`set_action`].
pub fn ignore() -> libc::sigaction {
    sa::action(libc::SIG_IGN)
}

/// An action that restores the default (`SIG_DFL`, no flags, empty mask), for
/// [`set_action`].
pub fn default() -> libc::sigaction {
    sa::action(libc::SIG_DFL)
}

// fork(): in the child no kqueue survives, so every watched signal gets the program's
// action back and the eventfds (shared with the parent's) are closed. The table is not held
// across fork() (see `Locked`): another thread may have been in the middle of a change.
// The kernel's actions say where the library's handler is installed, and each saved action
// has a whole copy from before any write under way.

pub(crate) fn fork_child() {
    let blocked = SignalsBlocked::new();
    // Held by a thread that is not in the child (this one holds it only with every signal
    // blocked, so not across its fork()).
    TABLE.busy.store(false, Ordering::Release);
    let installed = INSTALLED.swap(0, Ordering::SeqCst);
    with_table(|t| {
        for (sig, slot) in SLOTS.iter().enumerate().skip(1) {
            if installed & (1 << (sig - 1)) != 0 {
                // A post that came while the program's own mask blocked the signal waits
                // for it; setting SIG_IGN back would discard it (POSIX), where without the
                // library it would still be pending: it is sent again, still blocked.
                let held = crate::sys::signals::pending_in(sig as c_int, &blocked.old);
                restore(sig as c_int);
                if held && SLOTS[sig].saved.load().sa_sigaction == libc::SIG_IGN {
                    sa::raise_here(sig as c_int);
                }
            }
            t.ours[sig] = false;
            t.watchers[sig] = 0;
            let fd = slot.fd.swap(-1, Ordering::AcqRel);
            if fd >= 0 {
                process::mark_library_fd(fd, false);
                // SAFETY: the child's copy of the library's eventfd, used by nothing
                // else in the child.
                unsafe { libc::syscall(libc::SYS_close, fd) };
            }
        }
    });
}
