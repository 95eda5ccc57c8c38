//! The typed layer: change builders, filter names, typed flags, event views, the event
//! buffer and the waker.
//!
//! Everything here is a thin view of the raw records ([`Kevent`]): a [`Change`] is a record
//! being built, an [`Event`] a record delivered. The one difference in meaning is `udata`:
//! the typed layer carries it as a `usize` token ([`Change::token`], [`Event::token`]), as
//! mio and polling do; the raw pointer stays on [`Kevent`].

use crate::consts::*;
use crate::kevent::{ChangeList, Kevent};
use crate::kqueue::{Inner, Kqueue};
use std::fmt;
use std::io;
use std::sync::Weak;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A filter, by name.
///
/// Each filter number has exactly one spelling: the named variants cover every system
/// filter number of `<sys/event.h>`, and [`EventFilter::Other`] holds an [`OtherFilter`],
/// which only [`EventFilter::from_raw`] (or `From<i16>`) makes, and only for numbers
/// without a name here (filters registered at run time, which are positive, and unknown
/// numbers). So `EventFilter::from_raw(n) == f` exactly when `f.raw() == n`.
///
/// Only [`Read`](EventFilter::Read), [`Write`](EventFilter::Write),
/// [`Timer`](EventFilter::Timer), [`User`](EventFilter::User) and registered filters are
/// implemented; a change naming another fails with EINVAL, as NetBSD answers for a filter it
/// does not have.
///
/// # Examples
///
/// ```
/// use kq::{EventFilter, EVFILT_USER};
///
/// assert_eq!(EventFilter::from_raw(EVFILT_USER), EventFilter::User);
/// assert_eq!(EventFilter::User.raw(), EVFILT_USER);
/// // A number without a name: one spelling too, and it round-trips.
/// let f = EventFilter::from_raw(7);
/// assert!(matches!(f, EventFilter::Other(o) if o.raw() == 7));
/// assert_eq!(i16::from(f), 7);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventFilter {
    /// `EVFILT_READ`: a descriptor is readable.
    Read,
    /// `EVFILT_WRITE`: a descriptor is writable.
    Write,
    /// `EVFILT_AIO` (not implemented).
    Aio,
    /// `EVFILT_VNODE`.
    Vnode,
    /// `EVFILT_PROC`: a process's exit, forks and execs.
    Proc,
    /// `EVFILT_SIGNAL`: deliveries of a signal.
    Signal,
    /// `EVFILT_TIMER`: timers.
    Timer,
    /// `EVFILT_NETDEV` (not implemented).
    Netdev,
    /// `EVFILT_FS`: file systems mounted and unmounted (ident 0).
    Fs,
    /// `EVFILT_LIO` (not implemented).
    Lio,
    /// `EVFILT_USER`: events user code triggers.
    User,
    /// `EVFILT_EMPTY`.
    Empty,
    /// A number that has no name above: a filter registered at run time, or an unknown
    /// number (a change naming it fails with EINVAL).
    Other(OtherFilter),
}

/// A filter number that [`EventFilter`] has no name for; see [`EventFilter::Other`].
///
/// Only [`EventFilter::from_raw`] makes one, so it never holds the number of a named
/// filter.
///
/// # Examples
///
/// ```
/// use kq::EventFilter;
///
/// let EventFilter::Other(o) = EventFilter::from_raw(12) else { unreachable!() };
/// assert_eq!(o.raw(), 12);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OtherFilter(i16);

impl OtherFilter {
    /// The filter number.
    pub const fn raw(self) -> i16 {
        self.0
    }
}

impl EventFilter {
    /// The filter of number `n` (`EVFILT_*`, or a registered filter's number).
    ///
    /// ```
    /// use kq::{EventFilter, EVFILT_READ};
    /// assert_eq!(EventFilter::from_raw(EVFILT_READ), EventFilter::Read);
    /// ```
    pub const fn from_raw(n: i16) -> EventFilter {
        match n {
            EVFILT_READ => EventFilter::Read,
            EVFILT_WRITE => EventFilter::Write,
            EVFILT_AIO => EventFilter::Aio,
            EVFILT_VNODE => EventFilter::Vnode,
            EVFILT_PROC => EventFilter::Proc,
            EVFILT_SIGNAL => EventFilter::Signal,
            EVFILT_TIMER => EventFilter::Timer,
            EVFILT_NETDEV => EventFilter::Netdev,
            EVFILT_FS => EventFilter::Fs,
            EVFILT_LIO => EventFilter::Lio,
            EVFILT_USER => EventFilter::User,
            EVFILT_EMPTY => EventFilter::Empty,
            n => EventFilter::Other(OtherFilter(n)),
        }
    }

