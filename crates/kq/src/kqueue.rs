//! The kqueue: `kevent()` (the change list, then the scan), the kernel's `kqueue_register`
//! and `kqueue_scan`, waiting and waking. The rules they follow are in `docs/semantics.md`.
//!
//! Locking: one mutex per kqueue guards its knotes, its timers, its descriptor registrations
//! and the fields of [`State`]. A whole `kevent()` change list is applied under one hold of
//! the lock, and a whole scan runs under one hold too: the scan never drops the lock in the
//! middle, so no other thread can see a knote "in flux" and the kernel's marker protocol
//! reduces to a count of the entries queued when the scan started (a level-triggered knote
//! requeued at the tail is not reported twice by one call). Filters run under the lock and
//! never block. Watching kqueues are notified after the lock is released.
//!
//! Linux objects: the kqueue descriptor is an epoll instance (`epoll`). It holds
//! - every descriptor a knote watches, edge-triggered, one registration per descriptor
//!   (EVFILT_READ and EVFILT_WRITE on it share it, with the union of their interest), so
//!   that new data on a socket makes the kqueue descriptor readable with no thread of ours
//!   awake, and a kevent() harvests the edges into knote activations. A plain level
//!   EVFILT_READ knote's registration is level-triggered (and one-shot) once the knote was
//!   delivered: the knote then stays off the queue, epoll showing whether it is pending
//!   (`filter::fd`);
//! - an eventfd (`pending`, level-triggered) that holds a count exactly while knotes are
//!   queued, so the descriptor is readable while events are pending and stops being readable
//!   once the last one was collected; it is written again for every batch of new events, so
//!   an edge-triggered watcher gets a new edge for each;
//! - one timerfd per clock, armed for the kqueue's earliest timer deadline;
//! - the eventfd of each signal an EVFILT_SIGNAL knote watches (`crate::signal`), written
//!   by the library's handler at every delivery.
//!
//! Threads blocked in kevent() sleep in epoll_wait on the same epoll. A caller may take that
//! wait over ([`Park`]): the call then returns where it would sleep and is resumed after the
//! caller's own epoll_pwait, which is how the C library makes the wait a thread
//! cancellation point with no frame of the engine on the stack. A kqueue whose
//! descriptor nobody can watch (a Rust `Kqueue` whose descriptor was never handed out) skips
//! the eventfd unless a thread sleeps: a trigger then a collect costs no system call.

use crate::consts::*;
use crate::filter::fd::{Descriptors, Quick};
use crate::filter::{self, Context, FilterRef, Objects, Timers, Touch};
use crate::kevent::{ChangeList, Errno, EventList, Kevent, Timespec};
use crate::knote::{Knote, Knotes, ACTIVE, DISABLED};
use crate::personality::Personality;
use crate::process::{self, LibraryFd};
use crate::sys::{self, epoll, signals::SignalsBlocked, timerfd, Clock};
use crate::wait::Spin;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Epoll user data of the kqueue's own registrations: a tag in the top 16 bits, which
/// descriptor registrations (sequence number and descriptor number, 31 bits each) never
/// have.
const TAG_PENDING: u64 = filter::fd::TAG_BASE;
const TAG_TIMER: u64 = filter::fd::TAG_BASE + 1; // + the clock

/// The kqueue id in the user data of a `pending` registration, if it is one.
pub(crate) fn id_of_pending_token(data: u64) -> Option<u64> {
    (data as u32 as u64 == TAG_PENDING).then_some(data >> 32)
}

/// A held kqueue lock, counted in the thread's count of library locks held
/// (`process::LockCount`): a kevent() made while it holds one can only come from a signal
/// handler that interrupted a kevent() of the same thread (or a filter hook), which would
/// wait for a lock its own thread holds, so it fails with EDEADLK instead.
///
/// If a panic unwinds through a hold (a filter hook, or a change or event list, panicked),
/// the state may be half changed: a knote inserted but not attached, one taken off the
/// queue but not delivered, a timer half armed. The kqueue is then poisoned as the lock is
/// released: marked closed, so that every later call fails with EBADF rather than work on
/// that state, and its sleepers are woken to return EBADF too.
struct Locked<'a> {
    guard: Option<MutexGuard<'a, State>>,
    inner: &'a Inner,
    held: process::LockCount,
    /// The thread was already unwinding when it took the lock (a destructor making a call):
    /// that panic is not ours.
    unwinding: bool,
}

impl std::ops::Deref for Locked<'_> {
    type Target = State;
    #[inline]
    fn deref(&self) -> &State {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for Locked<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut State {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if !self.unwinding && std::thread::panicking() {
            if let Some(st) = self.guard.as_mut() {
                st.poisoned = true;
                st.closed = true;
                // Level-triggered: every sleeper wakes, sees `closed` and returns.
                sys::eventfd_add(self.inner.pending.as_fd());
                st.readable = true;
                // A kqueue watching this one finds nothing pending here any more.
                self.inner.pending_count.store(0, Ordering::SeqCst);
            }
        }
        drop(self.guard.take()); // release the lock, then stop counting it
        self.held.leave_kqueue();
    }
}

/// How [`Inner::scan`] starts: taking the lock, or under the hold of the changes just
/// applied, with whether they queued knotes not signalled yet.
enum ScanLock<'a> {
    Take(process::LockCount),
    Held(Locked<'a>, bool),
}

/// Whether this thread is inside a kqueue's lock or one of the process-wide locks (see
/// [`Locked`] and `process::LockCount`).
pub(crate) fn reentered() -> bool {
    process::LockCount::get().any()
}

/// The state under the kqueue lock.
pub(crate) struct State {
    knotes: Knotes,
    objs: Objects,
    /// Threads sleeping in epoll_wait.
    sleepers: u32,
    /// The `pending` eventfd holds a count.
    readable: bool,
    /// The program closed the kqueue, or it is poisoned.
    closed: bool,
    /// A panic unwound through a hold of the lock (see [`Locked`]).
    poisoned: bool,
    /// The deadline each timerfd is armed for (0: disarmed), by `Clock`.
    armed: [u64; 2],
}

/// Room for the events of one epoll_wait.
const HARVEST: usize = 64;

pub(crate) struct Inner {
    state: Mutex<State>,
    /// This kqueue, for filters that hand it to others (EVFILT_READ on a kqueue).
    pub(crate) me: Weak<Inner>,
    /// Process-unique id.
    pub(crate) id: u64,
    /// Queued knotes, published at each release of the lock.
    pending_count: AtomicUsize,
    /// See [`Inner::activations`].
    activations: AtomicU64,
    /// Kqueues watching this one with EVFILT_READ: (kqueue, knote ident).
    watchers: Mutex<Vec<(Weak<Inner>, usize)>>,
    watched: AtomicBool,
    /// The descriptor may be watched by poll/select/epoll: keep `pending` exact.
    exposed: AtomicBool,
    personality: Personality,
    /// Fork generation the kqueue was made in.
    pub(crate) gen: u64,
    epoll: LibraryFd,
    pending: LibraryFd,
    /// One timerfd per `Clock`, made with the first timer on it.
    timerfds: [OnceLock<LibraryFd>; 2],
    /// The waiting policy.
    spin: Spin,
}

