//! inotify: a regular file's growth has no poll event, so a kqueue watching files keeps
//! one inotify instance and a watch (IN_MODIFY) per watched file.

use super::Fd;
use crate::kevent::Errno;
use rustix::fd::{AsRawFd, BorrowedFd, RawFd};

/// A non-blocking, close-on-exec inotify instance.
pub(crate) fn create() -> Result<Fd, Errno> {
    use rustix::fs::inotify;
    Ok(inotify::init(
        inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK,
    )?)
}

/// Watches for modification of the file that descriptor number `fd` refers to (through
/// its /proc/self/fd link, which names the open file, not a path). Returns the watch
/// descriptor.
pub(crate) fn watch_modify(inotify: BorrowedFd<'_>, fd: RawFd) -> Result<i32, Errno> {
    use rustix::fs::inotify;
    let path = format!("/proc/self/fd/{fd}");
    Ok(inotify::add_watch(
        inotify,
        path,
        inotify::WatchFlags::MODIFY,
    )?)
}

/// Removes watch `wd`.
pub(crate) fn unwatch(inotify: BorrowedFd<'_>, wd: i32) {
    let _ = rustix::fs::inotify::remove_watch(inotify, wd);
}

/// Reads every queued event and returns their watch descriptors (an overflow, wd -1, is
/// reported as -1: the caller then looks at every watched file).
pub(crate) fn drain(inotify: BorrowedFd<'_>) -> Vec<i32> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
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
            return out;
        }
        let mut at = 0usize;
        let n = n as usize;
        // struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; }
        while at + 16 <= n {
            let wd = i32::from_ne_bytes(buf[at..at + 4].try_into().unwrap_or_default());
            let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap_or_default());
            out.push(wd);
            at += 16 + len as usize;
        }
    }
}
