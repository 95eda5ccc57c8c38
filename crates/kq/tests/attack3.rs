//! Attacks on the eventfd/timerfd counters of EVFILT_READ and EVFILT_WRITE, and on the
//! library's descriptors across fork(), the way programs get them wrong by accident:
//!
//! - a counter's number closed without EV_DELETE and without the library hearing of it,
//!   then reused by another eventfd, a timerfd, a socket, a pipe (G23): never the old
//!   file's count, never the old kind's semantics;
//! - EFD_SEMAPHORE eventfds, counters next to their maximum, EV_ONESHOT, EV_DISPATCH,
//!   EV_CLEAR, NOTE_LOWAT (R3, R4, R5, R7, W4);
//! - writers on many threads while another thread collects (G25): no lost wakeup, and
//!   what a delivery reports was there;
//! - no descriptor to spare for /proc/self/fdinfo (EMFILE), and no /proc at all
//!   (KQ_NO_PROC_FDINFO): the events still come;
//! - fork() in a loop while other threads make, use and close kqueues of every kind (U35):
//!   the child inherits none of the library's descriptors, does not hang, and can make
//!   and use a kqueue of its own; a program started with posix_spawn inherits nothing.

#[macro_use]
mod isolated;
mod counterutil;
mod fdutil;
mod util;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use counterutil::*;
use fdutil::*;
use kq::*;
use util::*;

/// A non-blocking eventfd with counter `init` and extra `flags`.
fn eventfd_with(init: u32, flags: libc::c_int) -> OwnedFd {
    // SAFETY: plain system call.
    let fd = unsafe { libc::eventfd(init, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC | flags) };
    assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: just made, owned by nothing else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Closes `fd` the way a program calling the raw system call does: the library hears
/// nothing of it. Returns the number, free again.
fn close_unseen(fd: OwnedFd) -> RawFd {
    let n = fd.into_raw_fd();
    // SAFETY: we own `n` and nothing uses it afterwards.
    assert_eq!(unsafe { libc::close(n) }, 0);
    n
}

/// What EVFILT_WRITE reports in `data` for an eventfd holding `count`.
fn write_data(p: Personality, count: u64) -> isize {
    match p {
        Personality::FreeBsd => (EVENTFD_MAX - count) as i64 as isize,
        _ => count as i64 as isize,
    }
}

/// A kqueue watching an eventfd at a reserved number `slot` with READ and WRITE, the
/// counter at 5, both knotes active and queued.
fn watched_counter(p: Personality, slot: RawFd) -> (Kqueue, RawFd, OwnedFd) {
    let kq = kq(p);
    let e = move_to(eventfd(), reserved_number(slot));
    let n = e.as_raw_fd();
    ch_ok(&kq, &[rd(n as usize, EV_ADD, 1), wr(n as usize, EV_ADD, 2)]);
    add(&e, 5);
    (kq, n, e)
}

/// The records of a zero-timeout collection with room for 8.
fn poll8(kq: &Kqueue) -> Vec<Kevent> {
    poll(kq, 8)
}

/// G23 with an eventfd reusing the number: the old knotes, active when the number was
/// closed unseen, report nothing of the new eventfd (not its count of 2, nor its being
/// writable), even after the new eventfd's counter changes; an EV_ADD on the number then
/// watches the new eventfd with its own count.
fn g23_counter_reused_by_eventfd(p: Personality) {
    let (kq, n, e) = watched_counter(p, 300 + p as RawFd);
    assert_eq!(close_unseen(e), n);
    let e2 = move_to(eventfd_with(2, 0), n);
    assert!(poll8(&kq).is_empty(), "old knotes reported the new eventfd");
    add(&e2, 1);
    assert!(poll8(&kq).is_empty(), "old knotes reported the new eventfd");
    ch_ok(&kq, &[rd(n as usize, EV_ADD, 3)]);
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, ev.data, udata(&ev)), (EVFILT_READ, 3, 3));
    fdclose_and_close(e2);
}

