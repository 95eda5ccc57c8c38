//! `libkqueue.so.0`: the C ABI of `<sys/event.h>` (`include/sys/event.h`) over the
//! [`kq`] engine, a drop-in for libkqueue 2.x on Linux.
//!
//! This crate only translates: C integers and pointers become the engine's types, the
//! engine's `Errno` becomes `-1` and `errno`. All kqueue behaviour lives in [`kq`].
//!
//! * `kqueue()` creates a kqueue with the FreeBSD personality, or NetBSD's when the
//!   environment has `KQUEUE_PERSONALITY=netbsd` (any case) at the time of the call.
//! * The NetBSD-flavour ABI of `include/netbsd/sys/event.h` (module `netbsd`) has entry
//!   points of its own, `__kqueue_netbsd_kqueue`, `__kqueue_netbsd_kqueue1` and
//!   `__kqueue_netbsd_kevent`: NetBSD's 40-byte `struct kevent` and numbering, and kqueues
//!   that always have the NetBSD personality.
//! * `kevent()` follows the BSD system call (docs/semantics.md §1). Negative counts give
//!   `EINVAL`; a list or timeout pointer that cannot be user memory (NULL with a non-zero
//!   count, a small integer, -1, a kernel address) gives `EFAULT`; a descriptor that is not
//!   a kqueue of this process gives `EBADF`.
//! * `close()`, `dup2()`, `dup3()` and `close_range()` are defined here too (module
//!   `interpose` says when they replace the C library's): closing a descriptor number
//!   drops the knotes attached to it, as the BSD kernels do, before the C library closes it.
//! * `sigaction()`, `signal()`, `bsd_signal()`, `sysv_signal()` and `__sysv_signal()` are
//!   defined here too (module `sigaction`): on a signal that an EVFILT_SIGNAL knote watches
//!   they change the program's action kept by the library instead of removing the library's
//!   handler, so the signal is both counted and handled as the program asks.
//! * Nothing unwinds into C: a panic inside the library makes the call fail with
//!   `ENOMEM` (in builds with `panic = "abort"` it aborts instead).
//!
//! # Thread cancellation
//!
//! `kevent()` is a cancellation point when it may wait: `nevents > 0` and a timeout that
//! is NULL or not zero. `kqueue()`, `kqueue1()` and the `kevent()` calls that cannot wait
//! are not cancellation points. A cancellation pending when a waiting call starts acts
//! before any change is applied; one requested while the call waits ends the wait at once
//! (the changes of the call stay applied; events already taken are never dropped, as the
//! call acts on cancellation only while it waits).
//!
//! How: glibc cancels a thread by unwinding its stack (`_Unwind_ForcedUnwind`), from a
//! cancellation point such as `epoll_pwait()`. No Rust frame of the library may be on the
//! stack then: with `panic = "abort"` it has no cleanup code, so its locks and references
//! would stay held, and with `panic = "unwind"` the unwinder would abort the process at
//! its first `extern "C"` frame. So the engine does not sleep itself here:
//!
//! 1. `kevent()` (the exported frame) calls `pthread_testcancel()` if the call may wait,
//!    then disables cancellation, and makes its type deferred, for as long as the engine
//!    runs (the engine makes C library calls that are cancellation points, such as a
//!    zero-timeout `epoll_pwait()`, some with its lock held: none of them may act; and
//!    with asynchronous cancellation glibc 2.36 acts on a signal sent before the state was
//!    disabled, by the type alone).
//! 2. `kevent_begin` applies the changes and scans; where the engine would sleep it
//!    parks the call instead ([`kq::Park`]: every signal blocked, the state of the scan
//!    kept), keeps the kqueue referenced in a `Call` that lives in `kevent()`'s frame,
//!    and returns `WAIT`.
//! 3. `kevent()` registers a cleanup handler for the `Call` with glibc
//!    (`_pthread_cleanup_push`, run by the unwinder when the frame is left), puts the
//!    caller's cancellation state back and waits in the C library's `epoll_pwait2()` (or
//!    `epoll_pwait()`), with the program's signal mask, exactly as the engine would have:
//!    that wait is the cancellation point.
//! 4. If the thread is cancelled there, the unwinder passes `kevent()`'s frame (which owns
//!    nothing: the `Call` is a `MaybeUninit`, the calls it makes are all to `extern "C"`
//!    functions, so it has no landing pad), running the cleanup handler
//!    `kevent_cancelled`: the kqueue reference is released and the signal mask put back.
//!    No lock of the library is held during the wait. Otherwise `kevent()` disables
//!    cancellation again and `kevent_resume` goes on with the scan, which may park again.
//!
//! The exported functions must therefore keep this shape: no value with a destructor and
//! no call to a Rust function (only to `extern "C"` ones) in their own frames, and the
//! `extern "C"` functions they call that have landing pads (a caught panic) are never
//! inlined into them. The C test `tests/c/cancel.c` runs against debug and release builds;
//! `cancellable_frames_have_no_landing_pads` (tests/c_programs.rs) checks the frames.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

