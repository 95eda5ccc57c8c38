//! Knotes of descriptor filters belong to the descriptor *number*: what closing, reusing
//! and duplicating a number does to them, with the library told of the close
//! ([`kq::fdclose`], what an interposed close() does) and without (a Rust program that
//! just closes the descriptor).
//!
//! Numbers that must be reused are placed with dup3 onto a reserved number far above the
//! ones other tests get, so tests running in parallel cannot take them in between.

mod fdutil;
mod util;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

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
    reserved_number(2 * k + i)
}

/// A stream socket pair whose first end sits at descriptor number `n`.
fn pair_at(n: RawFd) -> (OwnedFd, OwnedFd) {
    let (a, b) = stream_pair();
    (move_to(a, n), b)
}

/// fdclose then close: READ and WRITE knotes of the number are gone from every kqueue at
/// once and silently, including an event already pending (a level record collected once
/// is queued again); EV_DELETE then fails with ENOENT (the number still open between
/// fdclose and close, and again once the number is reused), and with EBADF while the
/// number is closed.
fn fdclose_drops_knotes_in_every_kqueue(p: Personality) {
    let kq1 = kq(p);
    let kq2 = kq(p);
    let n = number(p, 0);
    let (a, b) = pair_at(n);
    let ai = n as usize;
    ch_ok(&kq1, &[rd(ai, EV_ADD, 1), wr(ai, EV_ADD, 2)]);
    ch_ok(&kq2, &[rd(ai, EV_ADD | EV_CLEAR, 3)]);
    put(&b, 5);
    assert_eq!(poll(&kq1, 8).len(), 2);
    // kq1's two level records are queued again; kq2's EV_CLEAR record was never collected.
    kq::fdclose(n);
    expect_no_events(&kq1);
    expect_no_events(&kq2);
    for kq in [&kq1, &kq2] {
        ch_err(kq, &[rd(ai, EV_DELETE, 0)], libc::ENOENT);
    }
    ch_err(&kq1, &[wr(ai, EV_DELETE, 0)], libc::ENOENT);
    drop(a);
    for kq in [&kq1, &kq2] {
        ch_err(kq, &[rd(ai, EV_DELETE, 0)], libc::EBADF);
    }
    // The number reused by a new socket: still no knote.
    let (_c, d) = pair_at(n);
    put(&d, 1);
    for kq in [&kq1, &kq2] {
        expect_no_events(kq);
        ch_err(kq, &[rd(ai, EV_DELETE, 0)], libc::ENOENT);
    }
    drop(b);
}

/// fdclose touches only its own number: knotes of other descriptors (of the same file,
/// through a dup, and of other files) keep firing; fdclose of a number that carries no
/// knote, or is not open, changes nothing.
fn fdclose_spares_other_numbers(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    let d = dup(&a);
    let (x, y) = pipe();
    ch_ok(
        &kq,
        &[
            rd(id(&a), EV_ADD, 1),
            rd(id(&d), EV_ADD, 2),
            rd(id(&x), EV_ADD, 3),
        ],
    );
    kq::fdclose(id(&y) as RawFd);
    kq::fdclose(closed_number() as RawFd);
    fdclose_and_close(d);
    put(&b, 1);
    put(&y, 1);
    let mut got: Vec<usize> = poll(&kq, 8).iter().map(udata).collect();
    got.sort();
    assert_eq!(got, [1, 3]);
}

/// `kq::fd_tracked`: false for a number with no knote, true once a READ knote is on it,
/// false again after fdclose.
fn fd_tracked_follows_knotes(p: Personality) {
    let kq = kq(p);
    let (a, _b) = stream_pair();
    let fd = a.as_raw_fd();
    assert!(!kq::fd_tracked(fd));
    ch_ok(&kq, &[rd(fd as usize, EV_ADD, 1)]);
    assert!(kq::fd_tracked(fd));
    kq::fdclose(fd);
    assert!(!kq::fd_tracked(fd));
    drop(a);
}

/// Closed without EV_DELETE and without fdclose, while the file lives on through a dup
/// at another number: the knote of the closed number never fires, whether the file
/// becomes readable only after the close, or was readable before it and its record was
/// pending (level, collected once and queued again; or EV_CLEAR, never collected).
fn closed_number_never_fires(p: Personality) {
    for (k, flags, pending) in [
        (1, EV_ADD, false),
        (2, EV_ADD, true),
        (3, EV_ADD | EV_CLEAR, true),
    ] {
        eprintln!("flags {flags:#x}, pending before close: {pending}");
        let kq = kq(p);
        let n = number(p, k);
        let (a, b) = pair_at(n);
        let keep = dup(&a);
        ch_ok(&kq, &[rd(n as usize, flags, 1)]);
        if pending {
            put(&b, 2);
            if flags & EV_CLEAR == 0 {
                assert_eq!(expect_one(&kq).data, 2);
            }
        }
        drop(a);
        put(&b, 3);
        expect_no_events(&kq);
        expect_no_events(&kq);
        assert!(fionread(&keep) > 0, "the file itself is readable");
    }
}

