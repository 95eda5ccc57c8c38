//! sigaction(2) and the few calls a signal handler of the library makes: the C library's own
//! `sigaction()` (never an interposed one), the thread's mask, raising a signal at the
//! calling thread, `errno`, and calling a program's handler. Everything here is
//! async-signal-safe once [`resolve`] has run.

use crate::kevent::Errno;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A signal action, laid out as the C library's `struct sigaction`.
pub(crate) type Action = libc::sigaction;

type SigactionFn = unsafe extern "C" fn(c_int, *const Action, *mut Action) -> c_int;

/// The address of the C library's `sigaction()` (0: not looked up yet).
static REAL: AtomicUsize = AtomicUsize::new(0);

/// Looks up the C library's `sigaction()`: the next definition after the object that holds
/// this code, so that a program (or libkqueue.so) that defines `sigaction` itself is
/// skipped. Call it before the first [`sigaction`] that may run in a signal handler (dlsym
/// is not async-signal-safe).
pub(crate) fn resolve() {
    if REAL.load(Ordering::Relaxed) != 0 {
        return;
    }
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name has no precondition; it
    // returns NULL when no later object defines the name.
    let next = unsafe { libc::dlsym(libc::RTLD_NEXT, c"sigaction".as_ptr()) } as usize;
    let f = if next != 0 {
        next
    } else {
        // A program without a dynamic linker: no later object to ask, and `sigaction` may
        // be the C library's interposer (libkqueue.a); glibc's other public name is not.
        #[cfg(target_env = "gnu")]
        {
            extern "C" {
                fn __sigaction(sig: c_int, act: *const Action, old: *mut Action) -> c_int;
            }
            __sigaction as SigactionFn as usize
        }
        #[cfg(not(target_env = "gnu"))]
        {
            libc::sigaction as SigactionFn as usize
        }
    };
    REAL.store(f, Ordering::Relaxed);
}

/// The C library's `sigaction(sig, act, old)`.
pub(crate) fn sigaction(
    sig: c_int,
    act: Option<&Action>,
    old: Option<&mut Action>,
) -> Result<(), Errno> {
    resolve();
    let f = REAL.load(Ordering::Relaxed);
    let act = act.map_or(std::ptr::null(), |a| a as *const Action);
    let old = old.map_or(std::ptr::null_mut(), |o| o as *mut Action);
    // SAFETY: `f` is the address of the C library's `int sigaction(int, const struct
    // sigaction *, struct sigaction *)` (found by dlsym, or the libc crate's binding), whose
    // ABI SigactionFn matches; `act` is null or a valid action and `old` null or writable.
    let r = unsafe { std::mem::transmute::<usize, SigactionFn>(f)(sig, act, old) };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno(errno()))
    }
}

/// An action with `handler` (an address, `SIG_DFL` or `SIG_IGN`) and everything else empty.
pub(crate) fn action(handler: usize) -> Action {
    // SAFETY: struct sigaction is plain data, valid with every bit zero (an empty mask).
    let mut a: Action = unsafe { std::mem::zeroed() };
    a.sa_sigaction = handler;
    a
}

/// `SA_RESTORER`: the flag with which the C library (on x86, x86-64, ARM, ...) gives the
/// kernel its own signal return trampoline in `sa_restorer`; it adds both to every action it
/// installs, and reports them back.
const SA_RESTORER: c_int = 0x0400_0000;

/// The address in `a.sa_restorer` (0: none).
pub(crate) fn restorer(a: &Action) -> usize {
    a.sa_restorer.map_or(0, |f| f as usize)
}

/// Sets `a.sa_restorer` to address `r` (0: none).
pub(crate) fn set_restorer(a: &mut Action, r: usize) {
    // SAFETY: Option<extern "C" fn()> has the size of a pointer and uses 0 for None; `r` is
    // 0 or an address read from the field of an action by `restorer`.
    a.sa_restorer = unsafe { std::mem::transmute::<usize, Option<extern "C" fn()>>(r) };
}