/// G23 with a timerfd reusing an eventfd's number: nothing from the old knotes; a READ
/// knote on the number then follows the timerfd (expirations on NetBSD, 0 on FreeBSD),
/// and a WRITE knote is refused as on any timerfd.
fn g23_counter_reused_by_timerfd(p: Personality) {
    let (kq, n, e) = watched_counter(p, 310 + p as RawFd);
    close_unseen(e);
    let t = move_to(timerfd(Duration::from_millis(1), Duration::ZERO), n);
    thread::sleep(Duration::from_millis(20));
    assert!(poll8(&kq).is_empty(), "old knotes reported the timerfd");
    ch_err(&kq, &[wr(n as usize, EV_ADD, 4)], libc::EINVAL);
    ch_ok(&kq, &[rd(n as usize, EV_ADD, 5)]);
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, udata(&ev)), (EVFILT_READ, 5));
    let expected = if p == Personality::NetBsd { 1 } else { 0 };
    assert_eq!(ev.data, expected);
    assert_eq!(read_count(&t), Some(1), "the look consumed the expiration");
    expect_no_events(&kq);
    fdclose_and_close(t);
}

/// G23 with a socket reusing an eventfd's number: nothing from the old knotes; a READ
/// knote on the number then reports the socket's bytes (not a counter: a socket has no
/// `eventfd-count` in fdinfo), WRITE its send-buffer room.
fn g23_counter_reused_by_socket(p: Personality) {
    let (kq, n, e) = watched_counter(p, 320 + p as RawFd);
    close_unseen(e);
    let (a, b) = socketpair(libc::SOCK_STREAM);
    let a = move_to(a, n);
    put(&b, 3);
    assert!(poll8(&kq).is_empty(), "old knotes reported the socket");
    ch_ok(&kq, &[rd(n as usize, EV_ADD, 6)]);
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, ev.data, udata(&ev)), (EVFILT_READ, 3, 6));
    assert_eq!(take(&a, 16), 3);
    expect_no_events(&kq);
    ch_ok(&kq, &[wr(n as usize, EV_ADD, 7)]);
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, udata(&ev)), (EVFILT_WRITE, 7));
    assert!(ev.data > 1000, "socket room {}", ev.data);
    fdclose_and_close(a);
}

/// G23 with a pipe reusing an eventfd's number (and the other way round): the pipe reports
/// bytes, never a counter; an eventfd at a pipe's old number reports its counter.
fn g23_counter_reused_by_pipe(p: Personality) {
    let (kq, n, e) = watched_counter(p, 330 + p as RawFd);
    close_unseen(e);
    let (r, w) = pipe();
    let r = move_to(r, n);
    put(&w, 4);
    assert!(poll8(&kq).is_empty(), "old knotes reported the pipe");
    ch_ok(&kq, &[rd(n as usize, EV_ADD, 8)]);
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, ev.data, udata(&ev)), (EVFILT_READ, 4, 8));
    // Now the pipe's number goes unseen and an eventfd takes it.
    close_unseen(r);
    let e2 = move_to(eventfd_with(9, 0), n);
    assert!(
        poll8(&kq).is_empty(),
        "the pipe's knote reported the eventfd"
    );
    add(&e2, 1);
    assert!(
        poll8(&kq).is_empty(),
        "the pipe's knote reported the eventfd"
    );
    ch_ok(&kq, &[rd(n as usize, EV_ADD, 9)]);
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, ev.data, udata(&ev)), (EVFILT_READ, 10, 9));
    fdclose_and_close(e2);
}

/// G23 where the old eventfd lives on (a dup of it elsewhere) after its number was closed
/// unseen and reused by another eventfd: writes to the old one are not reported under the
/// number, nor is the old one's count; EV_ADD then reports the new one's count.
fn g23_counter_reused_old_still_open(p: Personality) {
    let (kq, n, e) = watched_counter(p, 340 + p as RawFd);
    let keep = dup(&e);
    close_unseen(e);
    let e2 = move_to(eventfd_with(2, 0), n);
    add(&keep, 10);
    assert!(
        poll8(&kq).is_empty(),
        "reported the old eventfd under a new number"
    );
    ch_ok(&kq, &[rd(n as usize, EV_ADD, 3), wr(n as usize, EV_ADD, 4)]);
    add(&keep, 10);
    let mut evs = poll8(&kq);
    evs.sort_by_key(|e| e.filter);
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert_eq!(
        (evs[0].filter, evs[0].data),
        (EVFILT_WRITE, write_data(p, 2))
    );
    assert_eq!((evs[1].filter, evs[1].data), (EVFILT_READ, 2));
    fdclose_and_close(e2);
}