    /// The filter number (`EVFILT_*`).
    ///
    /// ```
    /// use kq::{EventFilter, EVFILT_TIMER};
    /// assert_eq!(EventFilter::Timer.raw(), EVFILT_TIMER);
    /// ```
    pub const fn raw(self) -> i16 {
        match self {
            EventFilter::Read => EVFILT_READ,
            EventFilter::Write => EVFILT_WRITE,
            EventFilter::Aio => EVFILT_AIO,
            EventFilter::Vnode => EVFILT_VNODE,
            EventFilter::Proc => EVFILT_PROC,
            EventFilter::Signal => EVFILT_SIGNAL,
            EventFilter::Timer => EVFILT_TIMER,
            EventFilter::Netdev => EVFILT_NETDEV,
            EventFilter::Fs => EVFILT_FS,
            EventFilter::Lio => EVFILT_LIO,
            EventFilter::User => EVFILT_USER,
            EventFilter::Empty => EVFILT_EMPTY,
            EventFilter::Other(o) => o.0,
        }
    }
}

impl From<EventFilter> for i16 {
    fn from(f: EventFilter) -> i16 {
        f.raw()
    }
}

impl From<i16> for EventFilter {
    fn from(n: i16) -> EventFilter {
        EventFilter::from_raw(n)
    }
}

bitflags::bitflags! {
    /// The `EV_*` flags of a change or an event.
    ///
    /// Bits without a name here are kept as they are (`from_bits_retain`), so converting to
    /// and from `u16` loses nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use kq::{Change, Flags, EV_ADD, EV_CLEAR};
    ///
    /// let c = Change::user(1).flags(Flags::ADD | Flags::CLEAR);
    /// assert_eq!(c.kevent().flags, EV_ADD | EV_CLEAR);
    /// assert_eq!(Flags::from_bits_retain(EV_ADD), Flags::ADD);
    /// ```
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Flags: u16 {
        /// `EV_ADD`: create the knote, or modify it.
        const ADD = EV_ADD;
        /// `EV_DELETE`: delete the knote.
        const DELETE = EV_DELETE;
        /// `EV_ENABLE`: deliver its events again.
        const ENABLE = EV_ENABLE;
        /// `EV_DISABLE`: keep its events back until `ENABLE`.
        const DISABLE = EV_DISABLE;
        /// `EV_ONESHOT`: deliver once, then delete.
        const ONESHOT = EV_ONESHOT;
        /// `EV_CLEAR`: reset the state after each delivery (edge-triggered).
        const CLEAR = EV_CLEAR;
        /// `EV_RECEIPT`: report the change with an `EV_ERROR` entry even when it succeeds.
        const RECEIPT = EV_RECEIPT;
        /// `EV_DISPATCH`: disable after each delivery.
        const DISPATCH = EV_DISPATCH;
        /// `EV_FORCEONESHOT` (FreeBSD personality).
        const FORCEONESHOT = EV_FORCEONESHOT;
        /// `EV_KEEPUDATA` (FreeBSD personality).
        const KEEPUDATA = EV_KEEPUDATA;
        /// `EV_FLAG1`.
        const FLAG1 = EV_FLAG1;
        /// Output `EV_ERROR`: `data` holds an errno (0 for a receipt).
        const ERROR = EV_ERROR;
        /// Output `EV_EOF`: the filter saw end of file.
        const EOF = EV_EOF;
        // Every other bit is kept too.
        const _ = !0;
    }
}

/// How a user-event change edits the 24 stored user flags (`NOTE_FF*`).
///
/// # Examples
///
/// ```
/// use kq::{Change, FflagsOp, NOTE_FFCOPY};
/// let c = Change::user(1).fflags_op(FflagsOp::Copy(0x7));
/// assert_eq!(c.kevent().fflags, NOTE_FFCOPY | 0x7);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FflagsOp {
    /// Leave them alone.
    Nop,
    /// AND them with the value.
    And(u32),
    /// OR the value into them.
    Or(u32),
    /// Replace them with the value.
    Copy(u32),
}