mod interpose;
mod netbsd;
mod sigaction;

use kq::{ChangeList, Errno, EventList, Kevent, Kqueue, KqueueRef, Park, Personality, Timespec};

/// Sets the calling thread's `errno`.
fn set_errno(e: c_int) {
    // SAFETY: `__errno_location` returns a valid pointer to the calling thread's errno,
    // which only this thread accesses.
    unsafe { *libc::__errno_location() = e };
}

/// Runs the body of an exported function: `Ok(n)` returns `n`, `Err(e)` returns -1 with
/// errno `e`, and a panic returns -1 with errno `ENOMEM` instead of unwinding into C. The
/// body is one call into the library ([`kq::library_call`]): a signal handler closing a
/// descriptor meanwhile leaves the work of that close to the end of the body.
fn ffi_call(body: impl FnOnce() -> Result<c_int, Errno>) -> c_int {
    match catch_unwind(AssertUnwindSafe(|| kq::library_call(body))) {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            set_errno(e.raw());
            -1
        }
        Err(_) => {
            set_errno(libc::ENOMEM);
            -1
        }
    }
}

/// The personality of a kqueue created from C: FreeBSD, unless the environment says
/// `KQUEUE_PERSONALITY=netbsd`.
fn personality_from_env() -> Personality {
    match std::env::var_os("KQUEUE_PERSONALITY") {
        Some(v) if v.eq_ignore_ascii_case("netbsd") => Personality::NetBsd,
        _ => Personality::FreeBsd,
    }
}

/// A new kqueue descriptor with the given personality (close-on-exec).
fn new_kqueue(personality: Personality) -> Result<c_int, Errno> {
    static HOOKED: std::sync::Once = std::sync::Once::new();
    HOOKED.call_once(|| kq::set_close_hooked(interpose::in_effect()));
    Ok(Kqueue::new_raw_fd(personality)?)
}

/// The body of `kqueue()`.
#[inline(never)]
extern "C" fn kqueue_body() -> c_int {
    ffi_call(|| new_kqueue(personality_from_env()))
}

/// `int kqueue(void)`: a new kqueue descriptor, or -1 with errno set. Not a cancellation
/// point.
#[no_mangle]
pub extern "C" fn kqueue() -> c_int {
    let state = disable_cancellation();
    let r = kqueue_body();
    restore_cancellation(state);
    r
}

/// `int kqueue1(int flags)` (NetBSD): as `kqueue()`; `flags` are accepted and ignored.
#[no_mangle]
pub extern "C" fn kqueue1(_flags: c_int) -> c_int {
    let state = disable_cancellation();
    let r = kqueue_body();
    restore_cancellation(state);
    r
}

/// The C changelist: `len` records at `ptr`, read one at a time by value.
///
/// The array may be the eventlist too, so no Rust reference to it is ever made: each
/// record is copied out with a raw read, and the engine reads entry `i` before it writes
/// any event slot `<= i`.
struct CChanges {
    ptr: *const Kevent,
    len: usize,
}

impl ChangeList for CChanges {
    fn len(&self) -> usize {
        self.len
    }

