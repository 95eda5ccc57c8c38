//! `close()`, `dup()`, `dup2()`, `dup3()` and `close_range()` as seen by kqueue: the
//! library defines these C functions itself, so that closing a descriptor number drops the
//! knotes attached to that number, as the BSD kernels do, before the C library's own
//! function closes it, and so that a copy of a kqueue descriptor is known at once as one
//! of the kqueue's numbers.
//!
//! # When the interposition is in effect
//!
//! The dynamic linker binds a function name to the first object in the global lookup
//! order that defines it: the executable, then its libraries breadth-first in link order
//! (with libc last, where the compiler puts it), with `LD_PRELOAD` libraries ahead of all
//! of them but the executable. So these functions replace the C library's for every caller
//! in the process (the program, its other libraries, this library) when:
//!
//! * the program itself is linked with `-lkqueue` (libkqueue.so), or with libkqueue.a (the
//!   definitions then live in the executable); or
//! * the program runs with `LD_PRELOAD=libkqueue.so.0`.
//!
//! They are not in effect when:
//!
//! * the program reaches libkqueue only through another shared library (a libevent.so
//!   built against it, a plugin loaded with dlopen()): libc is found first;
//! * a descriptor is closed by a raw system call (`syscall(SYS_close, fd)`, inline
//!   assembly, a runtime that bypasses libc);
//! * the C library closes a descriptor internally, through entry points of its own:
//!   `fclose()`, `closedir()`, `closefrom()`, `posix_spawn()` file actions, the loader;
//! * a descriptor is closed by `exec()` (close-on-exec); that process image and its
//!   knotes are gone anyway.
//!
//! The first kqueue() checks which case holds ([`in_effect`]: whether the name `close`
//! resolves to the definition below) and tells the engine ([`kq::set_close_hooked`]).
//! Where it is in effect, the engine trusts its own table of which numbers are kqueue
//! descriptors: a kqueue descriptor must then be closed through these functions. One
//! closed by a raw system call stays alive in the library, and its number keeps naming
//! that kqueue in kevent() even after another file has taken the number.
//!
//! Where it is not in effect nothing wrong is reported: the engine checks, when it
//! reports an event or a number is registered again, that the number still refers to the
//! file that was registered, so a closed descriptor and a number reused by another file
//! produce no event. What is lost is only the cleanup: the knotes of a closed number stay
//! until an `EV_DELETE`, until the number is registered again with `EV_ADD`, or until the
//! kqueue is closed.
//!
//! # What each function does
//!
//! * `close(fd)`: if `fd` carries knotes or is a kqueue descriptor (one atomic load, no
//!   lock, for every other number), the engine drops them ([`kq::fdclose_begin`]); then the
//!   C library's `close()` runs; then a kqueue number is forgotten ([`kq::fdclose_end`],
//!   from a cleanup handler, so that it runs also when cancellation ends the call in the C
//!   library's close()). Until then the number stays known to the library, so that a
//!   fork() by another thread in between closes the child's copy (a kqueue is not
//!   inherited). dup2, dup3 and close_range do the same around their calls.
//! * `dup2(old, new)`, `dup3(old, new, flags)`: `new` is about to be closed and replaced,
//!   so its knotes are dropped first, unless the call is bound to fail without touching
//!   `new`: `old == new` (dup2 then does nothing, dup3 fails with `EINVAL`), `old` is not
//!   an open descriptor (`EBADF`), `flags` other than `O_CLOEXEC` (`EINVAL`). A kqueue
//!   number `new` was is forgotten after the call unless `new` still names that kqueue
//!   (`old` may be a copy of the same one: [`kq::fdclose_end_checked`]).
//! * `dup(old)`, `dup2(old, new)`, `dup3(old, new, flags)` of a kqueue number `old`: the
//!   copy is recorded as one of the kqueue's numbers, with no fork() between the copy and
//!   its recording ([`kq::fddup`]), so that a fork's child closes it. `fcntl(F_DUPFD)` is
//!   not interposed (it is variadic, which a stable Rust definition cannot be, and called
//!   for everything): such a copy is known once used in a `kevent()` call, or found when
//!   the kqueue's last known number is closed.
//! * `close_range(first, last, flags)`: drops the knotes of every tracked number in the
//!   range (the walk stops at the highest tracked number, so `close_range(3, ~0U, 0)` is
//!   cheap), then calls the C library's function. Nothing is dropped when `flags` has
//!   `CLOSE_RANGE_CLOEXEC` (the descriptors stay open until exec), when the arguments are
//!   invalid (`first > last`, unknown flags: the call fails), when the kernel has no
//!   close_range (the call fails with `ENOSYS`), or when `flags` has `CLOSE_RANGE_UNSHARE`:
//!   the range is then closed in a private copy of the descriptor table, while other
//!   threads that shared the table keep the descriptors open, and the knotes must stay for
//!   them. With a C library that has no close_range (glibc before 2.34) the system call is
//!   made directly, and gives `ENOSYS` where the kernel does.
//!
//! The C library's functions are found once, with `dlsym(RTLD_NEXT, ...)`: inside this
//! library, and in any program linking it, a plain call to `close` resolves to the
//! function below itself. They are looked up when the library is loaded (so that the
//! first close() may come from a signal handler) and again on demand if that did not
//! happen (libkqueue.a linked without its initialiser); where the lookup finds nothing
//! (a fully static program), the system call is made directly.
//!
//! # Guarantees
//!
//! * `errno` is the C library function's: the knote work saves and restores it.
//! * Cancellation: `close()` acts first on a cancellation pending when it is called (as
//!   the C library's does), before any knote is dropped; the C library's `close()` is then
//!   called, so it stays a cancellation point. The knote work runs with cancellation
//!   disabled and its type deferred (it may close internal descriptors of a kqueue, and
//!   must not be cut short holding the engine's locks; glibc 2.36 acts on a cancellation
//!   signal sent before the state was disabled if the type is asynchronous), and the
//!   program's state and type are put back only around the C library's call and at the
//!   return. A request that acts in the C library's `close()` may act before or after the
//!   descriptor is closed: the cleanup handler then keeps a kqueue number that still names
//!   its kqueue. Cancellation unwinds the thread's stack through the frames of this module
//!   that are live where it may act: those frames hold no value with a destructor and call
//!   only functions that cannot unwind, so they have no landing pad that could stop the
//!   unwinding (a landing pad, even one that merely aborts, would end the process instead:
//!   that is why the knote work, which catches panics, is in functions of its own).
//! * Nothing panics across the boundary: a panic in the engine is caught, the descriptor
//!   is still closed (its knotes may then linger, as when the interposition is not in
//!   effect).
//! * Async-signal safety: for numbers without knotes, close() takes no lock and allocates
//!   nothing (once the C library's function has been looked up, normally at load time).
//!   For a number with knotes, or a kqueue number, it takes the engine's locks, like any
//!   kevent() call, unless the calling thread is inside the library (a signal handler that
//!   interrupted it there): then it only marks the number, closes it, and leaves the rest
//!   to the end of the interrupted call (see [`kq::library_call`]).
//! * A `vfork()`ed child shares the parent's memory, so it runs these functions on the
//!   parent's engine state, but it has a descriptor table of its own: its close() before
//!   exec must not drop the parent's knotes. The engine's [`kq::fdclose`] checks the
//!   calling process itself, so nothing is done about it here.

