//! The kqueue: `kevent()` as SPEC §1.3-§1.5 states it, `kqueue_register` (§3.2) and
//! `kqueue_scan` (§3.3), waiting and waking.
//!
//! Locking: one mutex per kqueue guards its knotes, its timers and the fields of [`State`].
//! A whole `kevent()` change list is applied under one hold of the lock, and a whole scan
//! runs under one hold too: the scan never drops the lock in the middle, so no other thread
//! can see a knote "in flux" and the kernel's marker protocol reduces to a count of the
//! entries queued when the scan started (a level-triggered knote requeued at the tail is not
//! reported twice by one call, SPEC §6, t_scan). Sleepers are woken after the lock is
//! released. Filters run under the lock and never block.

use crate::consts::*;
use crate::filter::{self, Context, FilterRef, Timers, Touch};
use crate::kevent::{ChangeList, Errno, EventList, Kevent, Timespec};
use crate::knote::{Knote, Knotes, ACTIVE, DISABLED};
use crate::personality::Personality;
use crate::sys::{self, Clock, Fds, SignalsBlocked, Woken};
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// The state under the kqueue lock.
pub(crate) struct State {
    knotes: Knotes,
    timers: Timers,
    /// Threads sleeping in kevent() (they need an eventfd write to wake).
    sleepers: u32,
    /// The pipe holds its byte: the kqueue descriptor is readable. Kept set lazily: cleared
    /// only by a kevent() that finds nothing and would not sleep, so that a trigger followed
    /// by a collect costs no system call (SPEC §3.7 allows spurious readability).
    readable: bool,
    /// Every copy of the descriptor was closed.
    closed: bool,
    /// The deadline each timerfd is armed for (0: disarmed), by `Clock`.
    armed: [u64; 2],
}

/// How long a kevent() that would sleep yields first, waiting for a trigger.
const SPIN: Duration = Duration::from_micros(20);

/// Who to tell, once the lock is released, that knotes were queued.
#[must_use]
struct Wakeup {
    sleepers: bool,
    watchers: bool,
}

impl Wakeup {
    const NONE: Wakeup = Wakeup {
        sleepers: false,
        watchers: false,
    };
}

