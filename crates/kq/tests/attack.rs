//! Regression tests found by an adversarial review (branch `attack`). Each test reproduces
//! one defect and is named `defect_*`; they FAIL on the engine as it is.

mod fdutil;
mod util;

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use fdutil::*;
use kq::*;
use util::*;

/// Regression (found by an adversarial pass): after 65536 descriptor registrations in one kqueue, the sequence number in the
/// epoll user data reaches bit 48, the tag bits (`TAG_MASK`), and `Inner::harvest` ignores
/// the registration's edges: a sleeper is never woken although the socket has data.
#[test]
fn seq_overflow_loses_edges() {
    let kq = Kqueue::new().unwrap();
    let (a, b) = stream_pair();
    for _ in 0..65536 {
        ch_ok(&kq, &[rd(id(&a), EV_ADD, 0), rd(id(&a), EV_DELETE, 0)]);
    }
    ch_ok(&kq, &[rd(id(&a), EV_ADD | EV_CLEAR, 7)]);
    assert!(get(&kq, 4, Some(Duration::ZERO)).is_empty());
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        put(&b, 5);
        b
    });
    let evs = get(&kq, 4, Some(Duration::from_secs(30)));
    let _b = writer.join().unwrap();
    assert_eq!(evs.len(), 1, "socket got 5 bytes, kevent() saw {evs:?}");
    assert_eq!(evs[0].data, 5);
}

/// Regression (found by an adversarial pass): an EVFILT_READ knote on a kqueue descriptor number keeps reporting for that
/// kqueue after the number was closed (without `fdclose`, as a Rust program or a raw
/// close does) and taken by another file, as long as the watched kqueue lives on through
/// a dup. `filter/fd.rs::event` returns `kqueue_event` for `Kind::Kqueue` before, and
/// instead of, the `same_file` check every other kind gets.
#[test]
fn kqueue_knote_reports_for_reused_number() {
    let outer = Kqueue::new().unwrap();
    let n = Kqueue::new_raw_fd(Personality::NetBsd).unwrap();
    // SAFETY: plain dup of a descriptor we own.
    let m = unsafe { libc::dup(n) };
    assert!(m >= 0);
    // SAFETY: m was just returned by dup and is owned here.
    let m = unsafe { OwnedFd::from_raw_fd(m) };
    let inner = Kqueue::find(m.as_fd()).unwrap();
    inner
        .kevent_raw(&[user(1, EV_ADD | EV_CLEAR, 0, 0)][..], &mut [][..], None)
        .unwrap();
    ch_ok(&outer, &[rd(n as usize, EV_ADD | EV_CLEAR, 99)]);
    assert!(poll(&outer, 4).is_empty());
    // Replace number n behind the library's back (dup2 closes it; no fdclose): an empty
    // pipe takes the number.
    let (r, _w) = pipe();
    // SAFETY: n is ours; dup2 atomically makes it a copy of the pipe's read end.
    assert_eq!(unsafe { libc::dup2(r.as_raw_fd(), n) }, n);
    // SAFETY: n now names the pipe and is owned here.
    let _r = unsafe { OwnedFd::from_raw_fd(n) };
    // The kqueue, still open as m, gets an event.
    inner
        .kevent_raw(&[user(1, 0, NOTE_TRIGGER, 0)][..], &mut [][..], None)
        .unwrap();
    let evs = get(&outer, 4, Some(Duration::from_millis(300)));
    assert!(
        evs.is_empty(),
        "number {n} is an empty pipe now, yet the outer kqueue reports {evs:?}"
    );
}