/// R7 on an EFD_SEMAPHORE eventfd: `data` is the whole counter (both kernels' filters
/// report it), which each read lowers by one; the event ends with the last read.
fn r7_eventfd_semaphore(p: Personality) {
    let kq = kq(p);
    let e = eventfd_with(0, libc::EFD_SEMAPHORE);
    ch_ok(&kq, &[rd(id(&e), EV_ADD, 1)]);
    expect_no_events(&kq);
    add(&e, 3);
    for left in (1..=3).rev() {
        assert_eq!(expect_one(&kq).data, left);
        assert_eq!(read_count(&e), Some(1));
    }
    expect_no_events(&kq);
}

/// W4 at the edge of the counter: 2^64 - 3 leaves room for one, 2^64 - 2 is full (no
/// write event); READ then reports the full counter as a signed number; a read makes room.
fn w4_eventfd_next_to_max(p: Personality) {
    let kq = kq(p);
    let e = eventfd();
    let ei = id(&e);
    add(&e, EVENTFD_MAX - 1);
    ch_ok(&kq, &[wr(ei, EV_ADD, 1)]);
    let ev = expect_one(&kq);
    assert_eq!(
        (ev.filter, ev.data),
        (EVFILT_WRITE, write_data(p, EVENTFD_MAX - 1))
    );
    add(&e, 1);
    expect_no_events(&kq);
    ch_ok(&kq, &[rd(ei, EV_ADD, 2)]);
    let ev = expect_one(&kq);
    assert_eq!(
        (ev.filter, ev.data),
        (EVFILT_READ, EVENTFD_MAX as i64 as isize)
    );
    assert_eq!(read_count(&e), Some(EVENTFD_MAX));
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, ev.data), (EVFILT_WRITE, write_data(p, 0)));
    // A write that does not fit fails (EAGAIN) and changes nothing.
    add(&e, EVENTFD_MAX);
    let ev = expect_one(&kq);
    assert_eq!(ev.filter, EVFILT_READ);
    // SAFETY: 8 valid bytes.
    let r = unsafe { libc::write(e.as_raw_fd(), [1u8; 8].as_ptr().cast(), 8) };
    assert_eq!(r, -1);
    assert_eq!(read_count(&e), Some(EVENTFD_MAX));
}

/// R3 on a counter: one event with the counter, then none though it is still set; the
/// knote is gone (EV_DELETE: ENOENT).
fn r3_counter_oneshot(p: Personality) {
    let kq = kq(p);
    let e = eventfd();
    ch_ok(&kq, &[rd(id(&e), EV_ADD | EV_ONESHOT, 1)]);
    add(&e, 6);
    let ev = expect_one(&kq);
    assert_eq!((ev.data, ev.flags & EV_ONESHOT), (6, EV_ONESHOT));
    add(&e, 1);
    expect_no_events(&kq);
    ch_err(&kq, &[rd(id(&e), EV_DELETE, 0)], libc::ENOENT);
}

/// R4 on a counter: EV_CLEAR reports the counter once per change; reading part of an
/// EFD_SEMAPHORE counter is no news (nothing was written).
fn r4_counter_clear(p: Personality) {
    let kq = kq(p);
    let e = eventfd_with(0, libc::EFD_SEMAPHORE);
    ch_ok(&kq, &[rd(id(&e), EV_ADD | EV_CLEAR, 1)]);
    add(&e, 2);
    assert_eq!(expect_one(&kq).data, 2);
    assert_eq!(read_count(&e), Some(1));
    expect_no_events(&kq);
    add(&e, 4);
    assert_eq!(expect_one(&kq).data, 5);
    expect_no_events(&kq);
}

