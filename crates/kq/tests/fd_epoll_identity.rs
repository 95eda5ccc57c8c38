//! EVFILT_READ/EVFILT_WRITE registrations as epoll itself keeps them: an EV_ADD of
//! EVFILT_READ that only registers the descriptor (it is looked at once epoll reports it
//! ready), an EV_DELETE whose epoll_ctl also tells whether the number still names the
//! registered file, and numbers where an old registration lingers in the epoll, where
//! epoll alone cannot vouch for the file.
//!
//! Numbers that must be reused are placed with dup3 onto reserved numbers, as in
//! `fd_semantics.rs`.

mod fdutil;
mod util;

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use fdutil::*;
use kq::*;
use util::*;

/// A reserved descriptor number for test `k` of personality `p`.
fn number(p: Personality, k: RawFd) -> RawFd {
    let i = match p {
        Personality::NetBsd => 0,
        Personality::FreeBsd => 1,
        p => unimplemented!("personality {p:?}"),
    };
    reserved_number(600 + 2 * k + i)
}

/// A stream socket pair whose first end sits at descriptor number `n`.
fn pair_at(n: RawFd) -> (OwnedFd, OwnedFd) {
    let (a, b) = stream_pair();
    (move_to(a, n), b)
}

/// EV_ADD of EVFILT_READ on a descriptor that is readable already: the event comes back
/// from the same kevent() call, with the byte count; after a change list alone the kqueue
/// descriptor is readable before any scan; EV_CLEAR reports it once.
fn r1_add_on_ready_socket_reports_in_the_same_call(p: Personality) {
    for flags in [EV_ADD, EV_ADD | EV_CLEAR] {
        let kq = kq(p);
        let (a, b) = stream_pair();
        put(&b, 3);
        let mut out = [Kevent::default(); 4];
        let n = kq
            .kevent(&[rd(id(&a), flags, 1)], &mut out, Some(Duration::ZERO))
            .unwrap();
        assert_eq!(n, 1, "flags {flags:#x}: {:?}", &out[..n]);
        assert_fd_event(&out[0], id(&a), EVFILT_READ, delivered_flags(p, flags), 3);
        assert_eq!(udata(&out[0]), 1);
        if flags & EV_CLEAR != 0 {
            expect_no_events(&kq);
        } else {
            assert_eq!(expect_one(&kq).data, 3);
        }

        let kq = kq_with_fd(p);
        let (c, d) = stream_pair();
        put(&d, 2);
        ch_ok(&kq, &[rd(id(&c), flags, 2)]);
        assert_ne!(
            poll_fd(&kq, 0) & libc::POLLIN,
            0,
            "readable before any scan"
        );
        let ev = expect_one(&kq);
        assert_fd_event(&ev, id(&c), EVFILT_READ, delivered_flags(p, flags), 2);
        if flags & EV_CLEAR != 0 {
            assert_eq!(poll_fd(&kq, 0) & libc::POLLIN, 0, "collected");
        }
    }
}

/// A kqueue of personality `p` whose descriptor was handed out (exact readability).
fn kq_with_fd(p: Personality) -> Kqueue {
    let kq = kq(p);
    let _ = kq.as_fd();
    kq
}

/// EV_ADD of EVFILT_READ on a closed number, or on an ident past INT_MAX: EBADF, and no
/// knote is left behind.
fn g11_add_on_closed_number_is_ebadf(p: Personality) {
    let kq = kq(p);
    let closed = closed_number();
    ch_err(&kq, &[rd(closed, EV_ADD, 0)], libc::EBADF);
    ch_err(&kq, &[rd(closed, EV_DELETE, 0)], libc::EBADF);
    ch_err(&kq, &[rd(1 << 40, EV_ADD, 0)], libc::EBADF);
    // The same number once open: no knote of the failed EV_ADD.
    let n = number(p, 0);
    let (_a, b) = pair_at(n);
    put(&b, 1);
    expect_no_events(&kq);
    ch_err(&kq, &[rd(n as usize, EV_DELETE, 0)], libc::ENOENT);
}

