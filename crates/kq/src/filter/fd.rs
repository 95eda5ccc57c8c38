//! EVFILT_READ and EVFILT_WRITE on descriptors: sockets, pipes and FIFOs, ttys, regular
//! files, devices, anything else Linux can poll, and kqueue descriptors (one kqueue watching
//! another).
//!
//! Each kqueue registers a descriptor once in its epoll, edge-triggered, whatever knotes it
//! has on it (EVFILT_READ and EVFILT_WRITE share the registration, with the union of their
//! interest), tagged with the descriptor number and a sequence number so that an edge of a
//! registration that was replaced is ignored. An edge makes the filter look at the
//! descriptor; so does every re-evaluation (after a change, before a delivery), because the
//! program may have read or written meanwhile and Linux gives no edge for that. A plain
//! level READ knote, once delivered, has its registration level-triggered instead (below).
//!
//! # Level registrations
//!
//! A delivered level knote stays queued, and every scan looks at its descriptor again
//! (FIONREAD), mostly to find it drained; while it is queued the kqueue's eventfd must be
//! readable, so each delivery that drains it costs an eventfd write and read too. For a
//! plain level READ knote (no EV_CLEAR, EV_ONESHOT or EV_DISPATCH, enabled, no NOTE_LOWAT
//! mark above 1) alone on a descriptor whose readiness in epoll is exactly the filter's
//! condition (`Descriptors::level_ok`: pipes and FIFOs, stream and listening sockets,
//! eventfd and the like), the delivery instead makes the registration level-triggered
//! (`level_delivered`) and leaves the knote off the queue. epoll then reports the
//! descriptor at every look for as long as it is ready, which queues the knote again, and
//! the kqueue descriptor is readable exactly while it is: no re-check finding 0, no
//! eventfd traffic. Every report still reads the state and checks the number's identity
//! before a delivery.
//!
//! The registration is one-shot (EPOLLONESHOT): a report disarms it (`level_report`, which
//! queues the knote without a look), and the knote's evaluation arms it again with
//! `EPOLL_CTL_MOD`, which also tells that the number still names the registered file (it
//! fails otherwise), so it costs about what the identity check costs. One-shot because a
//! registration left behind on a file the number no longer names (closed unseen, the file
//! living on through a dup) cannot be changed or removed: level-triggered for good, it
//! would make every wait return at once, while a one-shot one reports once at most.
//!
//! Arming a ready descriptor costs more than the identity check alone, so a knote that
//! stays ready across deliveries (a report finds it still pending from the look before:
//! the program did not drain it, or more came at once) goes back to an edge-triggered
//! registration and stays queued, each scan looking at it, until one finds it drained;
//! its next delivery makes the registration level-triggered again (`level_rearm`,
//! `Reg::drained`). The level-triggered registration pays where the program reads what it
//! is told of: it saves the scan that finds the knote drained (a `FIONREAD`, and the
//! eventfd read and written around it), mostly off the path from an arrival to its
//! delivery.
//!
//! Where epoll's readiness and the filter disagree (a report the evaluation finds not
//! firing: the data was read meanwhile, or the kinds' conditions differ), or the knote
//! stops being plain level (EV_DISABLE, NOTE_LOWAT, FreeBSD's EV_FORCEONESHOT:
//! `level_changed`), or a WRITE or EMPTY knote joins it (EPOLLOUT would be level-triggered
//! too), or the registration goes, it goes back to edge-triggered (`leave_level`; a
//! descriptor that is ready then is reported again at once, so nothing is lost) until the
//! next delivery. Kqueue descriptors, ttys, datagram sockets, regular files and numbers
//! that are `tainted` or the library's own are never level-registered.
//!
//! The BSDs keep a delivered level knote queued until a scan finds it inactive; finding it
//! firing again meanwhile is no new activation. The kqueue counts such knotes
//! (`Descriptors::shown`) from their delivery until its next look at the epoll
//! (`begin_look`): in the pending count a watching kqueue reads, and for telling a report
//! that finds such a knote still ready (no news: `Context::quiet`, so a watcher's EV_CLEAR
//! knote sees no activation) from one after a look that found it not ready. Only a
//! zero-timeout look tells that (a blocking one may report data that came during the
//! wait). Where this differs from the BSDs: their kqueue descriptor stays readable, and
//! the knote counted, after the program read the data until the next scan; here, for a
//! knote left off the queue (level-triggered), readability ends with the data, and the
//! count at the next look (which a watching kqueue's evaluation makes too). A knote kept
//! queued (not drained between deliveries) is readable and counted as on the BSDs.
//!
//! An EV_ADD of EVFILT_READ on a descriptor the kqueue has no knote on only registers it
//! (`Kind::Unknown`; epoll_ctl fails with EBADF on a closed number): what it is (`look`) and
//! what it holds are read once epoll reports it ready, which it does at once for a
//! descriptor that is ready when registered, so the event still comes from the same
//! `kevent()` (its scan takes the edges in first). An idle descriptor costs one system call
//! to add and one to delete, as with epoll. The other filters, numbers known as kqueue
//! descriptors, and files epoll refuses are looked at when added.
//!
//! Knotes belong to the descriptor number. The library cannot see a close() unless it is
//! told (`crate::fdclose`, which the C library's interposed close() calls), so every look
//! at a descriptor that is to be reported also checks, after reading its state, that the
//! number still names the file the knote was registered for: a knote never fires for
//! another file, and a change on a reused number finds the old knotes gone (see
//! `Inner::check_descriptor` and `quick_check`). epoll answers that for the files it holds
//! (`probe`; an EV_DELETE's own epoll_ctl answers it too; a kqueue is told by its id, so a
//! number registered without a look that turns out to be one is probed first). A
//! registration the library could not take out (the number was closed and reused first,
//! the file living on through a dup) may linger under the number and answer for its old
//! file: such numbers are `tainted`, and there the inode must match as well.
//!
//! What is reported, as on the BSDs:
//! - READ: bytes readable (`FIONREAD`; for datagram sockets Linux gives the size of the next
//!   datagram, not the sum of all); a listening TCP socket: connections waiting in the accept
//!   queue (`tcpi_unacked` of `TCP_INFO`), a listening socket of another family: 1 while one
//!   waits (Linux has no count for it); a regular file or directory: size minus offset,
//!   active while not 0; a kqueue: its pending events; an eventfd or timerfd: its counter
//!   (`counter`). EV_EOF when the peer shut down or
//!   closed (sockets), when no writer is left (pipes, FIFOs), on hang-up (ttys), with the
//!   socket's pending error in `fflags`. NOTE_LOWAT: the mark in `data`.
//! - WRITE: free space: pipe capacity minus bytes queued; a socket's send buffer minus what
//!   is queued in it (Linux counts buffer memory on AF_UNIX, so this is approximate there);
//!   regular files and devices without poll are always writable with `data` 0; an eventfd:
//!   by personality (`counter`), a timerfd refuses it. EV_EOF when
//!   no reader is left (pipes) or the connection is gone (sockets).

use super::counter::{self, Counter};
use super::inotify::Inotify;
use super::{Context, Filter, Touch};
use crate::consts::*;
use crate::kevent::{Errno, Kevent};
use crate::knote::{Knote, NIL};
use crate::personality::Personality;
use crate::process;
use crate::sys::{self, epoll, io, io::Identity};
use hashbrown::{HashMap, HashSet};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};

/// What kind of descriptor a registration is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Socket(io::SocketInfo),
    Pipe,
    Char,
    /// Any other pollable descriptor: signalfd, inotify, epoll, pidfd, ...
    Other,
    /// An eventfd or a timerfd: pollable, with a counter the BSDs report.
    Counter(Counter),
    /// Regular files, directories, block devices: not pollable, level-triggered on size.
    File,
    /// Devices without poll: always ready, data 0.
    Device,
    /// A kqueue descriptor, by kqueue id.
    Kqueue(u64),
    /// Registered in the epoll by an EV_ADD of EVFILT_READ and not looked at since: what
    /// it is is found out when epoll first reports it ready (`look`).
    Unknown,
}

