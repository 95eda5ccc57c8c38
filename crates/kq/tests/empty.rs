//! EVFILT_EMPTY: a socket's send buffer has drained. E1 is NetBSD's t_empty `sock_tcp`
//! (active, not active once the buffer is full, active again once the peer drains); then a
//! sleeping `kevent()` woken by the drain, EV_CLEAR, AF_UNIX and UDP sockets, a listening
//! socket, and the descriptors the BSDs refuse (pipes, files, kqueues: EINVAL).

mod fdutil;
mod util;

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fdutil::*;
use kq::*;
use util::*;

/// An EVFILT_EMPTY change.
fn em(fd: &impl AsRawFd, flags: u16) -> Kevent {
    Kevent::new(id(fd), EVFILT_EMPTY, flags, 0, 0, ptr(7))
}

/// Asserts one EVFILT_EMPTY record for `fd` with `data` 0.
#[track_caller]
fn assert_empty(ev: &Kevent, fd: &impl AsRawFd) {
    assert_eq!(
        (ev.ident, ev.filter, ev.data),
        (id(fd), EVFILT_EMPTY, 0),
        "{ev:?}"
    );
    assert_eq!(ev.flags & (EV_EOF | EV_ERROR), 0, "{ev:?}");
    assert_eq!(udata(ev), 7);
}

fn set_sndbuf(fd: &impl AsRawFd, v: libc::c_int) {
    // SAFETY: `v` is a valid int of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    cvt(r).expect("SO_SNDBUF");
}

/// A loopback TCP pair whose sending side's buffer (64 KiB) was written full, the receiver
/// not reading: (writer, reader).
///
/// t_empty instead slams the receive window shut with SO_RCVBUF = 1 and opens it again
/// with a larger SO_RCVBUF before draining; Linux keeps the window clamp of the tiny buffer
/// for the life of the connection (a few KiB per round trip after that), so here the
/// receiver just does not read until it drains.
fn full_tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let (w, r) = tcp_pair();
    set_sndbuf(&w, 65536);
    let n = fill(&w);
    assert!(n > 0);
    (w, r)
}

/// E1 (NetBSD t_empty sock_tcp).
fn e1_sock_tcp(p: Personality) {
    let (w, r) = tcp_pair();
    let kq = kq(p);
    ch_ok(&kq, &[em(&w, EV_ADD)]);
    // Empty to begin with (level-triggered: reported on every call).
    let ev = expect_one(&kq);
    assert_empty(&ev, &w);
    assert_eq!(ev.flags, delivered_flags(p, EV_ADD));
    assert_empty(&expect_one(&kq), &w);
    // Not empty once the buffer is full (the receiver does not read: see `full_tcp_pair`).
    set_sndbuf(&w, 65536);
    fill(&w);
    expect_no_events(&kq);
    // Empty again once the receiver drains (retrying, as t_empty does).
    let deadline = Instant::now() + Duration::from_secs(10);
    let ev = loop {
        drain(&r);
        if let Some(ev) = get(&kq, 1, Some(Duration::from_millis(10))).pop() {
            break ev;
        }
        assert!(Instant::now() < deadline, "no EVFILT_EMPTY after the drain");
    };
    assert_empty(&ev, &w);
}

