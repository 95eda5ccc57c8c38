//! Generic kevent() behaviour: the cases of docs/semantics.md §7.2 that need no fd filter,
//! in both personalities where they differ. Sections (§) cited here are that document's.
//!
//! Not here: G3 (a bad kq fd cannot be passed to the Rust API; the C tests cover it), G11
//! (user.rs u37_kqueue_read_errors), G22/G23 (fd_semantics.rs: closing and dup2 over a
//! watched number), G27 and G31 (vnode.rs), G18 (bad pointers: C only),
//! G26 (fd passing), G28 (filters.rs), G29 (close while blocked needs ownership
//! of a shared Kqueue: Rust cannot express it; the C tests cover it), G32 (fstat of the
//! descriptor: a documented divergence).

mod util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use kq::*;
use util::*;

/// `kevent_raw` with the errno comparable.
fn raw(
    kq: &Kqueue,
    changes: impl ChangeList,
    events: impl EventList,
    timeout: Option<Timespec>,
) -> Result<usize, Errno> {
    kq.kevent_raw(changes, events, timeout).map_err(Errno::from)
}

/// G1 kqueue() (FB main.c test_kqueue): a new kqueue has a descriptor and polls empty.
fn g1_kqueue(p: Personality) {
    use std::os::fd::AsRawFd;
    let kq = kq(p);
    assert!(kq.as_raw_fd() >= 0);
    expect_no_events(&kq);
    // Kqueue::new() is the NetBSD personality.
    assert_eq!(Kqueue::new().unwrap().personality(), Personality::NetBsd);
}

/// G2 close(kq) (FB main.c test_kqueue_close): closing works, also with knotes, pending
/// events and timers registered, and many times over.
fn g2_close(p: Personality) {
    for _ in 0..200 {
        let kq = kq(p);
        ch_ok(
            &kq,
            &[
                user(1, EV_ADD, 0, 0),
                user(1, 0, NOTE_TRIGGER, 0),
                Kevent::new(2, EVFILT_TIMER, EV_ADD, 0, 50, ptr(0)),
            ],
        );
        drop(kq);
    }
}

/// G4 invalid_timeout: {0,-1}, {-1,0}, {0,1e9} with nevents 1 fail with EINVAL after the
/// changes of the same call were applied; with nevents 0 they are not looked at.
fn g4_invalid_timeout(p: Personality) {
    let bad = [
        Timespec {
            tv_sec: 0,
            tv_nsec: -1,
        },
        Timespec {
            tv_sec: -1,
            tv_nsec: 0,
        },
        Timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000_000,
        },
    ];
    for (i, ts) in bad.into_iter().enumerate() {
        let kq = kq(p);
        let mut evs = [sentinel(); 1];
        // The changes are applied, then the timeout is rejected.
        let r = raw(
            &kq,
            &[user(i, EV_ADD, 0, 0), user(i, 0, NOTE_TRIGGER, 0)],
            &mut evs,
            Some(ts),
        );
        assert_eq!(r, Err(Errno(libc::EINVAL)), "timeout {ts:?}");
        assert_eq!(evs[0], sentinel());
        assert_eq!(expect_one(&kq).ident, i, "the changes were applied");
        // nevents 0: the timeout is not validated.
        let r = raw(&kq, &[user(i, EV_CLEAR, 0, 0)], &mut [], Some(ts));
        assert_eq!(r, Ok(0), "timeout {ts:?} with nevents 0");
        expect_no_events(&kq);
        let r = raw(&kq, &[], &mut [], Some(ts));
        assert_eq!(r, Ok(0));
    }
}

/// G5 poll_timeout_zero: a zero timeout on an empty kqueue returns 0 at once; so does
/// kevent with no changes and no slots even with a NULL timeout (§1.2).
fn g5_poll_timeout_zero(p: Personality) {
    let kq = kq(p);
    let start = Instant::now();
    for _ in 0..100 {
        assert_eq!(
            kq.kevent(&[], &mut [Kevent::default(); 4], Some(Duration::ZERO))
                .unwrap(),
            0
        );
        let r = raw(
            &kq,
            &[],
            &mut [Kevent::default(); 4],
            Some(Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }),
        );
        assert_eq!(r, Ok(0));
    }
    assert_eq!(kq.kevent(&[], &mut [], None).unwrap(), 0);
    assert_eq!(raw(&kq, &[], &mut [], None), Ok(0));
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

