//! Process-wide state above the kqueues: the registry of kqueues by process-unique id, the
//! descriptor table (which numbers carry knotes, which numbers are kqueue descriptors),
//! `fdclose` (the kernel's `knote_fdclose`), fork handling, and one background thread that
//! runs the timers of kqueues nobody is waiting in and notices closed kqueue descriptors
//! when close() is not interposed.
//!
//! Lock order: a kqueue's lock, then `CREATION`, then the registry, then the signal table
//! (`signal.rs`, whose holders take no other lock; it is not held across fork). The
//! registry is never held while a kqueue's lock is taken; the descriptor table takes no
//! lock at all.

use crate::kevent::Errno;
use crate::kqueue::Inner;
use crate::sys::{self, epoll, fdinfo, signals::SignalsBlocked, Fd};
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Once, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{Duration, Instant};

/// Incremented in the child after every fork(): kqueues of an older generation belong to
/// the parent and are dead here (kqueues are not inherited).
static FORK_GEN: AtomicU64 = AtomicU64::new(0);

pub(crate) fn fork_gen() -> u64 {
    FORK_GEN.load(Ordering::Relaxed)
}

/// The process the library's state belongs to (a vfork()ed child shares the memory but not
/// the descriptor table, and must not drop the parent's knotes).
static PID: AtomicI32 = AtomicI32::new(0);

/// Whether the calling process is the one the library's state belongs to (not a child made
/// by vfork() or clone(CLONE_VM), which shares the memory). One system call.
pub(crate) fn in_library_process() -> bool {
    sys::getpid() == PID.load(Ordering::Relaxed)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A new process-unique kqueue id (never 0; it must fit the 32 bits the epoll user data
/// has room for, see `TAG_PENDING`: 4 billion kqueues per process).
pub(crate) fn new_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The program reports every close through [`crate::fdclose`] (the C library interposes
/// close()): closed kqueues need no background sweep, and the `kevent()` lookup of a call's
/// own kqueue takes a number found in the table as it is, with no system call. A number
/// met as a knote's ident is checked all the same ([`lookup_checked`]).
static CLOSE_HOOKED: AtomicBool = AtomicBool::new(false);

pub(crate) fn close_hooked() -> bool {
    CLOSE_HOOKED.load(Ordering::Relaxed)
}

pub(crate) fn set_close_hooked(on: bool) {
    CLOSE_HOOKED.store(on, Ordering::Relaxed);
}

// The descriptor table: two lock-free arrays indexed by descriptor number, grown in chunks
// on demand. `KNOTES[fd]` says which kqueues have knotes of descriptor filters on number fd
// (0: none; see `knote_attached`); `KQUEUES[fd]` is the id of the kqueue whose descriptor fd
// is (0: none).

const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;
const CHUNKS: usize = 1 << (31 - CHUNK_BITS);

struct Table {
    chunks: [AtomicPtr<[AtomicU64; CHUNK]>; CHUNKS],
}

impl Table {
    const fn new() -> Table {
        Table {
            chunks: [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS],
        }
    }

    fn get(&self, fd: RawFd) -> u64 {
        self.slot_if_any(fd)
            .map_or(0, |s| s.load(Ordering::Acquire))
    }

    fn slot_if_any(&self, fd: RawFd) -> Option<&AtomicU64> {
        let fd = usize::try_from(fd).ok()?;
        let p = self.chunks[fd >> CHUNK_BITS].load(Ordering::Acquire);
        // SAFETY: a non-null chunk pointer comes from Box::into_raw below and is never freed
        // (chunks live as long as the process).
        let chunk = unsafe { p.as_ref()? };
        Some(&chunk[fd & (CHUNK - 1)])
    }

    fn slot(&self, fd: RawFd) -> &AtomicU64 {
        if let Some(s) = self.slot_if_any(fd) {
            return s;
        }
        let i = fd as usize >> CHUNK_BITS;
        let fresh = Box::into_raw(Box::new([const { AtomicU64::new(0) }; CHUNK]));
        if self.chunks[i]
            .compare_exchange(
                std::ptr::null_mut(),
                fresh,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // SAFETY: `fresh` was never published; we own it.
            drop(unsafe { Box::from_raw(fresh) });
        }
        self.slot_if_any(fd).expect("chunk present")
    }

    /// Zeroes every entry up to number `max` (in a child after fork).
    fn clear(&self, max: RawFd) {
        let last = usize::try_from(max).map_or(0, |m| (m >> CHUNK_BITS) + 1);
        for c in &self.chunks[..last] {
            // SAFETY: as in `slot_if_any`.
            if let Some(chunk) = unsafe { c.load(Ordering::Acquire).as_ref() } {
                for s in chunk {
                    s.store(0, Ordering::Relaxed);
                }
            }
        }
    }
}

static KNOTES: Table = Table::new();
static KQUEUES: Table = Table::new();
/// Numbers of the library's own descriptors, which a search for copies of a kqueue
/// descriptor skips, and which a fork's child closes (see `after_fork_child`): 0 for none,
/// [`PROCESS_WIDE`] for one of the whole process (a signal's eventfd, the process events
/// connector), else [`owned_by`] the epoll number of the kqueue it belongs to.
static LIBRARY: Table = Table::new();

const PROCESS_WIDE: u64 = 1;

/// The `LIBRARY` value of a descriptor of the kqueue whose epoll is number `epoll`.
fn owned_by(epoll: RawFd) -> u64 {
    2 + epoll as u64
}

/// Held (shared) while one of the library's descriptors is unmarked and closed, and
/// exclusively across fork() (taken last by the fork handler), so that a fork's child never
/// inherits a descriptor the library had unmarked but not closed yet: the child closes the
/// marked ones, and an unmarked one would stay open in it. A leaf: nothing else is taken
/// while it is held.
static CLOSING: RwLock<()> = RwLock::new(());

/// Takes `fd`, one of the library's own descriptors, off the marks and closes it, with no
/// fork() in between. Unmarked before it is closed, so that a mark never names a number
/// that another thread may have been given since.
pub(crate) fn close_library_fd(fd: Fd) {
    let _g = Counted::take(|| CLOSING.read().unwrap_or_else(|e| e.into_inner()));
    mark_library_fd(fd.as_raw_fd(), false);
    drop(fd);
}

/// One of the library's own descriptors, marked as such (by [`make_fd`], or under the
/// creation lock): dropping it unmarks and closes it with no fork() in between
/// ([`close_library_fd`]).
pub(crate) struct LibraryFd(Option<Fd>);

impl LibraryFd {
    /// Wraps `fd`, which is marked already.
    pub(crate) fn new(fd: Fd) -> Self {
        LibraryFd(Some(fd))
    }
}

impl std::ops::Deref for LibraryFd {
    type Target = Fd;

    fn deref(&self) -> &Fd {
        // Taken only by `drop`.
        self.0
            .as_ref()
            .expect("a library descriptor used after its drop")
    }
}

impl AsFd for LibraryFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        (**self).as_fd()
    }
}

impl AsRawFd for LibraryFd {
    fn as_raw_fd(&self) -> RawFd {
        (**self).as_raw_fd()
    }
}

impl Drop for LibraryFd {
    fn drop(&mut self) {
        if let Some(fd) = self.0.take() {
            close_library_fd(fd);
        }
    }
}

/// `fd` is one of the library's own descriptors for the whole process (`true`), or no
/// longer one of the library's (`false`; where it is closed afterwards, and so in any
/// thread but a fork's child, see [`close_library_fd`]).
pub(crate) fn mark_library_fd(fd: RawFd, ours: bool) {
    let value = if ours { PROCESS_WIDE } else { 0 };
    LIBRARY.slot(fd).store(value, Ordering::Relaxed);
    MAX_TRACKED.fetch_max(fd, Ordering::Relaxed);
}

/// `fd` is one of the library's own descriptors, belonging to the kqueue whose epoll is
/// number `epoll` (the epoll itself included). Unmarked with `mark_library_fd(fd, false)`.
pub(crate) fn mark_kqueue_fd(fd: RawFd, epoll: RawFd) {
    LIBRARY.slot(fd).store(owned_by(epoll), Ordering::Relaxed);
    MAX_TRACKED.fetch_max(fd, Ordering::Relaxed);
}
/// The highest number that ever carried a knote or a kqueue (bounds close_range).
static MAX_TRACKED: AtomicI32 = AtomicI32::new(-1);

/// The kqueues that have knotes on a descriptor number, with how many each (the kernel's
/// per-descriptor knote lists, at kqueue grain): `fdclose` visits only those.
///
/// `KNOTES[fd]` says it for the usual case of a number watched by one kqueue, with no lock:
/// 0 for no knote, `(kqueue id << 16) | count` when every knote on the number is in that
/// kqueue, and `MANY` when several kqueues have some: the `BY_FD` map, under its mutex (a
/// leaf lock, taken after a kqueue's lock), then holds the counts. A number leaves or
/// enters `MANY` only with the mutex held.
const MANY: u64 = u64::MAX;
const COUNT_BITS: u32 = 16;

/// Descriptor number -> (kqueue id, knotes of that kqueue on it), for `MANY` numbers.
type ByFd = HashMap<RawFd, Vec<(u64, u64)>>;

static BY_FD: LazyLock<Mutex<ByFd>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn by_fd() -> Counted<std::sync::MutexGuard<'static, ByFd>> {
    Counted::take(|| BY_FD.lock().unwrap_or_else(|e| e.into_inner()))
}