/// One descriptor watched by one kqueue.
#[derive(Clone, Copy)]
struct Reg {
    seq: u32,
    /// The file's identity (`fstat`), once looked at (`None` while `Kind::Unknown`).
    file: Option<Identity>,
    kind: Kind,
    /// Knote ids of the READ, WRITE, EMPTY and VNODE knotes on it (`NIL`: none).
    read: u32,
    write: u32,
    empty: u32,
    vnode: u32,
    /// Interest registered in the epoll (0: not in it).
    interest: u32,
    /// Ready bits of the last edge (or of a poll at registration).
    revents: u32,
    /// inotify watch of a regular file with a READ knote, for its growth (-1: none).
    wd: i32,
    /// The lock hold (`Objects::epoch`) in which the number was last seen to name `file`.
    verified: u64,
    /// A socket's pending error, once read (reading it clears it in the socket): both
    /// filters report it.
    error: i32,
    /// Registered level-triggered and one-shot for its plain level READ knote (see "Level
    /// registrations" in the module documentation).
    level: bool,
    /// The level registration is armed: false from a report of epoll (which disarmed it)
    /// until the knote's evaluation arms it again.
    armed: bool,
    /// Whether the descriptor's kind may have a level registration: 0 not known yet, 1
    /// yes, 2 no.
    level_kind: u8,
    /// The look (`Descriptors::looks`) in which the READ knote was last delivered and left
    /// off the queue, its level registration showing it (0: never).
    shown: u64,
    /// Counted in `Descriptors::shown` (while `shown` is the current look).
    counted: bool,
    /// The look in which epoll last reported the level registration.
    reported: u64,
    /// That report found the READ knote still pending from the look before (see
    /// `Descriptors::still_pending`).
    continued: bool,
    /// The READ knote was found not firing since its last delivery (or was never
    /// delivered): its next delivery may make the registration level-triggered.
    drained: bool,
}

impl Reg {
    /// A registration of sequence `seq` for `file` (None: never looked at) of `kind`, with
    /// no knote, no interest and nothing learnt yet.
    fn new(seq: u32, file: Option<Identity>, kind: Kind) -> Reg {
        Reg {
            seq,
            file,
            kind,
            read: NIL,
            write: NIL,
            empty: NIL,
            vnode: NIL,
            interest: 0,
            revents: 0,
            wd: -1,
            verified: 0,
            error: 0,
            level: false,
            armed: false,
            level_kind: 0,
            shown: 0,
            counted: false,
            reported: 0,
            continued: false,
            drained: true,
        }
    }
}

/// The descriptors one kqueue watches.
#[derive(Default)]
pub(crate) struct Descriptors {
    regs: HashMap<RawFd, Reg>,
    /// Numbers whose registration was dropped without being taken out of the epoll (the
    /// number was closed or reused first): a registration of the old open file may live on
    /// there under the number, so that epoll alone cannot tell whether the number names a
    /// registered file (see `same_file`).
    tainted: HashSet<RawFd>,
    seq: u32,
    polled: usize,
    /// The kqueue is being torn down: its epoll goes with it.
    pub(crate) closing: bool,
    /// The inotify instance and its watches (regular files' growth, EVFILT_VNODE).
    pub(crate) inotify: Inotify,
    /// Scratch list for [`Descriptors::file_edges`].
    edges: Vec<(u32, i16)>,
    /// The identity of the descriptor a change is being applied to, as checked for it (the
    /// number, the file, the lock hold).
    checked: Option<(RawFd, Identity, u64)>,
    /// Counts the kqueue's looks at its epoll for ready descriptors ([`Self::begin_look`]).
    looks: u64,
    /// The current look is a blocking wait's.
    blocking_look: bool,
    /// READ knotes delivered and left off the queue since the current look began (their
    /// level registrations show them): still pending, as the BSDs keep a level knote
    /// queued after its delivery until the next scan finds it inactive.
    shown: usize,
}

/// Epoll user data: a descriptor registration has its number (0..=INT_MAX) in the low 32
/// bits and its sequence number in the high 32; the kqueue's own registrations have a low
/// half of `TAG_BASE` or more, which no descriptor number reaches.
pub(crate) const TAG_BASE: u64 = 0xffff_fff0;

/// Epoll user data of the inotify instance.
pub(crate) const TOKEN_INOTIFY: u64 = TAG_BASE + 8;

/// Low half of the epoll user data of a process descriptor (EVFILT_PROC); the high half
/// carries the process id.
pub(crate) const TAG_PROC: u64 = TAG_BASE + 9;
/// Low half of the epoll user data of a signal's notification descriptor (EVFILT_SIGNAL);
/// the high half carries the signal number.
pub(crate) const TAG_SIGNAL: u64 = TAG_BASE + 10;
/// Epoll user data of the mount table descriptor (EVFILT_FS).
pub(crate) const TOKEN_FS: u64 = TAG_BASE + 11;

/// Whether epoll user data `data` is one of the kqueue's own registrations.
pub(crate) fn is_internal(data: u64) -> bool {
    data as u32 as u64 >= TAG_BASE
}

const READ_INTEREST: u32 = epoll::IN | epoll::RDHUP;
const WRITE_INTEREST: u32 = epoll::OUT;

fn token(fd: RawFd, seq: u32) -> u64 {
    (u64::from(seq) << 32) | fd as u32 as u64
}

/// The mark of an edge in a filter's hint.
const EDGE: i64 = 1 << 40;

/// The hint an edge passes to the filters (its ready bits, marked as an edge).
pub(crate) fn edge_hint(events: u32) -> i64 {
    EDGE | i64::from(events)
}

impl Descriptors {
    /// Records that number `fd` named `file` in lock hold `epoch` (the change being applied
    /// was checked against it).
    pub(crate) fn checked(&mut self, fd: RawFd, file: Identity, epoch: u64) {
        self.checked = Some((fd, file, epoch));
    }

    /// Whether the inotify instance is the only registration in the epoll that delivers
    /// edges: reading it then takes the place of an epoll_wait.
    pub(crate) fn only_inotify(&self) -> bool {
        self.polled == 0 && self.inotify.is_open()
    }

    /// Registrations in the epoll that deliver edges (the inotify instance included).
    pub(crate) fn polled(&self) -> usize {
        self.polled + usize::from(self.inotify.is_open())
    }

    pub(crate) fn contains(&self, fd: RawFd) -> bool {
        self.regs.contains_key(&fd)
    }

    /// The kqueue looks at its epoll for ready descriptors (a zero-timeout epoll_wait, or
    /// the waits of a blocking one, `blocking`): the knotes shown by level registrations
    /// so far are pending no longer unless this look finds them ready again.
    pub(crate) fn begin_look(&mut self, blocking: bool) {
        self.looks += 1;
        self.blocking_look = blocking;
        self.shown = 0;
    }

    /// READ knotes delivered since the last look and left off the queue, their level
    /// registrations showing them: pending until a look finds them not ready.
    pub(crate) fn shown(&self) -> usize {
        self.shown
    }

    /// Whether the READ knote at `fd`, found firing, was pending already: delivered and
    /// left off the queue with no look at the epoll since, or (for an `edge`, reported by a
    /// zero-timeout look) with that look the first since. The BSDs keep such a knote queued,
    /// so that finding it firing again is no new activation.
    fn still_pending(&self, reg: &Reg, edge: bool) -> bool {
        still_pending(reg, self.looks, self.blocking_look, edge)
    }

    /// Whether the registration at `fd` may become a level registration for its READ
    /// knote: the knote is alone on it (EPOLLOUT would be level-triggered too), the number
    /// is one epoll alone vouches for (not `tainted`, not the library's), and the
    /// descriptor's readiness in epoll is exactly the READ filter's condition: pipes and
    /// FIFOs, stream sockets, listening sockets, and the other pollable descriptors
    /// (eventfd, timerfd, ...), whose condition is their readiness. Not kqueues (nested
    /// epolls, watched through their own bookkeeping), ttys (hang-ups and canonical input
    /// differ), datagram sockets (epoll reports an empty datagram, FIONREAD says 0), nor
    /// what epoll cannot hold.
    fn level_ok(&mut self, fd: RawFd) -> bool {
        if self.closing || self.is_tainted(fd) || process::is_library_fd(fd) || !level_on() {
            return false;
        }
        let Some(reg) = self.regs.get_mut(&fd) else {
            return false;
        };
        if reg.write != NIL || reg.empty != NIL || reg.interest != READ_INTEREST {
            return false;
        }
        if reg.level_kind == 0 {
            let ok = match reg.kind {
                Kind::Pipe | Kind::Other | Kind::Counter(_) => true,
                Kind::Socket(s) if s.listening => true,
                Kind::Socket(_) => io::is_stream_socket(sys::borrow(fd)) == Ok(true),
                _ => false,
            };
            reg.level_kind = if ok { 1 } else { 2 };
        }
        reg.level_kind == 1
    }

