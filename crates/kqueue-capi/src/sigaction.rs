//! `sigaction()`, `signal()`, `bsd_signal()`, `sysv_signal()` and `__sysv_signal()` as seen
//! by EVFILT_SIGNAL: defined here, like `close()` (module `interpose`, which says when such
//! definitions replace the C library's), so that a program that changes the action of a
//! signal a knote watches does not remove the library's handler.
//!
//! While a knote watches signal `S`, the library's handler is installed for `S` and the
//! program's action is kept aside (`kq::signal`). These functions then read and replace
//! that kept action instead of the installed one: `oldact` (or the returned handler) is the
//! program's previous action, the new one takes effect at once (the library's handler
//! carries it out: it calls the new handler, ignores, or acts as the default), and the
//! counting goes on. For a signal no knote watches they are the C library's own functions
//! (called with no watch starting or ending meanwhile).
//!
//! Not seen: `sigset()`, `sighold()`, `sigignore()`, `siginterrupt()` and the C library's
//! internal calls, which reach the kernel's action directly (on a watched signal they
//! change or replace the library's handler); a later `signal()` after `siginterrupt()`
//! gets `SA_RESTART` here whatever `siginterrupt()` said.
//!
//! Guarantees: `errno` is left alone on success and is the C library's on failure; no
//! panic crosses into C (a panic makes the call fail with `ENOMEM`); async-signal-safe, as
//! `sigaction()` is (a lock taken only with every signal blocked in its holder).

use crate::interpose::{errno, set_errno, Next};
use kq::signal::{intercept, Intercepted};
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

type SigactionFn =
    unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;
type SignalFn = unsafe extern "C" fn(c_int, libc::sighandler_t) -> libc::sighandler_t;

const SIGACTION: usize = 0;
const SIGNAL: usize = 1;
const BSD_SIGNAL: usize = 2;
const SYSV_SIGNAL: usize = 3;
const SYSV_SIGNAL_INTERNAL: usize = 4;
static NEXT: [Next; 5] = [
    Next::new(c"sigaction"),
    Next::new(c"signal"),
    Next::new(c"bsd_signal"),
    Next::new(c"sysv_signal"),
    Next::new(c"__sysv_signal"),
];

/// Looks the C library's functions up when the library is loaded, so that a first call
/// from a signal handler needs no dlsym().
extern "C" fn resolve_all() {
    for next in &NEXT {
        let _ = next.get();
    }
    let _ = kq::signal::action(libc::SIGCHLD);
}

#[used]
#[link_section = ".init_array"]
static RESOLVE_AT_LOAD: extern "C" fn() = resolve_all;

extern "C" {
    /// glibc's public name of its sigaction(), for a program without a dynamic linker
    /// (where `NEXT` finds nothing and `sigaction` would be this module's own).
    fn __sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int;
}

/// The C library's `sigaction()`.
fn real_sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    let f = NEXT[SIGACTION].get();
    if f != 0 {
        // SAFETY: the C library's `int sigaction(int, const struct sigaction *, struct
        // sigaction *)`, matching SigactionFn; the pointers are the caller's.
        unsafe { std::mem::transmute::<usize, SigactionFn>(f)(sig, act, old) }
    } else {
        // SAFETY: as above, glibc's own entry point.
        unsafe { __sigaction(sig, act, old) }
    }
}

/// `int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)`: for a
/// watched signal, reads and replaces the program's action kept by the library; otherwise
/// the C library's sigaction().
///
/// # Safety
///
/// As sigaction(): `act` is null or a valid action, `oldact` null or writable.
#[no_mangle]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    oldact: *mut libc::sigaction,
) -> c_int {
    let saved = errno();
    // One call into the library (a close from a signal handler meanwhile waits for its end).
    let body = || {
        // SAFETY: the caller's contract: null or a valid action (copied before `oldact`,
        // which may be the same struct, is written).
        let given = unsafe { act.as_ref() }.copied();
        let mut failed = 0;
        match intercept(sig, given.as_ref(), || {
            let r = real_sigaction(sig, act, oldact);
            failed = if r == 0 { 0 } else { errno() };
            r
        }) {
            Intercepted::Watched(old) => {
                if !oldact.is_null() {
                    // SAFETY: the caller's contract: null or writable.
                    unsafe { oldact.write(old) };
                }
                (0, 0)
            }
            Intercepted::Unwatched(r) => (r, failed),
        }
    };
    let r = catch_unwind(AssertUnwindSafe(|| kq::library_call(body)));
    match r {
        Ok((0, _)) => {
            set_errno(saved);
            0
        }
        Ok((r, e)) => {
            set_errno(e);
            r
        }
        Err(_) => {
            set_errno(libc::ENOMEM);
            -1
        }
    }
}