impl FflagsOp {
    fn bits(self) -> u32 {
        match self {
            FflagsOp::Nop => NOTE_FFNOP,
            FflagsOp::And(v) => NOTE_FFAND | (v & NOTE_FFLAGSMASK),
            FflagsOp::Or(v) => NOTE_FFOR | (v & NOTE_FFLAGSMASK),
            FflagsOp::Copy(v) => NOTE_FFCOPY | (v & NOTE_FFLAGSMASK),
        }
    }
}

/// A change, built step by step.
///
/// ```
/// use kq::{Change, FflagsOp};
/// let add = Change::user(3).add().clear().token(30);
/// let fire = Change::user(3).trigger().fflags_op(FflagsOp::Or(0x4)).data(9).token(30);
/// assert_eq!(fire.kevent().fflags, kq::NOTE_TRIGGER | kq::NOTE_FFOR | 0x4);
/// assert_eq!(fire.kevent().udata as usize, 30);
/// # let _ = add;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Change(Kevent);

impl Change {
    /// A change with no flags for (ident, filter).
    ///
    /// ```
    /// use kq::{Change, EventFilter};
    /// let c = Change::new(4, EventFilter::Read).add();
    /// assert_eq!((c.kevent().ident, c.kevent().filter), (4, kq::EVFILT_READ));
    /// ```
    pub fn new(ident: usize, filter: EventFilter) -> Change {
        Change(Kevent::new(
            ident,
            filter.raw(),
            0,
            0,
            0,
            std::ptr::null_mut(),
        ))
    }

    /// A change of user event `ident`.
    ///
    /// ```
    /// let c = kq::Change::user(1).add();
    /// assert_eq!(c.kevent().filter, kq::EVFILT_USER);
    /// ```
    pub fn user(ident: usize) -> Change {
        Change::new(ident, EventFilter::User)
    }

    /// A change of EVFILT_PROC on process `pid`, with no interest yet: add `NOTE_EXIT`,
    /// `NOTE_FORK`, `NOTE_EXEC` or `NOTE_TRACK` with [`Change::fflags`]. The exit's event
    /// carries the wait(2) status in [`Event::data`].
    ///
    /// ```
    /// use kq::{Change, Kqueue, NOTE_FORK};
    ///
    /// let kq = Kqueue::new()?;
    /// // This process's own forks (where Linux's process events connector can be had).
    /// match kq.apply(&[Change::process(std::process::id()).add().fflags(NOTE_FORK)]) {
    ///     Ok(_) => {}
    ///     Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP)),
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn process(pid: u32) -> Change {
        Change::new(pid as usize, EventFilter::Proc)
    }

