//! The BSD names and values of `<sys/event.h>`, as libkqueue 2.x defines them on Linux
//! (FreeBSD numbering: negative filters, `EVFILT_USER == -11`).
//!
//! The same values are used whatever [`Personality`](crate::Personality) a kqueue has: the
//! personality changes behaviour, never the ABI.

// Filters.
/// Descriptor readable.
pub const EVFILT_READ: i16 = -1;
/// Descriptor writable.
pub const EVFILT_WRITE: i16 = -2;
/// Asynchronous I/O (not implemented: EINVAL, as on NetBSD).
pub const EVFILT_AIO: i16 = -3;
/// File or directory changed.
pub const EVFILT_VNODE: i16 = -4;
/// Process events.
pub const EVFILT_PROC: i16 = -5;
/// Signal deliveries.
pub const EVFILT_SIGNAL: i16 = -6;
/// Timers.
pub const EVFILT_TIMER: i16 = -7;
/// Network device events (libkqueue's number; not implemented).
pub const EVFILT_NETDEV: i16 = -8;
/// File system events.
pub const EVFILT_FS: i16 = -9;
/// lio_listio completion (not implemented).
pub const EVFILT_LIO: i16 = -10;
/// User-triggered events.
pub const EVFILT_USER: i16 = -11;
/// Send buffer empty (FreeBSD's number).
pub const EVFILT_EMPTY: i16 = -13;
/// Number of system filter slots (`-1 ..= -EVFILT_SYSCOUNT`).
pub const EVFILT_SYSCOUNT: i16 = 13;

// Action and status flags.
/// Create the knote, or modify it if it exists.
pub const EV_ADD: u16 = 0x0001;
/// Remove the knote.
pub const EV_DELETE: u16 = 0x0002;
/// Allow delivery.
pub const EV_ENABLE: u16 = 0x0004;
/// Suppress delivery (the filter keeps running).
pub const EV_DISABLE: u16 = 0x0008;
/// Deliver once, then delete.
pub const EV_ONESHOT: u16 = 0x0010;
/// Reset the state after each delivery (edge-triggered).
pub const EV_CLEAR: u16 = 0x0020;
/// Always report the change with an `EV_ERROR` entry (`data` 0 on success).
pub const EV_RECEIPT: u16 = 0x0040;
/// Disable after each delivery.
pub const EV_DISPATCH: u16 = 0x0080;
/// FreeBSD: make an existing knote oneshot and fire it now.
pub const EV_FORCEONESHOT: u16 = 0x0100;
/// FreeBSD: a modification keeps the stored `udata`.
pub const EV_KEEPUDATA: u16 = 0x0200;
/// Reserved for the system; stripped from every change.
pub const EV_SYSFLAGS: u16 = 0xF000;
/// Filter-private flag (reserved, stripped from input).
pub const EV_FLAG1: u16 = 0x2000;
/// FreeBSD's internal flag: the knote is dropped, unreported, when the scan reaches it.
pub(crate) const EV_DROP: u16 = 0x1000;
/// Output: `data` holds an errno (or 0 for a receipt).
pub const EV_ERROR: u16 = 0x4000;
/// Output: the filter saw end of file.
pub const EV_EOF: u16 = 0x8000;

// EVFILT_USER fflags.
/// Leave the stored user flags alone.
pub const NOTE_FFNOP: u32 = 0x0000_0000;
/// AND the stored user flags with the low 24 bits.
pub const NOTE_FFAND: u32 = 0x4000_0000;
/// OR the low 24 bits into the stored user flags.
pub const NOTE_FFOR: u32 = 0x8000_0000;
/// Replace the stored user flags with the low 24 bits.
pub const NOTE_FFCOPY: u32 = 0xC000_0000;
/// The two bits that select the operation.
pub const NOTE_FFCTRLMASK: u32 = 0xC000_0000;
/// The 24 user flag bits.
pub const NOTE_FFLAGSMASK: u32 = 0x00FF_FFFF;
/// Fire the user event.
pub const NOTE_TRIGGER: u32 = 0x0100_0000;

