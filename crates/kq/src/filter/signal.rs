//! EVFILT_SIGNAL: `ident` is a signal number; `data` is the number of times the signal was
//! posted to the process since the last report; EV_CLEAR is forced (the kernel's
//! `filt_sigattach`, `filt_signal`).
//!
//! The counting is process-wide (`crate::signal`: the library's handler counts every
//! delivery of a watched signal and writes to the signal's eventfd); a knote keeps in
//! `hook` the count it last reported, so that `data` is the count minus `hook` and every
//! kqueue counts on its own, disabled or not. Each kqueue has the eventfd of every signal
//! it watches in its epoll, edge-triggered, with user data `TAG_SIGNAL | signal << 32`:
//! a post wakes its sleepers and makes its descriptor readable with no thread of ours
//! awake. Nobody reads the eventfd: every write gives each epoll watching it an edge.

use super::fd::TAG_SIGNAL;
use super::{default_touch, Context, Filter, Objects, Touch};
use crate::consts::*;
use crate::kevent::{Errno, Kevent};
use crate::knote::Knote;
use crate::signal;
use crate::sys::{self, epoll};
use std::collections::HashMap;
use std::os::fd::RawFd;

/// `hookid` bit: count only the posts made while the program did not ignore the signal
/// (FreeBSD's SIGCHLD).
const HEEDED: u64 = 1;
/// `hookid` bit: the signal cannot be watched (not a signal, SIGKILL, SIGSTOP, a reserved
/// one): the knote never fires.
const SILENT: u64 = 2;

/// The signals one kqueue watches: the knote of each (one per signal and kqueue) and the
/// eventfd registered for it in the kqueue's epoll.
#[derive(Default)]
pub(crate) struct Signals {
    knotes: HashMap<usize, (u32, RawFd)>,
    /// An eventfd was added to the epoll since the last [`Signals::take_added`]: one that
    /// earlier posts left readable is on the epoll's ready list at once, which makes the
    /// kqueue descriptor readable with nothing to report until the epoll is harvested.
    added: bool,
}

impl Signals {
    /// Registrations in the epoll that deliver edges.
    pub(crate) fn polled(&self) -> usize {
        self.knotes.len()
    }

    /// Whether an eventfd was added to the epoll since the last call: the caller harvests
    /// the epoll before it lets go of the lock.
    pub(crate) fn take_added(&mut self) -> bool {
        std::mem::take(&mut self.added)
    }

    /// The knote an edge with epoll user data `data` concerns, if it is a signal's.
    pub(crate) fn edge(&self, data: u64) -> Option<u32> {
        if data as u32 as u64 != TAG_SIGNAL {
            return None;
        }
        self.knotes.get(&((data >> 32) as usize)).map(|(id, _)| *id)
    }
}

pub(crate) struct SignalFilter;

impl Filter for SignalFilter {
    fn attach(&self, kn: &mut Knote, cx: &mut Context<'_>) -> Result<(), Errno> {
        kn.kev.flags |= EV_CLEAR;
        let sig = kn.kev.ident;
        let Some(fd) = signal::watch(sig)? else {
            // Accepted, as by the BSDs, which do not check the number.
            kn.hookid = SILENT;
            return Ok(());
        };
        let Objects { signals, epoll, .. } = &mut *cx.objs;
        let token = TAG_SIGNAL | ((sig as u64) << 32);
        if let Err(e) = epoll::add(
            sys::borrow(*epoll),
            sys::borrow(fd),
            token,
            epoll::IN | epoll::ET,
        ) {
            signal::unwatch(sig);
            return Err(e);
        }
        signals.knotes.insert(sig, (cx.id, fd));
        signals.added = true;
        let heeded = sig == libc::SIGCHLD as usize && !cx.personality.counts_ignored_sigchld();
        kn.hookid = if heeded { HEEDED } else { 0 };
        // Posts from now on count.
        kn.hook = signal::count(sig, heeded);
        Ok(())
    }

    fn detach(&self, kn: &mut Knote, cx: &mut Context<'_>) {
        if kn.hookid & SILENT != 0 {
            return;
        }
        let sig = kn.kev.ident;
        if let Some((_, fd)) = cx.objs.signals.knotes.remove(&sig) {
            // A kqueue being torn down loses its epoll, and the registration with it.
            if !cx.objs.fds.closing {
                let _ = epoll::delete(sys::borrow(cx.objs.epoll), sys::borrow(fd));
            }
        }
        signal::unwatch(sig);
    }

    fn event(&self, kn: &mut Knote, _hint: i64, _cx: &mut Context<'_>) -> bool {
        if kn.hookid & SILENT != 0 {
            return false;
        }
        let now = signal::count(kn.kev.ident, kn.hookid & HEEDED != 0);
        kn.kev.data = now.wrapping_sub(kn.hook) as isize;
        kn.kev.data != 0
    }

    fn touch(
        &self,
        kn: &mut Knote,
        kev: &mut Kevent,
        ty: Touch,
        _cx: &mut Context<'_>,
    ) -> Result<(), Errno> {
        default_touch(kn, kev, ty);
        if ty == Touch::Process {
            // Reported: the next report counts from here.
            kn.hook = kn.hook.wrapping_add(kev.data as u64);
        }
        Ok(())
    }
}
