//! EVFILT_VNODE (docs/semantics.md §5.7): changes to a file or directory, through the
//! kqueue's inotify instance (`inotify.rs`).
//!
//! A knote watches the inode its descriptor names (through /proc/self/fd, so a rename does
//! not lose it), with the inotify events its interest needs (`mask_for`). The events are
//! accumulated raw in the knote's [`VnodeState`] and turned into NOTE_* bits when the knote
//! is evaluated, by comparing what `fstat` shows now with what it showed at the previous
//! evaluation: the size tells NOTE_EXTEND, the link count NOTE_LINK and NOTE_DELETE (Linux
//! reports an unlink of an open file as an attribute change, IN_ATTRIB, and sends
//! IN_DELETE_SELF only once the inode is freed, after the last close). Only the bits in the
//! interest (`sfflags`) are reported; they OR-accumulate in `kev.fflags` until delivered, and
//! the filter holds while any is set (without EV_CLEAR the same bits are reported again).

use super::{default_touch, fd, Context, Filter, Touch};
use crate::consts::*;
use crate::kevent::{Errno, Kevent};
use crate::knote::Knote;
use crate::personality::Personality;
use crate::sys::{self, inotify as ino, io, io::FileStat};
use std::os::fd::RawFd;

/// `pending` bit for a change of a watched directory's entries (a create, delete or rename
/// inside it). IN_CREATE never comes for the watched inode itself, so its bit is free.
const ENTRIES: u32 = ino::CREATE;

/// The state of one vnode knote.
#[derive(Debug)]
pub(crate) struct VnodeState {
    /// The descriptor number (the knote's ident).
    pub(crate) fd: RawFd,
    /// Its inotify watch (-1 once the kernel removed it).
    pub(crate) wd: i32,
    /// The inotify events the knote's interest needs.
    pub(crate) mask: u32,
    dir: bool,
    /// A directory whose link count counts its subdirectories (most file systems; btrfs
    /// keeps it at 1).
    counts_subdirs: bool,
    /// inotify bits seen since the last evaluation.
    pending: u32,
    /// Since the last evaluation, an entry of the (directory) watched came from another
    /// directory / went to another directory.
    moved_in: bool,
    moved_out: bool,
    /// Since the last evaluation, a subdirectory was created, removed or moved in or out.
    subdirs: bool,
    /// Events were lost (the queue overflowed): compare everything `fstat` shows.
    lost: bool,
    /// The file system went away (NOTE_REVOKE).
    revoked: bool,
    /// What `fstat` showed at the last evaluation.
    last: FileStat,
}

impl VnodeState {
    /// Takes inotify event `e` of the knote's watch in; `crossed`: a rename to or from
    /// another directory. Returns whether the knote should be evaluated.
    pub(crate) fn take_event(&mut self, e: &ino::Event, crossed: bool) -> bool {
        if e.child {
            // An entry of the watched directory. Its own opens, reads, writes and attribute
            // changes are not the directory's.
            if !self.dir
                || e.mask & (ino::CREATE | ino::DELETE | ino::MOVED_FROM | ino::MOVED_TO) == 0
            {
                return false;
            }
            self.pending |= ENTRIES;
            if crossed {
                self.moved_in |= e.mask & ino::MOVED_TO != 0;
                self.moved_out |= e.mask & ino::MOVED_FROM != 0;
            }
            if e.mask & ino::ISDIR != 0 && (crossed || e.mask & (ino::CREATE | ino::DELETE) != 0) {
                self.subdirs = true;
            }
            return true;
        }
        self.pending |= e.mask & !ino::ISDIR;
        e.mask & (self.mask | ino::UNMOUNT) != 0
    }

    /// The queue overflowed: events of this knote may have been lost.
    pub(crate) fn lost_events(&mut self) {
        self.lost = true;
    }

