//! EVFILT_PROC (docs/semantics.md §5.11, cases P1-P5 of §7.9): exit statuses of children
//! and of other processes, forks and execs, NOTE_TRACK, the errors, and the fallbacks for
//! older kernels, which `fallbacks_*` run by starting this test binary again with
//! `KQ_NO_PIDFD`, `KQ_NO_PIDFD_INFO` or `KQ_NO_PROC_CONNECTOR` set.
//!
//! The tests fork, and some watch this very process (NOTE_TRACK on ourselves): they run one
//! at a time (`serial`). Children do only async-signal-safe things (read, write, fork,
//! _exit, exec).

mod util;

use kq::{
    Kevent, Kqueue, Personality, EVFILT_PROC, EV_ADD, EV_CLEAR, EV_DELETE, EV_EOF, EV_ERROR,
    EV_ONESHOT, NOTE_CHILD, NOTE_EXEC, NOTE_EXIT, NOTE_FORK, NOTE_TRACK, NOTE_TRACKERR,
};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use util::{kq, ptr};

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which fallback this run forces (set by `fallbacks_*` when it starts the binary again).
fn forced(var: &str) -> bool {
    std::env::var_os(var).is_some()
}

fn no_pidfd() -> bool {
    forced("KQ_NO_PIDFD")
}

fn no_connector() -> bool {
    forced("KQ_NO_PROC_CONNECTOR")
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut p = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `p`.
    assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: two new descriptors, owned from here on.
    unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) }
}

/// In a child: blocks until a byte (or end of file) arrives on `fd`.
fn child_wait(fd: RawFd) {
    let mut b = 0u8;
    // SAFETY: one byte into a live buffer.
    unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
}

/// In a child: writes the 4 bytes of `v` to `fd`.
fn child_send(fd: RawFd, v: i32) {
    let b = v.to_ne_bytes();
    // SAFETY: four bytes from a live buffer.
    unsafe { libc::write(fd, b.as_ptr().cast(), 4) };
}

fn send_byte(fd: &OwnedFd) {
    // SAFETY: one byte from a live buffer.
    assert_eq!(
        unsafe { libc::write(fd.as_raw_fd(), b"x".as_ptr().cast(), 1) },
        1
    );
}

fn recv_i32(fd: &OwnedFd) -> i32 {
    let mut b = [0u8; 4];
    // SAFETY: four bytes into a live buffer.
    assert_eq!(
        unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 4) },
        4
    );
    i32::from_ne_bytes(b)
}

/// Forks a child that runs `f` (async-signal-safe only) and exits with what it returns.
fn fork_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `f`, which the callers keep async-signal-safe, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        // A test that fails leaves no child waiting forever: it dies with the thread that
        // made it.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        let code = f();
        // SAFETY: ends the child without running the parent's destructors or atexit.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Reaps `pid`, waiting: its status.
fn reap(pid: i32) -> i32 {
    let mut st = 0;
    // SAFETY: `st` is a live int.
    assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
    st
}

/// Reaps `pid` if it can be, without waiting.
fn try_reap(pid: i32) -> Option<i32> {
    let mut st = 0;
    // SAFETY: `st` is a live int.
    let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
    (r == pid).then_some(st)
}

/// Waits until child `pid` has exited (without reaping it): a zombie.
fn wait_zombie(pid: i32) {
    // SAFETY: siginfo_t is plain data; waitid fills it.
    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut si,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(r, 0);
}

fn proc_kev(pid: i32, flags: u16, fflags: u32) -> Kevent {
    Kevent::new(pid as usize, EVFILT_PROC, flags, fflags, 0, ptr(0x5eed))
}

fn add(kq: &Kqueue, pid: i32, fflags: u32) -> io::Result<usize> {
    kq.kevent(&[proc_kev(pid, EV_ADD, fflags)], &mut [], None)
}

fn errno(r: io::Result<usize>) -> i32 {
    r.expect_err("the change should fail")
        .raw_os_error()
        .unwrap_or(0)
}

fn poll(kq: &Kqueue) -> Vec<Kevent> {
    wait(kq, Duration::ZERO)
}

fn wait(kq: &Kqueue, t: Duration) -> Vec<Kevent> {
    let mut ev = [Kevent::default(); 32];
    let n = kq.kevent(&[], &mut ev, Some(t)).expect("kevent");
    ev[..n].to_vec()
}

/// Collects events until `done` says enough (or 10 s pass, which fails).
fn collect_until(kq: &Kqueue, mut done: impl FnMut(&[Kevent]) -> bool) -> Vec<Kevent> {
    let end = Instant::now() + Duration::from_secs(10);
    let mut all = Vec::new();
    while !done(&all) {
        assert!(Instant::now() < end, "timed out; events so far: {all:#?}");
        all.extend(wait(kq, Duration::from_millis(100)));
    }
    all
}

