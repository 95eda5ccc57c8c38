//! EVFILT_FS: file systems mounted and unmounted.
//!
//! A global filter: the ident is any value (0 by convention) and names nothing. As on
//! NetBSD (and FreeBSD, which agrees): the knote is made EV_CLEAR at attach; it sees only
//! what happens after it was added (it never fires at registration); every event is
//! recorded in `fflags` whatever the interest mask given in `fflags` says (the BSDs ignore
//! it: macOS alone filters on it); `data` is 0. A mount posts VQ_MOUNT, an unmount
//! VQ_UNMOUNT; several before one collection give one record with the hints or'ed.
//!
//! Linux: the BSDs post these from the VFS for every mount of the system; here the mount
//! table of the mount namespace of the thread that added the kqueue's first EVFILT_FS knote
//! is watched. The kqueue opens that table (`/proc/thread-self/mountinfo`) with its first
//! EVFILT_FS knote and holds it in its epoll (edge-triggered, `TOKEN_FS`), so that a change
//! makes the kqueue descriptor readable with no thread of ours awake; the last knote's
//! detach closes it. An edge makes the kqueue look at the table again and compare the set
//! of mounts with the last one it saw: mounts added post VQ_MOUNT, mounts gone VQ_UNMOUNT.
//! Mounts are told apart by listmount(2)'s ids, which are never reused (Linux 6.8 and
//! later, when the looking thread is in the table's namespace), else by mountinfo's mount
//! ids, which are: there an unmount and a mount between two looks that give the new mount
//! the old one's id go unseen. A change that leaves the set as it was (a remount, a change
//! of propagation, a move) posts nothing: FreeBSD posts nothing for MNT_UPDATE either (macOS
//! has VQ_UPDATE for it, which neither NetBSD nor FreeBSD has).
//!
//! The registration itself is ready at once (epoll reports EPOLLIN, which the table always
//! has, when it is added): the attach asks the kqueue to take that edge in before the
//! change's lock hold ends (`Objects::harvest_due`), so the kqueue descriptor does not
//! become readable for it. That edge is the first look at the table, which only takes
//! note of the mounts: the knote sees what changes after the change that added it.

use super::fd::TOKEN_FS;
use super::{Context, Filter};
use crate::consts::*;
use crate::kevent::Errno;
use crate::knote::Knote;
use crate::process::{self, LibraryFd};
use crate::sys::{self, epoll};
use std::os::fd::{AsFd, RawFd};

/// A kqueue's view of the mount table.
pub(crate) struct Mounts {
    /// The open mount table (registered in the kqueue's epoll), while EVFILT_FS knotes
    /// exist.
    table: Option<LibraryFd>,
    /// Ids of the kqueue's EVFILT_FS knotes.
    knotes: Vec<u32>,
    /// The table was looked at since it was opened (the first look only takes note).
    seen: bool,
    /// The mount ids seen at the last look, sorted.
    ids: Vec<u32>,
    /// listmount's ids seen at the last look, sorted (`None`: not had then).
    unique: Option<Vec<u64>>,
    /// Scratch space for reading the table.
    buf: Vec<u8>,
}

impl Mounts {
    /// A view with no table open.
    pub(crate) fn new() -> Mounts {
        Mounts {
            table: None,
            knotes: Vec::new(),
            seen: false,
            ids: Vec::new(),
            unique: None,
            buf: Vec::new(),
        }
    }

    /// Registrations in the epoll that deliver edges (the table, if open).
    pub(crate) fn polled(&self) -> usize {
        usize::from(self.table.is_some())
    }

    /// Opens the table and registers it in `epoll_fd`. The registration is ready at once:
    /// the edge it gives is the first look, which only takes note of the mounts.
    fn open(&mut self, epoll_fd: RawFd) -> Result<(), Errno> {
        // Unmarked and closed if dropped on an error.
        let table = LibraryFd::new(process::make_fd(Some(epoll_fd), sys::mounts::open_table)?);
        // Registered before the first look, so that no change after the look goes unseen.
        epoll::add(
            sys::borrow(epoll_fd),
            table.as_fd(),
            TOKEN_FS,
            epoll::IN | epoll::ET,
        )?;
        self.table = Some(table);
        self.seen = false;
        Ok(())
    }

    /// Closes the table (the kqueue's last EVFILT_FS knote went). `closing`: the kqueue's
    /// epoll goes too.
    fn close(&mut self, epoll_fd: RawFd, closing: bool) {
        if let Some(table) = self.table.take() {
            if !closing {
                // The descriptor may have copies (a fork's child), which would keep it in
                // the epoll after our close.
                let _ = epoll::delete(sys::borrow(epoll_fd), table.as_fd());
            }
            // Unmarked and closed.
            drop(table);
        }
        self.seen = false;
        self.ids = Vec::new();
        self.unique = None;
        self.buf = Vec::new();
    }