pub(crate) struct Inner {
    state: Mutex<State>,
    /// This kqueue, for filters that hand it to others (EVFILT_READ on a kqueue).
    pub(crate) me: Weak<Inner>,
    /// Queued knotes, published at each release of the lock.
    pending: AtomicUsize,
    /// Kqueues watching this one with EVFILT_READ: (kqueue, knote ident).
    watchers: Mutex<Vec<(Weak<Inner>, usize)>>,
    watched: AtomicBool,
    personality: Personality,
    /// Fork generation the kqueue was made in.
    pub(crate) gen: u64,
    pub(crate) fds: Fds,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kernel's `kqueue_register` for one change (SPEC §3.2, §4.4). Returns whether a
    /// knote was queued.
    fn register(&self, st: &mut State, kev: &mut Kevent) -> Result<bool, Errno> {
        let p = self.personality;
        if p.rejects_enable_with_disable(kev.flags) {
            return Err(Errno::INVAL);
        }
        let filter = filter::lookup(kev.filter).ok_or(Errno::INVAL)?;
        if filter.is_fd() {
            sys::check_fd(kev.ident)?;
        }
        // A timer needs the kqueue's timerfd for its clock: fail the change now if it cannot
        // be had (EMFILE, ...) rather than leave the timer without a wakeup.
        if kev.filter == EVFILT_TIMER && kev.flags & EV_ADD != 0 {
            let clock = if kev.fflags & NOTE_ABSOLUTE != 0 {
                Clock::Realtime
            } else {
                Clock::Monotonic
            };
            self.fds.timerfd(clock)?;
        }
        let State { knotes, timers, .. } = st;
        let mut queued = false;
        let id = match knotes.find(kev.ident, kev.filter) {
            None => {
                if kev.flags & EV_ADD == 0 {
                    return Err(Errno::NOENT);
                }
                // The stored image has fflags and data zeroed; the input is kept as
                // sfflags/sdata. No touch for a new knote.
                let image = Kevent {
                    flags: p.stored_flags(kev.flags),
                    fflags: 0,
                    data: 0,
                    ..*kev
                };
                let id = knotes.insert(image)?;
                let kn = knotes.get(id);
                kn.sfflags = kev.fflags;
                kn.sdata = kev.data as i64;
                if p.gates_before_evaluating() {
                    apply_enable_disable(kn, kev.flags);
                }
                let mut cx = Context::new(p, id, timers, &self.me);
                if let Err(e) = filter.attach(kn, &mut cx) {
                    knotes.remove(id);
                    return Err(e);
                }
                kev.fflags = 0;
                kev.data = 0;
                id
            }
            Some(id) if kev.flags & EV_DELETE != 0 => {
                self.drop_knote(knotes, timers, id, &filter);
                return Ok(false);
            }
            Some(id) => {
                if p.forces_oneshot(kev.flags) {
                    knotes.get(id).kev.flags |= EV_ONESHOT;
                    queued |= knotes.activate(id);
                }
                let kn = knotes.get(id);
                if p.gates_before_evaluating() {
                    apply_enable_disable(kn, kev.flags);
                }
                if !p.keeps_udata(kev.flags) {
                    kn.kev.udata = kev.udata;
                }
                let mut cx = Context::new(p, id, timers, &self.me);
                filter.touch(kn, kev, Touch::Register, &mut cx)?;
                if cx.deactivate {
                    knotes.dequeue(id);
                    knotes.get(id).status &= !ACTIVE;
                }
                id
            }
        };
        // Step 6: re-evaluate and activate. FreeBSD has applied EV_ENABLE/EV_DISABLE already
        // and does not evaluate a disabled knote; NetBSD evaluates first, then disables, then
        // enables (so EV_ENABLE|EV_DISABLE nets to enabled) and queues an active knote.
        let kn = knotes.get(id);
        let gated = p.gates_before_evaluating();
        if !(gated && kn.is_disabled()) {
            let mut cx = Context::new(p, id, timers, &self.me);
            if filter.event(kn, 0, &mut cx) {
                queued |= knotes.activate(id);
            }
        }
        if !gated {
            apply_enable_disable(knotes.get(id), kev.flags);
        }
        queued |= knotes.requeue_if_active(id);
        Ok(queued)
    }

    /// The kernel's `kqueue_scan` minus the waiting: delivers up to `max` records.
    fn collect(&self, st: &mut State, events: &mut impl EventList, max: usize) -> usize {
        let p = self.personality;
        let State { knotes, timers, .. } = st;
        let mut n = 0;
        // Only the entries queued now: a level-triggered knote requeued below lands behind
        // them and waits for the next call (the kernel's marker).
        let mut budget = knotes.queued;
        while n < max && budget > 0 {
            budget -= 1;
            let Some(id) = knotes.pop() else { break };
            let kn = knotes.get(id);
            if kn.is_disabled() {
                continue; // stays ACTIVE: EV_ENABLE requeues it
            }
            let Some(filter) = filter::lookup(kn.kev.filter) else {
                continue;
            };
            let flags = kn.kev.flags;
            let mut cx = Context::new(p, id, timers, &self.me);
            // A oneshot that became active is delivered even if its condition went away.
            if flags & EV_ONESHOT == 0 && !filter.event(kn, 0, &mut cx) {
                kn.status &= !ACTIVE;
                continue;
            }
            let mut out = kn.kev;
            if flags & EV_ONESHOT == 0 || !p.oneshot_bypasses_touch() {
                let _ = filter.touch(kn, &mut out, Touch::Process, &mut cx);
            }
            events.put(n, out);
            n += 1;
            if flags & EV_ONESHOT != 0 {
                self.drop_knote(knotes, cx.timers, id, &filter);
            } else if flags & EV_CLEAR != 0 {
                kn.kev.data = 0;
                kn.kev.fflags = 0;
                kn.status &= !ACTIVE;
                if flags & EV_DISPATCH != 0 && p.clear_also_dispatches() {
                    kn.status |= DISABLED;
                }
            } else if flags & EV_DISPATCH != 0 {
                kn.status |= DISABLED;
                kn.status &= !ACTIVE;
            } else {
                knotes.enqueue(id); // level-triggered: back to the tail, still ACTIVE
            }
        }
        n
    }