/// G6 relative_timeout: {0, 200 ms} on an empty kqueue returns 0 after at least 200 ms.
fn g6_relative_timeout(p: Personality) {
    let kq = kq(p);
    let start = Instant::now();
    let n = kq
        .kevent(
            &[],
            &mut [Kevent::default(); 1],
            Some(Duration::from_millis(200)),
        )
        .unwrap();
    let waited = start.elapsed();
    assert_eq!(n, 0);
    assert!(
        waited >= Duration::from_millis(200),
        "returned early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(30),
        "returned late: {waited:?}"
    );

    // The same through kevent_raw, 50 ms.
    let start = Instant::now();
    let r = raw(
        &kq,
        &[],
        &mut [Kevent::default(); 1],
        Some(Timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        }),
    );
    assert_eq!(r, Ok(0));
    assert!(
        start.elapsed() >= Duration::from_millis(50),
        "{:?}",
        start.elapsed()
    );
}

extern "C" fn on_sigalrm(_: libc::c_int) {}

/// G7 eintr: a signal (handler installed with SA_RESTART) interrupts a kevent() waiting with
/// a NULL timeout: -1/EINTR, never restarted (§1.4). The changes of the call stay applied.
fn g7_eintr(p: Personality) {
    // SAFETY: installs a handler that does nothing, for SIGALRM only; the signal is sent
    // with pthread_kill to the one thread below, so no other test sees it.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigalrm as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut()), 0);
    }
    let kq = Arc::new(kq(p));
    let done = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let t = {
        let (kq, done) = (kq.clone(), done.clone());
        thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            let mut evs = [Kevent::default(); 1];
            let r = kq.kevent(&[user(7, EV_ADD | EV_CLEAR, 0, 0)], &mut evs, None);
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    let tid = rx.recv().unwrap();
    thread::sleep(Duration::from_millis(50));
    // A signal that lands before the thread sleeps in kevent only runs the handler, so keep
    // signalling until the call returns (30 s at most: the thread may be slow to get there
    // on a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
        // SAFETY: `tid` is a joinable thread that has not been joined yet.
        unsafe { libc::pthread_kill(tid, libc::SIGALRM) };
        thread::sleep(Duration::from_millis(20));
    }
    let restarted = !done.load(Ordering::SeqCst);
    if restarted {
        // The wait was restarted: end it with an event so the test fails instead of hanging.
        trigger(&kq, 7);
    }
    let r = t.join().unwrap();
    assert!(
        !restarted,
        "kevent() was restarted after the signal (returned {r:?})"
    );
    let e = r.expect_err("kevent() must fail with EINTR");
    assert_eq!(e.raw_os_error(), Some(libc::EINTR), "{e:?}");
    assert_eq!(e.kind(), std::io::ErrorKind::Interrupted);
    // The change of the interrupted call was applied.
    trigger(&kq, 7);
    assert_eq!(expect_one(&kq).ident, 7);
}

/// G7b (§1.4, §6.5): every signal that arrives while kevent() waits interrupts it
/// with EINTR, round after round (G7 allows retries; this one does not). The signal is sent
/// once /proc/self/task/TID/syscall shows the thread inside kevent()'s wait (epoll_pwait2, or
/// sched_yield in the spin before it). Signals stay blocked from the start of the wait to the
/// sleep, which restores the mask atomically, so one that lands in between is not lost either
/// (that window is too short to aim at from here).
fn g7b_signal_before_sleep_not_lost(p: Personality) {
    // SAFETY: as in g7_eintr: a no-op handler for SIGALRM, sent with pthread_kill.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigalrm as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut()), 0);
    }
    const ROUNDS: usize = 40;
    let kq = Arc::new(kq(p));
    ch_ok(&kq, &[user(7, EV_ADD | EV_CLEAR, 0, 0)]);
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (id_tx, id_rx) = mpsc::channel();
    let (res_tx, res_rx) = mpsc::channel();
    let t = {
        let kq = kq.clone();
        thread::spawn(move || {
            // SAFETY: pthread_self and gettid have no preconditions.
            id_tx
                .send(unsafe { (libc::pthread_self(), libc::gettid()) })
                .unwrap();
            let mut evs = [Kevent::default(); 1];
            while go_rx.recv().is_ok() {
                let r = kq.kevent(&[], &mut evs, None);
                res_tx.send(r.map_err(|e| e.raw_os_error())).unwrap();
            }
        })
    };
    let (pthread, tid) = id_rx.recv().unwrap();
    use std::os::unix::fs::FileExt;
    let syscall_file = std::fs::File::open(format!("/proc/self/task/{tid}/syscall")).unwrap();
    let (mut in_spin, mut asleep) = (0, 0);
    let mut buf = [0u8; 64];
    for _ in 0..ROUNDS {
        go_tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n = syscall_file.read_at(&mut buf, 0).unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..n]);
            // The system call the thread is in, by this architecture's numbers.
            let nr = text.split_whitespace().next().and_then(|w| w.parse().ok());
            match nr {
                Some(libc::SYS_sched_yield) => in_spin += 1,
                Some(libc::SYS_epoll_pwait2) | Some(libc::SYS_epoll_pwait) => asleep += 1,
                _ if Instant::now() < deadline => continue,
                _ => panic!("the thread never entered kevent()'s wait: {text:?}"),
            }
            break;
        }
        // SAFETY: `pthread` is a running thread not yet joined.
        unsafe { libc::pthread_kill(pthread, libc::SIGALRM) };
        match res_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(r) => assert_eq!(r.map(|_| ()), Err(Some(libc::EINTR))),
            Err(_) => {
                trigger(&kq, 7); // end the wait so that the test fails instead of hanging
                panic!("a signal sent while kevent() waited did not interrupt it");
            }
        }
    }
    drop(go_tx);
    t.join().unwrap();
    assert_eq!(in_spin + asleep, ROUNDS);
}