/// R5 on a counter: EV_DISPATCH gives one event and disables the knote; EV_ENABLE
/// reports the counter as it is then; EV_DELETE of the disabled knote works.
fn r5_counter_dispatch(p: Personality) {
    let kq = kq(p);
    let e = eventfd();
    let ei = id(&e);
    ch_ok(&kq, &[rd(ei, EV_ADD | EV_DISPATCH, 1)]);
    add(&e, 2);
    assert_eq!(expect_one(&kq).data, 2);
    add(&e, 3);
    expect_no_events(&kq);
    ch_ok(&kq, &[rd(ei, EV_ENABLE, 1)]);
    assert_eq!(expect_one(&kq).data, 5);
    expect_no_events(&kq);
    ch_ok(&kq, &[rd(ei, EV_DELETE, 0)]);
}

/// R7 with NOTE_LOWAT on counters: neither kernel's eventfd or timerfd filter looks at a
/// water mark, so a counter below the mark is reported all the same.
fn r7_counter_lowat_ignored(p: Personality) {
    let kq = kq(p);
    let e = eventfd();
    let lowat = Kevent::new(id(&e), EVFILT_READ, EV_ADD, NOTE_LOWAT, 100, ptr(1));
    ch_ok(&kq, &[lowat]);
    expect_no_events(&kq);
    add(&e, 3);
    assert_eq!(expect_one(&kq).data, 3);
    let w = Kevent::new(
        id(&e),
        EVFILT_WRITE,
        EV_ADD,
        NOTE_LOWAT,
        i64::MAX as isize,
        ptr(2),
    );
    ch_ok(&kq, &[w]);
    let mut evs = poll8(&kq);
    evs.sort_by_key(|e| e.filter);
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert_eq!(
        (evs[0].filter, evs[0].data),
        (EVFILT_WRITE, write_data(p, 3))
    );
}