    /// Detaches and frees knote `id`.
    fn drop_knote(&self, knotes: &mut Knotes, timers: &mut Timers, id: u32, f: &FilterRef) {
        let mut cx = Context::new(self.personality, id, timers, &self.me);
        f.detach(knotes.get(id), &mut cx);
        knotes.remove(id);
    }

    /// Publishes the pending count (for kqueues watching this one) before the lock is
    /// released.
    fn publish(&self, st: &State) {
        self.pending.store(st.knotes.queued, Ordering::Relaxed);
    }

    /// After knotes were queued, under the lock: make the descriptor readable and say who
    /// must be told once the lock is released ([`Inner::wake`]).
    fn signal(&self, st: &mut State) -> Wakeup {
        // Store the count, then look for watchers; a new watcher stores `watched`, then reads
        // the count (`add_watcher`, then the filter's event check). Sequentially consistent
        // on both sides, so at least one of the two sees the other: a watcher added while
        // this kqueue activates is either told or finds the count itself.
        self.pending.store(st.knotes.queued, Ordering::SeqCst);
        if st.knotes.queued > 0 && !st.readable {
            self.fds.set_readable();
            st.readable = true;
        }
        Wakeup {
            sleepers: st.sleepers > 0,
            watchers: self.watched.load(Ordering::SeqCst),
        }
    }

    /// Wakes sleepers and notifies watching kqueues, with the lock released.
    fn wake(&self, w: Wakeup) {
        if w.sleepers {
            self.fds.wake();
        }
        if w.watchers {
            let watchers: Vec<(Weak<Inner>, usize)> = self
                .watchers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            for (outer, ident) in watchers {
                if let Some(outer) = outer.upgrade() {
                    let _ = outer.post(ident, EVFILT_READ, 0);
                }
            }
        }
    }

    /// Kqueue `outer` watches this one through its EVFILT_READ knote `ident`.
    pub(crate) fn add_watcher(&self, outer: Weak<Inner>, ident: usize) {
        let mut w = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        w.retain(|(o, _)| o.strong_count() > 0);
        w.push((outer, ident));
        self.watched.store(true, Ordering::SeqCst); // see `signal`
    }

    /// Undoes [`Inner::add_watcher`].
    pub(crate) fn remove_watcher(&self, outer: &Weak<Inner>, ident: usize) {
        let mut w = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = w.iter().position(|(o, i)| *i == ident && o.ptr_eq(outer)) {
            w.swap_remove(i);
        }
        self.watched.store(!w.is_empty(), Ordering::Relaxed);
    }

    /// The number of queued knotes, as last published (EVFILT_READ on this kqueue).
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Counts due timer expirations and re-arms the timerfd. Returns whether a knote was
    /// queued.
    fn expire_timers(&self, st: &mut State) -> bool {
        if st.timers.is_empty() {
            return false;
        }
        let queued = st.timers.expire(&mut st.knotes);
        self.sync_timerfd(st);
        queued
    }

    /// Arms each timerfd for the earliest deadline on its clock, if that changed.
    fn sync_timerfd(&self, st: &mut State) {
        for clock in [Clock::Monotonic, Clock::Realtime] {
            let next = st.timers.next_deadline(clock).unwrap_or(0);
            if next != st.armed[clock as usize] && self.fds.arm_timer(clock, next).is_ok() {
                st.armed[clock as usize] = next;
            }
        }
    }

    /// The timer thread's entry: run due timers of this kqueue.
    pub(crate) fn run_timers(&self) {
        let mut st = self.lock();
        if st.closed || self.gen != sys::fork_gen() {
            return;
        }
        let w = if self.expire_timers(&mut st) {
            self.signal(&mut st)
        } else {
            Wakeup::NONE
        };
        drop(st);
        self.wake(w);
    }

    /// Marks the kqueue closed and wakes its sleepers (they return EBADF).
    pub(crate) fn mark_closed(&self) {
        self.lock().closed = true;
        self.fds.wake();
    }

