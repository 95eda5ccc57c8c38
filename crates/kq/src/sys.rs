//! Everything the engine asks of Linux: the descriptors of a kqueue, waiting, waking,
//! clocks, the process-wide registry of kqueues, the timer thread and fork handling.
//!
//! A kqueue is these descriptors:
//! - a pipe. The read end is the kqueue descriptor the program sees: it holds one byte
//!   while events are pending, so poll/select/epoll report it readable. The write end stays
//!   with the library; when the program has closed every copy of the read end, the write
//!   end reports EPOLLERR, which is how a close(2) the library cannot see wakes threads
//!   blocked in kevent() (SPEC §1.4) and keeps BSD's rule that a dup keeps a kqueue alive.
//! - an epoll instance that blocked kevent() calls sleep in, holding an eventfd (the wakeup
//!   of sleepers, edge-triggered so it never needs draining), the pipe's write end (close
//!   detection) and, once the kqueue has timers, a timerfd per clock (CLOCK_MONOTONIC for
//!   relative timers, CLOCK_REALTIME for absolute ones) armed for the earliest deadline.
//!
//! Pollability of timers needs someone to notice an expiry while no thread is in kevent():
//! one process-wide thread, started with the first timer, waits on every kqueue's timerfds.

use crate::kevent::Errno;
use crate::kqueue::Inner;
use rustix::event::epoll;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use rustix::time::{ClockId, Timespec};
use std::cell::RefCell;
use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Once, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::Duration;

/// The clocks of timers: relative timers run on CLOCK_MONOTONIC, NOTE_ABSOLUTE ones on
/// CLOCK_REALTIME.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Clock {
    Monotonic = 0,
    Realtime = 1,
}

/// The time on `clock` in nanoseconds (CLOCK_REALTIME: since the epoch; never before it
/// here, as no deadline is).
pub(crate) fn now_ns(clock: Clock) -> u64 {
    let id = match clock {
        Clock::Monotonic => ClockId::Monotonic,
        Clock::Realtime => ClockId::Realtime,
    };
    let t = rustix::time::clock_gettime(id);
    (t.tv_sec.max(0) as u64) * 1_000_000_000 + t.tv_nsec as u64
}

fn ns_ts(ns: u64) -> Timespec {
    Timespec {
        tv_sec: (ns / 1_000_000_000) as i64,
        tv_nsec: (ns % 1_000_000_000) as i64,
    }
}

/// Incremented in the child after every fork(): kqueues of an older generation belong to
/// the parent and are dead here (SPEC §3.6).
static FORK_GEN: AtomicU64 = AtomicU64::new(0);

pub(crate) fn fork_gen() -> u64 {
    FORK_GEN.load(Ordering::Relaxed)
}

/// A descriptor that is closed on drop, except in a child after fork(), where the fork
/// handler has already closed it and the number may belong to something else.
pub(crate) struct Fd {
    fd: ManuallyDrop<OwnedFd>,
    gen: u64,
}

impl Fd {
    fn new(fd: OwnedFd) -> Fd {
        Fd {
            fd: ManuallyDrop::new(fd),
            gen: fork_gen(),
        }
    }

    /// Gives up the descriptor without closing it.
    pub(crate) fn into_raw_fd(self) -> RawFd {
        let fd = ManuallyDrop::new(self);
        fd.fd.as_raw_fd()
    }
}

impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        if self.gen == fork_gen() {
            // SAFETY: `fd` is dropped here once and never used again.
            unsafe { ManuallyDrop::drop(&mut self.fd) };
        }
    }
}

/// Tokens of the sleepers' epoll.
const TOKEN_WAKE: u64 = 0;
const TOKEN_HUP: u64 = 1;
const TOKEN_TIMER: u64 = 2;