use std::ffi::{c_int, c_uint, c_void, CStr};

use crate::{
    _pthread_cleanup_pop, _pthread_cleanup_push, disable_cancellation, restore_cancellation,
    CleanupBuffer,
};
use std::os::fd::RawFd;
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

// The C library's functions. Declared "C" (cannot unwind) although close() can be left by
// cancellation: calls to them then need no landing pad (see the module documentation).
type CloseFn = unsafe extern "C" fn(c_int) -> c_int;
type DupFn = unsafe extern "C" fn(c_int) -> c_int;
type Dup2Fn = unsafe extern "C" fn(c_int, c_int) -> c_int;
type Dup3Fn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
type CloseRangeFn = unsafe extern "C" fn(c_uint, c_uint, c_int) -> c_int;

extern "C" {
    // Not in the libc crate. The constant is the same in glibc and musl.
    fn pthread_setcancelstate(state: c_int, oldstate: *mut c_int) -> c_int;
    fn pthread_testcancel();
}
const PTHREAD_CANCEL_DISABLE: c_int = 1;

/// A function of the next object in the lookup order (the C library's), looked up once.
pub(crate) struct Next {
    name: &'static CStr,
    /// [`UNRESOLVED`], [`MISSING`] or the function's address.
    addr: AtomicUsize,
}