/// G25 on a counter: four threads add to an eventfd while a thread waits on its READ knote
/// and reads the counter after each event. No wakeup is lost (every unit is read, each
/// wait ends within the hang detector's 30 s) and no event reports more than the read
/// after it gets (the counter only grows between the look and the read).
fn g25_counter_writers_and_collector(p: Personality) {
    const WRITERS: u64 = 4;
    const EACH: u64 = 2000;
    let kq = Arc::new(kq(p));
    let e = Arc::new(eventfd());
    let ei = id(&*e);
    ch_ok(&kq, &[rd(ei, EV_ADD, 1)]);
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let e = Arc::clone(&e);
            thread::spawn(move || {
                for i in 0..EACH {
                    add(&*e, 1);
                    if i % 64 == 0 {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let mut total = 0;
    let mut events = 0;
    while total < WRITERS * EACH {
        let evs = get(&kq, 1, Some(Duration::from_secs(30)));
        assert_eq!(
            evs.len(),
            1,
            "lost wakeup: {total} of {} read",
            WRITERS * EACH
        );
        let ev = evs[0];
        events += 1;
        assert!(ev.data >= 1, "an event with an empty counter: {ev:?}");
        match read_count(&*e) {
            Some(got) => {
                assert!(
                    got >= ev.data as u64,
                    "reported {} but only {got} was there",
                    ev.data
                );
                total += got;
            }
            // Reported with the counter set: nothing else reads it.
            None => panic!("reported {} but nothing to read", ev.data),
        }
    }
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(total, WRITERS * EACH);
    assert!(events >= 1);
    expect_no_events(&kq);
}

/// G25 with level READ knotes and nobody reading: while writers add, every collected
/// `data` is at least the one before (the counter never goes down), and the last equals
/// the total.
fn g25_counter_data_never_goes_back(p: Personality) {
    let kq = Arc::new(kq(p));
    let e = Arc::new(eventfd());
    let wrote = Arc::new(AtomicU64::new(0));
    ch_ok(&kq, &[rd(id(&*e), EV_ADD, 1), wr(id(&*e), EV_ADD, 2)]);
    let writers: Vec<_> = (0..3)
        .map(|_| {
            let (e, wrote) = (Arc::clone(&e), Arc::clone(&wrote));
            thread::spawn(move || {
                for _ in 0..1000 {
                    add(&*e, 1);
                    wrote.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let mut last = [0isize; 2];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = writers.iter().all(|w| w.is_finished());
        let before = wrote.load(Ordering::SeqCst);
        for ev in get(&kq, 4, Some(Duration::from_millis(100))) {
            let count = if ev.filter == EVFILT_READ {
                ev.data as u64
            } else {
                match p {
                    Personality::FreeBsd => EVENTFD_MAX - ev.data as u64,
                    _ => ev.data as u64,
                }
            };
            let i = (ev.filter == EVFILT_WRITE) as usize;
            assert!(
                count as isize >= last[i],
                "filter {} went back from {} to {count}",
                ev.filter,
                last[i]
            );
            assert!(
                count >= before,
                "reported {count} after {before} were written"
            );
            last[i] = count as isize;
        }
        if done && last == [3000, 3000] {
            break;
        }
        assert!(Instant::now() < deadline, "stuck at {last:?}");
    }
    for w in writers {
        w.join().unwrap();
    }
}

/// Fills the descriptor table (dups of stdin... of /dev/null) until EMFILE; returns them.
fn exhaust_descriptors() -> Vec<OwnedFd> {
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut held = Vec::new();
    loop {
        // SAFETY: plain system call.
        let fd = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EMFILE)
            );
            break;
        }
        // SAFETY: just made, owned by nothing else.
        held.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    held
}

/// Lowers RLIMIT_NOFILE to `n` (the test runs in a process of its own).
fn limit_descriptors(n: u64) {
    let rl = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: setrlimit reads the struct it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) }, 0);
}

/// R7 and W4 with no descriptor to spare (a low RLIMIT_NOFILE, all taken): the counter's
/// fdinfo cannot be opened, but the events still come (readiness, `data` 0 at worst);
/// once a descriptor is free again, the counts come back.
fn r7_counter_without_descriptors(p: Personality) {
    limit_descriptors(256);
    let kq = kq(p);
    let e = eventfd();
    let t = timerfd(Duration::from_millis(1), Duration::ZERO);
    ch_ok(&kq, &[rd(id(&e), EV_ADD, 1), rd(id(&t), EV_ADD, 2)]);
    thread::sleep(Duration::from_millis(10));
    let held = exhaust_descriptors();
    add(&e, 7);
    let mut evs = get(&kq, 4, Some(Duration::from_secs(30)));
    if evs.len() < 2 {
        evs.extend(get(&kq, 4, Some(Duration::from_secs(30))));
    }
    evs.sort_by_key(udata);
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert_eq!(udata(&evs[0]), 1);
    assert_eq!(udata(&evs[1]), 2);
    // The eventfd's WRITE knote too.
    ch_ok(&kq, &[wr(id(&e), EV_ADD, 3)]);
    assert!(poll8(&kq).iter().any(|ev| ev.filter == EVFILT_WRITE));
    drop(held);
    add(&e, 1);
    let mut evs = poll8(&kq);
    evs.sort_by_key(udata);
    assert_eq!(evs.len(), 3, "{evs:?}");
    assert_eq!(
        evs[0].data, 8,
        "the counter is back once descriptors are free"
    );
    let tdata = if p == Personality::NetBsd { 1 } else { 0 };
    assert_eq!(evs[1].data, tdata);
    assert_eq!(evs[2].data, write_data(p, 8));
}

/// R7 and W4 without /proc (KQ_NO_PROC_FDINFO): readiness alone, `data` 0, and a full
/// eventfd is still not writable.
fn r7_counter_without_proc(p: Personality) {
    std::env::set_var("KQ_NO_PROC_FDINFO", "1");
    let kq = kq(p);
    let e = eventfd();
    ch_ok(&kq, &[rd(id(&e), EV_ADD, 1), wr(id(&e), EV_ADD, 2)]);
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, ev.data), (EVFILT_WRITE, 0));
    add(&e, EVENTFD_MAX);
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, ev.data), (EVFILT_READ, 0));
    assert_eq!(read_count(&e), Some(EVENTFD_MAX));
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, ev.data), (EVFILT_WRITE, 0));
}

