//! The process monitor: what EVFILT_PROC needs beyond a kqueue's own epoll, shared by the
//! whole process and run by one background thread.
//!
//! - The process events connector (`sys::cnproc`): one socket for the process, opened when
//!   the first knote wants forks or execs (NOTE_FORK, NOTE_EXEC, NOTE_TRACK) and closed when
//!   the last such knote goes. The thread reads the events in the order Linux sent them and
//!   posts each, one after the other, to the knotes of the process concerned. Because a
//!   post runs to its end (NOTE_TRACK makes the child's knote in it) before the next event
//!   is looked at, the knote of a new child exists before any event of that child is.
//! - Children watched without a process descriptor (Linux before 5.3, `KQ_NO_PIDFD`, or a
//!   child whose descriptor said "exited" before `waitid` did): `waitid(WNOWAIT)` every
//!   [`POLL`] until the child can be waited for.
//!
//! Lost events. The connector's socket buffers the events the thread has not read yet, for
//! every process of the system (8 MiB with `CAP_NET_ADMIN`, else `net.core.rmem_max`: a
//! few hundred events by default). When the thread falls behind, Linux drops what does not
//! fit and says so (ENOBUFS), without saying what: the thread passes on the events queued
//! until then, then a loss ([`hint::LOST`]) to every knote that listens. What can be lost
//! is what only the connector tells: forks (NOTE_FORK, and for NOTE_TRACK the child's
//! NOTE_CHILD record and tracking knote) and execs (NOTE_EXEC). A knote with NOTE_TRACK
//! learns of the loss by NOTE_TRACKERR, as when BSD cannot track a child; a knote without
//! it is not told (BSD never loses these, and has no way to say so). Exits are not lost:
//! a knote that waits for the connector's exit event before reporting an exit (see
//! `proc.rs`) stops waiting for it once the process's main thread has exited, and reports
//! the exit its process descriptor (or the poll) gives; a knote with neither reports the
//! exit, with status 0, once the process is gone.
//!
//! Posting goes through the kqueue's ordinary post path (`Inner::post`), with no lock of
//! the monitor held: the posts may create knotes, whose attach comes back here.
//!
//! Lock order: a kqueue's lock, then the monitor's; the monitor's lock is never held while
//! another lock is taken, nor while descriptors are made. fork() takes it after the
//! process-wide locks (see `process.rs`), and the child forgets the parent's socket without
//! touching it (the socket is shared with the parent until exec).

use crate::consts::EVFILT_PROC;
use crate::kevent::Errno;
use crate::process::{self, LibraryFd};
use crate::sys::{self, cnproc, pidfd, signals::SignalsBlocked, Fd};
use rustix::fd::{AsFd, AsRawFd};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Connector events a knote wants (the bits of [`listen`]).
pub(crate) const FORK: u32 = 1;
pub(crate) const EXEC: u32 = 2;
pub(crate) const EXIT: u32 = 4;

/// How often children without a process descriptor are looked at.
pub(crate) const POLL: Duration = Duration::from_millis(10);

/// The hints the monitor (and the kqueue's epoll) pass to the filter: a kind in the high
/// half, a value (a pid or a status) in the low 32 bits.
pub(crate) mod hint {
    /// The process descriptor is readable: the process exited.
    pub(crate) const EDGE: i64 = 1;
    /// `waitid` says the child exited, with this status.
    pub(crate) const WAITED: i64 = 2;
    /// `waitid` says there is no such child any more: the status is not known.
    pub(crate) const GONE: i64 = 3;
    /// The connector says the process exited, with this status.
    pub(crate) const EXIT: i64 = 4;
    /// The process made the child whose pid this is.
    pub(crate) const FORK: i64 = 5;
    /// The process executed a program.
    pub(crate) const EXEC: i64 = 6;
    /// Connector events were lost.
    pub(crate) const LOST: i64 = 7;

    pub(crate) fn make(kind: i64, value: i32) -> i64 {
        (kind << 32) | i64::from(value as u32)
    }

    pub(crate) fn kind(h: i64) -> i64 {
        h >> 32
    }

    pub(crate) fn value(h: i64) -> i32 {
        h as u32 as i32
    }
}

/// The connector socket: says it wants no more events when its last user drops it.
struct Connector {
    /// Unmarked and closed after the drop below.
    fd: LibraryFd,
}

impl Drop for Connector {
    fn drop(&mut self) {
        cnproc::unsubscribe(self.fd.as_fd());
    }
}