const UNRESOLVED: usize = 0;
const MISSING: usize = 1;

impl Next {
    pub(crate) const fn new(name: &'static CStr) -> Next {
        Next {
            name,
            addr: AtomicUsize::new(UNRESOLVED),
        }
    }

    /// The function's address, or 0 when the C library has none.
    pub(crate) fn get(&self) -> usize {
        // Relaxed is enough: the value is all a reader needs (the code it points to is
        // mapped before dlsym can return it), and a race only makes two threads look it up.
        let mut addr = self.addr.load(Ordering::Relaxed);
        if addr == UNRESOLVED {
            addr = keeping_errno(|| {
                // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name has no
                // precondition; it returns NULL when no later object defines the name.
                let p = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr()) } as usize;
                if p == UNRESOLVED || p == MISSING {
                    MISSING
                } else {
                    p
                }
            });
            self.addr.store(addr, Ordering::Relaxed);
        }
        if addr == MISSING {
            0
        } else {
            addr
        }
    }
}

const CLOSE: usize = 0;
const DUP2: usize = 1;
const DUP3: usize = 2;
const CLOSE_RANGE: usize = 3;
const DUP: usize = 4;
static NEXT: [Next; 5] = [
    Next::new(c"close"),
    Next::new(c"dup2"),
    Next::new(c"dup3"),
    Next::new(c"close_range"),
    Next::new(c"dup"),
];

/// The address of the C library's function `NEXT[which]`, or 0 when it has none.
extern "C" fn next_fn(which: usize) -> usize {
    NEXT.get(which).map_or(0, Next::get)
}

/// Looks the C library's functions up when the library is loaded (or, for libkqueue.a,
/// when the program starts), so that the first call needs no dlsym().
extern "C" fn resolve_all() {
    for next in &NEXT {
        let _ = next.get();
    }
}

#[used]
#[link_section = ".init_array"]
static RESOLVE_AT_LOAD: extern "C" fn() = resolve_all;

pub(crate) fn errno() -> c_int {
    // SAFETY: __errno_location returns a valid pointer to the calling thread's errno.
    unsafe { *libc::__errno_location() }
}

pub(crate) fn set_errno(e: c_int) {
    // SAFETY: as in errno(); only the calling thread accesses its errno.
    unsafe { *libc::__errno_location() = e };
}

/// Runs `f` and puts `errno` back as it was.
fn keeping_errno<T>(f: impl FnOnce() -> T) -> T {
    let saved = errno();
    let r = f();
    set_errno(saved);
    r
}

/// Whether `fd` carries knotes or is a kqueue descriptor (lock-free).
fn tracked(fd: RawFd) -> bool {
    fd >= 0 && catch_unwind(|| kq::fd_tracked(fd)).unwrap_or(false)
}

/// Runs the engine's work `f` with errno and the cancellation state left as they were; a
/// panic in the engine is swallowed (the descriptor must be closed all the same): `None`.
fn engine_work<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Option<T> {
    keeping_errno(|| {
        let mut old_state: c_int = 0;
        // SAFETY: pthread_setcancelstate only writes the previous state to the pointer.
        let disabled =
            unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old_state) } == 0;
        let r = catch_unwind(f).ok();
        if disabled {
            let mut dummy: c_int = 0;
            // SAFETY: as above (the old state goes to a dummy: NULL is not portable).
            unsafe { pthread_setcancelstate(old_state, &mut dummy) };
        }
        r
    })
}

/// Drops the knotes of number `fd`, which is about to be closed or replaced. Returns the
/// token for [`end`] (0: nothing to do after the close).
fn begin(fd: RawFd) -> u64 {
    engine_work(|| kq::fdclose_begin(fd)).unwrap_or(0)
}

/// After number `fd` was closed or replaced: forgets it if it was a kqueue descriptor
/// (`token` from [`begin`]).
#[inline(never)]
extern "C" fn end(fd: c_int, token: u64) {
    if token != 0 {
        let _ = engine_work(|| kq::fdclose_end(fd, token));
    }
}