    fn get(&mut self, i: usize) -> Kevent {
        assert!(i < self.len, "changelist index out of range");
        // SAFETY: the caller of kevent() promised `len` readable records at `ptr` (it is
        // non-NULL when len > 0, checked in kevent), and i < len. Every bit pattern is a
        // valid Kevent. An unaligned read tolerates a misaligned C array.
        unsafe { ptr::read_unaligned(self.ptr.add(i)) }
    }
}

/// The C eventlist: `len` writable slots at `ptr`, written one at a time by value.
#[derive(Clone, Copy)]
struct CEvents {
    ptr: *mut Kevent,
    len: usize,
}

impl EventList for CEvents {
    fn len(&self) -> usize {
        self.len
    }

    fn put(&mut self, i: usize, ev: Kevent) {
        assert!(i < self.len, "eventlist index out of range");
        // SAFETY: the caller of kevent() promised `len` writable records at `ptr`
        // (non-NULL when len > 0, checked in kevent), and i < len. No reference to the
        // array exists, so writing through the raw pointer cannot invalidate one, even
        // when the array is also the changelist.
        unsafe { ptr::write_unaligned(self.ptr.add(i), ev) }
    }
}

/// The descriptor number `fd` as a `BorrowedFd` for the duration of one call; negative
/// numbers are never descriptors (`EBADF`).
fn borrow_fd<'a>(fd: c_int) -> Result<BorrowedFd<'a>, Errno> {
    if fd < 0 {
        return Err(Errno::BADF);
    }
    // SAFETY: fd is not -1 (the one value BorrowedFd cannot hold). The borrow lasts only
    // for the kevent() call that received the number from C, and the engine never closes
    // it. If the number is not an open descriptor (or is closed by another thread during
    // the call), the engine's lookups and system calls on it fail with EBADF, which is the
    // result kevent() must give; no memory safety depends on the descriptor being open.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

#[cfg(not(target_os = "linux"))]
compile_error!("the kqueue C library is built on the kq engine, which is for Linux only");

/// Lowest address a process can map (the usual vm.mmap_min_addr).
const USER_MIN: usize = 4096;

/// Where user memory can be, per architecture: the highest end address of user space
/// (`USER_END`) and the pointer bits the kernel ignores in user pointers (`USER_TAG_BITS`,
/// taken off before comparing). Each is the most a valid pointer can have, so that no valid
/// pointer is ever refused: the checks only catch values that cannot be user memory.
#[cfg(target_arch = "x86_64")]
mod layout {
    /// End of user space with 5-level paging (2^56 - 4096); 4-level ends lower, at
    /// 2^47 - 4096.
    pub(crate) const USER_END: usize = 0x00ff_ffff_ffff_f000;
    /// Linear address masking (LAM_U57): a program may keep a tag in bits 57-62 of its
    /// pointers. Bit 63 set is always a kernel address.
    pub(crate) const USER_TAG_BITS: usize = 0x7e00_0000_0000_0000;
}
#[cfg(target_arch = "aarch64")]
mod layout {
    /// End of user space with 52-bit virtual addresses (the most arm64 Linux gives a
    /// process); 48-bit ones end lower.
    pub(crate) const USER_END: usize = 1 << 52;
    /// Top-byte ignore: bits 56-63 of a user pointer may hold a tag (hardware-assisted
    /// sanitizers, memory tagging) that the hardware and the kernel ignore. Kernel addresses
    /// (bits 48-55 set) stay above `USER_END` once the top byte is gone.
    pub(crate) const USER_TAG_BITS: usize = 0xff00_0000_0000_0000;
}
#[cfg(target_pointer_width = "32")]
mod layout {
    /// A 32-bit process on a 64-bit kernel may map up to 4 GiB - 8 KiB (a native i686 kernel
    /// with the usual 3 GiB split ends lower): only the last page is never user memory.
    pub(crate) const USER_END: usize = 0xffff_f000;
    /// No tag bits.
    pub(crate) const USER_TAG_BITS: usize = 0;
}
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_pointer_width = "32"
)))]
mod layout {
    /// Other 64-bit architectures: nothing assumed beyond the last page.
    pub(crate) const USER_END: usize = usize::MAX - 4095;
    /// No tag bits.
    pub(crate) const USER_TAG_BITS: usize = 0;
}
use layout::{USER_END, USER_TAG_BITS};