/// The descriptors of one kqueue (see the module documentation), but the read end, which
/// belongs to the `Kqueue` or to the C program.
pub(crate) struct Fds {
    write: Fd,
    epoll: Fd,
    wake: Fd,
    /// One timerfd per `Clock`, made with the first timer on it.
    timers: [std::sync::OnceLock<Fd>; 2],
    /// The read end's number, for the fork handler.
    read_raw: RawFd,
    /// Identity of the pipe: st_dev and st_ino of its read end.
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

/// What woke a sleeping kevent().
pub(crate) enum Woken {
    /// A wakeup, a timer, or the timeout: look again.
    Again,
    /// Every copy of the kqueue descriptor is closed.
    Closed,
}

impl Fds {
    /// A new kqueue's descriptors, and the read end of its pipe.
    pub(crate) fn new() -> Result<(Fds, Fd), Errno> {
        use rustix::event::{eventfd, EventfdFlags};
        use rustix::pipe::{pipe_with, PipeFlags};
        let (r, w) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        let st = rustix::fs::fstat(&r)?;
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(
            &ep,
            &wake,
            epoll::EventData::new_u64(TOKEN_WAKE),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )?;
        // Interest in nothing: EPOLLERR, reported once no reader is left, is implied.
        epoll::add(
            &ep,
            &w,
            epoll::EventData::new_u64(TOKEN_HUP),
            epoll::EventFlags::empty(),
        )?;
        let fds = Fds {
            read_raw: r.as_raw_fd(),
            write: Fd::new(w),
            epoll: Fd::new(ep),
            wake: Fd::new(wake),
            timers: [std::sync::OnceLock::new(), std::sync::OnceLock::new()],
            dev: st.st_dev,
            ino: st.st_ino,
        };
        Ok((fds, Fd::new(r)))
    }

    /// Puts the pending byte in the pipe: the kqueue descriptor becomes readable.
    pub(crate) fn set_readable(&self) {
        // EAGAIN cannot happen (one byte at most) and EPIPE (the program closed the kqueue)
        // is not worth reporting; the SIGPIPE that comes with it must not reach the program.
        without_sigpipe(|| {
            let _ = rustix::io::write(&self.write, &[1]);
        });
    }

    /// Takes the pending byte out through `read` (a descriptor of the read end).
    pub(crate) fn clear_readable(&self, read: BorrowedFd<'_>) {
        let mut b = [0u8; 8];
        let _ = rustix::io::read(read, &mut b);
    }

    /// Wakes a thread sleeping in [`Fds::sleep`].
    pub(crate) fn wake(&self) {
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }

    /// Sleeps until a wakeup, a timer, the kqueue's close, a signal (EINTR) or `timeout`.
    ///
    /// The caller has blocked signals since it decided to wait (`blocked`); the sleep
    /// restores the program's mask atomically, so a signal that came in between is not
    /// lost: it interrupts the sleep (SPEC §1.4: EINTR, never restarted, SA_RESTART or not:
    /// epoll_pwait2 is never restarted after a handler).
    pub(crate) fn sleep(
        &self,
        timeout: Option<Duration>,
        blocked: &SignalsBlocked,
    ) -> Result<Woken, Errno> {
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: t.subsec_nanos() as i64,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
        // SAFETY: `events` is a writable array of 4 epoll_event, `ts_ptr` is null or points
        // to a timespec and `blocked.old` to a sigset_t, all alive for the call; the kernel
        // reads 8 bytes of the mask (its sigset size on Linux).
        let n = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                self.epoll.as_fd().as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                ts_ptr,
                &blocked.old as *const libc::sigset_t,
                8usize,
            )
        };
        if n < 0 {
            return Err(Errno::from(std::io::Error::last_os_error()));
        }
        if events[..n as usize].iter().any(|e| {
            let token = e.u64;
            token == TOKEN_HUP
        }) {
            return Ok(Woken::Closed);
        }
        Ok(Woken::Again)
    }

    /// Arms the kqueue's timerfd of `clock` for `deadline` (ns on that clock; 0 disarms).
    /// An absolute CLOCK_REALTIME timerfd follows changes of the wall clock.
    pub(crate) fn arm_timer(&self, clock: Clock, deadline: u64) -> Result<(), Errno> {
        use rustix::time::{timerfd_settime, Itimerspec, TimerfdTimerFlags};
        let spec = Itimerspec {
            it_interval: ns_ts(0),
            it_value: ns_ts(deadline),
        };
        timerfd_settime(self.timerfd(clock)?, TimerfdTimerFlags::ABSTIME, &spec)?;
        Ok(())
    }

    /// The kqueue's timerfd of `clock`, made and handed to the timer thread on first use.
    pub(crate) fn timerfd(&self, clock: Clock) -> Result<&Fd, Errno> {
        use rustix::time::{timerfd_create, TimerfdClockId, TimerfdFlags};
        let slot = &self.timers[clock as usize];
        Ok(match slot.get() {
            Some(fd) => fd,
            None => {
                let id = match clock {
                    Clock::Monotonic => TimerfdClockId::Monotonic,
                    Clock::Realtime => TimerfdClockId::Realtime,
                };
                let fd = timerfd_create(id, TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK)?;
                epoll::add(
                    &self.epoll,
                    &fd,
                    epoll::EventData::new_u64(TOKEN_TIMER),
                    epoll::EventFlags::IN | epoll::EventFlags::ET,
                )?;
                timer_thread_watch(&fd, self.ino)?;
                slot.get_or_init(|| Fd::new(fd))
            }
        })
    }

    /// Whether every copy of the read end is closed.
    fn is_orphaned(&self) -> bool {
        use rustix::event::{poll, PollFd, PollFlags};
        let mut p = [PollFd::new(&self.write, PollFlags::empty())];
        matches!(poll(&mut p, Some(&ns_ts(0))), Ok(1))
            && p[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
    }

    fn raw_fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        [&self.write, &self.epoll, &self.wake]
            .into_iter()
            .chain(self.timers.iter().filter_map(|t| t.get()))
            .map(|fd| fd.fd.as_raw_fd())
    }
}