/// As [`end`], where the number may still refer to its kqueue: a cancelled close(), or a
/// dup2()/dup3() that may have put a copy of the same kqueue on it.
#[inline(never)]
extern "C" fn end_checked(fd: c_int, token: u64) {
    if token != 0 {
        let _ = engine_work(|| kq::fdclose_end_checked(fd, token));
    }
}

/// A close() in progress on a number that needs [`end`] after it.
struct Closing {
    fd: c_int,
    token: u64,
}

/// Run when cancellation unwinds close()'s frame during the C library's close(), for the
/// [`Closing`] at `arg`. The C library may have acted on the request before closing the
/// descriptor (glibc and musl do, when it is pending as their close() starts) or after
/// (asynchronous cancellation): the number is forgotten only if it no longer refers to
/// its kqueue (checked with kcmp; if another thread put a copy of the same kqueue on the
/// freed number meanwhile, that copy is one of its numbers all the same).
///
/// # Safety
///
/// `arg` points to a live `Closing`.
unsafe extern "C" fn close_cancelled(arg: *mut c_void) {
    // SAFETY: the caller's promise.
    let c = unsafe { &*arg.cast::<Closing>() };
    end_checked(c.fd, c.token);
}

thread_local! {
    /// The kqueue numbers a close_range() of this thread is closing, with their tokens.
    static RANGE: std::cell::RefCell<Vec<(RawFd, u64)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `fd` is an open descriptor of the calling process (errno untouched).
fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no argument and only reads the descriptor's flags.
    keeping_errno(|| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
}

/// Whether close_range() works here (kernel 5.9 or later, not refused by a seccomp
/// filter): probed once, with a range that holds no descriptor.
fn close_range_works() -> bool {
    const UNKNOWN: u8 = 0;
    const YES: u8 = 1;
    const NO: u8 = 2;
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
    let mut state = STATE.load(Ordering::Relaxed);
    if state == UNKNOWN {
        let ok = keeping_errno(|| real_close_range(c_uint::MAX, c_uint::MAX, 0) == 0);
        state = if ok { YES } else { NO };
        STATE.store(state, Ordering::Relaxed);
    }
    state == YES
}

// The knote work, one function per entry point. They are "C" functions, so that calling
// them needs no landing pad in the exported functions; a panic inside is caught anyway.
// Never inlined: their landing pads would become the exported function's, and an unwinding
// for cancellation through that frame would end the process (cancellation never acts
// inside them: it is disabled there).

#[inline(never)]
extern "C" fn before_close(fd: c_int) -> u64 {
    if tracked(fd) {
        begin(fd)
    } else {
        0
    }
}

#[inline(never)]
extern "C" fn before_dup(oldfd: c_int, newfd: c_int, flags: c_int) -> u64 {
    // dup2(fd, fd) does nothing, dup3(fd, fd, _) and bad flags fail with EINVAL, a closed
    // oldfd fails with EBADF: newfd is left as it is in each case.
    if oldfd != newfd && flags & !libc::O_CLOEXEC == 0 && tracked(newfd) && is_open(oldfd) {
        begin(newfd)
    } else {
        0
    }
}

#[inline(never)]
extern "C" fn before_close_range(first: c_uint, last: c_uint, flags: c_int) {
    // Only flags 0 closes in the process's table: CLOSE_RANGE_CLOEXEC closes nothing now,
    // CLOSE_RANGE_UNSHARE closes in a private copy, unknown bits and first > last fail.
    if flags != 0 || first > last {
        return;
    }
    keeping_errno(|| {
        let max = catch_unwind(kq::fd_tracked_max).ok().flatten();
        let Some(max) = max.and_then(|m| c_uint::try_from(m).ok()) else {
            return;
        };
        let mut checked = false;
        for n in first..=last.min(max) {
            // n <= max, which came from a RawFd.
            let fd = RawFd::try_from(n).unwrap_or(RawFd::MAX);
            if tracked(fd) {
                // Drop nothing if the call is going to fail with ENOSYS.
                if !checked && !close_range_works() {
                    return;
                }
                checked = true;
                let token = begin(fd);
                if token != 0 {
                    let _ = RANGE.try_with(|r| r.borrow_mut().push((fd, token)));
                }
            }
        }
    });
}

/// Calls the C library's dup(), dup2() or dup3() (`which`): a copy of a kqueue number is
/// recorded as one of its numbers (see [`kq::fddup`]). errno is the C library call's.
#[inline(never)]
extern "C" fn recorded_dup(which: usize, oldfd: c_int, newfd: c_int, flags: c_int) -> c_int {
    let call = || match which {
        DUP => real_dup(oldfd),
        DUP2 => real_dup2(oldfd, newfd),
        _ => real_dup3(oldfd, newfd, flags),
    };
    if !tracked(oldfd) {
        return call();
    }
    // (result, errno) of the call, once made: a panic in the engine after it must not
    // make it twice.
    let mut made: Option<(c_int, c_int)> = None;
    let made_ref = &mut made;
    let _ = engine_work(std::panic::AssertUnwindSafe(move || {
        kq::fddup(oldfd, || {
            let r = call();
            *made_ref = Some((r, errno()));
            r
        })
    }));
    match made {
        Some((r, e)) => {
            set_errno(e);
            r
        }
        None => call(),
    }
}

/// After a close_range(): forgets the kqueue numbers it closed.
#[inline(never)]
extern "C" fn after_close_range() {
    let _ = engine_work(|| {
        let closed = RANGE.try_with(|r| std::mem::take(&mut *r.borrow_mut()));
        for (fd, token) in closed.unwrap_or_default() {
            kq::fdclose_end(fd, token);
        }
    });
}

// The C library's functions, or the system calls where it has none. These frames are live
// while the C library runs: they must call nothing that can unwind (no Rust function, no
// conversion that could panic), so that they have no landing pad.

extern "C" fn real_close(fd: c_int) -> c_int {
    let f = next_fn(CLOSE);
    if f != 0 {
        // SAFETY: f is the address of the C library's `int close(int)`, whose ABI CloseFn
        // matches; it may be called with any number.
        unsafe { std::mem::transmute::<usize, CloseFn>(f)(fd) }
    } else {
        // SAFETY: close(2) with any number is harmless to memory. Its result is 0 or -1.
        unsafe { libc::syscall(libc::SYS_close, fd) as c_int }
    }
}

extern "C" fn real_dup(oldfd: c_int) -> c_int {
    let f = next_fn(DUP);
    if f != 0 {
        // SAFETY: the C library's `int dup(int)`, matching DupFn; any number does.
        unsafe { std::mem::transmute::<usize, DupFn>(f)(oldfd) }
    } else {
        // SAFETY: dup(2) only changes the descriptor table; result a number or -1.
        unsafe { libc::syscall(libc::SYS_dup, oldfd) as c_int }
    }
}

extern "C" fn real_dup2(oldfd: c_int, newfd: c_int) -> c_int {
    let f = next_fn(DUP2);
    if f != 0 {
        // SAFETY: the C library's `int dup2(int, int)`, matching Dup2Fn; any numbers do.
        unsafe { std::mem::transmute::<usize, Dup2Fn>(f)(oldfd, newfd) }
    } else {
        dup2_syscall(oldfd, newfd)
    }
}

/// dup2() from system calls (some architectures have no dup2 system call).
extern "C" fn dup2_syscall(oldfd: c_int, newfd: c_int) -> c_int {
    if oldfd != newfd {
        // SAFETY: dup3(2) only changes the descriptor table. Its result is a descriptor
        // number or -1.
        return unsafe { libc::syscall(libc::SYS_dup3, oldfd, newfd, 0) as c_int };
    }
    if is_open(oldfd) {
        newfd
    } else {
        set_errno(libc::EBADF);
        -1
    }
}

extern "C" fn real_dup3(oldfd: c_int, newfd: c_int, flags: c_int) -> c_int {
    let f = next_fn(DUP3);
    if f != 0 {
        // SAFETY: the C library's `int dup3(int, int, int)`, matching Dup3Fn.
        unsafe { std::mem::transmute::<usize, Dup3Fn>(f)(oldfd, newfd, flags) }
    } else {
        // SAFETY: dup3(2) only changes the descriptor table; result a number or -1.
        unsafe { libc::syscall(libc::SYS_dup3, oldfd, newfd, flags) as c_int }
    }
}

extern "C" fn real_close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let f = next_fn(CLOSE_RANGE);
    if f != 0 {
        // SAFETY: the C library's `int close_range(unsigned, unsigned, int)`, matching
        // CloseRangeFn.
        unsafe { std::mem::transmute::<usize, CloseRangeFn>(f)(first, last, flags) }
    } else {
        // SAFETY: close_range(2) only changes the descriptor table; result 0 or -1
        // (ENOSYS before Linux 5.9).
        unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) as c_int }
    }
}

