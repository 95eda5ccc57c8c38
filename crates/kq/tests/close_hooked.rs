//! Raw kqueue descriptors (as C's `kqueue()` hands them out) in a process whose close()
//! reports to the library (`kq::set_close_hooked`, as the C library's interposed close()
//! says), closed all the same by a raw system call, and their numbers taken by another
//! file. A kqueue watching the number watches that file, never the closed kqueue. The
//! `kevent()` lookup of a call's own kqueue trusts the library's table there (it makes no
//! system call), so kevent() on the number still reaches the closed kqueue until the
//! number's new file is closed: the documented limit (README, kqueue(3)). Each test runs
//! in a process of its own (the setting is process-wide).

#[macro_use]
mod isolated;
mod fdutil;
mod util;

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use fdutil::*;
use kq::*;
use util::*;

/// A raw kqueue of personality `p` with user event 1 triggered, its descriptor then closed
/// by a raw system call; returns its (now free) number.
fn closed_raw_kqueue_with_event(p: Personality) -> RawFd {
    kq::set_close_hooked(true);
    let n = Kqueue::new_raw_fd(p).unwrap();
    // SAFETY: n is open until the raw close below.
    let kq = Kqueue::find(unsafe { BorrowedFd::borrow_raw(n) }).unwrap();
    ch_ok(&kq, &[user(1, EV_ADD, 0, 0)]);
    trigger(&kq, 1);
    assert_eq!(poll(&kq, 4).len(), 1);
    drop(kq);
    // SAFETY: closes the number this test owns, behind the library's back.
    assert_eq!(unsafe { libc::syscall(libc::SYS_close, n) }, 0);
    n
}

/// A copy of `fd` on the free number `n` (F_DUPFD takes the lowest free number from `n`
/// up).
fn onto(fd: &OwnedFd, n: RawFd) -> OwnedFd {
    // SAFETY: duplicates a descriptor we own onto a free number.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, n) };
    assert_eq!(r, n, "the number was taken meanwhile");
    // SAFETY: r is a new descriptor of ours.
    unsafe { OwnedFd::from_raw_fd(r) }
}

/// G3 bad_kq_fd: the number of a kqueue closed unseen now names a socket: another kqueue
/// watching the number watches the socket. kevent() on the number reaches the closed
/// kqueue (the documented limit) until the socket is closed through the library.
fn g3_closed_kqueue_number_now_a_socket(p: Personality) {
    let (a, b) = stream_pair();
    let n = closed_raw_kqueue_with_event(p);
    let a = onto(&a, n);
    let watcher = kq(p);
    ch_ok(&watcher, &[rd(id(&a), EV_ADD, 7)]);
    expect_no_events(&watcher);
    put(&b, 3);
    let ev = expect_one(&watcher);
    assert_eq!((ev.ident, ev.filter, ev.data), (id(&a), EVFILT_READ, 3));
    take(&a, 3);
    // The documented limit: the table still names the closed kqueue, whose user event is
    // there; a close of the number seen by the library lets it go.
    let closed = Kqueue::find(a.as_fd_borrowed()).expect("the closed kqueue, by its table entry");
    assert_eq!(poll(&closed, 4).len(), 1);
    drop(closed);
    fdclose_and_close(a);
    // SAFETY: n is closed now; it is only looked up, never used.
    let gone = Kqueue::find(unsafe { BorrowedFd::borrow_raw(n) }).err();
    assert_eq!(gone.and_then(|e| e.raw_os_error()), Some(libc::EBADF));
}

/// G3 bad_kq_fd: the number of a kqueue closed unseen now names a copy of another kqueue:
/// a kqueue watching the number watches that other kqueue, with nothing of the closed one.
fn g3_closed_kqueue_number_now_another_kqueue(p: Personality) {
    let other = Kqueue::new_raw_fd(p).unwrap();
    // SAFETY: `other` is a raw kqueue descriptor this test owns.
    let other = unsafe { OwnedFd::from_raw_fd(other) };
    let n = closed_raw_kqueue_with_event(p);
    let copy = onto(&other, n);
    let theirs = Kqueue::find(other.as_fd_borrowed()).unwrap();
    ch_ok(&theirs, &[user(2, EV_ADD | EV_CLEAR, 0, 0)]);
    let watcher = kq(p);
    ch_ok(&watcher, &[rd(id(&copy), EV_ADD, 7)]);
    // The closed kqueue's pending event is not the copy's.
    expect_no_events(&watcher);
    trigger(&theirs, 2);
    let ev = expect_one(&watcher);
    assert_eq!((ev.ident, ev.filter, ev.data), (id(&copy), EVFILT_READ, 1));
    assert_eq!(expect_one(&theirs).ident, 2);
    expect_no_events(&watcher);
}

/// G3 bad_kq_fd, in the middle of an interposed close(): between `fdclose_begin` and
/// `fdclose_end` the number is closed and another file (a pipe) takes it. A kevent() lookup
/// of the number then fails with EBADF: the table no longer vouches for a number being
/// closed. Before the close, the number still finds its kqueue.
fn g3_number_reused_between_fdclose_begin_and_end(p: Personality) {
    kq::set_close_hooked(true);
    let n = Kqueue::new_raw_fd(p).unwrap();
    let token = kq::fdclose_begin(n);
    // SAFETY: n is open until the raw close below.
    let still = Kqueue::find(unsafe { BorrowedFd::borrow_raw(n) }).map(|_| ());
    assert!(still.is_ok(), "{still:?}");
    let (r, w) = pipe();
    // SAFETY: closes the number this test owns (as the C library's close() does).
    assert_eq!(unsafe { libc::syscall(libc::SYS_close, n) }, 0);
    let r = onto(&r, n);
    let err = Kqueue::find(r.as_fd_borrowed()).err();
    assert_eq!(err.and_then(|e| e.raw_os_error()), Some(libc::EBADF));
    kq::fdclose_end(n, token);
    put(&w, 1);
    let err = Kqueue::find(r.as_fd_borrowed()).err();
    assert_eq!(err.and_then(|e| e.raw_os_error()), Some(libc::EBADF));
    assert_eq!(take(&r, 1), 1);
}

/// `BorrowedFd` of an `OwnedFd`, by name (`as_fd` is ambiguous with the test helpers).
trait Borrowed {
    fn as_fd_borrowed(&self) -> BorrowedFd<'_>;
}

impl Borrowed for OwnedFd {
    fn as_fd_borrowed(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }
}

isolated_both!(
    g3_closed_kqueue_number_now_a_socket,
    g3_closed_kqueue_number_now_another_kqueue,
    g3_number_reused_between_fdclose_begin_and_end,
);