    /// Turns what happened since the last evaluation into NOTE_* bits, given what `fstat`
    /// shows now. The kernels post their notes in groups (a write that grows a file is one
    /// NOTE_WRITE|NOTE_EXTEND, a subdirectory made is NOTE_WRITE|NOTE_LINK on its parent)
    /// and a knote takes a group whole when any of its bits is in the `interest`; so does
    /// this.
    fn notes(&mut self, now: &FileStat, p: Personality, interest: u32) -> u32 {
        let old = self.last;
        let bits = std::mem::take(&mut self.pending);
        let mut out = 0;
        let mut post = |group: u32| {
            if group & interest != 0 {
                out |= group;
            }
        };
        if bits & ino::MODIFY != 0 {
            post(NOTE_WRITE | if now.size > old.size { NOTE_EXTEND } else { 0 });
        }
        // The link count: Linux tells of a file's new or lost name by an attribute change,
        // of a directory's by an entry event; compare rather than guess.
        let link_changed = now.nlink != old.nlink;
        let mut dir_link = false;
        if link_changed {
            if now.nlink == 0 {
                post(NOTE_DELETE);
            } else if self.dir {
                dir_link = true;
            } else if now.nlink > old.nlink {
                post(NOTE_LINK);
            } else {
                post(p.unlink_note());
            }
        } else if self.dir && !self.counts_subdirs && self.subdirs {
            dir_link = true;
        }
        if bits & ENTRIES != 0 || dir_link {
            let extend = self.moved_in || (self.moved_out && p.move_out_extends_dir());
            post(
                NOTE_WRITE
                    | if extend { NOTE_EXTEND } else { 0 }
                    | if dir_link { NOTE_LINK } else { 0 },
            );
        }
        if bits & ino::ATTRIB != 0 {
            // An unlink or link shows as an attribute change too (the link count and the
            // status change time): it is no NOTE_ATTRIB unless the mode or owner changed
            // with it (times set together with a link change in one batch are missed).
            let more = (now.mode, now.uid, now.gid) != (old.mode, old.uid, old.gid);
            if !link_changed || more {
                post(NOTE_ATTRIB);
            }
        }
        if bits & ino::DELETE_SELF != 0 && old.nlink != 0 && !link_changed {
            post(NOTE_DELETE);
        }
        for (event, note) in [
            (ino::MOVE_SELF, NOTE_RENAME),
            (ino::OPEN, NOTE_OPEN),
            (ino::ACCESS, NOTE_READ),
            (ino::CLOSE_WRITE, NOTE_CLOSE_WRITE),
            (ino::CLOSE_NOWRITE, NOTE_CLOSE),
            (ino::UNMOUNT, NOTE_REVOKE),
        ] {
            if bits & event != 0 {
                post(note);
            }
        }
        if bits & ino::UNMOUNT != 0 {
            self.revoked = true;
        }
        if std::mem::take(&mut self.lost) {
            // Events were lost: report what the comparison proves.
            if now.size > old.size {
                post(NOTE_WRITE | NOTE_EXTEND);
            } else if now.size != old.size || now.mtime != old.mtime {
                post(NOTE_WRITE);
            }
            let explained = link_changed || now.size != old.size || now.mtime != old.mtime;
            if (now.mode, now.uid, now.gid) != (old.mode, old.uid, old.gid)
                || (now.ctime != old.ctime && !explained)
            {
                post(NOTE_ATTRIB);
            }
        }
        self.moved_in = false;
        self.moved_out = false;
        self.subdirs = false;
        self.last = *now;
        out
    }
}