/// `KNOTES[fd]` when it names kqueue `kq` alone: `Some(count)`.
fn sole(word: u64, kq: u64) -> Option<u64> {
    (word != 0 && word != MANY && word >> COUNT_BITS == kq).then_some(word & 0xffff)
}

/// A knote of a descriptor filter was attached to number `fd` in kqueue `kq`.
pub(crate) fn knote_attached(fd: RawFd, kq: u64) {
    let slot = KNOTES.slot(fd);
    if fd > MAX_TRACKED.load(Ordering::Relaxed) {
        MAX_TRACKED.fetch_max(fd, Ordering::Relaxed);
    }
    loop {
        let cur = slot.load(Ordering::Acquire);
        let next = match sole(cur, kq) {
            Some(_) => cur + 1,
            None if cur == 0 => (kq << COUNT_BITS) | 1,
            None => {
                // Another kqueue has knotes on the number too.
                let mut map = by_fd();
                let cur = slot.load(Ordering::Acquire);
                if cur == MANY {
                    let list = map.entry(fd).or_default();
                    match list.iter_mut().find(|(id, _)| *id == kq) {
                        Some((_, n)) => *n += 1,
                        None => list.push((kq, 1)),
                    }
                    return;
                }
                if cur == 0 || sole(cur, kq).is_some() {
                    continue; // changed meanwhile: the lock-free way again
                }
                if slot
                    .compare_exchange(cur, MANY, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    map.insert(fd, vec![(cur >> COUNT_BITS, cur & 0xffff), (kq, 1)]);
                    return;
                }
                continue;
            }
        };
        if slot
            .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
    }
}

/// A knote of a descriptor filter on number `fd` in kqueue `kq` was detached.
pub(crate) fn knote_detached(fd: RawFd, kq: u64) {
    let Some(slot) = KNOTES.slot_if_any(fd) else {
        return;
    };
    loop {
        let cur = slot.load(Ordering::Acquire);
        let next = match sole(cur, kq) {
            Some(1) => 0,
            Some(_) => cur - 1,
            None if cur == MANY => {
                let mut map = by_fd();
                if slot.load(Ordering::Acquire) != MANY {
                    continue;
                }
                let Some(list) = map.get_mut(&fd) else {
                    return;
                };
                if let Some(i) = list.iter().position(|(id, _)| *id == kq) {
                    list[i].1 -= 1;
                    if list[i].1 == 0 {
                        list.swap_remove(i);
                    }
                }
                match list[..] {
                    [] => slot.store(0, Ordering::Release),
                    [(id, n)] => slot.store((id << COUNT_BITS) | n, Ordering::Release),
                    _ => return,
                }
                map.remove(&fd);
                return;
            }
            None => return,
        };
        if slot
            .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
    }
}

/// The kqueues that have knotes on number `fd`.
fn kqueues_on(fd: RawFd) -> Vec<u64> {
    match KNOTES.get(fd) {
        0 => Vec::new(),
        MANY => by_fd()
            .get(&fd)
            .map(|l| l.iter().map(|(id, _)| *id).collect())
            .unwrap_or_default(),
        word => vec![word >> COUNT_BITS],
    }
}

/// Whether `fd` is one of the library's own descriptors (a kqueue's epoll, eventfd,
/// timerfds or inotify instance).
pub(crate) fn is_library_fd(fd: RawFd) -> bool {
    LIBRARY.get(fd) != 0
}

/// Whether `fd` is known as a kqueue descriptor (it may have been closed since, unseen).
pub(crate) fn is_kqueue_number(fd: RawFd) -> bool {
    KQUEUES.get(fd) != 0
}

pub(crate) fn fd_tracked(fd: RawFd) -> bool {
    KNOTES.get(fd) != 0 || KQUEUES.get(fd) != 0
}

pub(crate) fn fd_tracked_max() -> Option<RawFd> {
    let m = MAX_TRACKED.load(Ordering::Relaxed);
    (m >= 0).then_some(m)
}

// The registry.

enum Owner {
    /// Owned by a Rust `Kqueue`, which closes its descriptor.
    Owned(Weak<Inner>),
    /// Handed out as a raw descriptor (the C library): alive until every known number of it
    /// is closed.
    Released(Arc<Inner>),
}

struct Entry {
    owner: Owner,
    /// Descriptor numbers known to refer to this kqueue's epoll.
    numbers: Vec<RawFd>,
}

impl Entry {
    fn inner(&self) -> Option<Arc<Inner>> {
        match &self.owner {
            Owner::Owned(w) => w.upgrade(),
            Owner::Released(i) => Some(Arc::clone(i)),
        }
    }
}

/// Kqueue ids are handed out in sequence: they hash to themselves, spread by a multiply.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Registry {
    map: HashMap<u64, Entry, BuildHasherDefault<IdHasher>>,
    /// Released kqueues in `map`.
    released: usize,
    /// The background thread's epoll (timerfds of all kqueues), once started.
    thread_epoll: Option<Arc<Fd>>,
    /// An eventfd in that epoll that wakes the thread (a kqueue was released: it may have
    /// to start sweeping).
    thread_wake: Option<Arc<Fd>>,
}