impl Inner {
    fn lock(&self) -> Locked<'_> {
        self.lock_held(process::LockCount::get())
    }

    /// [`Inner::lock`] with the thread's lock count already in hand.
    fn lock_held(&self, held: process::LockCount) -> Locked<'_> {
        // Counted before the lock is taken and after it is released, so that a signal
        // handler never finds the lock held by its own thread with the count at zero.
        held.enter_kqueue();
        let unwinding = std::thread::panicking();
        // A panic under the lock poisons the kqueue through `closed` (see `Locked`): the
        // mutex's own poison flag adds nothing.
        let guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Locked {
            guard: Some(guard),
            inner: self,
            held,
            unwinding,
        }
    }

    /// [`Inner::lock_held`] if the lock is free now (never waits).
    fn try_lock_held(&self, held: process::LockCount) -> Option<Locked<'_>> {
        held.enter_kqueue();
        let unwinding = std::thread::panicking();
        let guard = match self.state.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                held.leave_kqueue();
                return None;
            }
        };
        Some(Locked {
            guard: Some(guard),
            inner: self,
            held,
            unwinding,
        })
    }

    pub(crate) fn epoll_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    /// The user data of this kqueue's `pending` registration, which identifies it.
    pub(crate) fn pending_token(&self) -> u64 {
        TAG_PENDING | (self.id << 32)
    }

    fn context<'a>(&'a self, objs: &'a mut Objects, id: u32) -> Context<'a> {
        Context::new(self.personality, id, objs, &self.me)
    }

    /// The kernel's `kqueue_register` for one change. Returns whether a knote was queued.
    fn register(&self, st: &mut State, kev: &mut Kevent) -> Result<bool, Errno> {
        let p = self.personality;
        if p.rejects_enable_with_disable(kev.flags) {
            return Err(Errno::INVAL);
        }
        let filter = filter::lookup(kev.filter).ok_or(Errno::INVAL)?;
        if filter.is_fd() {
            self.check_descriptor(st, kev)?;
        }
        // A timer needs the kqueue's timerfd for its clock: fail the change now if it cannot
        // be had (EMFILE, ...) rather than leave the timer without a wakeup.
        if kev.filter == EVFILT_TIMER && kev.flags & EV_ADD != 0 {
            let clock = if kev.fflags & NOTE_ABSOLUTE != 0 {
                Clock::Realtime
            } else {
                Clock::Monotonic
            };
            self.timerfd(clock)?;
        }
        // So does EVFILT_EMPTY, whose knotes are re-checked on a timer.
        if kev.filter == EVFILT_EMPTY && kev.flags & EV_ADD != 0 {
            self.timerfd(Clock::Monotonic)?;
        }
        let State { knotes, objs, .. } = st;
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
                let mut cx = self.context(objs, id);
                if let Err(e) = filter.attach(kn, &mut cx) {
                    knotes.remove(id);
                    return Err(e);
                }
                kev.fflags = 0;
                kev.data = 0;
                id
            }
            Some(id) if kev.flags & EV_DELETE != 0 => {
                self.drop_knote(knotes, objs, id, &filter);
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
                let mut cx = self.context(objs, id);
                filter.touch(kn, kev, Touch::Register, &mut cx)?;
                if cx.deactivate {
                    knotes.dequeue(id);
                    knotes.get(id).status &= !ACTIVE;
                }
                id
            }
        };
        // Re-evaluate and activate. FreeBSD has applied EV_ENABLE/EV_DISABLE already and
        // does not evaluate a disabled knote; NetBSD evaluates first, then disables, then
        // enables (so EV_ENABLE|EV_DISABLE nets to enabled) and queues an active knote.
        let kn = knotes.get(id);
        let gated = p.gates_before_evaluating();
        if !(gated && kn.is_disabled()) {
            let mut cx = self.context(objs, id);
            if filter.event(kn, 0, &mut cx) {
                let quiet = cx.quiet;
                queued |= knotes.activate(id) && !quiet;
            }
        }
        if !gated {
            apply_enable_disable(knotes.get(id), kev.flags);
        }
        queued |= knotes.requeue_if_active(id);
        Ok(queued)
    }

    /// For a change of a descriptor filter: EBADF unless `ident` is an open descriptor. If
    /// the number no longer names the file its knotes were registered for (it was closed,
    /// and maybe reused, without our hearing of it), those knotes are dropped first, as the
    /// close would have dropped them: a change then finds no knote, and EV_ADD makes a
    /// fresh one. The kqueue's epoll answers both for the files it holds, with one
    /// epoll_ctl at most (`filter::fd::quick_check`); otherwise `fstat`.
    fn check_descriptor(&self, st: &mut State, kev: &Kevent) -> Result<(), Errno> {
        let fd = sys::fd_number(kev.ident)?;
        match filter::fd::quick_check(&mut st.objs, fd, kev) {
            Quick::Fresh => return Ok(()),
            Quick::Stale(closed) => {
                self.drop_descriptor_knotes(st, fd);
                return closed.map_or(Ok(()), Err);
            }
            Quick::Slow => {}
        }
        let open = sys::io::identity(sys::borrow(fd));
        let stale = match &open {
            Err(_) => st.objs.fds.contains(fd),
            Ok(now) => filter::fd::is_stale(&mut st.objs, fd, now),
        };
        if stale {
            self.drop_descriptor_knotes(st, fd);
        }
        let now = open?;
        let epoch = st.objs.epoch;
        st.objs.fds.checked(fd, now, epoch);
        Ok(())
    }

    /// Drops every knote of a descriptor filter on number `fd`, silently.
    fn drop_descriptor_knotes(&self, st: &mut State, fd: RawFd) {
        let State { knotes, objs, .. } = st;
        for f in filter::DESCRIPTOR_FILTERS {
            if let Some(id) = knotes.find(fd as usize, f) {
                if let Some(filter) = filter::lookup(f) {
                    self.drop_knote(knotes, objs, id, &filter);
                }
            }
        }
    }

    /// The kernel's `knote_fdclose` for this kqueue: number `fd` is being closed.
    pub(crate) fn fd_closed(&self, fd: RawFd) {
        let mut st = self.lock();
        if st.closed {
            return; // its knotes are gone already
        }
        self.drop_descriptor_knotes(&mut st, fd);
        self.sync_pending(&mut st);
        self.publish(&st);
    }

    /// [`Inner::fd_closed`] for a close done a while ago (kept while its thread was inside
    /// the library): another thread may have put a new file on the number and registered it
    /// since, so the knotes go only if the number no longer names their file.
    pub(crate) fn fd_closed_unless_reused(&self, fd: RawFd) {
        let mut st = self.lock();
        // Checked afresh, not taken from an earlier look in this epoch.
        st.objs.epoch += 1;
        let stale = match sys::io::identity(sys::borrow(fd)) {
            Err(_) => true,
            Ok(now) => filter::fd::is_stale(&mut st.objs, fd, &now),
        };
        if stale {
            self.drop_descriptor_knotes(&mut st, fd);
            self.sync_pending(&mut st);
            self.publish(&st);
        }
    }

    /// The kernel's `kqueue_scan` minus the waiting: delivers up to `max` records.
    fn collect(&self, st: &mut State, events: &mut impl EventList, max: usize) -> usize {
        let p = self.personality;
        let State { knotes, objs, .. } = st;
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
            if kn.kev.flags & EV_DROP != 0 {
                // FreeBSD: a knote its filter gave up on goes unreported.
                self.drop_knote(knotes, objs, id, &filter);
                continue;
            }
            let flags = kn.kev.flags;
            let mut cx = self.context(objs, id);
            // A oneshot that became active is delivered even if its condition went away.
            if flags & EV_ONESHOT == 0 && !filter.event(kn, 0, &mut cx) {
                kn.status &= !ACTIVE;
                continue;
            }
            let mut out = kn.kev;
            let mut shown = false;
            if flags & EV_ONESHOT == 0 || !p.oneshot_bypasses_touch() {
                let _ = filter.touch(kn, &mut out, Touch::Process, &mut cx);
                shown = cx.shown;
            }
            events.put(n, out);
            n += 1;
            if flags & EV_ONESHOT != 0 {
                self.drop_knote(knotes, objs, id, &filter);
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
            } else if shown {
                // Level-triggered, and so is its epoll registration: epoll reports the
                // descriptor again while it is ready, which queues the knote again.
                kn.status &= !ACTIVE;
            } else {
                knotes.enqueue(id); // level-triggered: back to the tail, still ACTIVE
            }
        }
        n
    }

    /// Detaches and frees knote `id`.
    fn drop_knote(&self, knotes: &mut Knotes, objs: &mut Objects, id: u32, f: &FilterRef) {
        let mut cx = self.context(objs, id);
        f.detach(knotes.get(id), &mut cx);
        knotes.remove(id);
    }

    /// Turns the descriptor edges `events` (from epoll_wait on the kqueue's epoll) into
    /// knote activations. Returns whether a knote was queued.
    fn harvest(&self, st: &mut State, events: &[epoll::Event]) -> bool {
        let State { knotes, objs, .. } = st;
        let mut queued = false;
        for e in events {
            let data = e.u64;
            if data == filter::fd::TOKEN_INOTIFY {
                let edges = objs.fds.file_edges();
                for &(id, f) in &edges {
                    queued |= self.evaluate(knotes, objs, id, f, 0);
                }
                objs.fds.recycle(edges);
            } else if let Some(id) = objs.signals.edge(data) {
                queued |= self.evaluate(knotes, objs, id, EVFILT_SIGNAL, 0);
            } else if data == filter::fd::TOKEN_FS {
                let (hint, ids) = objs.fs.edge();
                for id in ids {
                    queued |= self.evaluate(knotes, objs, id, EVFILT_FS, hint);
                }
            } else if let Some(pid) = filter::proc::pid_of_token(data) {
                if let Some(id) = objs.procs.edge(pid) {
                    queued |= self.evaluate(knotes, objs, id, EVFILT_PROC, filter::proc::EDGE);
                }
            } else if !filter::fd::is_internal(data) {
                for (id, f) in objs.fds.edge(data, e.events) {
                    queued |= self.evaluate(knotes, objs, id, f, filter::fd::edge_hint(e.events));
                }
            }
            // Otherwise `pending` or a timerfd: the caller looks at those itself.
        }
        queued
    }

    /// Runs the event check of knote `id` of filter `f` and activates it if it holds.
    /// Returns whether the knote was queued.
    fn evaluate(
        &self,
        knotes: &mut Knotes,
        objs: &mut Objects,
        id: u32,
        f: i16,
        hint: i64,
    ) -> bool {
        let Some(filter) = filter::lookup(f) else {
            return false;
        };
        self.fire(knotes, objs, id, &filter, hint).1
    }

    /// Runs the event check of knote `id` with `hint`, makes the knotes the check asked for
    /// (`Context::spawn`) and activates what fired. Returns whether the check said the
    /// knote fired, and whether a knote was queued.
    fn fire(
        &self,
        knotes: &mut Knotes,
        objs: &mut Objects,
        id: u32,
        filter: &FilterRef,
        hint: i64,
    ) -> (bool, bool) {
        let mut cx = self.context(objs, id);
        let mut fired = filter.event(knotes.get(id), hint, &mut cx);
        let said = fired;
        let quiet = cx.quiet;
        let mut queued = false;
        if !cx.spawns.is_empty() {
            let (spawns, on_error) = (std::mem::take(&mut cx.spawns), cx.spawn_error);
            let (q, failed) = self.spawn(knotes, objs, spawns);
            queued |= q;
            if failed && on_error != 0 {
                knotes.get(id).kev.fflags |= on_error;
                fired = true;
            }
        }
        queued |= fired && knotes.activate(id) && !quiet;
        (said, queued)
    }

    /// Makes the knotes a filter asked for (see [`filter::Spawn`]), in order. Returns
    /// whether one was queued, and whether one could not be made.
    fn spawn(
        &self,
        knotes: &mut Knotes,
        objs: &mut Objects,
        spawns: Vec<filter::Spawn>,
    ) -> (bool, bool) {
        let (mut queued, mut failed) = (false, false);
        for s in spawns {
            let image = Kevent {
                flags: self.personality.stored_flags(s.kev.flags),
                ..s.kev
            };
            if s.record {
                match knotes.insert_unindexed(image) {
                    Ok(id) => {
                        let kn = knotes.get(id);
                        kn.sfflags = s.sfflags;
                        kn.sdata = s.sdata;
                        queued |= knotes.activate(id);
                    }
                    Err(_) => failed = true,
                }
                continue;
            }
            // The key is watched already (the program registered it first): keep that.
            if knotes.find(image.ident, image.filter).is_some() {
                continue;
            }
            let Some(filter) = filter::lookup(image.filter) else {
                failed = true;
                continue;
            };
            let Ok(id) = knotes.insert(image) else {
                failed = true;
                continue;
            };
            let kn = knotes.get(id);
            kn.sfflags = s.sfflags;
            kn.sdata = s.sdata;
            let mut cx = self.context(objs, id);
            if filter.attach(kn, &mut cx).is_err() {
                knotes.remove(id);
                failed = true;
                continue;
            }
            if filter.event(knotes.get(id), 0, &mut cx) {
                queued |= knotes.activate(id);
            }
        }
        (queued, failed)
    }

    /// Collects the descriptor edges that are waiting, without blocking.
    fn harvest_now(&self, st: &mut State) -> bool {
        st.objs.fds.inotify.close_if_idle();
        let mut queued = false;
        if st.objs.polled() == 0 {
            return false;
        }
        st.objs.fds.begin_look(false);
        if st.objs.only_inotify() {
            // The inotify instance is the only registration with edges: read it directly,
            // one system call where epoll_wait and then the read would be two.
            let State { knotes, objs, .. } = st;
            let edges = objs.fds.file_edges();
            for &(id, f) in &edges {
                queued |= self.evaluate(knotes, objs, id, f, 0);
            }
            objs.fds.recycle(edges);
            return queued;
        }
        let mut buf = [const { std::mem::MaybeUninit::uninit() }; HARVEST];
        loop {
            let edges =
                epoll::wait_uninit(self.epoll.as_fd(), &mut buf, Some(Duration::ZERO), None)
                    .unwrap_or_default();
            queued |= self.harvest(st, edges);
            if edges.len() < HARVEST {
                return queued;
            }
        }
    }

    /// Publishes the pending count (for kqueues watching this one) before the lock is
    /// released.
    fn publish(&self, st: &State) {
        self.pending_count
            .store(pending_count(st), Ordering::Relaxed);
    }

    /// Keeps `pending` holding a count exactly while knotes are queued (where someone may
    /// look: an exposed descriptor, or a sleeping thread).
    fn sync_pending(&self, st: &mut State) {
        if st.closed {
            // Readable for good: a sleeper woken by the close may not have looked yet, and
            // must not find it drained and sleep on (nor a poller exposed after it).
            if !st.readable {
                sys::eventfd_add(self.pending.as_fd());
                st.readable = true;
            }
            return;
        }
        let queued = st.knotes.queued > 0;
        if queued && !st.readable && (st.sleepers > 0 || self.exposed.load(Ordering::Relaxed)) {
            sys::eventfd_add(self.pending.as_fd());
            st.readable = true;
        } else if !queued && st.readable {
            sys::eventfd_drain(self.pending.as_fd());
            st.readable = false;
        }
    }

    /// After knotes were newly queued, under the lock: wake sleepers, give the descriptor's
    /// watchers a new edge, and say whether watching kqueues must be told once the lock is
    /// released ([`Inner::notify_watchers`]).
    ///
    /// `edge`: the activations came from a change or a trigger, which Linux has not shown
    /// anyone yet, so the descriptor's watchers need an edge now. Activations taken in from
    /// descriptor edges or timerfds were already seen through the epoll; the caller then
    /// only keeps `pending` in step with the queue ([`Inner::sync_pending`]).
    #[must_use]
    fn signal(&self, st: &mut State, edge: bool) -> bool {
        // Store the count, then look for watchers; a new watcher stores `watched`, then reads
        // the count (`add_watcher`, then the filter's event check). Sequentially consistent
        // on both sides, so at least one of the two sees the other: a watcher added while
        // this kqueue activates is either told or finds the count itself.
        // The activation count is written only under the lock: a plain increment, made
        // visible with the count by the sequentially consistent store that follows.
        let a = self.activations.load(Ordering::Relaxed);
        self.activations.store(a.wrapping_add(1), Ordering::Relaxed);
        self.pending_count
            .store(pending_count(st), Ordering::SeqCst);
        if !edge {
            // The caller syncs `pending` once it is done, but a thread asleep must be woken.
            if st.sleepers > 0 {
                self.sync_pending(st);
            }
        } else if self.exposed.load(Ordering::Relaxed) && st.readable {
            // Already readable: a new write still wakes edge-triggered watchers.
            sys::eventfd_add(self.pending.as_fd());
        } else {
            self.sync_pending(st);
        }
        self.watched.load(Ordering::SeqCst)
    }

    /// Tells the kqueues watching this one (EVFILT_READ on its descriptor) that it has new
    /// events, and the kqueues watching those, and so on, with a work list rather than
    /// recursion so that a long chain of nested kqueues cannot exhaust the stack.
    fn notify_watchers(&self) {
        let mut work = self.watcher_list();
        while let Some((outer, ident)) = work.pop() {
            if let Some(outer) = outer.upgrade() {
                if outer
                    .post_inner(ident, EVFILT_READ, 0)
                    .is_ok_and(|(_, notify)| notify)
                {
                    work.extend(outer.watcher_list());
                }
            }
        }
    }

    fn watcher_list(&self) -> Vec<(Weak<Inner>, usize)> {
        if !self.watched.load(Ordering::SeqCst) {
            return Vec::new();
        }
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
        self.pending_count.load(Ordering::SeqCst)
    }

    /// The number of queued knotes after taking in the descriptor edges and timer
    /// expirations that nobody collected yet (for a kqueue watching this one). If another
    /// thread holds the lock, it is doing that itself: the published count is returned.
    pub(crate) fn refresh(&self) -> usize {
        if let Ok(mut st) = self.state.try_lock() {
            if st.closed {
                return 0; // a closed kqueue has no events (`pending` says so too)
            }
            if self.gen == process::fork_gen() {
                st.objs.epoch += 1;
                let mut news = self.harvest_now(&mut st);
                news |= self.queue_due_timers(&mut st);
                // Watchers are not told here (the caller is one, holding its own lock);
                // `pending` being written gives the others an edge through epoll.
                let _ = news && self.signal(&mut st, false);
                self.sync_pending(&mut st);
                self.sync_timerfd(&mut st);
                self.publish(&st);
            }
        }
        self.pending()
    }

    /// How many times knotes were newly queued (a kqueue watching this one reports an
    /// edge only for a new activation).
    pub(crate) fn activations(&self) -> u64 {
        self.activations.load(Ordering::SeqCst)
    }

    /// The descriptor may be polled from now on: keep `pending` exact.
    pub(crate) fn expose(&self) {
        if !self.exposed.swap(true, Ordering::Relaxed) {
            let mut st = self.lock();
            self.sync_pending(&mut st);
        }
    }

    /// The kqueue's timerfd of `clock`, made and handed to the background thread on first
    /// use.
    fn timerfd(&self, clock: Clock) -> Result<BorrowedFd<'_>, Errno> {
        let slot = &self.timerfds[clock as usize];
        if let Some(fd) = slot.get() {
            return Ok(fd.as_fd());
        }
        let fd = LibraryFd::new(process::make_fd(Some(self.epoll.as_raw_fd()), || {
            timerfd::create(clock)
        })?);
        let kept = epoll::add(
            self.epoll.as_fd(),
            fd.as_fd(),
            TAG_TIMER + clock as u64,
            epoll::IN | epoll::ET,
        )
        .and_then(|()| process::watch_timerfd(fd.as_fd(), self.id));
        // Dropped (unmarked and closed) on an error.
        kept?;
        Ok(slot.get_or_init(|| fd).as_fd())
    }

    /// Counts due timer expirations and re-checks EVFILT_EMPTY knotes if that is due.
    /// Returns whether a knote was queued. The timerfds are not re-armed: a timerfd that
    /// fired keeps the descriptor readable until the caller has written `pending`
    /// ([`Inner::sync_pending`]) and then calls [`Inner::sync_timerfd`], so that the
    /// descriptor of a kqueue with a timer event pending never looks idle in between (to a
    /// poll() or an epoll of another thread).
    fn queue_due_timers(&self, st: &mut State) -> bool {
        let polling = st.objs.empty.deadline().is_some();
        if st.objs.timers.is_empty() && !polling {
            return false;
        }
        let mut queued = false;
        if !st.objs.timers.is_empty() {
            queued = st.objs.timers.expire(&mut st.knotes);
        }
        if polling {
            let State { knotes, objs, .. } = st;
            for id in objs.empty.due(knotes) {
                queued |= self.evaluate(knotes, objs, id, EVFILT_EMPTY, 0);
            }
        }
        queued
    }

    /// Arms each timerfd for the earliest deadline on its clock, if that changed (which also
    /// resets a timerfd that fired, so that it no longer makes the descriptor readable).
    fn sync_timerfd(&self, st: &mut State) {
        if st.armed == [0, 0] && st.objs.timers.is_empty() && st.objs.empty.deadline().is_none() {
            return; // nothing armed, nothing to arm
        }
        for clock in [Clock::Monotonic, Clock::Realtime] {
            let mut next = st.objs.timers.next_deadline(clock).unwrap_or(0);
            if let (Clock::Monotonic, Some(look)) = (clock, st.objs.empty.deadline()) {
                next = if next == 0 { look } else { next.min(look) };
            }
            if next != st.armed[clock as usize] {
                if let Some(fd) = self.timerfds[clock as usize].get() {
                    if timerfd::arm(fd.as_fd(), next).is_ok() {
                        st.armed[clock as usize] = next;
                    }
                }
            }
        }
    }

    /// The background thread's entry: run due timers of this kqueue.
    pub(crate) fn run_timers(&self) {
        let mut st = self.lock();
        if st.closed || self.gen != process::fork_gen() {
            return;
        }
        st.objs.epoch += 1;
        let notify = self.queue_due_timers(&mut st) && self.signal(&mut st, false);
        self.sync_pending(&mut st);
        self.sync_timerfd(&mut st);
        self.publish(&st);
        drop(st);
        if notify {
            self.notify_watchers();
        }
    }

    /// Marks the kqueue closed, wakes its sleepers (they return EBADF) and detaches its
    /// knotes, as the kernel's close of a kqueue does: their descriptors (process
    /// descriptors, timerfds, watches) go now, not when the last thread that happens to
    /// hold the kqueue for a moment (the process monitor posting an event, a watching
    /// kqueue) lets go of it.
    ///
    /// A thread that holds a lock of the library (a filter hook, a change or event list of
    /// a call in progress, the library's own work under a lock) must not wait for this
    /// kqueue's lock (it may be the one it holds, or come against the lock order): unless
    /// the lock is free at once, the close is made as soon as the thread has let go of its
    /// locks (`process::defer_close`).
    pub(crate) fn mark_closed(&self) {
        if self.gen != process::fork_gen() {
            return; // the parent's kqueue: not to be touched
        }
        let held = process::LockCount::get();
        let mut st = if held.any() {
            match self.try_lock_held(held) {
                Some(st) => st,
                None => {
                    if let Some(me) = self.me.upgrade() {
                        if process::defer_close(held, &me, false) {
                            return;
                        }
                    }
                    self.lock_held(held)
                }
            }
        } else {
            self.lock_held(held)
        };
        if st.closed && !st.poisoned {
            return; // closed already
        }
        st.closed = true;
        // Level-triggered: every sleeper wakes, sees `closed` and returns; it stays so (see
        // `sync_pending`). Where nobody can be waiting on the epoll (no thread asleep in
        // it, the descriptor never handed out or parked on), a thread that comes later sees
        // `closed` under the lock first: the write is saved.
        if st.sleepers > 0 || self.exposed.load(Ordering::Relaxed) {
            sys::eventfd_add(self.pending.as_fd());
            st.readable = true;
        }
        self.detach_all(&mut st);
        // Kqueues watching this one find nothing pending here any more.
        self.pending_count.store(0, Ordering::SeqCst);
    }

    /// Detaches and frees every knote. The epoll goes away with the kqueue (nobody waits
    /// on it any more): descriptors are not taken out of it.
    fn detach_all(&self, st: &mut State) {
        st.objs.fds.closing = true;
        let ids: Vec<u32> = st.knotes.ids().collect();
        let poisoned = st.poisoned;
        for id in ids {
            if let Some(f) = filter::lookup(st.knotes.get(id).kev.filter) {
                if poisoned {
                    // Knotes in any state: a hook may panic again, which must not stop
                    // the others from being detached (nor escape a destructor).
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.drop_knote(&mut st.knotes, &mut st.objs, id, &f)
                    }));
                } else {
                    self.drop_knote(&mut st.knotes, &mut st.objs, id, &f);
                }
            }
        }
        // An inotify instance kept idle for reuse goes too.
        st.objs.fds.inotify.close();
    }

    /// `kevent()`.
    pub(crate) fn kevent(
        &self,
        changes: impl ChangeList,
        events: impl EventList,
        timeout: Option<Timespec>,
    ) -> Result<usize, Errno> {
        self.kevent_with(changes, events, timeout, &mut Park::new(), true)
    }

    /// `kevent()`, sleeping itself (`sleep`) or returning where it would sleep, parked in
    /// `park` (see [`Park`]).
    fn kevent_with(
        &self,
        mut changes: impl ChangeList,
        mut events: impl EventList,
        timeout: Option<Timespec>,
        park: &mut Park,
        sleep: bool,
    ) -> Result<usize, Errno> {
        if self.gen != process::fork_gen() {
            return Err(Errno::BADF);
        }
        let held = process::LockCount::get();
        if held.any() {
            return Err(Errno(libc::EDEADLK));
        }
        let nevents = events.len();
        let timeout = match timeout {
            None => Ok(None),
            Some(t) if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) => {
                Err(Errno::INVAL)
            }
            // Both checked non-negative just above, and tv_nsec below 10^9.
            Some(t) => Ok(Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32))),
        };
        let mut nerrors = 0;
        // The lock, still held from the changes, and whether knotes they queued are still
        // to be signalled (see below).
        let mut kept = None;
        if !changes.is_empty() {
            let mut st = self.lock_held(held);
            if st.closed {
                return Err(Errno::BADF);
            }
            st.objs.epoch += 1;
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
                // changes are not applied.
                if nerrors == nevents {
                    stop = Some(r.map(|_| 0));
                    break;
                }
                kev.flags = EV_ERROR;
                kev.data = r.err().map_or(0, |e| e.0 as isize);
                events.put(nerrors, kev);
                nerrors += 1;
            }
            st.objs.fds.inotify.close_if_idle();
            // A registration just added may be ready at once without an event behind it
            // (EVFILT_FS's table; a signal's eventfd already readable, EVFILT_SIGNAL): its
            // edge is taken in now, so the descriptor is readable only for events.
            let added = st.objs.signals.take_added();
            if std::mem::take(&mut st.objs.harvest_due) | added {
                queued |= self.harvest_now(&mut st);
            }
            self.sync_timerfd(&mut st);
            if stop.is_none() && nerrors == 0 && nevents > 0 && timeout.is_ok() {
                // The scan follows: it runs under this same hold, so that what the changes
                // queued and the scan collects was pending only while the lock was held,
                // where no one could see it, and needs no wakeup of anyone (no write and
                // read of `pending` for a trigger collected by the same call). What is
                // still queued after the collection is signalled then.
                kept = Some((st, queued));
            } else {
                let notify = queued && self.signal(&mut st, true);
                // A deletion may have taken the last queued knote.
                self.sync_pending(&mut st);
                self.publish(&st);
                drop(st);
                if notify {
                    self.notify_watchers();
                }
                if let Some(r) = stop {
                    return r;
                }
            }
        }
        // A report suppresses the scan.
        if nerrors > 0 || nevents == 0 {
            return Ok(nerrors);
        }
        let timeout = timeout?;
        park.deadline = match timeout {
            Some(Duration::ZERO) => None,
            Some(t) => Some(Instant::now().checked_add(t)),
            None => Some(None),
        };
        let start = match kept {
            Some((st, queued)) => ScanLock::Held(st, queued),
            None => ScanLock::Take(held),
        };
        self.scan(&mut events, nevents, park, None, sleep, start)
    }

    /// Goes on with a call parked in `park` after its caller's wait gave `woken`.
    fn resume(
        &self,
        mut events: impl EventList,
        park: &mut Park,
        woken: Result<usize, Errno>,
    ) -> Result<usize, Errno> {
        if !park.waiting {
            return Err(Errno::INVAL);
        }
        park.waiting = false;
        // Signals stay blocked from the parking until the call returns, as when it sleeps
        // itself: this restores the program's mask on every way out.
        let signals = SignalsBlocked::adopt(park.mask);
        park.woken = park.interrupted(woken)?.min(HARVEST);
        if self.gen != process::fork_gen() {
            return Err(Errno::BADF);
        }
        let max = events.len();
        self.scan(
            &mut events,
            max,
            park,
            Some(signals),
            false,
            ScanLock::Take(process::LockCount::get()),
        )
    }

    /// The waiting part of `kqueue_scan`. `park` holds the state kept across sleeps (the
    /// deadline, the edges the last wait returned); with `sleep` false the scan returns
    /// where it would sleep, leaving the wait to the caller (see [`Park`]). `signals`: the
    /// signals a parked call left blocked.
    fn scan(
        &self,
        events: &mut impl EventList,
        max: usize,
        park: &mut Park,
        mut signals: Option<SignalsBlocked>,
        sleep: bool,
        start: ScanLock<'_>,
    ) -> Result<usize, Errno> {
        let (held, mut st, mut unsignalled) = match start {
            ScanLock::Held(st, queued) => (st.held, st, queued),
            ScanLock::Take(held) => (held, self.lock_held(held), false),
        };
        loop {
            if st.closed {
                return Err(Errno::BADF);
            }
            st.objs.epoch += 1;
            let woken = std::mem::take(&mut park.woken);
            if woken > 0 {
                st.objs.fds.begin_look(true);
            }
            let mut news = self.harvest(&mut st, park.edges.first(woken));
            // A wait that returned fewer edges than it had room for took every one there
            // was; otherwise look again. (Before the first wait the look is worth its system
            // call even when a wait follows: an event often arrived meanwhile, and the look
            // then saves the wait and the signal mask changes around it.)
            if woken == 0 || woken == HARVEST {
                news |= self.harvest_now(&mut st);
            }
            news |= self.queue_due_timers(&mut st);
            let mut notify = news && self.signal(&mut st, false);
            let n = self.collect(&mut st, events, max);
            // Knotes the changes queued and this collection left pending (queued, or
            // delivered level knotes epoll shows): signalled now, as the changes would have
            // (an edge for the descriptor's watchers, a new activation for watching kqueues).
            if std::mem::take(&mut unsignalled) && pending_count(&st) > 0 {
                notify |= self.signal(&mut st, true);
            }
            self.sync_pending(&mut st);
            // A delivery may have scheduled a re-check (EVFILT_EMPTY); a timerfd that fired
            // is reset only now that `pending` shows what stays queued.
            self.sync_timerfd(&mut st);
            self.publish(&st);
            if notify {
                drop(st);
                self.notify_watchers();
                st = self.lock_held(held);
            }
            if n > 0 {
                return Ok(n);
            }
            // The wait was interrupted by signals the library took care of alone (a
            // watched signal the program ignores): that is no EINTR for the program if it
            // brought an event, but with nothing to return the call must not sleep on
            // (another signal may have interrupted the wait too).
            if std::mem::take(&mut park.absorbed) {
                return Err(Errno::INTR);
            }
            let remaining = match park.deadline {
                // Wait forever.
                Some(None) => None,
                Some(Some(d)) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => return Ok(0),
                },
                None => return Ok(0),
            };
            // From here until the call returns, signals stay blocked: one that arrives before
            // the sleep is then delivered by it, as EINTR, instead of being lost.
            let blocked = match signals.take() {
                Some(blocked) => blocked,
                None => SignalsBlocked::new(),
            };
            if !park.spun && st.objs.polled() == 0 {
                // Before sleeping, spin for a few microseconds (the policy is in
                // `wait.rs`): once per call, and only for kqueues without descriptors, whose
                // events arrive through epoll, which the spin does not watch.
                park.spun = true;
                signals = Some(blocked);
                drop(st);
                self.spin.spin(remaining, || self.pending() > 0);
                // Look again whether or not it spun: the lock was released meanwhile, and a
                // trigger then saw no sleeper to wake.
                st = self.lock_held(held);
                continue;
            }
            // An ignored signal (a child's SIGCHLD) that came while signals were blocked
            // must not end the wait.
            blocked.discard_ignored();
            if !sleep {
                // Parked: the caller sleeps on the epoll, with the program's mask, then
                // resumes. It is no sleeper of ours: a parking kqueue is exposed (see
                // `KqueueRef::kevent_park`), so `pending` wakes it like any poller.
                drop(st);
                park.wait_mask = blocked.sleep_mask(filter::proc::watching());
                park.mask = blocked.keep();
                park.epfd = self.epoll.as_raw_fd();
                park.precise = epoll::use_pwait2();
                park.intr_mark = crate::signal::absorbed();
                park.handled_mark = crate::signal::handled();
                park.waiting = true;
                return Ok(0);
            }
            st.sleepers += 1;
            drop(st);
            let mask = blocked.sleep_mask(filter::proc::watching());
            park.intr_mark = crate::signal::absorbed();
            park.handled_mark = crate::signal::handled();
            park.wait_mask = mask;
            let r = epoll::wait(
                self.epoll.as_fd(),
                park.edges.buffer(),
                remaining,
                Some(&mask),
            );
            signals = Some(blocked);
            st = self.lock_held(held);
            st.sleepers -= 1;
            park.woken = park.interrupted(r)?;
        }
    }

    /// Posts an event to knote (ident, filter): the kernel's `knote()` for one knote.
    /// Returns whether the filter said it fired, and whether the knote was newly queued in
    /// a kqueue that has watchers to tell.
    fn post_inner(&self, ident: usize, filter_id: i16, hint: i64) -> Result<(bool, bool), Errno> {
        if self.gen != process::fork_gen() {
            return Err(Errno::BADF);
        }
        let filter = filter::lookup(filter_id).ok_or(Errno::INVAL)?;
        let mut st = self.lock();
        if st.closed {
            return Err(Errno::BADF);
        }
        let id = st.knotes.find(ident, filter_id).ok_or(Errno::NOENT)?;
        let State { knotes, objs, .. } = &mut *st;
        let (fired, queued) = self.fire(knotes, objs, id, &filter, hint);
        let notify = queued && self.signal(&mut st, true);
        self.publish(&st);
        Ok((fired, notify))
    }

    /// Posts `hint` to knote (ident, filter) and tells watching kqueues (the kernel's
    /// `knote()` for one knote, from outside any kqueue lock). Returns whether it fired.
    pub(crate) fn post(&self, ident: usize, filter_id: i16, hint: i64) -> Result<bool, Errno> {
        if reentered() {
            return Err(Errno(libc::EDEADLK));
        }
        let (fired, notify) = self.post_inner(ident, filter_id, hint)?;
        if notify {
            self.notify_watchers();
        }
        Ok(fired)
    }
}

