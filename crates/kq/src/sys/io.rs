//! What the descriptor filters ask of a descriptor: its identity and type, bytes readable,
//! send-buffer state, accept-queue length, pending socket error, file offset.

use crate::kevent::Errno;
use rustix::fd::{AsRawFd, BorrowedFd};

fn last_errno() -> Errno {
    Errno::from(std::io::Error::last_os_error())
}

/// The identity and type of the file behind a descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// `st_mode & S_IFMT`.
    pub(crate) kind: u32,
    pub(crate) size: i64,
}

/// `fstat`: EBADF if `fd` is not open.
pub(crate) fn identity(fd: BorrowedFd<'_>) -> Result<Identity, Errno> {
    let st = rustix::fs::fstat(fd)?;
    Ok(Identity {
        dev: st.st_dev,
        ino: st.st_ino,
        kind: st.st_mode & libc::S_IFMT,
        size: st.st_size,
    })
}

/// What `fstat` tells of a file that EVFILT_VNODE compares from one look to the next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FileStat {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// `st_mode` (type and permissions).
    pub(crate) mode: u32,
    pub(crate) nlink: u64,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) size: i64,
    /// (seconds, nanoseconds) of the last access, modification and status change.
    pub(crate) atime: (i64, i64),
    pub(crate) mtime: (i64, i64),
    pub(crate) ctime: (i64, i64),
}