/// The descriptors of this process /proc says are one of the library's kinds: epoll,
/// eventfd, timerfd, signalfd, pidfd, inotify, sockets (the test itself opens none of
/// these while it looks).
fn library_like_fds() -> Vec<String> {
    let numbers: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    numbers
        .into_iter()
        .filter_map(|n| {
            let t = std::fs::read_link(format!("/proc/self/fd/{n}")).ok()?;
            let t = t.to_string_lossy().into_owned();
            (t.starts_with("anon_inode:") || t.starts_with("socket:"))
                .then(|| format!("{n} -> {t}"))
        })
        .collect()
}

/// What a forked child checks: no library descriptor inherited, and a kqueue of its own
/// works (a timer fires, a pipe is readable). Returns the exit status to report.
fn child_checks(p: Personality) -> i32 {
    let left = library_like_fds();
    if !left.is_empty() {
        eprintln!("child inherited: {left:?}");
        return 1;
    }
    let Ok(kq) = Kqueue::with_personality(p) else {
        return 2;
    };
    let (r, w) = pipe();
    let timer = Kevent::new(1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 1, ptr(0));
    if kq
        .kevent(&[timer, rd(id(&r), EV_ADD, 0)], &mut [], None)
        .is_err()
    {
        return 3;
    }
    put(&w, 1);
    let mut got = 0;
    let mut out = [Kevent::default(); 4];
    let deadline = Instant::now() + Duration::from_secs(10);
    while got < 2 && Instant::now() < deadline {
        match kq.kevent(&[], &mut out, Some(Duration::from_secs(1))) {
            Ok(n) => got += n,
            Err(_) => return 4,
        }
    }
    if got < 2 {
        return 5;
    }
    0
}

/// Forks; the child runs `child_checks` under a 30 s alarm (a hang kills it: a failure).
/// Returns the child's wait status.
fn fork_and_check(p: Personality) -> i32 {
    // SAFETY: the child only runs `child_checks` and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: an alarm ends a child that hangs; `_exit` skips the parent's destructors.
        unsafe {
            libc::alarm(30);
            libc::_exit(child_checks(p));
        }
    }
    let mut status = 0;
    // SAFETY: reaps our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

/// One worker: makes raw (released) kqueues with a timer, READ on a file and a pipe, a
/// vnode, a signal and a process knote, collects from them, and closes them (seen), until
/// `stop`.
fn churn(p: Personality, stop: &AtomicBool, child: libc::pid_t, dir: &std::path::Path) {
    let path = dir.join(format!("f{:?}", thread::current().id()));
    std::fs::write(&path, b"abc").unwrap();
    while !stop.load(Ordering::Relaxed) {
        let fd = Kqueue::new_raw_fd(p).expect("kqueue");
        // SAFETY: the number was just returned to us.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let file = std::fs::File::open(&path).unwrap();
        let (r, w) = pipe();
        let changes = [
            Kevent::new(1, EVFILT_TIMER, EV_ADD, 0, 1, ptr(0)),
            rd(id(&file), EV_ADD, 0),
            rd(id(&r), EV_ADD, 0),
            Kevent::new(
                id(&file),
                EVFILT_VNODE,
                EV_ADD | EV_CLEAR,
                NOTE_WRITE | NOTE_ATTRIB,
                0,
                ptr(0),
            ),
            Kevent::new(libc::SIGURG as usize, EVFILT_SIGNAL, EV_ADD, 0, 0, ptr(0)),
            Kevent::new(child as usize, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, ptr(0)),
        ];
        {
            let k = Kqueue::find(owned.as_fd()).expect("find");
            let mut out = [Kevent::default(); 8];
            let _ = k.kevent(&changes, &mut [], None);
            put(&w, 1);
            for _ in 0..4 {
                let _ = k.kevent(&[], &mut out, Some(Duration::from_millis(1)));
            }
        }
        fdclose_and_close(file);
        fdclose_and_close(r);
        fdclose_and_close(owned);
    }
}