    /// A change of an EVFILT_SIGNAL event: deliveries of signal `sig` (`data` of an event:
    /// how many since the last one). See [`crate::signal`] for what watching a signal
    /// does to its action.
    ///
    /// ```
    /// use kq::{Change, Events, Kqueue};
    /// use std::time::Duration;
    ///
    /// let kq = Kqueue::new()?;
    /// kq.apply(&[Change::signal(libc::SIGWINCH).add()])?;
    /// // SAFETY: raise only sends a signal (SIGWINCH is ignored by default).
    /// unsafe { libc::raise(libc::SIGWINCH) };
    /// let mut events = Events::with_capacity(1);
    /// assert_eq!(kq.wait(&mut events, Some(Duration::from_secs(5)))?, 1);
    /// let ev = events.iter().next().unwrap();
    /// assert!(ev.is_signal());
    /// assert_eq!(ev.data(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn signal(sig: i32) -> Change {
        Change::new(
            usize::try_from(sig).unwrap_or(usize::MAX),
            EventFilter::Signal,
        )
    }

    /// A change of timer `ident` firing every `period` (add [`Change::oneshot`] for once).
    /// The period is given in the coarsest unit that holds it exactly.
    ///
    /// ```
    /// use kq::{Change, EventFilter, Events, Kqueue};
    /// use std::time::Duration;
    ///
    /// let kq = Kqueue::new()?;
    /// kq.apply(&[Change::timer(9, Duration::from_millis(5)).add().oneshot()])?;
    /// let mut events = Events::with_capacity(4);
    /// assert_eq!(kq.wait(&mut events, Some(Duration::from_secs(5)))?, 1);
    /// let ev = events.iter().next().unwrap();
    /// assert_eq!((ev.ident(), ev.filter(), ev.data()), (9, EventFilter::Timer, 1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn timer(ident: usize, period: Duration) -> Change {
        let ns = period.as_nanos();
        let (unit, value) = if ns.is_multiple_of(1_000_000) {
            (NOTE_MSECONDS, ns / 1_000_000)
        } else if ns.is_multiple_of(1_000) {
            (NOTE_USECONDS, ns / 1_000)
        } else {
            (NOTE_NSECONDS, ns)
        };
        Change::new(ident, EventFilter::Timer)
            .fflags(unit)
            .data(value.min(isize::MAX as u128) as isize)
    }

    /// A change of timer `ident` firing once at wall-clock time `at` (NOTE_ABSOLUTE).
    ///
    /// ```
    /// use kq::{Change, Events, Kqueue};
    /// use std::time::{Duration, SystemTime};
    ///
    /// let kq = Kqueue::new()?;
    /// kq.apply(&[Change::timer_at(2, SystemTime::now()).add().oneshot()])?;
    /// let mut events = Events::with_capacity(1);
    /// assert_eq!(kq.wait(&mut events, Some(Duration::from_secs(5)))?, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn timer_at(ident: usize, at: SystemTime) -> Change {
        let ns = match at.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos().min(isize::MAX as u128) as isize,
            Err(_) => 0,
        };
        Change::new(ident, EventFilter::Timer)
            .fflags(NOTE_ABSOLUTE | NOTE_NSECONDS)
            .data(ns)
    }

    /// Adds `flags`.
    ///
    /// ```
    /// use kq::{Change, Flags};
    /// let c = Change::user(1).flags(Flags::ADD | Flags::DISPATCH);
    /// assert_eq!(c.kevent().flags, kq::EV_ADD | kq::EV_DISPATCH);
    /// ```
    pub fn flags(mut self, flags: Flags) -> Change {
        self.0.flags |= flags.bits();
        self
    }

    /// EV_ADD: create, or modify.
    pub fn add(self) -> Change {
        self.flags(Flags::ADD)
    }
    /// EV_DELETE.
    pub fn delete(self) -> Change {
        self.flags(Flags::DELETE)
    }
    /// EV_ENABLE.
    pub fn enable(self) -> Change {
        self.flags(Flags::ENABLE)
    }
    /// EV_DISABLE.
    pub fn disable(self) -> Change {
        self.flags(Flags::DISABLE)
    }
    /// EV_ONESHOT.
    pub fn oneshot(self) -> Change {
        self.flags(Flags::ONESHOT)
    }
    /// EV_CLEAR (edge-triggered; on a user-event change without EV_ADD it cancels a
    /// pending trigger).
    pub fn clear(self) -> Change {
        self.flags(Flags::CLEAR)
    }
    /// EV_DISPATCH.
    pub fn dispatch(self) -> Change {
        self.flags(Flags::DISPATCH)
    }
    /// EV_RECEIPT. [`Kqueue::apply`] refuses such changes (its callers get no reports);
    /// pass them to [`Kqueue::kevent`] through [`Change::kevent`], with a slot for each
    /// report.
    pub fn receipt(self) -> Change {
        self.flags(Flags::RECEIPT)
    }

    /// ORs `fflags` (`NOTE_*`, whose meaning depends on the filter) in.
    ///
    /// ```
    /// use kq::{Change, EventFilter, NOTE_LOWAT};
    /// let c = Change::new(0, EventFilter::Read).add().fflags(NOTE_LOWAT).data(64);
    /// assert_eq!(c.kevent().fflags, NOTE_LOWAT);
    /// ```
    pub fn fflags(mut self, fflags: u32) -> Change {
        self.0.fflags |= fflags;
        self
    }

    /// NOTE_TRIGGER: fire the user event.
    pub fn trigger(self) -> Change {
        self.fflags(NOTE_TRIGGER)
    }

    /// Sets the user-flag operation (replacing any earlier one).
    pub fn fflags_op(mut self, op: FflagsOp) -> Change {
        self.0.fflags &= NOTE_TRIGGER;
        self.0.fflags |= op.bits();
        self
    }

    /// Sets `data`.
    pub fn data(mut self, data: isize) -> Change {
        self.0.data = data;
        self
    }

    /// Sets the token that events of this knote carry back ([`Event::token`]): the
    /// record's `udata`. Every change to a knote replaces it, triggers included, so give a
    /// trigger the token too if it should stay.
    ///
    /// ```
    /// use kq::{Change, Events, Kqueue};
    /// use std::time::Duration;
    ///
    /// let kq = Kqueue::new()?;
    /// kq.apply(&[Change::user(1).add().clear().token(77)])?;
    /// kq.apply(&[Change::user(1).trigger().token(77)])?;
    /// let mut events = Events::with_capacity(1);
    /// kq.wait(&mut events, Some(Duration::ZERO))?;
    /// assert_eq!(events.iter().next().unwrap().token(), 77);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn token(mut self, token: usize) -> Change {
        self.0.udata = token as *mut std::ffi::c_void;
        self
    }

    /// The record.
    pub fn kevent(&self) -> Kevent {
        self.0
    }
}

