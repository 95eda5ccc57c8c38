//! EVFILT_PROC: a process's exit with its wait(2) status, its forks and execs, and
//! NOTE_TRACK, which follows every descendant (NetBSD's rules; the exit rules of FreeBSD
//! where the personality says so).
//!
//! Exits. A kqueue watches a process through a process descriptor (pidfd) in its epoll, one
//! per (kqueue, pid), which becomes readable when the process has exited; nothing is ever
//! reaped. The status is then read:
//! - of a child, with `waitid(WNOWAIT)`; the knote fires only once `waitid` says the child
//!   can be waited for, so the program can reap it as soon as it has read NOTE_EXIT;
//! - of another process, from `PIDFD_GET_INFO` once its parent reaped it (Linux 6.15), or
//!   from `/proc/<pid>/stat` while it is a zombie; failing both (reaped on an older kernel,
//!   or not ours to read), from the connector's exit event where the knote listens to the
//!   connector, else 0.
//!
//! Without process descriptors (Linux before 5.3, or `KQ_NO_PIDFD`), a child is polled
//! (`procmon::POLL`); another process cannot be watched (EOPNOTSUPP), except by the
//! tracking knotes of NOTE_TRACK, which learn its exit from the connector.
//!
//! Forks and execs come from the process events connector, through the process monitor
//! (`procmon`), which posts them here in the order Linux reported them. A knote that
//! listens to the connector takes its exit from a pidfd (or `waitid`) as above, but
//! reports it only once the connector has reported it too: the forks the process made
//! before exiting are then reported (and tracked) first, as on the BSDs, where they happen
//! in the kernel before the exit.
//!
//! NOTE_TRACK: on each fork of a tracked process the filter asks the engine for two new
//! knotes in the same kqueue (NetBSD's `knote_proc_fork_track`): a NOTE_CHILD record
//! (one-shot, not indexed: the child's own knote has the same key) and a knote tracking
//! the child with the parent's interest. FreeBSD's personality asks for one, the two
//! merged (see `Personality::proc_track_merges_child`). EV_FLAG1 marks the tracking knote
//! for `attach`, as in the old BSD kernels: no zombie check, and a child already reaped is
//! followed through the connector.

use super::procmon::{self, hint};
use super::{Context, Filter, Spawn, Touch};
use crate::consts::*;
use crate::kevent::{Errno, Kevent};
use crate::knote::Knote;
use crate::personality::Personality;
use crate::process;
use crate::sys::{self, epoll, io, pidfd, Fd};
use hashbrown::HashMap;
use rustix::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Processes watched in the whole process (registrations of every kqueue).
static WATCHED: AtomicUsize = AtomicUsize::new(0);

/// Whether a kqueue of this process watches a process (kevent() then keeps an ignored
/// SIGCHLD from ending its sleeps).
pub(crate) fn watching() -> bool {
    WATCHED.load(Ordering::Relaxed) > 0
}

/// What a process's descriptor or `waitid` said of its exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Known(i32),
    /// It exited, but the status could not be read.
    Unknown,
}

/// One watched process of one kqueue: the kqueue's knote on it (EVFILT_PROC has one per
/// pid per kqueue) and how its exit is seen.
struct Reg {
    knote: u32,
    /// In the kqueue's epoll until the exit.
    pidfd: Option<Fd>,
    /// The process monitor polls this child.
    polled: bool,
    /// Neither descriptor nor poll: the exit comes from the connector.
    by_connector: bool,
    /// The connector events the knote gets (`procmon::listen`).
    listen: u32,
    /// The exit was seen and is waiting for the connector's word.
    pending: Option<Status>,
    /// The connector reported the exit, with this status.
    conn_exit: Option<i32>,
    /// The exit was reported to the knote.
    done: bool,
}

/// The processes one kqueue watches.
#[derive(Default)]
pub(crate) struct Procs {
    regs: HashMap<i32, Reg>,
    /// Process descriptors in the epoll.
    polled: usize,
    /// (lock hold, whether the caller is root then), see `attach`.
    root: (u64, bool),
}

