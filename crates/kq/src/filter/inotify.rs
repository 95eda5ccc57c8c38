//! The kqueue's inotify instance and its watches, shared by EVFILT_VNODE and by EVFILT_READ
//! on regular files (whose growth Linux can only tell through inotify).
//!
//! One instance per kqueue at most, made with the first watch, in the kqueue's epoll
//! (`TOKEN_INOTIFY`). When its last watch goes it leaves the epoll and stays open, idle,
//! for [`IDLE_NS`]: a new watch meanwhile reuses it, else the first `kevent()` after that
//! closes it (so does the kqueue's close). Closing an instance right after a watch was
//! removed waits for the kernel to free the watch (an RCU grace period: 5 to 20 ms here),
//! which would stall every `kevent()` that drops a kqueue's last vnode knote (an
//! EV_ONESHOT knote delivered, an EV_DELETE, a close) with the kqueue locked; once the
//! watch is freed the close is quick. inotify has one watch per inode per
//! instance, so every knote on one file shares it (whatever descriptor it came through):
//! the watch's mask is the union of what its users need, widened with IN_MASK_ADD when a
//! user comes and narrowed again when one goes. The users of a watch: descriptor numbers
//! with an EVFILT_READ knote on a regular file (IN_MODIFY) and EVFILT_VNODE knotes (each
//! with its own mask and state, see `vnode.rs`).
//!
//! A drain reads every queued event and hands each to the users of its watch; a vnode knote
//! accumulates the raw bits until it is evaluated. On IN_Q_OVERFLOW (events were lost) every
//! user is told to look again from scratch.

use super::fd::TOKEN_INOTIFY;
use super::vnode::VnodeState;
use crate::kevent::Errno;
use crate::process::{self, LibraryFd};
use crate::sys::{self, epoll, inotify as ino, io};
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, RawFd};

const MOVES: u32 = ino::MOVED_FROM | ino::MOVED_TO;

/// How long an instance left with no watch stays open for reuse (see the module doc): far
/// longer than the kernel takes to free a removed watch, so that the close is quick.
pub(crate) const IDLE_NS: u64 = 100_000_000;

/// One watched inode.
struct Watch {
    /// The mask the kernel has for the watch.
    mask: u32,
    /// The inode, to tell whether a descriptor number still names it.
    dev: u64,
    ino: u64,
    /// Descriptor numbers with an EVFILT_READ knote on this (regular) file.
    readers: Vec<RawFd>,
    /// EVFILT_VNODE knotes on the inode.
    vnodes: Vec<u32>,
}

/// A kqueue's inotify instance, watches and vnode knote states.
#[derive(Default)]
pub(crate) struct Inotify {
    fd: Option<LibraryFd>,
    watches: HashMap<i32, Watch>,
    /// The state of each EVFILT_VNODE knote, by knote id.
    vnodes: HashMap<u32, VnodeState>,
    /// Scratch space for drains.
    events: Vec<ino::Event>,
    buf: Vec<u8>,
    woken: Woken,
    /// CLOCK_MONOTONIC time at which the instance was left with no watch and taken out of
    /// the epoll (0: in use, or none).
    idle_since: u64,
}

/// What a drain found: the descriptors whose EVFILT_READ knotes and the EVFILT_VNODE
/// knotes to evaluate.
#[derive(Default)]
pub(crate) struct Woken {
    pub(crate) readers: Vec<RawFd>,
    pub(crate) vnodes: Vec<u32>,
}

impl Inotify {
    /// Whether an instance is in use (it sits in the epoll, delivering edges).
    pub(crate) fn is_open(&self) -> bool {
        self.fd.is_some() && self.idle_since == 0
    }

    /// The state of vnode knote `id`.
    pub(crate) fn vnode(&mut self, id: u32) -> Option<&mut VnodeState> {
        self.vnodes.get_mut(&id)
    }

