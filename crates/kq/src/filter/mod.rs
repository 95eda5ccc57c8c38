//! Filters: the kernel's `struct filterops` as a trait, and the filter table.
//!
//! The table holds the system filters this library implements and the filters a program
//! registers at run time with [`register_filter`] (the counterpart of kfilter_register(9)).
//! Every hook runs with the kqueue's lock held: see [`Filter`] for what a hook must not do.
//!
//! This module, [`Knote`] and [`Kqueue::post`](crate::Kqueue::post) are
//! there with the `custom-filters` feature.

mod counter;
mod empty;
pub(crate) mod fd;
mod fs;
mod inotify;
pub(crate) mod proc;
pub(crate) mod procmon;
pub(crate) mod signal;
mod timer;
mod user;
mod vnode;

pub(crate) use empty::EmptyPoll;
pub(crate) use fs::Mounts;
pub(crate) use timer::Timers;

use crate::consts::*;
use crate::kevent::{Errno, Kevent};
use crate::knote::Knote;
use crate::kqueue::Inner;
use crate::personality::Personality;
use std::io;
use std::sync::{Arc, RwLock, Weak};

/// Why [`Filter::touch`] is called: the kernel's `EVENT_REGISTER` / `EVENT_PROCESS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touch {
    /// A change (without EV_DELETE) to an existing knote: apply it to the knote. `kev` is the
    /// change; what the hook leaves in it is echoed in an EV_RECEIPT entry.
    Register,
    /// A delivery: `kev` starts as the stored image and the hook makes it the record the
    /// caller gets, and resets the knote's state as the filter's delivery rules say.
    Process,
}

/// The kernel objects a kqueue's filters keep, under the kqueue's lock.
pub(crate) struct Objects {
    pub(crate) timers: Timers,
    pub(crate) fds: fd::Descriptors,
    /// The re-checks of EVFILT_EMPTY knotes waiting for their send buffer to drain.
    pub(crate) empty: EmptyPoll,
    pub(crate) signals: signal::Signals,
    /// Processes watched by EVFILT_PROC.
    pub(crate) procs: proc::Procs,
    /// The kqueue's epoll (valid while the kqueue lives, which it does while its lock is
    /// held).
    pub(crate) epoll: std::os::fd::RawFd,
    /// Counts the kqueue's lock holds that look at objects: a descriptor's state read, or
    /// its identity checked, during the current hold need not be read again.
    pub(crate) epoch: u64,
    /// The kqueue's id.
    pub(crate) kq: u64,
    /// The mount table EVFILT_FS watches.
    pub(crate) fs: Mounts,
    /// A registration just added to the epoll may be ready at once without an event
    /// behind it: the kqueue takes the waiting edges in before the lock is released.
    pub(crate) harvest_due: bool,
}

/// What a filter hook may see and ask of the kqueue it runs in.
pub struct Context<'a> {
    pub(crate) personality: Personality,
    pub(crate) id: u32,
    pub(crate) objs: &'a mut Objects,
    pub(crate) deactivate: bool,
    /// The event check found the knote firing, but it was pending already (left off the
    /// queue because its level-triggered epoll registration shows it, see `fd`): queueing
    /// it is no new activation.
    pub(crate) quiet: bool,
    /// The delivery just made leaves the knote off the queue: its level-triggered epoll
    /// registration reports the descriptor again for as long as it is ready (see `fd`).
    pub(crate) shown: bool,
    /// The kqueue the hook runs in.
    pub(crate) kq: &'a Weak<Inner>,
    /// Knotes an event check asked for (see [`Spawn`]).
    pub(crate) spawns: Vec<Spawn>,
    /// `fflags` the knote gets if one of `spawns` cannot be made.
    pub(crate) spawn_error: u32,
}

/// A knote a filter's event check asks the engine to make in the same kqueue once the
/// check returns (NOTE_TRACK, in the kernel's `knote_proc_fork_track`): the engine inserts
/// it, attaches it (unless it is a record) and activates what fires, before it activates
/// the knote that asked.
pub(crate) struct Spawn {
    /// The stored image: ident, filter, flags (before the personality's stripping),
    /// fflags, data, udata.
    pub(crate) kev: Kevent,
    pub(crate) sfflags: u32,
    pub(crate) sdata: i64,
    /// A record to deliver once (its flags carry EV_ONESHOT): queued at once, never
    /// attached, and not in the (ident, filter) index, so that a knote with its key may
    /// exist beside it. Otherwise a knote like one made by EV_ADD, which is not made if its
    /// key exists already.
    pub(crate) record: bool,
}