/// Whether `len` records at `ptr` can be user memory at all: not NULL (when `len > 0`), not
/// in the first page, not past the end of user space (tag bits aside, see `layout`), no
/// wrap-around. This catches NULL, small integers, -1 and kernel addresses for free; a
/// pointer into unmapped user memory still faults, as with any C library (telling it apart
/// costs a ~1.5 us system call, such as mincore or process_vm_readv, on every call).
fn user_range<T>(ptr: *const T, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    let start = ptr as usize & !USER_TAG_BITS;
    let end = len
        .checked_mul(std::mem::size_of::<T>())
        .and_then(|bytes| start.checked_add(bytes));
    start >= USER_MIN && end.is_some_and(|end| end <= USER_END)
}

/// Converts a C count to a length: negative counts are `EINVAL`.
fn count(n: c_int) -> Result<usize, Errno> {
    usize::try_from(n).map_err(|_| Errno::INVAL)
}

/// Reads the timeout argument of kevent(): `None` for NULL, `EFAULT` for a pointer that
/// cannot be user memory. The value is validated by the engine.
///
/// # Safety
///
/// `timeout` is NULL or points to a readable `struct timespec` (as the caller of kevent()
/// promised).
unsafe fn read_timeout(timeout: *const libc::timespec) -> Result<Option<Timespec>, Errno> {
    if timeout.is_null() {
        return Ok(None);
    }
    if !user_range(timeout, 1) {
        return Err(Errno::FAULT);
    }
    // SAFETY: the caller passed a non-NULL pointer to a readable timespec; every bit
    // pattern of it is valid.
    let ts = unsafe { ptr::read_unaligned(timeout) };
    Ok(Some(Timespec {
        tv_sec: ts.tv_sec,
        tv_nsec: ts.tv_nsec,
    }))
}

// The C library's cancellation interface (not in the libc crate; glibc and musl both
// have these). Declared "C", so that calls to them need no landing pad in the exported
// functions, although the thread may be cancelled in pthread_testcancel() (see "Thread
// cancellation" above).
extern "C" {
    fn pthread_testcancel();
    fn pthread_setcancelstate(state: c_int, oldstate: *mut c_int) -> c_int;
    fn pthread_setcanceltype(kind: c_int, oldtype: *mut c_int) -> c_int;
    /// Registers a cleanup handler the old way: the unwinder runs it when the frame that
    /// holds `buffer` is unwound by cancellation.
    pub(crate) fn _pthread_cleanup_push(
        buffer: *mut CleanupBuffer,
        routine: unsafe extern "C" fn(*mut c_void),
        arg: *mut c_void,
    );
    /// Unregisters the handler of `buffer`, running it if `execute` is not 0.
    pub(crate) fn _pthread_cleanup_pop(buffer: *mut CleanupBuffer, execute: c_int);
}

/// PTHREAD_CANCEL_DISABLE (the same in glibc and musl).
const PTHREAD_CANCEL_DISABLE: c_int = 1;

/// PTHREAD_CANCEL_DEFERRED (the same in glibc and musl; ASYNCHRONOUS is 1).
const PTHREAD_CANCEL_DEFERRED: c_int = 0;

/// The cancellation state and type of a thread, as [`disable_cancellation`] saves them.
/// Plain fields: the frames that use them make no Rust call and no checked arithmetic,
/// which could need a landing pad (see "Thread cancellation").
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Cancellation {
    state: c_int,
    kind: c_int,
}

/// glibc's `struct _pthread_cleanup_buffer` (routine, argument, cancellation type, link),
/// which also has room for musl's `struct __ptcb` (routine, argument, link).
#[repr(C)]
pub(crate) struct CleanupBuffer {
    routine: usize,
    arg: *mut c_void,
    canceltype: c_int,
    prev: *mut c_void,
}

impl CleanupBuffer {
    pub(crate) const EMPTY: CleanupBuffer = CleanupBuffer {
        routine: 0,
        arg: ptr::null_mut(),
        canceltype: 0,
        prev: ptr::null_mut(),
    };
}

