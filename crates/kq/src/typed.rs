//! The typed layer: change builders, filter names, event views and helpers for user events.

use crate::consts::*;
use crate::kevent::{Errno, Kevent};
use crate::kqueue::Kqueue;
use std::ffi::c_void;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A filter, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventFilter {
    /// `EVFILT_READ`
    Read,
    /// `EVFILT_WRITE`
    Write,
    /// `EVFILT_VNODE`
    Vnode,
    /// `EVFILT_PROC`
    Proc,
    /// `EVFILT_SIGNAL`
    Signal,
    /// `EVFILT_TIMER`
    Timer,
    /// `EVFILT_USER`
    User,
    /// Any other number (a filter registered at run time, ...).
    Other(i16),
}

impl From<EventFilter> for i16 {
    fn from(f: EventFilter) -> i16 {
        match f {
            EventFilter::Read => EVFILT_READ,
            EventFilter::Write => EVFILT_WRITE,
            EventFilter::Vnode => EVFILT_VNODE,
            EventFilter::Proc => EVFILT_PROC,
            EventFilter::Signal => EVFILT_SIGNAL,
            EventFilter::Timer => EVFILT_TIMER,
            EventFilter::User => EVFILT_USER,
            EventFilter::Other(n) => n,
        }
    }
}

impl From<i16> for EventFilter {
    fn from(n: i16) -> EventFilter {
        match n {
            EVFILT_READ => EventFilter::Read,
            EVFILT_WRITE => EventFilter::Write,
            EVFILT_VNODE => EventFilter::Vnode,
            EVFILT_PROC => EventFilter::Proc,
            EVFILT_SIGNAL => EventFilter::Signal,
            EVFILT_TIMER => EventFilter::Timer,
            EVFILT_USER => EventFilter::User,
            n => EventFilter::Other(n),
        }
    }
}

/// How a user-event change edits the 24 stored user flags (`NOTE_FF*`).
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
/// let add = Change::user(3).add().clear();
/// let fire = Change::user(3).trigger().fflags_op(FflagsOp::Or(0x4)).data(9);
/// assert_eq!(fire.kevent().fflags, kq::NOTE_TRIGGER | kq::NOTE_FFOR | 0x4);
/// # let _ = add;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Change(Kevent);

impl Change {
    /// A change with no flags for (ident, filter).
    pub fn new(ident: usize, filter: EventFilter) -> Change {
        Change(Kevent::new(
            ident,
            filter.into(),
            0,
            0,
            0,
            std::ptr::null_mut(),
        ))
    }

    /// A change of user event `ident`.
    pub fn user(ident: usize) -> Change {
        Change::new(ident, EventFilter::User)
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
    pub fn timer_at(ident: usize, at: SystemTime) -> Change {
        let ns = match at.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos().min(isize::MAX as u128) as isize,
            Err(_) => 0,
        };
        Change::new(ident, EventFilter::Timer)
            .fflags(NOTE_ABSOLUTE | NOTE_NSECONDS)
            .data(ns)
    }

    /// Adds `flags` (`EV_*`).
    pub fn flags(mut self, flags: u16) -> Change {
        self.0.flags |= flags;
        self
    }

    /// EV_ADD: create, or modify.
    pub fn add(self) -> Change {
        self.flags(EV_ADD)
    }
    /// EV_DELETE.
    pub fn delete(self) -> Change {
        self.flags(EV_DELETE)
    }
    /// EV_ENABLE.
    pub fn enable(self) -> Change {
        self.flags(EV_ENABLE)
    }
    /// EV_DISABLE.
    pub fn disable(self) -> Change {
        self.flags(EV_DISABLE)
    }
    /// EV_ONESHOT.
    pub fn oneshot(self) -> Change {
        self.flags(EV_ONESHOT)
    }
    /// EV_CLEAR (edge-triggered; on a user-event change without EV_ADD it cancels a
    /// pending trigger).
    pub fn clear(self) -> Change {
        self.flags(EV_CLEAR)
    }
    /// EV_DISPATCH.
    pub fn dispatch(self) -> Change {
        self.flags(EV_DISPATCH)
    }
    /// EV_RECEIPT.
    pub fn receipt(self) -> Change {
        self.flags(EV_RECEIPT)
    }