static REGISTRY: LazyLock<RwLock<Registry>> = LazyLock::new(|| {
    RwLock::new(Registry {
        map: HashMap::with_hasher(BuildHasherDefault::default()),
        released: 0,
        thread_epoll: None,
        thread_wake: None,
    })
});

/// Held (shared) while a kqueue's descriptors are made and registered, and exclusively
/// across fork(), so that a fork never sees a kqueue half made.
static CREATION: RwLock<()> = RwLock::new(());

thread_local! {
    /// Library locks this thread holds or is taking (see [`LockCount`]). None is taken with
    /// signals blocked, so a signal handler may interrupt a hold; a `kevent()` it makes
    /// would then wait for a lock its own thread holds (or, for a shared hold, one a
    /// waiting writer keeps it from taking again): it fails with EDEADLK instead (see
    /// [`lookup`] and `kqueue::reentered`).
    static LOCKS_HELD: Locks = const {
        Locks {
            process: std::cell::Cell::new(0),
            kqueue: std::cell::Cell::new(0),
            deferred: std::cell::Cell::new(false),
        }
    };
}

/// The counts of `LOCKS_HELD`.
pub(crate) struct Locks {
    /// This module's locks (`CREATION`, the registry, `BY_FD`).
    process: std::cell::Cell<u32>,
    /// Kqueue locks.
    kqueue: std::cell::Cell<u32>,
    /// Closes were put off until the thread holds no lock (see [`defer_close`], and
    /// `calls::keep` for those of signal handlers).
    deferred: std::cell::Cell<bool>,
}

thread_local! {
    /// Kqueues to close once this thread holds no lock of the library: those whose close
    /// came while it held one (from a filter hook, a change or event list, or the
    /// library's own work under a lock), which would have had to take a kqueue lock
    /// this thread may hold, or against the lock order. With whether the kqueue is a Rust
    /// owner's, to be taken out of the registry too.
    static DEFERRED: RefCell<Vec<(Arc<Inner>, bool)>> = const { RefCell::new(Vec::new()) };
}

/// Closes kqueue `inner` (takes it out of the registry if `disown`, then
/// `Inner::mark_closed`) once the calling thread, which holds a lock of the library
/// (`count`), holds none. Returns false if that cannot be arranged (the thread is
/// exiting).
pub(crate) fn defer_close(count: LockCount, inner: &Arc<Inner>, disown: bool) -> bool {
    let Some(locks) = count.0 else {
        return false;
    };
    let kept = DEFERRED
        .try_with(|d| match d.try_borrow_mut() {
            Ok(mut list) => {
                list.push((Arc::clone(inner), disown));
                true
            }
            Err(_) => false,
        })
        .unwrap_or(false);
    if kept {
        locks.deferred.set(true);
    }
    kept
}

/// Closes the kqueue of a Rust owner that goes: out of the registry (nothing finds it by
/// number or id any more, and a fork's child closes its descriptors), then marked closed,
/// its knotes detached. Put off while the thread holds one of this module's locks (the
/// registry's comes after them); `Inner::mark_closed` puts off the rest if it must.
pub(crate) fn close_owned(inner: &Arc<Inner>) {
    let count = LockCount::get();
    if count.process() && defer_close(count, inner, true) {
        return;
    }
    disown(inner.id);
    inner.mark_closed();
}

/// Takes the kqueue of a Rust owner out of the registry and forgets its numbers.
fn disown(id: u64) {
    let entry = {
        let mut reg = registry();
        match reg.map.get(&id) {
            Some(Entry {
                owner: Owner::Owned(_),
                ..
            }) => reg.map.remove(&id),
            _ => None,
        }
    };
    if let Some(e) = entry {
        for n in e.numbers {
            forget_number(n, id);
        }
    }
}

/// Carries out the closes put off by this thread ([`defer_close`], [`fdclose_begin`]), now
/// that it holds no lock of the library.
fn run_deferred(locks: &Locks) {
    // Not while a panic unwinds (a hook may panic again): the next release does it.
    if std::thread::panicking() || !locks.deferred.replace(false) {
        return;
    }
    // Closes by signal handlers that interrupted a hold outside any call of the C
    // library (whose end would have done them).
    crate::calls::finish_outside();
    let list = DEFERRED
        .try_with(|d| {
            d.try_borrow_mut()
                .map(|mut l| std::mem::take(&mut *l))
                .unwrap_or_default()
        })
        .unwrap_or_default();
    for (inner, disowned) in list {
        if disowned {
            disown(inner.id);
        }
        inner.mark_closed();
    }
}

/// The calling thread's counts of library locks held, in hand: one thread-local lookup,
/// however many locks a call then takes. Only for use on the thread that got it (it is
/// neither `Send` nor `Sync`).
#[derive(Clone, Copy)]
pub(crate) struct LockCount(Option<&'static Locks>);

impl LockCount {
    pub(crate) fn get() -> LockCount {
        // SAFETY: the reference does not outlive the thread: a `LockCount` cannot leave it
        // (the Cells make it !Send), and the counts are const-initialized Cells without a
        // destructor, which live as long as their thread.
        LockCount(
            LOCKS_HELD
                .try_with(|n| unsafe { &*(n as *const Locks) })
                .ok(),
        )
    }

    /// Whether the thread holds one of this module's locks: true only in a signal handler
    /// that interrupted the library (or in the library's own code under such a lock, which
    /// makes no `kevent()`).
    pub(crate) fn process(self) -> bool {
        self.0.is_some_and(|n| n.process.get() > 0)
    }

    /// Whether the thread holds any library lock.
    pub(crate) fn any(self) -> bool {
        self.0
            .is_some_and(|n| n.process.get() > 0 || n.kqueue.get() > 0)
    }

    fn enter_process(self) {
        if let Some(n) = self.0 {
            n.process.set(n.process.get() + 1);
        }
    }

    fn leave_process(self) {
        if let Some(n) = self.0 {
            n.process.set(n.process.get().saturating_sub(1));
        }
    }

    pub(crate) fn enter_kqueue(self) {
        if let Some(n) = self.0 {
            n.kqueue.set(n.kqueue.get() + 1);
        }
    }

    pub(crate) fn leave_kqueue(self) {
        if let Some(n) = self.0 {
            n.kqueue.set(n.kqueue.get().saturating_sub(1));
            if n.kqueue.get() == 0 && n.process.get() == 0 && n.deferred.get() {
                run_deferred(n);
            }
        }
    }

    /// Some close was kept for when the thread holds no lock (`calls::keep`).
    /// Async-signal-safe.
    pub(crate) fn note_deferred(self) {
        if let Some(n) = self.0 {
            n.deferred.set(true);
        }
    }
}

/// A guard of one of this module's locks, counted in `LOCKS_HELD` from before the lock is
/// taken until after it is released.
pub(crate) struct Counted<G> {
    guard: std::mem::ManuallyDrop<G>,
    count: LockCount,
}

impl<G> Counted<G> {
    fn take(lock: impl FnOnce() -> G) -> Counted<G> {
        Counted::take_counted(LockCount::get(), lock)
    }

    fn take_counted(count: LockCount, lock: impl FnOnce() -> G) -> Counted<G> {
        count.enter_process();
        Counted {
            guard: std::mem::ManuallyDrop::new(lock()),
            count,
        }
    }
}

impl<G> Drop for Counted<G> {
    fn drop(&mut self) {
        // SAFETY: dropped once, here; the field is not used afterwards.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.guard) };
        self.count.leave_process();
        if let Some(n) = self.count.0 {
            if n.process.get() == 0 && n.kqueue.get() == 0 && n.deferred.get() {
                run_deferred(n);
            }
        }
    }
}

impl<G: std::ops::Deref> std::ops::Deref for Counted<G> {
    type Target = G::Target;
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: std::ops::DerefMut> std::ops::DerefMut for Counted<G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

fn registry() -> Counted<RwLockWriteGuard<'static, Registry>> {
    Counted::take(|| REGISTRY.write().unwrap_or_else(|e| e.into_inner()))
}

fn registry_read() -> Counted<RwLockReadGuard<'static, Registry>> {
    Counted::take(|| REGISTRY.read().unwrap_or_else(|e| e.into_inner()))
}