/// The flags of an exit record: the stored flags (NetBSD keeps EV_ADD), EV_CLEAR forced,
/// EV_EOF and EV_ONESHOT added.
fn exit_flags(p: Personality) -> u16 {
    let stored = if p == Personality::NetBsd { EV_ADD } else { 0 };
    stored | EV_CLEAR | EV_EOF | EV_ONESHOT
}

const fn exited(code: i32) -> i32 {
    (code & 0xff) << 8
}

/// P5 exit_status: a child's exit is reported with its wait status in `data`, EV_EOF and
/// EV_ONESHOT, udata kept; the knote is gone after it; the child can then be reaped at
/// once (NetBSD t_proc4) with the same status.
fn p5_exit_status(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let (r, w) = pipe();
    let rfd = r.as_raw_fd();
    let pid = fork_child(|| {
        child_wait(rfd);
        7
    });
    add(&kq, pid, NOTE_EXIT).unwrap();
    assert!(poll(&kq).is_empty());
    send_byte(&w);
    let ev = wait(&kq, Duration::from_secs(5));
    assert_eq!(ev.len(), 1, "{ev:?}");
    let e = ev[0];
    assert_eq!(
        (e.ident, e.filter, e.fflags),
        (pid as usize, EVFILT_PROC, NOTE_EXIT)
    );
    assert_eq!(e.data as i32, exited(7));
    assert_eq!(e.flags, exit_flags(p));
    assert_eq!(e.udata, ptr(0x5eed));
    assert_eq!(
        try_reap(pid),
        Some(exited(7)),
        "reapable once NOTE_EXIT was read"
    );
    // The oneshot record took the knote with it.
    let del = kq.kevent(&[proc_kev(pid, EV_DELETE, 0)], &mut [], None);
    assert_eq!(errno(del), libc::ENOENT);
    assert!(poll(&kq).is_empty());
}

/// exit_killed: a child killed by a signal reports the signal number as its status.
fn p5_exit_killed(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let (r, _w) = pipe();
    let rfd = r.as_raw_fd();
    let pid = fork_child(|| {
        child_wait(rfd);
        0
    });
    add(&kq, pid, NOTE_EXIT).unwrap();
    // SAFETY: signals our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let ev = wait(&kq, Duration::from_secs(5));
    assert_eq!(ev.len(), 1);
    let st = ev[0].data as i32;
    assert!(
        libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL,
        "{st:#x}"
    );
    assert_eq!(reap(pid), st, "the program's own wait gets the same status");
}

/// The program reaps the child itself after NOTE_EXIT; a second kqueue that watched the
/// same child reports the same status too (several kqueues may watch one process).
fn p5_two_kqueues_one_child(p: Personality) {
    let _s = serial();
    let (a, b) = (kq(p), kq(p));
    let (r, w) = pipe();
    let rfd = r.as_raw_fd();
    let pid = fork_child(|| {
        child_wait(rfd);
        42
    });
    add(&a, pid, NOTE_EXIT).unwrap();
    add(&b, pid, NOTE_EXIT).unwrap();
    send_byte(&w);
    for kq in [&a, &b] {
        let ev = wait(kq, Duration::from_secs(5));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].data as i32, exited(42));
    }
    assert_eq!(reap(pid), exited(42));
}

/// ESRCH for a process that does not exist: a reaped child's pid, pids out of range.
fn p5_no_such_process(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let pid = fork_child(|| 0);
    reap(pid);
    for ident in [pid as usize, 0, i32::MAX as usize, usize::MAX] {
        let c = [Kevent::new(
            ident,
            EVFILT_PROC,
            EV_ADD,
            NOTE_EXIT,
            0,
            ptr(0),
        )];
        let e = kq.kevent(&c, &mut [], None).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH), "ident {ident}");
        // And as an EV_ERROR entry.
        let mut out = [Kevent::default()];
        assert_eq!(kq.kevent(&c, &mut out, None).unwrap(), 1);
        assert_eq!(
            (out[0].flags, out[0].data),
            (EV_ERROR, libc::ESRCH as isize)
        );
    }
}

/// A zombie (exited, not reaped): NetBSD says ESRCH; FreeBSD registers it when NOTE_EXIT
/// is asked for and reports the exit at once, and says ESRCH otherwise.
fn p5_zombie(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let pid = fork_child(|| 3);
    wait_zombie(pid);
    let r = add(&kq, pid, NOTE_EXIT);
    match p {
        Personality::NetBsd => assert_eq!(errno(r), libc::ESRCH),
        _ => {
            r.unwrap();
            let ev = poll(&kq);
            assert_eq!(ev.len(), 1, "fires at once");
            assert_eq!((ev[0].fflags, ev[0].data as i32), (NOTE_EXIT, exited(3)));
            assert_eq!(ev[0].flags, exit_flags(p));
        }
    }
    if !no_connector() {
        assert_eq!(errno(add(&kq, pid, NOTE_FORK)), libc::ESRCH);
    }
    assert_eq!(reap(pid), exited(3));
}

