//! Every behaviour in which NetBSD and FreeBSD differ, in one place.
//!
//! The engine asks a [`Personality`] whenever the two kernels part ways; nothing else in the
//! crate tests which personality a kqueue has. The table in `docs/personality.md` lists the
//! same switches with the sections of `docs/semantics.md` that state each rule; the
//! sections (§) cited below are that document's.

use crate::consts::*;

/// Which BSD kernel a kqueue imitates where they differ.
///
/// NetBSD (the kernel of PR kern/55663) is the reference and the default of the Rust API;
/// the C library's `kqueue()` uses FreeBSD's, as libkqueue does.
///
/// # Examples
///
/// ```
/// use kq::{Kqueue, Personality};
/// let kq = Kqueue::with_personality(Personality::FreeBsd)?;
/// assert_eq!(kq.personality(), Personality::FreeBsd);
/// assert_eq!(Personality::default(), Personality::NetBsd);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Personality {
    /// NetBSD `kern_event.c` rev 1.140.
    #[default]
    NetBsd,
    /// FreeBSD `kern_event.c`.
    FreeBsd,
}

impl Personality {
    /// The flags a new knote stores, and so reports in every delivered event (§2.1):
    /// NetBSD keeps the input verbatim (EV_ADD, EV_ENABLE, EV_RECEIPT show up in output),
    /// FreeBSD strips the action flags.
    pub(crate) fn stored_flags(self, flags: u16) -> u16 {
        match self {
            Personality::NetBsd => flags,
            Personality::FreeBsd => {
                flags & !(EV_ADD | EV_DELETE | EV_ENABLE | EV_DISABLE | EV_FORCEONESHOT)
            }
        }
    }

    /// FreeBSD skips a change whose filter is 0 without a word (§1.2 step 3b).
    pub(crate) fn skips_filter_zero(self) -> bool {
        self == Personality::FreeBsd
    }

    /// `EV_ENABLE|EV_DISABLE` together: NetBSD nets to enabled, FreeBSD says EINVAL (§2.2).
    pub(crate) fn rejects_enable_with_disable(self, flags: u16) -> bool {
        self == Personality::FreeBsd && flags & (EV_ENABLE | EV_DISABLE) == EV_ENABLE | EV_DISABLE
    }

    /// FreeBSD's EV_KEEPUDATA: a modification keeps the stored udata (§2.4). NetBSD has no
    /// such flag and always overwrites.
    pub(crate) fn keeps_udata(self, flags: u16) -> bool {
        self == Personality::FreeBsd && flags & EV_KEEPUDATA != 0
    }

    /// FreeBSD's EV_FORCEONESHOT on an existing knote: make it oneshot and fire it (§2.4).
    pub(crate) fn forces_oneshot(self, flags: u16) -> bool {
        self == Personality::FreeBsd && flags & EV_FORCEONESHOT != 0
    }

    /// FreeBSD applies EV_ENABLE/EV_DISABLE before the filter runs (a new knote is created
    /// disabled; a modification is gated before its touch) and never evaluates a disabled
    /// knote; NetBSD evaluates first, then disables, then enables (§2.2 steps 4-8).
    pub(crate) fn gates_before_evaluating(self) -> bool {
        self == Personality::FreeBsd
    }

    /// FreeBSD builds the record of an EV_ONESHOT delivery from the stored image, bypassing
    /// f_touch, so a oneshot user event reports fflags 0 and data 0 (§2.3, §4.9).
    pub(crate) fn oneshot_bypasses_touch(self) -> bool {
        self == Personality::FreeBsd
    }

    /// `EV_CLEAR|EV_DISPATCH`: NetBSD's if/else chain only clears; FreeBSD also disables
    /// (§2.3).
    pub(crate) fn clear_also_dispatches(self) -> bool {
        self == Personality::FreeBsd
    }

    /// A relative EVFILT_TIMER with `data == 0`: NetBSD rejects it with EINVAL; FreeBSD
    /// (unchecked, §0: `filt_timervalidate`) accepts it and fires after the shortest
    /// interval (§5.4).
    pub(crate) fn timer_accepts_zero(self) -> bool {
        self == Personality::FreeBsd
    }

    /// An EV_ADD that modifies an existing timer: NetBSD's touch replaces the stored flags
    /// with the change's (so EV_ONESHOT, EV_DISPATCH, EV_RECEIPT given now take effect and
    /// show in deliveries); FreeBSD's never writes them, so the flags given at creation stay
    /// (an EV_ONESHOT timer stays oneshot, a periodic one periodic) and those of the
    /// modifying change are not stored (§5.4).
    pub(crate) fn timer_modify_keeps_flags(self) -> bool {
        self == Personality::FreeBsd
    }

    /// NOTE_ABSOLUTE timers: NetBSD does not force EV_CLEAR, so a fired absolute timer is
    /// reported on every call until deleted (§5.4); FreeBSD forces EV_CLEAR on every
    /// timer (unchecked, §0), so it is reported once (FB timer.c abstime).
    pub(crate) fn absolute_timer_forces_clear(self) -> bool {
        self == Personality::FreeBsd
    }