    /// Makes the instance if there is none.
    fn open(&mut self, epoll_fd: RawFd) -> Result<BorrowedFd<'_>, Errno> {
        if let (Some(fd), true) = (&self.fd, self.idle_since != 0) {
            // Idle: back into the epoll. What it may hold (the removal of its last watches)
            // the next drain ignores.
            epoll::add(
                sys::borrow(epoll_fd),
                fd.as_fd(),
                TOKEN_INOTIFY,
                epoll::IN | epoll::ET,
            )?;
            self.idle_since = 0;
        }
        if self.fd.is_none() {
            // Unmarked and closed if dropped on an error.
            let fd = LibraryFd::new(process::make_fd(Some(epoll_fd), ino::create)?);
            epoll::add(
                sys::borrow(epoll_fd),
                fd.as_fd(),
                TOKEN_INOTIFY,
                epoll::IN | epoll::ET,
            )?;
            self.fd = Some(fd);
        }
        self.fd.as_ref().map(|f| f.as_fd()).ok_or(Errno::NOMEM)
    }

    /// Once no watch is left: takes the instance out of the epoll and leaves it idle, or
    /// closes it if `closing` (the kqueue is going, and its epoll with it).
    fn close_if_unused(&mut self, epoll_fd: RawFd, closing: bool) {
        if !self.watches.is_empty() {
            return;
        }
        if closing {
            self.close();
        } else if let (Some(fd), 0) = (&self.fd, self.idle_since) {
            let _ = epoll::delete(sys::borrow(epoll_fd), fd.as_fd());
            self.idle_since = sys::now_ns(sys::Clock::Monotonic).max(1);
        }
    }

    /// Closes an instance that has been idle for [`IDLE_NS`] (called by every `kevent()`).
    #[inline]
    pub(crate) fn close_if_idle(&mut self) {
        if self.idle_since != 0
            && sys::now_ns(sys::Clock::Monotonic).saturating_sub(self.idle_since) >= IDLE_NS
        {
            self.close();
        }
    }

    /// Closes the instance, if there is one (its watches go with it).
    pub(crate) fn close(&mut self) {
        self.idle_since = 0;
        // Unmarked and closed.
        drop(self.fd.take());
    }

    /// Watches the inode behind `fd` (identity `file`) for `mask` more, for a new user;
    /// returns the watch.
    fn widen(
        &mut self,
        epoll_fd: RawFd,
        fd: RawFd,
        file: &io::Identity,
        mask: u32,
    ) -> Result<i32, Errno> {
        let inotify = self.open(epoll_fd)?;
        let wd = match ino::watch(inotify, fd, mask, true) {
            Ok(wd) => wd,
            Err(e) => {
                self.close_if_unused(epoll_fd, false);
                return Err(e);
            }
        };
        let w = self.watches.entry(wd).or_insert(Watch {
            mask: 0,
            dev: file.dev,
            ino: file.ino,
            readers: Vec::new(),
            vnodes: Vec::new(),
        });
        w.mask |= mask;
        Ok(wd)
    }

    /// Adds an EVFILT_READ user (IN_MODIFY) for the regular file behind `fd`.
    pub(crate) fn add_reader(
        &mut self,
        epoll_fd: RawFd,
        fd: RawFd,
        file: &io::Identity,
    ) -> Result<i32, Errno> {
        let wd = self.widen(epoll_fd, fd, file, ino::MODIFY)?;
        if let Some(w) = self.watches.get_mut(&wd) {
            w.readers.push(fd);
        }
        Ok(wd)
    }

    /// Adds vnode knote `id` on `fd` with its state; the state's mask says what it needs.
    pub(crate) fn add_vnode(
        &mut self,
        epoll_fd: RawFd,
        id: u32,
        file: &io::Identity,
        mut state: VnodeState,
    ) -> Result<(), Errno> {
        let wd = self.widen(epoll_fd, state.fd, file, state.mask)?;
        state.wd = wd;
        if let Some(w) = self.watches.get_mut(&wd) {
            w.vnodes.push(id);
        }
        self.vnodes.insert(id, state);
        Ok(())
    }

    /// Removes the EVFILT_READ user `fd` of watch `wd`.
    pub(crate) fn remove_reader(&mut self, epoll_fd: RawFd, fd: RawFd, wd: i32, closing: bool) {
        if let Some(w) = self.watches.get_mut(&wd) {
            if let Some(i) = w.readers.iter().position(|&r| r == fd) {
                w.readers.swap_remove(i);
            }
        }
        self.refit(epoll_fd, wd, closing);
    }

    /// Removes vnode knote `id`.
    pub(crate) fn remove_vnode(&mut self, epoll_fd: RawFd, id: u32, closing: bool) {
        let Some(state) = self.vnodes.remove(&id) else {
            return;
        };
        if let Some(w) = self.watches.get_mut(&state.wd) {
            w.vnodes.retain(|&v| v != id);
        }
        self.refit(epoll_fd, state.wd, closing);
    }

    /// Vnode knote `id` now needs `mask` (its interest changed).
    pub(crate) fn set_vnode_mask(&mut self, epoll_fd: RawFd, id: u32, mask: u32) {
        let Some(state) = self.vnodes.get_mut(&id) else {
            return;
        };
        state.mask = mask;
        let wd = state.wd;
        self.refit(epoll_fd, wd, false);
    }

    /// The watch of vnode knote `id` (-1: the kernel removed it).
    pub(crate) fn vnode_watch(&self, id: u32) -> i32 {
        self.vnodes.get(&id).map_or(-1, |v| v.wd)
    }

    /// Whether the inode number `fd` names still carries watch `wd`. A file whose inode
    /// was freed (unlinked, and its descriptors closed without our hearing of it) lost its
    /// watch; a new file can get the same inode number at once (ext4 does that), and so
    /// pass for it by `fstat`. Adding the watch's own mask again changes nothing on the
    /// inode that carries it and returns its number; another inode gets a watch of its own,
    /// removed again here.
    pub(crate) fn still_watching(&mut self, fd: RawFd, wd: i32) -> bool {
        let Some(mask) = self.watches.get(&wd).map(|w| w.mask) else {
            return false;
        };
        let Some(inotify) = self.fd.as_ref().map(|f| f.as_fd()) else {
            return false;
        };
        match ino::watch(inotify, fd, mask, true) {
            Ok(got) if got == wd => true,
            Ok(got) => {
                if !self.watches.contains_key(&got) {
                    ino::unwatch(inotify, got);
                }
                false
            }
            // No room for a new watch: the inode carries none of ours.
            Err(e) if e.0 == libc::ENOSPC => false,
            // Cannot tell (no /proc, say): the inode number has to do.
            Err(_) => true,
        }
    }

    /// The union of the masks watch `wd`'s users need.
    fn needed(&self, w: &Watch) -> u32 {
        let mut mask = if w.readers.is_empty() { 0 } else { ino::MODIFY };
        for id in &w.vnodes {
            if let Some(v) = self.vnodes.get(id) {
                mask |= v.mask;
            }
        }
        mask
    }

    /// After a user of watch `wd` went or its needs changed: removes the watch if it has no
    /// user left (and the instance if it was the last watch), else sets its mask to what the
    /// users need, so that the kernel stops queueing events nobody asked for.
    fn refit(&mut self, epoll_fd: RawFd, wd: i32, closing: bool) {
        let Some(w) = self.watches.get(&wd) else {
            // The kernel removed the watch (its inode is gone): the instance may be left
            // with none.
            self.close_if_unused(epoll_fd, closing);
            return;
        };
        let need = self.needed(w);
        if need == 0 {
            self.watches.remove(&wd);
            if !closing {
                if let Some(inotify) = &self.fd {
                    ino::unwatch(inotify.as_fd(), wd);
                }
            }
            self.close_if_unused(epoll_fd, closing);
            return;
        }
        if need == w.mask || closing {
            return;
        }
        // Setting a mask needs a path to the inode: a user's descriptor that still names
        // it. If none does, the watch keeps its mask (extra events are ignored; the users
        // whose descriptors were closed unseen report nothing anyway).
        let (dev, inode) = (w.dev, w.ino);
        let users: Vec<RawFd> = w
            .readers
            .iter()
            .copied()
            .chain(
                w.vnodes
                    .iter()
                    .filter_map(|id| self.vnodes.get(id).map(|v| v.fd)),
            )
            .collect();
        let Some(inotify) = self.fd.as_ref().map(|f| f.as_fd()) else {
            return;
        };
        for fd in users {
            if !names(fd, dev, inode) {
                continue;
            }
            match ino::watch(inotify, fd, need, false) {
                Ok(got) if got == wd => {
                    if let Some(w) = self.watches.get_mut(&wd) {
                        w.mask = need;
                    }
                }
                // The number was reused for another inode between the check and the call:
                // undo what the call did to that inode's watch.
                Ok(got) => match self.watches.get(&got) {
                    Some(other) => {
                        let _ = ino::watch(inotify, fd, other.mask, false);
                    }
                    None => ino::unwatch(inotify, got),
                },
                Err(_) => continue,
            }
            return;
        }
    }

    /// Reads every queued event and returns the users to evaluate. Vnode knotes get the
    /// events' bits in their state.
    pub(crate) fn drain(&mut self) -> &Woken {
        let mut woken = std::mem::take(&mut self.woken);
        woken.readers.clear();
        woken.vnodes.clear();
        let Some(inotify) = &self.fd else {
            self.woken = woken;
            return &self.woken;
        };
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        ino::drain(inotify.as_fd(), &mut self.buf, &mut events);
        if events.iter().any(|e| e.mask & ino::Q_OVERFLOW != 0) {
            // Events were lost: every user looks again from scratch.
            for w in self.watches.values() {
                woken.readers.extend(&w.readers);
            }
            for (id, v) in &mut self.vnodes {
                v.lost_events();
                woken.vnodes.push(*id);
            }
        }
        // A rename inside one directory queues its IN_MOVED_FROM and IN_MOVED_TO with one
        // cookie: an entry that came from, or went to, another directory has no partner on
        // the same watch.
        let mut moves: HashMap<(i32, u32), u32> = HashMap::new();
        for e in events.iter().filter(|e| e.mask & MOVES != 0) {
            *moves.entry((e.wd, e.cookie)).or_default() |= e.mask & MOVES;
        }
        for e in &events {
            if e.mask & ino::IGNORED != 0 {
                // The kernel removed the watch (the inode is gone, or its file system was
                // unmounted): its number may be given to another inode from now on.
                if let Some(w) = self.watches.remove(&e.wd) {
                    for id in w.vnodes {
                        if let Some(v) = self.vnodes.get_mut(&id) {
                            v.wd = -1;
                        }
                    }
                }
                continue;
            }
            let Some(w) = self.watches.get(&e.wd) else {
                continue;
            };
            if e.mask & ino::MODIFY != 0 && !e.child {
                woken.readers.extend(&w.readers);
            }
            let crossed = e.mask & MOVES != 0 && moves.get(&(e.wd, e.cookie)) != Some(&MOVES);
            for id in &w.vnodes {
                if let Some(v) = self.vnodes.get_mut(id) {
                    if v.take_event(e, crossed) {
                        woken.vnodes.push(*id);
                    }
                }
            }
        }
        self.events = events;
        woken.readers.sort_unstable();
        woken.readers.dedup();
        woken.vnodes.sort_unstable();
        woken.vnodes.dedup();
        self.woken = woken;
        &self.woken
    }
}

/// Whether descriptor number `fd` names inode (`dev`, `ino`).
fn names(fd: RawFd, dev: u64, ino: u64) -> bool {
    io::identity(sys::borrow(fd)).is_ok_and(|f| (f.dev, f.ino) == (dev, ino))
}