/// Whether the program's calls to close() reach the function below: the name `close`
/// resolves, in the global lookup order, to this library's definition. The engine then
/// trusts its table of kqueue descriptors and needs no background sweep.
pub(crate) fn in_effect() -> bool {
    // SAFETY: dlsym with a NUL-terminated name and the RTLD_DEFAULT handle only reads.
    let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"close".as_ptr()) };
    std::ptr::eq(found as *const (), close as *const ())
}

/// `int close(int fd)`: drops the knotes of `fd` (and forgets it if it is a kqueue
/// descriptor), then calls the C library's close().
#[no_mangle]
pub extern "C" fn close(fd: c_int) -> c_int {
    // What the C library's close() does first: a cancellation pending now acts here, before
    // any knote is dropped, and the number is left as it was.
    // SAFETY: no precondition.
    unsafe { pthread_testcancel() };
    // Asynchronous cancellation must not land in the library's own frames (which may have
    // landing pads, where an unwinding for cancellation aborts the process): it is off
    // until the C library's call, and again after it.
    let state = disable_cancellation();
    let token = before_close(fd);
    if token == 0 {
        restore_cancellation(state);
        return real_close(fd);
    }
    // A kqueue number, or one that carried knotes: forgotten once closed. Cancellation
    // may end the call in the C library's close() (a cancellation point), before or after
    // the descriptor is closed: the handler tells which.
    let mut closing = Closing { fd, token };
    let mut cleanup = CleanupBuffer::EMPTY;
    // SAFETY: the buffer and `closing` live in this frame until the matching pop below (or
    // until the unwinder leaves the frame and runs the handler); the handler gets them.
    unsafe {
        _pthread_cleanup_push(
            &mut cleanup,
            close_cancelled,
            std::ptr::addr_of_mut!(closing) as *mut c_void,
        )
    };
    // An asynchronous cancellation pending acts here, the descriptor still open.
    restore_cancellation(state);
    let r = real_close(fd);
    let _ = disable_cancellation();
    // SAFETY: the buffer pushed above, the innermost one of this thread; 0: the handler
    // does not run (the close happened: Linux frees the number even when close() fails).
    unsafe { _pthread_cleanup_pop(&mut cleanup, 0) };
    end(fd, token);
    restore_cancellation(state);
    r
}