/// Runs `make` (which creates a kqueue's descriptors) so that no fork() happens meanwhile.
pub(crate) fn creating<T>(make: impl FnOnce() -> T) -> T {
    install_fork_handlers();
    let _g = Counted::take(|| CREATION.read().unwrap_or_else(|e| e.into_inner()));
    make()
}

/// Makes one of the library's descriptors with `make`, for the kqueue whose epoll is number
/// `owner` (`None`: for the whole process), and marks it so with no fork() in between: a
/// fork's child finds marked every descriptor it has to close. As [`with_fds`] when the
/// process is out of descriptors. A descriptor dropped on a later failure is unmarked
/// first (`mark_library_fd(fd, false)`).
pub(crate) fn make_fd<F: AsRawFd>(
    owner: Option<RawFd>,
    mut make: impl FnMut() -> Result<F, Errno>,
) -> Result<F, Errno> {
    let fd = with_fds(|| {
        creating(|| {
            let fd = make()?;
            match owner {
                Some(epoll) => mark_kqueue_fd(fd.as_raw_fd(), epoll),
                None => mark_library_fd(fd.as_raw_fd(), true),
            }
            Ok(fd)
        })
    })?;
    // Outside the creation lock: this may free a kqueue closed unseen.
    number_taken(fd.as_raw_fd());
    Ok(fd)
}

/// Creates descriptors with `make`; when the process is out of descriptors, first lets go of
/// closed kqueues not yet noticed, and tries again.
pub(crate) fn with_fds<T>(mut make: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    match make() {
        Err(e) if sys::is_fd_exhaustion(e) => {
            if sweep() > 0 {
                make()
            } else {
                Err(e)
            }
        }
        r => r,
    }
}

/// Enters a new kqueue owned by a Rust value, whose descriptor is `number`.
pub(crate) fn register_owned(inner: &Arc<Inner>, number: RawFd) {
    let mut reg = registry();
    reg.map.insert(
        inner.id,
        Entry {
            owner: Owner::Owned(Arc::downgrade(inner)),
            numbers: vec![number],
        },
    );
    KQUEUES.slot(number).store(inner.id, Ordering::Release);
    MAX_TRACKED.fetch_max(number, Ordering::Relaxed);
}

/// Called when an `Inner` is dropped.
pub(crate) fn unregister(id: u64) {
    let mut reg = registry();
    let dead = matches!(reg.map.get(&id), Some(Entry { owner: Owner::Owned(w), .. }) if w.strong_count() == 0);
    if dead {
        if let Some(e) = reg.map.remove(&id) {
            for n in e.numbers {
                forget_number(n, id);
            }
        }
    }
}

/// Set in a `KQUEUES` entry while the number is being closed (between [`fdclose_begin`]
/// and [`fdclose_end`]): another file may have the number already, so the entry says only
/// which kqueue to check it against (kqueue ids never reach this bit).
const BEING_CLOSED: u64 = 1 << 63;

/// The kqueue `KQUEUES` names for `number` (0: none), and whether the number is being
/// closed.
fn table_entry(number: RawFd) -> (u64, bool) {
    let raw = KQUEUES.get(number);
    (raw & !BEING_CLOSED, raw & BEING_CLOSED != 0)
}

fn forget_number(number: RawFd, id: u64) {
    if let Some(s) = KQUEUES.slot_if_any(number) {
        if s.compare_exchange(id, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            let _ = s.compare_exchange(id | BEING_CLOSED, 0, Ordering::AcqRel, Ordering::Acquire);
        }
    }
}

/// The kqueue is handed to the program as descriptor `number` (the C library): it lives
/// until the program has closed every number of it.
pub(crate) fn release(inner: Arc<Inner>, number: RawFd) {
    // The number was another kqueue's: that one was closed without our hearing of it.
    let (previous, _) = table_entry(number);
    if previous != 0 && previous != inner.id {
        forget(number, previous);
    }
    let mut guard = registry();
    let reg = &mut *guard;
    let id = inner.id;
    KQUEUES.slot(number).store(id, Ordering::Release);
    MAX_TRACKED.fetch_max(number, Ordering::Relaxed);
    match reg.map.get_mut(&id) {
        Some(e) => {
            if !matches!(e.owner, Owner::Released(_)) {
                e.owner = Owner::Released(inner);
                reg.released += 1;
            }
            // The owner's number is the library's own from now on.
            for old in std::mem::replace(&mut e.numbers, vec![number]) {
                forget_number(old, id);
            }
        }
        None => {
            reg.map.insert(
                id,
                Entry {
                    owner: Owner::Released(inner),
                    numbers: vec![number],
                },
            );
            reg.released += 1;
        }
    }
    if !close_hooked() {
        // Nobody tells us of close(): the background thread looks from time to time (and
        // may be asleep with nothing to sweep until now).
        let _ = start_thread(reg);
        if let Some(wake) = &reg.thread_wake {
            sys::eventfd_add(wake.as_fd());
        }
    }
}

/// Whether descriptor `number` refers to the epoll of kqueue `inner`, by kcmp; `None` when
/// kcmp is not available (a kernel without it, or a sandbox that forbids it).
fn same_epoll(inner: &Inner, number: RawFd) -> Option<bool> {
    if !kcmp_works() {
        return None;
    }
    let pid = sys::getpid();
    // SAFETY: kcmp compares two descriptors of this process; it reads nothing of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid,
            pid,
            0, /* KCMP_FILE */
            number,
            inner.epoll_fd().as_raw_fd(),
        )
    };
    match r {
        0 => Some(true),
        r if r > 0 => Some(false),
        _ => {
            let e = std::io::Error::last_os_error().raw_os_error();
            if e == Some(libc::EBADF) {
                Some(false)
            } else {
                KCMP.store(false, Ordering::Relaxed);
                None
            }
        }
    }
}

static KCMP: AtomicBool = AtomicBool::new(true);

fn kcmp_works() -> bool {
    KCMP.load(Ordering::Relaxed)
}

