//! The mount table of the calling thread's mount namespace.
//!
//! - `/proc/thread-self/mountinfo`: one line per mount, its mount id first. Every change of
//!   the namespace's mounts (mount, unmount, move, remount, propagation) wakes its pollers
//!   and epoll, and poll() reports POLLPRI|POLLERR once per change to each open file (the
//!   report clears the mark, so it is not a state epoll can watch for: a poller of an epoll
//!   holding the file would consume it). EPOLLIN, always set, is what epoll watches: an
//!   edge-triggered registration gets an edge for every wakeup.
//! - listmount(2) (Linux 6.8): the mounts by 64-bit ids that are never reused, where
//!   mountinfo's ids are (an unmount then a mount can give the new mount the old one's id,
//!   with an identical line). Not used when `KQ_NO_LISTMOUNT` is set in the environment,
//!   so that tests run the mountinfo-only path on any kernel.
//!
//! Nothing here knows about kqueues.

use super::Fd;
use crate::kevent::Errno;
use rustix::fd::BorrowedFd;
use std::sync::atomic::{AtomicU8, Ordering};

/// `/proc/thread-self/<name>`, or `/proc/self/<name>` where thread-self is missing.
fn proc_path(name: &str) -> [String; 2] {
    [
        format!("/proc/thread-self/{name}"),
        format!("/proc/self/{name}"),
    ]
}

/// Opens the mount table of the calling thread's namespace, close-on-exec.
pub(crate) fn open_table() -> Result<Fd, Errno> {
    use rustix::fs::{open, Mode, OFlags};
    let [thread, process] = proc_path("mountinfo");
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    match open(thread, flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        // Out of descriptors: the same again.
        Err(e) if e == rustix::io::Errno::MFILE || e == rustix::io::Errno::NFILE => Err(e.into()),
        Err(_) => Ok(open(process, flags, Mode::empty())?),
    }
}

/// Whether the table behind `fd` changed since this was last asked (or since it was
/// opened). Asking clears the mark.
fn changed(fd: BorrowedFd<'_>) -> bool {
    let pri = libc::POLLPRI as u32 | libc::POLLERR as u32;
    super::io::poll_now(fd, pri).is_ok_and(|r| r & pri != 0)
}

/// How many times a table that changed while being read is read again.
const TRIES: usize = 8;

/// The mount ids of the table behind `fd` (the first field of each mountinfo line),
/// sorted. A table longer than one read is not read atomically, so it is read again if it
/// changed meanwhile (up to a few times: a later change also wakes the table's pollers,
/// and is looked at then). `buf` is scratch space kept between calls.
pub(crate) fn table_ids(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> Result<Vec<u32>, Errno> {
    let mut ids = Vec::new();
    for _ in 0..TRIES {
        changed(fd);
        let len = read_all(fd, buf)?;
        ids = parse_ids(&buf[..len]);
        if !changed(fd) {
            break;
        }
    }
    Ok(ids)
}

/// Reads the whole table into `buf` (grown as needed, never shrunk) and returns its length.
fn read_all(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> Result<usize, Errno> {
    let mut len = 0;
    loop {
        if buf.len() < len + 4096 {
            // Zeroed once: the buffer keeps its length between calls.
            buf.resize((2 * buf.len()).max(16 * 1024), 0);
        }
        match rustix::io::pread(fd, &mut buf[len..], len as u64) {
            Ok(0) => return Ok(len),
            Ok(n) => len += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The first field of every line, as a number, sorted and without duplicates.
fn parse_ids(text: &[u8]) -> Vec<u32> {
    let mut ids: Vec<u32> = text
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let field = line.split(|&b| b == b' ').next()?;
            std::str::from_utf8(field).ok()?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// listmount(2)'s number, where it has one in the unified table (added in Linux 6.8).
#[cfg(any(target_arch = "mips", target_arch = "mips32r6"))]
const SYS_LISTMOUNT: Option<libc::c_long> = Some(4000 + 458);
#[cfg(all(
    any(target_arch = "mips64", target_arch = "mips64r6"),
    target_pointer_width = "64"
))]
const SYS_LISTMOUNT: Option<libc::c_long> = Some(5000 + 458);
#[cfg(all(
    any(target_arch = "mips64", target_arch = "mips64r6"),
    target_pointer_width = "32"
))]
const SYS_LISTMOUNT: Option<libc::c_long> = Some(6000 + 458);
#[cfg(not(any(
    target_arch = "mips",
    target_arch = "mips32r6",
    target_arch = "mips64",
    target_arch = "mips64r6"
)))]
const SYS_LISTMOUNT: Option<libc::c_long> = Some(458);