/// `int dup(int oldfd)`: a copy of a kqueue number is recorded as one of its numbers (a
/// fork's child then closes it), then the C library's dup() is called.
#[no_mangle]
pub extern "C" fn dup(oldfd: c_int) -> c_int {
    let state = disable_cancellation();
    let r = recorded_dup(DUP, oldfd, -1, 0);
    restore_cancellation(state);
    r
}

/// `int dup2(int oldfd, int newfd)`: drops the knotes of `newfd` when the call is going to
/// replace it, then calls the C library's dup2(); a copy of a kqueue number is recorded.
#[no_mangle]
pub extern "C" fn dup2(oldfd: c_int, newfd: c_int) -> c_int {
    let state = disable_cancellation();
    let token = before_dup(oldfd, newfd, 0);
    let r = recorded_dup(DUP2, oldfd, newfd, 0);
    end_checked(newfd, token);
    restore_cancellation(state);
    r
}

/// `int dup3(int oldfd, int newfd, int flags)`: as dup2(), for a call with valid flags.
#[no_mangle]
pub extern "C" fn dup3(oldfd: c_int, newfd: c_int, flags: c_int) -> c_int {
    let state = disable_cancellation();
    let token = before_dup(oldfd, newfd, flags);
    let r = recorded_dup(DUP3, oldfd, newfd, flags);
    end_checked(newfd, token);
    restore_cancellation(state);
    r
}