impl Procs {
    /// Registrations in the epoll that deliver edges.
    pub(crate) fn polled(&self) -> usize {
        self.polled
    }

    /// The knote of the process whose descriptor became readable.
    pub(crate) fn edge(&self, pid: i32) -> Option<u32> {
        self.regs
            .get(&pid)
            .filter(|r| r.pidfd.is_some())
            .map(|r| r.knote)
    }
}

/// Epoll user data of the descriptor of process `pid`.
fn token(pid: i32) -> u64 {
    super::fd::TAG_PROC | (u64::from(pid as u32) << 32)
}

/// The pid in epoll user data `data`, if it is a process descriptor's.
pub(crate) fn pid_of_token(data: u64) -> Option<i32> {
    (data as u32 as u64 == super::fd::TAG_PROC).then_some((data >> 32) as u32 as i32)
}

/// The hint of a readable process descriptor.
pub(crate) const EDGE: i64 = hint::EDGE << 32;

/// `ident` as a pid: ESRCH for what cannot be one.
fn pid(ident: usize) -> Result<i32, Errno> {
    i32::try_from(ident)
        .ok()
        .filter(|&p| p > 0)
        .ok_or(Errno(libc::ESRCH))
}

/// The connector events knote interest `sfflags` needs. A knote that listens at all also
/// takes the exit from the connector (see the module comment).
fn wanted(sfflags: u32) -> u32 {
    let mut m = 0;
    if sfflags & (NOTE_FORK | NOTE_TRACK) != 0 {
        m |= procmon::FORK;
    }
    if sfflags & NOTE_EXEC != 0 {
        m |= procmon::EXEC;
    }
    if m != 0 {
        m |= procmon::EXIT;
    }
    m
}

/// NetBSD's permission rule: the caller is root, or the process has the caller's real user
/// id as its real, effective and saved ids, and has not changed group ids either (Linux
/// keeps no record of a past set-id exec: changed ids stand for it). When the ids cannot be
/// read, the process is let through.
fn permitted(pid: i32, fd: Option<BorrowedFd<'_>>, root: bool) -> bool {
    if root {
        return true;
    }
    let ids = fd.and_then(pidfd::ids).or_else(|| pidfd::proc_ids(pid));
    let Some(ids) = ids else {
        return true;
    };
    let me = pidfd::real_uid();
    ids.uid.iter().all(|&u| u == me) && ids.gid[1] == ids.gid[0] && ids.gid[2] == ids.gid[0]
}

/// Closes a process descriptor. Closing it takes it out of the kqueue's epoll too (the
/// library never duplicates it); where a forked child still holds a copy, the registration
/// stays until that copy goes, and its edges find no registration, or one with a
/// descriptor of its own that the filter reads instead.
fn close_pidfd(fd: Fd) {
    process::close_library_fd(fd);
}

/// The status of a process that is not (or no longer) a child of ours.
fn other_status(pid: i32, fd: Option<BorrowedFd<'_>>) -> Status {
    let Some(fd) = fd else {
        return Status::Unknown;
    };
    if let Some(s) = pidfd::exit_info(fd) {
        return Status::Known(s);
    }
    // A zombie: /proc has its status. The descriptor says whether it was still unreaped
    // after /proc was read, so that the pid was not yet anyone else's.
    if let Some((state, code)) = pidfd::proc_stat(pid) {
        if matches!(state, b'Z' | b'X') && pidfd::unreaped(fd) {
            return Status::Known(code);
        }
    }
    // Reaped meanwhile.
    pidfd::exit_info(fd).map_or(Status::Unknown, Status::Known)
}

/// The parts of a kqueue's objects the filter works on.
struct Here<'a> {
    procs: &'a mut Procs,
    epoll: RawFd,
    kq: u64,
}