impl From<Change> for Kevent {
    fn from(c: Change) -> Kevent {
        c.0
    }
}

/// The changes of [`Kqueue::apply`], passed through as they are. (A private adapter rather
/// than an impl for `&[Change]`, which would make an empty `&[][..]` given to
/// [`Kqueue::kevent_raw`] ambiguous.)
struct Changes<'a>(&'a [Change]);

impl ChangeList for Changes<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn get(&mut self, i: usize) -> Kevent {
        self.0[i].0
    }
}

/// A delivered event or report.
///
/// ```
/// use kq::{Change, EventFilter, Events, Kqueue};
/// use std::time::Duration;
///
/// let kq = Kqueue::new()?;
/// kq.apply(&[Change::user(5).add().clear().token(50)])?;
/// kq.trigger(5, 0x3)?;
/// let mut events = Events::with_capacity(4);
/// kq.wait(&mut events, Some(Duration::ZERO))?;
/// let ev = events.iter().next().unwrap();
/// assert_eq!((ev.ident(), ev.filter(), ev.fflags()), (5, EventFilter::User, 0x3));
/// assert!(ev.is_user() && !ev.is_readable() && !ev.is_eof() && !ev.is_error());
/// assert_eq!(ev.token(), 0, "the trigger replaced the token");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event(Kevent);