/// The exit of a process watched without NOTE_EXIT: NetBSD reports it all the same
/// (fflags 0, the status in data); FreeBSD drops the knote unreported.
fn p5_exit_not_asked_for(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let (r, w) = pipe();
    let rfd = r.as_raw_fd();
    let pid = fork_child(|| {
        child_wait(rfd);
        9
    });
    add(&kq, pid, 0).unwrap();
    send_byte(&w);
    match p {
        Personality::NetBsd => {
            let ev = wait(&kq, Duration::from_secs(5));
            assert_eq!(ev.len(), 1);
            assert_eq!((ev[0].fflags, ev[0].data as i32), (0, exited(9)));
            assert_eq!(ev[0].flags, exit_flags(p));
        }
        _ => {
            wait_zombie(pid);
            // Nothing is reported, and the knote is gone once the scan has passed it.
            let end = Instant::now() + Duration::from_millis(300);
            while Instant::now() < end {
                assert!(wait(&kq, Duration::from_millis(50)).is_empty());
            }
            let del = kq.kevent(&[proc_kev(pid, EV_DELETE, 0)], &mut [], None);
            assert_eq!(errno(del), libc::ENOENT);
        }
    }
    assert_eq!(reap(pid), exited(9));
}

/// Exit of a process that is not our child (a grandchild): the status comes from
/// PIDFD_GET_INFO once its parent has reaped it, from /proc while it is a zombie. Without
/// process descriptors such a process cannot be watched (EOPNOTSUPP).
fn p5_exit_of_non_child(p: Personality) {
    let _s = serial();
    for reaped_at_once in [false, true] {
        let kq = kq(p);
        let (r, w) = pipe(); // grandchild's pid, to us
        let (gr, gw) = pipe(); // "exit now", to the grandchild
        let (cr, cw) = pipe(); // "reap it now", to the child
        let (wfd, grfd, crfd) = (w.as_raw_fd(), gr.as_raw_fd(), cr.as_raw_fd());
        let child = fork_child(move || {
            let g = fork_child(move || {
                child_wait(grfd);
                21
            });
            child_send(wfd, g);
            if !reaped_at_once {
                child_wait(crfd);
            }
            let mut st = 0;
            // SAFETY: `st` is a live int.
            unsafe { libc::waitpid(g, &mut st, 0) };
            child_wait(crfd);
            0
        });
        let g = recv_i32(&r);
        let added = add(&kq, g, NOTE_EXIT);
        if no_pidfd() {
            assert_eq!(errno(added), libc::EOPNOTSUPP);
        } else {
            added.unwrap();
            send_byte(&gw);
            let ev = wait(&kq, Duration::from_secs(5));
            assert_eq!(ev.len(), 1, "{ev:?}");
            assert_eq!((ev[0].ident, ev[0].fflags), (g as usize, NOTE_EXIT));
            // PIDFD_GET_INFO turned off and the grandchild reaped before we looked: the
            // status is lost (0); every other way gives it.
            let lost = forced("KQ_NO_PIDFD_INFO") && reaped_at_once && ev[0].data == 0;
            assert!(lost || ev[0].data as i32 == exited(21), "{:#x}", ev[0].data);
        }
        send_byte(&gw);
        send_byte(&cw);
        send_byte(&cw);
        reap(child);
    }
}

/// P1 fork_exec_exit: a watched child's fork, exec and exit are reported with the bits
/// asked for, accumulated in one record until it is read.
fn p1_fork_exec_exit(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let (r1, w1) = pipe();
    let (r2, w2) = pipe();
    let (fd1, fd2) = (r1.as_raw_fd(), r2.as_raw_fd());
    let pid = fork_child(move || {
        child_wait(fd1);
        let g = fork_child(|| 0);
        let mut st = 0;
        // SAFETY: `st` is a live int.
        unsafe { libc::waitpid(g, &mut st, 0) };
        child_wait(fd2);
        let argv = [
            c"/bin/sh".as_ptr(),
            c"-c".as_ptr(),
            c"exit 5".as_ptr(),
            std::ptr::null(),
        ];
        // SAFETY: a null-terminated argv of C strings.
        unsafe { libc::execv(argv[0], argv.as_ptr()) };
        99
    });
    let r = add(&kq, pid, NOTE_FORK | NOTE_EXEC | NOTE_EXIT);
    if no_connector() {
        assert_eq!(errno(r), libc::EOPNOTSUPP);
        // NOTE_EXIT alone still works.
        add(&kq, pid, NOTE_EXIT).unwrap();
        send_byte(&w1);
        send_byte(&w2);
        let ev = collect_until(&kq, |e| !e.is_empty());
        assert_eq!((ev[0].fflags, ev[0].data as i32), (NOTE_EXIT, exited(5)));
        reap(pid);
        return;
    }
    r.unwrap();
    send_byte(&w1);
    let ev = collect_until(&kq, |e| !e.is_empty());
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].fflags, NOTE_FORK, "{ev:?}");
    assert_eq!(ev[0].flags & (EV_EOF | EV_ONESHOT), 0);
    send_byte(&w2);
    let ev = collect_until(&kq, |e| e.iter().any(|e| e.fflags & NOTE_EXIT != 0));
    let all = ev.iter().fold(0, |a, e| a | e.fflags);
    assert_eq!(all, NOTE_EXEC | NOTE_EXIT, "{ev:?}");
    let last = ev.last().unwrap();
    assert_eq!(last.data as i32, exited(5));
    assert_eq!(last.flags, exit_flags(p));
    assert_eq!(reap(pid), exited(5));
}