/// G9 evfilt_aio_unimplemented: EVFILT_AIO has no filter operations: EV_ADD is EINVAL
/// (NetBSD's answer; libkqueue's number -3 in both personalities).
fn g9_evfilt_aio_unimplemented(p: Personality) {
    let kq = kq(p);
    let c = Kevent::new(1, EVFILT_AIO, EV_ADD, 0, 0, ptr(0x8));
    ch_err(&kq, &[c], libc::EINVAL);
}

/// §1.5: one call returns as many events as there are slots and pending events, with no
/// cap of its own (libkqueue stops at 512), in activation order.
fn many_events_in_one_call(p: Personality) {
    let kq = kq(p);
    const N: usize = 2000;
    let adds: Vec<Kevent> = (0..N).map(|i| user(i, EV_ADD | EV_CLEAR, 0, 0)).collect();
    ch_ok(&kq, &adds);
    let fires: Vec<Kevent> = (0..N)
        .rev()
        .map(|i| user(i, 0, NOTE_TRIGGER, i as isize))
        .collect();
    ch_ok(&kq, &fires);
    let evs = get(&kq, N + 10, Some(Duration::ZERO));
    assert_eq!(evs.len(), N);
    for (k, ev) in evs.iter().enumerate() {
        assert_eq!((ev.ident, ev.data), (N - 1 - k, (N - 1 - k) as isize));
    }
    expect_no_events(&kq);
}

/// G8 unknown_filter: EV_ADD with an unknown filter is EINVAL, as a report when there is
/// room, else -1/EINVAL. (Filter numbers are libkqueue's in both personalities.)
fn g8_unknown_filter(p: Personality) {
    let kq = kq(p);
    for filter in [1234i16, -99, i16::MIN, -14] {
        let c = Kevent::new(1, filter, EV_ADD, 0, 0, ptr(0x8));
        ch_err(&kq, &[c], libc::EINVAL);
        let mut evs = [sentinel(); 1];
        assert_eq!(kq.kevent(&[c], &mut evs, None).unwrap(), 1);
        assert_report(&evs[0], 1, filter, libc::EINVAL);
        assert_eq!(evs[0].udata, ptr(0x8));
    }
}

/// G8b, §1.2 step 3b [FB]: a change whose filter is 0 is skipped without a word.
#[test]
fn g8b_filter_zero_skipped_freebsd() {
    let kq = kq(Personality::FreeBsd);
    let mut evs = [sentinel(); 2];
    let n = kq
        .kevent(
            &[
                Kevent::new(1, 0, EV_ADD, 0, 0, ptr(0)),
                user(1, EV_ADD, 0, 0),
                user(1, 0, NOTE_TRIGGER, 0),
            ],
            &mut evs,
            Some(Duration::ZERO),
        )
        .unwrap();
    assert_eq!(n, 1, "{evs:?}");
    assert_eq!((evs[0].ident, evs[0].filter), (1, EVFILT_USER));
}

/// G10 enoent_ops: EV_DELETE, EV_ENABLE, EV_DISABLE and flags 0 on a missing key: ENOENT.
fn g10_enoent_ops(p: Personality) {
    let kq = kq(p);
    for flags in [
        EV_DELETE,
        EV_ENABLE,
        EV_DISABLE,
        0,
        EV_CLEAR,
        EV_ONESHOT | EV_RECEIPT,
    ] {
        ch_err(&kq, &[user(3, flags, 0, 0)], libc::ENOENT);
        let mut evs = [sentinel(); 1];
        assert_eq!(
            kq.kevent(&[user(3, flags, 0, 0)], &mut evs, None).unwrap(),
            1
        );
        assert_report(&evs[0], 3, EVFILT_USER, libc::ENOENT);
    }
    // Also a deleted knote and a timer that was never added.
    ch_ok(&kq, &[user(3, EV_ADD, 0, 0), user(3, EV_DELETE, 0, 0)]);
    ch_err(&kq, &[user(3, EV_DELETE, 0, 0)], libc::ENOENT);
    ch_err(
        &kq,
        &[Kevent::new(3, EVFILT_TIMER, EV_DELETE, 0, 0, ptr(0))],
        libc::ENOENT,
    );
}

