//! Descriptor helpers for the EVFILT_READ / EVFILT_WRITE tests: socket pairs, pipes, FIFOs,
//! ptys, regular files and eventfds, plain read/write/fill/drain on raw descriptors, and
//! change records for the two descriptor filters.
//!
//! Every descriptor is made non-blocking and close-on-exec, and is owned by an `OwnedFd`
//! (or a std type), so dropping it closes the number *without* telling the library: that is
//! what a Rust program does. [`fdclose_and_close`] is the other path, the one an interposed
//! close() takes.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::ffi::{c_void, CString};
use std::fs::File;
use std::io;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kq::{Kevent, Kqueue, EVFILT_READ, EVFILT_WRITE};

use crate::util::{get, poll, ptr};

/// Turns a -1 return into the errno.
pub fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Takes ownership of a descriptor a system call just returned.
fn owned(fd: libc::c_int) -> OwnedFd {
    assert!(
        fd >= 0,
        "bad descriptor {fd}: {}",
        io::Error::last_os_error()
    );
    // SAFETY: `fd` was just returned by a system call and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The descriptor number as a kevent ident.
pub fn id(fd: &impl AsRawFd) -> usize {
    fd.as_raw_fd() as usize
}

/// An EVFILT_READ change.
pub fn rd(ident: usize, flags: u16, udata: usize) -> Kevent {
    Kevent::new(ident, EVFILT_READ, flags, 0, 0, ptr(udata))
}

/// An EVFILT_WRITE change.
pub fn wr(ident: usize, flags: u16, udata: usize) -> Kevent {
    Kevent::new(ident, EVFILT_WRITE, flags, 0, 0, ptr(udata))
}

/// The udata of a record as a number.
pub fn udata(ev: &Kevent) -> usize {
    ev.udata as usize
}

/// Asserts ident, filter, flags and data of a delivered descriptor event.
#[track_caller]
pub fn assert_fd_event(ev: &Kevent, ident: usize, filter: i16, flags: u16, data: isize) {
    assert_eq!(
        (ev.ident, ev.filter, ev.flags, ev.data),
        (ident, filter, flags, data),
        "record {ev:?}: expected ident {ident}, filter {filter}, flags {flags:#x}, data {data}"
    );
}

/// Waits up to 1 s for events and expects exactly one record.
#[track_caller]
pub fn wait_one(kq: &Kqueue) -> Kevent {
    let evs = get(kq, 8, Some(Duration::from_secs(1)));
    assert_eq!(evs.len(), 1, "expected exactly one event, got {evs:?}");
    evs[0]
}

/// Polls (zero timeout, room for 8) until a record satisfies `pred`, for up to 1 s; for
/// descriptors whose data arrives asynchronously (ttys, TCP). Returns that record.
#[track_caller]
pub fn poll_until(kq: &Kqueue, what: &str, pred: impl Fn(&Kevent) -> bool) -> Kevent {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut last = Vec::new();
    loop {
        let evs = poll(kq, 8);
        if let Some(ev) = evs.iter().find(|e| pred(e)) {
            return *ev;
        }
        if !evs.is_empty() {
            last = evs;
        }
        assert!(
            Instant::now() < deadline,
            "no event with {what} within 1 s; last records: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// An AF_UNIX socket pair of type `ty` (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET).
pub fn socketpair(ty: libc::c_int) -> (OwnedFd, OwnedFd) {
    let mut sv = [-1; 2];
    // SAFETY: `sv` has room for the two descriptors.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        )
    };
    cvt(r).expect("socketpair");
    (owned(sv[0]), owned(sv[1]))
}

/// An AF_UNIX stream socket pair.
pub fn stream_pair() -> (OwnedFd, OwnedFd) {
    socketpair(libc::SOCK_STREAM)
}

/// A pipe: (read end, write end).
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut p = [-1; 2];
    // SAFETY: `p` has room for the two descriptors.
    let r = unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    cvt(r).expect("pipe2");
    (owned(p[0]), owned(p[1]))
}

/// A listening TCP socket on 127.0.0.1 with a port the system chose.
pub fn tcp_listener() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.set_nonblocking(true).unwrap();
    l
}

/// Accepts one connection, waiting up to 1 s for it.
pub fn accept(l: &TcpListener) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(true).unwrap();
                return s;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A connected loopback TCP pair: (client, accepted server side), both non-blocking.
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = tcp_listener();
    let c = TcpStream::connect(l.local_addr().unwrap()).expect("connect");
    c.set_nonblocking(true).unwrap();
    c.set_nodelay(true).unwrap();
    let s = accept(&l);
    s.set_nodelay(true).unwrap();
    (c, s)
}