/// The pending count a watching kqueue sees: the queued knotes, and the level-triggered
/// knotes delivered since the epoll was last looked at, which are still pending (as a
/// level knote stays queued after its delivery) unless that look finds them not ready.
fn pending_count(st: &State) -> usize {
    st.knotes.queued + st.objs.fds.shown()
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
        if self.gen != process::fork_gen() {
            return; // the parent's kqueue: its resources are the parent's business
        }
        let mut guard = self.lock();
        self.detach_all(&mut guard);
        drop(guard);
        process::unregister(self.id);
        // The descriptors are unmarked and closed as they are dropped (`LibraryFd`).
    }
}

/// Makes a new kqueue's Linux objects.
fn new_inner(personality: Personality) -> Result<Arc<Inner>, Errno> {
    let (epoll, pending) = process::with_fds(|| {
        let ep = epoll::create()?;
        let pending = sys::eventfd()?;
        Ok((ep, pending))
    })?;
    let id = process::new_id();
    epoll::add(
        epoll.as_fd(),
        pending.as_fd(),
        TAG_PENDING | (id << 32),
        epoll::IN,
    )?;
    for fd in [epoll.as_raw_fd(), pending.as_raw_fd()] {
        process::number_taken(fd);
        process::mark_kqueue_fd(fd, epoll.as_raw_fd());
    }
    let fds = Descriptors::default();
    Ok(Arc::new_cyclic(|me| Inner {
        me: me.clone(),
        id,
        pending_count: AtomicUsize::new(0),
        activations: AtomicU64::new(0),
        watchers: Mutex::new(Vec::new()),
        watched: AtomicBool::new(false),
        exposed: AtomicBool::new(false),
        state: Mutex::new(State {
            knotes: Knotes::new(),
            objs: Objects {
                timers: Timers::default(),
                fds,
                empty: Default::default(),
                signals: Default::default(),
                procs: Default::default(),
                epoll: epoll.as_raw_fd(),
                epoch: 0,
                kq: id,
                fs: filter::Mounts::new(),
                harvest_due: false,
            },
            sleepers: 0,
            readable: false,
            closed: false,
            poisoned: false,
            armed: [0; 2],
        }),
        personality,
        gen: process::fork_gen(),
        epoll: LibraryFd::new(epoll),
        pending: LibraryFd::new(pending),
        timerfds: [OnceLock::new(), OnceLock::new()],
        spin: Spin::new(),
    }))
}

