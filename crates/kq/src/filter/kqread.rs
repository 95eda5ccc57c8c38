//! EVFILT_READ on a kqueue descriptor (the kernel's `filt_kqueue`, SPEC §3.7): one kqueue
//! watching another. Active while the watched kqueue has queued knotes; `data` is their
//! number. `hook` holds the watched kqueue's identity (its pipe's inode).
//!
//! The watched kqueue tells its watchers after releasing its own lock, and the watcher reads
//! the published count without taking the watched kqueue's lock, so two kqueues watching
//! each other cannot deadlock. EVFILT_READ on other descriptors is not implemented yet
//! (EINVAL).

use super::{Context, Filter};
use crate::kevent::Errno;
use crate::knote::Knote;
use crate::sys;
use std::sync::{Arc, Weak};

pub(crate) struct KqReadFilter;

impl Filter for KqReadFilter {
    fn is_fd(&self) -> bool {
        true
    }

    fn attach(&self, kn: &mut Knote, cx: &mut Context<'_>) -> Result<(), Errno> {
        let watched = sys::lookup_raw(kn.kev.ident)?.ok_or(Errno::INVAL)?;
        // A kqueue cannot watch itself (FreeBSD's rule; NetBSD's is unverified).
        if Weak::ptr_eq(&Arc::downgrade(&watched), cx.kq) {
            return Err(Errno::INVAL);
        }
        kn.hook = watched.fds.ino;
        watched.add_watcher(cx.kq.clone(), kn.kev.ident);
        Ok(())
    }

    fn detach(&self, kn: &mut Knote, cx: &mut Context<'_>) {
        if let Some(watched) = sys::lookup_ino(kn.hook) {
            watched.remove_watcher(cx.kq, kn.kev.ident);
        }
    }

    fn event(&self, kn: &mut Knote, _hint: i64, _cx: &mut Context<'_>) -> bool {
        let pending = sys::lookup_ino(kn.hook).map_or(0, |k| k.pending());
        kn.kev.data = pending as isize;
        pending > 0
    }
}
