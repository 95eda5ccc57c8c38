//! The process events connector: a netlink socket (`NETLINK_CONNECTOR`, group
//! `CN_IDX_PROC`) on which Linux reports every fork, exec and exit of the system, in the
//! order they happened. Joining the group needs `CAP_NET_ADMIN` before Linux 6.6, and the
//! initial pid and user namespaces always (elsewhere the subscription is ignored without an
//! answer). `KQ_NO_PROC_CONNECTOR` in the environment makes it unavailable, for tests.
//!
//! The socket's receive buffer holds the events the library has not read yet; when it is
//! full, Linux drops the events that do not fit and the next read fails with ENOBUFS
//! ([`Event::Lost`]). `KQ_PROC_CONNECTOR_RCVBUF=<bytes>` in the environment asks for that
//! size instead of the usual 8 MiB (Linux rounds it up to a few events' worth), so that
//! tests can make events be lost.

use super::Fd;
use crate::kevent::Errno;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd};
use std::time::{Duration, Instant};

fn last_errno() -> Errno {
    Errno::from(std::io::Error::last_os_error())
}

const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_CN_MCAST_IGNORE: u32 = 2;

const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 1;
const PROC_EVENT_EXEC: u32 = 2;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// `struct cn_msg` (20 bytes): the connector's header after the netlink one.
#[repr(C)]
#[derive(Clone, Copy)]
struct CnMsg {
    idx: u32,
    val: u32,
    seq: u32,
    ack: u32,
    len: u16,
    flags: u16,
}

/// A subscription request: netlink header, connector header, the operation.
#[repr(C)]
struct Request {
    nl: libc::nlmsghdr,
    cn: CnMsg,
    op: u32,
}

/// The `ack` field of our subscription request: its acknowledgement carries this plus one
/// (the sequence number is not echoed: Linux numbers every message it sends).
const ACK: u32 = 0x6b71_7063;

/// What the connector reports that a process filter cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Process `parent` made process `child` (new threads are not reported).
    Fork { parent: i32, child: i32 },
    /// Process `pid` executed a new program.
    Exec { pid: i32 },
    /// The main thread of process `pid` exited with wait(2) status `status`.
    Exit { pid: i32, status: i32 },
    /// The socket's buffer overflowed: events were lost.
    Lost,
}

fn send_op(sock: BorrowedFd<'_>, op: u32) -> Result<(), Errno> {
    let req = Request {
        nl: libc::nlmsghdr {
            nlmsg_len: std::mem::size_of::<Request>() as u32,
            nlmsg_type: libc::NLMSG_DONE as u16,
            nlmsg_flags: 0,
            nlmsg_seq: 0,
            nlmsg_pid: 0,
        },
        cn: CnMsg {
            idx: CN_IDX_PROC,
            val: CN_VAL_PROC,
            seq: 0,
            ack: ACK,
            len: 4,
            flags: 0,
        },
        op,
    };
    // SAFETY: `req` is a live, initialised buffer of the length given.
    let r = unsafe {
        libc::send(
            sock.as_raw_fd(),
            (&req as *const Request).cast(),
            std::mem::size_of::<Request>(),
            0,
        )
    };
    if r < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// How long a subscription waits for its acknowledgement: where the kernel ignores it
/// (another pid namespace) none comes.
const ACK_WAIT: Duration = Duration::from_millis(500);

/// Opens a close-on-exec, non-blocking socket subscribed to the process events, with a large
/// receive buffer. EOPNOTSUPP when the kernel refuses (no connector, no permission, another
/// namespace) or `KQ_NO_PROC_CONNECTOR` is set; EMFILE/ENFILE/ENOMEM as the calls say.
pub(crate) fn open() -> Result<Fd, Errno> {
    if std::env::var_os("KQ_NO_PROC_CONNECTOR").is_some() {
        return Err(Errno(libc::EOPNOTSUPP));
    }
    let unsupported = |e: Errno| {
        if matches!(
            e.0,
            libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS
        ) {
            e
        } else {
            Errno(libc::EOPNOTSUPP)
        }
    };
    // SAFETY: socket takes integers and returns a new descriptor or -1.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::NETLINK_CONNECTOR,
        )
    };
    if raw < 0 {
        return Err(unsupported(last_errno()));
    }
    // SAFETY: a new descriptor, which nothing else owns.
    let sock = unsafe { Fd::from_raw_fd(raw) };
    // SAFETY: sockaddr_nl is plain data, valid when zeroed.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = CN_IDX_PROC;
    // SAFETY: `addr` is a live sockaddr_nl of the length given.
    let r = unsafe {
        libc::bind(
            raw,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(unsupported(last_errno()));
    }
    // Room for tens of thousands of events (the forcing variant needs CAP_NET_ADMIN; the
    // plain one is capped by net.core.rmem_max).
    let size: libc::c_int = std::env::var("KQ_PROC_CONNECTOR_RCVBUF")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8 << 20);
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: `size` is a live c_int of the length given.
        let r = unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            break;
        }
    }
    send_op(sock.as_fd(), PROC_CN_MCAST_LISTEN).map_err(unsupported)?;
    // Wait for the acknowledgement (events of other processes may come first).
    let deadline = Instant::now() + ACK_WAIT;
    let mut buf = Buffer::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        let mut p = libc::pollfd {
            fd: raw,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis().max(1) as libc::c_int) };
        if n < 0 && last_errno().0 != libc::EINTR {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        if n <= 0 {
            continue;
        }
        match recv(sock.as_fd(), &mut buf) {
            Ok(0) => continue,
            Ok(len) => {
                if let Some(err) = find_ack(&buf.bytes[..len]) {
                    if err != 0 {
                        return Err(Errno(libc::EOPNOTSUPP));
                    }
                    return Ok(sock);
                }
            }
            Err(e) if e.0 == libc::EAGAIN || e.0 == libc::ENOBUFS => continue,
            Err(_) => return Err(Errno(libc::EOPNOTSUPP)),
        }
    }
}

