//! The engine's side of an interposed close(), dup(), dup2() and dup3() of raw kqueue
//! descriptors (as C's `kqueue()` hands them out) in the hard cases: a close that did not
//! happen (cancellation acted first), a number replaced by a copy, copies recorded with no
//! fork() in between, the number of a closed kqueue taken by one of the library's own
//! descriptors, and closes reported by a signal handler while the thread is inside the
//! library (`kq::library_call`), whose work is done when the call returns. Each test runs
//! in a process of its own (close reporting and signal actions are process-wide).

#[macro_use]
mod isolated;
mod fdutil;
mod util;

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use fdutil::*;
use kq::*;
use util::*;

/// A raw kqueue of personality `p` (close reporting on, as the C library sets it) with
/// user event 1 triggered.
fn raw_kqueue_with_event(p: Personality) -> RawFd {
    kq::set_close_hooked(true);
    let n = Kqueue::new_raw_fd(p).unwrap();
    let kq = find(n).unwrap();
    ch_ok(&kq, &[user(1, EV_ADD, 0, 0)]);
    trigger(&kq, 1);
    n
}

/// `Kqueue::find` of a number.
fn find(n: RawFd) -> std::io::Result<KqueueRef<'static>> {
    // SAFETY: only looked up; the library checks whether it is an open kqueue.
    Kqueue::find(unsafe { BorrowedFd::borrow_raw(n) })
}

fn find_errno(n: RawFd) -> Option<i32> {
    find(n).err().and_then(|e| e.raw_os_error())
}

/// Closes number `n` behind the library's back (as the C library's close() does between
/// `fdclose_begin` and `fdclose_end`).
fn raw_close(n: RawFd) {
    // SAFETY: closes a number this test owns.
    assert_eq!(unsafe { libc::syscall(libc::SYS_close, n) }, 0);
}

/// A copy of `n` made through the library (as an interposed dup() does).
fn recorded_dup(n: RawFd) -> RawFd {
    // SAFETY: dup of a number this test owns.
    let d = kq::fddup(n, || unsafe { libc::dup(n) });
    assert!(d >= 0);
    d
}

/// Whether a fork() child finds every number of `fds` closed.
fn child_has_none_of(fds: &[RawFd]) -> bool {
    // SAFETY: the child only calls fcntl and _exit.
    match unsafe { libc::fork() } {
        0 => {
            let open = fds.iter().any(|&n| is_open(n));
            // SAFETY: ends the child without running the parent's handlers.
            unsafe { libc::_exit(i32::from(open)) }
        }
        pid => {
            assert!(pid > 0);
            let mut st = 0;
            // SAFETY: waits for our child.
            assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
            libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0
        }
    }
}

/// `fd` on number `n`, which is free (or is `fd`'s already: the lowest free number).
fn onto(fd: OwnedFd, n: RawFd) -> OwnedFd {
    if fd.as_raw_fd() == n {
        fd
    } else {
        move_to(fd, n)
    }
}

/// Descriptors open in this process.
fn open_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count() - 1
}

/// G2 close(kq) ended by a cancellation before it closed: `fdclose_end_checked` finds the
/// number still open and keeps it as the kqueue's (events, and trusted lookups); a close
/// that happens afterwards releases the kqueue.
fn g2_cancelled_close_keeps_the_number(p: Personality) {
    let before = open_count();
    let n = raw_kqueue_with_event(p);
    let token = kq::fdclose_begin(n);
    assert_ne!(token, 0);
    // The close did not happen.
    kq::fdclose_end_checked(n, token);
    let kq = find(n).expect("still the kqueue");
    assert_eq!(poll(&kq, 4).len(), 1);
    trigger(&kq, 1);
    drop(kq);
    fdclose_and_close(
        // SAFETY: n is the kqueue number this test owns.
        unsafe { OwnedFd::from_raw_fd(n) },
    );
    assert_eq!(find_errno(n), Some(libc::EBADF));
    assert_eq!(open_count(), before);
}

/// G2 a cancelled close() that did close (the cancellation acted after the system call),
/// and whose number a pipe took since: `fdclose_end_checked` forgets it, the kqueue is
/// released, and the pipe is no kqueue.
fn g2_cancelled_close_that_closed_forgets_the_number(p: Personality) {
    let before = open_count();
    let n = raw_kqueue_with_event(p);
    let token = kq::fdclose_begin(n);
    raw_close(n);
    let (r, w) = pipe();
    let r = onto(r, n);
    kq::fdclose_end_checked(n, token);
    assert_eq!(find_errno(n), Some(libc::EBADF));
    put(&w, 1);
    assert_eq!(take(&r, 1), 1);
    drop((r, w));
    assert_eq!(open_count(), before);
}