impl Objects {
    /// Registrations in the kqueue's epoll that deliver edges: a `kevent()` must look at
    /// the epoll while there are any.
    pub(crate) fn polled(&self) -> usize {
        self.fds.polled() + self.signals.polled() + self.fs.polled() + self.procs.polled()
    }

    /// Whether the inotify instance is the only registration that delivers edges (it can
    /// then be read directly, without asking the epoll first).
    pub(crate) fn only_inotify(&self) -> bool {
        self.fds.only_inotify() && self.polled() == self.fds.polled()
    }
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("personality", &self.personality)
            .field("knote", &self.id)
            .finish()
    }
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        personality: Personality,
        id: u32,
        objs: &'a mut Objects,
        kq: &'a Weak<Inner>,
    ) -> Self {
        Context {
            personality,
            id,
            objs,
            deactivate: false,
            quiet: false,
            shown: false,
            kq,
            spawns: Vec::new(),
            spawn_error: 0,
        }
    }

    /// Asks for a knote to be made in this kqueue once the event check returns.
    pub(crate) fn spawn(&mut self, s: Spawn) {
        self.spawns.push(s);
    }

    /// If a knote asked for with [`Context::spawn`] cannot be made, `fflags` are OR-ed into
    /// this knote's, which is then activated (NOTE_TRACKERR).
    pub(crate) fn on_spawn_error(&mut self, fflags: u32) {
        self.spawn_error |= fflags;
    }

    /// The personality of the kqueue.
    pub fn personality(&self) -> Personality {
        self.personality
    }

    /// Asks the kqueue to take the knote off its active queue and mark it inactive once the
    /// hook returns (a timer that restarts drops its pending expirations this way).
    pub fn deactivate(&mut self) {
        self.deactivate = true;
    }
}

/// A filter: the kernel's `filterops` (attach, detach, event, touch).
///
/// The default `touch` is what the kernel does for a filter without `f_touch`: on
/// [`Touch::Register`] save the change's `fflags`/`data` as `sfflags`/`sdata`; on
/// [`Touch::Process`] report the stored image.
///
/// # Rules for hooks
///
/// Every hook runs with the kqueue locked, in the thread that made the call (a
/// `kevent()`, a post, a close of a descriptor, the kqueue's drop):
/// - it must not call back into a kqueue, this one or another: such a call (`kevent`,
///   `apply`, `wait`, `trigger`, `post`, [`Waker::wake`](crate::Waker::wake)) fails with
///   EDEADLK rather than deadlock;
/// - it must not block, nor take a lock that a thread inside a kqueue call may hold;
/// - it sees only its knote ([`Knote`]: ident and filter read-only, the engine's links out
///   of reach), so it cannot break the kqueue's indexes or queue;
/// - if it panics, the panic goes on to the caller and the kqueue is poisoned: every later
///   call on it fails with EBADF, as for a closed kqueue, and its knotes are detached when
///   it is dropped (panics of hooks then are caught).
///
/// # Examples
///
/// A filter whose events a program posts with [`Kqueue::post`](crate::Kqueue::post):
///
/// ```
/// use kq::{filter::{Context, Filter, register_filter}, Knote, Kevent, Kqueue, EV_ADD, EV_CLEAR};
/// use std::{sync::Arc, time::Duration};
///
/// struct Counter;
/// impl Filter for Counter {
///     fn event(&self, kn: &mut Knote, hint: i64, _cx: &mut Context<'_>) -> bool {
///         kn.set_data(kn.data() + hint as isize); // hint 0 means "re-evaluate"
///         kn.data() > 0
///     }
/// }
///
/// let filter = register_filter("EXAMPLE_COUNTER", Arc::new(Counter))?;
/// let kq = Kqueue::new()?;
/// let add = Kevent::new(1, filter, EV_ADD | EV_CLEAR, 0, 0, std::ptr::null_mut());
/// kq.kevent(&[add], &mut [], None)?;
/// kq.post(1, filter, 3)?;
/// let mut ev = [Kevent::default()];
/// assert_eq!(kq.kevent(&[], &mut ev, Some(Duration::ZERO))?, 1);
/// assert_eq!(ev[0].data, 3);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Filter: Send + Sync + 'static {
    /// A knote is being created (EV_ADD of a new key). The knote's `sfflags`/`sdata` hold the
    /// change's values and `kev.fflags`/`kev.data` are 0. An error discards the knote.
    fn attach(&self, kn: &mut Knote, cx: &mut Context<'_>) -> Result<(), Errno> {
        let _ = (kn, cx);
        Ok(())
    }

    /// The knote is being destroyed (EV_DELETE, oneshot delivery, kqueue close).
    fn detach(&self, kn: &mut Knote, cx: &mut Context<'_>) {
        let _ = (kn, cx);
    }

    /// Whether `ident` is a descriptor (the kernel's `f_isfd`): every change then fails with
    /// EBADF unless `ident` is an open descriptor number.
    fn is_fd(&self) -> bool {
        false
    }

    /// Whether the event condition holds. `hint` is 0 when the kqueue re-evaluates (after a
    /// change, before a delivery) and the poster's value for [`Kqueue::post`].
    ///
    /// [`Kqueue::post`]: crate::Kqueue::post
    fn event(&self, kn: &mut Knote, hint: i64, cx: &mut Context<'_>) -> bool;

    /// Applies a change to an existing knote or builds a delivered record (see [`Touch`]).
    fn touch(
        &self,
        kn: &mut Knote,
        kev: &mut Kevent,
        ty: Touch,
        cx: &mut Context<'_>,
    ) -> Result<(), Errno> {
        let _ = cx;
        default_touch(kn, kev, ty);
        Ok(())
    }
}