/// Says the socket no longer wants events (the kernel stops counting it as a listener).
pub(crate) fn unsubscribe(sock: BorrowedFd<'_>) {
    let _ = send_op(sock, PROC_CN_MCAST_IGNORE);
}

/// A receive buffer, aligned for the headers it holds.
#[repr(C, align(8))]
pub(crate) struct Buffer {
    bytes: [u8; 8192],
}

impl Buffer {
    pub(crate) fn new() -> Buffer {
        Buffer { bytes: [0; 8192] }
    }
}

/// One datagram into `buf`: its length; EAGAIN when none is waiting, ENOBUFS when events
/// were lost.
fn recv(sock: BorrowedFd<'_>, buf: &mut Buffer) -> Result<usize, Errno> {
    loop {
        // SAFETY: `buf` is a live, writable buffer of the length given.
        let r = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.bytes.as_mut_ptr().cast(),
                buf.bytes.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            let e = last_errno();
            if e.0 == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        return Ok(r as usize);
    }
}

/// Reads a `T` at `off` in `bytes`, if it fits.
fn read_at<T: Copy>(bytes: &[u8], off: usize) -> Option<T> {
    let end = off.checked_add(std::mem::size_of::<T>())?;
    if end > bytes.len() {
        return None;
    }
    // SAFETY: the range is within `bytes`; read_unaligned copes with any alignment, and the
    // types read here (integers and headers of integers) are valid for any bits.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().add(off).cast::<T>()) })
}

/// The netlink messages of one datagram: (connector header, payload offset).
fn messages(bytes: &[u8]) -> impl Iterator<Item = (CnMsg, usize)> + '_ {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        let nl: libc::nlmsghdr = read_at(bytes, off)?;
        let len = nl.nlmsg_len as usize;
        if len < std::mem::size_of::<libc::nlmsghdr>() || off + len > bytes.len() {
            return None;
        }
        let here = off;
        off += (len + 3) & !3;
        let cn_at = here + std::mem::size_of::<libc::nlmsghdr>();
        let cn: CnMsg = read_at(bytes, cn_at)?;
        Some((cn, cn_at + std::mem::size_of::<CnMsg>()))
    })
}

// `struct proc_event`: what (u32), cpu (u32), timestamp_ns (u64), then the event data.
const EVENT_DATA: usize = 16;

/// The error of our subscription's acknowledgement, if `bytes` holds it.
fn find_ack(bytes: &[u8]) -> Option<u32> {
    messages(bytes).find_map(|(cn, at)| {
        let what: u32 = read_at(bytes, at)?;
        (cn.idx == CN_IDX_PROC && what == PROC_EVENT_NONE && cn.ack == ACK.wrapping_add(1))
            .then(|| read_at::<u32>(bytes, at + EVENT_DATA))
            .flatten()
    })
}

/// Reads every datagram waiting on `sock` and passes its events to `each`, in order.
/// Returns when none is left (or the socket fails).
///
/// A loss is passed on last ([`Event::Lost`], once): Linux reports it (ENOBUFS) at the
/// first read after it dropped events, before the events it had queued until then, which
/// happened before the lost ones. Passed on after them, the loss reaches every knote those
/// events made (a fork's tracking knote, whose process's exit may be among the lost).
pub(crate) fn drain(sock: BorrowedFd<'_>, buf: &mut Buffer, mut each: impl FnMut(Event)) {
    let mut lost = false;
    loop {
        let len = match recv(sock, buf) {
            Ok(len) => len,
            Err(e) if e.0 == libc::ENOBUFS => {
                lost = true;
                continue;
            }
            Err(_) => {
                if lost {
                    each(Event::Lost);
                }
                return;
            }
        };
        let bytes = &buf.bytes[..len];
        for (cn, at) in messages(bytes) {
            if cn.idx != CN_IDX_PROC || cn.val != CN_VAL_PROC {
                continue;
            }
            let Some(what) = read_at::<u32>(bytes, at) else {
                continue;
            };
            let d = at + EVENT_DATA;
            let word = |i: usize| read_at::<i32>(bytes, d + 4 * i);
            let event = match what {
                // fork: parent_pid, parent_tgid, child_pid, child_tgid. A new thread has a
                // child_pid other than its child_tgid.
                PROC_EVENT_FORK => match (word(1), word(2), word(3)) {
                    (Some(parent), Some(child), Some(tgid)) if child == tgid => {
                        Event::Fork { parent, child }
                    }
                    _ => continue,
                },
                // exec: process_pid, process_tgid.
                PROC_EVENT_EXEC => match word(1) {
                    Some(pid) => Event::Exec { pid },
                    None => continue,
                },
                // exit: process_pid, process_tgid, exit_code, exit_signal. Threads other
                // than the main one are left out.
                PROC_EVENT_EXIT => match (word(0), word(1), word(2)) {
                    (Some(tid), Some(pid), Some(status)) if tid == pid => {
                        Event::Exit { pid, status }
                    }
                    _ => continue,
                },
                _ => continue,
            };
            each(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        assert_eq!(std::mem::size_of::<CnMsg>(), 20);
        assert_eq!(std::mem::size_of::<Request>(), 40);
    }
}