/// A `signal()`-family call: glibc's action for it (`flags`, and the signal itself in the
/// mask unless `nodefer`), kept by the library for a watched signal, else the C library's
/// function `which`.
fn signal_like(
    sig: c_int,
    handler: libc::sighandler_t,
    flags: c_int,
    which: usize,
) -> libc::sighandler_t {
    let saved = errno();
    let body = || {
        if handler == libc::SIG_ERR || !(1..65).contains(&sig) {
            return (libc::SIG_ERR, libc::EINVAL);
        }
        let mut act = kq::signal::default();
        act.sa_sigaction = handler;
        act.sa_flags = flags;
        if flags & libc::SA_NODEFER == 0 {
            // SAFETY: sigaddset writes the set.
            unsafe { libc::sigaddset(&mut act.sa_mask, sig) };
        }
        let mut failed = 0;
        match intercept(sig, Some(&act), || {
            let f = NEXT[which].get();
            if f != 0 {
                // SAFETY: the C library's `sighandler_t NAME(int, sighandler_t)`, matching
                // SignalFn.
                let r = unsafe { std::mem::transmute::<usize, SignalFn>(f)(sig, handler) };
                failed = if r == libc::SIG_ERR { errno() } else { 0 };
                r
            } else {
                // SAFETY: zeroes are a valid sigaction; `act` is valid.
                let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
                if real_sigaction(sig, &act, &mut old) == 0 {
                    old.sa_sigaction
                } else {
                    failed = errno();
                    libc::SIG_ERR
                }
            }
        }) {
            Intercepted::Watched(old) => (old.sa_sigaction, 0),
            Intercepted::Unwatched(r) => (r, failed),
        }
    };
    let r = catch_unwind(AssertUnwindSafe(|| kq::library_call(body)));
    match r {
        Ok((h, _)) if h != libc::SIG_ERR => {
            set_errno(saved);
            h
        }
        Ok((h, e)) => {
            set_errno(e);
            h
        }
        Err(_) => {
            set_errno(libc::ENOMEM);
            libc::SIG_ERR
        }
    }
}

/// SA_INTERRUPT, which glibc's sysv_signal() sets (it has no effect on Linux).
const SA_INTERRUPT: c_int = 0x2000_0000;

/// `sighandler_t signal(int sig, sighandler_t handler)`: glibc's BSD semantics (the handler
/// stays installed, restartable calls restart, `sig` is blocked while it runs).
#[no_mangle]
pub extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    signal_like(sig, handler, libc::SA_RESTART, SIGNAL)
}

/// `sighandler_t bsd_signal(int sig, sighandler_t handler)`: as `signal()`.
#[no_mangle]
pub extern "C" fn bsd_signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    signal_like(sig, handler, libc::SA_RESTART, BSD_SIGNAL)
}

/// `sighandler_t sysv_signal(int sig, sighandler_t handler)`: System V semantics (the
/// action resets to the default when the handler runs, which runs with `sig` unblocked).
#[no_mangle]
pub extern "C" fn sysv_signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    signal_like(
        sig,
        handler,
        libc::SA_RESETHAND | libc::SA_NODEFER | SA_INTERRUPT,
        SYSV_SIGNAL,
    )
}

/// `__sysv_signal()`: the name glibc's `<signal.h>` gives `signal()` in strict ISO C and
/// X/Open modes; as `sysv_signal()`.
#[no_mangle]
pub extern "C" fn __sysv_signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    signal_like(
        sig,
        handler,
        libc::SA_RESETHAND | libc::SA_NODEFER | SA_INTERRUPT,
        SYSV_SIGNAL_INTERNAL,
    )
}