    /// The mounts now: mountinfo's ids, and listmount's (where the kernel has it).
    fn read(&mut self) -> Result<(Vec<u32>, Option<Vec<u64>>), Errno> {
        let table = self.table.as_ref().ok_or(Errno::BADF)?;
        let ids = sys::mounts::table_ids(table.as_fd(), &mut self.buf)?;
        Ok((ids, sys::mounts::unique_ids()))
    }

    /// Looks at the table again: the VQ_* hint of what changed since the last look.
    fn look(&mut self) -> u32 {
        let Ok((ids, unique)) = self.read() else {
            // Looked at again with the next change.
            return 0;
        };
        let hint = match (&self.unique, &unique) {
            _ if !self.seen => 0,
            // listmount lists the mounts of the calling thread's namespace, the table
            // those of the namespace it was opened in. A mount belongs to one namespace
            // and its id is never reused, so two lists of the same namespace share at
            // least its root: two lists that share nothing come from different
            // namespaces (a thread that changed namespace looked), and the table alone
            // tells what changed in its own.
            (Some(old), Some(new)) if intersect(old, new) => difference(old, new),
            _ => difference(&self.ids, &ids),
        };
        self.seen = true;
        self.ids = ids;
        self.unique = unique;
        hint
    }

    /// An edge of the table: the hint to post and the knotes to post it to (none if
    /// nothing was mounted or unmounted).
    pub(crate) fn edge(&mut self) -> (i64, Vec<u32>) {
        match self.look() {
            0 => (0, Vec::new()),
            hint => (i64::from(hint), self.knotes.clone()),
        }
    }
}

/// Whether the sorted `a` and `b` have an element in common.
fn intersect<T: Ord>(a: &[T], b: &[T]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// VQ_MOUNT if `new` has an element `old` has not, VQ_UNMOUNT if `old` has one `new` has
/// not (both sorted).
fn difference<T: Ord>(old: &[T], new: &[T]) -> u32 {
    let (mut i, mut j, mut hint) = (0, 0, 0);
    while i < old.len() && j < new.len() {
        match old[i].cmp(&new[j]) {
            std::cmp::Ordering::Less => {
                hint |= VQ_UNMOUNT;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                hint |= VQ_MOUNT;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    if i < old.len() {
        hint |= VQ_UNMOUNT;
    }
    if j < new.len() {
        hint |= VQ_MOUNT;
    }
    hint
}

/// EVFILT_FS.
pub(crate) struct FsFilter;

impl Filter for FsFilter {
    fn attach(&self, kn: &mut Knote, cx: &mut Context<'_>) -> Result<(), Errno> {
        let epoll_fd = cx.objs.epoll;
        let fs = &mut cx.objs.fs;
        if fs.table.is_none() {
            fs.open(epoll_fd)?;
            // The registration is ready at once: the kqueue takes its edge in (the first
            // look at the table) before the change's lock hold ends, so the knote sees
            // what happens after the change, and the kqueue descriptor does not become
            // readable for it.
            cx.objs.harvest_due = true;
        }
        cx.objs.fs.knotes.push(cx.id);
        // Automatic, as on the BSDs; the input data is not used.
        kn.kev.flags |= EV_CLEAR;
        Ok(())
    }

    fn detach(&self, _kn: &mut Knote, cx: &mut Context<'_>) {
        let id = cx.id;
        let fs = &mut cx.objs.fs;
        fs.knotes.retain(|&k| k != id);
        if fs.knotes.is_empty() && fs.table.is_some() {
            let closing = cx.objs.fds.closing;
            cx.objs.fs.close(cx.objs.epoll, closing);
        }
    }

    /// NetBSD's `filt_fs`: record the hint, whatever the interest mask; active while any
    /// hint is recorded (a re-evaluation, hint 0, changes nothing).
    fn event(&self, kn: &mut Knote, hint: i64, _cx: &mut Context<'_>) -> bool {
        kn.kev.fflags |= hint as u32;
        kn.kev.fflags != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difference_of_sets() {
        assert_eq!(difference::<u32>(&[], &[]), 0);
        assert_eq!(difference(&[1, 2, 3], &[1, 2, 3]), 0);
        assert_eq!(difference(&[1, 2], &[1, 2, 3]), VQ_MOUNT);
        assert_eq!(difference(&[1, 2, 3], &[1, 3]), VQ_UNMOUNT);
        assert_eq!(difference(&[1, 2, 3], &[1, 3, 4]), VQ_MOUNT | VQ_UNMOUNT);
        assert_eq!(difference(&[5], &[1]), VQ_MOUNT | VQ_UNMOUNT);
        assert_eq!(difference(&[], &[7]), VQ_MOUNT);
        assert_eq!(difference(&[7], &[]), VQ_UNMOUNT);
    }

    #[test]
    fn intersection() {
        assert!(intersect(&[1, 4, 9], &[2, 4]));
        assert!(!intersect(&[1, 3], &[2, 4]));
        assert!(!intersect::<u64>(&[], &[1]));
    }
}