/// G12 errors_continue: [ENOENT change, good EV_ADD, EINVAL change] with 3 slots returns 2
/// reports in order, applies the good change, and does not scan (a pending event stays).
/// (An EBADF change on a closed descriptor would do as the third; an unknown filter stands
/// in for it.)
fn g12_errors_continue(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD, 0, 0)]);
    trigger(&kq, 1);
    let mut evs = [sentinel(); 3];
    let n = kq
        .kevent(
            &[
                user(10, 0, NOTE_TRIGGER, 0),
                user(11, EV_ADD | EV_CLEAR, 0, 0),
                Kevent::new(12, 1234, EV_ADD, 0, 0, ptr(0)),
            ],
            &mut evs,
            Some(Duration::ZERO),
        )
        .unwrap();
    assert_eq!(n, 2, "{evs:?}");
    assert_report(&evs[0], 10, EVFILT_USER, libc::ENOENT);
    assert_report(&evs[1], 12, 1234, libc::EINVAL);
    assert_eq!(evs[2], sentinel(), "no scan after a report");
    // The good change was applied.
    trigger(&kq, 11);
    let evs = poll(&kq, 8);
    let mut idents: Vec<_> = evs.iter().map(|e| e.ident).collect();
    idents.sort();
    assert_eq!(idents, [1, 11]);
}

/// G13 errors_no_room_abort: [ENOENT, ENOENT, EV_ADD user 7] with one slot: -1/ENOENT, the
/// first report was written, the third change was not applied.
fn g13_errors_no_room_abort(p: Personality) {
    let kq = kq(p);
    let mut evs = [sentinel(); 1];
    let r = kq.kevent(
        &[
            user(5, EV_ENABLE, 0, 0),
            user(6, EV_DELETE, 0, 0),
            user(7, EV_ADD, 0, 0),
        ],
        &mut evs,
        Some(Duration::ZERO),
    );
    assert_eq!(errno(r), libc::ENOENT);
    assert_report(&evs[0], 5, EVFILT_USER, libc::ENOENT);
    ch_err(&kq, &[user(7, EV_DELETE, 0, 0)], libc::ENOENT);

    // The same through kevent_raw.
    let r = raw(
        &kq,
        &[
            user(5, 0, NOTE_TRIGGER, 0),
            user(6, 0, NOTE_TRIGGER, 0),
            user(7, EV_ADD, 0, 0),
        ],
        &mut evs,
        None,
    );
    assert_eq!(r, Err(Errno(libc::ENOENT)));
    ch_err(&kq, &[user(7, EV_DELETE, 0, 0)], libc::ENOENT);
}

/// G14 receipt_batch: two EV_ADD|EV_RECEIPT changes with 2 slots and a level event pending:
/// 2 receipts (flags EV_ERROR, data 0), the pending event is not returned.
fn g14_receipt_batch(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD, 0, 0)]);
    trigger(&kq, 1);
    let mut evs = [sentinel(); 2];
    let n = kq
        .kevent(
            &[
                user_u(2, EV_ADD | EV_RECEIPT, 0x55, 9, 0x2),
                user_u(3, EV_ADD | EV_RECEIPT, 0, 0, 0x3),
            ],
            &mut evs,
            Some(Duration::ZERO),
        )
        .unwrap();
    assert_eq!(n, 2);
    assert_report(&evs[0], 2, EVFILT_USER, 0);
    assert_report(&evs[1], 3, EVFILT_USER, 0);
    // A brand-new knote's echo has fflags and data zeroed (§1.3); udata is echoed.
    assert_eq!((evs[0].fflags, evs[0].udata), (0, ptr(0x2)));
    assert_eq!(evs[1].udata, ptr(0x3));
    // The level event is still there, and nothing else.
    assert_eq!(expect_one(&kq).ident, 1);
    // A receipt on a successful delete echoes data 0 as well.
    let mut evs = [sentinel(); 4];
    let n = kq
        .kevent(
            &[user(2, EV_DELETE | EV_RECEIPT, 0, 0)],
            &mut evs,
            Some(Duration::ZERO),
        )
        .unwrap();
    assert_eq!(n, 1);
    assert_report(&evs[0], 2, EVFILT_USER, 0);
}