/// A kernel event queue: `kqueue()`.
///
/// All of `kevent()` is [`Kqueue::kevent`]; the typed layer ([`crate::Change`],
/// [`Kqueue::apply`], [`Kqueue::wait`], [`crate::Waker`], ...) builds its records. Any
/// number of threads may use one `Kqueue` at once.
///
/// The descriptor ([`AsFd`]) is readable by poll(2), select(2) and epoll exactly while an
/// event is pending, so a `Kqueue` can sit in another event loop (level- or
/// edge-triggered). Until the descriptor is first asked for, the kqueue skips the system
/// calls that keep its readability exact.
///
/// Dropping the `Kqueue` closes the kqueue at once, as close() of its descriptor would:
/// its knotes are detached and their descriptors closed, and a thread still using it (a
/// [`KqueueRef`], a [`crate::Waker`]) gets EBADF. Copies of its descriptor do not keep it
/// alive; a kqueue that lives as long as any copy of its descriptor is one handed over
/// with [`Kqueue::try_into_fd`]. Dropped from a filter hook, or from a [`ChangeList`] or
/// [`EventList`] of a call in progress on it, it is closed as soon as that call lets go of
/// its lock.
///
/// A panic in a filter hook, or in a [`ChangeList`] or [`EventList`] implementation, while
/// the kqueue is working poisons it: every later call fails with EBADF, as for a closed
/// kqueue, rather than work on half-changed state.
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
    /// Closes the kqueue when its owner goes (`None` in a [`KqueueRef`]). Dropped before
    /// `inner`.
    closer: Option<Closer>,
    inner: Arc<Inner>,
}