    /// Arms the registration at `fd` for its READ knote alone: level-triggered and one-shot
    /// (`level`), or edge-triggered. epoll_ctl fails unless the number still names the
    /// registered file (then `false`, and a level registration stays as it is, disarmed if
    /// epoll reported it: one left behind on a file the number no longer names reports it
    /// once at most). Edge-triggered, a descriptor that is ready is reported again at once,
    /// so that no readiness is lost in the switch.
    fn arm(&mut self, epoll_fd: RawFd, fd: RawFd, level: bool) -> bool {
        let Some(reg) = self.regs.get_mut(&fd) else {
            return false;
        };
        let events = if level {
            READ_INTEREST | epoll::ONESHOT
        } else {
            leave_level(reg, self.looks, &mut self.shown);
            reg.interest | epoll::ET
        };
        let (ep, target) = (sys::borrow(epoll_fd), sys::borrow(fd));
        if epoll::modify(ep, target, token(fd, reg.seq), events).is_err() {
            return false;
        }
        if level {
            reg.level = true;
            reg.armed = true;
        }
        true
    }

    /// Records that the READ knote at `fd` was delivered and left off the queue, its level
    /// registration showing it.
    fn show(&mut self, fd: RawFd) {
        if let Some(reg) = self.regs.get_mut(&fd) {
            if !(reg.counted && reg.shown == self.looks) {
                self.shown += 1;
            }
            reg.shown = self.looks;
            reg.counted = true;
        }
    }

    /// The knotes an edge with user data `data` and ready bits `events` concerns.
    pub(crate) fn edge(&mut self, data: u64, events: u32) -> impl Iterator<Item = (u32, i16)> {
        let fd = data as u32 as RawFd;
        let seq = (data >> 32) as u32;
        let mut out = [(NIL, EVFILT_READ), (NIL, EVFILT_WRITE), (NIL, EVFILT_EMPTY)];
        if let Some(reg) = self.regs.get_mut(&fd).filter(|r| r.seq == seq) {
            reg.revents = events;
            if events & (READ_INTEREST | epoll::HUP | epoll::ERR) != 0 {
                out[0].0 = reg.read;
            }
            if events & (WRITE_INTEREST | epoll::HUP | epoll::ERR) != 0 {
                out[1].0 = reg.write;
                // Room was freed in the send buffer: it may be empty now.
                out[2].0 = reg.empty;
            }
        }
        out.into_iter().filter(|(id, _)| *id != NIL)
    }

    fn slot(reg: &mut Reg, filter: i16) -> &mut u32 {
        match filter {
            EVFILT_READ => &mut reg.read,
            EVFILT_WRITE => &mut reg.write,
            EVFILT_EMPTY => &mut reg.empty,
            _ => &mut reg.vnode,
        }
    }

    fn wanted(reg: &Reg) -> u32 {
        let mut w = 0;
        if reg.read != NIL {
            w |= READ_INTEREST;
        }
        if reg.write != NIL || reg.empty != NIL {
            w |= WRITE_INTEREST;
        }
        w
    }

    /// Whether any knote is left on the registration.
    fn used(reg: &Reg) -> bool {
        [reg.read, reg.write, reg.empty, reg.vnode]
            .iter()
            .any(|&id| id != NIL)
    }

    /// The interest `reg` has once its knote of `filter` is gone.
    fn wanted_without(reg: &Reg, filter: i16) -> u32 {
        let mut rest = *reg;
        *Self::slot(&mut rest, filter) = NIL;
        Self::wanted(&rest)
    }

    /// Whether a registration at `fd` may linger in the epoll (see `tainted`).
    fn is_tainted(&self, fd: RawFd) -> bool {
        !self.tainted.is_empty() && self.tainted.contains(&fd)
    }

    /// Whether an EV_ADD of EVFILT_READ on `fd`, which this kqueue has no knote on, may
    /// register it without looking at it first: not a number epoll alone cannot vouch for
    /// (`tainted`), not a known kqueue descriptor, not one of the library's own.
    fn unlooked_ok(&self, fd: RawFd) -> bool {
        !self.is_tainted(fd) && !process::is_kqueue_number(fd) && !process::is_library_fd(fd)
    }

    /// Registers `fd` in `epoll_fd` for knote `id` of EVFILT_READ without looking at it
    /// (`Kind::Unknown`): epoll_ctl checks that the number is open, and reports the
    /// descriptor ready (now, if it is) when there is something to look at. `Ok(false)` if
    /// the kqueue has a knote on it already, or epoll will not take it as it is (a file it
    /// cannot poll, an epoll instance): the caller then looks at it first.
    fn register_unlooked(
        &mut self,
        epoll_fd: RawFd,
        fd: RawFd,
        id: u32,
        epoch: u64,
    ) -> Result<bool, Errno> {
        let hashbrown::hash_map::Entry::Vacant(slot) = self.regs.entry(fd) else {
            return Ok(false);
        };
        let seq = self.seq.wrapping_add(1).max(1);
        let (ep, target) = (sys::borrow(epoll_fd), sys::borrow(fd));
        let data = token(fd, seq);
        let r = match epoll::add(ep, target, data, READ_INTEREST | epoll::ET) {
            // A registration of ours under this number whose knotes were dropped without
            // taking it out (the kqueue's own teardown aside, never here): take it over.
            Err(e) if e.0 == libc::EEXIST => {
                epoll::modify(ep, target, data, READ_INTEREST | epoll::ET)
            }
            r => r,
        };
        match r {
            Ok(()) => {}
            Err(e) if [libc::EPERM, libc::ELOOP, libc::EINVAL].contains(&e.0) => return Ok(false),
            Err(e) => return Err(e),
        }
        self.seq = seq;
        self.polled += 1;
        slot.insert(Reg {
            interest: READ_INTEREST,
            // epoll_ctl just found the number open, and registered the open file it
            // names now.
            verified: epoch,
            read: id,
            ..Reg::new(seq, None, Kind::Unknown)
        });
        Ok(true)
    }

    /// Takes the registration at `fd` as out of the epoll, where it may be left behind under
    /// the number (which no longer names the registered file).
    fn forsake(&mut self, fd: RawFd) {
        if let Some(reg) = self.regs.get_mut(&fd) {
            leave_level(reg, self.looks, &mut self.shown);
            if reg.interest != 0 {
                reg.interest = 0;
                self.polled -= 1;
                self.tainted.insert(fd);
            }
        }
    }