impl<'a> Here<'a> {
    fn new(cx: &'a mut Context<'_>) -> Here<'a> {
        let objs = &mut *cx.objs;
        Here {
            procs: &mut objs.procs,
            epoll: objs.epoll,
            kq: objs.kq,
        }
    }

    /// Stops watching `pid` (the exit was reported, or the knote goes): descriptor, poll,
    /// connector.
    fn release(&mut self, pid: i32) {
        let Some(reg) = self.procs.regs.get_mut(&pid) else {
            return;
        };
        if let Some(fd) = reg.pidfd.take() {
            self.procs.polled -= 1;
            close_pidfd(fd);
        }
        if std::mem::take(&mut reg.polled) {
            procmon::unpoll(pid, self.kq);
        }
        if std::mem::take(&mut reg.listen) != 0 {
            let _ = procmon::listen(pid, self.kq, 0);
        }
    }
}

/// Reports the exit of the knote's process with wait status `status` (NetBSD's
/// `knote_proc_exit`, FreeBSD's `filt_proc` on NOTE_EXIT).
fn report_exit(kn: &mut Knote, status: i32, here: &mut Here<'_>, p: Personality) {
    let pid = kn.kev.ident as i32;
    here.release(pid);
    if let Some(reg) = here.procs.regs.get_mut(&pid) {
        reg.done = true;
        reg.pending = None;
    }
    kn.kev.flags |= EV_EOF | EV_ONESHOT;
    kn.kev.fflags |= kn.sfflags & NOTE_EXIT;
    if p.proc_exit_needs_interest() {
        if kn.kev.fflags & NOTE_EXIT != 0 {
            kn.kev.data = status as isize;
        }
        if kn.kev.fflags == 0 {
            kn.kev.flags |= EV_DROP;
        }
    } else {
        kn.kev.data = status as isize;
    }
}

/// The process exited (its descriptor or `waitid` says so) with `status`: report it, unless
/// the knote listens to the connector and the connector has not reported it yet.
fn exited(kn: &mut Knote, status: Status, here: &mut Here<'_>, p: Personality) {
    let pid = kn.kev.ident as i32;
    let Some(reg) = here.procs.regs.get_mut(&pid) else {
        return;
    };
    if reg.listen != 0 && reg.conn_exit.is_none() {
        reg.pending = Some(status);
        return;
    }
    let code = match status {
        Status::Known(s) => s,
        Status::Unknown => reg.conn_exit.unwrap_or(0),
    };
    report_exit(kn, code, here, p);
}

/// How a knote comes to watch a process: its descriptor (if any) and whether the process
/// monitor must poll it or the connector tell of its exit.
struct Watch {
    pidfd: Option<Fd>,
    polled: bool,
    /// Its exit can only come from the connector.
    by_connector: bool,
    /// Already exited when the knote was made.
    exited: bool,
}

impl Watch {
    fn connector() -> Watch {
        Watch {
            pidfd: None,
            polled: false,
            by_connector: true,
            exited: false,
        }
    }
}

/// Finds process `pid` for a new knote. `tracking`: a knote made by NOTE_TRACK for a
/// child just born, which is never refused for having exited (nor for being gone: the
/// connector then tells of its exit). A process descriptor is made for the kqueue whose
/// epoll is number `epoll`.
fn find(
    pid: i32,
    sfflags: u32,
    tracking: bool,
    p: Personality,
    epoll: RawFd,
    root: &mut dyn FnMut() -> bool,
) -> Result<Watch, Errno> {
    let zombie_ok = tracking || p.proc_attaches_zombie(sfflags);
    let mut check = |fd: Option<BorrowedFd<'_>>| {
        if p.proc_requires_same_user() && !permitted(pid, fd, root()) {
            Err(Errno(libc::EACCES))
        } else {
            Ok(())
        }
    };
    match process::make_fd(Some(epoll), || pidfd::open(pid)) {
        Ok(fd) => {
            let exited = io::poll_now(fd.as_fd(), epoll::IN).is_ok_and(|r| r & epoll::IN != 0);
            let refused = if exited && !zombie_ok {
                Err(Errno(libc::ESRCH))
            } else {
                check(Some(fd.as_fd()))
            };
            if let Err(e) = refused {
                close_pidfd(fd);
                return Err(e);
            }
            Ok(Watch {
                pidfd: Some(fd),
                polled: false,
                by_connector: false,
                exited,
            })
        }
        // Gone (or a thread's id): a tracked child already reaped is followed through the
        // connector, whose exit event for it is still to come.
        Err(e) if matches!(e.0, libc::ESRCH | libc::EINVAL) => {
            if tracking {
                Ok(Watch::connector())
            } else {
                Err(Errno(libc::ESRCH))
            }
        }
        // No process descriptors: poll a child; another process only for NOTE_TRACK (and
        // this process itself, whose exit nobody here will see).
        Err(e) if e.0 == libc::ENOSYS => match pidfd::wait_exited(None, pid) {
            Ok(status) => {
                if status.is_some() && !zombie_ok {
                    return Err(Errno(libc::ESRCH));
                }
                check(None)?;
                Ok(Watch {
                    pidfd: None,
                    polled: true,
                    by_connector: false,
                    exited: status.is_some(),
                })
            }
            Err(_) if pid == sys::getpid() => Ok(Watch {
                pidfd: None,
                polled: false,
                by_connector: false,
                exited: false,
            }),
            Err(_) if tracking => Ok(Watch::connector()),
            Err(_) if !pidfd::exists(pid) => Err(Errno(libc::ESRCH)),
            Err(_) => {
                check(None)?;
                Err(Errno(libc::EOPNOTSUPP))
            }
        },
        Err(e) => Err(e),
    }
}