    /// `kevent()`. `read` is a descriptor of the kqueue's read end, used to clear its
    /// readability.
    pub(crate) fn kevent(
        &self,
        read: BorrowedFd<'_>,
        mut changes: impl ChangeList,
        mut events: impl EventList,
        timeout: Option<Timespec>,
    ) -> Result<usize, Errno> {
        if self.gen != sys::fork_gen() {
            return Err(Errno::BADF);
        }
        let nevents = events.len();
        let mut nerrors = 0;
        if !changes.is_empty() {
            let mut st = self.lock();
            if st.closed {
                return Err(Errno::BADF);
            }
            let mut queued = false;
            let mut stop = None;
            for i in 0..changes.len() {
                let mut kev = changes.get(i);
                kev.flags &= !EV_SYSFLAGS;
                if kev.filter == 0 && self.personality.skips_filter_zero() {
                    continue;
                }
                let receipt = kev.flags & EV_RECEIPT != 0;
                let r = self.register(&mut st, &mut kev);
                if let Ok(q) = r {
                    queued |= q;
                    if !receipt {
                        continue;
                    }
                }
                // A report needs a slot; without one the call ends here and the later
                // changes are not applied (SPEC §1.3 step 3e).
                if nerrors == nevents {
                    stop = Some(r.map(|_| 0));
                    break;
                }
                kev.flags = EV_ERROR;
                kev.data = r.err().map_or(0, |e| e.0 as isize);
                events.put(nerrors, kev);
                nerrors += 1;
            }
            self.sync_timerfd(&mut st);
            let w = if queued {
                self.signal(&mut st)
            } else {
                self.publish(&st);
                Wakeup::NONE
            };
            drop(st);
            self.wake(w);
            if let Some(r) = stop {
                return r;
            }
        }
        // A report suppresses the scan.
        if nerrors > 0 || nevents == 0 {
            return Ok(nerrors);
        }
        let timeout = match timeout {
            None => None,
            Some(t) if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) => {
                return Err(Errno::INVAL)
            }
            Some(t) => Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32)),
        };
        self.scan(read, &mut events, nevents, timeout)
    }

    /// The waiting part of `kqueue_scan`.
    fn scan(
        &self,
        read: BorrowedFd<'_>,
        events: &mut impl EventList,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, Errno> {
        let deadline = match timeout {
            Some(Duration::ZERO) => None,
            Some(t) => Some(Instant::now().checked_add(t)),
            None => Some(None),
        };
        let mut spun = false;
        let mut signals: Option<SignalsBlocked> = None;
        let mut st = self.lock();
        loop {
            if st.closed {
                return Err(Errno::BADF);
            }
            let expired = self.expire_timers(&mut st);
            let n = self.collect(&mut st, events, max);
            // Anything left pending (or just expired) is passed on to another sleeper and
            // to watching kqueues.
            let w = if st.knotes.queued > 0 {
                self.signal(&mut st)
            } else {
                self.publish(&st);
                Wakeup::NONE
            };
            if n > 0 || expired {
                drop(st);
                self.wake(w);
                if n > 0 {
                    return Ok(n);
                }
                st = self.lock();
                continue;
            }
            let remaining = match deadline {
                // Wait forever.
                Some(None) => None,
                Some(Some(d)) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => return Ok(0),
                },
                // A poll that found nothing: clear stale readability.
                None => {
                    if st.readable && st.knotes.queued == 0 {
                        self.fds.clear_readable(read);
                        st.readable = false;
                    }
                    return Ok(0);
                }
            };
            // From here until the call returns, signals stay blocked: one that arrives before
            // the sleep is then delivered by it, as EINTR, instead of being lost.
            let blocked = signals.get_or_insert_with(SignalsBlocked::new);
            if !spun {
                // Before sleeping, yield for a few microseconds: a trigger from another
                // thread in that window costs neither side a system call, where a sleep
                // costs an eventfd write, an epoll_wait and two context switches (see the
                // README's ping-pong figures). Bounded, and once per call.
                spun = true;
                drop(st);
                let start = Instant::now();
                while self.pending() == 0 && start.elapsed() < SPIN {
                    std::thread::yield_now();
                }
                st = self.lock();
                continue;
            }
            st.sleepers += 1;
            drop(st);
            let woken = self.fds.sleep(remaining, blocked);
            st = self.lock();
            st.sleepers -= 1;
            if let Woken::Closed = woken? {
                st.closed = true;
                drop(st);
                // Pass it on: every sleeper returns EBADF.
                self.fds.wake();
                return Err(Errno::BADF);
            }
        }
    }

    /// Posts an event to knote (ident, filter): the kernel's `knote()` for one knote.
    fn post(&self, ident: usize, filter_id: i16, hint: i64) -> Result<bool, Errno> {
        let filter = filter::lookup(filter_id).ok_or(Errno::INVAL)?;
        let mut st = self.lock();
        let id = st.knotes.find(ident, filter_id).ok_or(Errno::NOENT)?;
        let State { knotes, timers, .. } = &mut *st;
        let mut cx = Context::new(self.personality, id, timers, &self.me);
        let fired = filter.event(knotes.get(id), hint, &mut cx);
        let w = if fired && knotes.activate(id) {
            self.signal(&mut st)
        } else {
            Wakeup::NONE
        };
        drop(st);
        self.wake(w);
        Ok(fired)
    }
}

