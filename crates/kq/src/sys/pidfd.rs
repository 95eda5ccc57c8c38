//! Processes: process descriptors (`pidfd_open`, Linux 5.3), `waitid` without reaping
//! (`P_PIDFD` from 5.4, `P_PID` before), `PIDFD_GET_INFO` (6.13; the exit status of a
//! reaped process from 6.15), and what `/proc/<pid>` says of a process (its state, its
//! exit status while it is a zombie, its user and group ids).
//!
//! Each call newer than Linux 4.18 is detected at run time (ENOSYS, EINVAL, ENOTTY) and can
//! be turned off from the start for tests: `KQ_NO_PIDFD` (no `pidfd_open`, nor `P_PIDFD`),
//! `KQ_NO_PIDFD_INFO` (no `PIDFD_GET_INFO`).

use super::Fd;
use crate::kevent::Errno;
use rustix::fd::{AsRawFd, BorrowedFd, FromRawFd};
use std::io::Read;
use std::sync::atomic::{AtomicU8, Ordering};

fn last_errno() -> Errno {
    Errno::from(std::io::Error::last_os_error())
}

/// A feature switch: 0 not looked at yet, 1 in use, 2 off (missing, or disabled by its
/// environment variable).
struct Feature {
    state: AtomicU8,
    env: &'static str,
}

impl Feature {
    const fn new(env: &'static str) -> Feature {
        Feature {
            state: AtomicU8::new(0),
            env,
        }
    }

    fn on(&self) -> bool {
        match self.state.load(Ordering::Relaxed) {
            0 => {
                let on = std::env::var_os(self.env).is_none();
                self.state.store(if on { 1 } else { 2 }, Ordering::Relaxed);
                on
            }
            s => s == 1,
        }
    }

    fn off(&self) {
        self.state.store(2, Ordering::Relaxed);
    }
}

static PIDFD: Feature = Feature::new("KQ_NO_PIDFD");
static P_PIDFD: Feature = Feature::new("KQ_NO_PIDFD");
static INFO: Feature = Feature::new("KQ_NO_PIDFD_INFO");

/// `pidfd_open(pid, 0)`: a close-on-exec descriptor for process `pid`, readable once the
/// process has exited (all its threads). ESRCH if there is no such process (already
/// reaped), EINVAL if `pid` names a thread that is not a process; ENOSYS where the kernel
/// has no process descriptors or they are turned off.
pub(crate) fn open(pid: i32) -> Result<Fd, Errno> {
    if !PIDFD.on() {
        return Err(Errno(libc::ENOSYS));
    }
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        let e = last_errno();
        if e.0 == libc::ENOSYS {
            PIDFD.off();
            P_PIDFD.off();
        }
        return Err(e);
    }
    // SAFETY: the call returned a new descriptor, which nothing else owns.
    Ok(unsafe { Fd::from_raw_fd(r as libc::c_int) })
}

/// Whether the process of `pidfd` has not been reaped yet: `pidfd_send_signal` with signal
/// 0 fails with ESRCH only once it has been (a zombie still takes signals).
pub(crate) fn unreaped(pidfd: BorrowedFd<'_>) -> bool {
    // SAFETY: pidfd_send_signal with a null siginfo and signal 0 sends nothing.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    r == 0 || last_errno().0 != libc::ESRCH
}

/// The wait(2) status word (`WIFEXITED`, `WEXITSTATUS`, `WTERMSIG`, `WCOREDUMP` apply) of a
/// child as `waitid` describes it.
fn status_word(si: &libc::siginfo_t) -> i32 {
    // SAFETY: `si` was filled by waitid for an exited child, whose siginfo carries si_status.
    let status = unsafe { si.si_status() };
    match si.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_KILLED => status & 0x7f,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => 0,
    }
}

/// The status of child `pid` (through `pidfd` where there is one) if it has exited, without
/// reaping it: `waitid(WEXITED|WNOWAIT|WNOHANG|__WALL)`. `Ok(None)`: not waitable yet (it is
/// running); ECHILD: no child of this process has that pid (not a child, or already
/// reaped).
pub(crate) fn wait_exited(pidfd: Option<BorrowedFd<'_>>, pid: i32) -> Result<Option<i32>, Errno> {
    let options = libc::WEXITED | libc::WNOWAIT | libc::WNOHANG | libc::__WALL;
    loop {
        let (idtype, id) = match pidfd {
            Some(fd) if P_PIDFD.on() => (libc::P_PIDFD, fd.as_raw_fd() as libc::id_t),
            _ => (libc::P_PID, pid as libc::id_t),
        };
        // SAFETY: siginfo_t is plain data, valid when zeroed; waitid writes it.
        let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `si` is a live siginfo_t for waitid to fill.
        let r = unsafe { libc::waitid(idtype, id, &mut si, options) };
        if r < 0 {
            let e = last_errno();
            match e.0 {
                libc::EINTR => continue,
                // A kernel before 5.4: no P_PIDFD. Ask by pid (it cannot be reused while
                // the child is not reaped).
                libc::EINVAL if idtype == libc::P_PIDFD => {
                    P_PIDFD.off();
                    continue;
                }
                _ => return Err(e),
            }
        }
        // SAFETY: filled by waitid (or still zeroed: si_pid 0 then).
        if unsafe { si.si_pid() } == 0 {
            return Ok(None);
        }
        return Ok(Some(status_word(&si)));
    }
}