/// U35 under load: three threads make, use and close kqueues with every kind of knote
/// while this thread forks 40 times; no child inherits a library descriptor or hangs, and
/// each can use a kqueue of its own.
fn u35_fork_while_threads_churn(p: Personality) {
    let dir = TempDir::new();
    let sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let child = sleeper.id() as libc::pid_t;
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (stop, dir) = (Arc::clone(&stop), dir.0.clone());
            thread::spawn(move || churn(p, &stop, child, &dir))
        })
        .collect();
    thread::sleep(Duration::from_millis(50));
    let mut failures = Vec::new();
    for i in 0..40 {
        let status = fork_and_check(p);
        if status != 0 {
            failures.push((i, status));
        }
        thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let mut sleeper = sleeper;
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(
        failures.is_empty(),
        "children failed (fork #, wait status): {failures:x?}"
    );
}

/// U35 from inside a kevent()-heavy loop: threads wait in kevent() on raw kqueues (and
/// are woken by EVFILT_USER triggers) while this thread forks; the children are clean.
fn u35_fork_amid_kevent_waits(p: Personality) {
    let stop = Arc::new(AtomicBool::new(false));
    let fds: Vec<RawFd> = (0..2).map(|_| Kqueue::new_raw_fd(p).unwrap()).collect();
    for &fd in &fds {
        // SAFETY: a kqueue number of ours, borrowed for the call.
        let k = Kqueue::find(unsafe { BorrowedFd::borrow_raw(fd) }).unwrap();
        k.kevent(&[user(1, EV_ADD | EV_CLEAR, 0, 0)], &mut [], None)
            .unwrap();
    }
    let waiters: Vec<_> = fds
        .iter()
        .map(|&fd| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                // SAFETY: the number stays open until the threads are joined.
                let k = Kqueue::find(unsafe { BorrowedFd::borrow_raw(fd) }).unwrap();
                let mut out = [Kevent::default(); 4];
                while !stop.load(Ordering::Relaxed) {
                    let _ = k.kevent(&[], &mut out, Some(Duration::from_millis(20)));
                }
            })
        })
        .collect();
    let triggers: Vec<_> = fds
        .iter()
        .map(|&fd| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                // SAFETY: as above.
                let k = Kqueue::find(unsafe { BorrowedFd::borrow_raw(fd) }).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let _ = k.kevent(&[user(1, 0, NOTE_TRIGGER, 0)], &mut [], None);
                }
            })
        })
        .collect();
    let mut failures = Vec::new();
    for i in 0..30 {
        let status = fork_and_check(p);
        if status != 0 {
            failures.push((i, status));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in waiters.into_iter().chain(triggers) {
        t.join().unwrap();
    }
    for fd in fds {
        kq::fdclose(fd);
        // SAFETY: our kqueue numbers, closed once.
        unsafe { libc::close(fd) };
    }
    assert!(
        failures.is_empty(),
        "children failed (fork #, wait status): {failures:x?}"
    );
}

/// U35 for programs started with posix_spawn (std's Command): a program run while
/// kqueues of every kind are open inherits none of their descriptors (all close-on-exec).
fn u35_spawned_program_inherits_nothing(p: Personality) {
    let dir = TempDir::new();
    let stop = AtomicBool::new(false);
    let sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let fd = Kqueue::new_raw_fd(p).unwrap();
    // SAFETY: our number, owned here.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let path = dir.join("f");
    std::fs::write(&path, b"x").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let k = Kqueue::find(owned.as_fd()).unwrap();
    let _ = k.kevent(
        &[
            Kevent::new(1, EVFILT_TIMER, EV_ADD, 0, 1000, ptr(0)),
            Kevent::new(
                2,
                EVFILT_TIMER,
                EV_ADD,
                NOTE_ABSTIME | NOTE_SECONDS,
                i32::MAX as isize,
                ptr(0),
            ),
            rd(id(&file), EV_ADD, 0),
            Kevent::new(id(&file), EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, ptr(0)),
            Kevent::new(libc::SIGURG as usize, EVFILT_SIGNAL, EV_ADD, 0, 0, ptr(0)),
            Kevent::new(
                sleeper.id() as usize,
                EVFILT_PROC,
                EV_ADD,
                NOTE_EXIT | NOTE_FORK,
                0,
                ptr(0),
            ),
        ],
        &mut [],
        None,
    );
    drop(k);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("for f in /proc/$$/fd/*; do readlink $f; done")
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let text = String::from_utf8_lossy(&out.stdout);
    let leaked: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("anon_inode:") || l.starts_with("socket:"))
        .collect();
    assert!(
        leaked.is_empty(),
        "the spawned program inherited {leaked:?}"
    );
    fdclose_and_close(file);
    fdclose_and_close(owned);
    let mut sleeper = sleeper;
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// U35, the child's own kqueue right after fork, while the parent's raw kqueue had knotes
/// on the same pipe: the child's kqueue works, the parent's number is gone in the child
/// (EBADF), and the parent's kqueue still reports after the child is done.
fn u35_child_makes_its_own_kqueue(p: Personality) {
    let fd = Kqueue::new_raw_fd(p).unwrap();
    // SAFETY: our number, owned here.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let (r, w) = pipe();
    {
        let k = Kqueue::find(owned.as_fd()).unwrap();
        k.kevent(&[rd(id(&r), EV_ADD, 7)], &mut [], None).unwrap();
    }
    // SAFETY: the child only uses the library and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: hang detector, then the checks.
        unsafe { libc::alarm(30) };
        let code = if Kqueue::find(owned.as_fd()).is_ok() || is_open(fd) {
            10
        } else {
            child_checks(p)
        };
        // SAFETY: ends the child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: reaps our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(status, 0, "child wait status {status:#x}");
    put(&w, 2);
    let k = Kqueue::find(owned.as_fd()).unwrap();
    let mut out = [Kevent::default(); 2];
    let n = k
        .kevent(&[], &mut out, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!((n, out[0].data, udata(&out[0])), (1, 2, 7));
    drop(k);
    fdclose_and_close(r);
    fdclose_and_close(owned);
}

both!(
    g23_counter_reused_by_eventfd,
    g23_counter_reused_by_timerfd,
    g23_counter_reused_by_socket,
    g23_counter_reused_by_pipe,
    g23_counter_reused_old_still_open,
    r7_eventfd_semaphore,
    w4_eventfd_next_to_max,
    r3_counter_oneshot,
    r4_counter_clear,
    r5_counter_dispatch,
    r7_counter_lowat_ignored,
    g25_counter_writers_and_collector,
    g25_counter_data_never_goes_back,
);

isolated_both!(
    r7_counter_without_descriptors,
    r7_counter_without_proc,
    u35_fork_while_threads_churn,
    u35_fork_amid_kevent_waits,
    u35_spawned_program_inherits_nothing,
    u35_child_makes_its_own_kqueue,
);

/// U35 in the window between the library's hearing of a kqueue's close
/// (`fdclose_begin`, which the C library's close() calls first) and the close itself: a
/// fork() there must not leave the program's number of the kqueue open in the child (a
/// kqueue is not inherited); the number stays known to the library until `fdclose_end`.
#[test]
fn u35_fork_between_fdclose_and_close() {
    isolated::in_child("u35_fork_between_fdclose_and_close", || {
        let fd = Kqueue::new_raw_fd(Personality::NetBsd).unwrap();
        let token = kq::fdclose_begin(fd);
        // SAFETY: the child only looks at its descriptor table and `_exit`s.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: ends the child with the verdict.
            unsafe { libc::_exit(if is_open(fd) { 1 } else { 0 }) };
        }
        // SAFETY: our number, closed once.
        unsafe { libc::close(fd) };
        kq::fdclose_end(fd, token);
        let mut status = 0;
        // SAFETY: reaps our child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert_eq!(status, 0, "the child inherited the kqueue number {fd}");
    });
}