/// Part of the [`Kqueue`] that owns its kqueue: dropping it closes the kqueue then and
/// there (knotes detached, sleepers woken with EBADF, out of the registry so that nothing
/// finds it by number or id and a fork's child does not keep its descriptors), as close()
/// of a kqueue descriptor does, even if another thread holds the kqueue for a moment (a
/// `Waker` waking it, the process monitor posting to it, a kqueue watching it): that
/// thread's reference then frees only what is left (the kqueue's own descriptors). From a
/// filter hook or a change or event list, where the thread holds a kqueue's lock, the
/// close is made once the lock is released.
struct Closer(Weak<Inner>);

impl Drop for Closer {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            // Even if nobody else holds the kqueue now: a `Waker`, the process monitor or a
            // watching kqueue may take it up (from a weak reference) before the owner's
            // reference goes, and would then be the one to free it, later.
            process::close_owned(&inner);
        }
    }
}

/// Settings of a new [`Kqueue`], from [`Kqueue::builder`].
///
/// # Examples
///
/// ```
/// use kq::{Kqueue, Personality};
/// use std::time::Duration;
///
/// let kq = Kqueue::builder()
///     .personality(Personality::FreeBsd)
///     .spin_limit(Duration::ZERO) // never spin before sleeping
///     .build()?;
/// assert_eq!(kq.personality(), Personality::FreeBsd);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct KqueueBuilder {
    personality: Personality,
    spin_limit: Option<Duration>,
}

