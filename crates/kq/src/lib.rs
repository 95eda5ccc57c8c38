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
//! - a typed layer: [`Change`] builders, [`Filter`](EventFilter) names, [`Kqueue::trigger`]
//!   and friends.
//!
//! The engine mirrors the kernel's: filters implement [`filter::Filter`] (attach, detach,
//! event, touch), knotes are keyed by (ident, filter), and `kevent()` scans an active queue.
//! Programs can add filters with [`filter::register_filter`].
//!
//! # Examples
//!
//! Waking an event loop from another thread:
//!
//! ```
//! use kq::{Change, Kqueue};
//! use std::{sync::Arc, thread, time::Duration};
//!
//! let kq = Arc::new(Kqueue::new()?);
//! kq.apply(&[Change::user(1).add().clear()])?;
//!
//! let waker = Arc::clone(&kq);
//! let worker = thread::spawn(move || waker.trigger(1, 0x5));
//!
//! let mut events = kq::Events::with_capacity(8);
//! let n = kq.wait(&mut events, Some(Duration::from_secs(5)))?;
//! assert_eq!(n, 1);
//! let ev = events.iter().next().unwrap();
//! assert_eq!((ev.ident(), ev.fflags()), (1, 0x5));
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

mod consts;
pub mod filter;
mod kevent;
mod knote;
mod kqueue;
mod personality;
#[allow(unsafe_code)]
mod sys;
mod typed;

pub use consts::*;
pub use kevent::{ChangeList, Errno, EventList, Kevent, Timespec};
pub use knote::Knote;
pub use kqueue::{Kqueue, KqueueRef};
pub use personality::Personality;
pub use typed::{Change, Event, EventFilter, Events, FflagsOp};

/// The kernel's `knote_fdclose`: descriptor number `fd` is being closed (or replaced by
/// dup2/dup3). Drops, silently, every knote of a descriptor filter on that number in every
/// kqueue of the process, and forgets the number if it is a kqueue descriptor (releasing
/// the kqueue once no known number refers to it). Call it *before* the descriptor is
/// closed. Cheap for numbers that carry no knote: one atomic load, no lock.
pub fn fdclose(fd: std::os::fd::RawFd) {
    let _ = fd; // placeholder until the descriptor layer lands
}

/// Whether descriptor number `fd` carries knotes or is a known kqueue descriptor: the O(1),
/// lock-free test an interposed close() makes before calling [`fdclose`].
pub fn fd_tracked(fd: std::os::fd::RawFd) -> bool {
    let _ = fd;
    false
}