/// G15 receipt_no_room: [EV_ADD|EV_RECEIPT a, EV_ADD b] with no slots returns 0; a was
/// added, b was not.
fn g15_receipt_no_room(p: Personality) {
    let kq = kq(p);
    let n = kq
        .kevent(
            &[user(1, EV_ADD | EV_RECEIPT, 0, 0), user(2, EV_ADD, 0, 0)],
            &mut [],
            None,
        )
        .unwrap();
    assert_eq!(n, 0);
    ch_ok(&kq, &[user(1, EV_DELETE, 0, 0)]);
    ch_err(&kq, &[user(2, EV_DELETE, 0, 0)], libc::ENOENT);
    // Also when the slots run out after some reports: 1 slot, 2 receipts.
    let mut evs = [sentinel(); 1];
    let n = kq
        .kevent(
            &[
                user(3, EV_ADD | EV_RECEIPT, 0, 0),
                user(4, EV_ADD | EV_RECEIPT, 0, 0),
                user(5, EV_ADD, 0, 0),
            ],
            &mut evs,
            None,
        )
        .unwrap();
    assert_eq!(n, 0, "the abort does not count the reports already written");
    assert_report(&evs[0], 3, EVFILT_USER, 0);
    ch_ok(&kq, &[user(4, EV_DELETE, 0, 0)]);
    ch_err(&kq, &[user(5, EV_DELETE, 0, 0)], libc::ENOENT);
}

/// G16 sysflags_stripped: EV_EOF, EV_ERROR, EV_FLAG1 and 0x1000 in a change are dropped
/// silently, at creation and on a trigger; delivered records do not carry them.
fn g16_sysflags_stripped(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR | EV_SYSFLAGS, 0, 0)]);
    ch_ok(
        &kq,
        &[user(
            1,
            EV_EOF | EV_ERROR | EV_FLAG1 | 0x1000,
            NOTE_TRIGGER,
            0,
        )],
    );
    let ev = expect_one(&kq);
    assert_user(&ev, 1, delivered_flags(p, EV_ADD | EV_CLEAR), 0, 0);
    // An "EV_ERROR|EV_DELETE" change is a plain delete.
    ch_ok(&kq, &[user(1, EV_DELETE | EV_ERROR, 0, 0)]);
    ch_err(&kq, &[user(1, EV_DELETE, 0, 0)], libc::ENOENT);
}

/// G19 fifo_order: EV_CLEAR events triggered in the order 3, 1, 2 are collected in that
/// order.
fn g19_fifo_order(p: Personality) {
    let kq = kq(p);
    for i in 1..=3 {
        ch_ok(&kq, &[user(i, EV_ADD | EV_CLEAR, 0, 0)]);
    }
    for i in [3, 1, 2] {
        trigger(&kq, i);
    }
    let idents: Vec<_> = poll(&kq, 3).iter().map(|e| e.ident).collect();
    assert_eq!(idents, [3, 1, 2]);
    // Re-triggering a queued event does not move it.
    for i in [2, 1, 3, 2] {
        trigger(&kq, i);
    }
    let idents: Vec<_> = poll(&kq, 8).iter().map(|e| e.ident).collect();
    assert_eq!(idents, [2, 1, 3]);
}

/// G20 level_round_robin: two level events A, B; five gets of 1: A, B, A, B, A.
fn g20_level_round_robin(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(0xA, EV_ADD, 0, 0), user(0xB, EV_ADD, 0, 0)]);
    trigger(&kq, 0xA);
    trigger(&kq, 0xB);
    let seq: Vec<_> = (0..5).map(|_| poll(&kq, 1)[0].ident).collect();
    assert_eq!(seq, [0xA, 0xB, 0xA, 0xB, 0xA]);
    // At most one report per knote per call, even with room to spare.
    let idents: Vec<_> = poll(&kq, 8).iter().map(|e| e.ident).collect();
    assert_eq!(idents, [0xB, 0xA]);
}

/// G21 nevents_limits: 5 triggered EV_CLEAR events, get 2 three times: 2, 2, 1.
fn g21_nevents_limits(p: Personality) {
    let kq = kq(p);
    for i in 0..5 {
        ch_ok(&kq, &[user(i, EV_ADD | EV_CLEAR, 0, 0)]);
        trigger(&kq, i);
    }
    let counts: Vec<_> = (0..3).map(|_| poll(&kq, 2).len()).collect();
    assert_eq!(counts, [2, 2, 1]);
    expect_no_events(&kq);
}

