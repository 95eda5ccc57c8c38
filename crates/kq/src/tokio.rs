//! A [`Kqueue`] for tokio (cargo feature `tokio`): [`AsyncKqueue`] awaits events without
//! a thread blocked in `kevent()`.
//!
//! The kqueue descriptor is readable exactly while an event is pending, and every newly
//! queued event gives it a fresh edge, so tokio's reactor can watch it like a socket.
//! [`AsyncKqueue`] registers it with [`AsyncFd`] and collects with zero-timeout `kevent()`
//! calls. Tokio's readiness flag is cleared only when such a call found nothing: a call
//! that filled the buffer, or found fewer events than it had room for, leaves it set, and
//! the next wait looks again at once. An event queued after the call found nothing
//! and before the flag is cleared is not lost: its edge reaches the reactor after the
//! check, and tokio does not clear a readiness it has seen change since.
//!
//! Any thread may apply changes and trigger user events on the [`Kqueue`] (reach it with
//! [`AsyncKqueue::get_ref`], which is an `Arc`, and clone that for threads of a pool); the
//! task awaiting [`AsyncKqueue::wait`] is woken by the reactor.
//!
//! # Examples
//!
//! A worker thread wakes a task:
//!
//! ```
//! use kq::{tokio::AsyncKqueue, Events, Kqueue};
//! use std::{sync::Arc, thread};
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! rt.block_on(async {
//!     let kq = AsyncKqueue::new(Kqueue::new()?)?;
//!     kq.get_ref().add_user(1)?;
//!     let waker = Arc::clone(kq.get_ref());
//!     let worker = thread::spawn(move || waker.trigger(1, 0x2));
//!
//!     let mut events = Events::with_capacity(8);
//!     assert_eq!(kq.wait(&mut events).await?, 1);
//!     assert_eq!(events.iter().next().map(|e| (e.ident(), e.fflags())), Some((1, 0x2)));
//!     worker.join().unwrap()
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use crate::{Events, Kevent, Kqueue};
use ::tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use ::tokio::io::Interest;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// A [`Kqueue`] registered with tokio's reactor.
///
/// Waiting methods are cancel safe: events are taken from the kqueue only by the
/// non-blocking call made once the reactor says the descriptor is readable, never across
/// an `.await`, so dropping a pending future loses none (and `tokio::time::timeout` or
/// `select!` around them is the way to bound a wait).
///
/// One kqueue can be registered with a reactor once: make one `AsyncKqueue` per
/// [`Kqueue`], and share it (it is `Send` and `Sync`, and every method takes `&self`).
///
/// # Examples
///
/// Awaiting a timer and a user event:
///
/// ```
/// use kq::{tokio::AsyncKqueue, Change, EventFilter, Events, Kqueue};
/// use std::time::Duration;
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// rt.block_on(async {
///     let kq = AsyncKqueue::new(Kqueue::new()?)?;
///     kq.get_ref().apply(&[
///         Change::timer(7, Duration::from_millis(5)).add().oneshot(),
///         Change::user(8).add().clear(),
///     ])?;
///     let mut events = Events::with_capacity(4);
///     assert_eq!(kq.wait(&mut events).await?, 1);
///     assert_eq!(events.iter().next().map(|e| e.filter()), Some(EventFilter::Timer));
///
///     kq.get_ref().trigger(8, 0)?;
///     assert_eq!(kq.wait(&mut events).await?, 1);
///     assert_eq!(events.iter().next().map(|e| e.ident()), Some(8));
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct AsyncKqueue {
    fd: AsyncFd<Arc<Kqueue>>,
}

/// Collects events without blocking: `WouldBlock` when there were none, which is the one
/// result after which tokio's readiness may be cleared.
fn collect(kq: &Kqueue, events: &mut [Kevent]) -> io::Result<usize> {
    match kq.kevent(&[], events, Some(Duration::ZERO))? {
        0 => Err(io::ErrorKind::WouldBlock.into()),
        n => Ok(n),
    }
}

/// As [`collect`], into an [`Events`].
fn collect_events(kq: &Kqueue, events: &mut Events) -> io::Result<usize> {
    match kq.wait(events, Some(Duration::ZERO))? {
        0 => Err(io::ErrorKind::WouldBlock.into()),
        n => Ok(n),
    }
}

impl AsyncKqueue {
    /// Registers `kq` (a [`Kqueue`], or an `Arc` of one) with the current tokio runtime's
    /// reactor, for readability.
    ///
    /// # Errors
    ///
    /// The error of the registration (`EEXIST` if this kqueue is registered already).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or in one built without I/O (`enable_io`), as
    /// [`AsyncFd::new`] does.
    #[allow(unsafe_code)]
    pub fn new(kq: impl Into<Arc<Kqueue>>) -> io::Result<AsyncKqueue> {
        // SAFETY: the descriptor is the kqueue's own (its epoll), which the kqueue opened
        // when it was made and closes only when it is dropped; the `Arc` moved into the
        // `AsyncFd` keeps it alive until the `AsyncFd` is dropped or gives it back, and
        // `as_raw_fd` returns that same number every time.
        let fd = unsafe { AsyncFd::register_with_interest(kq.into(), Interest::READABLE)? };
        Ok(AsyncKqueue { fd })
    }

    /// The kqueue: apply changes and trigger events through it, from any thread. Clone the
    /// `Arc` to hand it to threads that do not have the `AsyncKqueue`.
    pub fn get_ref(&self) -> &Arc<Kqueue> {
        self.fd.get_ref()
    }

    /// Takes the kqueue out of the reactor.
    pub fn into_inner(self) -> Arc<Kqueue> {
        self.fd.into_inner()
    }

    /// Waits until at least one event is pending and stores the events in `events` (as
    /// many as it has room for), returning their number: never 0, unless `events` has no
    /// room (then it returns at once). Bound the wait with `tokio::time::timeout` where
    /// needed.
    ///
    /// # Errors
    ///
    /// Those of [`Kqueue::kevent`] (`EBADF` once the kqueue is unusable) and of the
    /// reactor (it shut down).
    pub async fn wait(&self, events: &mut Events) -> io::Result<usize> {
        let n = self.get_ref().wait(events, Some(Duration::ZERO))?;
        if n > 0 || events.capacity() == 0 {
            return Ok(n);
        }
        loop {
            let mut guard = self.fd.readable().await?;
            if let Ok(r) = guard.try_io(|fd| collect_events(fd.get_ref(), events)) {
                return r;
            }
        }
    }

    /// `kevent()` that awaits instead of blocking: applies `changes` (once, when first
    /// polled), then returns at once if they produced reports (EV_ERROR, EV_RECEIPT) or if
    /// `events` is empty; otherwise waits until at least one event is pending and returns
    /// the number of records written to `events`.
    ///
    /// # Errors
    ///
    /// Those of [`Kqueue::kevent`] and of the reactor.
    pub async fn kevent(&self, changes: &[Kevent], events: &mut [Kevent]) -> io::Result<usize> {
        let n = self
            .get_ref()
            .kevent(changes, events, Some(Duration::ZERO))?;
        if n > 0 || events.is_empty() {
            return Ok(n);
        }
        loop {
            let mut guard = self.fd.readable().await?;
            if let Ok(r) = guard.try_io(|fd| collect(fd.get_ref(), events)) {
                return r;
            }
        }
    }

    /// The poll form of [`AsyncKqueue::kevent`] with no changes, for hand-written futures
    /// and streams: `Ready(Ok(n))` with `n > 0` events in `events` (`n == 0` only when
    /// `events` is empty), or `Pending` with `cx`'s waker registered for the next edge.
    ///
    /// # Errors
    ///
    /// Those of [`Kqueue::kevent`] and of the reactor.
    pub fn poll_kevent(
        &self,
        cx: &mut Context<'_>,
        events: &mut [Kevent],
    ) -> Poll<io::Result<usize>> {
        if events.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            let mut guard = match self.fd.poll_read_ready(cx) {
                Poll::Ready(Ok(guard)) => guard,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            if let Ok(r) = guard.try_io(|fd| collect(fd.get_ref(), events)) {
                return Poll::Ready(r);
            }
        }
    }

    /// The poll form of [`AsyncKqueue::wait`].
    ///
    /// # Errors
    ///
    /// Those of [`Kqueue::kevent`] and of the reactor.
    pub fn poll_wait(&self, cx: &mut Context<'_>, events: &mut Events) -> Poll<io::Result<usize>> {
        if events.capacity() == 0 {
            return Poll::Ready(self.get_ref().wait(events, Some(Duration::ZERO)));
        }
        loop {
            let mut guard = match self.fd.poll_read_ready(cx) {
                Poll::Ready(Ok(guard)) => guard,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            if let Ok(r) = guard.try_io(|fd| collect_events(fd.get_ref(), events)) {
                return Poll::Ready(r);
            }
        }
    }

    /// Waits until the reactor says the descriptor is readable, for callers that collect
    /// events their own way ([`ReadyGuard`]).
    ///
    /// # Errors
    ///
    /// The reactor's (it shut down).
    pub async fn readable(&self) -> io::Result<ReadyGuard<'_>> {
        Ok(ReadyGuard {
            guard: self.fd.readable().await?,
        })
    }
}

impl AsFd for AsyncKqueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl AsRawFd for AsyncKqueue {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_raw_fd()
    }
}

/// The reactor said the kqueue descriptor is readable ([`AsyncKqueue::readable`]).
///
/// The readiness stays set unless a collecting method finds no event: dropping the guard
/// after collecting some leaves it set, and the next wait looks again.
///
/// ```
/// use kq::{tokio::AsyncKqueue, Kevent, Kqueue};
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// rt.block_on(async {
///     let kq = AsyncKqueue::new(Kqueue::new()?)?;
///     kq.get_ref().add_user(3)?;
///     kq.get_ref().trigger(3, 0)?;
///     let mut buf = [Kevent::default(); 4];
///     let mut ready = kq.readable().await?;
///     assert_eq!(ready.try_kevent(&mut buf)?, 1);
///     // Nothing more: the readiness is cleared and the call says WouldBlock.
///     let e = ready.try_kevent(&mut buf).unwrap_err();
///     assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ReadyGuard<'a> {
    guard: AsyncFdReadyGuard<'a, Arc<Kqueue>>,
}