impl KqueueBuilder {
    /// The kernel whose semantics the kqueue follows where NetBSD and FreeBSD differ
    /// (default: NetBSD).
    pub fn personality(mut self, personality: Personality) -> KqueueBuilder {
        self.personality = personality;
        self
    }

    /// The waiting policy: see [`Kqueue::set_spin_limit`].
    pub fn spin_limit(mut self, limit: Duration) -> KqueueBuilder {
        self.spin_limit = Some(limit);
        self
    }

    /// Makes the kqueue.
    ///
    /// # Errors
    ///
    /// EMFILE or ENFILE when out of descriptors (a kqueue takes two); ENOMEM.
    pub fn build(&self) -> io::Result<Kqueue> {
        let kq = Kqueue::with_personality(self.personality)?;
        if let Some(limit) = self.spin_limit {
            kq.set_spin_limit(limit);
        }
        Ok(kq)
    }
}

impl Kqueue {
    /// A new, empty kqueue with the NetBSD personality.
    ///
    /// # Errors
    ///
    /// EMFILE or ENFILE when out of descriptors (a kqueue takes two); ENOMEM.
    ///
    /// ```
    /// let kq = kq::Kqueue::new()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<Kqueue> {
        Kqueue::with_personality(Personality::NetBsd)
    }

    /// A new, empty kqueue with the given personality.
    ///
    /// # Errors
    ///
    /// As [`Kqueue::new`].
    ///
    /// ```
    /// let kq = kq::Kqueue::with_personality(kq::Personality::FreeBsd)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_personality(personality: Personality) -> io::Result<Kqueue> {
        let inner = process::creating(|| {
            let inner = new_inner(personality)?;
            process::register_owned(&inner, inner.epoll.as_raw_fd());
            Ok::<_, Errno>(inner)
        })?;
        Ok(Kqueue {
            closer: Some(Closer(Arc::downgrade(&inner))),
            inner,
        })
    }

    /// Settings for a new kqueue: personality and waiting policy.
    ///
    /// ```
    /// let kq = kq::Kqueue::builder().build()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn builder() -> KqueueBuilder {
        KqueueBuilder::default()
    }

    /// A new kqueue handed out as a raw descriptor, as C's `kqueue()` returns it: it lives
    /// until every copy of the descriptor is closed ([`crate::fdclose`] tells it so at once;
    /// otherwise the library notices within a fraction of a second), and [`Kqueue::find`]
    /// finds it.
    #[doc(hidden)]
    pub fn new_raw_fd(personality: Personality) -> io::Result<RawFd> {
        Ok(process::creating(|| {
            let inner = new_inner(personality)?;
            Self::release(inner).map(IntoRawFd::into_raw_fd)
        })?)
    }

    /// Hands a copy of the epoll to the program (the library keeps its own, so that a call
    /// never touches the program's number after it found the kqueue).
    fn release(inner: Arc<Inner>) -> Result<OwnedFd, Errno> {
        inner.exposed.store(true, Ordering::Relaxed);
        let fd = process::with_fds(|| sys::dup_cloexec(inner.epoll.as_fd()))?;
        process::release(inner, fd.as_raw_fd());
        Ok(fd)
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// The personality of this kqueue.
    ///
    /// ```
    /// let kq = kq::Kqueue::new()?;
    /// assert_eq!(kq.personality(), kq::Personality::NetBsd);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn personality(&self) -> Personality {
        self.inner.personality
    }

    /// How long a `kevent()` that would sleep first spins, waiting for an event from
    /// another thread (never longer than its timeout; 20 µs by default, or the
    /// `KQUEUE_SPIN_US` environment variable; zero turns spinning off). The spin pays off
    /// when another thread triggers events at a high rate; it is skipped automatically
    /// while it does not, and only one thread spins per kqueue.
    ///
    /// ```
    /// let kq = kq::Kqueue::new()?;
    /// kq.set_spin_limit(std::time::Duration::from_micros(5));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_spin_limit(&self, limit: Duration) {
        self.inner.spin.set_limit(limit);
    }

    /// `kevent()`: applies `changes` in order, then, unless a change produced a report,
    /// collects up to `events.len()` events, waiting up to `timeout` (`None`: forever).
    ///
    /// Returns the number of entries written to `events`: EV_ERROR reports (a failed change,
    /// or any EV_RECEIPT change) if there were any, else events. A report with no slot left
    /// ends the call: the change's error is returned (or `Ok(0)` for a receipt) and the
    /// later changes are not applied. A signal while waiting gives EINTR.
    ///
    /// # Errors
    ///
    /// The error of a change that failed with no slot left for its report; EINTR if a
    /// signal arrived while waiting; EBADF if the kqueue was closed or poisoned, or its
    /// process forked since; EDEADLK if called from a filter hook or from a change or event
    /// list of a call in progress on this thread, or from a signal handler that interrupted
    /// this thread inside the library.
    pub fn kevent(
        &self,
        changes: &[Kevent],
        events: &mut [Kevent],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        // A timeout past time_t's range (68 years where it has 32 bits) waits the longest
        // time it can say.
        let ts = timeout.map(|t| Timespec {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: t.subsec_nanos() as libc::c_long, // below 10^9: fits in 32 bits
        });
        Ok(self.inner.kevent(changes, events, ts)?)
    }

    /// `kevent()` with the system call's own arguments: any [`ChangeList`] and
    /// [`EventList`], and a timeout not yet validated. Their implementations run with the
    /// kqueue locked and must not call back into a kqueue (see [`ChangeList`]).
    ///
    /// # Errors
    ///
    /// As [`Kqueue::kevent`], and EINVAL for an invalid timeout (only when there are event
    /// slots, and only after the changes were applied).
    ///
    /// ```
    /// use kq::{Change, Kevent, Kqueue, Timespec};
    ///
    /// let kq = Kqueue::new()?;
    /// let mut out = [Kevent::default(); 2];
    /// let changes = [Change::user(1).add().kevent()];
    /// let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
    /// assert_eq!(kq.kevent_raw(&changes, &mut out, Some(zero))?, 0);
    /// let bad = Timespec { tv_sec: 0, tv_nsec: -1 };
    /// let e = kq.kevent_raw(&[][..], &mut out, Some(bad)).unwrap_err();
    /// assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn kevent_raw(
        &self,
        changes: impl ChangeList,
        events: impl EventList,
        timeout: Option<Timespec>,
    ) -> io::Result<usize> {
        Ok(self.inner.kevent(changes, events, timeout)?)
    }

    /// Gives the kqueue descriptor to the caller, as C's `kqueue()` does: the kqueue lives
    /// until every copy of the descriptor is closed, and [`Kqueue::find`] finds it again.
    /// `OwnedFd::from(kq)` and [`IntoRawFd`] do the same but cannot fail, and so panic
    /// where this fails.
    ///
    /// # Errors
    ///
    /// EMFILE or ENFILE when out of descriptors: the program gets a copy of the library's
    /// descriptor. The kqueue is closed then.
    ///
    /// ```
    /// use kq::{Kqueue, KqueueRef};
    /// use std::os::fd::AsFd;
    ///
    /// let kq = Kqueue::new()?;
    /// kq.add_user(1)?;
    /// let fd = kq.try_into_fd()?;
    /// let found = Kqueue::find(fd.as_fd())?;
    /// found.trigger(1, 0)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn try_into_fd(self) -> io::Result<OwnedFd> {
        let Kqueue { closer, inner } = self;
        if let Some(mut c) = closer {
            c.0 = Weak::new(); // the kqueue lives on, the program's now
        }
        Ok(process::creating(|| Self::release(inner))?)
    }

    /// The kqueue behind descriptor `fd`, any copy of a kqueue descriptor of this process
    /// (one from C's `kqueue()`, or from [`Kqueue::try_into_fd`]). The result has every
    /// method of [`Kqueue`] (it dereferences to one) while `fd` is borrowed.
    ///
    /// # Errors
    ///
    /// EBADF if `fd` is not a kqueue descriptor of this process: closed, another file, or
    /// inherited across fork().
    ///
    /// ```
    /// use kq::Kqueue;
    /// use std::os::fd::AsFd;
    ///
    /// let kq = Kqueue::new()?;
    /// kq.add_user(3)?;
    /// Kqueue::find(kq.as_fd())?.trigger(3, 0)?;
    ///
    /// let file = std::fs::File::open("/dev/null")?;
    /// assert_eq!(Kqueue::find(file.as_fd()).unwrap_err().raw_os_error(), Some(libc::EBADF));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[doc(alias = "from_fd")]
    pub fn find(fd: BorrowedFd<'_>) -> io::Result<KqueueRef<'_>> {
        Ok(KqueueRef {
            kq: Kqueue {
                closer: None,
                inner: process::lookup(fd)?,
            },
            fd,
        })
    }
}