    /// Records knote `id` of `filter` on `fd`, registering the descriptor in `epoll_fd` if
    /// this kqueue had no knote on it yet.
    fn attach(
        &mut self,
        epoll_fd: RawFd,
        fd: RawFd,
        file: Identity,
        kind: Kind,
        filter: i16,
        id: u32,
    ) -> Result<Kind, Errno> {
        if self.regs.contains_key(&fd) {
            let r = self.attach_more(epoll_fd, fd, &file, filter, id);
            if r.is_err() {
                // The knote is discarded: its slot must not name it.
                if let Some(reg) = self.regs.get_mut(&fd) {
                    *Self::slot(reg, filter) = NIL;
                }
            }
            return r;
        }
        let ep = sys::borrow(epoll_fd);
        self.seq = self.seq.wrapping_add(1).max(1);
        let mut reg = Reg::new(self.seq, Some(file), kind);
        *Self::slot(&mut reg, filter) = id;
        // Just looked at (`checked`), and registered below by epoll_ctl, which names the
        // open file the number has now.
        reg.verified = self.checked.map_or(0, |(_, _, e)| e);
        if Self::wanted(&reg) == 0 {
            // EVFILT_VNODE watches through inotify: nothing for the epoll yet.
            if matches!(file.kind, libc::S_IFREG | libc::S_IFDIR | libc::S_IFBLK) {
                reg.kind = Kind::File;
            }
        } else if let Kind::Kqueue(_) = kind {
            // Nest the watched kqueue's epoll in ours, so that its new events (descriptor
            // edges included) reach us with no thread of either awake. epoll refuses loops
            // and deep nesting (ELOOP): the watched kqueue then still tells us of the events
            // it queues itself.
            let want = Self::wanted(&reg);
            if epoll::add(ep, sys::borrow(fd), token(fd, reg.seq), want | epoll::ET).is_ok() {
                reg.interest = want;
                self.polled += 1;
            }
        } else {
            let want = Self::wanted(&reg);
            let target = sys::borrow(fd);
            let added = match epoll::add(ep, target, token(fd, reg.seq), want | epoll::ET) {
                // Registered already under this number: a registration of ours whose
                // knotes were dropped without taking it out. Take it over.
                Err(e) if e.0 == libc::EEXIST => {
                    epoll::modify(ep, target, token(fd, reg.seq), want | epoll::ET)
                }
                r => r,
            };
            match added {
                Ok(()) => {
                    reg.interest = want;
                    self.polled += 1;
                }
                // epoll refuses files that cannot be polled.
                Err(e) if e.0 == libc::EPERM => {
                    reg.kind = match file.kind {
                        libc::S_IFREG | libc::S_IFDIR | libc::S_IFBLK => Kind::File,
                        _ => Kind::Device,
                    };
                }
                Err(e) => return Err(e),
            }
            reg.revents = io::poll_now(target, READ_INTEREST | WRITE_INTEREST).unwrap_or_default();
        }
        if filter == EVFILT_READ && reg.kind == Kind::File && file.kind == libc::S_IFREG {
            reg.wd = self.inotify.add_reader(epoll_fd, fd, &file)?;
        }
        let kind = reg.kind;
        self.regs.insert(fd, reg);
        Ok(kind)
    }

    /// [`Self::attach`] for a descriptor the kqueue has a registration for already.
    fn attach_more(
        &mut self,
        epoll_fd: RawFd,
        fd: RawFd,
        file: &Identity,
        filter: i16,
        id: u32,
    ) -> Result<Kind, Errno> {
        let ep = sys::borrow(epoll_fd);
        let Some(reg) = self.regs.get_mut(&fd) else {
            return Err(Errno::BADF);
        };
        *Self::slot(reg, filter) = id;
        let want = Self::wanted(reg);
        if reg.interest != 0 && want != reg.interest {
            // A WRITE or EMPTY knote joins the READ knote: edge-triggered (interest in
            // EPOLLOUT would be level-triggered too in a level registration).
            leave_level(reg, self.looks, &mut self.shown);
            epoll::modify(ep, sys::borrow(fd), token(fd, reg.seq), want | epoll::ET)?;
            reg.interest = want;
        } else if reg.interest == 0 && want != 0 && !matches!(reg.kind, Kind::File | Kind::Device) {
            // Registered for EVFILT_VNODE only until now (a FIFO): into the epoll.
            let target = sys::borrow(fd);
            match epoll::add(ep, target, token(fd, reg.seq), want | epoll::ET) {
                Err(e) if e.0 == libc::EEXIST => {
                    epoll::modify(ep, target, token(fd, reg.seq), want | epoll::ET)?
                }
                r => r?,
            }
            reg.interest = want;
            self.polled += 1;
            reg.revents = io::poll_now(target, READ_INTEREST | WRITE_INTEREST).unwrap_or_default();
        }
        let kind = reg.kind;
        if filter == EVFILT_READ && kind == Kind::File && file.kind == libc::S_IFREG && reg.wd < 0 {
            let wd = self.inotify.add_reader(epoll_fd, fd, file)?;
            if let Some(reg) = self.regs.get_mut(&fd) {
                reg.wd = wd;
            }
        }
        Ok(kind)
    }

    /// The knotes inotify has news for: EVFILT_READ knotes of regular files that were
    /// modified, and EVFILT_VNODE knotes. Give the list back with [`Self::recycle`].
    pub(crate) fn file_edges(&mut self) -> Vec<(u32, i16)> {
        let mut out = std::mem::take(&mut self.edges);
        out.clear();
        let woken = self.inotify.drain();
        for fd in &woken.readers {
            if let Some(reg) = self.regs.get(fd).filter(|r| r.read != NIL) {
                out.push((reg.read, EVFILT_READ));
            }
        }
        out.extend(woken.vnodes.iter().map(|&id| (id, EVFILT_VNODE)));
        out
    }

    /// Takes back a list [`Self::file_edges`] gave, to reuse its memory.
    pub(crate) fn recycle(&mut self, edges: Vec<(u32, i16)>) {
        self.edges = edges;
    }

    /// Forgets the knote of `filter` on `fd`; the last one takes the descriptor out of the
    /// epoll.
    fn detach(&mut self, epoll_fd: RawFd, fd: RawFd, filter: i16) -> Option<Kind> {
        let hashbrown::hash_map::Entry::Occupied(mut entry) = self.regs.entry(fd) else {
            return None;
        };
        let reg = entry.get_mut();
        *Self::slot(reg, filter) = NIL;
        if filter == EVFILT_READ {
            leave_level(reg, self.looks, &mut self.shown);
        }
        let kind = reg.kind;
        let want = Self::wanted(reg);
        if filter == EVFILT_READ && reg.wd >= 0 {
            let wd = std::mem::replace(&mut reg.wd, -1);
            self.inotify.remove_reader(epoll_fd, fd, wd, self.closing);
        }
        let take_out = if !Self::used(reg) {
            entry.remove().interest != 0
        } else if reg.interest != 0 && want == 0 {
            // Only EVFILT_VNODE is left, which needs no registration.
            reg.interest = 0;
            true
        } else {
            if reg.interest != 0
                && want != reg.interest
                && !self.closing
                && !process::is_library_fd(fd)
            {
                let _ = epoll::modify(
                    sys::borrow(epoll_fd),
                    sys::borrow(fd),
                    token(fd, reg.seq),
                    want | epoll::ET,
                );
                reg.interest = want;
            }
            false
        };
        if take_out {
            self.polled -= 1;
            // Fails if the number was closed or reused meanwhile: the old registration then
            // goes with its file, unless another descriptor keeps that open, and its edges
            // carry a stale sequence number.
            if !self.closing
                && (process::is_library_fd(fd)
                    || epoll::delete(sys::borrow(epoll_fd), sys::borrow(fd)).is_err())
            {
                self.tainted.insert(fd);
            }
        }
        Some(kind)
    }
}

/// [`Descriptors::still_pending`], the current look being `looks` (a blocking wait's:
/// `blocking`).
fn still_pending(reg: &Reg, looks: u64, blocking: bool, edge: bool) -> bool {
    reg.shown != 0 && (reg.shown == looks || edge && !blocking && reg.shown + 1 == looks)
}

/// Bookkeeping of a registration that stops being a level registration (the caller
/// changes or removes it in the epoll): a knote it showed is no longer counted as pending
/// (it is found again by the look that follows, the registration being edge-triggered).
fn leave_level(reg: &mut Reg, looks: u64, shown: &mut usize) {
    if reg.counted && reg.shown == looks {
        *shown = shown.saturating_sub(1);
    }
    reg.counted = false;
    reg.level = false;
    reg.armed = false;
}

/// Whether READ knote `kn` is a plain level knote: none of EV_CLEAR, EV_ONESHOT and
/// EV_DISPATCH, enabled, and no NOTE_LOWAT mark above 1 byte (epoll's readiness starts at
/// one).
fn plain_level(kn: &Knote) -> bool {
    kn.kev.flags & (EV_CLEAR | EV_ONESHOT | EV_DISPATCH) == 0 && !kn.is_disabled() && lowat(kn) <= 1
}

/// Whether level registrations are used: not when `KQ_NO_LEVEL` is set in the environment
/// (every registration is then edge-triggered, for tests and comparisons).
fn level_on() -> bool {
    static STATE: AtomicU8 = AtomicU8::new(0);
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var_os("KQ_NO_LEVEL").is_none();
            STATE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
            on
        }
        v => v == 1,
    }
}

