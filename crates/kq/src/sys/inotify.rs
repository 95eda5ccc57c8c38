//! inotify: the Linux source of EVFILT_VNODE events and of a regular file's growth
//! (EVFILT_READ on files). A kqueue keeps at most one instance and one watch per inode.

use super::Fd;
use crate::kevent::Errno;
use rustix::fd::{AsRawFd, BorrowedFd, RawFd};

pub(crate) const ACCESS: u32 = libc::IN_ACCESS;
pub(crate) const MODIFY: u32 = libc::IN_MODIFY;
pub(crate) const ATTRIB: u32 = libc::IN_ATTRIB;
pub(crate) const CLOSE_WRITE: u32 = libc::IN_CLOSE_WRITE;
pub(crate) const CLOSE_NOWRITE: u32 = libc::IN_CLOSE_NOWRITE;
pub(crate) const OPEN: u32 = libc::IN_OPEN;
pub(crate) const MOVED_FROM: u32 = libc::IN_MOVED_FROM;
pub(crate) const MOVED_TO: u32 = libc::IN_MOVED_TO;
pub(crate) const CREATE: u32 = libc::IN_CREATE;
pub(crate) const DELETE: u32 = libc::IN_DELETE;
pub(crate) const DELETE_SELF: u32 = libc::IN_DELETE_SELF;
pub(crate) const MOVE_SELF: u32 = libc::IN_MOVE_SELF;
pub(crate) const UNMOUNT: u32 = libc::IN_UNMOUNT;
pub(crate) const Q_OVERFLOW: u32 = libc::IN_Q_OVERFLOW;
pub(crate) const IGNORED: u32 = libc::IN_IGNORED;
pub(crate) const ISDIR: u32 = libc::IN_ISDIR;

/// A non-blocking, close-on-exec inotify instance.
pub(crate) fn create() -> Result<Fd, Errno> {
    use rustix::fs::inotify;
    Ok(inotify::init(
        inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK,
    )?)
}

/// Watches the inode that descriptor number `fd` refers to, for the events of `mask`, through
/// its /proc/self/fd link: that names the open file, not a path, so the watch follows the
/// file through renames and works on an unlinked file. The watch replaces the mask of the
/// inode's existing watch (if any); `add` ORs `mask` into it instead (IN_MASK_ADD). Returns
/// the watch descriptor, the same for every descriptor of one inode. Resolving the link opens
/// nothing, so it causes no event.
pub(crate) fn watch(
    inotify: BorrowedFd<'_>,
    fd: RawFd,
    mask: u32,
    add: bool,
) -> Result<i32, Errno> {
    use rustix::fs::inotify;
    let path = format!("/proc/self/fd/{fd}");
    let flags = if add { mask | libc::IN_MASK_ADD } else { mask };
    Ok(inotify::add_watch(
        inotify,
        path,
        inotify::WatchFlags::from_bits_retain(flags),
    )?)
}

/// Removes watch `wd`.
pub(crate) fn unwatch(inotify: BorrowedFd<'_>, wd: i32) {
    let _ = rustix::fs::inotify::remove_watch(inotify, wd);
}

/// One event read from an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    /// The watch (-1 for IN_Q_OVERFLOW).
    pub(crate) wd: i32,
    pub(crate) mask: u32,
    /// Pairs the IN_MOVED_FROM and IN_MOVED_TO of one rename.
    pub(crate) cookie: u32,
    /// The event concerns an entry of the watched directory (it carries a name), not the
    /// watched inode itself.
    pub(crate) child: bool,
}

/// Room for many events of maximal size (16 bytes plus a NAME_MAX name, padded).
pub(crate) const BUFFER: usize = 16 * 1024;

/// Reads every queued event (without blocking) into `out`, through `buf` (which the caller
/// keeps from one drain to the next, so that it is not cleared every time).
pub(crate) fn drain(inotify: BorrowedFd<'_>, buf: &mut Vec<u8>, out: &mut Vec<Event>) {
    if buf.len() < BUFFER {
        buf.resize(BUFFER, 0);
    }
    loop {
        // SAFETY: reads into a live buffer of its length.
        let n = unsafe {
            libc::read(
                inotify.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        if n <= 0 {
            return;
        }
        out.extend(parse(&buf[..n as usize]));
        if (n as usize) < buf.len() / 2 {
            // Certainly drained: skip the read that would say EAGAIN.
            return;
        }
    }
}

/// The events of a buffer filled by read(2):
/// `struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; }`.
fn parse(buf: &[u8]) -> impl Iterator<Item = Event> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let head = buf.get(at..at + 16)?;
        let word = |i: usize| u32::from_ne_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let len = word(12) as usize;
        at += 16 + len;
        Some(Event {
            wd: word(0) as i32,
            mask: word(4),
            cookie: word(8),
            child: len > 0,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_with_and_without_names() {
        let mut buf = Vec::new();
        let events: [(i32, u32, u32, &str); 2] = [(1, MODIFY, 0, ""), (2, MOVED_TO, 7, "abc")];
        for (wd, mask, cookie, name) in events {
            let padded: u32 = if name.is_empty() { 0 } else { 16 };
            buf.extend_from_slice(&wd.to_ne_bytes());
            buf.extend_from_slice(&mask.to_ne_bytes());
            buf.extend_from_slice(&cookie.to_ne_bytes());
            buf.extend_from_slice(&padded.to_ne_bytes());
            let mut n = name.as_bytes().to_vec();
            n.resize(padded as usize, 0);
            buf.extend_from_slice(&n);
        }
        let got: Vec<Event> = parse(&buf).collect();
        assert_eq!(
            got,
            [
                Event {
                    wd: 1,
                    mask: MODIFY,
                    cookie: 0,
                    child: false
                },
                Event {
                    wd: 2,
                    mask: MOVED_TO,
                    cookie: 7,
                    child: true
                },
            ]
        );
    }
}