/// Two loopback UDP sockets connected to each other.
pub fn udp_pair() -> (UdpSocket, UdpSocket) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    a.connect(b.local_addr().unwrap()).unwrap();
    b.connect(a.local_addr().unwrap()).unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// A path in the temporary directory, unique to this process and call, removed on drop.
#[derive(Debug)]
pub struct TempPath(PathBuf);

impl TempPath {
    /// A fresh, unused path whose name ends with `tag`.
    pub fn new(tag: &str) -> TempPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("kq-fd-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        TempPath(p)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    fn c_path(&self) -> CString {
        use std::os::unix::ffi::OsStrExt;
        CString::new(self.0.as_os_str().as_bytes()).unwrap()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A FIFO opened at both ends: (reader, writer, its path). The reader is opened first
/// (non-blocking), so the writer's open does not fail with ENXIO.
pub fn fifo() -> (OwnedFd, OwnedFd, TempPath) {
    let path = TempPath::new("fifo");
    let c = path.c_path();
    // SAFETY: `c` is a NUL-terminated path.
    cvt(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }).expect("mkfifo");
    let r = open_fifo(&path, libc::O_RDONLY);
    let w = open_fifo(&path, libc::O_WRONLY);
    (r, w, path)
}

/// Opens the FIFO at `path` again (another reader or writer).
pub fn open_fifo(path: &TempPath, mode: libc::c_int) -> OwnedFd {
    let c = path.c_path();
    // SAFETY: `c` is a NUL-terminated path.
    owned(unsafe { libc::open(c.as_ptr(), mode | libc::O_NONBLOCK | libc::O_CLOEXEC) })
}

/// A pty pair (master, slave), the slave in raw mode (no echo, no line editing, no output
/// processing), so the bytes written at one end are the bytes readable at the other.
pub fn pty() -> (OwnedFd, OwnedFd) {
    // SAFETY: plain calls on a descriptor this function owns; `name` has room for the path.
    unsafe {
        let m = owned(libc::posix_openpt(
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ));
        cvt(libc::grantpt(m.as_raw_fd())).expect("grantpt");
        cvt(libc::unlockpt(m.as_raw_fd())).expect("unlockpt");
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(
            libc::ptsname_r(m.as_raw_fd(), name.as_mut_ptr(), name.len()),
            0
        );
        let s = owned(libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        ));
        let mut t: libc::termios = std::mem::zeroed();
        cvt(libc::tcgetattr(s.as_raw_fd(), &mut t)).expect("tcgetattr");
        libc::cfmakeraw(&mut t);
        cvt(libc::tcsetattr(s.as_raw_fd(), libc::TCSANOW, &t)).expect("tcsetattr");
        let fl = libc::fcntl(m.as_raw_fd(), libc::F_GETFL);
        cvt(libc::fcntl(
            m.as_raw_fd(),
            libc::F_SETFL,
            fl | libc::O_NONBLOCK,
        ))
        .unwrap();
        (m, s)
    }
}

/// A regular file holding `contents`, opened read-write at offset 0, and its path.
pub fn temp_file(contents: &[u8]) -> (File, TempPath) {
    use std::io::Write;
    let path = TempPath::new("file");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path.path())
        .unwrap();
    f.write_all(contents).unwrap();
    lseek(&f, 0, libc::SEEK_SET);
    (f, path)
}

/// Appends `n` bytes to the file at `path` through a descriptor of its own.
pub fn append(path: &TempPath, n: usize) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path.path())
        .unwrap();
    f.write_all(&vec![b'a'; n]).unwrap();
}

/// lseek(2); returns the new offset.
pub fn lseek(fd: &impl AsRawFd, off: i64, whence: libc::c_int) -> i64 {
    // SAFETY: lseek on a descriptor the caller owns. lseek64: 64-bit offsets on 32-bit
    // targets too.
    let r = unsafe { libc::lseek64(fd.as_raw_fd(), off, whence) };
    assert!(r >= 0, "lseek: {}", io::Error::last_os_error());
    r
}

/// A non-blocking eventfd with counter 0.
pub fn eventfd() -> OwnedFd {
    // SAFETY: plain system call.
    owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })
}

/// write(2) of `n` bytes (`b'x'`); expects all of them to be written.
#[track_caller]
pub fn put(fd: &impl AsRawFd, n: usize) {
    let buf = vec![b'x'; n];
    // SAFETY: `buf` is valid for `n` bytes.
    let r = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr() as *const c_void, n) };
    assert_eq!(
        r,
        n as isize,
        "write of {n} bytes: {}",
        io::Error::last_os_error()
    );
}