/// The kernel's behaviour for a filter without `f_touch`: what [`Filter::touch`] does
/// unless a filter overrides it.
///
/// ```
/// use kq::filter::{default_touch, Context, Filter, Touch};
/// use kq::{Errno, Kevent, Knote};
///
/// struct Logged;
/// impl Filter for Logged {
///     fn event(&self, kn: &mut Knote, _hint: i64, _cx: &mut Context<'_>) -> bool {
///         kn.data() > 0
///     }
///     fn touch(&self, kn: &mut Knote, kev: &mut Kevent, ty: Touch, _cx: &mut Context<'_>)
///         -> Result<(), Errno> {
///         if ty == Touch::Register && kev.data < 0 {
///             return Err(Errno::INVAL);
///         }
///         default_touch(kn, kev, ty);
///         Ok(())
///     }
/// }
/// ```
pub fn default_touch(kn: &mut Knote, kev: &mut Kevent, ty: Touch) {
    match ty {
        Touch::Register => {
            kn.sfflags = kev.fflags;
            kn.sdata = kev.data as i64;
        }
        Touch::Process => *kev = kn.kev,
    }
}

/// A filter found in the table.
pub(crate) enum FilterRef {
    System(&'static dyn Filter),
    Registered(Arc<dyn Filter>),
}

impl std::ops::Deref for FilterRef {
    type Target = dyn Filter;
    fn deref(&self) -> &dyn Filter {
        match self {
            FilterRef::System(f) => *f,
            FilterRef::Registered(f) => &**f,
        }
    }
}

static USER: user::UserFilter = user::UserFilter;
static TIMER: timer::TimerFilter = timer::TimerFilter;
static READ: fd::ReadFilter = fd::ReadFilter;
static WRITE: fd::WriteFilter = fd::WriteFilter;
static VNODE: vnode::VnodeFilter = vnode::VnodeFilter;
static EMPTY: empty::EmptyFilter = empty::EmptyFilter;
static SIGNAL: signal::SignalFilter = signal::SignalFilter;
static FS: fs::FsFilter = fs::FsFilter;
static PROC: proc::ProcFilter = proc::ProcFilter;

/// The system filters whose idents are descriptor numbers, whose knotes close() drops.
pub(crate) const DESCRIPTOR_FILTERS: [i16; 4] =
    [EVFILT_READ, EVFILT_WRITE, EVFILT_VNODE, EVFILT_EMPTY];

/// Filters registered at run time; filter number `n >= 1` is entry `n - 1`.
static REGISTERED: RwLock<Vec<(String, Arc<dyn Filter>)>> = RwLock::new(Vec::new());

const SYSTEM_NAMES: [(&str, i16); 12] = [
    ("EVFILT_READ", EVFILT_READ),
    ("EVFILT_WRITE", EVFILT_WRITE),
    ("EVFILT_AIO", EVFILT_AIO),
    ("EVFILT_VNODE", EVFILT_VNODE),
    ("EVFILT_PROC", EVFILT_PROC),
    ("EVFILT_SIGNAL", EVFILT_SIGNAL),
    ("EVFILT_TIMER", EVFILT_TIMER),
    ("EVFILT_NETDEV", EVFILT_NETDEV),
    ("EVFILT_FS", EVFILT_FS),
    ("EVFILT_LIO", EVFILT_LIO),
    ("EVFILT_USER", EVFILT_USER),
    ("EVFILT_EMPTY", EVFILT_EMPTY),
];

/// Looks a filter number up. Unknown numbers and system filters without an implementation
/// give `None` (EINVAL for the caller, as NetBSD answers for EVFILT_AIO).
pub(crate) fn lookup(filter: i16) -> Option<FilterRef> {
    match filter {
        EVFILT_USER => Some(FilterRef::System(&USER)),
        EVFILT_TIMER => Some(FilterRef::System(&TIMER)),
        EVFILT_READ => Some(FilterRef::System(&READ)),
        EVFILT_WRITE => Some(FilterRef::System(&WRITE)),
        EVFILT_VNODE => Some(FilterRef::System(&VNODE)),
        EVFILT_EMPTY => Some(FilterRef::System(&EMPTY)),
        EVFILT_SIGNAL => Some(FilterRef::System(&SIGNAL)),
        EVFILT_FS => Some(FilterRef::System(&FS)),
        EVFILT_PROC => Some(FilterRef::System(&PROC)),
        n if n > 0 => {
            let table = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
            table
                .get(n as usize - 1)
                .map(|(_, f)| FilterRef::Registered(Arc::clone(f)))
        }
        _ => None,
    }
}

/// Adds a filter to the table, for every kqueue of the process, and returns its number
/// (positive: the system filters are negative). Filters cannot be removed.
///
/// # Errors
///
/// EEXIST if the name is taken (by a system filter too); EINVAL for an empty name; ENOMEM
/// when the table is full (`i16::MAX` filters).
///
/// See [`Filter`] for an example.
pub fn register_filter(name: &str, filter: Arc<dyn Filter>) -> io::Result<i16> {
    Ok(register(name, filter)?)
}

fn register(name: &str, filter: Arc<dyn Filter>) -> Result<i16, Errno> {
    if name.is_empty() {
        return Err(Errno::INVAL);
    }
    let mut table = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
    if SYSTEM_NAMES.iter().any(|(n, _)| *n == name) || table.iter().any(|(n, _)| n == name) {
        return Err(Errno(libc::EEXIST));
    }
    let number = i16::try_from(table.len() + 1).map_err(|_| Errno::NOMEM)?;
    table.push((name.to_owned(), filter));
    Ok(number)
}

/// The number of the filter called `name` (NetBSD's `KFILTER_BYNAME`): a system filter
/// (`"EVFILT_USER"`, ...) or a registered one.
///
/// # Errors
///
/// ENOENT if no filter has that name.
///
/// ```
/// use kq::filter::filter_by_name;
/// assert_eq!(filter_by_name("EVFILT_USER")?, kq::EVFILT_USER);
/// assert_eq!(filter_by_name("EVFILT_NOPE").unwrap_err().raw_os_error(), Some(libc::ENOENT));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn filter_by_name(name: &str) -> io::Result<i16> {
    if let Some((_, n)) = SYSTEM_NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(*n);
    }
    let table = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    table
        .iter()
        .position(|(n, _)| n == name)
        .map(|i| i as i16 + 1)
        .ok_or_else(|| Errno::NOENT.into())
}