/// The inotify events a knote with interest `notes` needs, on a directory or a file. Never
/// empty: a watch needs one event at least (IN_UNMOUNT, for NOTE_REVOKE, comes anyway).
fn mask_for(notes: u32, dir: bool) -> u32 {
    let entries = ino::CREATE | ino::DELETE | ino::MOVED_FROM | ino::MOVED_TO;
    let mut m = ino::DELETE_SELF;
    if notes & (NOTE_WRITE | NOTE_EXTEND) != 0 {
        m |= if dir { entries } else { ino::MODIFY };
    }
    if notes & NOTE_LINK != 0 {
        m |= ino::ATTRIB | if dir { entries } else { 0 };
    }
    if notes & (NOTE_DELETE | NOTE_ATTRIB) != 0 {
        m |= ino::ATTRIB;
    }
    if notes & NOTE_RENAME != 0 {
        m |= ino::MOVE_SELF;
    }
    // Opens, reads and closes are frequent: watched only when asked for.
    for (note, event) in [
        (NOTE_OPEN, ino::OPEN),
        (NOTE_READ, ino::ACCESS),
        (NOTE_CLOSE, ino::CLOSE_NOWRITE),
        (NOTE_CLOSE_WRITE, ino::CLOSE_WRITE),
    ] {
        if notes & note != 0 {
            m |= event;
        }
    }
    m
}

/// EVFILT_VNODE.
pub(crate) struct VnodeFilter;

impl Filter for VnodeFilter {
    fn is_fd(&self) -> bool {
        true
    }

    fn attach(&self, kn: &mut Knote, cx: &mut Context<'_>) -> Result<(), Errno> {
        let fd = sys::fd_number(kn.kev.ident)?;
        let now = io::file_stat(sys::borrow(fd), true)?;
        let dir = match now.mode & libc::S_IFMT {
            libc::S_IFREG => false,
            libc::S_IFDIR => true,
            libc::S_IFIFO
                if cx.personality.vnode_on_fifo() && !io::is_anonymous_pipe(sys::borrow(fd)) =>
            {
                false
            }
            // Sockets, pipes, FIFOs, devices, kqueues, eventfds...: not vnodes to the BSDs
            // (their kqfilter routines refuse the filter).
            kind => return Err(fd::refused(fd, kind, cx)),
        };
        let file = fd::attach(kn, EVFILT_VNODE, cx)?;
        let state = VnodeState {
            fd,
            wd: -1,
            mask: mask_for(kn.sfflags, dir),
            dir,
            counts_subdirs: !dir || now.nlink >= 2,
            pending: 0,
            moved_in: false,
            moved_out: false,
            subdirs: false,
            lost: false,
            revoked: false,
            last: now,
        };
        let epoll = cx.objs.epoll;
        if let Err(e) = cx.objs.fds.inotify.add_vnode(epoll, cx.id, &file, state) {
            fd::detach(kn, EVFILT_VNODE, cx);
            return Err(e);
        }
        Ok(())
    }

    fn detach(&self, kn: &mut Knote, cx: &mut Context<'_>) {
        let (epoll, closing) = (cx.objs.epoll, cx.objs.fds.closing);
        cx.objs.fds.inotify.remove_vnode(epoll, cx.id, closing);
        fd::detach(kn, EVFILT_VNODE, cx);
    }

    fn event(&self, kn: &mut Knote, _hint: i64, cx: &mut Context<'_>) -> bool {
        let fd = kn.kev.ident as RawFd;
        let p = cx.personality;
        let Some(state) = cx.objs.fds.inotify.vnode(cx.id) else {
            return false;
        };
        let stays = state.revoked && p.revoked_vnode_stays_active();
        if state.pending == 0 && !state.lost {
            // Nothing new: the filter holds while bits are set, for the file the knote was
            // registered for (the number may have been closed, and reused, unseen).
            return (kn.kev.fflags != 0 || stays) && fd::still_names(cx, fd);
        }
        let last = state.last;
        // Attributes are looked at only when they may have changed (or events were lost);
        // otherwise the identity, link count and size do.
        let full = state.lost || state.pending & (ino::ATTRIB | ino::DELETE_SELF) != 0;
        let now = match io::file_stat(sys::borrow(fd), full) {
            Ok(now) if (now.dev, now.ino) == (last.dev, last.ino) => {
                if full {
                    now
                } else {
                    FileStat {
                        mode: last.mode,
                        uid: last.uid,
                        gid: last.gid,
                        atime: last.atime,
                        ..now
                    }
                }
            }
            // Closed, or another file under the number: what was seen is not its business.
            _ => {
                state.pending = 0;
                state.lost = false;
                return false;
            }
        };
        let revoking = state.pending & ino::UNMOUNT != 0;
        kn.kev.fflags |= state.notes(&now, p, kn.sfflags);
        fd::seen_naming(cx, fd);
        if revoking {
            // The file system went away: EV_EOF, and the knote fires whatever its interest.
            kn.kev.flags |= EV_EOF;
            return true;
        }
        kn.kev.fflags != 0 || stays
    }