/// G24 is in tests/timer.rs (it needs a timer).
///
/// G25 multithread_scan (NB t_scan scan1): two threads each make 10,000 zero-timeout
/// one-slot calls on a kqueue with one level-triggered (user) event; every call returns
/// exactly 1, never 0, never an error.
fn g25_multithread_scan(p: Personality) {
    let kq = Arc::new(kq(p));
    ch_ok(&kq, &[user(1, EV_ADD, 0, 0)]);
    trigger(&kq, 1);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let kq = kq.clone();
            thread::spawn(move || {
                let mut evs = [Kevent::default(); 1];
                for i in 0..10_000 {
                    let n = kq.kevent(&[], &mut evs, Some(Duration::ZERO));
                    assert_eq!(n.unwrap(), 1, "call {i}");
                    assert_eq!(evs[0].ident, 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// G30 flags_echo (a divergence, §2.1): EV_ADD|EV_ENABLE|EV_CLEAR: [NB] delivers exactly
/// those flags, [FB] EV_CLEAR only.
fn g30_flags_echo(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_ENABLE | EV_CLEAR, 0, 0)]);
    trigger(&kq, 1);
    let ev = expect_one(&kq);
    let want = match p {
        Personality::NetBsd => EV_ADD | EV_ENABLE | EV_CLEAR,
        Personality::FreeBsd => EV_CLEAR,
        _ => unimplemented!("another personality"),
    };
    assert_eq!(ev.flags, want, "{ev:?}");
    // [NB] EV_RECEIPT is stored too (§1.3); [FB] keeps it as well (it strips only the action
    // flags).
    ch_ok(&kq, &[user(2, EV_ADD | EV_CLEAR | EV_RECEIPT, 0, 0)]);
    trigger(&kq, 2);
    let ev = expect_one(&kq);
    let want = match p {
        Personality::NetBsd => EV_ADD | EV_CLEAR | EV_RECEIPT,
        Personality::FreeBsd => EV_CLEAR | EV_RECEIPT,
        _ => unimplemented!("another personality"),
    };
    assert_eq!(ev.flags, want, "{ev:?}");
    // [NB] even EV_DISABLE stays in the stored flags of a knote created disabled.
    if p == Personality::NetBsd {
        ch_ok(&kq, &[user(3, EV_ADD | EV_CLEAR | EV_DISABLE, 0, 0)]);
        ch_ok(&kq, &[user(3, EV_ENABLE, NOTE_TRIGGER, 0)]);
        assert_eq!(expect_one(&kq).flags, EV_ADD | EV_CLEAR | EV_DISABLE);
    }
}

/// §1.2: changes are applied strictly in order; ADD then DELETE of one key nets to nothing,
/// and an error does not stop the later changes when a slot was available.
fn changes_in_order(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD, 0, 0), user(1, EV_DELETE, 0, 0)]);
    ch_err(&kq, &[user(1, EV_DELETE, 0, 0)], libc::ENOENT);
    // More than 8 changes (the kernel reads them in chunks of 8).
    let changes: Vec<_> = (0..20)
        .map(|i| user(i, EV_ADD | EV_CLEAR, 0, i as isize))
        .collect();
    ch_ok(&kq, &changes);
    let triggers: Vec<_> = (0..20)
        .rev()
        .map(|i| user(i, 0, NOTE_TRIGGER, i as isize))
        .collect();
    ch_ok(&kq, &triggers);
    let evs = poll(&kq, 32);
    let idents: Vec<_> = evs.iter().map(|e| e.ident).collect();
    assert_eq!(idents, (0..20).rev().collect::<Vec<_>>());
}

