//! Calls into the library, and the closes reported while the calling thread is inside one.
//!
//! close() is async-signal-safe, so a signal handler may close a descriptor while its
//! thread is inside the library: holding one of its locks, or in the middle of an
//! allocation. The work of such a close (dropping the number's knotes, forgetting a kqueue
//! number, [`crate::fdclose`]) needs those locks and allocates: done in the handler it
//! could deadlock. So the handler does only what is async-signal-safe (it marks a kqueue
//! number as being closed, so that no lookup trusts it any more, then the descriptor is
//! closed at once), and keeps the rest in a small per-thread list, which the interrupted
//! thread works through when it leaves the library: before the interrupted call returns.
//!
//! "Inside the library" means inside a [`Call`] (an entry point of the C library wraps
//! its whole body in one, [`crate::library_call`], and so do `fdclose` and friends) or
//! holding one of the library's locks (see `process::LockCount`).

use std::cell::Cell;
use std::os::fd::RawFd;
use std::sync::atomic::{compiler_fence, Ordering};

/// Closes one call can keep for later; more make the call sweep the kqueue numbers when
/// it leaves (see [`finish`]).
const MAX: usize = 64;

struct State {
    /// Calls of this thread in progress.
    depth: Cell<u32>,
    /// Entries of `kept` in use.
    len: Cell<usize>,
    /// Some close did not fit in `kept`.
    overflow: Cell<bool>,
    /// (descriptor number, token of `process`) of each close to finish.
    kept: [Cell<(RawFd, u64)>; MAX],
}

thread_local! {
    // Const-initialized, without a destructor: usable from a signal handler.
    static STATE: State = const {
        State {
            depth: Cell::new(0),
            len: Cell::new(0),
            overflow: Cell::new(false),
            kept: [const { Cell::new((0, 0)) }; MAX],
        }
    };
}

/// One call of this thread into the library: while it lasts, closes reported on this
/// thread (by a signal handler) are kept for its end.
pub(crate) struct Call {
    /// Not Send: the count is the thread's.
    _thread: std::marker::PhantomData<*const ()>,
}

impl Call {
    pub(crate) fn enter() -> Call {
        let _ = STATE.try_with(|s| s.depth.set(s.depth.get() + 1));
        // The count is up before any work of the call (a signal handler reads it).
        compiler_fence(Ordering::SeqCst);
        Call {
            _thread: std::marker::PhantomData,
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        compiler_fence(Ordering::SeqCst);
        let _ = STATE.try_with(|s| {
            let depth = s.depth.get();
            if depth == 1 && !std::thread::panicking() && (s.len.get() > 0 || s.overflow.get()) {
                // Still counted as inside: a handler that interrupts this keeps its close
                // in the list, which the loop then takes too.
                finish(s);
            }
            s.depth.set(depth.saturating_sub(1));
        });
    }
}

/// Whether the calling thread is inside the library (in a [`Call`], or holding one of
/// its locks): a close reported now must be kept for later ([`keep`]). Async-signal-safe.
pub(crate) fn inside() -> bool {
    STATE.try_with(|s| s.depth.get() > 0).unwrap_or(false) || crate::kqueue::reentered()
}

/// Keeps the close of `fd` (with the token `process` made for it) for the end of the
/// thread's current call. Async-signal-safe: it only writes the thread's own list.
pub(crate) fn keep(fd: RawFd, token: u64) {
    let _ = STATE.try_with(|s| {
        let n = s.len.get();
        if n < MAX {
            // The slot is taken before it is written: a handler nested in this one takes
            // the next. The list is only read outside handlers, with signals blocked.
            s.len.set(n + 1);
            compiler_fence(Ordering::SeqCst);
            s.kept[n].set((fd, token));
        } else {
            s.overflow.set(true);
        }
    });
    // Outside any call (a handler that interrupted a hold of a lock), the thread's last
    // release of a lock does the work.
    crate::process::LockCount::get().note_deferred();
}

/// Does the work of the kept closes if the thread is in no call (one kept by a handler
/// that interrupted a hold of a lock outside any call): called when the thread lets go of
/// its last lock.
pub(crate) fn finish_outside() {
    let _ = STATE.try_with(|s| {
        if s.depth.get() == 0 && (s.len.get() > 0 || s.overflow.get()) {
            // Counted as inside meanwhile, as in `Call::drop`.
            s.depth.set(1);
            finish(s);
            s.depth.set(0);
        }
    });
}

/// Takes one kept close off the list, with signals blocked (a handler may add one).
fn take(s: &State) -> Option<(RawFd, u64)> {
    let _blocked = crate::sys::signals::SignalsBlocked::new();
    let n = s.len.get();
    if n == 0 {
        return None;
    }
    s.len.set(n - 1);
    Some(s.kept[n - 1].get())
}

/// Whether some close did not fit in the list (and forgets it), signals blocked.
fn take_overflow(s: &State) -> bool {
    let _blocked = crate::sys::signals::SignalsBlocked::new();
    s.overflow.replace(false)
}

/// Does the work of the kept closes.
fn finish(s: &State) {
    loop {
        while let Some((fd, token)) = take(s) {
            crate::process::finish_kept(fd, token);
        }
        if !take_overflow(s) {
            break;
        }
        // Closes that could not be kept: the kqueue numbers closed are found by looking
        // at every known number (their knotes stay until the numbers are registered
        // again, as after a close the library did not see).
        crate::process::sweep();
    }
}