/// What a change of a descriptor filter learnt cheaply about its number (see
/// `Inner::check_descriptor`).
pub(crate) enum Quick {
    /// The number names the file its knotes were registered for; or it carries none in
    /// this kqueue and the change is an EV_ADD whose epoll_ctl finds out for itself.
    Fresh,
    /// The number's knotes are stale (the number was closed, and maybe reused, without our
    /// hearing of it): drop them. `Some(EBADF)`: it is closed.
    Stale(Option<Errno>),
    /// Ask `fstat` (`Inner::check_descriptor`, `is_stale`).
    Slow,
}

/// Checks, for a change `kev` of EVFILT_READ or EVFILT_WRITE, that number `fd` names the
/// file its knotes in this kqueue were registered for, with one epoll_ctl at most: an
/// EV_DELETE takes the knote's interest out of the epoll, which fails unless the number
/// names a file registered under it; any other change asks epoll whether the file is
/// registered (`probe`). A registered file is ours unless the number is `tainted`, which
/// then takes the slow way.
pub(crate) fn quick_check(objs: &mut super::Objects, fd: RawFd, kev: &crate::Kevent) -> Quick {
    let (epoll_fd, epoch) = (objs.epoll, objs.epoch);
    let fds = &mut objs.fds;
    if kev.filter != EVFILT_READ && kev.filter != EVFILT_WRITE {
        return Quick::Slow;
    }
    let tainted = fds.is_tainted(fd);
    let Some(reg) = fds.regs.get_mut(&fd) else {
        let unlooked = kev.filter == EVFILT_READ && kev.flags & EV_ADD != 0;
        return if unlooked && fds.unlooked_ok(fd) {
            Quick::Fresh
        } else {
            Quick::Slow
        };
    };
    if reg.verified == epoch {
        return Quick::Fresh;
    }
    if reg.interest == 0
        || matches!(reg.kind, Kind::Kqueue(_))
        || tainted
        || process::is_library_fd(fd)
    {
        return Quick::Slow;
    }
    let (ep, target, data) = (sys::borrow(epoll_fd), sys::borrow(fd), token(fd, reg.seq));
    let knote = if kev.filter == EVFILT_READ {
        reg.read
    } else {
        reg.write
    };
    let same = if kev.flags & EV_DELETE != 0 && knote != NIL {
        let rest = Descriptors::wanted_without(reg, kev.filter);
        let r = if rest == 0 {
            epoll::delete(ep, target)
        } else {
            epoll::modify(ep, target, data, rest | epoll::ET)
        };
        match r {
            Ok(()) => {
                // Taken out already: the knote's detach finds nothing left to do.
                if kev.filter == EVFILT_READ {
                    leave_level(reg, fds.looks, &mut fds.shown);
                }
                reg.interest = rest;
                if rest == 0 {
                    fds.polled -= 1;
                }
                Ok(true)
            }
            Err(e) if e == Errno::BADF => Err(e),
            Err(_) => Ok(false),
        }
    } else {
        probe(ep, target, data, reg.interest)
    };
    if let Ok(true) = same {
        reg.verified = epoch;
        return Quick::Fresh;
    }
    match same {
        Ok(_) => {
            fds.forsake(fd);
            Quick::Stale(None)
        }
        Err(e) => {
            fds.forsake(fd);
            Quick::Stale(Some(e))
        }
    }
}

/// Whether number `fd` names the open file registered under it in epoll `ep`, asked by
/// registering it again: epoll keys registrations on the pair of open file and number, so
/// that fails with EEXIST exactly when the number still names that open file (a FIFO or tty
/// opened again under the number has the same inode but is another open file, and eventfd,
/// epoll and the like all share one inode). EBADF if the number is closed. One system call,
/// cheaper than `fstat`; Linux takes a system-wide lock for it while the kqueue's epoll is
/// itself watched by another epoll, which costs only under contention.
fn probe(
    ep: BorrowedFd<'_>,
    target: BorrowedFd<'_>,
    data: u64,
    interest: u32,
) -> Result<bool, Errno> {
    match epoll::add(ep, target, data, interest | epoll::ET) {
        Err(e) if e.0 == libc::EEXIST => Ok(true),
        Err(e) if e == Errno::BADF => Err(e),
        // Another file under the number (one epoll cannot poll, among others).
        Err(_) => Ok(false),
        Ok(()) => {
            // Another file under the number: undo the registration just made.
            let _ = epoll::delete(ep, target);
            Ok(false)
        }
    }
}

/// Whether number `fd` no longer names the file registered in `objs` (closed, or closed and
/// reused, without our hearing of it). `now` is the number's current identity. A number
/// found to name its file is not checked again in the same lock hold.
pub(crate) fn is_stale(objs: &mut super::Objects, fd: RawFd, now: &Identity) -> bool {
    let (epoll_fd, epoch) = (objs.epoll, objs.epoch);
    let tainted = objs.fds.is_tainted(fd);
    let Descriptors { regs, inotify, .. } = &mut objs.fds;
    match regs.get_mut(&fd) {
        None => false,
        Some(reg) if reg.verified == epoch => false,
        Some(reg) => {
            let mut same = same_file(epoll_fd, fd, reg, tainted, Some(now));
            if same && reg.interest == 0 {
                // Told by the inode number alone: a file watched through inotify must
                // also still carry its watch (the number may be a new file's).
                let wd = match (reg.wd, reg.vnode) {
                    (wd, _) if wd >= 0 => Some(wd),
                    (_, NIL) => None,
                    (_, id) => Some(inotify.vnode_watch(id)),
                };
                if let Some(wd) = wd {
                    same = inotify.still_watching(fd, wd);
                }
            }
            if same {
                reg.verified = epoch;
            }
            !same
        }
    }
}

/// Whether `fd` still names the open file `reg` was made for. A descriptor in the epoll is
/// checked by epoll (`probe`); where an old registration may linger under the number
/// (`tainted`), its inode must match too. A kqueue is checked by its id; a file that epoll
/// cannot hold by its inode (`now`, or a fresh `fstat`).
fn same_file(epoll_fd: RawFd, fd: RawFd, reg: &Reg, tainted: bool, now: Option<&Identity>) -> bool {
    let target = sys::borrow(fd);
    if process::is_library_fd(fd) && !matches!(reg.kind, Kind::Kqueue(_)) {
        // The number was closed and is now one of the library's own descriptors.
        return false;
    }
    let same_inode = || {
        let Some(file) = reg.file else {
            // Never looked at: registered in the epoll at an untainted number.
            return true;
        };
        now.copied()
            .map_or_else(|| io::identity(target), Ok)
            .is_ok_and(|now| (now.dev, now.ino, now.kind) == (file.dev, file.ino, file.kind))
    };
    match reg.kind {
        Kind::Kqueue(id) => process::lookup_checked(target).is_ok_and(|k| k.id == id),
        _ if reg.interest != 0 => {
            let ep = sys::borrow(epoll_fd);
            probe(ep, target, token(fd, reg.seq), reg.interest).unwrap_or(false)
                && (!tainted || same_inode())
        }
        _ => same_inode(),
    }
}

/// How a descriptor is to be watched.
fn classify(fd: RawFd, file: &Identity, filter: i16, cx: &Context<'_>) -> Result<Kind, Errno> {
    let target = sys::borrow(fd);
    Ok(match file.kind {
        libc::S_IFSOCK => Kind::Socket(io::socket_info(target)?),
        libc::S_IFIFO => Kind::Pipe,
        libc::S_IFCHR => Kind::Char,
        0 => match process::lookup_checked(target) {
            Ok(kq) => {
                // A kqueue is watched with EVFILT_READ only, and not by itself.
                if filter != EVFILT_READ || Weak::ptr_eq(&Arc::downgrade(&kq), cx.kq) {
                    return Err(Errno::INVAL);
                }
                Kind::Kqueue(kq.id)
            }
            Err(_) => counter::kind_of(fd).map_or(Kind::Other, Kind::Counter),
        },
        _ => Kind::Other,
    })
}