/// P2 track_child: NOTE_TRACK on a child that forks gives a NOTE_CHILD record (ident: the
/// grandchild, data: the child, udata copied), then the grandchild's exit through the
/// tracking knote, and the child's own; NOTE_FORK only where asked for.
fn p2_track_child(p: Personality) {
    let _s = serial();
    for fork_too in [false, true] {
        let kq = kq(p);
        let (r, w) = pipe();
        let (gpr, gpw) = pipe();
        let (rfd, gpfd) = (r.as_raw_fd(), gpw.as_raw_fd());
        let pid = fork_child(move || {
            child_wait(rfd);
            let g = fork_child(|| 12);
            child_send(gpfd, g);
            let mut st = 0;
            // SAFETY: `st` is a live int.
            unsafe { libc::waitpid(g, &mut st, 0) };
            11
        });
        let fflags = NOTE_TRACK | NOTE_EXIT | if fork_too { NOTE_FORK } else { 0 };
        let r = add(&kq, pid, fflags);
        if no_connector() {
            assert_eq!(errno(r), libc::EOPNOTSUPP);
            send_byte(&w);
            reap(pid);
            continue;
        }
        r.unwrap();
        send_byte(&w);
        let g = recv_i32(&gpr);
        // Until the child's exit, and on NetBSD the grandchild's too: the two come from
        // different sources (the child's process descriptor, the connector for a
        // grandchild that was reaped before its tracking knote could open one), so the
        // grandchild's may be reported after the child's although it happened first.
        let exit_of = |e: &[Kevent], who: i32| {
            e.iter()
                .any(|e| e.ident == who as usize && e.fflags & NOTE_EXIT != 0)
        };
        let ev = collect_until(&kq, |e| {
            exit_of(e, pid) && (p != Personality::NetBsd || exit_of(e, g))
        });
        let child: Vec<_> = ev.iter().filter(|e| e.fflags & NOTE_CHILD != 0).collect();
        assert_eq!(child.len(), 1, "{ev:#?}");
        let c = child[0];
        assert_eq!((c.ident, c.filter), (g as usize, EVFILT_PROC));
        assert_eq!(c.udata, ptr(0x5eed));
        assert!(c.flags & EV_ONESHOT != 0);
        let forks = ev.iter().filter(|e| e.fflags & NOTE_FORK != 0).count();
        assert_eq!(forks, usize::from(fork_too), "{ev:#?}");
        assert!(ev.iter().all(|e| e.fflags & NOTE_TRACKERR == 0));
        let exits_of = |who: i32| {
            ev.iter()
                .filter(|e| e.ident == who as usize && e.fflags & NOTE_EXIT != 0)
                .map(|e| e.data as i32)
                .collect::<Vec<_>>()
        };
        assert_eq!(exits_of(pid), [exited(11)]);
        if p == Personality::NetBsd {
            // A record of its own (data: the parent), then the tracking knote's exit.
            assert_eq!((c.fflags, c.data), (NOTE_CHILD, pid as isize));
            assert_eq!(exits_of(g), [exited(12)]);
            let pos = |f: &dyn Fn(&Kevent) -> bool| ev.iter().position(f).unwrap();
            assert!(
                pos(&|e| e.fflags & NOTE_CHILD != 0)
                    < pos(&|e| e.ident == g as usize && e.fflags & NOTE_EXIT != 0)
            );
        } else if c.fflags & NOTE_EXIT != 0 {
            // FreeBSD: the grandchild's exit merged into its NOTE_CHILD knote.
            assert_eq!(
                (c.fflags, c.data as i32),
                (NOTE_CHILD | NOTE_EXIT, exited(12))
            );
            assert_eq!(c.flags & EV_EOF, EV_EOF);
        } else {
            // FreeBSD: the NOTE_CHILD knote was read first, which ended the tracking.
            assert_eq!((c.fflags, c.data), (NOTE_CHILD, pid as isize));
            assert!(exits_of(g).is_empty());
        }
        assert_eq!(reap(pid), exited(11));
        assert!(poll(&kq).is_empty());
    }
}

