//! A guide from the BSD call to the typed API, and from other Rust event crates to `kq`.
//!
//! # From `kevent()` to the typed layer
//!
//! Every kqueue program is a list of changes and a wait. In C:
//!
//! ```c
//! struct kevent ch[2], ev[8];
//! EV_SET(&ch[0], sock, EVFILT_READ, EV_ADD, 0, 0, conn);
//! EV_SET(&ch[1], 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
//! int n = kevent(kq, ch, 2, ev, 8, &timeout);
//! ```
//!
//! The raw call keeps that shape: [`Kevent`](crate::Kevent) is `struct kevent`, the constants
//! have the BSD names, and [`Kqueue::kevent`](crate::Kqueue::kevent) follows the kernel's
//! rules to the letter (EV_ERROR reports, EV_RECEIPT, the no-room abort, EINTR):
//!
//! ```
//! use kq::{Kevent, Kqueue, EVFILT_READ, EVFILT_USER, EV_ADD, EV_CLEAR};
//! use std::{os::fd::AsRawFd, os::unix::net::UnixStream, time::Duration};
//!
//! let kq = Kqueue::new()?;
//! let (sock, _peer) = UnixStream::pair()?;
//! let changes = [
//!     Kevent::new(sock.as_raw_fd() as usize, EVFILT_READ, EV_ADD, 0, 0, 7 as *mut _),
//!     Kevent::new(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, std::ptr::null_mut()),
//! ];
//! let mut events = [Kevent::default(); 8];
//! let n = kq.kevent(&changes, &mut events, Some(Duration::ZERO))?;
//! assert_eq!(n, 0); // nothing has happened yet
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The typed layer says the same with builders and a `usize` token instead of `udata`:
//!
//! ```
//! use kq::{Change, EventFilter, Events, Kqueue};
//! use std::{io::Write, os::fd::AsRawFd, os::unix::net::UnixStream, time::Duration};
//!
//! let kq = Kqueue::new()?;
//! let (sock, mut peer) = UnixStream::pair()?;
//! kq.apply(&[
//!     Change::new(sock.as_raw_fd() as usize, EventFilter::Read).add().token(7),
//!     Change::user(1).add().clear(),
//! ])?;
//! peer.write_all(b"hi")?;
//! let mut events = Events::with_capacity(8);
//! kq.wait(&mut events, Some(Duration::from_secs(1)))?;
//! let ev = events.iter().next().unwrap();
//! assert!(ev.is_readable() && !ev.is_eof());
//! assert_eq!((ev.token(), ev.data()), (7, 2)); // two bytes to read
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! | C | raw Rust | typed Rust |
//! |---|---|---|
//! | `kqueue()` | [`Kqueue::new`](crate::Kqueue::new) | [`Kqueue::builder`](crate::Kqueue::builder) |
//! | `EV_SET(&kev, ...)` | [`Kevent::new`](crate::Kevent::new) | [`Change::new`](crate::Change::new), [`Change::user`](crate::Change::user), [`Change::timer`](crate::Change::timer) |
//! | `EV_ADD`, `EV_CLEAR`, ... | [`EV_ADD`](crate::EV_ADD), ... | [`Change::add`](crate::Change::add), [`Change::clear`](crate::Change::clear), [`Flags`](crate::Flags) |
//! | `udata` | `Kevent::udata` | [`Change::token`](crate::Change::token), [`Event::token`](crate::Event::token) |
//! | `kevent(kq, ch, n, NULL, 0, NULL)` | `kq.kevent(&ch, &mut [], None)` | [`Kqueue::apply`](crate::Kqueue::apply) |
//! | `kevent(kq, NULL, 0, ev, n, &ts)` | `kq.kevent(&[], &mut ev, Some(t))` | [`Kqueue::wait`](crate::Kqueue::wait) into [`Events`](crate::Events) |
//! | `NOTE_TRIGGER` on a user event | `Kevent::new(id, EVFILT_USER, 0, NOTE_TRIGGER, 0, ..)` | [`Kqueue::trigger`](crate::Kqueue::trigger), [`Waker::wake`](crate::Waker::wake) |
//! | `ev.flags & EV_EOF`, `ev.fflags` | the same fields | [`Event::is_eof`](crate::Event::is_eof), [`Event::error`](crate::Event::error) |
//! | `close(fd)` with knotes | [`fdclose`](crate::fdclose), then close | the same |
//!
//! # From mio and polling
//!
//! | mio | polling | kq |
//! |---|---|---|
//! | `Poll::new()` | `Poller::new()` | [`Kqueue::new`](crate::Kqueue::new) |
//! | `Registry::register(&mut src, Token(7), Interest::READABLE)` | `unsafe { poller.add(&src, Event::readable(7)) }` | `kq.apply(&[Change::new(fd, EventFilter::Read).add().token(7)])` |
//! | `Registry::reregister` | `Poller::modify` | `apply` with `.add()` again (modifies the knote) or `.enable()`/`.disable()` |
//! | `Registry::deregister` | `Poller::delete` | `apply` with `.delete()`, or [`fdclose`](crate::fdclose) before closing |
//! | `Poll::poll(&mut events, timeout)` | `Poller::wait(&mut events, timeout)` | [`Kqueue::wait`](crate::Kqueue::wait) |
//! | `Events` | `Events` | [`Events`](crate::Events) |
//! | `event.token()` | `event.key` | [`Event::token`](crate::Event::token) |
//! | `event.is_readable()` / `is_writable()` | `event.readable` / `writable` | [`Event::is_readable`](crate::Event::is_readable) / [`is_writable`](crate::Event::is_writable) |
//! | `event.is_read_closed()` | — | [`Event::is_eof`](crate::Event::is_eof) |
//! | `Waker::new(registry, token)` | `Poller::notify()` | [`Kqueue::waker`](crate::Kqueue::waker), [`Waker::wake`](crate::Waker::wake) |
//! | edge-triggered (Linux epoll) | `PollMode::Edge` | `.clear()` (EV_CLEAR) |
//! | oneshot | `PollMode::Oneshot` | `.oneshot()` (EV_ONESHOT) or `.dispatch()` (EV_DISPATCH) |
//! | timers: none (use tokio) | `Timer` source (kqueue backends) | [`Change::timer`](crate::Change::timer), [`Change::timer_at`](crate::Change::timer_at) |
//! | user events: `Waker` | `notify` | [`Change::user`](crate::Change::user) with fflags operations ([`FflagsOp`](crate::FflagsOp)) |
//!
//! Unlike mio and polling, `kq` reports what the BSDs report: `data` is the byte count (or
//! the accept-queue length of a listening socket, the number of timer expirations, ...),
//! knotes belong to descriptor numbers, and level-triggered is the default.