/// `int close_range(unsigned int first, unsigned int last, int flags)`: drops the knotes
/// of the numbers in the range when the call is going to close them in the process's
/// descriptor table, then calls the C library's close_range() (or the system call).
#[no_mangle]
pub extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let state = disable_cancellation();
    before_close_range(first, last, flags);
    let r = real_close_range(first, last, flags);
    after_close_range();
    restore_cancellation(state);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> [c_int; 2] {
        let mut p = [-1; 2];
        // SAFETY: pipe() writes two descriptors to the array.
        assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        p
    }

    #[test]
    fn finds_the_c_library_functions_not_these() {
        let ours = [
            close as *const () as usize,
            dup2 as *const () as usize,
            dup3 as *const () as usize,
            close_range as *const () as usize,
            dup as *const () as usize,
        ];
        for (which, ours) in ours.into_iter().enumerate() {
            let f = next_fn(which);
            assert_ne!(f, ours, "{:?} resolved to itself", NEXT[which].name);
            // close_range is missing from glibc before 2.34: then 0, the system call.
            if which != CLOSE_RANGE {
                assert_ne!(f, 0, "{:?} not found", NEXT[which].name);
            }
        }
    }

    /// A number that is never an open descriptor (tests run in parallel threads: a number
    /// closed here may be reused by another test at once).
    const NOT_OPEN: c_int = 1 << 30;

    #[test]
    fn errno_is_the_c_library_call_s() {
        let p = pipe();
        set_errno(1234);
        assert_eq!(close(p[0]), 0);
        assert_eq!(errno(), 1234);
        assert_eq!(close(NOT_OPEN), -1);
        assert_eq!(errno(), libc::EBADF);
        assert_eq!(dup2(NOT_OPEN, p[1]), -1);
        assert_eq!(errno(), libc::EBADF);
        set_errno(0);
        assert_eq!(dup3(p[1], p[1], 0), -1);
        assert_eq!(errno(), libc::EINVAL);
        set_errno(1235);
        assert_eq!(close(p[1]), 0);
        assert_eq!(errno(), 1235);
    }

    #[test]
    fn dup2_from_system_calls() {
        let a = pipe();
        let b = pipe();
        assert_eq!(dup2_syscall(a[0], a[0]), a[0]);
        assert_eq!(dup2_syscall(a[0], b[0]), b[0]);
        // SAFETY: all zeroes is a valid struct stat.
        let mut st_a: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut st_b: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes one struct stat.
        unsafe {
            assert_eq!(libc::fstat(a[0], &mut st_a), 0);
            assert_eq!(libc::fstat(b[0], &mut st_b), 0);
        }
        assert_eq!(st_a.st_ino, st_b.st_ino);
        for fd in [a[0], a[1], b[0], b[1]] {
            assert_eq!(close(fd), 0);
        }
        set_errno(0);
        assert_eq!(dup2_syscall(NOT_OPEN, NOT_OPEN), -1);
        assert_eq!(errno(), libc::EBADF);
        set_errno(0);
        assert_eq!(dup2_syscall(NOT_OPEN, 3), -1);
        assert_eq!(errno(), libc::EBADF);
    }

    #[test]
    fn close_range_is_probed_without_closing_anything() {
        let p = pipe();
        // Linux 5.9 and later (the probe is a range holding no descriptor).
        assert!(close_range_works());
        assert!(is_open(p[0]) && is_open(p[1]));
        let n = c_uint::try_from(p[0]).unwrap();
        assert_eq!(close_range(n, n, 0), 0);
        // The read end is gone (SIGPIPE is ignored in Rust programs).
        // SAFETY: writes one byte from a valid buffer.
        assert_eq!(unsafe { libc::write(p[1], b"x".as_ptr().cast(), 1) }, -1);
        assert_eq!(errno(), libc::EPIPE);
        assert_eq!(close(p[1]), 0);
        set_errno(0);
        assert_eq!(close_range(5, 4, 0), -1);
        assert_eq!(errno(), libc::EINVAL);
    }
}