/// G17 same_array_in_out: one array as both the changelist and the eventlist (possible
/// through kevent_raw's ChangeList/EventList). Reports are written over already consumed
/// changes only (a write at index j comes after change j was read), and the results are
/// those of separate arrays.
fn g17_same_array_in_out(p: Personality) {
    use std::cell::RefCell;
    use std::rc::Rc;

    #[derive(Default)]
    struct Array {
        slots: Vec<Kevent>,
        read: Vec<bool>,
        violations: Vec<usize>,
    }
    struct In(Rc<RefCell<Array>>);
    struct Out(Rc<RefCell<Array>>);
    impl ChangeList for In {
        fn len(&self) -> usize {
            self.0.borrow().slots.len()
        }
        fn get(&mut self, i: usize) -> Kevent {
            let mut a = self.0.borrow_mut();
            a.read[i] = true;
            a.slots[i]
        }
    }
    impl EventList for Out {
        fn len(&self) -> usize {
            self.0.borrow().slots.len()
        }
        fn put(&mut self, i: usize, ev: Kevent) {
            let mut a = self.0.borrow_mut();
            if !a.read[i] {
                a.violations.push(i);
            }
            a.slots[i] = ev;
        }
    }
    let run = |kq: &Kqueue, changes: Vec<Kevent>| {
        let n = changes.len();
        let a = Rc::new(RefCell::new(Array {
            slots: changes,
            read: vec![false; n],
            violations: vec![],
        }));
        let r = raw(
            kq,
            In(a.clone()),
            Out(a.clone()),
            Some(Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }),
        );
        let a = Rc::try_unwrap(a).ok().unwrap().into_inner();
        assert!(
            a.violations.is_empty(),
            "wrote over unread changes {:?}",
            a.violations
        );
        (r, a.slots)
    };
    let kq = kq(p);
    let (r, slots) = run(
        &kq,
        vec![
            user(98, 0, NOTE_TRIGGER, 0),
            user(1, EV_ADD | EV_CLEAR, 0, 0),
            user(99, EV_DELETE, 0, 0),
            user(2, EV_ADD | EV_RECEIPT, 0, 0),
        ],
    );
    assert_eq!(r, Ok(3), "{slots:?}");
    assert_report(&slots[0], 98, EVFILT_USER, libc::ENOENT);
    assert_report(&slots[1], 99, EVFILT_USER, libc::ENOENT);
    assert_report(&slots[2], 2, EVFILT_USER, 0);
    assert_eq!(
        slots[3],
        user(2, EV_ADD | EV_RECEIPT, 0, 0),
        "slot 3 untouched"
    );
    // The good changes were applied; then a call that reports nothing scans into the array.
    let (r, slots) = run(
        &kq,
        vec![user(1, 0, NOTE_TRIGGER, 11), user(2, 0, NOTE_TRIGGER, 22)],
    );
    assert_eq!(r, Ok(2), "{slots:?}");
    assert_eq!((slots[0].ident, slots[0].data), (1, 11));
    assert_eq!((slots[1].ident, slots[1].data), (2, 22));
}

/// §1.4/§2.3: a scan that finds only stale entries (a queued level event whose trigger an
/// EV_CLEAR change cancelled) or disabled ones goes back to waiting: the timeout is a
/// "not less than" bound, and 0 is returned.
fn stale_entries_keep_waiting(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD, 0, 0), user(2, EV_ADD, 0, 0)]);
    trigger(&kq, 1);
    ch_ok(&kq, &[user(1, EV_CLEAR, 0, 0)]);
    trigger(&kq, 2);
    ch_ok(&kq, &[user(2, EV_DISABLE, 0, 0)]);
    let start = Instant::now();
    let n = kq
        .kevent(
            &[],
            &mut [Kevent::default(); 4],
            Some(Duration::from_millis(100)),
        )
        .unwrap();
    let waited = start.elapsed();
    assert_eq!(n, 0);
    assert!(
        waited >= Duration::from_millis(100),
        "returned after {waited:?}"
    );
    // The disabled one is still latched.
    ch_ok(&kq, &[user(2, EV_ENABLE, 0, 0)]);
    assert_eq!(expect_one(&kq).ident, 2);
}

/// The ABI (§1.7): `struct kevent` of libkqueue (32 bytes on LP64, 20 on ILP32) and the
/// header's constant values.
#[test]
fn kevent_layout_and_constants() {
    use std::mem::{align_of, offset_of, size_of};
    #[cfg(target_pointer_width = "64")]
    let (size, align, offsets) = (32, 8, [0, 8, 10, 12, 16, 24]);
    #[cfg(target_pointer_width = "32")]
    let (size, align, offsets) = (20, 4, [0, 4, 6, 8, 12, 16]);
    assert_eq!((size_of::<Kevent>(), align_of::<Kevent>()), (size, align));
    assert_eq!(
        [
            offset_of!(Kevent, ident),
            offset_of!(Kevent, filter),
            offset_of!(Kevent, flags),
            offset_of!(Kevent, fflags),
            offset_of!(Kevent, data),
            offset_of!(Kevent, udata),
        ],
        offsets
    );
    assert_eq!(
        [
            EVFILT_READ,
            EVFILT_WRITE,
            EVFILT_AIO,
            EVFILT_VNODE,
            EVFILT_PROC,
            EVFILT_SIGNAL
        ],
        [-1, -2, -3, -4, -5, -6]
    );
    assert_eq!([EVFILT_TIMER, EVFILT_FS, EVFILT_USER], [-7, -9, -11]);
    assert_eq!(
        [
            EV_ADD,
            EV_DELETE,
            EV_ENABLE,
            EV_DISABLE,
            EV_ONESHOT,
            EV_CLEAR,
            EV_RECEIPT,
            EV_DISPATCH
        ],
        [0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80]
    );
    assert_eq!(
        [EV_SYSFLAGS, EV_FLAG1, EV_EOF, EV_ERROR],
        [0xF000, 0x2000, 0x8000, 0x4000]
    );
    assert_eq!(
        [
            NOTE_FFNOP,
            NOTE_FFAND,
            NOTE_FFOR,
            NOTE_FFCOPY,
            NOTE_FFCTRLMASK,
            NOTE_FFLAGSMASK,
            NOTE_TRIGGER
        ],
        [
            0,
            0x4000_0000,
            0x8000_0000,
            0xC000_0000,
            0xC000_0000,
            0x00FF_FFFF,
            0x0100_0000
        ]
    );
    assert_eq!(
        [NOTE_SECONDS, NOTE_USECONDS, NOTE_NSECONDS, NOTE_ABSOLUTE],
        [1, 2, 4, 8]
    );
    let ev = Kevent::new(1, EVFILT_USER, EV_ADD, 2, -3, ptr(4));
    assert_eq!(
        (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data, ev.udata),
        (1, -11, 1, 2, -3, ptr(4))
    );
    assert_eq!(
        Kevent::default(),
        Kevent::new(0, 0, 0, 0, 0, std::ptr::null_mut())
    );
}