impl Event {
    /// The ident.
    pub fn ident(&self) -> usize {
        self.0.ident
    }
    /// The filter.
    pub fn filter(&self) -> EventFilter {
        EventFilter::from_raw(self.0.filter)
    }
    /// The flags.
    pub fn flags(&self) -> Flags {
        Flags::from_bits_retain(self.0.flags)
    }
    /// The filter flags: for a user event, its stored user flags; for a descriptor at end of
    /// file, the pending socket error (see [`Event::error`]).
    pub fn fflags(&self) -> u32 {
        self.0.fflags
    }
    /// The data: for a user event, the last change's data; for a timer, the expirations;
    /// for a descriptor, the bytes (or connections) ready or the room to write; for a
    /// process's exit, its wait(2) status (for a NOTE_CHILD record, the parent's pid).
    pub fn data(&self) -> isize {
        self.0.data
    }
    /// The token of the knote's last change ([`Change::token`]).
    pub fn token(&self) -> usize {
        self.0.udata as usize
    }
    /// Whether it is an `EVFILT_READ` event: the descriptor is readable (or at end of file).
    pub fn is_readable(&self) -> bool {
        self.0.filter == EVFILT_READ && !self.is_report()
    }
    /// Whether it is an `EVFILT_WRITE` event: the descriptor is writable (or at end of
    /// file).
    pub fn is_writable(&self) -> bool {
        self.0.filter == EVFILT_WRITE && !self.is_report()
    }
    /// Whether it is a user event (`EVFILT_USER`) that fired.
    pub fn is_user(&self) -> bool {
        self.0.filter == EVFILT_USER && !self.is_report()
    }
    /// Whether it is a timer (`EVFILT_TIMER`) that expired.
    pub fn is_timer(&self) -> bool {
        self.0.filter == EVFILT_TIMER && !self.is_report()
    }
    /// Whether it is a signal (`EVFILT_SIGNAL`) that was delivered.
    pub fn is_signal(&self) -> bool {
        self.0.filter == EVFILT_SIGNAL && !self.is_report()
    }
    /// Whether the filter saw end of file (`EV_EOF`): for a read, the writing side is
    /// closed (the data still buffered can be read); for a write, the reading side is
    /// closed.
    ///
    /// ```
    /// use kq::{Change, EventFilter, Events, Kqueue};
    /// use std::{os::fd::AsRawFd, time::Duration};
    ///
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let kq = Kqueue::new()?;
    /// kq.apply(&[Change::new(a.as_raw_fd() as usize, EventFilter::Read).add()])?;
    /// drop(b);
    /// let mut events = Events::with_capacity(1);
    /// kq.wait(&mut events, Some(Duration::from_secs(5)))?;
    /// let ev = events.iter().next().unwrap();
    /// assert!(ev.is_readable() && ev.is_eof() && !ev.is_error());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_eof(&self) -> bool {
        self.0.flags & EV_EOF != 0 && !self.is_report()
    }
    /// Whether it reports an error: a change that failed, or a descriptor whose end of file
    /// came with a socket error. [`Event::error`] says which.
    pub fn is_error(&self) -> bool {
        self.error_code().is_some()
    }
    /// The error of a failed change (an EV_ERROR report) or the socket error a descriptor
    /// event reports with EV_EOF; `None` for other events and for receipts.
    ///
    /// ```
    /// use kq::{Change, Events, Kqueue};
    ///
    /// let kq = Kqueue::new()?;
    /// let mut out = [kq::Kevent::default(); 1];
    /// // Triggering a user event that does not exist fails with ENOENT, as a report.
    /// kq.kevent(&[Change::user(9).trigger().kevent()], &mut out, None)?;
    /// let ev = kq::Event::from(out[0]);
    /// assert!(ev.is_error());
    /// assert_eq!(ev.error().unwrap().raw_os_error(), Some(libc::ENOENT));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn error(&self) -> Option<io::Error> {
        self.error_code().map(io::Error::from_raw_os_error)
    }
    fn error_code(&self) -> Option<i32> {
        if self.is_report() {
            return (self.0.data != 0).then_some(self.0.data as i32);
        }
        let fd_filter = self.0.filter == EVFILT_READ || self.0.filter == EVFILT_WRITE;
        (fd_filter && self.0.flags & EV_EOF != 0 && self.0.fflags != 0)
            .then_some(self.0.fflags as i32)
    }
    fn is_report(&self) -> bool {
        self.0.flags & EV_ERROR != 0
    }
    /// For an EV_ERROR report: `Some(Ok(()))` for a receipt, `Some(Err(error))` for a
    /// failed change; `None` for an event.
    ///
    /// ```
    /// use kq::{Change, Kevent, Kqueue};
    ///
    /// let kq = Kqueue::new()?;
    /// // One call: a receipt for the add, a report for the trigger of an unknown ident.
    /// let changes = [
    ///     Change::user(1).add().receipt().kevent(),
    ///     Change::user(2).trigger().kevent(),
    /// ];
    /// let mut out = [Kevent::default(); 2];
    /// assert_eq!(kq.kevent(&changes, &mut out, None)?, 2);
    /// let reports: Vec<_> = out
    ///     .iter()
    ///     .map(|k| kq::Event::from(*k).report().map(|r| r.map_err(|e| e.raw_os_error())))
    ///     .collect();
    /// assert_eq!(reports, [Some(Ok(())), Some(Err(Some(libc::ENOENT)))]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn report(&self) -> Option<io::Result<()>> {
        if !self.is_report() {
            return None;
        }
        Some(match self.0.data {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e as i32)),
        })
    }
    /// The raw record.
    pub fn kevent(&self) -> Kevent {
        self.0
    }
}

impl From<Kevent> for Event {
    fn from(k: Kevent) -> Event {
        Event(k)
    }
}

/// A buffer of events for [`Kqueue::wait`].
///
/// Its `Debug` shows the events of the last wait only.
///
/// # Examples
///
/// ```
/// use kq::{Events, Kqueue};
/// use std::time::Duration;
///
/// let kq = Kqueue::new()?;
/// kq.add_user(1)?;
/// kq.trigger(1, 0)?;
/// let mut events = Events::with_capacity(16);
/// assert_eq!(events.capacity(), 16);
/// kq.wait(&mut events, Some(Duration::ZERO))?;
/// for ev in &events {
///     assert_eq!(ev.ident(), 1);
/// }
/// assert_eq!(format!("{events:?}").matches("Event(").count(), 1);
/// events.clear();
/// assert!(events.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Events {
    buf: Vec<Kevent>,
    len: usize,
}

impl Events {
    /// Room for `n` events.
    pub fn with_capacity(n: usize) -> Events {
        Events {
            buf: vec![Kevent::default(); n],
            len: 0,
        }
    }
    /// How many events one wait can store.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
    /// The events of the last wait.
    pub fn iter(&self) -> EventsIter<'_> {
        EventsIter {
            inner: self.buf[..self.len].iter(),
        }
    }
    /// Number of events of the last wait.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the last wait returned nothing (or the buffer was cleared since).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Forgets the events of the last wait.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = Event;
    type IntoIter = EventsIter<'a>;
    fn into_iter(self) -> EventsIter<'a> {
        self.iter()
    }
}