/// P3 track_self: NOTE_TRACK on this very process; a fork gives NOTE_CHILD with ident =
/// the child, no NOTE_TRACKERR, then the child's exit.
fn p3_track_self(p: Personality) {
    let _s = serial();
    if no_connector() {
        return;
    }
    let kq = kq(p);
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    add(&kq, me, NOTE_TRACK | NOTE_EXIT).unwrap();
    let pid = fork_child(|| 4);
    let netbsd = p == Personality::NetBsd;
    // NetBSD: the record, then the exit of the tracking knote. FreeBSD: one knote, the
    // exit merged into it unless it was read first.
    let ev = collect_until(&kq, |e| {
        e.iter()
            .any(|e| e.fflags & NOTE_EXIT != 0 || (!netbsd && e.fflags & NOTE_CHILD != 0))
    });
    let c = ev
        .iter()
        .find(|e| e.fflags & NOTE_CHILD != 0)
        .expect("NOTE_CHILD");
    assert_eq!(c.ident, pid as usize);
    assert!(ev.iter().all(|e| e.fflags & NOTE_TRACKERR == 0));
    if netbsd || c.fflags & NOTE_EXIT == 0 {
        assert_eq!(c.data, me as isize);
    }
    if let Some(x) = ev.iter().find(|e| e.fflags & NOTE_EXIT != 0) {
        assert_eq!((x.ident, x.data as i32), (pid as usize, exited(4)));
    }
    assert_eq!(reap(pid), exited(4));
    kq.kevent(&[proc_kev(me, EV_DELETE, 0)], &mut [], None)
        .unwrap();
}

/// P4 track_descendants (NetBSD t_proc4): tracking ourselves, 10 children each make 10
/// grandchildren and reap them: 110 NOTE_CHILD records, 10 child exits (reapable at once
/// with the reported status) and 100 grandchild exits with their statuses, each with
/// EV_EOF; never NOTE_FORK nor NOTE_TRACKERR; nothing left at the end. FreeBSD: the 110
/// NOTE_CHILD knotes, each with its process's exit merged in if it came before the knote
/// was read, and no other exit.
fn p4_track_descendants(p: Personality) {
    let _s = serial();
    if no_connector() {
        return;
    }
    const N: usize = 10;
    let kq = kq(p);
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    add(&kq, me, NOTE_TRACK | NOTE_EXIT).unwrap();
    let mut kids = Vec::new();
    for _ in 0..N {
        kids.push(fork_child(|| {
            let mut g = [0; N];
            for s in g.iter_mut() {
                *s = fork_child(|| 76);
            }
            for s in g {
                let mut st = 0;
                // SAFETY: `st` is a live int.
                unsafe { libc::waitpid(s, &mut st, 0) };
            }
            66
        }));
    }
    let netbsd = p == Personality::NetBsd;
    // [NOTE_CHILD records, child exits, grandchild exits]
    let mut n = [0usize; 3];
    let mut reaped = Vec::new();
    let check = |e: &Kevent, n: &mut [usize; 3], reaped: &mut Vec<i32>| {
        assert_eq!(e.filter, EVFILT_PROC);
        assert_eq!(e.fflags & (NOTE_FORK | NOTE_TRACKERR), 0, "{e:?}");
        if e.fflags & NOTE_CHILD != 0 {
            n[0] += 1;
        }
        if e.fflags & NOTE_EXIT != 0 {
            // FreeBSD reports an exit only merged into the NOTE_CHILD knote.
            assert!(netbsd || e.fflags & NOTE_CHILD != 0, "{e:?}");
            assert!(e.flags & EV_EOF != 0);
            let st = e.data as i32;
            assert!(libc::WIFEXITED(st), "{st:#x}");
            match libc::WEXITSTATUS(st) {
                66 => {
                    n[1] += 1;
                    assert!(kids.contains(&(e.ident as i32)));
                    assert_eq!(try_reap(e.ident as i32), Some(st));
                    reaped.push(e.ident as i32);
                }
                76 => n[2] += 1,
                s => panic!("exit status {s}"),
            }
        } else {
            assert!(e.fflags & NOTE_CHILD != 0, "{e:?}");
        }
    };
    let end = Instant::now() + Duration::from_secs(20);
    if netbsd {
        while n != [N + N * N, N, N * N] {
            assert!(Instant::now() < end, "{n:?}");
            for e in wait(&kq, Duration::from_millis(200)) {
                check(&e, &mut n, &mut reaped);
            }
        }
        assert!(poll(&kq).is_empty());
    } else {
        // FreeBSD: a knote read before its process forked ends the tracking of that
        // branch, so the counts depend on timing: collect until every child has exited
        // and nothing more comes.
        for &k in &kids {
            wait_zombie(k);
        }
        loop {
            assert!(Instant::now() < end, "{n:?}");
            let ev = wait(&kq, Duration::from_millis(300));
            if ev.is_empty() && n[0] >= N {
                break;
            }
            for e in ev {
                check(&e, &mut n, &mut reaped);
            }
        }
        assert!(n[0] <= N + N * N);
    }
    for k in kids {
        if !reaped.contains(&k) {
            assert_eq!(reap(k), exited(66));
        }
    }
    kq.kevent(&[proc_kev(me, EV_DELETE, 0)], &mut [], None)
        .unwrap();
}

