//! [`mio::event::Source`] for [`Kqueue`] (cargo feature `mio`).

use crate::Kqueue;
use ::mio::event::Source;
use ::mio::unix::SourceFd;
use ::mio::{Interest, Registry, Token};
use std::io;
use std::os::fd::AsRawFd;

/// A [`Kqueue`] in a [`mio::Poll`](::mio::Poll): its descriptor is readable exactly while
/// an event is pending, and every newly queued event gives it a new edge, which is what
/// mio's edge-triggered registrations need. On each mio event for the kqueue's token,
/// collect with zero-timeout calls ([`Kqueue::wait`] or [`Kqueue::kevent`] with
/// `Some(Duration::ZERO)`) until one returns 0: mio's "until `WouldBlock`" rule. (A
/// level-triggered knote whose condition holds is reported by every call, as a readable
/// socket is; event loops want `EV_CLEAR`.) Register for [`Interest::READABLE`]; the
/// descriptor is never writable.
///
/// # Examples
///
/// ```
/// use kq::{Events, Kqueue};
/// use mio::{Interest, Poll, Token};
/// use std::time::Duration;
///
/// let mut poll = Poll::new()?;
/// let mut kq = Kqueue::new()?;
/// poll.registry().register(&mut kq, Token(7), Interest::READABLE)?;
/// kq.add_user(1)?;
/// kq.trigger(1, 0)?;
///
/// let mut mio_events = mio::Events::with_capacity(4);
/// poll.poll(&mut mio_events, Some(Duration::from_secs(5)))?;
/// assert_eq!(mio_events.iter().next().map(|e| e.token()), Some(Token(7)));
/// let mut events = Events::with_capacity(8);
/// assert_eq!(kq.wait(&mut events, Some(Duration::ZERO))?, 1);
/// assert_eq!(kq.wait(&mut events, Some(Duration::ZERO))?, 0); // drained
/// # Ok::<(), std::io::Error>(())
/// ```
impl Source for Kqueue {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        // `as_raw_fd` also makes the kqueue keep its readability exact from now on.
        SourceFd(&self.as_raw_fd()).register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.as_raw_fd()).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        SourceFd(&self.as_raw_fd()).deregister(registry)
    }
}