both!(
    g1_kqueue,
    g2_close,
    g4_invalid_timeout,
    g5_poll_timeout_zero,
    g6_relative_timeout,
    g7_eintr,
    g7b_signal_before_sleep_not_lost,
    g9_evfilt_aio_unimplemented,
    many_events_in_one_call,
    g8_unknown_filter,
    g10_enoent_ops,
    g12_errors_continue,
    g13_errors_no_room_abort,
    g14_receipt_batch,
    g15_receipt_no_room,
    g16_sysflags_stripped,
    g19_fifo_order,
    g20_level_round_robin,
    g21_nevents_limits,
    g25_multithread_scan,
    g30_flags_echo,
    changes_in_order,
    g17_same_array_in_out,
    stale_entries_keep_waiting,
);

/// Scale: one million user events in one kqueue work (no descriptor or other
/// per-event resource but memory): add them in batches, trigger some, collect exactly
/// those, delete them all.
#[test]
fn one_million_user_events() {
    const N: usize = 1_000_000;
    let kq = Kqueue::new().unwrap();
    let batch: Vec<Kevent> = Vec::with_capacity(4096);
    let mut batch = batch;
    for start in (0..N).step_by(4096) {
        batch.clear();
        batch.extend((start..(start + 4096).min(N)).map(|i| user(i, EV_ADD | EV_CLEAR, 0, 0)));
        ch_ok(&kq, &batch);
    }
    let fired = [0, 1, 4242, 999_999, 500_000];
    for &i in &fired {
        trigger(&kq, i);
    }
    let got: Vec<usize> = get(&kq, 16, Some(Duration::ZERO))
        .iter()
        .map(|e| e.ident)
        .collect();
    assert_eq!(got, fired);
    for start in (0..N).step_by(4096) {
        batch.clear();
        batch.extend((start..(start + 4096).min(N)).map(|i| user(i, EV_DELETE, 0, 0)));
        ch_ok(&kq, &batch);
    }
    ch_err(&kq, &[user(4242, 0, NOTE_TRIGGER, 0)], libc::ENOENT);
}

/// No leak, from Rust: 100,000 Kqueue::new()/drop cycles (some with user events and
/// a timer) leak no descriptor and no thread.
#[test]
fn kqueue_drop_100k_leaks_nothing() {
    fn fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }
    fn threads() -> usize {
        std::fs::read_dir("/proc/self/task").unwrap().count()
    }
    // Warm up what is made once per process (the timer thread).
    let kq = Kqueue::new().unwrap();
    ch_ok(
        &kq,
        &[Kevent::new(1, EVFILT_TIMER, EV_ADD, 0, 1000, ptr(0))],
    );
    drop(kq);
    let (fds0, threads0) = (fds(), threads());
    for i in 0..100_000 {
        let kq = Kqueue::new().unwrap();
        if i % 1000 == 0 {
            ch_ok(
                &kq,
                &[
                    user(1, EV_ADD, 0, 0),
                    user(1, 0, NOTE_TRIGGER, 0),
                    Kevent::new(2, EVFILT_TIMER, EV_ADD, 0, 1000, ptr(0)),
                ],
            );
        }
    }
    // Other tests of this binary may hold a few descriptors and threads meanwhile.
    assert!(fds() <= fds0 + 16, "fds {fds0} -> {}", fds());
    assert!(
        threads() <= threads0 + 4,
        "threads {threads0} -> {}",
        threads()
    );
}