/// A fork of the knote's process made `child` (NetBSD's `knote_proc_fork`).
fn forked(kn: &mut Knote, child: i32, cx: &mut Context<'_>) {
    kn.kev.fflags |= kn.sfflags & NOTE_FORK;
    if kn.sfflags & NOTE_TRACK == 0 {
        return;
    }
    let parent = kn.kev.ident;
    if cx.personality.proc_track_merges_child() {
        // FreeBSD: one oneshot knote on the child, NOTE_CHILD already set, tracking it
        // with the parent's interest until it is delivered.
        cx.spawn(Spawn {
            kev: Kevent {
                ident: child as usize,
                filter: EVFILT_PROC,
                flags: kn.kev.flags | EV_ADD | EV_ENABLE | EV_CLEAR | EV_ONESHOT | EV_FLAG1,
                fflags: NOTE_CHILD,
                data: parent as isize,
                udata: kn.kev.udata,
            },
            sfflags: kn.sfflags,
            sdata: parent as i64,
            record: false,
        });
        cx.on_spawn_error(NOTE_TRACKERR);
        return;
    }
    let base = Kevent {
        ident: child as usize,
        filter: EVFILT_PROC,
        flags: kn.kev.flags | EV_ADD | EV_ENABLE | EV_CLEAR,
        fflags: 0,
        data: 0,
        udata: kn.kev.udata,
    };
    // The NOTE_CHILD record, apart from the tracking knote so that the child's exit cannot
    // merge into it (its `data` is the parent's pid).
    cx.spawn(Spawn {
        kev: Kevent {
            flags: base.flags | EV_ONESHOT,
            fflags: NOTE_CHILD,
            data: parent as isize,
            ..base
        },
        sfflags: 0,
        sdata: 0,
        record: true,
    });
    cx.spawn(Spawn {
        kev: Kevent {
            flags: base.flags | EV_FLAG1,
            ..base
        },
        sfflags: kn.sfflags,
        sdata: parent as i64,
        record: false,
    });
    cx.on_spawn_error(NOTE_TRACKERR);
}

/// Whether the process of `reg` has exited, as far as can be seen without the connector.
fn gone_now(reg: &Reg, pid: i32) -> bool {
    match &reg.pidfd {
        Some(fd) => io::poll_now(fd.as_fd(), epoll::IN).is_ok_and(|r| r & epoll::IN != 0),
        None if reg.polled => !matches!(pidfd::wait_exited(None, pid), Ok(None)),
        None if reg.by_connector => !pidfd::exists(pid),
        None => false,
    }
}

/// Whether the main thread of the process of `reg` has exited, as far as can be seen
/// without the connector: the connector's exit event of the process, sent when its main
/// thread exits, is then past (or was lost). Besides [`gone_now`], the process may be a
/// zombie leader whose other threads still run (its descriptor is readable only when they
/// are gone too).
fn exit_event_past(reg: &Reg, pid: i32) -> bool {
    gone_now(reg, pid) || main_thread_exited(pid)
}