#[derive(Default)]
struct Monitor {
    /// The connector socket, while a knote wants connector events.
    sock: Option<Arc<Connector>>,
    /// pid -> (kqueue id, wanted events) of the knotes that want connector events.
    listeners: HashMap<i32, Vec<(u64, u32)>>,
    /// (pid, kqueue id) of children waited for by polling.
    polled: Vec<(i32, u64)>,
    /// The thread's wakeup eventfd, once it runs.
    wake: Option<Arc<Fd>>,
}

static MONITOR: LazyLock<Mutex<Monitor>> = LazyLock::new(|| Mutex::new(Monitor::default()));

fn monitor() -> MutexGuard<'static, Monitor> {
    MONITOR.lock().unwrap_or_else(|e| e.into_inner())
}

impl Monitor {
    fn wanted(&self) -> bool {
        !self.listeners.is_empty()
    }

    /// Wakes the thread (it then looks at the socket and the polled list again), which
    /// [`start`] started.
    fn kick(&mut self) {
        if let Some(w) = &self.wake {
            sys::eventfd_add(w.as_fd());
        }
    }
}

/// Starts the thread if it does not run yet. Called with the monitor's lock not held: the
/// thread's eventfd is made under the creation lock, which fork() takes before the
/// monitor's (the other order deadlocks against a fork in another thread).
fn start() -> Result<(), Errno> {
    if monitor().wake.is_some() {
        return Ok(());
    }
    // Made and marked with no fork() in between.
    let wake = Arc::new(process::make_fd(None, sys::eventfd)?);
    let mut m = monitor();
    if m.wake.is_none() {
        let theirs = Arc::clone(&wake);
        let blocked = SignalsBlocked::new();
        let spawned = std::thread::Builder::new()
            .name("kq-proc".into())
            .spawn(move || run(theirs));
        drop(blocked);
        if let Err(e) = spawned {
            drop(m);
            // The thread's reference went with the error.
            if let Ok(wake) = Arc::try_unwrap(wake) {
                process::close_library_fd(wake);
            }
            return Err(e.into());
        }
        m.wake = Some(wake);
        return Ok(());
    }
    // Another thread started it meanwhile.
    drop(m);
    if let Ok(wake) = Arc::try_unwrap(wake) {
        process::close_library_fd(wake);
    }
    Ok(())
}

/// Knote of kqueue `kq` on process `pid` wants the connector events `mask` (0: none any
/// more). The first such knote opens the socket, which can fail: EOPNOTSUPP when Linux
/// does not give the events (see `sys::cnproc`), EMFILE and the like.
pub(crate) fn listen(pid: i32, kq: u64, mask: u32) -> Result<(), Errno> {
    // The socket is looked at and the listener recorded under one hold of the lock: a
    // listener recorded just after another thread's last listener took the socket away
    // would be left without one.
    if mask != 0 {
        start()?;
    }
    let mut made: Option<Arc<Connector>> = None;
    let mut m = loop {
        let mut m = monitor();
        if mask == 0 || m.sock.is_some() {
            break m;
        }
        if let Some(sock) = made.take() {
            m.sock = Some(sock);
            m.kick();
            break m;
        }
        drop(m);
        // Made with no lock of ours held (it waits for the kernel's acknowledgement).
        let fd = LibraryFd::new(process::make_fd(None, cnproc::open)?);
        made = Some(Arc::new(Connector { fd }));
    };
    let list = m.listeners.entry(pid).or_default();
    match list.iter().position(|(k, _)| *k == kq) {
        Some(i) if mask == 0 => {
            list.swap_remove(i);
        }
        Some(i) => list[i].1 = mask,
        None if mask != 0 => list.push((kq, mask)),
        None => {}
    }
    if list.is_empty() {
        m.listeners.remove(&pid);
    }
    if !m.wanted() && m.sock.take().is_some() {
        // The thread lets go of its reference, which closes the socket.
        m.kick();
    }
    Ok(())
}

/// Child `pid`, watched by kqueue `kq`, is to be polled until it can be waited for.
pub(crate) fn poll(pid: i32, kq: u64) -> Result<(), Errno> {
    start()?;
    let mut m = monitor();
    if !m.polled.contains(&(pid, kq)) {
        m.polled.push((pid, kq));
    }
    m.kick();
    Ok(())
}

/// Undoes [`poll`].
pub(crate) fn unpoll(pid: i32, kq: u64) {
    let mut m = monitor();
    m.polled.retain(|&e| e != (pid, kq));
}

/// Posts `hint` to the EVFILT_PROC knote on `pid` of kqueue `kq`, if both still exist.
fn post(kq: u64, pid: i32, hint: i64) {
    if let Some(inner) = process::lookup_id(kq) {
        let _ = inner.post(pid as usize, EVFILT_PROC, hint);
    }
}