#[cfg(feature = "custom-filters")]
impl Kqueue {
    /// Posts `hint` to knote (ident, filter) of a registered filter: calls its
    /// [`Filter::event`](crate::filter::Filter::event) and activates the knote if that says
    /// so. Returns whether it fired.
    ///
    /// # Errors
    ///
    /// ENOENT if there is no such knote; EINVAL if `filter` is not a filter; EBADF if the
    /// kqueue was closed or poisoned (or its process forked since); EDEADLK from a filter
    /// hook.
    ///
    /// See [`Filter`](crate::filter::Filter) for an example.
    pub fn post(&self, ident: usize, filter: i16, hint: i64) -> io::Result<bool> {
        Ok(self.inner.post(ident, filter, hint)?)
    }
}

/// The program's copy of the kqueue descriptor: see [`Kqueue::try_into_fd`].
///
/// # Panics
///
/// When the process is out of descriptors (EMFILE, ENFILE).
///
/// ```
/// use kq::Kqueue;
/// use std::os::fd::{AsFd, OwnedFd};
///
/// let fd = OwnedFd::from(Kqueue::new()?);
/// assert!(Kqueue::find(fd.as_fd()).is_ok());
/// # Ok::<(), std::io::Error>(())
/// ```
impl From<Kqueue> for OwnedFd {
    fn from(kq: Kqueue) -> OwnedFd {
        match kq.try_into_fd() {
            Ok(fd) => fd,
            Err(e) => panic!("cannot hand out the kqueue descriptor: {e}"),
        }
    }
}

/// The program's copy of the kqueue descriptor, to be closed by it: see
/// [`Kqueue::try_into_fd`].
///
/// # Panics
///
/// When the process is out of descriptors (EMFILE, ENFILE).
///
/// ```
/// use std::os::fd::IntoRawFd;
///
/// let fd = kq::Kqueue::new()?.into_raw_fd();
/// // SAFETY: the descriptor is ours, closed once.
/// assert_eq!(unsafe { libc::close(fd) }, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
impl IntoRawFd for Kqueue {
    fn into_raw_fd(self) -> RawFd {
        OwnedFd::from(self).into_raw_fd()
    }
}

impl AsFd for Kqueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // Whoever holds the descriptor may poll it: keep its readability exact from now on.
        self.inner.expose();
        self.inner.epoll.as_fd()
    }
}

impl AsRawFd for Kqueue {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl std::fmt::Debug for Kqueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kqueue")
            .field("fd", &self.inner.epoll.as_raw_fd())
            .field("personality", &self.inner.personality)
            .finish()
    }
}