/// The errno for a filter (EVFILT_VNODE, EVFILT_EMPTY) that a descriptor's kind refuses:
/// EINVAL where the BSDs have the kind and refuse the filter (sockets, pipes, FIFOs, ttys,
/// kqueues, eventfds, timerfds, files for EVFILT_EMPTY), the personality's answer for kinds
/// with no kqueue support at all (block devices, and Linux-only descriptors).
pub(super) fn refused(fd: RawFd, kind: u32, cx: &Context<'_>) -> Errno {
    let unsupported = match kind {
        libc::S_IFBLK => true,
        0 => io::anon_inode_kind(sys::borrow(fd))
            .is_some_and(|k| !matches!(k.as_str(), "eventfd" | "timerfd" | "eventpoll")),
        _ => false,
    };
    if unsupported {
        cx.personality.unsupported_fd()
    } else {
        Errno::INVAL
    }
}

/// Attaches knote `kn` of descriptor filter `filter` (READ, WRITE, EMPTY, VNODE): registers
/// its descriptor. Returns the file's identity.
pub(super) fn attach(kn: &mut Knote, filter: i16, cx: &mut Context<'_>) -> Result<Identity, Errno> {
    let fd = sys::fd_number(kn.kev.ident)?;
    let target = sys::borrow(fd);
    let file = match cx.objs.fds.checked {
        Some((n, file, epoch)) if n == fd && epoch == cx.objs.epoch => file,
        _ => io::identity(target)?,
    };
    let kind = match cx.objs.fds.regs.get(&fd).map(|r| r.kind) {
        Some(Kind::Unknown) => look_as(fd, file, cx)?,
        Some(kind) => kind,
        None => classify(fd, &file, filter, cx)?,
    };
    // EVFILT_EMPTY is the sockets' (the BSDs' pipes, FIFOs, files and kqueues refuse it).
    if filter == EVFILT_EMPTY && !matches!(kind, Kind::Socket(_)) {
        return Err(refused(fd, file.kind, cx));
    }
    if filter == EVFILT_WRITE {
        if matches!(kind, Kind::Kqueue(_)) {
            return Err(Errno::INVAL);
        }
        if let Some(e) = match kind {
            Kind::Counter(c) => counter::refuses_write(c),
            _ => None,
        } {
            return Err(e);
        }
        // A pipe whose reader is gone cannot be written: NetBSD says EBADF, FreeBSD EPIPE.
        if kind == Kind::Pipe && io::poll_now(target, epoll::OUT).is_ok_and(|r| r & epoll::ERR != 0)
        {
            return Err(cx.personality.write_to_readerless_pipe());
        }
    }
    let epoll_fd = cx.objs.epoll;
    let fresh = !cx.objs.fds.contains(fd);
    let kind = cx
        .objs
        .fds
        .attach(epoll_fd, fd, file, kind, filter, cx.id)?;
    if fresh {
        watch_kqueue(kind, fd, cx);
    }
    process::knote_attached(fd, cx.objs.kq);
    Ok(file)
}

/// EVFILT_READ's attach: a descriptor this kqueue has no knote on is registered without a
/// look where it can be (see the module's documentation).
fn attach_read(kn: &mut Knote, cx: &mut Context<'_>) -> Result<(), Errno> {
    let fd = sys::fd_number(kn.kev.ident)?;
    if cx.objs.fds.unlooked_ok(fd) {
        let (epoll_fd, epoch) = (cx.objs.epoll, cx.objs.epoch);
        if cx.objs.fds.register_unlooked(epoll_fd, fd, cx.id, epoch)? {
            process::knote_attached(fd, cx.objs.kq);
            kn.hookid = unlooked(epoch);
            return Ok(());
        }
    }
    attach(kn, EVFILT_READ, cx).map(|_| ())
}

/// `hookid` of a knote whose descriptor was registered without a look in lock hold
/// `epoch` (an evaluation leaves 0, or an odd value: see `event`).
fn unlooked(epoch: u64) -> u64 {
    epoch << 1
}

/// A READ knote on a kqueue descriptor: the watched kqueue keeps its readability exact
/// and tells this one of its new events.
fn watch_kqueue(kind: Kind, fd: RawFd, cx: &Context<'_>) {
    if let Kind::Kqueue(id) = kind {
        if let Some(watched) = process::lookup_id(id) {
            watched.expose();
            watched.add_watcher(cx.kq.clone(), fd as usize);
        }
    }
}

/// Finds out what descriptor `fd`, registered without a look (`Kind::Unknown`, which only
/// has a READ knote), is; the caller checks afterwards that the number still names the
/// registered file.
fn look(fd: RawFd, cx: &mut Context<'_>) -> Result<Kind, Errno> {
    let file = io::identity(sys::borrow(fd))?;
    // A kqueue is checked by its id only (`same_file`), which says nothing of the file
    // registered: an anonymous inode (a kqueue maybe) must be the registered file itself,
    // not one that took the number since (epoll answers, `probe`).
    if file.kind == 0 {
        let reg = cx.objs.fds.regs.get(&fd).ok_or(Errno::BADF)?;
        let (ep, target) = (sys::borrow(cx.objs.epoll), sys::borrow(fd));
        if !probe(ep, target, token(fd, reg.seq), reg.interest)? {
            return Err(Errno::BADF);
        }
    }
    look_as(fd, file, cx)
}

/// [`look`], the number's identity being `file`.
fn look_as(fd: RawFd, file: Identity, cx: &mut Context<'_>) -> Result<Kind, Errno> {
    let kind = classify(fd, &file, EVFILT_READ, cx)?;
    let reg = cx.objs.fds.regs.get_mut(&fd).ok_or(Errno::BADF)?;
    reg.file = Some(file);
    reg.kind = kind;
    watch_kqueue(kind, fd, cx);
    Ok(kind)
}

/// Undoes [`attach`].
pub(super) fn detach(kn: &mut Knote, filter: i16, cx: &mut Context<'_>) {
    let fd = kn.kev.ident as RawFd;
    let epoll_fd = cx.objs.epoll;
    if let Some(Kind::Kqueue(id)) = cx.objs.fds.detach(epoll_fd, fd, filter) {
        if let Some(watched) = process::lookup_id(id) {
            watched.remove_watcher(cx.kq, kn.kev.ident);
        }
    }
    process::knote_detached(fd, cx.objs.kq);
}

/// The state of a descriptor as a filter reports it.
struct Status {
    active: bool,
    data: i64,
    eof: bool,
    /// The socket's pending error was seen (take it).
    error: bool,
}

/// The low-water mark: NOTE_LOWAT's value, else 1.
fn lowat(kn: &Knote) -> i64 {
    if kn.sfflags & NOTE_LOWAT != 0 {
        kn.sdata.max(1)
    } else {
        1
    }
}

fn read_status(fd: RawFd, reg: &Reg, kn: &Knote, p: Personality) -> Result<Status, Errno> {
    let target = sys::borrow(fd);
    let rev = reg.revents;
    let mark = lowat(kn);
    let level = |data: i64, eof: bool, error: bool| Status {
        active: data >= mark || eof || error,
        data,
        eof,
        error,
    };
    // An eventfd's counter, a timerfd's expirations (readiness alone without /proc).
    if let Kind::Counter(c) = reg.kind {
        if let Some(n) = counter::read(fd, c, p) {
            return Ok(Status {
                active: n.active,
                data: n.data,
                eof: false,
                error: false,
            });
        }
    }
    Ok(match reg.kind {
        Kind::Socket(s) if s.listening => {
            let data = if s.tcp {
                io::tcp_accept_queue(target)?
            } else {
                i64::from(io::poll_now(target, epoll::IN)? & epoll::IN != 0)
            };
            level(data, false, false)
        }
        Kind::Socket(_) => match io::readable_bytes(target) {
            // The receive side shut down (peer closed or shut down writing, or reset):
            // end of file. A stream socket never connected reports a hang-up alone, which
            // is no end of file (the BSDs report nothing for it).
            Ok(data) => level(data, rev & epoll::RDHUP != 0, rev & epoll::ERR != 0),
            // Not readable that way: it became a listening socket after it was registered.
            Err(e) if e.0 == libc::EINVAL => {
                let s = io::socket_info(target)?;
                let data = if s.tcp {
                    io::tcp_accept_queue(target)?
                } else {
                    i64::from(io::poll_now(target, epoll::IN)? & epoll::IN != 0)
                };
                level(data, false, false)
            }
            Err(e) => return Err(e),
        },
        // The hang-up of the last edge may be over: a FIFO whose writers all closed gets a
        // new writer without any edge (no data). Asked again only when the edge said so.
        Kind::Pipe => {
            let hup = rev & epoll::HUP != 0 && io::poll_now(target, epoll::IN)? & epoll::HUP != 0;
            level(io::readable_bytes(target)?, hup, false)
        }
        Kind::Char | Kind::Other | Kind::Counter(_) => {
            let now = io::poll_now(target, epoll::IN)?;
            let data = io::readable_bytes(target).unwrap_or(0);
            Status {
                active: now & epoll::IN != 0 && (data >= mark || reg.kind != Kind::Char)
                    || now & epoll::HUP != 0,
                data,
                eof: now & epoll::HUP != 0,
                error: false,
            }
        }
        Kind::File => {
            let offset = io::offset(target).unwrap_or(0);
            let size = io::identity(target)?.size;
            let data = size - offset;
            Status {
                active: data != 0,
                data,
                eof: false,
                error: false,
            }
        }
        Kind::Device => Status {
            active: true,
            data: 0,
            eof: false,
            error: false,
        },
        Kind::Kqueue(_) | Kind::Unknown => level(0, false, false),
    })
}