/// Runs `f` (a write to a pipe whose reader may be gone) with SIGPIPE blocked in this
/// thread, and swallows the SIGPIPE it raised, unless the program itself blocks SIGPIPE (then
/// the signal stays pending for it, as after its own write). Three system calls: only on the
/// transitions of the readable state, never per event.
fn without_sigpipe(f: impl FnOnce()) {
    // SAFETY: sigset_t is plain data; the sig* functions initialise and edit the sets passed
    // by pointer, all of which live on this stack frame; pthread_sigmask and sigtimedwait
    // only change this thread's signal state, and the old mask is restored before returning.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old);
        f();
        if libc::sigismember(&old, libc::SIGPIPE) == 0 {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            if libc::sigismember(&pending, libc::SIGPIPE) == 1 {
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::sigtimedwait(&pipe, std::ptr::null_mut(), &zero);
            }
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}

/// Every signal blocked in this thread until dropped, which restores the mask from before.
pub(crate) struct SignalsBlocked {
    old: libc::sigset_t,
}

impl SignalsBlocked {
    pub(crate) fn new() -> SignalsBlocked {
        // SAFETY: as in `without_sigpipe`: local sets, this thread's mask only.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            SignalsBlocked { old }
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores this thread's mask from a set saved by `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// Identity of a descriptor: the pipe it is the read end of.
pub(crate) fn identity(fd: BorrowedFd<'_>) -> Result<(u64, u64), Errno> {
    let st = rustix::fs::fstat(fd)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err(Errno::BADF);
    }
    Ok((st.st_dev, st.st_ino))
}

// The registry: every kqueue of the process, by the inode of its pipe.

enum Entry {
    /// Owned by a Rust `Kqueue`.
    Owned(Weak<Inner>),
    /// Handed out as a raw descriptor (the C library): alive until every copy is closed.
    Released(Arc<Inner>),
}

struct Registry {
    map: HashMap<u64, Entry>,
    /// Released entries in `map`.
    released: usize,
    /// Released entries left by the last sweep for closed descriptors.
    swept: usize,
    timer_epoll: Option<Arc<Fd>>,
}

static REGISTRY: LazyLock<RwLock<Registry>> = LazyLock::new(|| {
    RwLock::new(Registry {
        map: HashMap::new(),
        released: 0,
        swept: 0,
        timer_epoll: None,
    })
});

fn registry() -> RwLockWriteGuard<'static, Registry> {
    REGISTRY.write().unwrap_or_else(|e| e.into_inner())
}

fn registry_read() -> RwLockReadGuard<'static, Registry> {
    REGISTRY.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn register(inner: &Arc<Inner>) {
    install_fork_handlers();
    registry()
        .map
        .insert(inner.fds.ino, Entry::Owned(Arc::downgrade(inner)));
}

/// Called when an `Inner` is dropped.
pub(crate) fn unregister(ino: u64) {
    let mut reg = registry();
    if let Some(Entry::Owned(w)) = reg.map.get(&ino) {
        if w.strong_count() == 0 {
            reg.map.remove(&ino);
        }
    }
}

/// Keeps `inner` alive until its descriptor is closed. From time to time (amortized O(1)
/// per call) drops the kqueues whose descriptors were closed.
pub(crate) fn release(inner: Arc<Inner>) {
    let mut reg = registry();
    reg.map.insert(inner.fds.ino, Entry::Released(inner));
    reg.released += 1;
    if reg.released >= 2 * reg.swept + 16 {
        sweep_locked(reg);
    }
}

/// Drops now the kqueues whose descriptors were closed (when descriptors run out).
pub(crate) fn sweep() {
    sweep_locked(registry());
}

fn sweep_locked(mut reg: RwLockWriteGuard<'static, Registry>) {
    let keys: Vec<u64> = reg
        .map
        .iter()
        .filter_map(|(k, e)| match e {
            Entry::Released(i) if i.fds.is_orphaned() => Some(*k),
            _ => None,
        })
        .collect();
    let dead: Vec<Arc<Inner>> = keys
        .iter()
        .filter_map(|k| match reg.map.remove(k) {
            Some(Entry::Released(i)) => Some(i),
            _ => None,
        })
        .collect();
    reg.released -= dead.len();
    reg.swept = reg.released;
    drop(reg);
    for inner in &dead {
        inner.mark_closed();
    }
    // `dead` drops here, with the registry unlocked (Inner::drop takes the lock).
}

/// The kqueue whose descriptor is `fd` (any copy of it).
pub(crate) fn lookup(fd: BorrowedFd<'_>) -> Result<Arc<Inner>, Errno> {
    let (dev, ino) = identity(fd)?;
    let inner = {
        let reg = registry_read();
        match reg.map.get(&ino) {
            Some(Entry::Owned(w)) => w.upgrade(),
            Some(Entry::Released(i)) => Some(Arc::clone(i)),
            None => None,
        }
    };
    match inner {
        Some(i) if i.fds.dev == dev && i.gen == fork_gen() => Ok(i),
        _ => Err(Errno::BADF),
    }
}

/// The kqueue with pipe inode `ino`, if it is alive.
pub(crate) fn lookup_ino(ino: u64) -> Option<Arc<Inner>> {
    let inner = match registry_read().map.get(&ino)? {
        Entry::Owned(w) => w.upgrade(),
        Entry::Released(i) => Some(Arc::clone(i)),
    }?;
    (inner.gen == fork_gen()).then_some(inner)
}

/// Checks that `ident` is an open descriptor number (fd filters): EBADF if not.
pub(crate) fn check_fd(ident: usize) -> Result<BorrowedFd<'static>, Errno> {
    let fd = RawFd::try_from(ident).map_err(|_| Errno::BADF)?;
    // SAFETY: `fd` is in 0..=INT_MAX, so not -1. The borrow is only used for fcntl/fstat
    // during the current kevent() call; on a number that is not open (or is closed
    // meanwhile) those fail with EBADF, and no memory depends on it.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_getfd(fd)?;
    Ok(fd)
}

