//! Raw kqueue descriptors (as C's `kqueue()` hands them out) in a process whose close()
//! reports to the library (`kq::set_close_hooked`, as the C library's interposed close()
//! says), closed all the same by a raw system call, and their numbers taken by another
//! file: `kevent()` on the number is about that file, never the closed kqueue. Each test
//! runs in a process of its own (the setting is process-wide).

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

/// G3 bad_kq_fd: the number of a kqueue closed unseen now names a socket: kevent() on it
/// fails with EBADF, and another kqueue watching the number watches the socket.
fn g3_closed_kqueue_number_now_a_socket(p: Personality) {
    let (a, b) = stream_pair();
    let n = closed_raw_kqueue_with_event(p);
    let a = onto(&a, n);
    let err = Kqueue::find(a.as_fd_borrowed()).err();
    assert_eq!(err.and_then(|e| e.raw_os_error()), Some(libc::EBADF));
    let watcher = kq(p);
    ch_ok(&watcher, &[rd(id(&a), EV_ADD, 7)]);
    expect_no_events(&watcher);
    put(&b, 3);
    let ev = expect_one(&watcher);
    assert_eq!((ev.ident, ev.filter, ev.data), (id(&a), EVFILT_READ, 3));
}

/// G3 bad_kq_fd: the number of a kqueue closed unseen now names a copy of another kqueue:
/// kevent() on it works on that kqueue, with nothing of the closed one.
fn g3_closed_kqueue_number_now_another_kqueue(p: Personality) {
    let other = Kqueue::new_raw_fd(p).unwrap();
    // SAFETY: `other` is a raw kqueue descriptor this test owns.
    let other = unsafe { OwnedFd::from_raw_fd(other) };
    let n = closed_raw_kqueue_with_event(p);
    let copy = onto(&other, n);
    let theirs = Kqueue::find(other.as_fd_borrowed()).unwrap();
    ch_ok(&theirs, &[user(2, EV_ADD | EV_CLEAR, 0, 0)]);
    let mine = Kqueue::find(copy.as_fd_borrowed()).unwrap();
    expect_no_events(&mine);
    assert_eq!(
        ch(&mine, &[user(1, 0, NOTE_TRIGGER, 0)])
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENOENT)
    );
    trigger(&mine, 2);
    assert_eq!(expect_one(&theirs).ident, 2);
    trigger(&theirs, 2);
    assert_eq!(expect_one(&mine).ident, 2);
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
);