/// Storage for a parked call, empty (a constant, so that `kevent()` makes no call).
const NO_CALL: MaybeUninit<Call> = MaybeUninit::uninit();

/// A null timeout pointer (a constant, as [`NO_CALL`]).
const NO_TIMESPEC: *const libc::timespec = ptr::null();

/// Disables cancellation in the calling thread and makes its type deferred; returns both
/// as they were, to restore. The type matters where the program has asynchronous
/// cancellation: a cancellation signal sent before the state was disabled may arrive
/// after, and glibc's handler of it (2.36 at least) acts on the type alone, which would
/// unwind the library's own frames (their landing pads end the process on such an
/// unwinding).
pub(crate) extern "C" fn disable_cancellation() -> Cancellation {
    let mut saved = Cancellation { state: 0, kind: 0 };
    // SAFETY: pthread_setcancelstate and pthread_setcanceltype only write the previous
    // value to the pointer. Neither acts on a pending cancellation when disabling it or
    // making it deferred.
    unsafe {
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut saved.state);
        pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, &mut saved.kind);
    }
    saved
}

/// Puts back the cancellation type and state saved by [`disable_cancellation`], errno
/// untouched. With asynchronous cancellation enabled, a pending cancellation acts in
/// here: like the exported functions, this frame calls only extern "C" functions.
pub(crate) extern "C" fn restore_cancellation(saved: Cancellation) {
    // SAFETY: __errno_location returns a valid pointer to the calling thread's errno.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: as above.
    let saved_errno = unsafe { *errno };
    let mut ignored: c_int = 0;
    // SAFETY: as in disable_cancellation (the old values go to a local: NULL is not
    // portable).
    unsafe {
        pthread_setcanceltype(saved.kind, &mut ignored);
        pthread_setcancelstate(saved.state, &mut ignored);
    }
    // SAFETY: as above.
    unsafe { *errno = saved_errno };
}

/// What a `kevent()` step returns when the call is parked and `kevent()` must wait.
const WAIT: c_int = c_int::MIN;

/// A `kevent()` call parked by the engine, kept in `kevent()`'s frame while it waits.
struct Call {
    kq: KqueueRef<'static>,
    events: CEvents,
    park: Park,
}

/// The arguments of the wait `kevent()` makes for a parked call (plain data, in its frame).
#[derive(Clone, Copy)]
struct Wait {
    epfd: RawFd,
    events: *mut libc::epoll_event,
    max: c_int,
    /// The C library's epoll_pwait2, or 0 to use epoll_pwait.
    pwait2: usize,
    /// No timeout (else `ts` for epoll_pwait2, `ms` for epoll_pwait).
    forever: bool,
    ts: libc::timespec,
    ms: c_int,
    /// The program's signal mask, in the parked call's `Park`.
    mask: *const libc::sigset_t,
}

impl Wait {
    const NONE: Wait = Wait {
        epfd: -1,
        events: ptr::null_mut(),
        max: 0,
        pwait2: 0,
        forever: true,
        ts: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        ms: -1,
        mask: ptr::null(),
    };
}

/// `int epoll_pwait2(int, struct epoll_event *, int, const struct timespec *, const
/// sigset_t *)`, glibc 2.35 and later.
type Pwait2Fn = unsafe extern "C" fn(
    c_int,
    *mut libc::epoll_event,
    c_int,
    *const libc::timespec,
    *const libc::sigset_t,
) -> c_int;

/// The address of the C library's epoll_pwait2, or 0 if it has none (looked up once, by
/// name, so that the library still loads with a C library older than 2.35).
fn pwait2_fn() -> usize {
    const UNRESOLVED: usize = 0;
    const MISSING: usize = 1;
    static ADDR: AtomicUsize = AtomicUsize::new(UNRESOLVED);
    let mut addr = ADDR.load(Ordering::Relaxed);
    if addr == UNRESOLVED {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads.
        let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"epoll_pwait2".as_ptr()) } as usize;
        addr = if p == UNRESOLVED || p == MISSING {
            MISSING
        } else {
            p
        };
        ADDR.store(addr, Ordering::Relaxed);
    }
    if addr == MISSING {
        0
    } else {
        addr
    }
}

