//! Adversarial tests of EVFILT_VNODE and EVFILT_EMPTY (branch `attackv`): the shared
//! inotify instance and its watches (several descriptors, filters and kqueues on one file),
//! files renamed, unlinked or replaced under a knote, inotify's limits and queue overflow,
//! big directories, descriptor limits, fork, races, leaks; EVFILT_EMPTY on sockets whose
//! peer goes away, listening and unconnected sockets. A test that reproduced a defect (it
//! failed before the fix) says "Regression" in its doc comment.
//!
//! Every test takes `SERIAL` first: several count the process's inotify instances and
//! watches, which the other tests of this binary make.

mod fdutil;
mod util;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use fdutil::*;
use kq::*;
use util::*;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn pwrite(fd: &impl AsRawFd, buf: &[u8], off: i64) {
    // SAFETY: `buf` is valid for reads of its length.
    let n = unsafe { libc::pwrite(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), off) };
    assert_eq!(n, buf.len() as isize, "{}", std::io::Error::last_os_error());
}

fn fchmod(fd: &impl AsRawFd, mode: libc::mode_t) {
    // SAFETY: plain system call.
    assert_eq!(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }, 0);
}

/// An EVFILT_VNODE change.
fn vn(fd: &impl AsRawFd, flags: u16, fflags: u32) -> Kevent {
    vn_n(fd.as_raw_fd(), flags, fflags)
}

fn vn_n(fd: RawFd, flags: u16, fflags: u32) -> Kevent {
    Kevent::new(fd as usize, EVFILT_VNODE, flags, fflags, 0, ptr(3))
}

/// An EVFILT_EMPTY change.
fn em(fd: &impl AsRawFd, flags: u16) -> Kevent {
    Kevent::new(id(fd), EVFILT_EMPTY, flags, 0, 0, ptr(7))
}

/// The records of a poll, as (ident, filter, fflags).
fn records(kq: &Kqueue) -> Vec<(usize, i16, u32)> {
    poll(kq, 16)
        .iter()
        .map(|e| (e.ident, e.filter, e.fflags))
        .collect()
}

/// The names of the inotify instances this process has open.
fn inotify_fds() -> Vec<RawFd> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(target) = std::fs::read_link(e.path()) {
            if target.as_os_str().as_bytes() == b"anon_inode:inotify" {
                out.push(e.file_name().to_string_lossy().parse().unwrap());
            }
        }
    }
    out
}

/// The watches of inotify instance `fd`, as (inode, mask) from /proc/self/fdinfo.
fn watches(fd: RawFd) -> Vec<(u64, u32)> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
    info.lines()
        .filter(|l| l.starts_with("inotify wd:"))
        .map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .unwrap()
                    .to_string()
            };
            (
                u64::from_str_radix(&field("ino:"), 16).unwrap(),
                u32::from_str_radix(&field("mask:"), 16).unwrap(),
            )
        })
        .collect()
}

/// The inotify instance a kqueue made since `before` was listed.
fn new_inotify(before: &[RawFd]) -> RawFd {
    let now = inotify_fds();
    let new: Vec<RawFd> = now.into_iter().filter(|f| !before.contains(f)).collect();
    assert_eq!(new.len(), 1, "one new inotify instance: {new:?}");
    new[0]
}

fn inode(fd: &impl AsRawFd) -> u64 {
    // SAFETY: fstat writes the struct it is given.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) }, 0);
    st.st_ino
}

/// Lets an inotify instance left with no watch go: it stays open, idle, for 100 ms after
/// its last watch went (for reuse, and because closing it sooner waits for the kernel to
/// free the watch), then the first kevent() closes it.
fn settle(kq: &Kqueue) {
    thread::sleep(Duration::from_millis(150));
    let _ = poll(kq, 16);
}

/// The number of descriptors this process has open, once the library's process-wide ones
/// (the timer thread's epoll) exist.
fn open_fds() -> Vec<(RawFd, String)> {
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        let k = Kqueue::new().unwrap();
        let (s, _t) = stream_pair();
        ch_ok(&k, &[em(&s, EV_ADD)]);
    });
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_string_lossy().parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((fd, target.to_string_lossy().into_owned()))
        })
        .collect()
}