// EVFILT_TIMER fflags (libkqueue's bit values; no unit bit means milliseconds).
/// `data` is in milliseconds (the default; no bit).
pub const NOTE_MSECONDS: u32 = 0x0000;
/// `data` is in seconds.
pub const NOTE_SECONDS: u32 = 0x0001;
/// `data` is in microseconds.
pub const NOTE_USECONDS: u32 = 0x0002;
/// `data` is in nanoseconds.
pub const NOTE_NSECONDS: u32 = 0x0004;
/// `data` is an absolute CLOCK_REALTIME time since the epoch.
pub const NOTE_ABSOLUTE: u32 = 0x0008;
/// FreeBSD and NetBSD spelling of [`NOTE_ABSOLUTE`].
pub const NOTE_ABSTIME: u32 = NOTE_ABSOLUTE;

// EVFILT_READ / EVFILT_WRITE.
/// Low-water mark in `data`.
pub const NOTE_LOWAT: u32 = 0x0001;

// EVFILT_VNODE.
/// The file was unlinked.
pub const NOTE_DELETE: u32 = 0x0001;
/// The contents changed.
pub const NOTE_WRITE: u32 = 0x0002;
/// The size grew.
pub const NOTE_EXTEND: u32 = 0x0004;
/// Metadata changed.
pub const NOTE_ATTRIB: u32 = 0x0008;
/// The link count changed.
pub const NOTE_LINK: u32 = 0x0010;
/// The file was renamed.
pub const NOTE_RENAME: u32 = 0x0020;
/// Access was revoked.
pub const NOTE_REVOKE: u32 = 0x0040;
/// The file was opened (FreeBSD and NetBSD).
pub const NOTE_OPEN: u32 = 0x0080;
/// A descriptor not open for writing was closed (FreeBSD and NetBSD).
pub const NOTE_CLOSE: u32 = 0x0100;
/// A descriptor open for writing was closed (FreeBSD and NetBSD).
pub const NOTE_CLOSE_WRITE: u32 = 0x0200;
/// The file was read (FreeBSD and NetBSD).
pub const NOTE_READ: u32 = 0x0400;

// EVFILT_PROC.
/// The process exited.
pub const NOTE_EXIT: u32 = 0x8000_0000;
/// The process forked.
pub const NOTE_FORK: u32 = 0x4000_0000;
/// The process called exec.
pub const NOTE_EXEC: u32 = 0x2000_0000;
/// Mask of the control bits.
pub const NOTE_PCTRLMASK: u32 = 0xF000_0000;
/// Mask of the pid data.
pub const NOTE_PDATAMASK: u32 = 0x000F_FFFF;
/// Follow forks.
pub const NOTE_TRACK: u32 = 0x0000_0001;
/// Tracking failed.
pub const NOTE_TRACKERR: u32 = 0x0000_0002;
/// A tracked child.
pub const NOTE_CHILD: u32 = 0x0000_0004;

// EVFILT_FS fflags.
/// A file server stopped responding.
pub const VQ_NOTRESP: u32 = 0x0001;
/// A file server needs authentication.
pub const VQ_NEEDAUTH: u32 = 0x0002;
/// Disk space is low.
pub const VQ_LOWDISK: u32 = 0x0004;
/// A file system was mounted.
pub const VQ_MOUNT: u32 = 0x0008;
/// A file system was unmounted.
pub const VQ_UNMOUNT: u32 = 0x0010;
/// A file system is dead.
pub const VQ_DEAD: u32 = 0x0020;
/// A file system needs help from a user-space helper.
pub const VQ_ASSIST: u32 = 0x0040;
/// A file server stopped responding (lock manager).
pub const VQ_NOTRESPLOCK: u32 = 0x0080;