/// EV_DISABLE, then EV_ENABLE: together they net to enabled (NetBSD; FreeBSD rejected the
/// pair earlier). The caller queues an enabled, active knote.
fn apply_enable_disable(kn: &mut Knote, flags: u16) {
    if flags & EV_DISABLE != 0 {
        kn.status |= DISABLED;
    }
    if flags & EV_ENABLE != 0 {
        kn.status &= !DISABLED;
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.gen != sys::fork_gen() {
            return; // the parent's kqueue: its resources are the parent's business
        }
        let mut guard = self.lock();
        let st = &mut *guard;
        let ids: Vec<u32> = st.knotes.ids().collect();
        for id in ids {
            if let Some(f) = filter::lookup(st.knotes.get(id).kev.filter) {
                self.drop_knote(&mut st.knotes, &mut st.timers, id, &f);
            }
        }
        drop(guard);
        sys::unregister(self.fds.ino);
    }
}

/// A kernel event queue: `kqueue()`.
///
/// All of `kevent()` is [`Kqueue::kevent`]; the typed layer ([`crate::Change`],
/// [`Kqueue::trigger`], ...) builds its records. Any number of threads may use one
/// `Kqueue` at once.
///
/// The descriptor ([`AsFd`]) is readable by poll(2), select(2) and epoll while an event is
/// pending, so a `Kqueue` can sit in another event loop. Readability may be spurious after
/// a `kevent()` that collected the last event; a `kevent()` with a zero timeout that finds
/// nothing clears it.
///
/// # Examples
///
/// ```
/// use kq::{Kevent, Kqueue, EVFILT_USER, EV_ADD, EV_CLEAR, NOTE_TRIGGER};
/// use std::{ptr::null_mut, time::Duration};
///
/// let kq = Kqueue::new()?;
/// let add = Kevent::new(7, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, null_mut());
/// let fire = Kevent::new(7, EVFILT_USER, 0, NOTE_TRIGGER, 42, null_mut());
/// kq.kevent(&[add, fire], &mut [], None)?;
///
/// let mut events = [Kevent::default(); 4];
/// let n = kq.kevent(&[], &mut events, Some(Duration::ZERO))?;
/// assert_eq!(n, 1);
/// assert_eq!((events[0].ident, events[0].data), (7, 42));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Kqueue {
    inner: Arc<Inner>,
    read: sys::Fd,
}

impl Kqueue {
    /// A new, empty kqueue with the NetBSD personality.
    pub fn new() -> std::io::Result<Kqueue> {
        Kqueue::with_personality(Personality::NetBsd)
    }

    /// A new, empty kqueue with the given personality.
    pub fn with_personality(personality: Personality) -> std::io::Result<Kqueue> {
        let (fds, read) = match Fds::new() {
            // Closed kqueues not yet noticed hold descriptors: let them go and try again.
            Err(e) if e.0 == libc::EMFILE || e.0 == libc::ENFILE => {
                sys::sweep();
                Fds::new()?
            }
            r => r?,
        };
        let inner = Arc::new_cyclic(|me| Inner {
            me: me.clone(),
            pending: AtomicUsize::new(0),
            watchers: Mutex::new(Vec::new()),
            watched: AtomicBool::new(false),
            state: Mutex::new(State {
                knotes: Knotes::new(),
                timers: Timers::default(),
                sleepers: 0,
                readable: false,
                closed: false,
                armed: [0; 2],
            }),
            personality,
            gen: sys::fork_gen(),
            fds,
        });
        sys::register(&inner);
        Ok(Kqueue { inner, read })
    }