/// A tty's output buffer is not visible to programs; N_TTY's is 4 KiB.
const TTY_OUTPUT_ROOM: i64 = 4096;

fn write_status(fd: RawFd, reg: &Reg, kn: &Knote, p: Personality) -> Result<Status, Errno> {
    let target = sys::borrow(fd);
    let mark = lowat(kn);
    let ready = |now: u32, data: i64, eof: bool, error: bool| Status {
        active: now & epoll::OUT != 0 && data >= mark || eof || error,
        data,
        eof,
        error,
    };
    // An eventfd's counter (readiness alone without /proc; a timerfd has no WRITE knote).
    if reg.kind == Kind::Counter(Counter::EventFd) {
        if let Some(n) = counter::write(fd, p) {
            return Ok(Status {
                active: n.active,
                data: n.data,
                eof: false,
                error: false,
            });
        }
    }
    Ok(match reg.kind {
        Kind::Socket(_) => {
            let now = io::poll_now(target, epoll::OUT | epoll::RDHUP)?;
            let hup = now & epoll::HUP != 0;
            let error = now & epoll::ERR != 0;
            // Hung up with the receive side still open and no error: a stream socket that
            // was never connected, which cannot be written to (not ready, no end of file).
            if hup && now & epoll::RDHUP == 0 && !error {
                return Ok(Status {
                    active: false,
                    data: 0,
                    eof: false,
                    error: false,
                });
            }
            let free = io::send_buffer_size(target)? - io::queued_for_output(target).unwrap_or(0);
            ready(now, free.max(0), hup, error)
        }
        Kind::Pipe => {
            let now = io::poll_now(target, epoll::OUT)?;
            let free = io::pipe_capacity(target)? - io::readable_bytes(target)?;
            ready(now, free.max(0), now & epoll::ERR != 0, false)
        }
        Kind::Char => {
            let now = io::poll_now(target, epoll::OUT)?;
            let queued = io::queued_for_output(target).unwrap_or(0);
            ready(
                now,
                (TTY_OUTPUT_ROOM - queued).max(0),
                now & epoll::HUP != 0,
                false,
            )
        }
        Kind::Other | Kind::Counter(_) => {
            let now = io::poll_now(target, epoll::OUT)?;
            Status {
                active: now & epoll::OUT != 0,
                data: 0,
                eof: false,
                error: false,
            }
        }
        Kind::File | Kind::Device => Status {
            active: true,
            data: 0,
            eof: false,
            error: false,
        },
        Kind::Kqueue(_) | Kind::Unknown => Status {
            active: false,
            data: 0,
            eof: false,
            error: false,
        },
    })
}

/// EVFILT_EMPTY: active while nothing is left in the send buffer (unsent or, on TCP,
/// unacknowledged), `data` what is left. `SIOCOUTQ` counts bytes on TCP, buffer memory on
/// AF_UNIX (0 once the peer has read everything). A listening socket is always empty.
fn empty_status(fd: RawFd, reg: &Reg) -> Result<Status, Errno> {
    let listening = matches!(reg.kind, Kind::Socket(s) if s.listening);
    let queued = if listening {
        Ok(0)
    } else {
        io::unsent(sys::borrow(fd))
    };
    let data = match queued {
        Ok(q) => q,
        // Linux refuses SIOCOUTQ on a TCP socket that became a listener after it was
        // registered.
        Err(e) if e.0 == libc::EINVAL => 0,
        Err(e) => return Err(e),
    };
    Ok(Status {
        active: data == 0,
        data,
        eof: false,
        error: false,
    })
}

/// Whether number `fd` still names the file its knotes were registered for (checked at most
/// once per lock hold), for filters that read a file's state elsewhere than through the
/// number.
pub(super) fn still_names(cx: &mut Context<'_>, fd: RawFd) -> bool {
    let (epoll_fd, epoch) = (cx.objs.epoll, cx.objs.epoch);
    let tainted = cx.objs.fds.is_tainted(fd);
    let Some(reg) = cx.objs.fds.regs.get_mut(&fd) else {
        return false;
    };
    if reg.verified == epoch {
        return true;
    }
    let same = same_file(epoll_fd, fd, reg, tainted, None);
    if same {
        reg.verified = epoch;
    }
    same
}

/// Records that number `fd` was just seen to name its registered file (by a filter that
/// checked it itself), so that it is not checked again in this lock hold.
pub(super) fn seen_naming(cx: &mut Context<'_>, fd: RawFd) {
    let epoch = cx.objs.epoch;
    if let Some(reg) = cx.objs.fds.regs.get_mut(&fd) {
        reg.verified = epoch;
    }
}

/// Evaluates knote `kn` of `filter`: reads the descriptor's state, then, if it is to be
/// reported, checks that the number still names the registered file (so that the state
/// read was that file's).
pub(super) fn event(kn: &mut Knote, filter: i16, hint: i64, cx: &mut Context<'_>) -> bool {
    let fd = kn.kev.ident as RawFd;
    let epoch = cx.objs.epoch;
    // Found active in this lock hold already (an edge taken in just before the delivery):
    // nothing can have changed that a second look would see.
    let fresh = (epoch << 1) | 1;
    if hint == 0 && kn.hookid == fresh {
        return true;
    }
    // Registered without a look in this lock hold: nothing to see before epoll reports it.
    if hint == 0 && kn.hookid == unlooked(epoch) {
        return false;
    }
    let Some(mut reg) = cx.objs.fds.regs.get(&fd).copied() else {
        return false;
    };
    if reg.level && filter == EVFILT_READ {
        if hint & EDGE != 0 {
            return level_report(kn, fd, cx);
        }
        if reg.armed && !kn.is_active() {
            // Delivered and left off the queue (a change re-evaluates it): epoll reports
            // the descriptor if it is ready, which queues the knote.
            return false;
        }
    }
    if reg.kind == Kind::Unknown {
        // Registered without a look: until epoll reports it ready there is nothing to see
        // (it reports it at once if it was ready when registered).
        if hint == 0 {
            return false;
        }
        match look(fd, cx).ok().and(cx.objs.fds.regs.get(&fd)) {
            Some(looked) => reg = *looked,
            None => return false,
        }
    }
    let tainted = cx.objs.fds.is_tainted(fd);
    if let Kind::Kqueue(id) = reg.kind {
        if reg.verified != epoch && !same_file(cx.objs.epoll, fd, &reg, tainted, None) {
            return false;
        }
        return kqueue_event(kn, id, hint);
    }
    let status = match filter {
        EVFILT_READ => read_status(fd, &reg, kn, cx.personality),
        EVFILT_WRITE => write_status(fd, &reg, kn, cx.personality),
        _ => empty_status(fd, &reg),
    };
    let Ok(status) = status else {
        if reg.level && !reg.armed && filter == EVFILT_READ {
            // Not arming it again would lose its events if the number still names it.
            let _ = cx.objs.fds.arm(cx.objs.epoll, fd, false);
        }
        return false;
    };
    // What is reported was read from the registered file: check that the number still
    // names it. A knote found inactive reports nothing, whatever file it looked at.
    let verify = status.active && reg.verified != epoch;
    // A level registration that epoll reported is disarmed; epoll_ctl arming it again
    // checks the number too.
    let arm = if reg.level && !reg.armed && filter == EVFILT_READ {
        Some(level_rearm(
            &reg,
            &status,
            plain_level(kn),
            cx.objs.fds.looks,
        ))
    } else {
        None
    };
    let rearmed = arm.is_some();
    if let Some(level) = arm {
        if !cx.objs.fds.arm(cx.objs.epoll, fd, level) {
            return false;
        }
    } else if verify && !same_file(cx.objs.epoll, fd, &reg, tainted, None) {
        return false;
    }
    if status.active && filter == EVFILT_READ {
        cx.quiet = cx.objs.fds.still_pending(&reg, hint & EDGE != 0);
    }
    let Some(reg) = cx.objs.fds.regs.get_mut(&fd) else {
        return false;
    };
    if verify || rearmed {
        reg.verified = epoch;
    }
    if !status.active && filter == EVFILT_READ {
        reg.drained = true;
    }
    kn.kev.data = status.data as isize;
    if status.error && matches!(reg.kind, Kind::Socket(_)) {
        let e = io::take_socket_error(sys::borrow(fd));
        if e != 0 {
            reg.error = e;
        }
    }
    if status.eof || status.error {
        kn.kev.flags |= EV_EOF;
        kn.kev.fflags = reg.error as u32;
    } else {
        kn.kev.flags &= !EV_EOF;
        kn.kev.fflags = 0;
    }
    kn.hookid = if status.active { fresh } else { 0 };
    status.active
}