/// Whether descriptor `number` still refers to the epoll of kqueue `inner`.
fn still_at(inner: &Inner, number: RawFd) -> bool {
    same_epoll(inner, number)
        .unwrap_or_else(|| fdinfo::epoll_data(number).contains(&inner.pending_token()))
}

/// The program's epoll descriptors that the library knows nothing of (neither its own nor
/// known kqueue numbers), other than `except`: the only numbers that can be unseen copies
/// of a kqueue descriptor. `None` when /proc cannot be read (no descriptor to spare, no
/// /proc).
fn unknown_epolls(except: RawFd) -> Option<Vec<RawFd>> {
    Some(
        unknown_numbers(except)?
            .into_iter()
            .filter(|&n| {
                std::fs::read_link(format!("/proc/self/fd/{n}"))
                    .is_ok_and(|t| t.as_os_str() == "anon_inode:[eventpoll]")
            })
            .collect(),
    )
}

/// The program's open descriptors that the library knows nothing of, other than
/// `except`, whatever they are (one listing of /proc, no look at each: a kcmp per number
/// costs less than the readlink that would tell an epoll). `None` as for
/// [`unknown_epolls`].
fn unknown_numbers(except: RawFd) -> Option<Vec<RawFd>> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
            .filter(|&n| n != except && KQUEUES.get(n) == 0 && LIBRARY.get(n) == 0)
            .collect(),
    )
}

/// A descriptor of the program, other than `except`, that refers to kqueue `inner`'s epoll,
/// among `unknown` (from [`unknown_epolls`] or [`unknown_numbers`]; `None`: try every number the
/// limit allows, which needs no descriptor).
fn find_copy(inner: &Inner, except: RawFd, unknown: Option<&[RawFd]>) -> Option<RawFd> {
    match unknown {
        Some(list) => list
            .iter()
            .copied()
            .find(|&n| n != except && still_at(inner, n)),
        None if kcmp_works() => {
            let mut rl = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes the struct it is given.
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
            let max = rl.rlim_cur.min(1 << 20) as RawFd;
            let own = inner.epoll_fd().as_raw_fd();
            (0..max)
                .filter(|&n| n != except && n != own && KQUEUES.get(n) == 0)
                .find(|&n| same_epoll(inner, n) == Some(true))
        }
        None => None,
    }
}

/// A descriptor the library just made took number `fd`: if that was a kqueue number, the
/// program closed it without our hearing of it.
pub(crate) fn number_taken(fd: RawFd) {
    let (id, _) = table_entry(fd);
    if id != 0 {
        forget(fd, id);
    }
}

/// The kqueue whose descriptor is `fd` (any copy of it): EBADF if it is not one (closed,
/// another file, or inherited across fork()). This is the lookup of a `kevent()` call's
/// own kqueue: where close() reports to us, a number found in the table is taken as it is,
/// with no system call (see [`lookup_checked`]).
pub(crate) fn lookup(fd: BorrowedFd<'_>) -> Result<Arc<Inner>, Errno> {
    lookup_with(fd, close_hooked())
}

/// As [`lookup`], but a number found in the table is always checked (`kcmp`): for a
/// descriptor met as the ident of a knote, where taking another file for a kqueue would
/// watch the wrong object. A kqueue descriptor closed by a raw system call, whose number
/// another file took, is found out here even where close() is interposed.
pub(crate) fn lookup_checked(fd: BorrowedFd<'_>) -> Result<Arc<Inner>, Errno> {
    lookup_with(fd, false)
}

fn lookup_with(fd: BorrowedFd<'_>, trust_table: bool) -> Result<Arc<Inner>, Errno> {
    let count = LockCount::get();
    if count.process() {
        // A signal handler that interrupted this thread inside the library.
        return Err(Errno(libc::EDEADLK));
    }
    let number = fd.as_raw_fd();
    let (id, closing) = table_entry(number);
    // A number being closed: the entry only names the kqueue to check it against.
    let trust_table = trust_table && !closing;
    if id != 0 {
        let found = {
            let reg =
                Counted::take_counted(count, || REGISTRY.read().unwrap_or_else(|e| e.into_inner()));
            reg.map.get(&id).and_then(|e| {
                let inner = e.inner()?;
                let owned =
                    matches!(e.owner, Owner::Owned(_)) && inner.epoll_fd().as_raw_fd() == number;
                Some((inner, owned))
            })
        };
        if let Some((inner, owned)) = found {
            // A Rust owner's own number cannot be closed behind its back; a copy of it, or
            // a released kqueue's number, can, unless close() reports to us (a raw system
            // call still can: a documented limit of the kevent() lookup, which must make
            // no system call).
            if owned || trust_table || still_at(&inner, number) {
                return live(inner);
            }
        }
        // The number was closed and reused behind our back. One being closed is the
        // closer's to forget (fdclose_end): forgetting may list /proc/self/fd, and the
        // descriptor that takes would land on the number just freed, which the program
        // may be about to dup2() onto.
        if !closing {
            forget(number, id);
        }
    }
    // A number we have not seen: a dup() of a kqueue, or not a kqueue at all. One of the
    // library's own descriptors is none of the program's (a kqueue's epoll is one: the
    // number of a kqueue the program closed is often taken by the next kqueue's epoll).
    if LIBRARY.get(number) != 0 {
        return Err(Errno::BADF);
    }
    // Only an epoll can be one (readlink needs no descriptor; without /proc, go on).
    if let Ok(t) = std::fs::read_link(format!("/proc/self/fd/{number}")) {
        if t.as_os_str() != "anon_inode:[eventpoll]" {
            return Err(Errno::BADF);
        }
    }
    // Compare it with each kqueue (kcmp, no descriptor needed); without kcmp, ask /proc.
    let candidates: Vec<(u64, Arc<Inner>)> = registry_read()
        .map
        .iter()
        .filter_map(|(id, e)| Some((*id, e.inner()?)))
        .collect();
    let mut found = None;
    let mut kcmp_ok = true;
    for (id, inner) in &candidates {
        match same_epoll(inner, number) {
            Some(true) => {
                found = Some(*id);
                break;
            }
            Some(false) => {}
            None => {
                kcmp_ok = false;
                break;
            }
        }
    }
    let id = match found {
        Some(id) => id,
        None if kcmp_ok => return Err(Errno::BADF),
        None => fdinfo::epoll_data(number)
            .into_iter()
            .find_map(crate::kqueue::id_of_pending_token)
            .ok_or(Errno::BADF)?,
    };
    let inner = record_number(id, number)?;
    live(inner)
}