/// 0: statx not tried yet, 1: works, 2: missing (ENOSYS, or refused by a seccomp filter),
/// or `KQ_NO_STATX` is set in the environment (so that tests run the fstat fallback).
static STATX: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// What `fstat` shows of a file, in full (`full`), or only its identity, type, link count,
/// size and modification and change times (the rest left 0), which is cheaper to ask for (`statx` with a small mask; Linux
/// 4.11, `fstat` where it is missing). Reads no data and opens nothing, so it causes no
/// inotify event.
pub(crate) fn file_stat(fd: BorrowedFd<'_>, full: bool) -> Result<FileStat, Errno> {
    use rustix::fs::{statx, AtFlags, StatxFlags};
    use std::sync::atomic::Ordering;
    if STATX.load(Ordering::Relaxed) == 0 && std::env::var_os("KQ_NO_STATX").is_some() {
        STATX.store(2, Ordering::Relaxed);
    }
    if STATX.load(Ordering::Relaxed) != 2 {
        let mask = if full {
            StatxFlags::BASIC_STATS
        } else {
            StatxFlags::TYPE
                | StatxFlags::INO
                | StatxFlags::NLINK
                | StatxFlags::SIZE
                | StatxFlags::MTIME
                | StatxFlags::CTIME
        };
        match statx(fd, c"", AtFlags::EMPTY_PATH, mask) {
            Ok(x) => {
                STATX.store(1, Ordering::Relaxed);
                let time = |t: rustix::fs::StatxTimestamp| (t.tv_sec, i64::from(t.tv_nsec));
                let mut st = FileStat {
                    dev: libc::makedev(x.stx_dev_major, x.stx_dev_minor),
                    ino: x.stx_ino,
                    mode: u32::from(x.stx_mode),
                    nlink: u64::from(x.stx_nlink),
                    size: x.stx_size as i64,
                    mtime: time(x.stx_mtime),
                    ctime: time(x.stx_ctime),
                    ..FileStat::default()
                };
                if full {
                    st.uid = x.stx_uid;
                    st.gid = x.stx_gid;
                    st.atime = time(x.stx_atime);
                } else {
                    st.mode &= libc::S_IFMT;
                }
                return Ok(st);
            }
            Err(e)
                if STATX.load(Ordering::Relaxed) == 0
                    && (e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::PERM) =>
            {
                STATX.store(2, Ordering::Relaxed);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let st = rustix::fs::fstat(fd)?;
    let mut out = FileStat {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        mode: st.st_mode as u32,
        nlink: st.st_nlink as u64,
        uid: st.st_uid as u32,
        gid: st.st_gid as u32,
        size: st.st_size as i64,
        atime: (st.st_atime as i64, st.st_atime_nsec as i64),
        mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
    };
    if !full {
        out = FileStat {
            mode: out.mode & libc::S_IFMT,
            uid: 0,
            gid: 0,
            atime: (0, 0),
            ..out
        };
    }
    Ok(out)
}

fn ioctl_int(fd: BorrowedFd<'_>, request: libc::c_ulong) -> Result<i64, Errno> {
    let mut v: libc::c_int = 0;
    // SAFETY: FIONREAD/TIOCOUTQ-style requests write one int through the pointer, which
    // points to a live c_int.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, &mut v as *mut libc::c_int) };
    if r < 0 {
        return Err(last_errno());
    }
    Ok(i64::from(v))
}

/// Bytes readable (`FIONREAD`): pipes, FIFOs, stream sockets, ttys, inotify; the next
/// datagram's size on datagram sockets.
pub(crate) fn readable_bytes(fd: BorrowedFd<'_>) -> Result<i64, Errno> {
    ioctl_int(fd, libc::FIONREAD)
}

/// Bytes queued for sending (`SIOCOUTQ`/`TIOCOUTQ`): unsent plus unacknowledged on TCP,
/// allocated buffer memory on AF_UNIX, characters in a tty's output queue.
pub(crate) fn queued_for_output(fd: BorrowedFd<'_>) -> Result<i64, Errno> {
    ioctl_int(fd, libc::TIOCOUTQ)
}

/// What a socket's send buffer still holds, as EVFILT_EMPTY counts it: `SIOCOUTQ`, except
/// that a TCP connection that is gone (reset, timed out, refused: state CLOSE) holds
/// nothing, where Linux goes on counting the bytes that were never acknowledged (the BSDs
/// flush the send buffer when the connection drops), and that a socket with no send queue
/// to tell of (netlink, which Linux answers ENOTTY: it sends synchronously) holds nothing.
pub(crate) fn unsent(fd: BorrowedFd<'_>) -> Result<i64, Errno> {
    match queued_for_output(fd) {
        Ok(0) => Ok(0),
        Ok(_) if tcp_state(fd) == Some(TCP_CLOSE) => Ok(0),
        Err(e) if e.0 == libc::ENOTTY => Ok(0),
        r => r,
    }
}

/// `TCP_CLOSE` of the kernel's TCP states (`tcpi_state`).
const TCP_CLOSE: u8 = 7;

/// A TCP socket's state (`tcpi_state`, the first byte of `TCP_INFO`); `None` for other
/// sockets.
fn tcp_state(fd: BorrowedFd<'_>) -> Option<u8> {
    let mut buf = [0u8; 8];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `buf`, which is that large.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0 && len >= 1).then_some(buf[0])
}

fn sockopt_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> Result<i32, Errno> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes to `v`, which is a live c_int of that
    // size, and updates `len`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &mut v as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        return Err(last_errno());
    }
    Ok(v)
}

/// What a socket is, as far as the filters care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketInfo {
    pub(crate) listening: bool,
    pub(crate) tcp: bool,
}

/// Type details of a socket.
pub(crate) fn socket_info(fd: BorrowedFd<'_>) -> Result<SocketInfo, Errno> {
    let listening = sockopt_int(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? != 0;
    if !listening {
        // Whether a connected socket is TCP does not matter to the filters.
        return Ok(SocketInfo {
            listening,
            tcp: false,
        });
    }
    let domain = sockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)?;
    let ty = sockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)?;
    let protocol = sockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)?;
    let tcp = (domain == libc::AF_INET || domain == libc::AF_INET6)
        && ty == libc::SOCK_STREAM
        && protocol == libc::IPPROTO_TCP;
    Ok(SocketInfo { listening, tcp })
}

/// Whether a socket is a stream socket (`SO_TYPE` is `SOCK_STREAM`).
pub(crate) fn is_stream_socket(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    Ok(sockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)? == libc::SOCK_STREAM)
}

/// The pending error of a socket (`SO_ERROR`), which reading clears.
pub(crate) fn take_socket_error(fd: BorrowedFd<'_>) -> i32 {
    sockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR).unwrap_or(0)
}

