//! BSD kqueue(2)/kevent(2) for Linux, with EVFILT_USER at its heart.
//!
//! A [`Kqueue`] registers interest in events and collects those that fired, with the
//! semantics of the NetBSD kernel (or FreeBSD's, see [`Personality`]): the same change list
//! rules, EV_ERROR reports and receipts, EV_CLEAR/EV_ONESHOT/EV_DISPATCH, and EVFILT_USER
//! exactly as NetBSD added it in PR kern/55663, quirks included.
//!
//! Two layers:
//! - the raw call, shaped like the system call: [`Kevent`] (laid out as C's `struct
//!   kevent`), the BSD constants ([`EVFILT_USER`], [`EV_ADD`], [`NOTE_TRIGGER`], ...) and
//!   [`Kqueue::kevent`];
//! - a typed layer: [`Change`] builders with [`Flags`] and `usize` tokens,
//!   [`EventFilter`] names, [`Kqueue::apply`] and [`Kqueue::wait`] with an [`Events`]
//!   buffer of [`Event`] views, [`Kqueue::trigger`] and the [`Waker`] handle.
//!
//! Every fallible function returns [`std::io::Result`]; [`Errno`] is the error type of
//! filter hooks only.
//!
//! The engine mirrors the kernel's: filters implement a `Filter` trait (attach, detach,
//! event, touch), knotes are keyed by (ident, filter), and `kevent()` scans an active queue.
//! With the `custom-filters` feature, programs can add filters at run time (the `filter`
//! module, `Knote` and `Kqueue::post`).
//!
//! # Examples
//!
//! Waking an event loop from another thread:
//!
//! ```
//! use kq::{Events, Kqueue};
//! use std::{thread, time::Duration};
//!
//! const WAKE: usize = 1;
//! let kq = Kqueue::new()?;
//! let waker = kq.waker(WAKE)?;
//! let worker = thread::spawn(move || waker.wake());
//!
//! let mut events = Events::with_capacity(8);
//! let n = kq.wait(&mut events, Some(Duration::from_secs(5)))?;
//! assert_eq!(n, 1);
//! for ev in &events {
//!     assert_eq!(ev.token(), WAKE);
//! }
//! worker.join().unwrap()?;
//! # Ok::<(), std::io::Error>(())
//! ```

// `unsafe` lives in `sys` (system calls, signal masks, fork handlers) and in the Send/Sync
// impls of `Kevent`; everything else is safe code.
#![deny(
    unsafe_code,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]
#![warn(missing_docs, missing_debug_implementations)]

mod calls;
mod consts;
#[cfg(feature = "custom-filters")]
pub mod filter;
#[cfg(not(feature = "custom-filters"))]
#[allow(dead_code)]
mod filter;
pub mod guide;
mod kevent;
mod knote;
mod kqueue;
#[cfg(feature = "mio")]
mod mio;
mod personality;
#[allow(unsafe_code)]
mod process;
#[allow(unsafe_code)]
pub mod signal;
#[allow(unsafe_code)]
mod sys;
#[cfg(feature = "tokio")]
pub mod tokio;
mod typed;
mod wait;

pub use consts::*;
pub use kevent::{ChangeList, Errno, EventList, Kevent, Timespec};
#[cfg(feature = "custom-filters")]
pub use knote::Knote;
pub use kqueue::{Kqueue, KqueueBuilder, KqueueRef, Park};
pub use personality::Personality;
pub use typed::{
    Change, Event, EventFilter, Events, EventsIter, FflagsOp, Flags, OtherFilter, Waker,
};

/// The kernel's `knote_fdclose`: descriptor number `fd` is being closed (or replaced by
/// dup2/dup3). Drops, silently, every knote of a descriptor filter on that number in every
/// kqueue of the process (an event already pending for it is withdrawn), and forgets the
/// number if it is a kqueue descriptor handed out as a raw descriptor, which closes that
/// kqueue once no known number refers to it: threads blocked in `kevent()` on it return
/// EBADF. Call it *before* the descriptor is closed. Cheap for numbers that carry no knote:
/// two atomic loads, no lock, no system call. In a vfork()ed child (which shares the
/// library's memory but not the descriptor table) it does nothing. From a signal handler
/// that interrupted its thread inside the library, only the async-signal-safe part is done
/// at once (see [`library_call`]).
pub fn fdclose(fd: std::os::fd::RawFd) {
    process::fdclose(fd)
}