    /// The personality of this kqueue.
    pub fn personality(&self) -> Personality {
        self.inner.personality
    }

    /// `kevent()`: applies `changes` in order, then, unless a change produced a report,
    /// collects up to `events.len()` events, waiting up to `timeout` (`None`: forever).
    ///
    /// Returns the number of entries written to `events`: EV_ERROR reports (a failed change,
    /// or any EV_RECEIPT change) if there were any, else events. A report with no slot left
    /// ends the call: the change's error is returned (or `Ok(0)` for a receipt) and the
    /// later changes are not applied. A signal while waiting gives EINTR.
    pub fn kevent(
        &self,
        changes: &[Kevent],
        events: &mut [Kevent],
        timeout: Option<Duration>,
    ) -> std::io::Result<usize> {
        let ts = timeout.map(|t| Timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: t.subsec_nanos() as i64,
        });
        Ok(self.inner.kevent(self.read.as_fd(), changes, events, ts)?)
    }

    /// `kevent()` with the system call's own arguments: any [`ChangeList`] and
    /// [`EventList`], and a timeout not yet validated. An invalid timeout gives EINVAL only
    /// when there are event slots, and only after the changes were applied (SPEC §1.4).
    pub fn kevent_raw(
        &self,
        changes: impl ChangeList,
        events: impl EventList,
        timeout: Option<Timespec>,
    ) -> Result<usize, Errno> {
        self.inner
            .kevent(self.read.as_fd(), changes, events, timeout)
    }

    /// Posts `hint` to knote (ident, filter) of a registered filter: calls its
    /// [`Filter::event`](crate::filter::Filter::event) and activates the knote if that says
    /// so. Returns whether it fired; ENOENT if there is no such knote.
    pub fn post(&self, ident: usize, filter: i16, hint: i64) -> Result<bool, Errno> {
        self.inner.post(ident, filter, hint)
    }

    /// Gives the kqueue descriptor to the caller, as C's `kqueue()` does: the kqueue lives
    /// until every copy of the descriptor is closed, and [`Kqueue::from_fd`] finds it again.
    pub fn into_raw_fd(self) -> RawFd {
        let Kqueue { inner, read } = self;
        sys::release(inner);
        read.into_raw_fd()
    }

    /// The kqueue behind descriptor `fd` (any copy of a kqueue descriptor of this process).
    /// EBADF if `fd` is not one: closed, another file, or inherited across fork().
    pub fn from_fd(fd: BorrowedFd<'_>) -> Result<KqueueRef<'_>, Errno> {
        Ok(KqueueRef {
            inner: sys::lookup(fd)?,
            fd,
        })
    }
}

impl AsFd for Kqueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl AsRawFd for Kqueue {
    fn as_raw_fd(&self) -> RawFd {
        self.read.as_fd().as_raw_fd()
    }
}

impl std::fmt::Debug for Kqueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kqueue")
            .field("fd", &self.as_raw_fd())
            .field("personality", &self.inner.personality)
            .finish()
    }
}

/// A kqueue found by [`Kqueue::from_fd`], usable while the descriptor is borrowed.
pub struct KqueueRef<'fd> {
    inner: Arc<Inner>,
    fd: BorrowedFd<'fd>,
}

impl KqueueRef<'_> {
    /// As [`Kqueue::kevent_raw`].
    pub fn kevent_raw(
        &self,
        changes: impl ChangeList,
        events: impl EventList,
        timeout: Option<Timespec>,
    ) -> Result<usize, Errno> {
        self.inner.kevent(self.fd, changes, events, timeout)
    }

    /// The personality of this kqueue.
    pub fn personality(&self) -> Personality {
        self.inner.personality
    }
}

impl std::fmt::Debug for KqueueRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KqueueRef")
            .field("fd", &self.fd.as_raw_fd())
            .finish()
    }
}