    fn touch(
        &self,
        kn: &mut Knote,
        kev: &mut Kevent,
        ty: Touch,
        cx: &mut Context<'_>,
    ) -> Result<(), Errno> {
        default_touch(kn, kev, ty);
        if ty == Touch::Register {
            // Every change replaces the interest (enable and disable too, as on the BSDs).
            let epoll = cx.objs.epoll;
            let dir = cx.objs.fds.inotify.vnode(cx.id).is_some_and(|v| v.dir);
            let mask = mask_for(kn.sfflags, dir);
            cx.objs.fds.inotify.set_vnode_mask(epoll, cx.id, mask);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(size: i64, nlink: u64) -> FileStat {
        FileStat {
            size,
            nlink,
            mode: libc::S_IFREG | 0o600,
            ..FileStat::default()
        }
    }

    fn state(dir: bool, last: FileStat) -> VnodeState {
        VnodeState {
            fd: 0,
            wd: 1,
            mask: mask_for(!0, dir),
            dir,
            counts_subdirs: true,
            pending: 0,
            moved_in: false,
            moved_out: false,
            subdirs: false,
            lost: false,
            revoked: false,
            last,
        }
    }

    fn ev(mask: u32, child: bool) -> ino::Event {
        ino::Event {
            wd: 1,
            mask,
            cookie: 0,
            child,
        }
    }

    #[test]
    fn write_extends_only_when_the_size_grows() {
        let mut s = state(false, stat(10, 1));
        assert!(s.take_event(&ev(ino::MODIFY, false), false));
        assert_eq!(
            s.notes(&stat(12, 1), Personality::NetBsd, !0),
            NOTE_WRITE | NOTE_EXTEND
        );
        s.take_event(&ev(ino::MODIFY, false), false);
        assert_eq!(s.notes(&stat(12, 1), Personality::NetBsd, !0), NOTE_WRITE);
    }

    #[test]
    fn a_group_is_taken_whole_when_one_bit_is_of_interest() {
        let mut s = state(false, stat(10, 1));
        s.take_event(&ev(ino::MODIFY, false), false);
        assert_eq!(
            s.notes(&stat(12, 1), Personality::NetBsd, NOTE_WRITE),
            NOTE_WRITE | NOTE_EXTEND
        );
        s.take_event(&ev(ino::MODIFY, false), false);
        assert_eq!(s.notes(&stat(12, 1), Personality::NetBsd, NOTE_EXTEND), 0);
        s.take_event(&ev(ino::MODIFY | ino::ATTRIB, false), false);
        let mut now = stat(12, 1);
        now.mode = 0o644;
        assert_eq!(s.notes(&now, Personality::NetBsd, NOTE_ATTRIB), NOTE_ATTRIB);
    }

    #[test]
    fn unlink_is_delete_not_attrib() {
        for p in [Personality::NetBsd, Personality::FreeBsd] {
            let mut s = state(false, stat(0, 1));
            s.take_event(&ev(ino::ATTRIB, false), false);
            assert_eq!(s.notes(&stat(0, 0), p, !0), NOTE_DELETE);
        }
        // One name of two removed.
        let mut s = state(false, stat(0, 2));
        s.take_event(&ev(ino::ATTRIB, false), false);
        assert_eq!(s.notes(&stat(0, 1), Personality::NetBsd, !0), NOTE_LINK);
        let mut s = state(false, stat(0, 2));
        s.take_event(&ev(ino::ATTRIB, false), false);
        assert_eq!(s.notes(&stat(0, 1), Personality::FreeBsd, !0), NOTE_DELETE);
    }

    #[test]
    fn chmod_is_attrib() {
        let mut s = state(false, stat(0, 1));
        s.take_event(&ev(ino::ATTRIB, false), false);
        let mut now = stat(0, 1);
        now.mode = libc::S_IFREG | 0o644;
        assert_eq!(s.notes(&now, Personality::NetBsd, !0), NOTE_ATTRIB);
    }

    #[test]
    fn directory_entries() {
        let mut d = stat(4096, 2);
        d.mode = libc::S_IFDIR | 0o700;
        let mut s = state(true, d);
        // A file created inside: no link count change.
        assert!(s.take_event(&ev(ino::CREATE, true), false));
        assert_eq!(s.notes(&d, Personality::NetBsd, !0), NOTE_WRITE);
        // A subdirectory: the directory gains a link.
        s.take_event(&ev(ino::CREATE | ino::ISDIR, true), false);
        let mut d3 = d;
        d3.nlink = 3;
        assert_eq!(
            s.notes(&d3, Personality::NetBsd, !0),
            NOTE_WRITE | NOTE_LINK
        );
        // Moved out to another directory: NOTE_EXTEND on FreeBSD only.
        s.take_event(&ev(ino::MOVED_FROM, true), true);
        assert_eq!(s.notes(&d3, Personality::NetBsd, !0), NOTE_WRITE);
        s.take_event(&ev(ino::MOVED_FROM, true), true);
        assert_eq!(
            s.notes(&d3, Personality::FreeBsd, !0),
            NOTE_WRITE | NOTE_EXTEND
        );
        // Moved in from another directory: NOTE_EXTEND on both.
        s.take_event(&ev(ino::MOVED_TO, true), true);
        assert_eq!(
            s.notes(&d3, Personality::NetBsd, !0),
            NOTE_WRITE | NOTE_EXTEND
        );
        // Children's own events are not the directory's.
        assert!(!s.take_event(&ev(ino::MODIFY, true), false));
    }

    #[test]
    fn unmount_is_revoke() {
        let mut s = state(false, stat(0, 1));
        assert!(s.take_event(&ev(ino::UNMOUNT, false), false));
        assert_eq!(s.notes(&stat(0, 1), Personality::NetBsd, !0), NOTE_REVOKE);
        assert!(s.revoked);
        // Not asked for: no note (the filter still fires, with EV_EOF).
        let mut s = state(false, stat(0, 1));
        s.take_event(&ev(ino::UNMOUNT, false), false);
        assert_eq!(s.notes(&stat(0, 1), Personality::NetBsd, NOTE_WRITE), 0);
    }

    #[test]
    fn overflow_reports_what_fstat_proves() {
        let mut s = state(false, stat(10, 1));
        s.lost_events();
        assert_eq!(
            s.notes(&stat(20, 1), Personality::NetBsd, !0),
            NOTE_WRITE | NOTE_EXTEND
        );
        s.lost_events();
        let mut now = stat(20, 1);
        now.ctime = (1, 0);
        assert_eq!(s.notes(&now, Personality::NetBsd, !0), NOTE_ATTRIB);
        s.lost_events();
        assert_eq!(s.notes(&now, Personality::NetBsd, !0), 0);
    }

    #[test]
    fn masks_hold_only_what_is_asked() {
        assert_eq!(mask_for(NOTE_WRITE, false), ino::DELETE_SELF | ino::MODIFY);
        assert_eq!(mask_for(0, false), ino::DELETE_SELF);
        assert_eq!(mask_for(NOTE_OPEN, true) & ino::OPEN, ino::OPEN);
        assert_eq!(mask_for(NOTE_WRITE, true) & ino::ACCESS, 0);
    }
}