    /// ORs `fflags` (`NOTE_*`) in.
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

    /// Sets `udata`. Note that every change to a knote replaces its udata (triggers too).
    pub fn udata(mut self, udata: *mut c_void) -> Change {
        self.0.udata = udata;
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

/// A delivered event or report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event(Kevent);

impl Event {
    /// The ident.
    pub fn ident(&self) -> usize {
        self.0.ident
    }
    /// The filter.
    pub fn filter(&self) -> EventFilter {
        self.0.filter.into()
    }
    /// The flags (`EV_*`).
    pub fn flags(&self) -> u16 {
        self.0.flags
    }
    /// The filter flags: for a user event, its stored user flags.
    pub fn fflags(&self) -> u32 {
        self.0.fflags
    }
    /// The data: for a user event, the last change's data; for a timer, the expirations.
    pub fn data(&self) -> isize {
        self.0.data
    }
    /// The udata.
    pub fn udata(&self) -> *mut c_void {
        self.0.udata
    }
    /// For an EV_ERROR report: `Some(Ok(()))` for a receipt, `Some(Err(errno))` for a
    /// failed change; `None` for an event.
    ///
    /// ```
    /// use kq::{Change, Errno, Kevent, Kqueue};
    ///
    /// let kq = Kqueue::new()?;
    /// // One call: a receipt for the add, a report for the trigger of an unknown ident.
    /// let changes = [
    ///     Change::user(1).add().receipt().kevent(),
    ///     Change::user(2).trigger().kevent(),
    /// ];
    /// let mut out = [Kevent::default(); 2];
    /// assert_eq!(kq.kevent(&changes, &mut out, None)?, 2);
    /// let reports: Vec<_> = out.iter().map(|k| kq::Event::from(*k).report()).collect();
    /// assert_eq!(reports, [Some(Ok(())), Some(Err(Errno::NOENT))]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn report(&self) -> Option<Result<(), Errno>> {
        if self.0.flags & EV_ERROR == 0 {
            return None;
        }
        Some(match self.0.data {
            0 => Ok(()),
            e => Err(Errno(e as i32)),
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
#[derive(Clone, Debug)]
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
    /// The events of the last wait.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.buf[..self.len].iter().map(|&k| Event(k))
    }
    /// Number of events of the last wait.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the last wait returned nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Kqueue {
    /// Applies `changes` in order, stopping at the first that fails (whose error is
    /// returned; the later ones are not applied). Collects nothing.
    pub fn apply(&self, changes: &[Change]) -> std::io::Result<()> {
        let kevs: Vec<Kevent> = changes.iter().map(|c| c.0).collect();
        self.kevent(&kevs, &mut [], None).map(drop)
    }

    /// Waits up to `timeout` (`None`: forever) for events and stores them in `events`.
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> std::io::Result<usize> {
        events.len = 0;
        events.len = self.kevent(&[], &mut events.buf, timeout)?;
        Ok(events.len)
    }

    /// Fires user event `ident`, ORing `fflags` (24 bits) into its user flags. Like every
    /// change, the trigger sets the event's data to 0 and its udata to null (NetBSD and
    /// FreeBSD semantics); use [`Change`] to pass other values. ENOENT if there is no such
    /// user event.
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
    pub fn trigger(&self, ident: usize, fflags: u32) -> std::io::Result<()> {
        self.apply(&[Change::user(ident)
            .trigger()
            .fflags_op(FflagsOp::Or(fflags))])
    }

    /// Registers user event `ident`, edge-triggered (EV_ADD|EV_CLEAR), as event loops want.
    pub fn add_user(&self, ident: usize) -> std::io::Result<()> {
        self.apply(&[Change::user(ident).add().clear()])
    }

    /// Deletes knote (ident, filter).
    pub fn delete(&self, ident: usize, filter: EventFilter) -> std::io::Result<()> {
        self.apply(&[Change::new(ident, filter).delete()])
    }
}