/// The entries of `now` (from [`open_fds`] or [`inotify_fds`]) that `before` did not have:
/// what a test left open. Descriptors of `before` that went meanwhile are not counted:
/// kqueues an earlier test of this binary left behind may let their idle inotify instances
/// go at any time.
fn left_open<T: PartialEq + Clone + std::fmt::Debug>(before: &[T], now: &[T]) -> Vec<T> {
    now.iter()
        .filter(|x| !before.contains(x))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------
// EVFILT_EMPTY

/// Regression: a TCP connection whose peer resets it while our send buffer still holds
/// data that was never acknowledged. The BSDs flush the send buffer when the connection is
/// dropped, so EVFILT_EMPTY fires with `data` 0; Linux's SIOCOUTQ goes on counting the
/// unacknowledged bytes of the closed connection, and the knote never fired.
fn e1_empty_after_peer_reset(p: Personality) {
    let _g = serial();
    let (w, r) = tcp_pair();
    let kq = kq(p);
    fill(&w);
    ch_ok(&kq, &[em(&w, EV_ADD | EV_CLEAR)]);
    expect_no_events(&kq);
    set_linger0(&r);
    drop(r);
    let evs = get(&kq, 4, Some(Duration::from_secs(3)));
    assert_eq!(evs.len(), 1, "EVFILT_EMPTY after the reset: {evs:?}");
    assert_eq!((evs[0].ident, evs[0].filter), (id(&w), EVFILT_EMPTY));
    assert_eq!(evs[0].data, 0, "{:?}", evs[0]);
}

/// Regression: the peer closes with our data unread (Linux answers with a reset).
fn e1_empty_after_peer_close_unread(p: Personality) {
    let _g = serial();
    let (w, r) = tcp_pair();
    let kq = kq(p);
    fill(&w);
    ch_ok(&kq, &[em(&w, EV_ADD)]);
    expect_no_events(&kq);
    drop(r);
    let evs = get(&kq, 4, Some(Duration::from_secs(3)));
    assert_eq!(evs.len(), 1, "EVFILT_EMPTY after the close: {evs:?}");
    assert_eq!(evs[0].data, 0, "{:?}", evs[0]);
}

/// A listening socket, a socket never connected (TCP and UDP), an AF_UNIX socket whose
/// peer closed: empty at once.
fn e1_empty_unconnected_and_listening(p: Personality) {
    let _g = serial();
    let kq = kq(p);
    let l = tcp_listener();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // SAFETY: plain socket(2).
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    // SAFETY: just made.
    let tcp = unsafe { OwnedFd::from_raw_fd(raw) };
    let (u, peer) = stream_pair();
    put(&u, 1000);
    drop(peer);
    ch_ok(
        &kq,
        &[
            em(&l, EV_ADD),
            em(&udp, EV_ADD),
            em(&tcp, EV_ADD),
            em(&u, EV_ADD),
        ],
    );
    let mut got: Vec<usize> = poll(&kq, 8)
        .iter()
        .inspect(|e| assert_eq!((e.filter, e.data), (EVFILT_EMPTY, 0), "{e:?}"))
        .map(|e| e.ident)
        .collect();
    got.sort();
    let mut want = vec![id(&l), id(&udp), id(&tcp), id(&u)];
    want.sort();
    assert_eq!(got, want);
}

/// Regression: a non-blocking connect that the peer refuses. The socket never sent
/// anything, but Linux counts its SYN as unacknowledged once the attempt failed (`data` 1,
/// never active).
fn e1_empty_after_refused_connect(p: Personality) {
    let _g = serial();
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let std::net::SocketAddr::V4(v4) = addr else {
        unreachable!()
    };
    // SAFETY: plain socket(2).
    let raw = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    // SAFETY: just made.
    let s = unsafe { OwnedFd::from_raw_fd(raw) };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sin` is a valid sockaddr_in of the size given.
    let r = unsafe {
        libc::connect(
            s.as_raw_fd(),
            &sin as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert!(r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EINPROGRESS));
    thread::sleep(Duration::from_millis(50));
    let kq = kq(p);
    ch_ok(&kq, &[em(&s, EV_ADD)]);
    let evs = poll(&kq, 4);
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(
        (evs[0].filter, evs[0].data),
        (EVFILT_EMPTY, 0),
        "{:?}",
        evs[0]
    );
}

/// Regression: a netlink socket has no send queue to tell of (Linux refuses SIOCOUTQ with
/// ENOTTY): it is empty, as a routing socket is on the BSDs. The knote never fired.
fn e1_empty_netlink(p: Personality) {
    let _g = serial();
    // SAFETY: plain socket(2).
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        eprintln!("no netlink socket: {}", std::io::Error::last_os_error());
        return;
    }
    // SAFETY: just made.
    let s = unsafe { OwnedFd::from_raw_fd(raw) };
    let kq = kq(p);
    ch_ok(&kq, &[em(&s, EV_ADD)]);
    let evs = poll(&kq, 4);
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(
        (evs[0].filter, evs[0].data),
        (EVFILT_EMPTY, 0),
        "{:?}",
        evs[0]
    );
}

both!(
    e1_empty_after_refused_connect,
    e1_empty_netlink,
    e1_empty_after_peer_reset,
    e1_empty_after_peer_close_unread,
    e1_empty_unconnected_and_listening
);

// ---------------------------------------------------------------------------------------
// The shared watch

/// EVFILT_READ on a regular file and EVFILT_VNODE on a dup of it, in one kqueue, and an
/// EVFILT_VNODE knote in a second kqueue: deleting one knote leaves the others their events
/// and the watch mask what the rest need.
fn v6_shared_watch_read_and_vnode(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let a = open(&t.join("f"), libc::O_RDWR | libc::O_CREAT);
    let b = dup(&a);
    let c = open(&t.join("f"), libc::O_RDONLY);
    let before = inotify_fds();
    let kq1 = kq(p);
    ch_ok(
        &kq1,
        &[
            rd(id(&c), EV_ADD | EV_CLEAR, 1),
            vn(&b, EV_ADD | EV_CLEAR, NOTE_ATTRIB),
        ],
    );
    let ino1 = new_inotify(&before);
    let before2 = inotify_fds();
    let kq2 = kq(p);
    ch_ok(&kq2, &[vn(&a, EV_ADD | EV_CLEAR, NOTE_WRITE)]);
    let ino2 = new_inotify(&before2);
    let w = watches(ino1);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].0, inode(&a));
    assert_eq!(
        w[0].1 & (libc::IN_MODIFY | libc::IN_ATTRIB),
        libc::IN_MODIFY | libc::IN_ATTRIB
    );
    pwrite(&a, b"abc", 0);
    fchmod(&a, 0o640);
    let mut r1 = records(&kq1);
    r1.sort();
    let mut want = vec![
        (id(&c), EVFILT_READ, 0),
        (id(&b), EVFILT_VNODE, NOTE_ATTRIB),
    ];
    want.sort();
    assert_eq!(r1, want);
    assert_eq!(
        records(&kq2),
        [(id(&a), EVFILT_VNODE, NOTE_WRITE | NOTE_EXTEND)]
    );
    // The read knote goes: the vnode knote keeps its attribute changes, the watch loses
    // IN_MODIFY; the other kqueue is not touched.
    ch_ok(&kq1, &[rd(id(&c), EV_DELETE, 0)]);
    let w = watches(ino1);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].1 & libc::IN_MODIFY, 0, "narrowed: {:#x}", w[0].1);
    assert_eq!(w[0].1 & libc::IN_ATTRIB, libc::IN_ATTRIB);
    pwrite(&a, b"abcd", 0);
    fchmod(&a, 0o600);
    assert_eq!(records(&kq1), [(id(&b), EVFILT_VNODE, NOTE_ATTRIB)]);
    assert_eq!(
        records(&kq2),
        [(id(&a), EVFILT_VNODE, NOTE_WRITE | NOTE_EXTEND)]
    );
    // The read knote again, then the vnode knote goes through the close of its number (as
    // an interposed close() does): IN_MODIFY stays for the read knote.
    ch_ok(&kq1, &[rd(id(&c), EV_ADD | EV_CLEAR, 1)]);
    let _ = records(&kq1);
    fdclose_and_close(b);
    let w = watches(ino1);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].1 & libc::IN_MODIFY, libc::IN_MODIFY, "{:#x}", w[0].1);
    assert_eq!(w[0].1 & libc::IN_ATTRIB, 0, "narrowed: {:#x}", w[0].1);
    pwrite(&a, b"abcde", 0);
    assert_eq!(records(&kq1), [(id(&c), EVFILT_READ, 0)]);
    ch_ok(&kq1, &[rd(id(&c), EV_DELETE, 0)]);
    settle(&kq1);
    assert!(
        !inotify_fds().contains(&ino1),
        "closed after its last watch"
    );
    assert_eq!(watches(ino2).len(), 1);
}

/// One knote per interest through five dups in one kqueue, each deleted in turn: after
/// each deletion the watch mask is exactly the union of what is left.
fn v6_shared_watch_many_dups(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let a = open(&t.join("f"), libc::O_RDWR | libc::O_CREAT);
    let dups: Vec<OwnedFd> = (0..5).map(|_| dup(&a)).collect();
    let notes = [NOTE_WRITE, NOTE_ATTRIB, NOTE_RENAME, NOTE_OPEN, NOTE_CLOSE];
    let events = [
        libc::IN_MODIFY,
        libc::IN_ATTRIB,
        libc::IN_MOVE_SELF,
        libc::IN_OPEN,
        libc::IN_CLOSE_NOWRITE,
    ];
    let before = inotify_fds();
    let kq = kq(p);
    for (d, n) in dups.iter().zip(notes) {
        ch_ok(&kq, &[vn(d, EV_ADD | EV_CLEAR, n)]);
    }
    let ino = new_inotify(&before);
    for i in 0..5 {
        let w = watches(ino);
        assert_eq!(w.len(), 1);
        let want: u32 = events[i..].iter().fold(0, |m, e| m | e);
        let all: u32 = events.iter().fold(0, |m, e| m | e);
        assert_eq!(w[0].1 & all, want, "after {i} deletions: {:#x}", w[0].1);
        ch_ok(&kq, &[vn(&dups[i], EV_DELETE, 0)]);
    }
    settle(&kq);
    assert!(!inotify_fds().contains(&ino));
}

both!(v6_shared_watch_read_and_vnode, v6_shared_watch_many_dups);

// ---------------------------------------------------------------------------------------
// Files changing under the knote

/// The file renamed, then unlinked, then its name given to a new file, all between EV_ADD
/// and the first collect: the knote reports the rename and the delete of its own file, and
/// nothing of the new file.
fn v7_renamed_unlinked_replaced_before_first_event(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let fd = open(&t.join("f"), libc::O_RDWR | libc::O_CREAT);
    let kq = kq(p);
    ch_ok(
        &kq,
        &[vn(
            &fd,
            EV_ADD | EV_CLEAR,
            NOTE_RENAME | NOTE_DELETE | NOTE_WRITE,
        )],
    );
    std::fs::rename(t.join("f"), t.join("g")).unwrap();
    std::fs::remove_file(t.join("g")).unwrap();
    let n = open(&t.join("f"), libc::O_RDWR | libc::O_CREAT);
    pwrite(&n, b"new file", 0);
    assert_eq!(
        records(&kq),
        [(id(&fd), EVFILT_VNODE, NOTE_RENAME | NOTE_DELETE)]
    );
    pwrite(&n, b"more", 8);
    expect_no_events(&kq);
    // The deleted file itself is still watched.
    pwrite(&fd, b"x", 0);
    assert_eq!(
        records(&kq),
        [(id(&fd), EVFILT_VNODE, NOTE_WRITE | NOTE_EXTEND)]
    );
}

/// A directory with thousands of entries created, then removed: one NOTE_WRITE record for
/// each batch (the notes accumulate), nothing after that.
fn v3_big_directory(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    std::fs::create_dir(t.join("d")).unwrap();
    let d = open(&t.join("d"), libc::O_RDONLY | libc::O_DIRECTORY);
    let kq = kq(p);
    ch_ok(&kq, &[vn(&d, EV_ADD | EV_CLEAR, NOTE_WRITE | NOTE_LINK)]);
    for i in 0..5000 {
        drop(open(
            &t.join(&format!("d/entry-with-a-longish-name-{i:05}")),
            libc::O_WRONLY | libc::O_CREAT,
        ));
    }
    assert_eq!(records(&kq), [(id(&d), EVFILT_VNODE, NOTE_WRITE)]);
    expect_no_events(&kq);
    for i in 0..5000 {
        std::fs::remove_file(t.join(&format!("d/entry-with-a-longish-name-{i:05}"))).unwrap();
    }
    assert_eq!(records(&kq), [(id(&d), EVFILT_VNODE, NOTE_WRITE)]);
    expect_no_events(&kq);
}

both!(
    v7_renamed_unlinked_replaced_before_first_event,
    v3_big_directory
);

// ---------------------------------------------------------------------------------------
// Processes: a child made by fork(), or this test binary run again for one test

/// Runs `body` in a child made by fork() (only this thread goes on there; the other tests
/// of this binary wait for `SERIAL`, which the caller holds) and fails if it fails or takes
/// more than 30 s. The child writes its panic message to its standard error and `_exit`s.
#[track_caller]
fn forked(body: impl FnOnce()) {
    // SAFETY: the child runs `body` and `_exit`s; the other threads wait on `SERIAL`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: alarm affects this child only.
        unsafe { libc::alarm(30) };
        std::panic::set_hook(Box::new(|info| {
            let m = format!("child: {info}\n");
            // SAFETY: writes a live buffer to standard error.
            unsafe { libc::write(2, m.as_ptr().cast(), m.len()) };
        }));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(i32::from(r.is_err())) };
    }
    let mut status = 0;
    // SAFETY: our child; `status` is a valid int.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child failed: status {status:#x}"
    );
}

/// Lowers RLIMIT_NOFILE to `limit` and fills every free number below it.
fn exhaust_descriptors(limit: libc::rlim_t) -> Vec<OwnedFd> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit write and read the struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        rl.rlim_cur = limit;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rl), 0);
    }
    let mut held = Vec::new();
    loop {
        // SAFETY: plain open of a constant path.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EMFILE)
            );
            return held;
        }
        // SAFETY: just opened.
        held.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

/// Out of descriptors: EV_ADD of a vnode knote (which needs the kqueue's inotify
/// instance), of EVFILT_READ on a regular file (the same), of EVFILT_EMPTY (which needs the
/// kqueue's timerfd and, the first time in the process, the timer thread's epoll) fails
/// with EMFILE and leaves no knote; with descriptors free again they succeed and report.
/// Regression: a descriptor the library made and lost on the way (the timerfd, when the
/// timer thread's epoll could not be made) stayed marked as one of the library's own, so
/// that a knote on a descriptor later given that number never fired.
fn g_emfile(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let f = open(&t.join("f"), libc::O_RDWR | libc::O_CREAT);
    forked(move || {
        let kq = kq(p);
        let (s, _peer) = stream_pair();
        let mut held = exhaust_descriptors(64);
        ch_err(&kq, &[vn(&f, EV_ADD, NOTE_WRITE)], libc::EMFILE);
        ch_err(&kq, &[rd(id(&f), EV_ADD, 0)], libc::EMFILE);
        ch_err(&kq, &[em(&s, EV_ADD)], libc::EMFILE);
        for c in [
            vn(&f, EV_DELETE, 0),
            rd(id(&f), EV_DELETE, 0),
            em(&s, EV_DELETE),
        ] {
            ch_err(&kq, &[c], libc::ENOENT);
        }
        // One number free: enough for the timerfd, not for the timer thread's epoll.
        drop(held.pop());
        let r = ch(&kq, &[em(&s, EV_ADD)]);
        if let Err(e) = &r {
            assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
            ch_err(&kq, &[em(&s, EV_DELETE)], libc::ENOENT);
            // The number the library's lost descriptor had: an eventfd takes it, and its
            // knote must see it readable.
            let e = eventfd();
            ch_ok(&kq, &[rd(id(&e), EV_ADD, 9)]);
            let one = 1u64.to_ne_bytes();
            put_bytes(&e, &one);
            let evs = poll(&kq, 4);
            assert_eq!(evs.len(), 1, "the eventfd at {}: {evs:?}", e.as_raw_fd());
            assert_eq!(evs[0].ident, id(&e));
            ch_ok(&kq, &[rd(id(&e), EV_DELETE, 0)]);
        }
        drop(held);
        ch_ok(
            &kq,
            &[vn(&f, EV_ADD | EV_CLEAR, NOTE_WRITE), em(&s, EV_ADD)],
        );
        pwrite(&f, b"x", 0);
        let mut got: Vec<i16> = poll(&kq, 4).iter().map(|e| e.filter).collect();
        got.sort();
        assert_eq!(got, [EVFILT_EMPTY, EVFILT_VNODE]);
    });
}

both!(g_emfile);

/// Enters a new user namespace whose root is this process's user, where inotify's limits
/// can be lowered without touching the rest of the machine. False where that is refused.
fn own_user_namespace() -> bool {
    // SAFETY: plain system calls on this (single-threaded, forked) process.
    let uid = unsafe { libc::geteuid() };
    // SAFETY: as above.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        eprintln!(
            "unshare(CLONE_NEWUSER): {}",
            std::io::Error::last_os_error()
        );
        return false;
    }
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1")).is_ok()
}

fn set_limit(name: &str, v: usize) {
    std::fs::write(format!("/proc/sys/user/{name}"), v.to_string()).unwrap();
}

/// inotify's limits reached: past `max_inotify_watches`, EV_ADD of a vnode knote on a new
/// file fails with ENOSPC and leaves nothing behind, while a knote on a file already
/// watched (through a dup, other interest) needs no new watch and succeeds; EVFILT_READ on
/// a regular file fails the same way. Past `max_inotify_instances` a second kqueue's first
/// vnode knote fails with EMFILE. The knotes already there go on working, and a failed
/// change does not disturb the shared watch's mask.
fn g_inotify_limits(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let files: Vec<OwnedFd> = (0..4)
        .map(|i| open(&t.join(&format!("f{i}")), libc::O_RDWR | libc::O_CREAT))
        .collect();
    forked(move || {
        if !own_user_namespace() {
            return;
        }
        set_limit("max_inotify_watches", 2);
        set_limit("max_inotify_instances", 1);
        let kq = kq(p);
        let before = inotify_fds();
        ch_ok(&kq, &[vn(&files[0], EV_ADD | EV_CLEAR, NOTE_WRITE)]);
        let ino = new_inotify(&before);
        ch_ok(&kq, &[rd(id(&files[1]), EV_ADD | EV_CLEAR, 0)]);
        ch_err(&kq, &[vn(&files[2], EV_ADD, NOTE_WRITE)], libc::ENOSPC);
        ch_err(&kq, &[rd(id(&files[3]), EV_ADD, 0)], libc::ENOSPC);
        ch_err(&kq, &[vn(&files[2], EV_DELETE, 0)], libc::ENOENT);
        ch_err(&kq, &[rd(id(&files[3]), EV_DELETE, 0)], libc::ENOENT);
        let d = dup(&files[0]);
        ch_ok(&kq, &[vn(&d, EV_ADD | EV_CLEAR, NOTE_ATTRIB)]);
        assert_eq!(watches(ino).len(), 2);
        let k2 = kq_of(p);
        ch_err(&k2, &[vn(&files[0], EV_ADD, NOTE_WRITE)], libc::EMFILE);
        ch_err(&k2, &[vn(&files[0], EV_DELETE, 0)], libc::ENOENT);
        pwrite(&files[0], b"abc", 0);
        fchmod(&files[0], 0o640);
        pwrite(&files[1], b"abc", 0);
        let mut got = records(&kq);
        got.sort();
        let mut want = vec![
            (id(&files[0]), EVFILT_VNODE, NOTE_WRITE | NOTE_EXTEND),
            (id(&d), EVFILT_VNODE, NOTE_ATTRIB),
            (id(&files[1]), EVFILT_READ, 0),
        ];
        want.sort();
        assert_eq!(got, want);
        // A watch freed makes room.
        ch_ok(&kq, &[rd(id(&files[1]), EV_DELETE, 0)]);
        ch_ok(&kq, &[vn(&files[2], EV_ADD | EV_CLEAR, NOTE_WRITE)]);
        pwrite(&files[2], b"abc", 0);
        assert_eq!(
            records(&kq),
            [(id(&files[2]), EVFILT_VNODE, NOTE_WRITE | NOTE_EXTEND)]
        );
    });
}

fn kq_of(p: Personality) -> Kqueue {
    Kqueue::with_personality(p).unwrap()
}

both!(g_inotify_limits);

/// fork(): the child drops its copy of the kqueue, makes one of its own on the same file
/// and deletes knotes; the parent's knotes, their shared watch and its mask are untouched.
fn v_fork_child_works_on_same_file(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let f = open(&t.join("f"), libc::O_RDWR | libc::O_CREAT);
    let g = dup(&f);
    let before = inotify_fds();
    let kq = kq(p);
    ch_ok(
        &kq,
        &[
            vn(&f, EV_ADD | EV_CLEAR, NOTE_WRITE),
            vn(&g, EV_ADD | EV_CLEAR, NOTE_ATTRIB),
            rd(id(&f), EV_ADD | EV_CLEAR, 0),
        ],
    );
    let ino = new_inotify(&before);
    let mask = watches(ino)[0].1;
    pwrite(&f, b"a", 0);
    forked(|| {
        ch_err(&kq, &[vn(&f, EV_DELETE, 0)], libc::EBADF);
        let mut evs = [Kevent::default(); 4];
        assert_eq!(
            kq.kevent(&[], &mut evs, Some(Duration::ZERO))
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EBADF)
        );
        let mine = Kqueue::with_personality(p).unwrap();
        ch_ok(&mine, &[vn(&f, EV_ADD | EV_CLEAR, NOTE_WRITE | NOTE_OPEN)]);
        pwrite(&f, b"bb", 0);
        let evs = poll(&mine, 4);
        assert_eq!(evs.len(), 1, "{evs:?}");
        ch_ok(&mine, &[vn(&f, EV_DELETE, 0)]);
        drop(mine);
        // SAFETY: the child's own copy of the parent's value, dropped once here and never
        // used again (the child `_exit`s without dropping the original).
        drop(unsafe { std::ptr::read(&kq) });
        kq::fdclose(g.as_raw_fd());
        // SAFETY: the child's copy of the descriptor, not used again.
        unsafe { libc::close(g.as_raw_fd()) };
    });
    assert_eq!(watches(ino), [(inode(&f), mask)]);
    let mut got = records(&kq);
    got.sort();
    let mut want = vec![
        (id(&f), EVFILT_VNODE, NOTE_WRITE | NOTE_EXTEND),
        (id(&f), EVFILT_READ, 0),
    ];
    want.sort();
    assert_eq!(got, want, "the parent's events, the child's write included");
    fchmod(&g, 0o640);
    assert_eq!(records(&kq), [(id(&g), EVFILT_VNODE, NOTE_ATTRIB)]);
}

both!(v_fork_child_works_on_same_file);

/// Regression: the watch of a vnode knote's file went away (the file was unlinked and its
/// descriptor closed without the library hearing of it: inotify drops the watch of a freed
/// inode), then the knote was dropped (its number reused and changed): the kqueue's inotify
/// instance, left with no watch, must be closed as with the last watch removed.
fn v_instance_closed_after_watch_dropped_by_kernel(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let n = reserved_number(301);
    let f = move_to(open(&t.join("f"), libc::O_RDWR | libc::O_CREAT), n);
    let base = inotify_fds();
    let kq = kq(p);
    ch_ok(&kq, &[vn_n(n, EV_ADD | EV_CLEAR, NOTE_DELETE | NOTE_WRITE)]);
    assert_eq!(inotify_fds().len(), base.len() + 1);
    std::fs::remove_file(t.join("f")).unwrap();
    drop(f); // unseen close: the inode is freed, inotify drops the watch
    expect_no_events(&kq);
    let g = move_to(open(&t.join("g"), libc::O_RDWR | libc::O_CREAT), n);
    ch_err(&kq, &[vn(&g, EV_DELETE, 0)], libc::ENOENT);
    settle(&kq);
    assert_eq!(
        inotify_fds(),
        base,
        "the instance with no watch left is closed"
    );
    // And the number works as a new knote.
    ch_ok(&kq, &[vn(&g, EV_ADD | EV_CLEAR, NOTE_WRITE)]);
    pwrite(&g, b"x", 0);
    assert_eq!(
        records(&kq),
        [(n as usize, EVFILT_VNODE, NOTE_WRITE | NOTE_EXTEND)]
    );
}

both!(v_instance_closed_after_watch_dropped_by_kernel);

/// Regression: a file with a knote is unlinked and its descriptor closed without the
/// library hearing of it (the Rust API, or C without the close interposition); a new file
/// gets the same number and, on ext4, the same inode number at once. The knote of the old
/// file passed for the new file's (same device and inode): EV_ADD modified it instead of
/// making a new one, and it never fired again (its inotify watch went with the old inode).
/// `poll_between`: whether a kevent() read inotify's news of the old inode in between.
fn reused_inode(p: Personality, filter: i16, poll_between: bool) {
    let _g = serial();
    let t = TempDir::new();
    let n = reserved_number(302);
    let f = move_to(open(&t.join("f"), libc::O_RDWR | libc::O_CREAT), n);
    let old_ino = inode(&f);
    let kq = kq(p);
    let change = |flags| match filter {
        EVFILT_VNODE => vn_n(n, flags, NOTE_WRITE),
        _ => rd(n as usize, flags, 3),
    };
    ch_ok(&kq, &[change(EV_ADD | EV_CLEAR)]);
    let _ = poll(&kq, 4);
    std::fs::remove_file(t.join("f")).unwrap();
    drop(f); // unseen close: the inode is freed
    if poll_between {
        let _ = poll(&kq, 4);
    }
    let g = move_to(open(&t.join("g"), libc::O_RDWR | libc::O_CREAT), n);
    if inode(&g) != old_ino {
        eprintln!("the file system gave the new file another inode number");
    }
    ch_ok(&kq, &[change(EV_ADD | EV_CLEAR)]);
    let _ = poll(&kq, 4);
    pwrite(&g, b"new data", 0);
    let evs = poll(&kq, 4);
    assert_eq!(evs.len(), 1, "the new file's knote: {evs:?}");
    assert_eq!((evs[0].ident, evs[0].filter), (n as usize, filter));
    ch_ok(&kq, &[change(EV_DELETE)]);
}

fn v7_reused_inode_number(p: Personality) {
    reused_inode(p, EVFILT_VNODE, true);
    reused_inode(p, EVFILT_VNODE, false);
}

fn r7_reused_inode_number(p: Personality) {
    reused_inode(p, EVFILT_READ, true);
    reused_inode(p, EVFILT_READ, false);
}

both!(v7_reused_inode_number, r7_reused_inode_number);

// ---------------------------------------------------------------------------------------
// Races, leaks, nesting

/// Threads race EV_ADD, EV_DELETE, modifications and closes (told and untold) of vnode,
/// regular-file read and EVFILT_EMPTY knotes on a few numbers of two kqueues, while another
/// thread writes the files and collects. Nothing panics, every error is one a BSD could
/// give, and once the knotes are gone the kqueues hold no inotify instance and the process
/// no more descriptors than before.
fn g_threads_race(p: Personality) {
    let _g = serial();
    let t = Arc::new(TempDir::new());
    let base_fds = open_fds();
    let base_ino = inotify_fds();
    let kqs = Arc::new([kq(p), kq(p)]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for w in 0..3usize {
        let (t, kqs) = (Arc::clone(&t), Arc::clone(&kqs));
        threads.push(thread::spawn(move || {
            let mut rng = 0x9e37_79b9_u32.wrapping_mul(w as u32 + 1);
            for i in 0..400 {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                let kq = &kqs[(rng % 2) as usize];
                let path = t.join(&format!("f{}", rng % 3));
                let f = open(&path, libc::O_RDWR | libc::O_CREAT);
                let (s, _peer) = stream_pair();
                let notes = (rng >> 4) & 0x7ff;
                let changes = [
                    vn(
                        &f,
                        EV_ADD | ((rng >> 8) as u16 & (EV_CLEAR | EV_ONESHOT)),
                        notes,
                    ),
                    rd(id(&f), EV_ADD | EV_CLEAR, i),
                    em(&s, EV_ADD | EV_CLEAR),
                    vn(&f, EV_ADD | EV_DISABLE, notes ^ NOTE_WRITE),
                    vn(&f, EV_ENABLE, notes),
                ];
                let mut out = [Kevent::default(); 8];
                let n = kq
                    .kevent(
                        &changes[..(rng as usize % 5) + 1],
                        &mut out,
                        Some(Duration::ZERO),
                    )
                    .unwrap();
                for e in &out[..n] {
                    if e.flags & EV_ERROR != 0 {
                        assert!(
                            [0, libc::ENOENT, libc::EBADF].contains(&(e.data as i32)),
                            "{e:?}"
                        );
                    }
                }
                if rng & 0x100 != 0 {
                    std::fs::remove_file(&path).ok();
                }
                match rng % 3 {
                    0 => fdclose_and_close(f),
                    1 => drop(f), // unseen
                    _ => {
                        let _ = ch(kq, &[vn(&f, EV_DELETE, 0)]);
                        let _ = ch(kq, &[rd(id(&f), EV_DELETE, 0)]);
                        drop(f);
                    }
                }
                fdclose_and_close(s);
            }
        }));
    }
    {
        let (t, kqs, stop) = (Arc::clone(&t), Arc::clone(&kqs), Arc::clone(&stop));
        threads.push(thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for i in 0..3 {
                    if let Ok(f) = std::fs::OpenOptions::new()
                        .append(true)
                        .open(t.join(&format!("f{i}")))
                    {
                        use std::io::Write;
                        let _ = (&f).write_all(b"data");
                    }
                }
                for kq in kqs.iter() {
                    let _ = get(kq, 16, Some(Duration::from_millis(1)));
                }
            }
        }));
    }
    let collector = threads.pop().unwrap();
    for th in threads {
        th.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    collector.join().unwrap();
    // Whatever is left is on closed numbers: close both kqueues.
    drop(kqs);
    assert_eq!(
        left_open(&base_ino, &inotify_fds()),
        [],
        "no inotify instance left"
    );
    assert_eq!(
        left_open(&base_fds, &open_fds()),
        [],
        "no descriptor leaked"
    );
}

both!(g_threads_race);

/// Many add/delete cycles of every kind of knote of these filters, and of whole kqueues:
/// the descriptors, inotify instances and watches stay where they were.
fn g_no_leak_after_cycles(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let f = open(&t.join("f"), libc::O_RDWR | libc::O_CREAT);
    std::fs::create_dir(t.join("d")).unwrap();
    let d = open(&t.join("d"), libc::O_RDONLY | libc::O_DIRECTORY);
    let (s, _peer) = tcp_pair();
    let base_fds = open_fds();
    let base_ino = inotify_fds();
    let kq = kq(p);
    for i in 0..300 {
        let g = dup(&f);
        ch_ok(
            &kq,
            &[
                vn(&f, EV_ADD, NOTE_WRITE),
                vn(&g, EV_ADD | EV_CLEAR, NOTE_ATTRIB | NOTE_OPEN),
                vn(&d, EV_ADD, NOTE_WRITE | NOTE_LINK),
                rd(id(&f), EV_ADD, 0),
                em(&s, EV_ADD),
            ],
        );
        if i % 3 == 0 {
            fdclose_and_close(g);
        } else {
            ch_ok(&kq, &[vn(&g, EV_DELETE, 0)]);
            drop(g);
        }
        ch_ok(
            &kq,
            &[
                vn(&f, EV_DELETE, 0),
                vn(&d, EV_DELETE, 0),
                rd(id(&f), EV_DELETE, 0),
                em(&s, EV_DELETE),
            ],
        );
        // The instance stays for reuse (see `settle`): never more than one.
        assert!(inotify_fds().len() <= base_ino.len() + 1, "cycle {i}");
    }
    settle(&kq);
    assert_eq!(left_open(&base_ino, &inotify_fds()), []);
    drop(kq);
    for _ in 0..100 {
        let k = kq_of(p);
        ch_ok(&k, &[vn(&f, EV_ADD, NOTE_WRITE), em(&s, EV_ADD)]);
    }
    assert_eq!(left_open(&base_ino, &inotify_fds()), []);
    assert_eq!(left_open(&base_fds, &open_fds()), []);
}

both!(g_no_leak_after_cycles);

/// The kqueue descriptor in an epoll (EPOLLET) and in another kqueue (EV_CLEAR): readable
/// exactly while a vnode or EVFILT_EMPTY event is pending; each new event gives the
/// edge-triggered watchers a new edge, also while older events wait uncollected; a change
/// of the file that the knote's interest leaves out is no event and leaves it unreadable
/// once collected.
fn g_nested_vnode_and_empty(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let f = open(&t.join("f"), libc::O_RDWR | libc::O_CREAT);
    let g = open(&t.join("g"), libc::O_RDWR | libc::O_CREAT);
    let inner = kq(p);
    let outer = kq(p);
    // SAFETY: plain epoll_create1.
    let ep = unsafe { OwnedFd::from_raw_fd(libc::epoll_create1(libc::EPOLL_CLOEXEC)) };
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLET) as u32,
        u64: 1,
    };
    // SAFETY: valid epoll and descriptor, `ev` lives across the call.
    assert_eq!(
        unsafe {
            libc::epoll_ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                inner.as_raw_fd(),
                &mut ev,
            )
        },
        0
    );
    let edges = || {
        let mut out = [libc::epoll_event { events: 0, u64: 0 }; 4];
        // SAFETY: `out` has room for 4 events.
        unsafe { libc::epoll_wait(ep.as_raw_fd(), out.as_mut_ptr(), 4, 0) }
    };
    ch_ok(&outer, &[rd(id(&inner), EV_ADD | EV_CLEAR, 5)]);
    ch_ok(
        &inner,
        &[
            vn(&f, EV_ADD | EV_CLEAR, NOTE_ATTRIB),
            vn(&g, EV_ADD | EV_CLEAR, NOTE_WRITE),
        ],
    );
    assert_eq!(edges(), 0);
    assert_eq!(poll_fd(&inner, 0), 0);
    expect_no_events(&outer);
    // A write of f: not in its interest.
    pwrite(&f, b"abc", 0);
    let _ = edges();
    expect_no_events(&outer);
    expect_no_events(&inner);
    assert_eq!(poll_fd(&inner, 0), 0, "no event pending: not readable");
    let _ = edges();
    assert_eq!(edges(), 0);
    // An event: readable, an edge, the outer knote fires.
    fchmod(&f, 0o640);
    assert_ne!(poll_fd(&inner, 1000) & libc::POLLIN, 0);
    assert_eq!(edges(), 1);
    assert_eq!(expect_one(&outer).ident, id(&inner));
    // A second event while the first waits: a new edge, the outer knote again.
    pwrite(&g, b"abc", 0);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut seen = 0;
    while seen == 0 && Instant::now() < deadline {
        seen = edges();
    }
    assert_eq!(seen, 1, "an edge for the second event");
    assert_eq!(expect_one(&outer).ident, id(&inner));
    let mut got = records(&inner);
    got.sort();
    assert_eq!(
        got,
        [
            (id(&f), EVFILT_VNODE, NOTE_ATTRIB),
            (id(&g), EVFILT_VNODE, NOTE_WRITE | NOTE_EXTEND)
        ]
    );
    assert_eq!(poll_fd(&inner, 0), 0);
    // EVFILT_EMPTY through the nesting: the buffer drains with no thread in kevent().
    let (w, r) = tcp_pair();
    fill(&w);
    ch_ok(&inner, &[em(&w, EV_ADD | EV_CLEAR)]);
    expect_no_events(&inner);
    let _ = edges();
    let _ = poll(&outer, 4);
    let deadline = Instant::now() + Duration::from_secs(10);
    let evs = loop {
        drain(&r);
        let evs = get(&outer, 4, Some(Duration::from_millis(10)));
        if !evs.is_empty() {
            break evs;
        }
        assert!(
            Instant::now() < deadline,
            "the drain never reached the outer kqueue"
        );
    };
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_ne!(poll_fd(&inner, 0) & libc::POLLIN, 0);
    let evs = poll(&inner, 4);
    assert!(
        evs.iter().any(|e| e.filter == EVFILT_EMPTY && e.data == 0),
        "{evs:?}"
    );
}

both!(g_nested_vnode_and_empty);

/// The kqueue closed (told, as the C library's close() does) while threads sleep in
/// kevent() on it with vnode and EVFILT_EMPTY knotes: they wake with EBADF, the inotify
/// instance and the timerfd go.
fn g29_close_while_sleeping(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let f = open(&t.join("f"), libc::O_RDWR | libc::O_CREAT);
    let (w, _r) = tcp_pair();
    fill(&w);
    let base_fds = open_fds();
    let base_ino = inotify_fds();
    let raw = Kqueue::new_raw_fd(p).unwrap();
    {
        let k = Kqueue::find(kq_fd(raw)).unwrap();
        ch_ok(&k, &[vn(&f, EV_ADD, NOTE_DELETE), em(&w, EV_ADD)]);
    }
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            thread::spawn(move || {
                let k = Kqueue::find(kq_fd(raw)).unwrap();
                let mut evs = [Kevent::default(); 2];
                k.kevent(&[], &mut evs, Some(Duration::from_secs(20)))
                    .map_err(|e| e.raw_os_error())
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    kq::fdclose(raw);
    // SAFETY: our descriptor, closed once.
    unsafe { libc::close(raw) };
    for s in sleepers {
        assert_eq!(s.join().unwrap(), Err(Some(libc::EBADF)));
    }
    assert_eq!(left_open(&base_ino, &inotify_fds()), []);
    assert_eq!(left_open(&base_fds, &open_fds()), []);
}

fn kq_fd(raw: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: the test keeps `raw` open while the borrow is used.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) }
}

both!(g29_close_while_sleeping);

/// The descriptors an epoll instance holds, from /proc/self/fdinfo.
fn epoll_targets(ep: RawFd) -> Vec<RawFd> {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{ep}"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("tfd:"))
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

/// Regression: an EV_ONESHOT vnode knote, the kqueue's only one, is delivered, and so
/// dropped; so is a knote deleted with EV_DELETE. Each closed the kqueue's inotify
/// instance at once, which waits in the kernel for the removed watch to be freed (5 to 20
/// ms, with the kqueue locked, in every such kevent()). Now the instance is kept, out of
/// the epoll (the kqueue descriptor does not become readable for the watch's removal), the
/// next knote reuses it, and it is closed once it has been idle for 100 ms.
fn v7_oneshot_rearm_keeps_instance(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let f = open(&t.join("f"), libc::O_RDWR | libc::O_CREAT);
    let before = inotify_fds();
    let kq = kq(p);
    ch_ok(&kq, &[vn(&f, EV_ADD | EV_ONESHOT, NOTE_WRITE)]);
    let ino = new_inotify(&before);
    assert!(epoll_targets(kq.as_raw_fd()).contains(&ino));
    for i in 0..20 {
        pwrite(&f, b"x", i);
        let evs = poll(&kq, 4);
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert_eq!(inotify_fds(), [before.clone(), vec![ino]].concat(), "kept");
        assert!(
            !epoll_targets(kq.as_raw_fd()).contains(&ino),
            "idle: out of the epoll"
        );
        assert_eq!(poll_fd(&kq, 0), 0, "not readable");
        ch_ok(&kq, &[vn(&f, EV_ADD | EV_ONESHOT, NOTE_WRITE)]);
        assert_eq!(new_inotify(&before), ino, "reused");
        assert!(
            epoll_targets(kq.as_raw_fd()).contains(&ino),
            "back in the epoll"
        );
    }
    ch_ok(&kq, &[vn(&f, EV_DELETE, 0)]);
    assert_eq!(poll_fd(&kq, 0), 0, "not readable");
    // A sleeper is not woken by the idle instance.
    let start = Instant::now();
    assert!(get(&kq, 1, Some(Duration::from_millis(50))).is_empty());
    assert!(start.elapsed() >= Duration::from_millis(50));
    settle(&kq);
    assert_eq!(inotify_fds(), before, "closed once idle");
    // And made again when needed.
    ch_ok(&kq, &[vn(&f, EV_ADD | EV_CLEAR, NOTE_WRITE)]);
    pwrite(&f, b"y", 0);
    assert_eq!(records(&kq), [(id(&f), EVFILT_VNODE, NOTE_WRITE)]);
}

both!(v7_oneshot_rearm_keeps_instance);

/// Drops this (forked, single-threaded) process's privileges to user and group `nobody`.
fn become_nobody() {
    // SAFETY: plain system calls on this process.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
        assert_eq!(libc::setgid(65534), 0);
        assert_eq!(libc::setuid(65534), 0);
    }
}

/// A file the process may not read: a descriptor opened for writing only, and one opened
/// for reading before the file's mode took the permission away (a daemon that opened its
/// files, then dropped its privileges). The BSDs watch any open file; inotify refuses to
/// watch a file its caller may not read, so EVFILT_VNODE, and EVFILT_READ on such a
/// regular file, fail with EACCES (a documented Linux difference). The failure leaves
/// nothing behind: no knote, no instance, and the other knotes work.
fn v7_unreadable_file(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let path = t.join("f");
    drop(open(&path, libc::O_RDWR | libc::O_CREAT));
    let other = t.join("g");
    drop(open(&other, libc::O_RDWR | libc::O_CREAT));
    // SAFETY: plain chown/chmod of our own test files.
    unsafe {
        let c = c_path(&t.0);
        assert_eq!(libc::chmod(c.as_ptr(), 0o777), 0);
        for f in [&path, &other] {
            let c = c_path(f);
            assert_eq!(libc::chown(c.as_ptr(), 65534, 65534), 0);
            assert_eq!(libc::chmod(c.as_ptr(), 0o600), 0);
        }
    }
    forked(move || {
        become_nobody();
        let r = open(&path, libc::O_RDONLY);
        fchmod(&r, 0o200);
        let w = open(&path, libc::O_WRONLY);
        let g = open(&other, libc::O_RDWR);
        let before = inotify_fds();
        let kq = kq(p);
        for fd in [&r, &w] {
            ch_err(&kq, &[vn(fd, EV_ADD, NOTE_WRITE)], libc::EACCES);
            ch_err(&kq, &[vn(fd, EV_DELETE, 0)], libc::ENOENT);
        }
        ch_err(&kq, &[rd(id(&r), EV_ADD, 0)], libc::EACCES);
        ch_err(&kq, &[rd(id(&r), EV_DELETE, 0)], libc::ENOENT);
        settle(&kq);
        assert_eq!(inotify_fds(), before);
        ch_ok(&kq, &[vn(&g, EV_ADD | EV_CLEAR, NOTE_WRITE)]);
        // The failing file next to a watched one: the watch is not disturbed.
        ch_err(&kq, &[vn(&w, EV_ADD, NOTE_WRITE)], libc::EACCES);
        pwrite(&w, b"abc", 0);
        pwrite(&g, b"abc", 0);
        assert_eq!(
            records(&kq),
            [(id(&g), EVFILT_VNODE, NOTE_WRITE | NOTE_EXTEND)]
        );
    });
}

both!(v7_unreadable_file);

/// Garbage input: every combination of the action and behaviour flags, odd `fflags` (every
/// bit, unknown bits) and `data` (negative, huge) on vnode and EVFILT_EMPTY knotes, and
/// idents that are no descriptor: a BSD answer each time, never a panic, and the kqueue
/// keeps working.
fn g16_garbage_input(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let f = open(&t.join("f"), libc::O_RDWR | libc::O_CREAT);
    std::fs::create_dir(t.join("d")).unwrap();
    let d = open(&t.join("d"), libc::O_RDONLY | libc::O_DIRECTORY);
    let (s, _peer) = stream_pair();
    let kq = kq(p);
    let flags = [
        EV_ADD,
        EV_DELETE,
        EV_ENABLE,
        EV_DISABLE,
        EV_ONESHOT,
        EV_CLEAR,
        EV_RECEIPT,
        EV_DISPATCH,
        EV_EOF,
        EV_ERROR,
        0x8000,
    ];
    let fflags = [0, u32::MAX, NOTE_WRITE, 0x8000_0000, 0x00ff_ff00];
    let data = [0, -1, isize::MIN, isize::MAX];
    let idents = [
        id(&f),
        id(&d),
        id(&s),
        usize::MAX,
        i32::MAX as usize + 1,
        closed_number(),
    ];
    let mut out = [Kevent::default(); 4];
    let mut n = 0u32;
    for (i, &ident) in idents.iter().enumerate() {
        for filter in [EVFILT_VNODE, EVFILT_EMPTY] {
            for mask in 0..(1u32 << flags.len()) {
                n = n.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i > 0 && n.checked_rem(7) != Some(0) {
                    continue; // a sample for the odd idents
                }
                let fl = flags
                    .iter()
                    .enumerate()
                    .filter(|(b, _)| mask & (1 << b) != 0)
                    .fold(0u16, |a, (_, f)| a | f);
                let c = Kevent::new(
                    ident,
                    filter,
                    fl,
                    fflags[(n >> 3) as usize % fflags.len()],
                    data[(n >> 7) as usize % data.len()],
                    ptr(1),
                );
                match kq.kevent(&[c], &mut out, Some(Duration::ZERO)) {
                    Ok(_) => {}
                    Err(e) => {
                        let errno = e.raw_os_error().unwrap();
                        assert!(
                            [libc::EINVAL, libc::ENOENT, libc::EBADF].contains(&errno),
                            "{c:?}: {e}"
                        );
                    }
                }
            }
        }
    }
    // Still working: a clean knote reports.
    for ident in [id(&f), id(&d), id(&s)] {
        for filter in [EVFILT_VNODE, EVFILT_EMPTY] {
            let _ = ch(&kq, &[Kevent::new(ident, filter, EV_DELETE, 0, 0, ptr(0))]);
        }
    }
    let _ = poll(&kq, 16);
    ch_ok(
        &kq,
        &[vn(&f, EV_ADD | EV_CLEAR, NOTE_WRITE), em(&s, EV_ADD)],
    );
    pwrite(&f, b"x", 0);
    let mut got: Vec<i16> = poll(&kq, 4).iter().map(|e| e.filter).collect();
    got.sort();
    assert_eq!(got, [EVFILT_EMPTY, EVFILT_VNODE]);
}

both!(g16_garbage_input);

/// An overflow of the inotify queue with EVFILT_READ knotes on regular files in the same
/// kqueue (file `a` chmod'ed and file `c` rewritten in turn until the queue overflows, then
/// `b` grows, its event lost): the read knotes are evaluated again (`b` fires with its
/// size), the vnode knote reports what its file shows (the mode is back where it was, the
/// status change time tells of the lost chmods), and afterwards every knote works as
/// before.
fn v_overflow_with_read_knotes(p: Personality) {
    let _g = serial();
    let limit: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(16384);
    if limit > 1 << 20 {
        return;
    }
    let t = TempDir::new();
    let a = open(&t.join("a"), libc::O_RDWR | libc::O_CREAT);
    let b = open(&t.join("b"), libc::O_RDWR | libc::O_CREAT);
    let c = open(&t.join("c"), libc::O_RDWR | libc::O_CREAT);
    let kq = kq(p);
    ch_ok(
        &kq,
        &[
            vn(&a, EV_ADD | EV_CLEAR, NOTE_ATTRIB),
            rd(id(&b), EV_ADD | EV_CLEAR, 2),
            rd(id(&c), EV_ADD | EV_CLEAR, 3),
        ],
    );
    for i in 0..limit / 2 + 16 {
        fchmod(&a, if i % 2 == 0 { 0o640 } else { 0o600 });
        pwrite(&c, b"c", 0); // no growth after the first
        fchmod(&a, if i % 2 == 0 { 0o600 } else { 0o640 });
    }
    pwrite(&b, b"grown", 0);
    // Proof of the overflow: an open after it is lost (opens cannot be recovered).
    let e = open(&t.join("e"), libc::O_RDWR | libc::O_CREAT);
    ch_ok(&kq, &[vn(&e, EV_ADD | EV_CLEAR, NOTE_OPEN)]);
    drop(open(&t.join("e"), libc::O_RDONLY));
    let mut got: Vec<(usize, i16, isize)> = poll(&kq, 8)
        .iter()
        .map(|e| (e.ident, e.filter, e.data))
        .collect();
    got.sort();
    let mut want = vec![
        (id(&a), EVFILT_VNODE, 0),
        (id(&b), EVFILT_READ, 5),
        (id(&c), EVFILT_READ, 1),
    ];
    want.sort();
    assert_eq!(got, want);
    pwrite(&c, b"abc", 0);
    fchmod(&a, 0o644);
    let mut got = records(&kq);
    got.sort();
    let mut want = vec![
        (id(&a), EVFILT_VNODE, NOTE_ATTRIB),
        (id(&c), EVFILT_READ, 0),
    ];
    want.sort();
    assert_eq!(got, want);
}

both!(v_overflow_with_read_knotes);