/// The connector cannot be had (`KQ_NO_PROC_CONNECTOR`): NOTE_FORK, NOTE_EXEC and
/// NOTE_TRACK fail with EOPNOTSUPP, and nothing is left registered.
fn p5_no_connector_errno(p: Personality) {
    let _s = serial();
    if !no_connector() {
        return;
    }
    let kq = kq(p);
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    for f in [NOTE_FORK, NOTE_EXEC, NOTE_TRACK, NOTE_EXIT | NOTE_FORK] {
        assert_eq!(errno(add(&kq, me, f)), libc::EOPNOTSUPP);
        let del = kq.kevent(&[proc_kev(me, EV_DELETE, 0)], &mut [], None);
        assert_eq!(errno(del), libc::ENOENT);
    }
    add(&kq, me, NOTE_EXIT).unwrap();
    // Asking for forks later fails the same way, and leaves the knote as it was.
    assert_eq!(errno(add(&kq, me, NOTE_EXIT | NOTE_FORK)), libc::EOPNOTSUPP);
    kq.kevent(&[proc_kev(me, EV_DELETE, 0)], &mut [], None)
        .unwrap();
}

/// P5 add_delete: EV_DELETE of a live process's knote: nothing is reported afterwards, and
/// its process descriptor is closed at once.
fn p5_add_delete(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let (r, w) = pipe();
    let rfd = r.as_raw_fd();
    let pid = fork_child(|| {
        child_wait(rfd);
        1
    });
    let before = open_pidfds();
    add(&kq, pid, NOTE_EXIT).unwrap();
    kq.kevent(&[proc_kev(pid, EV_DELETE, 0)], &mut [], None)
        .unwrap();
    assert_eq!(open_pidfds(), before);
    send_byte(&w);
    wait_zombie(pid);
    assert!(wait(&kq, Duration::from_millis(50)).is_empty());
    assert_eq!(reap(pid), exited(1));
}

/// P5 modify_interest: EV_ADD on an existing knote replaces the interest: a NOTE_EXIT
/// knote made to want NOTE_FORK too reports the next fork.
fn p5_modify_interest(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let (r, w) = pipe();
    let rfd = r.as_raw_fd();
    let pid = fork_child(move || {
        child_wait(rfd);
        let g = fork_child(|| 0);
        let mut st = 0;
        // SAFETY: `st` is a live int.
        unsafe { libc::waitpid(g, &mut st, 0) };
        child_wait(rfd);
        2
    });
    add(&kq, pid, NOTE_EXIT).unwrap();
    let r = add(&kq, pid, NOTE_EXIT | NOTE_FORK);
    if no_connector() {
        assert_eq!(errno(r), libc::EOPNOTSUPP);
    } else {
        r.unwrap();
        send_byte(&w);
        let ev = collect_until(&kq, |e| !e.is_empty());
        assert_eq!(ev[0].fflags, NOTE_FORK);
    }
    send_byte(&w);
    send_byte(&w);
    let ev = collect_until(&kq, |e| e.iter().any(|e| e.fflags & NOTE_EXIT != 0));
    assert_eq!(ev.last().unwrap().data as i32, exited(2));
    reap(pid);
}