/// A closed number reused by another file: READ on socket A (udata 1), A made readable
/// and its record pending, A closed without EV_DELETE or fdclose; socket B gets the same
/// number and is registered with EV_ADD|EV_CLEAR and udata 2. The new knote is fresh:
/// nothing is reported until B has data (no stale record of A), then only udata 2, B's
/// byte count and the new knote's own flags (EV_CLEAR, where A's was level). Nothing of A
/// is ever reported, whether A's file is gone or lives on (and keeps getting data) through
/// a dup.
fn reused_number_gets_a_fresh_knote(p: Personality) {
    for (k, keep_a) in [(4, false), (5, true)] {
        eprintln!("A's file kept open through a dup: {keep_a}");
        let kq = kq(p);
        let n = number(p, k);
        let ni = n as usize;
        let (a, a_peer) = pair_at(n);
        let a_dup = keep_a.then(|| dup(&a));
        ch_ok(&kq, &[rd(ni, EV_ADD, 1)]);
        put(&a_peer, 7);
        let ev = expect_one(&kq);
        assert_eq!((udata(&ev), ev.data), (1, 7));
        drop(a);
        let (b, b_peer) = pair_at(n);
        ch_ok(&kq, &[rd(ni, EV_ADD | EV_CLEAR, 2)]);
        expect_no_events(&kq);
        if keep_a {
            put(&a_peer, 1);
        }
        expect_no_events(&kq);
        put(&b_peer, 3);
        let ev = expect_one(&kq);
        assert_fd_event(
            &ev,
            ni,
            EVFILT_READ,
            delivered_flags(p, EV_ADD | EV_CLEAR),
            3,
        );
        assert_eq!(udata(&ev), 2);
        // EV_CLEAR: not again until B gets more.
        if keep_a {
            put(&a_peer, 1);
        }
        expect_no_events(&kq);
        put(&b_peer, 1);
        let ev = expect_one(&kq);
        assert_eq!((udata(&ev), ev.data), (2, 4));
        ch_ok(&kq, &[rd(ni, EV_DELETE, 0)]);
        if keep_a {
            put(&a_peer, 1);
        }
        put(&b_peer, 1);
        expect_no_events(&kq);
        drop((a_dup, b));
    }
}

/// After a close without EV_DELETE or fdclose, the number reused by another file carries
/// no knote until one is added: EV_DELETE, EV_ENABLE and EV_DISABLE fail with ENOENT, and
/// the new file's data is not reported.
fn reused_number_has_no_knote(p: Personality) {
    let kq = kq(p);
    let n = number(p, 6);
    let ni = n as usize;
    let (a, _a_peer) = pair_at(n);
    ch_ok(&kq, &[rd(ni, EV_ADD, 1), wr(ni, EV_ADD, 2)]);
    drop(a);
    let (_b, b_peer) = pair_at(n);
    put(&b_peer, 1);
    expect_no_events(&kq);
    for flags in [EV_ENABLE, EV_DISABLE, EV_DELETE] {
        ch_err(&kq, &[rd(ni, flags, 1)], libc::ENOENT);
        ch_err(&kq, &[wr(ni, flags, 2)], libc::ENOENT);
    }
}

/// dup2 over a registered number replaces its file: with fdclose first (what an
/// interposed dup2 does) EV_DELETE then fails with ENOENT; with or without it, neither the
/// old file's nor the new file's data is reported through the old knote.
fn dup2_over_registered_number(p: Personality) {
    for (k, tell) in [(7, true), (8, false)] {
        eprintln!("fdclose before dup2: {tell}");
        let kq = kq(p);
        let n = number(p, k);
        let ni = n as usize;
        let (a, a_peer) = pair_at(n);
        let a_dup = dup(&a);
        ch_ok(&kq, &[rd(ni, EV_ADD, 1)]);
        let (b, b_peer) = stream_pair();
        if tell {
            kq::fdclose(n);
        }
        // dup3 over the open number closes A's descriptor n and puts B's file there.
        // SAFETY: n is this test's own reserved number, owned by `a`.
        let r = unsafe { libc::dup3(b.as_raw_fd(), n, libc::O_CLOEXEC) };
        assert_eq!(r, n);
        let b_at_n = a; // `a` now owns number n, which refers to B's file.
        drop(b);
        if tell {
            ch_err(&kq, &[rd(ni, EV_DELETE, 0)], libc::ENOENT);
        }
        put(&a_peer, 1);
        put(&b_peer, 1);
        expect_no_events(&kq);
        expect_no_events(&kq);
        assert_eq!(fionread(&b_at_n), 1);
        drop(a_dup);
    }
}

/// Closing a dup of a registered descriptor (with fdclose or without) leaves the knote of
/// the original number alone; when both numbers carry knotes, only the closed number's
/// knote goes (NetBSD t_vnode `interest`, on a socket).
fn closing_a_dup_spares_the_original(p: Personality) {
    for tell in [false, true] {
        for both_registered in [false, true] {
            eprintln!("fdclose: {tell}, both numbers registered: {both_registered}");
            let kq = kq(p);
            let (a, b) = stream_pair();
            let d = dup(&a);
            ch_ok(&kq, &[rd(id(&a), EV_ADD, 1)]);
            if both_registered {
                ch_ok(&kq, &[rd(id(&d), EV_ADD, 2)]);
            }
            if tell {
                fdclose_and_close(d);
            } else {
                drop(d);
            }
            put(&b, 3);
            let ev = expect_one(&kq);
            assert_fd_event(&ev, id(&a), EVFILT_READ, delivered_flags(p, EV_ADD), 3);
            assert_eq!(udata(&ev), 1);
            assert_eq!(expect_one(&kq).ident, id(&a));
            ch_ok(&kq, &[rd(id(&a), EV_DELETE, 0)]);
            expect_no_events(&kq);
        }
    }
}

both!(
    fdclose_drops_knotes_in_every_kqueue,
    fdclose_spares_other_numbers,
    fd_tracked_follows_knotes,
    closed_number_never_fires,
    reused_number_gets_a_fresh_knote,
    reused_number_has_no_knote,
    dup2_over_registered_number,
    closing_a_dup_spares_the_original,
);