/// The arguments of the wait for the parked call in `call`.
///
/// # Safety
///
/// `call` holds a parked `Call`, which stays where it is until the wait is over.
unsafe fn wait_for(call: *mut Call) -> Wait {
    // SAFETY: the caller's promise; the pointers taken point into the Call in place.
    let park = unsafe { &mut (*call).park };
    let (events, max) = park.wait_buffer();
    let timeout = park.wait_timeout();
    let pwait2 = if park.wait_precise() { pwait2_fn() } else { 0 };
    let mut w = Wait {
        epfd: park.wait_fd(),
        events,
        max: c_int::try_from(max).unwrap_or(c_int::MAX),
        pwait2,
        forever: timeout.is_none(),
        mask: park.wait_mask(),
        ..Wait::NONE
    };
    if let Some(t) = timeout {
        w.ts = libc::timespec {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            // Below 10^9: fits any c_long.
            tv_nsec: t.subsec_nanos() as libc::c_long,
        };
        // Whole milliseconds, rounded up so that the wait is never shorter than asked.
        w.ms = c_int::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(c_int::MAX);
    }
    w
}

/// Keeps a parked call in `call` and fills `wait` with its wait: returns [`WAIT`].
///
/// # Safety
///
/// `call` is writable storage for a `Call` holding none (a previous one was moved out),
/// and `wait` is writable.
unsafe fn park_call(call: *mut Call, wait: *mut Wait, c: Call) -> c_int {
    // SAFETY: the caller's promise.
    unsafe {
        call.write(c);
        wait.write(wait_for(call));
    }
    WAIT
}

/// The result of a step that did not park: `n` events (at most nevents, a c_int).
fn events_written(n: usize) -> c_int {
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

/// Whether a kevent() call with these arguments may wait (so is a cancellation point):
/// event slots and a timeout that is NULL or not zero. Pointers that `kevent()` rejects
/// with EFAULT give false.
#[inline(never)]
extern "C" fn may_wait(nevents: c_int, timeout: *const libc::timespec) -> bool {
    if nevents <= 0 {
        return false;
    }
    if timeout.is_null() {
        return true;
    }
    if !user_range(timeout, 1) {
        return false;
    }
    // SAFETY: a non-NULL timeout pointer from the caller of kevent(), which promised a
    // readable timespec; every bit pattern of it is valid.
    let ts = unsafe { ptr::read_unaligned(timeout) };
    ts.tv_sec != 0 || ts.tv_nsec != 0
}

/// The first step of `kevent()`: applies the changes and scans. Returns the result of the
/// call, or [`WAIT`] after parking it in `call` (see "Thread cancellation").
///
/// # Safety
///
/// As for `kevent()`; `call` and `wait` are writable, `call` holding no `Call`.
#[inline(never)]
unsafe extern "C" fn kevent_begin(
    call: *mut Call,
    wait: *mut Wait,
    kq: c_int,
    changelist: *const Kevent,
    nchanges: c_int,
    eventlist: *mut Kevent,
    nevents: c_int,
    timeout: *const libc::timespec,
) -> c_int {
    ffi_call(|| {
        // docs/semantics.md §1.2 step 1: the descriptor is checked before anything else.
        let kqueue = Kqueue::find(borrow_fd(kq)?)?;
        let changes = CChanges {
            ptr: changelist,
            len: count(nchanges)?,
        };
        let events = CEvents {
            ptr: eventlist,
            len: count(nevents)?,
        };
        if !user_range(changes.ptr, changes.len) || !user_range(events.ptr, events.len) {
            return Err(Errno::FAULT);
        }
        if !timeout.is_null() && !user_range(timeout, 1) {
            return Err(Errno::FAULT);
        }
        let timeout = if timeout.is_null() {
            None
        } else {
            // SAFETY: the caller passed a non-NULL pointer to a readable timespec; every
            // bit pattern of it is valid. Its value is validated by the engine.
            let ts = unsafe { ptr::read_unaligned(timeout) };
            Some(Timespec {
                tv_sec: ts.tv_sec,
                tv_nsec: ts.tv_nsec,
            })
        };
        let mut park = Park::new();
        let n = kqueue.kevent_park(changes, events, timeout, &mut park)?;
        if !park.is_waiting() {
            return Ok(events_written(n));
        }
        let c = Call {
            kq: kqueue,
            events,
            park,
        };
        // SAFETY: the caller's promise: call holds no Call, both are writable.
        Ok(unsafe { park_call(call, wait, c) })
    })
}

/// The step of `kevent()` after a wait that returned `n` (-1: failed with `err`): goes on
/// with the call parked in `call`. Returns the result of the call, or [`WAIT`] after
/// parking it again.
///
/// # Safety
///
/// `call` holds the `Call` parked by the previous step, `wait` is writable.
#[inline(never)]
unsafe extern "C" fn kevent_resume(
    call: *mut Call,
    wait: *mut Wait,
    n: c_int,
    err: c_int,
) -> c_int {
    ffi_call(|| {
        // SAFETY: the caller's promise; the Call is moved out (and written back if the
        // call parks again).
        let mut c = unsafe { call.read() };
        // SAFETY: as above.
        let used_pwait2 = unsafe { (*wait).pwait2 } != 0;
        let woken = match usize::try_from(n) {
            Ok(n) => Ok(n),
            // A kernel before 5.11: from now on the engine says to use epoll_pwait, and
            // this wait counts as a spurious wakeup.
            Err(_) if err == libc::ENOSYS && used_pwait2 => {
                kq::force_fallbacks();
                Ok(0)
            }
            Err(_) => Err(Errno(err)),
        };
        let n = c.kq.kevent_resume(c.events, &mut c.park, woken)?;
        if !c.park.is_waiting() {
            return Ok(events_written(n));
        }
        // SAFETY: the Call was moved out above; both pointers are writable.
        Ok(unsafe { park_call(call, wait, c) })
    })
}

/// The cleanup handler of a parked call, run by the unwinder when the thread is cancelled
/// in `kevent()`'s wait: releases the kqueue and puts the signal mask back.
///
/// # Safety
///
/// `call` holds a parked `Call`, which nothing else uses afterwards.
unsafe extern "C" fn kevent_cancelled(call: *mut c_void) {
    let call = call.cast::<Call>();
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller's promise; the Call is moved out and dropped here.
        let mut c = unsafe { call.read() };
        c.park.abandon();
    }));
}