/// P5 exit_with_fork_pending: a process that forks, then exits, watched for NOTE_FORK only.
/// The exit is reported after the fork, in the same record if the fork was not read yet
/// (the library may report the fork first: it reports an exit once the connector has, and
/// a program can collect in between, as on a BSD it could before the exit). NetBSD puts the
/// status in the exit record; FreeBSD leaves `data` alone (NOTE_EXIT was not asked for),
/// and drops the knote unreported if the fork was already read.
fn p5_exit_with_fork_pending(p: Personality) {
    let _s = serial();
    if no_connector() {
        return;
    }
    let kq = kq(p);
    let (r, w) = pipe();
    let rfd = r.as_raw_fd();
    let pid = fork_child(move || {
        child_wait(rfd);
        let g = fork_child(|| 0);
        let mut st = 0;
        // SAFETY: `st` is a live int.
        unsafe { libc::waitpid(g, &mut st, 0) };
        6
    });
    add(&kq, pid, NOTE_FORK).unwrap();
    send_byte(&w);
    wait_zombie(pid);
    let gone = || {
        let probe = kq.kevent(&[proc_kev(pid, 0, NOTE_FORK)], &mut [], None);
        probe.is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT))
    };
    let ev = collect_until(&kq, |e| e.iter().any(|e| e.flags & EV_EOF != 0) || gone());
    assert_eq!(ev.iter().fold(0, |a, e| a | e.fflags), NOTE_FORK, "{ev:?}");
    match ev.iter().find(|e| e.flags & EV_EOF != 0) {
        Some(x) => {
            assert_eq!(x.flags, exit_flags(p));
            let want = if p == Personality::NetBsd {
                exited(6)
            } else {
                0
            };
            assert_eq!(x.data as i32, want);
        }
        None => assert_eq!(p, Personality::FreeBsd, "{ev:?}"),
    }
    reap(pid);
}

/// A child's SIGCHLD (ignored, as by default) never ends a kevent() waiting for its exit,
/// nor one waiting for something else, with EINTR: children exit while this thread, the
/// one that made them, waits.
fn sigchld_does_not_interrupt(p: Personality) {
    let _s = serial();
    let kq = kq(p);
    let (r, w) = pipe();
    let rfd = r.as_raw_fd();
    let last = fork_child(|| {
        child_wait(rfd);
        5
    });
    add(&kq, last, NOTE_EXIT).unwrap();
    let others: Vec<i32> = (0..20)
        .map(|i| {
            fork_child(move || {
                // SAFETY: sleeps, then the child ends.
                unsafe { libc::usleep(1000 * i) };
                0
            })
        })
        .collect();
    // Nothing to report for 50 ms while the others exit: no EINTR.
    assert!(wait(&kq, Duration::from_millis(50)).is_empty());
    send_byte(&w);
    let ev = wait(&kq, Duration::from_secs(5));
    assert_eq!((ev.len(), ev[0].data as i32), (1, exited(5)));
    for pid in others.into_iter().chain([last]) {
        reap(pid);
    }
}

both!(
    p5_add_delete,
    p5_modify_interest,
    p5_exit_with_fork_pending,
    sigchld_does_not_interrupt,
    p5_exit_status,
    p5_exit_killed,
    p5_two_kqueues_one_child,
    p5_no_such_process,
    p5_zombie,
    p5_exit_not_asked_for,
    p5_exit_of_non_child,
    p1_fork_exec_exit,
    p2_track_child,
    p3_track_self,
    p4_track_descendants,
    p5_no_connector_errno,
);

/// The number of process descriptors this process has open.
fn open_pidfds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.as_os_str() == "anon_inode:[pidfd]")
        .count()
}

/// Closing a kqueue releases its process descriptors at once (one per watched process).
#[test]
fn p5_close_releases_pidfds() {
    let _s = serial();
    let (w, pids) = waiting_children(8);
    let before = open_pidfds();
    let kq = kq(Personality::NetBsd);
    for &pid in &pids {
        add(&kq, pid, NOTE_EXIT).unwrap();
    }
    let per = if no_pidfd() { 0 } else { pids.len() };
    assert_eq!(open_pidfds(), before + per);
    drop(kq);
    assert_eq!(
        open_pidfds(),
        before,
        "the kqueue's process descriptors are gone"
    );
    let_exit(w, pids);
}

/// `n` children of ours that wait for a byte each on the returned pipe (see
/// [`let_exit`]).
fn waiting_children(n: usize) -> (OwnedFd, Vec<i32>) {
    let (r, w) = pipe();
    let rfd = r.as_raw_fd();
    let pids = (0..n)
        .map(|_| {
            fork_child(|| {
                child_wait(rfd);
                0
            })
        })
        .collect();
    (w, pids)
}

/// Lets the children of [`waiting_children`] exit, and reaps them.
fn let_exit(w: OwnedFd, pids: Vec<i32>) {
    for _ in &pids {
        send_byte(&w);
    }
    for pid in pids {
        assert_eq!(reap(pid), 0);
    }
}

/// `kq` (a kqueue closed while held) gives EBADF.
fn assert_closed(kq: &Kqueue) {
    let r = kq.kevent(&[], &mut [Kevent::default()], Some(Duration::ZERO));
    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EBADF));
}