/// U35 copies made by `fddup` (dup(), dup2() onto a chosen number) are the kqueue's
/// numbers at once: a fork() right after, with no kevent() on them, leaves the child none
/// of them open; each copy works, the kqueue lives until the last is closed.
fn u35_recorded_copies_not_inherited(p: Personality) {
    let before = open_count();
    let n = raw_kqueue_with_event(p);
    let d = recorded_dup(n);
    let high = reserved_number(1);
    // SAFETY: dup2 onto a reserved number.
    let d2 = kq::fddup(n, || unsafe { libc::dup2(n, high) });
    assert_eq!(d2, high);
    assert!(child_has_none_of(&[n, d, d2]));
    for (i, &c) in [n, d, d2].iter().enumerate() {
        let kq = find(c).expect("a copy of the kqueue");
        if i == 0 {
            assert_eq!(poll(&kq, 4).len(), 1);
        }
        trigger(&kq, 1);
        drop(kq);
        fdclose_and_close(
            // SAFETY: c is a number this test owns.
            unsafe { OwnedFd::from_raw_fd(c) },
        );
        assert_eq!(find_errno(c), Some(libc::EBADF));
    }
    assert_eq!(open_count(), before);
}

/// U35 dup2() of a kqueue number over a number of the same kqueue: the number was marked
/// as being closed, and `fdclose_end_checked` finds it is the kqueue still: it stays one of
/// its numbers (a fork's child does not keep it; the kqueue lives in it alone).
fn u35_copy_over_own_number_stays(p: Personality) {
    let before = open_count();
    let n = raw_kqueue_with_event(p);
    let d = recorded_dup(n);
    let token = kq::fdclose_begin(d);
    // SAFETY: dup2 over a number this test owns.
    assert_eq!(kq::fddup(n, || unsafe { libc::dup2(n, d) }), d);
    kq::fdclose_end_checked(d, token);
    fdclose_and_close(
        // SAFETY: n is a number this test owns.
        unsafe { OwnedFd::from_raw_fd(n) },
    );
    assert!(child_has_none_of(&[d]));
    let kq = find(d).expect("the kqueue, through its copy");
    assert_eq!(poll(&kq, 4).len(), 1);
    drop(kq);
    fdclose_and_close(
        // SAFETY: d is a number this test owns.
        unsafe { OwnedFd::from_raw_fd(d) },
    );
    assert_eq!(open_count(), before);
}

/// G3 the number of a closed kqueue number (the kqueue lives on in a copy) taken by the
/// epoll of the next kqueue: a lookup of it fails with EBADF (it is the library's own),
/// and both kqueues are released when their numbers are closed.
fn g3_number_taken_by_library_epoll(p: Personality) {
    let before = open_count();
    let mut seen = false;
    for _ in 0..10 {
        let old = raw_kqueue_with_event(p);
        let copy = recorded_dup(old);
        fdclose_and_close(
            // SAFETY: old is a number this test owns.
            unsafe { OwnedFd::from_raw_fd(old) },
        );
        let next = Kqueue::new_raw_fd(p).unwrap();
        if next != old && is_open(old) {
            seen = true;
            assert_eq!(find_errno(old), Some(libc::EBADF));
        }
        for n in [copy, next] {
            fdclose_and_close(
                // SAFETY: a number this test owns.
                unsafe { OwnedFd::from_raw_fd(n) },
            );
        }
        assert_eq!(open_count(), before);
    }
    assert!(seen, "the next kqueue's epoll never took the closed number");
}

/// The number a signal handler closes (reporting it as an interposed close() does).
static HANDLER_CLOSES: AtomicI32 = AtomicI32::new(-1);

extern "C" fn close_in_handler(_: libc::c_int) {
    let n = HANDLER_CLOSES.swap(-1, Ordering::SeqCst);
    if n >= 0 {
        let token = kq::fdclose_begin(n);
        // SAFETY: closes the number the test handed over.
        unsafe { libc::syscall(libc::SYS_close, n) };
        kq::fdclose_end(n, token);
    }
}

fn install_handler() {
    // SAFETY: installs an extern "C" handler that only uses atomics, async-signal-safe
    // calls and the library's async-signal-safe path.
    unsafe {
        libc::signal(
            libc::SIGUSR1,
            close_in_handler as *const () as libc::sighandler_t,
        )
    };
}