/// `struct pidfd_info` as Linux 6.15 defines it (64 bytes; later kernels accept it).
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ruid: u32,
    rgid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    exit_code: i32,
}

const _: () = assert!(std::mem::size_of::<PidfdInfo>() == 64);

const PIDFD_GET_INFO: libc::Ioctl = libc::_IOWR::<PidfdInfo>(0xFF, 11);
const PIDFD_INFO_CREDS: u64 = 1 << 1;
const PIDFD_INFO_EXIT: u64 = 1 << 3;

/// `ioctl(pidfd, PIDFD_GET_INFO)` asking for `mask`; `None` where the kernel lacks it (or
/// it is turned off) or fails.
fn info(pidfd: BorrowedFd<'_>, mask: u64) -> Option<PidfdInfo> {
    if !INFO.on() {
        return None;
    }
    let mut info = PidfdInfo {
        mask,
        ..PidfdInfo::default()
    };
    // SAFETY: PIDFD_GET_INFO reads and writes one struct pidfd_info of the size encoded in
    // the request, which `info` is.
    let r = unsafe {
        libc::ioctl(
            pidfd.as_raw_fd(),
            PIDFD_GET_INFO,
            &mut info as *mut PidfdInfo,
        )
    };
    if r < 0 {
        let e = last_errno();
        if matches!(e.0, libc::ENOTTY | libc::EINVAL | libc::ENOSYS) {
            INFO.off();
        }
        return None;
    }
    Some(info)
}

/// The exit status of the process of `pidfd`, from `PIDFD_GET_INFO`: known once the process
/// has been reaped (by whoever is its parent), on Linux 6.15 and later.
pub(crate) fn exit_info(pidfd: BorrowedFd<'_>) -> Option<i32> {
    info(pidfd, PIDFD_INFO_EXIT)
        .filter(|i| i.mask & PIDFD_INFO_EXIT != 0)
        .map(|i| i.exit_code)
}

/// A process's real, effective and saved user and group ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ids {
    pub(crate) uid: [u32; 3],
    pub(crate) gid: [u32; 3],
}

/// The ids of the process of `pidfd`, from `PIDFD_GET_INFO` (Linux 6.13 and later).
pub(crate) fn ids(pidfd: BorrowedFd<'_>) -> Option<Ids> {
    info(pidfd, PIDFD_INFO_CREDS)
        .filter(|i| i.mask & PIDFD_INFO_CREDS != 0)
        .map(|i| Ids {
            uid: [i.ruid, i.euid, i.suid],
            gid: [i.rgid, i.egid, i.sgid],
        })
}

/// Reads a small /proc file.
fn read_proc(path: &str) -> Option<String> {
    let mut s = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(4096)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// The ids of process `pid` from `/proc/<pid>/status` (`Uid:` and `Gid:` lines).
pub(crate) fn proc_ids(pid: i32) -> Option<Ids> {
    let status = read_proc(&format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Option<[u32; 3]> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let mut v = line[name.len()..]
            .split_whitespace()
            .map(|n| n.parse().ok());
        Some([v.next()??, v.next()??, v.next()??])
    };
    Some(Ids {
        uid: field("Uid:")?,
        gid: field("Gid:")?,
    })
}

/// The state letter of process `pid` and its exit status (field 52 of `/proc/<pid>/stat`,
/// Linux 3.5 and later: the wait(2) status word once the process is a zombie, shown to
/// those allowed to trace it, 0 to others).
pub(crate) fn proc_stat(pid: i32) -> Option<(u8, i32)> {
    let stat = read_proc(&format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold anything: count from the
    // last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // Fields 3 (the state) to 52: the exit status is 49 fields after the state.
    let code = fields.nth(48).and_then(|c| c.parse().ok()).unwrap_or(0);
    Some((state, code))
}

/// Whether process `pid` exists (`kill(pid, 0)` does not say ESRCH).
pub(crate) fn exists(pid: i32) -> bool {
    // SAFETY: signal 0 sends nothing.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || last_errno().0 != libc::ESRCH
}

/// This process's effective user id is 0.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// This process's real user id.
pub(crate) fn real_uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_stat_and_ids() {
        let me = super::super::getpid();
        let (state, code) = proc_stat(me).expect("/proc/self/stat");
        assert!(matches!(state, b'R' | b'S'), "{}", state as char);
        assert_eq!(code, 0);
        let ids = proc_ids(me).expect("/proc/self/status");
        assert_eq!(ids.uid[0], real_uid());
        assert!(exists(me));
    }
}