/// The kqueue behind descriptor number `ident`: EBADF if it is not an open descriptor,
/// `None` if it is not a kqueue.
pub(crate) fn lookup_raw(ident: usize) -> Result<Option<Arc<Inner>>, Errno> {
    let fd = check_fd(ident)?;
    match lookup(fd) {
        Ok(inner) => Ok(Some(inner)),
        Err(e) if e == Errno::BADF => Ok(None),
        Err(e) => Err(e),
    }
}

/// Hands a kqueue's timerfd to the timer thread, starting it if needed.
fn timer_thread_watch(timerfd: &OwnedFd, ino: u64) -> Result<(), Errno> {
    let mut reg = registry();
    if reg.timer_epoll.is_none() {
        let ep = Arc::new(Fd::new(epoll::create(epoll::CreateFlags::CLOEXEC)?));
        let theirs = Arc::clone(&ep);
        // The thread starts with every signal blocked and keeps it so: the program's
        // signals belong to its own threads, and EINTR to the one in kevent().
        let blocked = SignalsBlocked::new();
        let spawned = std::thread::Builder::new()
            .name("kq-timers".into())
            .spawn(move || timer_thread(theirs));
        drop(blocked);
        spawned.map_err(Errno::from)?;
        reg.timer_epoll = Some(ep);
    }
    if let Some(ep) = &reg.timer_epoll {
        epoll::add(
            ep,
            timerfd,
            epoll::EventData::new_u64(ino),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )?;
    }
    Ok(())
}