/// A kqueue found by [`Kqueue::find`], usable while the descriptor is borrowed. It
/// dereferences to a [`Kqueue`], so it has the same methods, raw and typed.
///
/// # Examples
///
/// ```
/// use kq::{Change, Events, Kqueue};
/// use std::{os::fd::{AsFd, OwnedFd}, time::Duration};
///
/// let fd = OwnedFd::from(Kqueue::new()?);
/// let kq = Kqueue::find(fd.as_fd())?;
/// kq.apply(&[Change::user(1).add()])?;
/// kq.trigger(1, 0)?;
/// let mut events = Events::with_capacity(1);
/// assert_eq!(kq.wait(&mut events, Some(Duration::ZERO))?, 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct KqueueRef<'fd> {
    kq: Kqueue,
    fd: BorrowedFd<'fd>,
}

impl std::ops::Deref for KqueueRef<'_> {
    type Target = Kqueue;
    fn deref(&self) -> &Kqueue {
        &self.kq
    }
}

impl AsFd for KqueueRef<'_> {
    /// The descriptor it was found by.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd
    }
}

impl KqueueRef<'_> {
    /// As [`Kqueue::kevent_raw`], except that where the call would sleep it returns
    /// `Ok(0)` with `park` [waiting](Park::is_waiting) instead: the caller then waits
    /// itself, as [`Park`] describes, and goes on with [`KqueueRef::kevent_resume`] (or
    /// [`Park::abandon`]). This lets a C library make the wait a thread cancellation point
    /// of its own, with no frame of the engine on the stack while it waits. The kqueue is
    /// [exposed](Kqueue::as_fd): its descriptor becomes readable whenever an event is
    /// pending, which is what wakes the caller's wait.
    pub fn kevent_park(
        &self,
        changes: impl ChangeList,
        events: impl EventList,
        timeout: Option<Timespec>,
        park: &mut Park,
    ) -> Result<usize, Errno> {
        // A load first: C kqueues are exposed from the start, and an atomic swap on every
        // call would cost more than the check.
        if !self.kq.inner.exposed.load(Ordering::Relaxed) {
            self.kq.inner.expose();
        }
        self.kq
            .inner
            .kevent_with(changes, events, timeout, park, false)
    }

    /// Goes on with a call parked by [`KqueueRef::kevent_park`] once the caller's wait
    /// returned: `woken` is the wait's result (the number of entries it wrote to
    /// [`Park::wait_buffer`], or its error: EINTR ends the call with EINTR). `events` must
    /// be the eventlist of the parked call. Returns as `kevent_park` does, parking again
    /// where the call would sleep again. EINVAL if `park` is not waiting.
    pub fn kevent_resume(
        &self,
        events: impl EventList,
        park: &mut Park,
        woken: Result<usize, Errno>,
    ) -> Result<usize, Errno> {
        self.kq.inner.resume(events, park, woken)
    }
}

/// A `kevent()` call parked by [`KqueueRef::kevent_park`] where it would sleep.
///
/// While it [is waiting](Park::is_waiting), every signal is blocked in the calling thread
/// (so that one arriving before the wait interrupts it instead of being lost), and the
/// caller is expected to make the wait the call would have made, then to resume the call:
///
/// ```text
/// epoll_pwait2(park.wait_fd(), buffer, len, park.wait_timeout(), park.wait_mask())
/// kqueue.kevent_resume(events, &mut park, result)
/// ```
///
/// (`epoll_pwait` with the timeout rounded up to whole milliseconds where
/// [`Park::wait_precise`] says so), the buffer and its length being [`Park::wait_buffer`]. The descriptor stays open while the
/// [`KqueueRef`] that parked the call lives. A caller that gives the call up instead calls
/// [`Park::abandon`], which puts the thread's signal mask back.
///
/// Plain data: no destructor, so that the frame holding it while the caller waits needs no
/// cleanup (a thread cancelled in that wait unwinds through it).
pub struct Park {
    /// Parked: the caller must wait, then resume or abandon.
    waiting: bool,
    /// When the call gives up: `None` with a zero timeout (it never sleeps), `Some(None)`
    /// with none.
    deadline: Option<Option<Instant>>,
    /// The call already yielded before sleeping once (see `SPIN`).
    spun: bool,
    /// While waiting: the thread's signal mask from before every signal was blocked.
    mask: libc::sigset_t,
    /// While waiting: the mask to wait with (see [`Park::wait_mask`]).
    wait_mask: libc::sigset_t,
    /// While waiting: the kqueue's epoll.
    epfd: RawFd,
    /// While waiting: epoll_pwait2 is to be used (else epoll_pwait).
    precise: bool,
    /// The edges the last wait returned, `woken` of them.
    edges: epoll::Edges<HARVEST>,
    woken: usize,
    /// Signals the library absorbed in this thread before the last wait (see
    /// `signal::absorbed`).
    intr_mark: u64,
    /// The last wait was interrupted, and the library absorbed a signal meanwhile.
    absorbed: bool,
    /// Signals the library passed on to program handlers in this thread before the last
    /// wait (see `signal::handled`).
    handled_mark: u64,
}

impl Park {
    /// A call not started yet.
    pub fn new() -> Park {
        Park {
            waiting: false,
            deadline: None,
            spun: false,
            mask: sys::signals::empty_set(),
            wait_mask: sys::signals::empty_set(),
            epfd: -1,
            precise: false,
            edges: epoll::Edges::new(),
            woken: 0,
            intr_mark: 0,
            absorbed: false,
            handled_mark: 0,
        }
    }

    /// Whether the call is parked, waiting for its caller to wait.
    pub fn is_waiting(&self) -> bool {
        self.waiting
    }

    /// The epoll descriptor to wait on.
    pub fn wait_fd(&self) -> RawFd {
        self.epfd
    }

    /// Where the wait writes its events, and how many it may write.
    pub fn wait_buffer(&mut self) -> (*mut libc::epoll_event, usize) {
        let buf = self.edges.buffer();
        (buf.as_mut_ptr(), buf.len())
    }

    /// Whether to wait with epoll_pwait2 (nanosecond timeout). False where the kernel is
    /// known to lack it, or `KQ_NO_EPOLL_PWAIT2` is set: then epoll_pwait, with the timeout
    /// rounded up to whole milliseconds. A caller whose epoll_pwait2 fails with ENOSYS
    /// calls [`crate::force_fallbacks`] and resumes the call as after a spurious wakeup.
    pub fn wait_precise(&self) -> bool {
        self.precise
    }

    /// How long to wait: the time left before the call's timeout (zero once it passed),
    /// `None` to wait with no timeout.
    pub fn wait_timeout(&self) -> Option<Duration> {
        match self.deadline {
            Some(Some(d)) => Some(d.saturating_duration_since(Instant::now())),
            _ => None,
        }
    }

    /// The signal mask to wait with: the program's, from before the call blocked every
    /// signal (plus SIGCHLD while the process watches processes and ignores SIGCHLD, so
    /// that a child's exit cannot end the wait with EINTR).
    pub fn wait_mask(&self) -> &libc::sigset_t {
        &self.wait_mask
    }

    /// The result of a wait, except that EINTR becomes a wakeup with no edge when the
    /// library's handler absorbed a signal in this thread meanwhile (see `scan`), or when
    /// no handler ran in this thread at all: the library's did nothing here, and no signal
    /// the wait let through has a handler of the program's (a signal sent to the process
    /// woke this wait, and another thread took it; or the process was stopped and
    /// continued). The wait then goes on, as on BSD, where such a signal interrupts only
    /// the thread that takes it.
    fn interrupted(&mut self, r: Result<usize, Errno>) -> Result<usize, Errno> {
        match r {
            Err(e) if e == Errno::INTR && crate::signal::absorbed() != self.intr_mark => {
                self.absorbed = true;
                Ok(0)
            }
            Err(e)
                if e == Errno::INTR
                    && crate::signal::handled() == self.handled_mark
                    && !crate::signal::program_handler_possible(&self.wait_mask) =>
            {
                Ok(0)
            }
            r => r,
        }
    }

    /// Gives up a waiting call: puts the thread's signal mask back. Does nothing if the
    /// call is not waiting.
    pub fn abandon(&mut self) {
        if std::mem::take(&mut self.waiting) {
            drop(SignalsBlocked::adopt(self.mask));
        }
    }
}

impl Default for Park {
    fn default() -> Park {
        Park::new()
    }
}

impl std::fmt::Debug for Park {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Park")
            .field("waiting", &self.waiting)
            .field("wait_timeout", &self.wait_timeout())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for KqueueRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KqueueRef")
            .field("fd", &self.fd.as_raw_fd())
            .field("personality", &self.kq.personality())
            .finish()
    }
}