/// `int kevent(int kq, const struct kevent *changelist, int nchanges,
/// struct kevent *eventlist, int nevents, const struct timespec *timeout)`.
///
/// Returns the number of entries written to `eventlist`, or -1 with errno set.
///
/// # Safety
///
/// As for the C function: `changelist` must point to `nchanges` readable records and
/// `eventlist` to `nevents` writable records (they may be the same array), and `timeout`
/// must be NULL or point to a readable `struct timespec`. NULL lists with non-zero counts
/// and pointers that cannot be user memory (small integers, -1, kernel addresses) are
/// detected and give `EFAULT`.
#[no_mangle]
pub unsafe extern "C" fn kevent(
    kq: c_int,
    changelist: *const Kevent,
    nchanges: c_int,
    eventlist: *mut Kevent,
    nevents: c_int,
    timeout: *const libc::timespec,
) -> c_int {
    // This frame must own nothing and call only extern "C" functions: the thread may be
    // cancelled, and so unwound through it, in pthread_testcancel() and in the wait (see
    // "Thread cancellation" at the top of this file).
    if may_wait(nevents, timeout) {
        // SAFETY: no precondition.
        unsafe { pthread_testcancel() };
    }
    let state = disable_cancellation();
    // Constants, not calls: a call to a Rust function would need a landing pad here.
    let mut call = NO_CALL;
    let call_ptr = ptr::addr_of_mut!(call) as *mut Call;
    let mut wait = Wait::NONE;
    // SAFETY: the caller's promises for the arguments; `call` holds no Call yet.
    let mut r = unsafe {
        kevent_begin(
            call_ptr, &mut wait, kq, changelist, nchanges, eventlist, nevents, timeout,
        )
    };
    while r == WAIT {
        let w = wait;
        let mut cleanup = CleanupBuffer::EMPTY;
        let mut ignored: c_int = 0;
        // SAFETY: the buffer lives in this frame until the matching pop below (or until
        // the unwinder leaves the frame and runs the handler); the handler gets the parked
        // Call, which this frame holds until then.
        unsafe { _pthread_cleanup_push(&mut cleanup, kevent_cancelled, call_ptr as *mut c_void) };
        // SAFETY: puts the caller's cancellation state back; never acts on a pending
        // cancellation in deferred mode.
        // (The state alone: the type stays deferred; the C library's wait makes itself
        // asynchronous, as any cancellation point that blocks.)
        unsafe { pthread_setcancelstate(state.state, &mut ignored) };
        let n = if w.pwait2 != 0 {
            let ts: *const libc::timespec = if w.forever { NO_TIMESPEC } else { &w.ts };
            // SAFETY: pwait2 is the address of the C library's epoll_pwait2, whose ABI
            // Pwait2Fn matches; the buffer, its length and the mask come from the parked
            // call, which stays in `call` during the wait; ts is null or a local.
            unsafe {
                std::mem::transmute::<usize, Pwait2Fn>(w.pwait2)(
                    w.epfd, w.events, w.max, ts, w.mask,
                )
            }
        } else {
            // SAFETY: as above, with the C library's epoll_pwait.
            unsafe { libc::epoll_pwait(w.epfd, w.events, w.max, w.ms, w.mask) }
        };
        // SAFETY: __errno_location returns a valid pointer to the calling thread's errno.
        let err = unsafe { *libc::__errno_location() };
        // SAFETY: as for disable_cancellation().
        unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut ignored) };
        // SAFETY: the buffer pushed above, the innermost one of this thread.
        unsafe { _pthread_cleanup_pop(&mut cleanup, 0) };
        // SAFETY: `call` holds the parked Call, `wait` is writable.
        r = unsafe { kevent_resume(call_ptr, &mut wait, n, err) };
    }
    restore_cancellation(state);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(addr: usize) -> *const Kevent {
        addr as *const Kevent
    }

    #[test]
    fn user_range_refuses_what_cannot_be_user_memory() {
        let kev = std::mem::size_of::<Kevent>();
        for bad in [0, 1, 4095, usize::MAX, usize::MAX - kev + 1] {
            assert!(!user_range(at(bad), 1), "{bad:#x}");
        }
        // Wrap-around and past the end.
        assert!(!user_range(at(USER_MIN), usize::MAX / kev));
        assert!(!user_range(at(USER_END - kev + 1), 1));
        // Nothing to read: anything goes, NULL included.
        assert!(user_range(at(0), 0));
    }

    #[test]
    fn user_range_accepts_every_user_address() {
        let kev = std::mem::size_of::<Kevent>();
        let local = Kevent::default();
        assert!(user_range(&local as *const Kevent, 1));
        assert!(user_range(at(USER_MIN), 1));
        assert!(user_range(at(USER_END - kev), 1));
        let heap = vec![Kevent::default(); 100];
        assert!(user_range(heap.as_ptr(), heap.len()));
    }

    /// A tagged pointer (top-byte ignore on aarch64, address masking on x86_64) is as good
    /// as the untagged one.
    #[test]
    fn user_range_ignores_tag_bits() {
        let local = Kevent::default();
        let addr = &local as *const Kevent as usize;
        for tag in [USER_TAG_BITS, USER_TAG_BITS & USER_TAG_BITS.wrapping_neg()] {
            assert!(user_range(at(addr | tag), 1), "{:#x}", addr | tag);
        }
        #[cfg(target_arch = "aarch64")]
        {
            assert!(user_range(at(addr | 0x5a00_0000_0000_0000), 1));
            // A kernel address, tag or not.
            assert!(!user_range(at(0xffff_0000_0000_1000), 1));
            assert!(!user_range(at(0x00ff_8000_0000_1000), 1));
        }
        #[cfg(target_arch = "x86_64")]
        {
            assert!(user_range(at(addr | 0x3e00_0000_0000_0000), 1));
            assert!(!user_range(at(0xffff_8000_0000_1000), 1));
            assert!(!user_range(at(addr | 0x8000_0000_0000_0000), 1));
        }
    }
}