/// Runs expired timers of kqueues no thread is waiting in, so that their descriptors become
/// readable on time.
fn timer_thread(ep: Arc<Fd>) {
    let gen = fork_gen();
    let mut events = vec![
        epoll::Event {
            flags: epoll::EventFlags::empty(),
            data: epoll::EventData::new_u64(0),
        };
        64
    ];
    while gen == fork_gen() {
        let n = match epoll::wait(&*ep, &mut events[..], None) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        };
        for e in &events[..n] {
            let ino = e.data.u64();
            let inner = match registry_read().map.get(&ino) {
                Some(Entry::Owned(w)) => w.upgrade(),
                Some(Entry::Released(i)) => Some(Arc::clone(i)),
                None => None,
            };
            if let Some(inner) = inner {
                inner.run_timers();
            }
        }
    }
}

// fork(): the child must not see the parent's kqueues (SPEC §3.6). The registry lock is
// taken before fork and released after it on both sides, so the child finds it consistent;
// the child then closes its copies of every kqueue descriptor (freeing the numbers, as BSD
// does, and so that the parent alone decides when its kqueues are closed) and forgets them.

thread_local! {
    static HELD: RefCell<Option<RwLockWriteGuard<'static, Registry>>> = const { RefCell::new(None) };
}

extern "C" fn before_fork() {
    let guard = registry();
    HELD.with(|h| *h.borrow_mut() = Some(guard));
}

extern "C" fn after_fork_parent() {
    HELD.with(|h| h.borrow_mut().take());
}

extern "C" fn after_fork_child() {
    let old = HELD.with(|h| {
        let mut reg = h.borrow_mut().take()?;
        FORK_GEN.fetch_add(1, Ordering::Relaxed);
        crate::filter::forget_timers();
        let mut fds: Vec<RawFd> = Vec::new();
        for e in reg.map.values() {
            let inner = match e {
                Entry::Owned(w) => w.upgrade(),
                Entry::Released(i) => Some(Arc::clone(i)),
            };
            if let Some(i) = inner {
                fds.extend(i.fds.raw_fds());
                // The read end's number may have been closed and reused by the program:
                // close it only if it still is this kqueue's pipe.
                // SAFETY: the number is only inspected; fstat on any number is sound.
                let read = unsafe { BorrowedFd::borrow_raw(i.fds.read_raw) };
                if identity(read) == Ok((i.fds.dev, i.fds.ino)) {
                    fds.push(i.fds.read_raw);
                }
                // Leak the handle: dropping it here could take locks held at fork time.
                std::mem::forget(i);
            }
        }
        if let Some(ep) = reg.timer_epoll.take() {
            fds.push(ep.as_fd().as_raw_fd());
            std::mem::forget(ep);
        }
        for fd in fds {
            // SAFETY: these descriptors belong to the library; their owners are now of an
            // old fork generation and never use or close the numbers again.
            unsafe { libc::close(fd) };
        }
        reg.swept = 0;
        reg.released = 0;
        Some(std::mem::take(&mut reg.map))
    });
    // Leak the parent's entries rather than running their destructors in the child.
    std::mem::forget(old);
}

fn install_fork_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
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