/// `a` as the C library reports it once installed, `installed` being an action it
/// installed: with its `SA_RESTORER` and restorer, if it adds those.
pub(crate) fn as_installed(a: &Action, installed: &Action) -> Action {
    let mut r = *a;
    if installed.sa_flags & SA_RESTORER != 0 {
        r.sa_flags |= SA_RESTORER;
        r.sa_restorer = installed.sa_restorer;
    }
    r
}

/// A set holding every signal.
pub(crate) fn full_set() -> libc::sigset_t {
    let mut s = super::signals::empty_set();
    // SAFETY: sigfillset writes the set it is given.
    unsafe { libc::sigfillset(&mut s) };
    s
}

/// A set holding only `sig`.
pub(crate) fn set_of(sig: c_int) -> libc::sigset_t {
    let mut s = super::signals::empty_set();
    // SAFETY: sigaddset writes the set it is given (it ignores numbers out of range).
    unsafe { libc::sigaddset(&mut s, sig) };
    s
}

/// Sets the calling thread's mask (`how`: `SIG_BLOCK`, `SIG_UNBLOCK`, `SIG_SETMASK`) and
/// returns the one before.
pub(crate) fn thread_mask(how: c_int, set: &libc::sigset_t) -> libc::sigset_t {
    let mut old = super::signals::empty_set();
    // SAFETY: pthread_sigmask only changes this thread's mask and writes the old one.
    unsafe { libc::pthread_sigmask(how, set, &mut old) };
    old
}

/// Sends `sig` to the calling thread (`tgkill`: the C library's raise() may block signals
/// around it, and this is called from handlers).
pub(crate) fn raise_here(sig: c_int) {
    // SAFETY: getpid, gettid and tgkill take plain integers; tgkill only sends a signal to
    // this thread.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid);
        libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, sig);
    }
}

/// The calling thread's `errno`.
pub(crate) fn errno() -> c_int {
    // SAFETY: __errno_location returns a valid pointer to the calling thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`.
pub(crate) fn set_errno(e: c_int) {
    // SAFETY: as in errno(); only the calling thread accesses its errno.
    unsafe { *libc::__errno_location() = e };
}

/// Adds one to the counter of eventfd `fd` with a bare write(2), which is
/// async-signal-safe (a failure, EBADF or EAGAIN, is ignored).
pub(crate) fn eventfd_post(fd: c_int) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: writes 8 bytes from a live buffer to a descriptor number; a stale number
    // fails with EBADF.
    unsafe { libc::write(fd, one.as_ptr().cast(), one.len()) };
}

/// `si_code` of a signal's information.
///
/// # Safety
///
/// `info` is null or the siginfo the kernel passed to an SA_SIGINFO handler.
pub(crate) unsafe fn si_code(info: *const libc::siginfo_t) -> c_int {
    // SAFETY: the caller's contract: null or a valid siginfo.
    unsafe { info.as_ref().map_or(0, |i| i.si_code) }
}

type InfoHandler = unsafe extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void);
type PlainHandler = unsafe extern "C" fn(c_int);

/// Calls a program's signal handler as the kernel would have: `sa_sigaction(sig, info,
/// context)` if `siginfo`, else `sa_handler(sig)`.
///
/// # Safety
///
/// `handler` is the address of a function of the kind `siginfo` says, installed by the
/// program as a signal handler (not `SIG_DFL`, `SIG_IGN` or `SIG_ERR`); `info` and
/// `context` are the ones the kernel passed to the handler that calls this.
pub(crate) unsafe fn call_handler(
    handler: usize,
    siginfo: bool,
    sig: c_int,
    info: *mut libc::siginfo_t,
    context: *mut c_void,
) {
    if siginfo {
        // SAFETY: the caller's contract: an SA_SIGINFO handler of the program.
        unsafe { std::mem::transmute::<usize, InfoHandler>(handler)(sig, info, context) }
    } else {
        // SAFETY: the caller's contract: a plain handler of the program.
        unsafe { std::mem::transmute::<usize, PlainHandler>(handler)(sig) }
    }
}