/// Closing a kqueue descriptor releases the kqueue's process descriptors before close()
/// returns, even while something else holds the kqueue for a moment (here a `KqueueRef`;
/// in a program, the library's process monitor posting to it, or a watching kqueue): the
/// knotes are detached by the close, not by whoever lets go of the kqueue last. That holder
/// then gets EBADF.
#[test]
fn p5_close_releases_pidfds_while_the_kqueue_is_held() {
    let _s = serial();
    let (w, pids) = waiting_children(4);
    let before = open_pidfds();
    let n = Kqueue::new_raw_fd(Personality::NetBsd).unwrap();
    // SAFETY: n stays open until the close below; after it the borrowed number is not
    // used again (only the kqueue behind it, which gives EBADF).
    let held = Kqueue::find(unsafe { std::os::fd::BorrowedFd::borrow_raw(n) }).unwrap();
    for &pid in &pids {
        add(&held, pid, NOTE_EXIT).unwrap();
    }
    let per = if no_pidfd() { 0 } else { pids.len() };
    assert_eq!(open_pidfds(), before + per);
    // The interposed close(), as the C library makes it.
    let token = kq::fdclose_begin(n);
    // SAFETY: closes the raw kqueue descriptor this test made.
    assert_eq!(unsafe { libc::close(n) }, 0);
    kq::fdclose_end(n, token);
    assert_eq!(open_pidfds(), before, "gone while the kqueue is still held");
    assert_closed(&held);
    drop(held);
    let_exit(w, pids);
}

/// Dropping the `Kqueue` that owns a kqueue releases its process descriptors at once, even
/// while a `KqueueRef` (found through a copy of its descriptor) holds it; that one then
/// gets EBADF.
#[test]
fn p5_drop_releases_pidfds_while_the_kqueue_is_held() {
    use std::os::fd::AsFd;
    let _s = serial();
    let (w, pids) = waiting_children(4);
    let before = open_pidfds();
    let kq = kq(Personality::FreeBsd);
    for &pid in &pids {
        add(&kq, pid, NOTE_EXIT).unwrap();
    }
    let per = if no_pidfd() { 0 } else { pids.len() };
    assert_eq!(open_pidfds(), before + per);
    let copy = kq.as_fd().try_clone_to_owned().unwrap();
    let held = Kqueue::find(copy.as_fd()).unwrap();
    drop(kq);
    assert_eq!(open_pidfds(), before, "gone while the kqueue is still held");
    assert_closed(&held);
    drop(held);
    drop(copy);
    let_exit(w, pids);
}

/// A process of another user: NetBSD says EACCES (root is exempt), FreeBSD lets it through.
/// Runs this binary again as `nobody`, which watches us (root).
#[test]
fn p5_other_user() {
    let _s = serial();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("not root: skipped");
        return;
    }
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "as_other_user", "--ignored", "--nocapture"])
        .env("KQ_TEST_WATCH", std::process::id().to_string())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

/// The other half of `p5_other_user`, run as another user.
#[test]
#[ignore = "run by p5_other_user under another uid"]
fn as_other_user() {
    let target: i32 = std::env::var("KQ_TEST_WATCH")
        .expect("KQ_TEST_WATCH")
        .parse()
        .unwrap();
    let nb = kq(Personality::NetBsd);
    assert_eq!(errno(add(&nb, target, NOTE_EXIT)), libc::EACCES);
    let fb = kq(Personality::FreeBsd);
    match add(&fb, target, NOTE_EXIT) {
        // Without process descriptors no other process can be watched.
        r if no_pidfd() => assert_eq!(errno(r), libc::EOPNOTSUPP),
        r => assert_eq!(r.unwrap(), 0),
    }
    // Our own child has our ids: fine for both.
    let (r, w) = pipe();
    let rfd = r.as_raw_fd();
    let pid = fork_child(|| {
        child_wait(rfd);
        0
    });
    add(&nb, pid, NOTE_EXIT).unwrap();
    send_byte(&w);
    let ev = collect_until(&nb, |e| !e.is_empty());
    assert_eq!(ev[0].data, 0);
    reap(pid);
}

/// Runs this binary's tests again with `var` set, so that they take the fallback path.
fn rerun_with(var: &str) {
    let _s = serial();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--test-threads", "1"])
        .args(["p1_", "p2_", "p3_", "p4_", "p5_"])
        .env(var, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "with {var}=1:\n{text}");
}

/// Linux before 5.3 (no process descriptors), forced: children are polled, other
/// processes cannot be watched.
#[test]
fn fallbacks_no_pidfd() {
    if std::env::var_os("KQ_NO_PIDFD").is_none() {
        rerun_with("KQ_NO_PIDFD");
    }
}

/// Linux before 6.15 (no exit status from PIDFD_GET_INFO), forced.
#[test]
fn fallbacks_no_pidfd_info() {
    if std::env::var_os("KQ_NO_PIDFD_INFO").is_none() {
        rerun_with("KQ_NO_PIDFD_INFO");
    }
}

/// No process events connector (no permission, or another namespace), forced.
#[test]
fn fallbacks_no_connector() {
    if std::env::var_os("KQ_NO_PROC_CONNECTOR").is_none() {
        rerun_with("KQ_NO_PROC_CONNECTOR");
    }
}