/// write(2) of the given bytes; expects all of them to be written.
#[track_caller]
pub fn put_bytes(fd: &impl AsRawFd, buf: &[u8]) {
    // SAFETY: `buf` is valid for its length.
    let r = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr() as *const c_void, buf.len()) };
    assert_eq!(
        r,
        buf.len() as isize,
        "write: {}",
        io::Error::last_os_error()
    );
}

/// One read(2) of up to `n` bytes; returns the count (0 at EOF, -1 with EAGAIN).
pub fn take(fd: &impl AsRawFd, n: usize) -> isize {
    let mut buf = vec![0u8; n];
    // SAFETY: `buf` is valid for `n` bytes.
    unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr() as *mut c_void, n) }
}

/// Writes until the descriptor would block; returns the number of bytes written.
pub fn fill(fd: &impl AsRawFd) -> usize {
    let buf = vec![b'f'; 4096];
    let mut total = 0;
    // Shrinking writes, so that a socket or pipe ends up really full.
    let mut chunk = buf.len();
    while chunk > 0 {
        // SAFETY: `buf` is valid for `chunk <= buf.len()` bytes.
        let r = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr() as *const c_void, chunk) };
        if r > 0 {
            total += r as usize;
        } else {
            let e = io::Error::last_os_error();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "fill: {e}");
            chunk /= 2;
        }
    }
    total
}

/// Reads until the descriptor would block or is at EOF; returns the bytes read.
pub fn drain(fd: &impl AsRawFd) -> usize {
    let mut total = 0;
    loop {
        let r = take(fd, 65536);
        if r <= 0 {
            return total;
        }
        total += r as usize;
    }
}

/// FIONREAD: bytes readable now.
pub fn fionread(fd: &impl AsRawFd) -> isize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) }).expect("FIONREAD");
    n as isize
}

/// SO_LINGER {on, 0}: close() then resets the connection.
pub fn set_linger0(fd: &impl AsRawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `l` is a valid linger struct of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    cvt(r).expect("SO_LINGER");
}

/// shutdown(2).
pub fn shutdown(fd: &impl AsRawFd, how: libc::c_int) {
    // SAFETY: plain system call.
    cvt(unsafe { libc::shutdown(fd.as_raw_fd(), how) }).expect("shutdown");
}

/// Whether descriptor number `fd` is open.
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on any number is harmless.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// A descriptor number that is not open and that no other test takes: descriptors are
/// allocated lowest first, so numbers far above what the tests use stay free unless
/// placed there with dup2. Each caller passes its own `slot` (0..1000).
pub fn reserved_number(slot: RawFd) -> RawFd {
    let n = 5000 + slot;
    assert!(!is_open(n), "reserved descriptor number {n} is open");
    n
}

/// Moves `fd` to descriptor number `num` (dup3 with O_CLOEXEC) and closes its old number.
/// `num` must not be open.
pub fn move_to(fd: OwnedFd, num: RawFd) -> OwnedFd {
    // SAFETY: dup3 onto a number the caller reserved.
    let r = unsafe { libc::dup3(fd.as_raw_fd(), num, libc::O_CLOEXEC) };
    assert_eq!(r, num, "dup3: {}", io::Error::last_os_error());
    drop(fd);
    owned(r)
}

/// dup(2) with close-on-exec.
pub fn dup(fd: &impl AsFd) -> OwnedFd {
    fd.as_fd().try_clone_to_owned().expect("dup")
}

/// Closes `fd` the way an interposed close() does: the library first drops the knotes of
/// the number ([`kq::fdclose`]), then the descriptor is closed.
pub fn fdclose_and_close(fd: impl Into<OwnedFd>) {
    let fd: OwnedFd = fd.into();
    let n = fd.as_raw_fd();
    let token = kq::fdclose_begin(n);
    drop(fd);
    kq::fdclose_end(n, token);
}

/// A descriptor number that is not open: the highest the limit allows.
pub fn closed_number() -> usize {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0);
    let fd = (rl.rlim_cur.min(i32::MAX as libc::rlim_t) - 1) as RawFd;
    assert!(!is_open(fd), "fd {fd} is open");
    fd as usize
}

/// A directory of its own in the temporary directory, removed with what it holds.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("kq-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        TempDir(p)
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn c_path(p: &Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// open(2) with O_CLOEXEC.
pub fn open(p: &Path, flags: libc::c_int) -> OwnedFd {
    let c = c_path(p);
    // SAFETY: `c` is a NUL-terminated path; the result is checked and then owned.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, 0o600) };
    assert!(fd >= 0, "open {p:?}: {}", std::io::Error::last_os_error());
    // SAFETY: just returned by open, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