/// The kqueues whose knote on `pid` wants one of `events`.
fn targets(pid: i32, events: u32) -> Vec<u64> {
    monitor()
        .listeners
        .get(&pid)
        .map(|l| {
            l.iter()
                .filter(|(_, m)| m & events != 0)
                .map(|(k, _)| *k)
                .collect()
        })
        .unwrap_or_default()
}

/// Passes one connector event on. Called for each event in turn, with no lock held.
fn dispatch(event: cnproc::Event) {
    use cnproc::Event;
    match event {
        Event::Fork { parent, child } => {
            for kq in targets(parent, FORK) {
                post(kq, parent, hint::make(hint::FORK, child));
            }
        }
        Event::Exec { pid } => {
            for kq in targets(pid, EXEC) {
                post(kq, pid, hint::make(hint::EXEC, 0));
            }
        }
        Event::Exit { pid, status } => {
            for kq in targets(pid, EXIT) {
                post(kq, pid, hint::make(hint::EXIT, status));
            }
        }
        Event::Lost => {
            let all: Vec<(i32, u64)> = monitor()
                .listeners
                .iter()
                .flat_map(|(pid, l)| l.iter().map(move |(k, _)| (*pid, *k)))
                .collect();
            for (pid, kq) in all {
                post(kq, pid, hint::make(hint::LOST, 0));
            }
        }
    }
}

/// Looks at the polled children once; posts the exits found.
fn scan() {
    let list = monitor().polled.clone();
    for (pid, kq) in list {
        let h = match pidfd::wait_exited(None, pid) {
            Ok(None) => continue,
            Ok(Some(status)) => hint::make(hint::WAITED, status),
            Err(_) => hint::make(hint::GONE, 0),
        };
        unpoll(pid, kq);
        post(kq, pid, h);
    }
}

/// The thread: waits for connector events and for the next poll, and passes them on.
fn run(wake: Arc<Fd>) {
    let gen = process::fork_gen();
    let mut buf = cnproc::Buffer::new();
    let mut last_scan = Instant::now();
    while gen == process::fork_gen() {
        let (sock, polling) = {
            let m = monitor();
            (m.sock.clone(), !m.polled.is_empty())
        };
        let mut fds = [
            libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sock.as_ref().map_or(-1, |s| s.fd.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let timeout = if polling {
            POLL.saturating_sub(last_scan.elapsed()).as_millis() as libc::c_int
        } else {
            -1
        };
        sys::poll_fds(&mut fds, timeout);
        if fds[0].revents != 0 {
            sys::eventfd_drain(wake.as_fd());
        }
        if let Some(s) = &sock {
            if fds[1].revents != 0 {
                // Read under the lock, and only from the current socket: a socket that
                // was given up (its last listener went) is never read again, and its
                // successor is subscribed only after that, so no event is seen twice.
                let mut events = Vec::new();
                {
                    let m = monitor();
                    if m.sock.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, s)) {
                        cnproc::drain(s.fd.as_fd(), &mut buf, |e| events.push(e));
                    }
                }
                for e in events {
                    dispatch(e);
                }
            }
        }
        // Let go of the socket before waiting again, so that the last `listen(.., 0)`
        // closes it.
        drop(sock);
        if polling && last_scan.elapsed() >= POLL {
            last_scan = Instant::now();
            scan();
        }
    }
}

thread_local! {
    static HELD: RefCell<Option<MutexGuard<'static, Monitor>>> = const { RefCell::new(None) };
}

/// fork(): taken before, so that the child finds the monitor consistent.
pub(crate) fn before_fork() {
    let g = monitor();
    HELD.with(|h| *h.borrow_mut() = Some(g));
}

pub(crate) fn after_fork_parent() {
    HELD.with(|h| h.borrow_mut().take());
}

/// In the child: the parent's socket and thread are not ours. The socket is shared with the
/// parent: closing our number is harmless, unsubscribing it would not be.
pub(crate) fn after_fork_child() {
    HELD.with(|h| {
        if let Some(mut m) = h.borrow_mut().take() {
            for fd in [
                m.sock.take().map(|s| {
                    let n = s.fd.as_raw_fd();
                    std::mem::forget(s);
                    n
                }),
                m.wake.take().map(|w| {
                    let n = w.as_raw_fd();
                    std::mem::forget(w);
                    n
                }),
            ]
            .into_iter()
            .flatten()
            {
                // Our copies of the parent's socket and eventfd, whose owners were just
                // forgotten and never use the numbers again.
                process::mark_library_fd(fd, false);
                sys::close_number(fd);
            }
            std::mem::forget(std::mem::take(&mut m.listeners));
            std::mem::forget(std::mem::take(&mut m.polled));
        }
    });
}