/// [`fdclose`] in two halves, for a caller that closes the descriptor right after the
/// first (an interposed close()): drops the knotes of number `fd`, and returns a token
/// that [`fdclose_end`] takes once the close is done. A kqueue descriptor's number stays
/// known to the library until then, so that a fork() by another thread in between still
/// closes the child's copy of it (a kqueue is not inherited). The token is 0 when there is
/// nothing left for [`fdclose_end`] to do.
pub fn fdclose_begin(fd: std::os::fd::RawFd) -> u64 {
    process::fdclose_begin(fd)
}

/// The second half of [`fdclose`], after the descriptor was closed (or replaced): `token`
/// is what [`fdclose_begin`] returned for `fd`. Forgets the kqueue number, which closes
/// that kqueue if no other known number refers to it. Call it even if the close failed.
pub fn fdclose_end(fd: std::os::fd::RawFd, token: u64) {
    process::fdclose_end(fd, token)
}

/// As [`fdclose_end`], where the close may not have happened: cancellation ended the call
/// that was to close `fd` (POSIX leaves the descriptor open or closed then, and glibc acts
/// on a cancellation pending at close() before it closes), or the number was replaced by
/// a copy of a descriptor (dup2/dup3) that may be of the same kqueue. The number stays a
/// number of its kqueue if it still refers to it (checked with kcmp), else it is
/// forgotten as by [`fdclose_end`].
pub fn fdclose_end_checked(fd: std::os::fd::RawFd, token: u64) {
    process::fdclose_end_checked(fd, token)
}

/// Makes a copy of descriptor `oldfd` with `dup` (an interposed dup(), dup2() or dup3()
/// calls the C library's there, which returns the new number or -1), and returns what
/// `dup` returned: a copy of a kqueue descriptor is recorded as one of the kqueue's
/// numbers, with no fork() in between, so that a fork's child does not keep it open (a
/// kqueue is not inherited). `dup` must not call into the library.
pub fn fddup(
    oldfd: std::os::fd::RawFd,
    dup: impl FnOnce() -> std::os::fd::RawFd,
) -> std::os::fd::RawFd {
    process::fddup(oldfd, dup)
}

/// Runs `f`, one call into the library from an entry point of a C library (the C
/// `kevent()`, `kqueue()`, ...), and returns its result. While `f` runs, a close that a
/// signal handler reports on this thread ([`fdclose_begin`] and [`fdclose_end`], or
/// [`fdclose`]) does only its async-signal-safe part (the descriptor is closed at once,
/// a kqueue number is no longer trusted by any lookup), and keeps the rest (dropping
/// knotes, forgetting the number) for when `f` returns: the work needs locks that `f` may
/// hold, and allocates. The same holds, without `library_call`, while the thread holds a
/// lock of the library; the kept work is then done when the thread lets go of its last
/// lock of the library.
pub fn library_call<T>(f: impl FnOnce() -> T) -> T {
    let _call = calls::Call::enter();
    f()
}

/// Whether descriptor number `fd` carries knotes or is a known kqueue descriptor: the O(1),
/// lock-free test an interposed close() makes before calling [`fdclose`].
pub fn fd_tracked(fd: std::os::fd::RawFd) -> bool {
    process::fd_tracked(fd)
}

/// The highest descriptor number that ever carried a knote or a kqueue (`None`: none did):
/// bounds the numbers an interposed close_range() must look at.
pub fn fd_tracked_max() -> Option<std::os::fd::RawFd> {
    process::fd_tracked_max()
}

/// Says that every close() of the program reaches [`fdclose`] first (the C library's
/// interposed close() is in effect): kqueue descriptors found by number then need no system
/// call to check, and closed kqueues need no background sweep.
pub fn set_close_hooked(on: bool) {
    process::set_close_hooked(on)
}

/// Makes waits use the fallbacks for kernels older than 5.11 (epoll_pwait instead of
/// epoll_pwait2), and EVFILT_FS those for kernels older than 6.8 (mountinfo's mount ids
/// instead of listmount's), so that tests run them on any kernel. The environment
/// variables `KQ_NO_EPOLL_PWAIT2` and `KQ_NO_LISTMOUNT` do the same from the start.
#[doc(hidden)]
pub fn force_fallbacks() {
    process::force_fallbacks()
}

/// The README's Rust examples, run as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExamples;