/// EV_DELETE of a knote whose number was closed without our hearing of it gives EBADF,
/// and of one whose number names another file now ENOENT (the knotes of the old file are
/// gone, READ and WRITE alike); a plain EV_DELETE of READ leaves WRITE working, and
/// nothing of the deleted interest is reported.
fn r1_delete_checks_the_number(p: Personality) {
    // Closed: EBADF, then ENOENT once the number is open again.
    let kq1 = kq(p);
    let n = number(p, 1);
    let (a, _a_peer) = pair_at(n);
    ch_ok(&kq1, &[rd(n as usize, EV_ADD, 1)]);
    drop(a);
    ch_err(&kq1, &[rd(n as usize, EV_DELETE, 0)], libc::EBADF);
    let (_b, b_peer) = pair_at(n);
    ch_err(&kq1, &[rd(n as usize, EV_DELETE, 0)], libc::ENOENT);
    put(&b_peer, 1);
    expect_no_events(&kq1);
    drop(_b);

    // Reused with READ and WRITE registered: deleting either finds nothing.
    for first in [EVFILT_READ, EVFILT_WRITE] {
        let kq = kq(p);
        let (a, _a_peer) = pair_at(n);
        ch_ok(&kq, &[rd(n as usize, EV_ADD, 1), wr(n as usize, EV_ADD, 2)]);
        assert_eq!(poll(&kq, 4).len(), 1, "WRITE: the socket is writable");
        drop(a);
        let (b, b_peer) = pair_at(n);
        let del = |f| Kevent::new(n as usize, f, EV_DELETE, 0, 0, std::ptr::null_mut());
        let second = if first == EVFILT_READ {
            EVFILT_WRITE
        } else {
            EVFILT_READ
        };
        ch_err(&kq, &[del(first)], libc::ENOENT);
        ch_err(&kq, &[del(second)], libc::ENOENT);
        put(&b_peer, 1);
        expect_no_events(&kq);
        drop(b);
    }

    // Still the same file: EV_DELETE of READ leaves WRITE, then WRITE goes too.
    let kq = kq(p);
    let (a, a_peer) = stream_pair();
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 1), wr(id(&a), EV_ADD, 2)]);
    ch_ok(&kq, &[rd(id(&a), EV_DELETE, 0)]);
    put(&a_peer, 1);
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, udata(&ev)), (EVFILT_WRITE, 2));
    ch_ok(&kq, &[wr(id(&a), EV_DELETE, 0)]);
    expect_no_events(&kq);
    ch_err(&kq, &[rd(id(&a), EV_DELETE, 0)], libc::ENOENT);
    // Added again: the byte already there is reported at once.
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 3)]);
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, ev.data, udata(&ev)), (EVFILT_READ, 1, 3));
}

/// A number closed without our hearing of it while its file lives on through a dup leaves
/// that file's registration in the epoll under the number. When the number later names
/// that old file again (dup2), while the kqueue's knote on the number belongs to another
/// file registered in between (closed unseen as well, with its level-triggered event
/// pending), epoll finds a registration for the number's file, but not the knote's:
/// nothing is reported through that knote, whose file is gone, though the old file is
/// readable; EV_ADD then makes a fresh knote for the old file.
fn g23_number_back_on_an_old_file_reports_nothing(p: Personality) {
    let kq = kq(p);
    let n = number(p, 2);
    let ni = n as usize;
    let (a, a_peer) = pair_at(n);
    let keep_a = dup(&a);
    ch_ok(&kq, &[rd(ni, EV_ADD, 1)]);
    drop(a); // unseen: A's registration stays in the epoll under n
    let (b, b_peer) = pair_at(n);
    ch_ok(&kq, &[rd(ni, EV_ADD, 2)]); // A's knote found stale, B registered
    expect_no_events(&kq);
    put(&b_peer, 1);
    let ev = expect_one(&kq);
    assert_eq!((ev.data, udata(&ev)), (1, 2));
    drop(b); // unseen again: B's file is gone, its record still queued
             // SAFETY: n is this test's reserved number, free again; it becomes a copy of A.
    assert_eq!(
        unsafe { libc::dup3(keep_a.as_raw_fd(), n, libc::O_CLOEXEC) },
        n
    );
    // SAFETY: n is ours now.
    let a_again = unsafe { OwnedFd::from_raw_fd(n) };
    put(&a_peer, 4);
    expect_no_events(&kq);
    // A change finds B's knote stale as well.
    ch_err(&kq, &[rd(ni, EV_DELETE, 0)], libc::ENOENT);
    ch_ok(&kq, &[rd(ni, EV_ADD, 3)]);
    let ev = expect_one(&kq);
    assert_fd_event(&ev, ni, EVFILT_READ, delivered_flags(p, EV_ADD), 4);
    assert_eq!(udata(&ev), 3);
    put(&a_peer, 1);
    assert_eq!(expect_one(&kq).data, 5);
    ch_ok(&kq, &[rd(ni, EV_DELETE, 0)]);
    put(&a_peer, 1);
    expect_no_events(&kq);
    drop((a_again, keep_a));
}