/// Runs `f` inside a library call, with a signal handler closing `n` in the middle.
fn handler_closes_inside_call(n: RawFd, f: impl FnOnce()) {
    kq::library_call(|| {
        HANDLER_CLOSES.store(n, Ordering::SeqCst);
        // SAFETY: raises a signal whose handler is installed.
        unsafe { libc::raise(libc::SIGUSR1) };
        assert_eq!(HANDLER_CLOSES.load(Ordering::SeqCst), -1);
        f();
    });
}

/// G2 close() of a kqueue number from a signal handler while the thread is inside the
/// library: the number is closed at once, no lookup takes it for the kqueue any more
/// (even before the interrupted call ends), and once the call returns the kqueue is
/// released (no descriptor left) and a kqueue watching the number has no knote left.
fn g2_handler_closes_kqueue_inside_call(p: Personality) {
    install_handler();
    let before = open_count();
    let watcher = kq(p);
    let n = raw_kqueue_with_event(p);
    ch_ok(&watcher, &[rd(n as usize, EV_ADD, 7)]);
    assert_eq!(poll(&watcher, 4).len(), 1);
    handler_closes_inside_call(n, || {
        assert!(!is_open(n));
        assert_eq!(find_errno(n), Some(libc::EBADF));
    });
    assert!(
        !kq::fd_tracked(n),
        "the number is still known after the call"
    );
    expect_no_events(&watcher);
    drop(watcher);
    assert_eq!(open_count(), before);
}

/// G23 close() of a watched pipe from a signal handler inside a library call, the number
/// then taken by another pipe and registered again before the call ends: the new knote
/// stays (the work kept for the end of the call drops only the closed file's), and fires
/// for the new pipe. Without the new registration the knote is dropped at the call's end.
fn g23_handler_closes_watched_pipe_inside_call(p: Personality) {
    install_handler();
    let watcher = kq(p);
    let (r, w) = pipe();
    let n = r.as_raw_fd();
    std::mem::forget(r);
    ch_ok(&watcher, &[rd(n as usize, EV_ADD, 1)]);
    let mut kept = None;
    handler_closes_inside_call(n, || {
        let (r2, w2) = pipe();
        let r2 = onto(r2, n);
        ch_ok(&watcher, &[rd(n as usize, EV_ADD, 2)]);
        kept = Some((r2, w2));
    });
    let (r2, w2) = kept.unwrap();
    put(&w2, 3);
    let ev = expect_one(&watcher);
    assert_eq!(
        (ev.ident, ev.filter, ev.data, udata(&ev)),
        (n as usize, EVFILT_READ, 3, 2)
    );
    drop(w);
    // Now closed in a handler with nothing registered again: the knote goes.
    let n2 = r2.as_raw_fd();
    std::mem::forget(r2);
    handler_closes_inside_call(n2, || {});
    assert!(
        !kq::fd_tracked(n2),
        "the closed pipe's knote is still there"
    );
    expect_no_events(&watcher);
    drop(w2);
}

/// G2 more closes from signal handlers inside one library call than the call can keep
/// (70 kqueue numbers): those beyond are found by a sweep of the kqueue numbers when the
/// call returns; every kqueue is released, no descriptor is left.
fn g2_many_handler_closes_inside_one_call(p: Personality) {
    install_handler();
    let before = open_count();
    let numbers: Vec<RawFd> = (0..70).map(|_| raw_kqueue_with_event(p)).collect();
    kq::library_call(|| {
        for &n in &numbers {
            HANDLER_CLOSES.store(n, Ordering::SeqCst);
            // SAFETY: raises a signal whose handler is installed.
            unsafe { libc::raise(libc::SIGUSR1) };
            assert!(!is_open(n));
        }
    });
    for &n in &numbers {
        assert!(
            !kq::fd_tracked(n),
            "number {n} is still known after the call"
        );
        assert_eq!(find_errno(n), Some(libc::EBADF));
    }
    assert_eq!(open_count(), before);
}

isolated_both!(
    g2_many_handler_closes_inside_one_call,
    g2_cancelled_close_keeps_the_number,
    g2_cancelled_close_that_closed_forgets_the_number,
    u35_recorded_copies_not_inherited,
    u35_copy_over_own_number_stays,
    g3_number_taken_by_library_epoll,
    g2_handler_closes_kqueue_inside_call,
    g23_handler_closes_watched_pipe_inside_call,
);