/// The events of an [`Events`] buffer, from [`Events::iter`].
///
/// ```
/// let events = kq::Events::with_capacity(4);
/// assert_eq!(events.iter().len(), 0);
/// ```
#[derive(Clone, Debug)]
pub struct EventsIter<'a> {
    inner: std::slice::Iter<'a, Kevent>,
}

impl Iterator for EventsIter<'_> {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        self.inner.next().map(|&k| Event(k))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for EventsIter<'_> {}

impl DoubleEndedIterator for EventsIter<'_> {
    fn next_back(&mut self) -> Option<Event> {
        self.inner.next_back().map(|&k| Event(k))
    }
}

impl std::iter::FusedIterator for EventsIter<'_> {}

/// A handle that wakes a kqueue from any thread: a user event, registered edge-triggered,
/// that [`Waker::wake`] triggers.
///
/// Cheap to clone (a reference count), `Send` and `Sync`. It does not keep the kqueue
/// alive: once the kqueue is gone, `wake` fails with EBADF. Its events have ident and token
/// both equal to the token given to [`Waker::new`]; several wakes before a wait coalesce
/// into one event.
///
/// # Examples
///
/// ```
/// use kq::{Events, Kqueue, Waker};
/// use std::{thread, time::Duration};
///
/// const WAKE: usize = 0xAA;
/// let kq = Kqueue::new()?;
/// let waker = Waker::new(&kq, WAKE)?;
/// let w = waker.clone();
/// let t = thread::spawn(move || w.wake());
/// let mut events = Events::with_capacity(4);
/// assert_eq!(kq.wait(&mut events, Some(Duration::from_secs(5)))?, 1);
/// let ev = events.iter().next().unwrap();
/// assert_eq!((ev.ident(), ev.token()), (WAKE, WAKE));
/// t.join().unwrap()?;
/// drop(kq);
/// assert_eq!(waker.wake().unwrap_err().raw_os_error(), Some(libc::EBADF));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Waker {
    kq: Weak<Inner>,
    token: usize,
}

impl Waker {
    /// Registers user event `token` in `kq` (EV_ADD|EV_CLEAR, with `token` as token; an
    /// existing user event of that ident is modified so) and returns a waker for it.
    ///
    /// # Errors
    ///
    /// Those of [`Kqueue::apply`]: EBADF if the kqueue was closed (or its process forked
    /// since), ENOMEM when out of memory.
    pub fn new(kq: &Kqueue, token: usize) -> io::Result<Waker> {
        kq.apply(&[Change::user(token).add().clear().token(token)])?;
        Ok(Waker {
            kq: std::sync::Arc::downgrade(kq.inner()),
            token,
        })
    }

    /// Triggers the event: a thread waiting on the kqueue returns it; otherwise the next
    /// wait does. Allocates nothing and makes no system call unless a thread sleeps (or the
    /// kqueue's descriptor is watched).
    ///
    /// # Errors
    ///
    /// EBADF if the kqueue is gone (dropped, closed, or poisoned by a panicking filter
    /// hook); ENOENT if the user event was deleted; EDEADLK if called from a filter hook or
    /// a change or event list of a `kevent()` call in progress on this thread.
    pub fn wake(&self) -> io::Result<()> {
        let Some(inner) = self.kq.upgrade() else {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        };
        let fire = [Change::user(self.token).trigger().token(self.token).0];
        inner.kevent(&fire, &mut [][..], None)?;
        Ok(())
    }

    /// The ident and token of its events.
    pub fn token(&self) -> usize {
        self.token
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waker").field("token", &self.token).finish()
    }
}