/// An outer kqueue watches a dup() of the inner kqueue's descriptor, a number the library
/// has not seen: EVFILT_READ reports the inner's pending events under that number;
/// EVFILT_WRITE on it is EINVAL, and so is EVFILT_READ on a dup of the outer itself.
fn u37_outer_watches_an_unseen_dup_of_the_inner(p: Personality) {
    let inner = kq(p);
    let outer = kq(p);
    let dup_inner = dup(&inner.as_fd());
    let di = id(&dup_inner);
    ch_ok(&outer, &[rd(di, EV_ADD, 7)]);
    ch_err(&outer, &[wr(di, EV_ADD, 0)], libc::EINVAL);
    expect_no_events(&outer);
    ch_ok(&inner, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    trigger(&inner, 1);
    let ev = expect_one(&outer);
    assert_eq!(
        (ev.ident, ev.filter, ev.data, udata(&ev)),
        (di, EVFILT_READ, 1, 7)
    );
    assert_eq!(poll(&inner, 4).len(), 1);
    expect_no_events(&outer);
    let dup_outer = dup(&outer.as_fd());
    ch_err(&outer, &[rd(id(&dup_outer), EV_ADD, 0)], libc::EINVAL);
}

/// A copy of a Rust-owned kqueue's descriptor, seen once by the library and then closed
/// behind its back, whose number becomes a copy of another kqueue: the number names the
/// second kqueue now. Its owner keeps only its own number from being closed unseen, not
/// the copies, so EVFILT_READ of it on the second kqueue is EINVAL (a kqueue watching
/// itself), and another kqueue watching it sees the second kqueue's events.
fn u37_copy_of_an_owned_kqueue_closed_unseen_and_reused(p: Personality) {
    let first = kq(p);
    let second = kq(p);
    let watcher = kq(p);
    let n = number(p, 3);
    let copy = move_to(dup(&first.as_fd()), n);
    let ni = id(&copy);
    // The library learns that n is a copy of the first kqueue when it looks at it.
    ch_ok(&second, &[rd(ni, EV_ADD, 1)]);
    ch_ok(&first, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    trigger(&first, 1);
    assert_eq!(udata(&expect_one(&second)), 1);
    ch_ok(&second, &[rd(ni, EV_DELETE, 0)]);
    drop(copy); // closed unseen; the first kqueue lives on, its event still pending
    let copy = move_to(dup(&second.as_fd()), n);
    ch_err(&second, &[rd(ni, EV_ADD, 0)], libc::EINVAL);
    ch_ok(&watcher, &[rd(ni, EV_ADD, 2)]);
    expect_no_events(&watcher);
    ch_ok(&second, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    trigger(&second, 1);
    let ev = expect_one(&watcher);
    assert_eq!((ev.ident, ev.data, udata(&ev)), (ni, 1, 2));
    drop(copy);
}

/// Descriptors of several pollable kinds registered with EV_ADD of EVFILT_READ while idle,
/// then made readable: each is looked at when it first becomes ready and reports as its
/// kind does (pipe: bytes; eventfd: readable; listening socket: its queue).
fn r7_kinds_looked_at_when_ready(p: Personality) {
    let kq = kq(p);
    let (pr, pw) = pipe();
    let efd = eventfd();
    let listener = tcp_listener();
    ch_ok(
        &kq,
        &[
            rd(id(&pr), EV_ADD, 1),
            rd(id(&efd), EV_ADD, 2),
            rd(listener.as_raw_fd() as usize, EV_ADD, 3),
        ],
    );
    expect_no_events(&kq);
    put(&pw, 5);
    put_bytes(&efd, &1u64.to_ne_bytes());
    let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let mut seen = Vec::new();
    for _ in 0..100 {
        for ev in get(&kq, 8, Some(Duration::from_millis(20))) {
            if !seen.iter().any(|e: &Kevent| e.ident == ev.ident) {
                seen.push(ev);
            }
        }
        if seen.len() == 3 {
            break;
        }
    }
    seen.sort_by_key(udata);
    let got: Vec<usize> = seen.iter().map(udata).collect();
    assert_eq!(got, [1, 2, 3], "{seen:?}");
    assert_eq!((seen[0].data, seen[2].data), (5, 1), "{seen:?}");
    assert_eq!(take(&efd, 8), 8);
    assert_eq!(take(&pr, 5), 5);
    let _conn = accept(&listener);
    expect_no_events(&kq);
}

both!(
    r1_add_on_ready_socket_reports_in_the_same_call,
    g11_add_on_closed_number_is_ebadf,
    r1_delete_checks_the_number,
    g23_number_back_on_an_old_file_reports_nothing,
    u37_outer_watches_an_unseen_dup_of_the_inner,
    u37_copy_of_an_owned_kqueue_closed_unseen_and_reused,
    r7_kinds_looked_at_when_ready,
);