/// The kernel's `struct mnt_id_req`, first version.
#[repr(C)]
struct MntIdReq {
    size: u32,
    spare: u32,
    mnt_id: u64,
    param: u64,
}

/// `mnt_id` for "the mounts below the caller's root".
const LSMT_ROOT: u64 = u64::MAX;

/// 0: not decided yet, 1: listmount is used, 2: it is not.
static LISTMOUNT: AtomicU8 = AtomicU8::new(0);

/// Whether listmount is used (not known to be missing, not disabled).
pub(crate) fn use_listmount() -> bool {
    match LISTMOUNT.load(Ordering::Relaxed) {
        0 => {
            let ok = SYS_LISTMOUNT.is_some() && std::env::var_os("KQ_NO_LISTMOUNT").is_none();
            LISTMOUNT.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
            ok
        }
        v => v == 1,
    }
}

/// Makes every later look at the table use mountinfo alone, as on kernels before 6.8.
pub(crate) fn force_table_fallback() {
    LISTMOUNT.store(2, Ordering::Relaxed);
}

/// The never-reused ids of the mounts of the calling thread's namespace below its root,
/// sorted; `None` where listmount is missing or failed.
pub(crate) fn unique_ids() -> Option<Vec<u64>> {
    let nr = SYS_LISTMOUNT?;
    if !use_listmount() {
        return None;
    }
    let mut ids: Vec<u64> = Vec::new();
    let mut room = 512usize;
    let mut last = 0u64;
    loop {
        ids.reserve(room);
        let start = ids.len();
        let req = MntIdReq {
            size: std::mem::size_of::<MntIdReq>() as u32,
            spare: 0,
            mnt_id: LSMT_ROOT,
            param: last,
        };
        // SAFETY: `req` is a live, initialised mnt_id_req of the size it states, and the
        // kernel writes at most `room` u64s at the end of `ids`, which has room for that
        // many (reserved above).
        let n = unsafe {
            libc::syscall(
                nr,
                &req as *const MntIdReq,
                ids.as_mut_ptr().add(start),
                room,
                0 as libc::c_uint,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            match e {
                libc::ENOSYS => {
                    force_table_fallback();
                    return None;
                }
                // The first kernels with listmount refused a list longer than the buffer.
                libc::EOVERFLOW if room < 1 << 20 => {
                    ids.clear();
                    last = 0;
                    room *= 4;
                    continue;
                }
                libc::EINTR => continue,
                _ => return None,
            }
        }
        let n = (n as usize).min(room);
        // SAFETY: the kernel wrote `n` ids (at most `room`, within the reserved capacity)
        // after the first `start`.
        unsafe { ids.set_len(start + n) };
        if n < room {
            break;
        }
        // Full: go on after the last id listed (the ids come in increasing order).
        last = ids[ids.len() - 1];
    }
    ids.sort_unstable();
    ids.dedup();
    Some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_ids() {
        let text = b"22 27 0:21 / /proc rw - proc proc rw\n\
                     7 1 0:6 / /dev rw - devtmpfs devtmpfs rw\n\
                     22 27 0:21 / /proc rw - proc proc rw\n\
                     garbage\n\n";
        assert_eq!(parse_ids(text), vec![7, 22]);
    }

    #[test]
    fn reads_own_table() {
        let fd = open_table().expect("open mountinfo");
        let mut buf = Vec::new();
        let ids = table_ids(rustix::fd::AsFd::as_fd(&fd), &mut buf).expect("read mountinfo");
        assert!(!ids.is_empty());
        if let Some(unique) = unique_ids() {
            assert_eq!(unique.len(), ids.len(), "{unique:?} vs {ids:?}");
        }
    }
}