/// Records `number`, found by a look that took no lock to refer to kqueue `id`, as one of
/// its numbers, if it still does: checked again under the registry lock, and after the
/// table says so. Meanwhile a close of the number may have forgotten it (its
/// `fdclose_end` takes this lock) and another file may have taken it: recording it then
/// would have `kevent()` take that file for the kqueue. EBADF if it is no longer the
/// kqueue's (or is the library's own epoll).
fn record_number(id: u64, number: RawFd) -> Result<Arc<Inner>, Errno> {
    // Dropped after the registry lock (an owner's last reference may go with it).
    let held: Option<Arc<Inner>>;
    let recorded = {
        let mut reg = registry();
        let Some(e) = reg.map.get_mut(&id) else {
            return Err(Errno::BADF);
        };
        held = e.inner();
        let owned = matches!(e.owner, Owner::Owned(_));
        match &held {
            None => false,
            // The library's own epoll, made and not yet marked when the mark was looked
            // at: never a number of the program's (a Rust owner's is in the table).
            Some(inner) if inner.epoll_fd().as_raw_fd() == number && !owned => false,
            Some(inner) if !still_at(inner, number) => false,
            Some(_) => {
                if !e.numbers.contains(&number) {
                    e.numbers.push(number);
                }
                // Not over the entry of a close in progress (which fdclose_end clears).
                let _ = KQUEUES.slot(number).compare_exchange(
                    0,
                    id,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                MAX_TRACKED.fetch_max(number, Ordering::Relaxed);
                true
            }
        }
    };
    let inner = held.ok_or(Errno::BADF)?;
    if !recorded {
        return Err(Errno::BADF);
    }
    // A number the library did not know is closed without a word to it (nothing in the
    // table to look at): one closed between the check above and the table's entry is
    // found here, and forgotten.
    if !still_at(&inner, number) {
        drop(inner);
        forget(number, id);
        return Err(Errno::BADF);
    }
    Ok(inner)
}

fn live(inner: Arc<Inner>) -> Result<Arc<Inner>, Errno> {
    if inner.gen == fork_gen() {
        Ok(inner)
    } else {
        Err(Errno::BADF)
    }
}

/// The kqueue with id `id`, if it is alive.
pub(crate) fn lookup_id(id: u64) -> Option<Arc<Inner>> {
    let inner = registry_read().map.get(&id)?.inner()?;
    (inner.gen == fork_gen()).then_some(inner)
}

/// Forgets that `number` refers to kqueue `id`; a released kqueue with no number left is
/// closed and freed (with no lock held when it drops).
fn forget(number: RawFd, id: u64) {
    forget_among(number, id, None)
}

/// As [`forget`], with the program's unknown epoll descriptors already listed (`Some`), or
/// to be listed now (`None`).
fn forget_among(number: RawFd, id: u64, unknown: Option<Option<&[RawFd]>>) {
    forget_number(number, id);
    let last = {
        let mut reg = registry();
        let Some(e) = reg.map.get_mut(&id) else {
            return;
        };
        e.numbers.retain(|&n| n != number);
        match &e.owner {
            Owner::Released(inner) if e.numbers.is_empty() => Arc::clone(inner),
            _ => return,
        }
    };
    // A dup() of the descriptor keeps the kqueue alive; we only hear of copies made by
    // dup2/dup3 or used in a call, so look for others before letting go.
    let scanned;
    let unknown = match unknown {
        Some(u) => u,
        None => {
            // One kqueue to look for: kcmp each number (`find_copy`) rather than tell the
            // epolls first by readlink, which walks a path per number.
            scanned = if kcmp_works() {
                unknown_numbers(number)
            } else {
                unknown_epolls(number)
            };
            scanned.as_deref()
        }
    };
    // A copy found may be closed before it is recorded (adopt checks again): then look on.
    for _ in 0..3 {
        match find_copy(&last, number, unknown) {
            Some(other) if adopt(id, other) => return,
            Some(_) => continue,
            None => break,
        }
    }
    let dead = {
        let mut reg = registry();
        match reg.map.get_mut(&id) {
            Some(e) if matches!(e.owner, Owner::Released(_)) => {
                // A kevent() racing with the close may have found the number still open and
                // taken it up again: it is closed all the same.
                e.numbers.retain(|&n| n != number);
                forget_number(number, id);
                if !e.numbers.is_empty() {
                    return;
                }
                reg.released -= 1;
                reg.map.remove(&id)
            }
            _ => None,
        }
    };
    drop(last);
    if let Some(Entry {
        owner: Owner::Released(inner),
        ..
    }) = dead
    {
        inner.mark_closed();
    }
}

/// Records that `number` refers to kqueue `id`, if it still does, checked under the
/// registry lock (see [`record_number`]); returns whether it was recorded.
fn adopt(id: u64, number: RawFd) -> bool {
    // Dropped after the registry lock (an owner's last reference may go with it).
    let held: Option<Arc<Inner>>;
    let mut reg = registry();
    let Some(e) = reg.map.get_mut(&id) else {
        return false;
    };
    held = e.inner();
    if !held.as_ref().is_some_and(|inner| still_at(inner, number)) {
        drop(reg);
        drop(held);
        return false;
    }
    if !e.numbers.contains(&number) {
        e.numbers.push(number);
    }
    KQUEUES.slot(number).store(id, Ordering::Release);
    MAX_TRACKED.fetch_max(number, Ordering::Relaxed);
    drop(reg);
    drop(held);
    true
}

/// The kernel's `knote_fdclose` (see [`crate::fdclose`]).
pub(crate) fn fdclose(fd: RawFd) {
    let token = fdclose_begin(fd);
    fdclose_end(fd, token);
}

// The tokens of `fdclose_begin`: 0 (nothing to do after the close), a kqueue id (forgotten
// after the close), or, for a close reported while the thread is inside the library
// (`calls::inside`: a signal handler), `TOKEN_KEPT` with the kqueue id (or 0) and
// `TOKEN_KNOTES` if the number carried knotes, work kept for the end of the interrupted
// call. `TOKEN_DUP` marks a kept copy to record (`fddup`). Kqueue ids stay below 2^32.

const TOKEN_KEPT: u64 = 1 << 62;
const TOKEN_KNOTES: u64 = 1 << 61;
const TOKEN_DUP: u64 = 1 << 60;
const TOKEN_ID: u64 = TOKEN_DUP - 1;

/// The half of [`fdclose`] that comes before the close (see [`crate::fdclose_begin`]):
/// drops the knotes of `fd`. Returns the token for [`fdclose_end`]: the id of the kqueue
/// whose number `fd` is (0: none), which is forgotten once the number is closed: until
/// then a fork() finds the number among the kqueue's and closes the child's copy.
pub(crate) fn fdclose_begin(fd: RawFd) -> u64 {
    if !fd_tracked(fd) || sys::getpid() != PID.load(Ordering::Relaxed) {
        return 0;
    }
    if crate::calls::inside() {
        // A signal handler closing a descriptor while its thread is inside the library
        // (maybe holding a lock the work needs, or in an allocation): only the marking
        // now; the rest is kept for the end of the interrupted call (`fdclose_end`).
        let knotes = if KNOTES.get(fd) != 0 { TOKEN_KNOTES } else { 0 };
        let id = mark_being_closed(fd);
        return if id == 0 && knotes == 0 {
            0
        } else {
            TOKEN_KEPT | knotes | id
        };
    }
    let _call = crate::calls::Call::enter();
    if KNOTES.get(fd) != 0 {
        for kq in kqueues_on(fd).into_iter().filter_map(lookup_id) {
            kq.fd_closed(fd);
        }
    }
    mark_being_closed(fd)
}

/// Marks kqueue number `fd` as being closed (see [`BEING_CLOSED`]); returns its kqueue's
/// id (0: it is none). Lock-free.
fn mark_being_closed(fd: RawFd) -> u64 {
    let (id, _) = table_entry(fd);
    if id != 0 {
        // From the close on another file may take the number: a kevent() lookup must not
        // take the table's word for it then (it checks with kcmp). The registry keeps the
        // number until fdclose_end, for a fork() in between.
        let _ = KQUEUES.slot(fd).compare_exchange(
            id,
            id | BEING_CLOSED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
    id
}

/// The half of [`fdclose`] that comes after the close: forgets number `fd` of kqueue `id`
/// (from the token of [`fdclose_begin`]; 0: nothing to do), which releases the kqueue if
/// it was its last. Another thread may have taken the number in between: only kqueue
/// `id`'s claim on it is dropped. A kept close is kept for later, or finished now.
pub(crate) fn fdclose_end(fd: RawFd, token: u64) {
    if token == 0 || sys::getpid() != PID.load(Ordering::Relaxed) {
        return;
    }
    if token & TOKEN_KEPT != 0 {
        if crate::calls::inside() {
            crate::calls::keep(fd, token);
        } else {
            finish_kept(fd, token);
        }
        return;
    }
    let _call = crate::calls::Call::enter();
    forget(fd, token & TOKEN_ID);
}

/// As [`fdclose_end`], where the close may not have happened (see
/// [`crate::fdclose_end_checked`]): a number that still refers to its kqueue stays one of
/// its numbers.
pub(crate) fn fdclose_end_checked(fd: RawFd, token: u64) {
    if token == 0 || sys::getpid() != PID.load(Ordering::Relaxed) {
        return;
    }
    if token & TOKEN_KEPT != 0 || crate::calls::inside() {
        // Kept work always checks.
        fdclose_end(fd, token | TOKEN_KEPT);
        return;
    }
    let _call = crate::calls::Call::enter();
    forget_unless_open(fd, token & TOKEN_ID);
}

/// Forgets number `fd` of kqueue `id` unless it still refers to that kqueue (a close that
/// did not happen, or a copy of the same kqueue put on the number since): then it stays
/// one of the kqueue's numbers, trusted again.
fn forget_unless_open(fd: RawFd, id: u64) {
    if id == 0 {
        return;
    }
    if let Some(inner) = lookup_id(id) {
        if still_at(&inner, fd) {
            let _ = KQUEUES.slot(fd).compare_exchange(
                id | BEING_CLOSED,
                id,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            return;
        }
    }
    forget(fd, id);
}

/// The work of a close kept by [`fdclose_begin`] and [`fdclose_end`] (or of a copy kept by
/// [`fddup`]), once the thread has left the library.
pub(crate) fn finish_kept(fd: RawFd, token: u64) {
    let id = token & TOKEN_ID;
    if token & TOKEN_DUP != 0 {
        let _g = Counted::take(|| CREATION.read().unwrap_or_else(|e| e.into_inner()));
        adopt_if_copy(id, fd);
        return;
    }
    if token & TOKEN_KNOTES != 0 {
        // Another thread may have registered the file that took the number since: only
        // the knotes of the closed file go.
        for kq in kqueues_on(fd).into_iter().filter_map(lookup_id) {
            kq.fd_closed_unless_reused(fd);
        }
    }
    forget_unless_open(fd, id);
}

/// Records `copy` as a number of kqueue `id` if it refers to it.
fn adopt_if_copy(id: u64, copy: RawFd) {
    let _ = adopt(id, copy);
}

/// A copy of descriptor `oldfd` is made by `dup` (the C library's dup(), dup2() or
/// dup3(), which returns the new number or -1): if `oldfd` is a known kqueue number, the
/// copy becomes one of that kqueue's numbers, with no fork() between the copy and its
/// recording (a fork's child then closes it, as a kqueue is not inherited).
pub(crate) fn fddup(oldfd: RawFd, dup: impl FnOnce() -> RawFd) -> RawFd {
    let (id, _) = table_entry(oldfd);
    if id == 0 || sys::getpid() != PID.load(Ordering::Relaxed) {
        return dup();
    }
    if crate::calls::inside() {
        // A signal handler: recorded at the end of the interrupted call.
        let r = dup();
        if r >= 0 && r != oldfd {
            crate::calls::keep(r, TOKEN_KEPT | TOKEN_DUP | id);
        }
        return r;
    }
    let _call = crate::calls::Call::enter();
    // The creation lock keeps fork() out (it is taken exclusively across fork). The copy
    // is checked (kcmp), as another thread may have closed `oldfd` and put another file
    // on it since the table was read.
    let _g = Counted::take(|| CREATION.read().unwrap_or_else(|e| e.into_inner()));
    let r = dup();
    if r >= 0 && r != oldfd {
        adopt_if_copy(id, r);
    }
    r
}

/// Releases the kqueues whose every known number was closed without our hearing of it.
/// Returns how many were released.
pub(crate) fn sweep() -> usize {
    let candidates: Vec<(u64, Vec<RawFd>, Arc<Inner>)> = registry_read()
        .map
        .iter()
        .filter_map(|(id, e)| match &e.owner {
            Owner::Released(i) => Some((*id, e.numbers.clone(), Arc::clone(i))),
            Owner::Owned(_) => None,
        })
        .collect();
    let mut n = 0;
    let mut unknown: Option<Option<Vec<RawFd>>> = None;
    for (id, numbers, inner) in candidates {
        for number in numbers {
            if !still_at(&inner, number) {
                // One listing of /proc for the whole sweep.
                let list = unknown.get_or_insert_with(|| unknown_epolls(-1));
                forget_among(number, id, Some(list.as_deref()));
            }
        }
        if lookup_id(id).is_none() {
            n += 1;
        }
    }
    n
}

// The background thread: waits on the timerfds of every kqueue (so that a timer expiring
// while no thread is in kevent() still activates its knote, which makes the kqueue
// descriptor readable and notifies kqueues watching it) and, while released kqueues exist
// and close() is not interposed, sweeps closed ones every `SWEEP`.

const SWEEP: Duration = Duration::from_millis(100);

fn start_thread(reg: &mut Registry) -> Result<Arc<Fd>, Errno> {
    if let Some(ep) = &reg.thread_epoll {
        return Ok(Arc::clone(ep));
    }
    let ep = Arc::new(epoll::create()?);
    let wake = Arc::new(sys::eventfd()?);
    // Marked as every descriptor of the library (under the registry lock, which a fork
    // takes too): a fork's child closes them with the others. They live as long as the
    // process.
    for fd in [ep.as_raw_fd(), wake.as_raw_fd()] {
        mark_library_fd(fd, true);
    }
    if let Err(e) = epoll::add(ep.as_fd(), wake.as_fd(), WAKE, epoll::IN) {
        for fd in [ep, wake] {
            if let Ok(fd) = Arc::try_unwrap(fd) {
                close_library_fd(fd);
            }
        }
        return Err(e);
    }
    let theirs = (Arc::clone(&ep), Arc::clone(&wake));
    // The thread starts with every signal blocked and keeps it so: the program's signals
    // belong to its own threads, and EINTR to the one in kevent().
    let blocked = SignalsBlocked::new();
    let spawned = std::thread::Builder::new()
        .name("kq-timers".into())
        .spawn(move || background(theirs.0, theirs.1));
    drop(blocked);
    if let Err(e) = spawned {
        // The closure, and the thread's references with it, went with the error.
        for fd in [ep, wake] {
            if let Ok(fd) = Arc::try_unwrap(fd) {
                close_library_fd(fd);
            }
        }
        return Err(e.into());
    }
    reg.thread_epoll = Some(Arc::clone(&ep));
    reg.thread_wake = Some(wake);
    Ok(ep)
}

/// Hands a kqueue's timerfd to the background thread, starting it if needed.
pub(crate) fn watch_timerfd(timerfd: BorrowedFd<'_>, id: u64) -> Result<(), Errno> {
    let ep = start_thread(&mut registry())?;
    epoll::add(ep.as_fd(), timerfd, id, epoll::IN | epoll::ET)
}

/// The user data of the background thread's wake eventfd (kqueue ids start at 1 and count
/// up).
const WAKE: u64 = u64::MAX;

fn background(ep: Arc<Fd>, wake: Arc<Fd>) {
    let gen = fork_gen();
    let mut events = [epoll::EMPTY; 64];
    let mut swept = Instant::now();
    while gen == fork_gen() {
        let sweeping = !close_hooked() && registry_read().released > 0;
        // Every `SWEEP`, however often timers fire meanwhile.
        let timeout = sweeping.then(|| SWEEP.saturating_sub(swept.elapsed()));
        let n = match epoll::wait(ep.as_fd(), &mut events, timeout, None) {
            Ok(n) => n,
            Err(e) if e == Errno::INTR => continue,
            Err(_) => return,
        };
        for e in &events[..n] {
            let id = e.u64;
            if id == WAKE {
                sys::eventfd_drain(wake.as_fd());
            } else if let Some(inner) = lookup_id(id) {
                inner.run_timers();
            }
        }
        if sweeping && swept.elapsed() >= SWEEP {
            sweep();
            swept = Instant::now();
        }
    }
}

// fork(): the child must not see the parent's kqueues. The creation lock and the registry
// lock are taken before fork and released after it on both sides, so the child finds them
// consistent. The child closes its copies of the descriptors of released (C) kqueues, as
// the BSDs do (the numbers are free again), and forgets them without running their
// destructors (their locks may have been held by threads that do not exist in the child).
// Kqueues owned by Rust values are only marked dead (fork generation): their owners close
// their descriptors.
//
// Which descriptors to close comes from the marks of `LIBRARY`, not from the kqueues: a
// kqueue's descriptors are made under its own lock (a timerfd, the inotify instance, a
// process descriptor, the mount table), which the child cannot take, and a kqueue the
// program closed may still be alive (a thread of the parent was in kevent() on it) with
// no entry in the registry. Every library descriptor is made and marked under the
// creation lock (`make_fd`), so none is unmarked at the fork; marks are taken off before
// the descriptor is closed, so none names a closed number, and both under `CLOSING`, which
// the fork takes last (`close_library_fd`), so none is unmarked and still open at the fork. The child closes every marked
// number except those of the kqueues a Rust value may still own.

type Held = (
    Counted<std::sync::RwLockWriteGuard<'static, ()>>,
    Counted<RwLockWriteGuard<'static, Registry>>,
    Counted<std::sync::MutexGuard<'static, ByFd>>,
);

thread_local! {
    /// The fork handler's exclusive hold of [`CLOSING`], taken after every other lock.
    static CLOSING_HELD: RefCell<Option<Counted<RwLockWriteGuard<'static, ()>>>> =
        const { RefCell::new(None) };
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

extern "C" fn before_fork() {
    let c = Counted::take(|| CREATION.write().unwrap_or_else(|e| e.into_inner()));
    let r = registry();
    let b = by_fd();
    HELD.with(|h| *h.borrow_mut() = Some((c, r, b)));
    crate::filter::before_fork();
    let closing = Counted::take(|| CLOSING.write().unwrap_or_else(|e| e.into_inner()));
    CLOSING_HELD.with(|h| *h.borrow_mut() = Some(closing));
}

extern "C" fn after_fork_parent() {
    CLOSING_HELD.with(|h| h.borrow_mut().take());
    crate::filter::after_fork_parent();
    HELD.with(|h| h.borrow_mut().take());
}

extern "C" fn after_fork_child() {
    // The child's only thread: nothing to keep out any more (and what follows may close).
    CLOSING_HELD.with(|h| h.borrow_mut().take());
    PID.store(sys::getpid(), Ordering::Relaxed);
    crate::signal::fork_child();
    let old = HELD.with(|h| {
        let (c, mut reg, mut by) = h.borrow_mut().take()?;
        // The parent's knotes are not ours; forget the table without freeing (allocator
        // state is consistent, but keep the child's work small).
        std::mem::forget(std::mem::take(&mut *by));
        drop(by);
        FORK_GEN.fetch_add(1, Ordering::Relaxed);
        crate::filter::forget_timers();
        crate::filter::after_fork_child();
        let mut fds: Vec<RawFd> = Vec::new();
        // The kqueues a Rust value may still own keep their descriptors: their owners
        // close them (a strong reference held by a thread of the parent keeps them too).
        let mut kept: Vec<u64> = Vec::new();
        for e in reg.map.values() {
            match &e.owner {
                Owner::Released(i) => {
                    for &n in &e.numbers {
                        // Close a program number only if it still is this kqueue.
                        if still_at(i, n) {
                            fds.push(n);
                        }
                    }
                }
                Owner::Owned(w) => {
                    if let Some(i) = w.upgrade() {
                        kept.push(owned_by(i.epoll_fd().as_raw_fd()));
                    }
                }
            }
        }
        // The background thread's descriptors are marked: closed below.
        std::mem::forget((reg.thread_epoll.take(), reg.thread_wake.take()));
        let max = MAX_TRACKED.load(Ordering::Relaxed);
        // Every other descriptor of the library: those of released kqueues, of kqueues
        // closed by the program but still alive at the fork, and the process-wide ones.
        for fd in 0..=max {
            let owner = LIBRARY.get(fd);
            if owner != 0 && !kept.contains(&owner) {
                fds.push(fd);
            }
        }
        for fd in fds {
            // SAFETY: these descriptors belong to released kqueues of the parent (whose
            // handles are leaked below), to kqueues whose owners are threads that do not
            // exist in the child, or to the process; nothing uses the numbers again.
            unsafe { libc::syscall(libc::SYS_close, fd) };
        }
        reg.released = 0;
        KNOTES.clear(max);
        KQUEUES.clear(max);
        LIBRARY.clear(max);
        let map = std::mem::take(&mut reg.map);
        drop((reg, c));
        Some(map)
    });
    // Leak the parent's entries rather than running destructors in the child.
    std::mem::forget(old);
}

fn install_fork_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        PID.store(sys::getpid(), Ordering::Relaxed);
        // SAFETY: the three handlers are `extern "C"` functions that live for the whole
        // process, as pthread_atfork requires.
        unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_parent),
                Some(after_fork_child),
            )
        };
    });
}

/// Makes waits, and looks at the mount table, use the fallbacks of older kernels (for
/// tests).
pub(crate) fn force_fallbacks() {
    epoll::force_pwait_fallback();
    sys::mounts::force_table_fallback();
}