/// How the evaluation of a READ knote whose level registration epoll reported (and so
/// disarmed) arms it again, having found `status` (`plain`: the knote is plain level):
/// level-triggered (true) or edge-triggered (false).
/// - Reported in this look and firing: level-triggered again (the knote is then delivered
///   and left off the queue), unless the report found it still pending from the look
///   before: delivered and not drained, it seems. Then edge-triggered, the knote staying
///   queued and looked at by each scan (which costs less than arming a ready descriptor
///   again at every delivery), until a scan finds it drained and its next delivery makes
///   the registration level-triggered again (`Reg::drained`). Not left disarmed: the
///   edges of the registration carry the end of file and errors that `read_status` reads.
/// - Reported in this look and not firing: epoll and the filter disagree (an unconnected
///   socket's hang-up, an empty datagram; or the data was read meanwhile):
///   edge-triggered, so that a blocking wait does not return for it again and again.
/// - Reported in an earlier look (taken in by a change or a watching kqueue): firing,
///   edge-triggered as a knote still pending; found drained, level-triggered again.
fn level_rearm(reg: &Reg, status: &Status, plain: bool, looks: u64) -> bool {
    let fresh = reg.reported == looks;
    if status.active {
        plain && fresh && !reg.continued
    } else {
        plain && !fresh
    }
}

/// A report of the level registration of READ knote `kn`: epoll found the descriptor
/// ready, and disarmed the one-shot registration. The knote fires without a look at the
/// descriptor: its state is read, and the registration armed again, when it is delivered
/// (`kn.hookid` is cleared so that the delivery looks). It was pending already if it was
/// delivered and left off the queue just before this look, which found it still ready.
fn level_report(kn: &mut Knote, fd: RawFd, cx: &mut Context<'_>) -> bool {
    let fds = &mut cx.objs.fds;
    let Some(reg) = fds.regs.get_mut(&fd) else {
        return false;
    };
    let still = still_pending(reg, fds.looks, fds.blocking_look, true);
    reg.armed = false;
    reg.reported = fds.looks;
    reg.continued = still;
    cx.quiet = still;
    kn.hookid = 0;
    true
}

/// After a delivery of READ knote `kn`: whether it may stay off the queue, its
/// registration level-triggered (made so now if it is not, and may be). epoll then
/// reports the descriptor again for as long as it is ready, which queues the knote again,
/// and the kqueue descriptor is readable exactly while it is.
fn level_delivered(kn: &Knote, cx: &mut Context<'_>) -> bool {
    if !plain_level(kn) {
        return false;
    }
    let fd = kn.kev.ident as RawFd;
    let epoll_fd = cx.objs.epoll;
    let fds = &mut cx.objs.fds;
    let Some(reg) = fds.regs.get_mut(&fd) else {
        return false;
    };
    let drained = std::mem::replace(&mut reg.drained, false);
    let (level, armed) = (reg.level, reg.armed);
    let shown = match (level, armed) {
        // Armed by the evaluation just made (`level_rearm`).
        (true, true) => true,
        // Disarmed by a report that came after it: edge-triggered then, the knote
        // staying queued.
        (true, false) => {
            let _ = fds.arm(epoll_fd, fd, false);
            false
        }
        // Not while the knote stays ready across deliveries (`level_rearm`).
        (false, _) => drained && fds.level_ok(fd) && fds.arm(epoll_fd, fd, true),
    };
    if shown {
        fds.show(fd);
    }
    shown
}

/// After a change `flags` to READ knote `kn`: a knote disabled, or no longer plain level
/// (NOTE_LOWAT, FreeBSD's EV_FORCEONESHOT), goes back to an edge-triggered registration.
fn level_changed(kn: &Knote, flags: u16, cx: &mut Context<'_>) {
    let fd = kn.kev.ident as RawFd;
    let level = cx.objs.fds.regs.get(&fd).is_some_and(|r| r.level);
    if level && (flags & EV_DISABLE != 0 || !plain_level(kn)) {
        let epoll_fd = cx.objs.epoll;
        // On failure (the number names another file now) the registration left behind is
        // one-shot: it reports once at most.
        let _ = cx.objs.fds.arm(epoll_fd, fd, false);
    }
}

/// EVFILT_READ on a kqueue: active while it has pending events, `data` their number. An
/// edge (the watched kqueue's epoll, nested in ours, became ready) counts only if the
/// watched kqueue queued something new since the last edge we took (`hook` holds its
/// activation count then): its own bookkeeping after an activation can ready its epoll a
/// second time, which must not make an EV_CLEAR watcher report the same activation twice.
fn kqueue_event(kn: &mut Knote, id: u64, hint: i64) -> bool {
    let Some(watched) = process::lookup_id(id) else {
        return false;
    };
    let pending = watched.refresh();
    kn.kev.data = pending as isize;
    if hint & (1 << 40) != 0 {
        let seen = watched.activations();
        if seen == kn.hook {
            return false;
        }
        kn.hook = seen;
    }
    pending > 0
}

/// EVFILT_READ.
pub(crate) struct ReadFilter;

impl Filter for ReadFilter {
    fn is_fd(&self) -> bool {
        true
    }

    fn attach(&self, kn: &mut Knote, cx: &mut Context<'_>) -> Result<(), Errno> {
        attach_read(kn, cx)
    }

    fn detach(&self, kn: &mut Knote, cx: &mut Context<'_>) {
        detach(kn, EVFILT_READ, cx)
    }

    fn event(&self, kn: &mut Knote, hint: i64, cx: &mut Context<'_>) -> bool {
        event(kn, EVFILT_READ, hint, cx)
    }

    fn touch(
        &self,
        kn: &mut Knote,
        kev: &mut Kevent,
        ty: Touch,
        cx: &mut Context<'_>,
    ) -> Result<(), Errno> {
        super::default_touch(kn, kev, ty);
        match ty {
            Touch::Register => level_changed(kn, kev.flags, cx),
            Touch::Process => cx.shown = level_delivered(kn, cx),
        }
        Ok(())
    }
}

/// EVFILT_WRITE.
pub(crate) struct WriteFilter;

impl Filter for WriteFilter {
    fn is_fd(&self) -> bool {
        true
    }

    fn attach(&self, kn: &mut Knote, cx: &mut Context<'_>) -> Result<(), Errno> {
        attach(kn, EVFILT_WRITE, cx).map(|_| ())
    }

    fn detach(&self, kn: &mut Knote, cx: &mut Context<'_>) {
        detach(kn, EVFILT_WRITE, cx)
    }

    fn event(&self, kn: &mut Knote, hint: i64, cx: &mut Context<'_>) -> bool {
        event(kn, EVFILT_WRITE, hint, cx)
    }
}