fn socket(domain: i32, ty: i32) -> OwnedFd {
    // SAFETY: plain system call.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: just returned by socket().
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Regression (found by an adversarial pass): a stream socket that is not connected yet (fresh from socket(), as an event
/// loop registers it before calling connect()) reports EVFILT_READ and EVFILT_WRITE at
/// once, both with EV_EOF: Linux's poll gives POLLHUP for a socket in TCP_CLOSE, and
/// `filter/fd.rs::{read_status, write_status}` take HUP as end-of-file. The BSDs report
/// neither (filt_soread: no data, SBS_CANTRCVMORE not set; filt_sowrite: returns 0 for a
/// PR_CONNREQUIRED socket that is not SS_ISCONNECTED).
#[test]
fn unconnected_socket_reports_eof() {
    for (name, dom) in [("tcp", libc::AF_INET), ("unix", libc::AF_UNIX)] {
        let kq = Kqueue::new().unwrap();
        let s = socket(dom, libc::SOCK_STREAM);
        ch_ok(&kq, &[rd(id(&s), EV_ADD, 1), wr(id(&s), EV_ADD, 2)]);
        let evs = get(&kq, 4, Some(Duration::from_millis(50)));
        assert!(
            evs.is_empty(),
            "{name}: a socket that was never connected reports {evs:?}"
        );
    }
}

/// Regression (found by an adversarial pass): a kqueue whose only descriptor knotes are on regular files has `polled() == 0`,
/// so `Inner::harvest_now` returns at once and never reads the inotify edge: a regular
/// file that grows is never reported to a caller that polls with a zero timeout (only a
/// sleeping kevent() takes inotify edges in), while poll(2) says the kqueue descriptor is
/// readable, call after call (an event loop nesting the kqueue in poll/epoll spins).
#[test]
fn file_growth_lost_with_zero_timeout() {
    let kq = Kqueue::new().unwrap();
    let (f, path) = temp_file(b"");
    ch_ok(&kq, &[rd(id(&f), EV_ADD | EV_CLEAR, 3)]);
    assert!(poll(&kq, 4).is_empty());
    append(&path, 10);
    let mut evs = Vec::new();
    let mut readable = 0;
    for _ in 0..20 {
        readable += i32::from(poll_fd(&kq, 50) & libc::POLLIN != 0);
        evs = poll(&kq, 4);
        if !evs.is_empty() {
            break;
        }
    }
    assert_eq!(
        evs.len(),
        1,
        "the file grew by 10 bytes; zero-timeout kevent() saw nothing \
         (poll() said readable {readable} times out of 20)"
    );
    assert_eq!(evs[0].data, 10);
}

/// Regression (found by an adversarial pass): whether a socket listens is decided once, at EV_ADD (`classify`): a socket
/// registered before listen() is treated as a data socket for good, its read check
/// (FIONREAD) fails on the listening socket, and a waiting connection is never reported.
/// The BSDs look at SOLISTENING at every check.
#[test]
fn listen_after_register_never_fires() {
    let kq = Kqueue::new().unwrap();
    let s = socket(libc::AF_INET, libc::SOCK_STREAM);
    // SAFETY: plain socket calls on a socket we own, with a valid sockaddr_in.
    let port = unsafe {
        let mut a: libc::sockaddr_in = std::mem::zeroed();
        a.sin_family = libc::AF_INET as u16;
        a.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        assert_eq!(
            libc::bind(s.as_raw_fd(), (&a as *const libc::sockaddr_in).cast(), len),
            0
        );
        ch_ok(&kq, &[rd(id(&s), EV_ADD, 1)]);
        assert_eq!(libc::listen(s.as_raw_fd(), 8), 0);
        let mut len = len;
        libc::getsockname(
            s.as_raw_fd(),
            (&mut a as *mut libc::sockaddr_in).cast(),
            &mut len,
        );
        u16::from_be(a.sin_port)
    };
    let _ = get(&kq, 4, Some(Duration::ZERO)); // whatever the fresh socket said
    let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let evs = get(&kq, 4, Some(Duration::from_secs(30)));
    assert_eq!(
        evs.len(),
        1,
        "a connection waits on the listening socket: {evs:?}"
    );
    assert_eq!(evs[0].data, 1);
}

/// Runs `body` in a fresh process (this test binary, running only test `name`), so that
/// process-wide changes (RLIMIT_NOFILE) do not touch the other tests. Fails if the child
/// fails, or takes more than 60 s.
fn in_child(name: &str, body: impl FnOnce()) {
    if std::env::var("KQ_ATTACK_CHILD").as_deref() == Ok(name) {
        body();
        return;
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("KQ_ATTACK_CHILD", name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("child test {name} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(status.success(), "child test {name} failed:\n{text}");
}

/// Lowers RLIMIT_NOFILE to `limit` and fills every free number below it.
fn exhaust_descriptors(limit: libc::rlim_t) -> Vec<OwnedFd> {
    let rl = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit reads the struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) }, 0);
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

/// Regression (found by an adversarial pass): a copy of a kqueue descriptor made with dup() is found through
/// /proc/self/fdinfo (`process::lookup`), which needs a free descriptor: in a process at
/// its RLIMIT_NOFILE (a loaded server), kevent() on the copy fails with EBADF although it
/// is a kqueue. The BSDs need no descriptor for kevent().
#[test]
fn dup_of_kqueue_ebadf_at_emfile() {
    in_child("defect_dup_of_kqueue_ebadf_at_emfile", || {
        let n = Kqueue::new_raw_fd(Personality::FreeBsd).unwrap();
        // SAFETY: plain dup.
        let m = unsafe { libc::dup(n) };
        assert!(m >= 0);
        let _held = exhaust_descriptors(64);
        // SAFETY: m is open for the rest of the process.
        let r = Kqueue::find(unsafe { std::os::fd::BorrowedFd::borrow_raw(m) });
        assert!(
            r.is_ok(),
            "kevent() on a dup of a kqueue at EMFILE: {:?}",
            r.err()
        );
    });
}

/// Regression (found by an adversarial pass): closing one number of a kqueue (through `fdclose`, as the interposed close()
/// does) looks for other copies in /proc/self/fd (`process::find_copy`), which needs a
/// free descriptor: at RLIMIT_NOFILE the search fails, the kqueue is taken for closed and
/// destroyed (`mark_closed`), and its remaining copy, made with dup(), gives EBADF for
/// good, with its knotes lost, even once descriptors are free again.
#[test]
fn close_at_emfile_destroys_kqueue_with_live_dup() {
    in_child(
        "defect_close_at_emfile_destroys_kqueue_with_live_dup",
        || {
            let n = Kqueue::new_raw_fd(Personality::FreeBsd).unwrap();
            // SAFETY: plain dup.
            let m = unsafe { libc::dup(n) };
            assert!(m >= 0);
            let held = exhaust_descriptors(64);
            kq::fdclose(n);
            // SAFETY: n is ours.
            unsafe { libc::close(n) };
            drop(held);
            // SAFETY: m is open for the rest of the process.
            let r = Kqueue::find(unsafe { std::os::fd::BorrowedFd::borrow_raw(m) });
            assert!(
                r.is_ok(),
                "the kqueue is still open as {m}, but kevent() on it gives {:?}",
                r.err()
            );
        },
    );
}

/// Regression (found by an adversarial pass): "same file" is decided by (dev, ino, type) for everything but anonymous inodes.
/// A FIFO (or a tty, /dev/xxx) opened again is a new open file with the same inode: when a
/// registered FIFO descriptor is closed without `fdclose` (a Rust program, a raw close,
/// fclose()) and the FIFO is opened again on the same number, EV_ADD finds the old knote
/// still "fresh" (`Inner::check_descriptor` / `is_stale`), so the new open file is never
/// added to the kqueue's epoll (the old registration went away with the old file): data
/// written to the FIFO never wakes a sleeping kevent().
#[test]
fn reopened_fifo_never_wakes() {
    let kq = Kqueue::new().unwrap();
    let (r, w, path) = fifo();
    let num = reserved_number(900);
    let r = move_to(r, num);
    ch_ok(&kq, &[rd(num as usize, EV_ADD | EV_CLEAR, 1)]);
    assert!(poll(&kq, 4).is_empty());
    // Close the reader without telling the library, open the FIFO again on the same number.
    drop(r);
    let r2 = move_to(open_fifo(&path, libc::O_RDONLY), num);
    ch_ok(&kq, &[rd(num as usize, EV_ADD | EV_CLEAR, 2)]);
    assert!(poll(&kq, 4).is_empty());
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        put(&w, 4);
        w
    });
    let evs = get(&kq, 4, Some(Duration::from_secs(30)));
    let _w = writer.join().unwrap();
    drop(r2);
    assert_eq!(
        evs.len(),
        1,
        "4 bytes written to the reopened FIFO: {evs:?}"
    );
    assert_eq!(evs[0].data, 4);
}