/// A thread asleep in kevent() wakes when the buffer drains (no event is lost while nobody
/// looks), and the kqueue descriptor becomes readable.
fn e1_drain_wakes_sleeper(p: Personality) {
    let (w, r) = full_tcp_pair();
    let kq = Arc::new(kq(p));
    ch_ok(&kq, &[em(&w, EV_ADD | EV_CLEAR)]);
    expect_no_events(&kq);
    let k2 = Arc::clone(&kq);
    let waiter = thread::spawn(move || get(&k2, 1, Some(Duration::from_secs(20))));
    thread::sleep(Duration::from_millis(20));
    assert!(!waiter.is_finished());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !waiter.is_finished() && Instant::now() < deadline {
        drain(&r);
        thread::sleep(Duration::from_millis(1));
    }
    let evs = waiter.join().unwrap();
    assert_eq!(evs.len(), 1, "the sleeper was not woken");
    assert_empty(&evs[0], &w);
    // Cleared: nothing more until the socket sends again.
    expect_no_events(&kq);
    assert_eq!(poll_fd(&kq, 0), 0);
    // Sent and acknowledged between two looks: still news for an EV_CLEAR knote, and the
    // descriptor becomes readable with nobody in kevent().
    // (The descriptor may also become readable for an edge of the socket that the filter
    // then finds not empty yet: look again, without waiting in kevent().)
    put(&w, 100);
    let deadline = Instant::now() + Duration::from_secs(10);
    let ev = loop {
        assert!(
            Instant::now() < deadline,
            "the kqueue never became readable"
        );
        if poll_fd(&kq, 100) & libc::POLLIN != 0 {
            if let Some(ev) = poll(&kq, 1).pop() {
                break ev;
            }
        }
    };
    assert_empty(&ev, &w);
    expect_no_events(&kq);
}

both!(e1_sock_tcp, e1_drain_wakes_sleeper);

/// AF_UNIX stream: not empty while the peer has not read what was sent (Linux counts the
/// buffer memory in use), empty once it has.
fn e_unix_stream(p: Personality) {
    let (a, b) = stream_pair();
    let kq = kq(p);
    ch_ok(&kq, &[em(&a, EV_ADD)]);
    assert_empty(&expect_one(&kq), &a);
    put(&a, 10);
    expect_no_events(&kq);
    assert_eq!(take(&b, 5), 5);
    expect_no_events(&kq);
    assert_eq!(take(&b, 5), 5);
    assert_empty(&wait_one(&kq), &a);
}

/// UDP sends leave nothing behind; a listening socket is always empty.
fn e_udp_and_listening(p: Personality) {
    let (u, _peer) = udp_pair();
    let l = tcp_listener();
    let kq = kq(p);
    ch_ok(&kq, &[em(&u, EV_ADD | EV_CLEAR), em(&l, EV_ADD | EV_CLEAR)]);
    let evs = poll(&kq, 4);
    assert_eq!(evs.len(), 2, "{evs:?}");
    u.send(b"hi").unwrap();
    let ev = wait_one(&kq);
    assert_empty(&ev, &u);
}

/// Only sockets: pipes (both ends), FIFOs, regular files, eventfds and kqueues give EINVAL
/// in both personalities (the BSDs' pipe, vnode and kqueue kqfilter routines refuse the
/// filter); a closed number EBADF.
fn e_pipe_and_others_einval(p: Personality) {
    let kq = kq(p);
    let (r, w) = pipe();
    let (fr, fw, _path) = fifo();
    let (f, _fpath) = temp_file(b"x");
    let e = eventfd();
    let other = Kqueue::new().unwrap();
    for fd in [
        r.as_raw_fd(),
        w.as_raw_fd(),
        fr.as_raw_fd(),
        fw.as_raw_fd(),
        f.as_raw_fd(),
        e.as_raw_fd(),
        other.as_raw_fd(),
    ] {
        ch_err(
            &kq,
            &[Kevent::new(fd as usize, EVFILT_EMPTY, EV_ADD, 0, 0, ptr(0))],
            libc::EINVAL,
        );
    }
    let c = Kevent::new(closed_number(), EVFILT_EMPTY, EV_ADD, 0, 0, ptr(0));
    ch_err(&kq, &[c], libc::EBADF);
}

/// EV_DELETE, and close through `kq::fdclose`, drop the knote (no re-check survives it).
fn e_delete_and_close(p: Personality) {
    let (w, r) = full_tcp_pair();
    let kq = kq(p);
    ch_ok(&kq, &[em(&w, EV_ADD), em(&r, EV_ADD)]);
    assert_empty(&expect_one(&kq), &r);
    ch_ok(&kq, &[em(&w, EV_DELETE)]);
    ch_err(&kq, &[em(&w, EV_DELETE)], libc::ENOENT);
    fdclose_and_close(r);
    expect_no_events(&kq);
    drop(w);
}

both!(
    e_unix_stream,
    e_udp_and_listening,
    e_pipe_and_others_einval,
    e_delete_and_close
);