/// Whether process `pid` is a zombie (or dying): its main thread has exited.
fn main_thread_exited(pid: i32) -> bool {
    matches!(pidfd::proc_stat(pid), Some((b'Z' | b'X', _)))
}

/// The process descriptor of `pid` is readable (or a knote was made on a process that had
/// already exited): read the status and report the exit.
fn on_exit(kn: &mut Knote, here: &mut Here<'_>, p: Personality) {
    let pid = kn.kev.ident as i32;
    let kq = here.kq;
    let Some(reg) = here.procs.regs.get_mut(&pid) else {
        return;
    };
    let fd = reg.pidfd.as_ref().map(|f| f.as_fd());
    let status = match pidfd::wait_exited(fd, pid) {
        Ok(Some(s)) => Status::Known(s),
        // A child that exited but cannot be waited for yet: poll it until it can (the
        // program must be able to reap it once it has read the exit).
        Ok(None) => {
            if !reg.polled && procmon::poll(pid, kq).is_ok() {
                reg.polled = true;
            }
            return;
        }
        Err(_) => other_status(pid, fd),
    };
    exited(kn, status, here, p);
}

/// EVFILT_PROC.
pub(crate) struct ProcFilter;

impl Filter for ProcFilter {
    fn attach(&self, kn: &mut Knote, cx: &mut Context<'_>) -> Result<(), Errno> {
        let pid = pid(kn.kev.ident)?;
        let tracking = kn.kev.flags & EV_FLAG1 != 0;
        // EV_CLEAR is forced.
        kn.kev.flags = (kn.kev.flags & !EV_FLAG1) | EV_CLEAR;
        // NOTE_CHILD is the library's to report, never asked for.
        kn.sfflags &= !NOTE_CHILD;
        let (id, p, epoch, epoll) = (cx.id, cx.personality, cx.objs.epoch, cx.objs.epoll);
        let procs = &mut cx.objs.procs;
        // Whether the caller is root, asked once per kevent() call.
        let mut root = || {
            if procs.root.0 != epoch {
                procs.root = (epoch, pidfd::is_root());
            }
            procs.root.1
        };
        let watch = find(pid, kn.sfflags, tracking, p, epoll, &mut root)?;
        let mut here = Here::new(cx);
        let mut listen = wanted(kn.sfflags);
        if watch.by_connector {
            listen |= procmon::EXIT;
        }
        let undo = |here: &Here<'_>, fd: Option<Fd>, listen: u32, polled: bool| {
            if let Some(fd) = fd {
                close_pidfd(fd);
            }
            if listen != 0 {
                let _ = procmon::listen(pid, here.kq, 0);
            }
            if polled {
                procmon::unpoll(pid, here.kq);
            }
        };
        if listen != 0 {
            if let Err(e) = procmon::listen(pid, here.kq, listen) {
                undo(&here, watch.pidfd, 0, false);
                return Err(e);
            }
        }
        if watch.polled {
            if let Err(e) = procmon::poll(pid, here.kq) {
                undo(&here, watch.pidfd, listen, false);
                return Err(e);
            }
        }
        let mut reg = Reg {
            knote: id,
            pidfd: None,
            polled: watch.polled,
            by_connector: watch.by_connector,
            listen,
            pending: None,
            // A process that had exited before the program asked for it, or whose main
            // thread had: its connector event is probably gone. (Checked once the knote
            // listens: an exit after that is reported to it.)
            conn_exit: (!tracking && (watch.exited || (listen != 0 && main_thread_exited(pid))))
                .then_some(0),
            done: false,
        };
        if let Some(fd) = watch.pidfd {
            let added = epoll::add(
                sys::borrow(here.epoll),
                fd.as_fd(),
                token(pid),
                epoll::IN | epoll::ET,
            );
            if let Err(e) = added {
                undo(&here, Some(fd), listen, watch.polled);
                return Err(e);
            }
            here.procs.polled += 1;
            reg.pidfd = Some(fd);
        }
        here.procs.regs.insert(pid, reg);
        WATCHED.fetch_add(1, Ordering::Relaxed);
        if watch.exited && !tracking {
            // FreeBSD's zombie: the exit is reported at once.
            on_exit(kn, &mut here, p);
        }
        Ok(())
    }

    fn detach(&self, kn: &mut Knote, cx: &mut Context<'_>) {
        let pid = kn.kev.ident as i32;
        let id = cx.id;
        let mut here = Here::new(cx);
        // A NOTE_CHILD record has the key of the child's knote but no registration.
        if here.procs.regs.get(&pid).is_some_and(|r| r.knote == id) {
            here.release(pid);
            here.procs.regs.remove(&pid);
            WATCHED.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn event(&self, kn: &mut Knote, h: i64, cx: &mut Context<'_>) -> bool {
        let pid = kn.kev.ident as i32;
        let (id, p) = (cx.id, cx.personality);
        let kind = hint::kind(h);
        let live = cx
            .objs
            .procs
            .regs
            .get(&pid)
            .is_some_and(|r| r.knote == id && !r.done);
        if kind != 0 && live {
            match kind {
                hint::FORK => forked(kn, hint::value(h), cx),
                hint::EXEC => kn.kev.fflags |= kn.sfflags & NOTE_EXEC,
                _ => {
                    let mut here = Here::new(cx);
                    let Some(reg) = here.procs.regs.get_mut(&pid) else {
                        return false;
                    };
                    match kind {
                        hint::EDGE => on_exit(kn, &mut here, p),
                        hint::WAITED => {
                            reg.polled = false;
                            exited(kn, Status::Known(hint::value(h)), &mut here, p);
                        }
                        hint::GONE => {
                            reg.polled = false;
                            let st = other_status(pid, reg.pidfd.as_ref().map(|f| f.as_fd()));
                            exited(kn, st, &mut here, p);
                        }
                        hint::EXIT => {
                            reg.conn_exit = Some(hint::value(h));
                            if let Some(st) = reg.pending {
                                exited(kn, st, &mut here, p);
                            } else if reg.by_connector {
                                exited(kn, Status::Known(hint::value(h)), &mut here, p);
                            }
                        }
                        hint::LOST => {
                            if kn.sfflags & NOTE_TRACK != 0 {
                                kn.kev.fflags |= NOTE_TRACKERR;
                            }
                            // The exit event may have been among those lost: where the
                            // main thread has exited, stop waiting for it (the exit is
                            // reported when the process descriptor, or the poll, says so).
                            if reg.pending.is_some() || exit_event_past(reg, pid) {
                                reg.conn_exit.get_or_insert(0);
                                if reg.by_connector {
                                    exited(kn, Status::Unknown, &mut here, p);
                                } else if let Some(st) = reg.pending {
                                    exited(kn, st, &mut here, p);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        kn.kev.fflags != 0 || kn.kev.flags & EV_EOF != 0
    }

    fn touch(
        &self,
        kn: &mut Knote,
        kev: &mut Kevent,
        ty: Touch,
        cx: &mut Context<'_>,
    ) -> Result<(), Errno> {
        if ty == Touch::Process {
            *kev = kn.kev;
            return Ok(());
        }
        let old = kn.sfflags;
        kn.sfflags = kev.fflags;
        kn.sdata = kev.data as i64;
        let pid = kn.kev.ident as i32;
        let id = cx.id;
        let here = Here::new(cx);
        let kq = here.kq;
        let Some(reg) = here
            .procs
            .regs
            .get_mut(&pid)
            .filter(|r| r.knote == id && !r.done)
        else {
            return Ok(());
        };
        let mut want = wanted(kn.sfflags);
        if reg.by_connector {
            want |= procmon::EXIT;
        }
        if want != reg.listen {
            if let Err(e) = procmon::listen(pid, kq, want) {
                kn.sfflags = old;
                return Err(e);
            }
            if reg.listen == 0 && exit_event_past(reg, pid) {
                // Already exited: its connector event may be past.
                reg.conn_exit.get_or_insert(0);
            }
            reg.listen = want;
        }
        Ok(())
    }
}