    /// EVFILT_SIGNAL on SIGCHLD while the program ignores SIGCHLD (`SIG_IGN`): NetBSD
    /// counts every post, as for any signal; FreeBSD records no ignored SIGCHLD (its
    /// kevent(2) page).
    pub(crate) fn counts_ignored_sigchld(self) -> bool {
        self == Personality::NetBsd
    }

    /// EVFILT_WRITE on a pipe whose read end is closed: NetBSD refuses it with EBADF,
    /// FreeBSD with EPIPE (§5.3).
    pub(crate) fn write_to_readerless_pipe(self) -> crate::kevent::Errno {
        match self {
            Personality::NetBsd => crate::kevent::Errno::BADF,
            Personality::FreeBsd => crate::kevent::Errno(libc::EPIPE),
        }
    }

    /// A regular file lost a link but has others left (unlink of one of its names, or a
    /// rename over one): NetBSD reports NOTE_LINK (NOTE_DELETE only once none is left);
    /// FreeBSD reports NOTE_DELETE for every removal of a name (§5.7).
    pub(crate) fn unlink_note(self) -> u32 {
        match self {
            Personality::NetBsd => NOTE_LINK,
            Personality::FreeBsd => NOTE_DELETE,
        }
    }

    /// A rename from a watched directory into another one: FreeBSD reports NOTE_EXTEND on
    /// both directories, NetBSD only on the one the entry went to (§5.7).
    pub(crate) fn move_out_extends_dir(self) -> bool {
        self == Personality::FreeBsd
    }

    /// A vnode knote after its file system went away (NOTE_REVOKE, with EV_EOF): FreeBSD
    /// keeps it active (the vnode is dead), NetBSD reports the revocation once (§5.7).
    pub(crate) fn revoked_vnode_stays_active(self) -> bool {
        self == Personality::FreeBsd
    }

    /// EVFILT_VNODE on a FIFO: FreeBSD's FIFOs are vnodes to the filter (FB vnode.c
    /// `note_delete_fifo`); NetBSD's fifofs refuses the filter (EINVAL) (§5.7).
    pub(crate) fn vnode_on_fifo(self) -> bool {
        self == Personality::FreeBsd
    }

    /// A filter on a descriptor of a kind with no kqueue support at all (NetBSD's
    /// `fnullop_kqfilter` objects: here block devices and the Linux descriptors with no BSD
    /// counterpart, such as signalfd, inotify or pidfd): NetBSD says EOPNOTSUPP (t_kevent
    /// kqueue_unsupported_fd), FreeBSD's `invfo_kqfilter` EINVAL (§5.7).
    pub(crate) fn unsupported_fd(self) -> crate::kevent::Errno {
        match self {
            Personality::NetBsd => crate::kevent::Errno(libc::EOPNOTSUPP),
            Personality::FreeBsd => crate::kevent::Errno::INVAL,
        }
    }

    /// EVFILT_PROC on a process that has exited but was not reaped (a zombie): NetBSD says
    /// ESRCH; FreeBSD registers the knote when NOTE_EXIT is asked for (`sfflags`), and it
    /// fires at once with the exit status (§5.11).
    pub(crate) fn proc_attaches_zombie(self, sfflags: u32) -> bool {
        self == Personality::FreeBsd && sfflags & NOTE_EXIT != 0
    }

    /// EVFILT_PROC on a process of another user, or one that changed its ids: NetBSD says
    /// EACCES unless the caller is root; FreeBSD's visibility check (p_cansee) lets any
    /// process through that the caller can see (§5.11).
    pub(crate) fn proc_requires_same_user(self) -> bool {
        self == Personality::NetBsd
    }

    /// The exit of a process watched without NOTE_EXIT: NetBSD always reports it (EV_EOF,
    /// the status in `data`, `fflags` without NOTE_EXIT). FreeBSD fills `data` only when
    /// NOTE_EXIT was asked for, and drops the knote unreported when no event asked for
    /// fired (§5.11).
    pub(crate) fn proc_exit_needs_interest(self) -> bool {
        self == Personality::FreeBsd
    }

    /// NOTE_TRACK on a fork: NetBSD makes two knotes, a NOTE_CHILD record delivered once and
    /// a knote tracking the child; FreeBSD registers both under the child's key, so the
    /// second lands on the first: one oneshot knote with NOTE_CHILD (`data` the parent's
    /// pid) and the parent's interest, whose delivery ends the tracking of the child, and
    /// in which the child's own events (its exit status in `data`) merge until then (§5.11).
    pub(crate) fn proc_track_merges_child(self) -> bool {
        self == Personality::FreeBsd
    }

    /// EVFILT_WRITE on an eventfd holding `count` (at most `max`): NetBSD's filter reports
    /// the counter in `data`, FreeBSD's the room left, `max - count` as a signed 64-bit
    /// number (§5.3).
    pub(crate) fn eventfd_write_data(self, count: u64, max: u64) -> i64 {
        match self {
            Personality::NetBsd => count as i64,
            Personality::FreeBsd => (max - count) as i64,
        }
    }

    /// EVFILT_READ on a timerfd: NetBSD's filter reports the unread expirations in `data`,
    /// FreeBSD's leaves `data` 0 (§5.3).
    pub(crate) fn timerfd_reports_expirations(self) -> bool {
        self == Personality::NetBsd
    }
}