impl ReadyGuard<'_> {
    /// Collects events without blocking into `events`.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when there were none (the readiness is then cleared: await
    /// [`AsyncKqueue::readable`] again), or the errors of [`Kqueue::kevent`].
    pub fn try_kevent(&mut self, events: &mut [Kevent]) -> io::Result<usize> {
        self.try_io(|kq| collect(kq, events))
    }

    /// As [`ReadyGuard::try_kevent`], into an [`Events`].
    ///
    /// # Errors
    ///
    /// As [`ReadyGuard::try_kevent`].
    pub fn try_wait(&mut self, events: &mut Events) -> io::Result<usize> {
        self.try_io(|kq| collect_events(kq, events))
    }

    /// Runs `f` on the kqueue; if it returns `WouldBlock`, the readiness is cleared. `f`
    /// must return `WouldBlock` only when a zero-timeout `kevent()` it made found no event:
    /// clearing it in any other case can leave pending events unannounced, as no new edge
    /// comes until a new event is queued.
    ///
    /// # Errors
    ///
    /// Those of `f`.
    pub fn try_io<R>(&mut self, f: impl FnOnce(&Kqueue) -> io::Result<R>) -> io::Result<R> {
        match self.guard.try_io(|fd| f(fd.get_ref())) {
            Ok(r) => r,
            Err(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}