/// The name of filter `filter` (NetBSD's `KFILTER_BYFILTER`).
///
/// # Errors
///
/// ENOENT if no filter has that number.
///
/// ```
/// use kq::filter::filter_name;
/// assert_eq!(filter_name(kq::EVFILT_TIMER)?, "EVFILT_TIMER");
/// assert!(filter_name(-99).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn filter_name(filter: i16) -> io::Result<String> {
    if let Some((n, _)) = SYSTEM_NAMES.iter().find(|(_, f)| *f == filter) {
        return Ok((*n).to_owned());
    }
    if filter <= 0 {
        return Err(Errno::NOENT.into());
    }
    let table = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    table
        .get(filter as usize - 1)
        .map(|(n, _)| n.clone())
        .ok_or_else(|| Errno::NOENT.into())
}

/// In a child after fork(): the parent's timers are not ours to count.
pub(crate) fn forget_timers() {
    timer::forget();
}

/// fork(): the process monitor's lock is taken after the process-wide ones.
pub(crate) fn before_fork() {
    procmon::before_fork();
}

pub(crate) fn after_fork_parent() {
    procmon::after_fork_parent();
}

/// In a child after fork(): the parent's process monitor is not ours.
pub(crate) fn after_fork_child() {
    procmon::after_fork_child();
}