/// The size of a socket's send buffer (`SO_SNDBUF`, as Linux reports it).
pub(crate) fn send_buffer_size(fd: BorrowedFd<'_>) -> Result<i64, Errno> {
    sockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF).map(i64::from)
}

/// The number of connections waiting in a listening TCP socket's accept queue: for a
/// listener, Linux reports the accept-queue length as `tcpi_unacked` of `TCP_INFO`.
pub(crate) fn tcp_accept_queue(fd: BorrowedFd<'_>) -> Result<i64, Errno> {
    // SAFETY: tcp_info is plain data, all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, which is that large.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            &mut info as *mut libc::tcp_info as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        return Err(last_errno());
    }
    Ok(i64::from(info.tcpi_unacked))
}

/// The bytes a TCP socket's peer acknowledged so far (`tcpi_bytes_acked` of `TCP_INFO`,
/// Linux 4.1): grows with every acknowledgement, so a change shows that data was sent and
/// acknowledged even when both happened between two looks. `None` for other sockets.
pub(crate) fn tcp_bytes_acked(fd: BorrowedFd<'_>) -> Option<u64> {
    // The kernel's struct tcp_info: 8 one-byte fields, 24 u32 fields, then u64
    // tcpi_pacing_rate, tcpi_max_pacing_rate and tcpi_bytes_acked at offset 120. Read as
    // bytes so that no C library's (possibly shorter) definition of the struct matters.
    const AT: usize = 120;
    let mut buf = [0u8; AT + 8];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `buf`, which is that large.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 || (len as usize) < buf.len() {
        return None;
    }
    let mut v = [0u8; 8];
    v.copy_from_slice(&buf[AT..]);
    Some(u64::from_ne_bytes(v))
}

/// Whether a socket is TCP (IPv4 or IPv6).
pub(crate) fn is_tcp(fd: BorrowedFd<'_>) -> bool {
    let domain = sockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN).unwrap_or(-1);
    let protocol = sockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL).unwrap_or(-1);
    (domain == libc::AF_INET || domain == libc::AF_INET6) && protocol == libc::IPPROTO_TCP
}

/// Whether a descriptor is an anonymous pipe (pipe(2)), rather than a FIFO with a name in a
/// file system: both are `S_IFIFO`, but only the pipes live in pipefs.
pub(crate) fn is_anonymous_pipe(fd: BorrowedFd<'_>) -> bool {
    const PIPEFS_MAGIC: u64 = 0x5049_5045;
    rustix::fs::fstatfs(fd).is_ok_and(|s| s.f_type as u64 == PIPEFS_MAGIC)
}

/// The kind of an anonymous-inode descriptor (eventfd, timerfd, signalfd, inotify, epoll,
/// pidfd, ...), as its /proc/self/fd link names it (`anon_inode:[eventfd]` gives
/// `eventfd`); `None` for other descriptors.
pub(crate) fn anon_inode_kind(fd: BorrowedFd<'_>) -> Option<String> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    let name = link.to_str()?.strip_prefix("anon_inode:")?;
    Some(
        name.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
}

/// The capacity of a pipe or FIFO (`F_GETPIPE_SZ`).
pub(crate) fn pipe_capacity(fd: BorrowedFd<'_>) -> Result<i64, Errno> {
    Ok(rustix::pipe::fcntl_getpipe_size(fd)? as i64)
}

/// The descriptor's file offset.
pub(crate) fn offset(fd: BorrowedFd<'_>) -> Result<i64, Errno> {
    Ok(rustix::fs::seek(fd, rustix::fs::SeekFrom::Current(0))? as i64)
}

/// `poll()` of one descriptor with a zero timeout: its current ready bits (POLLIN, POLLOUT,
/// POLLHUP, POLLERR, POLLRDHUP as epoll spells them).
pub(crate) fn poll_now(fd: BorrowedFd<'_>, events: u32) -> Result<u32, Errno> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: events as libc::c_short,
        revents: 0,
    };
    // SAFETY: one live pollfd, zero timeout.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    if r < 0 {
        return Err(last_errno());
    }
    if p.revents & libc::POLLNVAL != 0 {
        return Err(Errno::BADF);
    }
    Ok(p.revents as u16 as u32)
}