impl Kqueue {
    /// Applies `changes` in order, stopping at the first that fails. Collects nothing, and
    /// allocates nothing: the changes are read where they are.
    ///
    /// # Errors
    ///
    /// The error of the first change that fails (ENOENT: no such knote; EINVAL: a bad
    /// filter or value; EBADF: a descriptor filter on a number that is not open; ENOMEM,
    /// ...); the changes before it were applied and the later ones were not. EINVAL, with
    /// nothing applied, if a change has EV_RECEIPT ([`Change::receipt`]): receipts need
    /// slots to be written to, which `apply` has not; use [`Kqueue::kevent`] for them.
    /// EBADF if the kqueue was closed or poisoned.
    ///
    /// ```
    /// use kq::{Change, Kqueue};
    ///
    /// let kq = Kqueue::new()?;
    /// kq.apply(&[Change::user(1).add(), Change::user(2).add()])?;
    /// let e = kq.apply(&[Change::user(1).delete(), Change::user(3).delete()]).unwrap_err();
    /// assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    /// let e = kq.apply(&[Change::user(2).delete().receipt()]).unwrap_err();
    /// assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    /// kq.apply(&[Change::user(2).delete()])?; // not applied above
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn apply(&self, changes: &[Change]) -> io::Result<()> {
        if changes.iter().any(|c| c.0.flags & EV_RECEIPT != 0) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        self.inner().kevent(Changes(changes), &mut [][..], None)?;
        Ok(())
    }

    /// Waits up to `timeout` (`None`: forever) for events and stores them in `events`,
    /// replacing those of the last wait. Returns their number (0: the timeout expired).
    ///
    /// # Errors
    ///
    /// EINTR if a signal arrived while waiting; EBADF if the kqueue was closed or poisoned
    /// (or its process forked since); EDEADLK if called from a filter hook.
    ///
    /// ```
    /// use kq::{Events, Kqueue};
    /// use std::time::Duration;
    ///
    /// let kq = Kqueue::new()?;
    /// let mut events = Events::with_capacity(8);
    /// assert_eq!(kq.wait(&mut events, Some(Duration::from_millis(1)))?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.len = 0;
        events.len = self.kevent(&[], &mut events.buf, timeout)?;
        Ok(events.len)
    }

    /// Fires user event `ident`, ORing `fflags` (24 bits) into its user flags. Like every
    /// change, the trigger sets the event's data to 0 and its token to 0 (NetBSD and
    /// FreeBSD semantics); use [`Change`] to pass other values, or a [`Waker`].
    ///
    /// # Errors
    ///
    /// ENOENT if there is no such user event; as [`Kqueue::apply`] otherwise.
    ///
    /// ```
    /// use kq::{Events, Kqueue};
    /// use std::time::Duration;
    ///
    /// let kq = Kqueue::new()?;
    /// kq.add_user(5)?;
    /// kq.trigger(5, 0x1)?;
    /// kq.trigger(5, 0x4)?; // coalesces with the first
    /// let mut events = Events::with_capacity(4);
    /// assert_eq!(kq.wait(&mut events, Some(Duration::ZERO))?, 1);
    /// assert_eq!(events.iter().next().unwrap().fflags(), 0x5);
    /// assert_eq!(kq.trigger(6, 0).unwrap_err().raw_os_error(), Some(libc::ENOENT));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn trigger(&self, ident: usize, fflags: u32) -> io::Result<()> {
        self.apply(&[Change::user(ident)
            .trigger()
            .fflags_op(FflagsOp::Or(fflags))])
    }

    /// Registers user event `ident`, edge-triggered (EV_ADD|EV_CLEAR), as event loops want.
    ///
    /// # Errors
    ///
    /// As [`Kqueue::apply`].
    ///
    /// ```
    /// let kq = kq::Kqueue::new()?;
    /// kq.add_user(1)?;
    /// kq.trigger(1, 0)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn add_user(&self, ident: usize) -> io::Result<()> {
        self.apply(&[Change::user(ident).add().clear()])
    }

    /// Deletes knote (ident, filter).
    ///
    /// # Errors
    ///
    /// ENOENT if there is no such knote; EBADF for a descriptor filter on a number that is
    /// not open; as [`Kqueue::apply`] otherwise.
    ///
    /// ```
    /// use kq::{EventFilter, Kqueue};
    /// let kq = Kqueue::new()?;
    /// kq.add_user(1)?;
    /// kq.delete(1, EventFilter::User)?;
    /// assert!(kq.delete(1, EventFilter::User).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn delete(&self, ident: usize, filter: EventFilter) -> io::Result<()> {
        self.apply(&[Change::new(ident, filter).delete()])
    }

    /// A [`Waker`] for user event `token` of this kqueue: see [`Waker::new`].
    ///
    /// # Errors
    ///
    /// As [`Waker::new`].
    ///
    /// ```
    /// let kq = kq::Kqueue::new()?;
    /// let waker = kq.waker(1)?;
    /// waker.wake()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn waker(&self, token: usize) -> io::Result<Waker> {
        Waker::new(self, token)
    }
}
