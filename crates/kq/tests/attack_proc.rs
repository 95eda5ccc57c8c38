//! Attacks on EVFILT_PROC: children reaped behind the library's back, many exits at once
//! in two kqueues, garbage idents and fflags, descriptor exhaustion at EV_ADD, fork with
//! knotes alive, and the connector socket under concurrent EV_ADD/EV_DELETE from two
//! kqueues. The tests fork: they run one at a time (`serial`).
//!
//! The `fallbacks_*` tests run them again with `KQ_NO_PIDFD`, `KQ_NO_PIDFD_INFO` or
//! `KQ_NO_PROC_CONNECTOR` set: they then expect what the library does on such kernels, and
//! a test that needs what the fallback takes away says so and skips itself.

mod util;

use kq::{
    Kevent, Kqueue, Personality, EVFILT_PROC, EV_ADD, EV_DELETE, EV_EOF, NOTE_EXEC, NOTE_EXIT,
    NOTE_FORK, NOTE_TRACK,
};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use util::{kq, ptr};

const BOTH: [Personality; 2] = [Personality::NetBsd, Personality::FreeBsd];

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which fallback this run forces (set by `fallbacks_*` when it starts the binary again).
fn forced(var: &str) -> bool {
    std::env::var_os(var).is_some()
}

/// Whether the calling test must skip itself under the fallback `var` (the reason printed).
fn skipped_under(var: &str, why: &str) -> bool {
    if forced(var) {
        println!("skipped with {var}: {why}");
    }
    forced(var)
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

/// Forks a child that runs `f` (async-signal-safe only) and exits with what it returns.
fn fork_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `f`, kept async-signal-safe, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        let code = f();
        // SAFETY: ends the child without the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Writes `n` bytes to `w`: each releases one `child_wait` (the children hold copies of
/// `w`, so closing it gives no end of file).
fn send(w: &OwnedFd, n: usize) {
    for _ in 0..n {
        // SAFETY: one byte from a live buffer.
        assert_eq!(
            unsafe { libc::write(w.as_raw_fd(), b"x".as_ptr().cast(), 1) },
            1
        );
    }
}

fn reap(pid: i32) -> i32 {
    let mut st = 0;
    // SAFETY: `st` is a live int.
    assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
    st
}

fn proc_kev(pid: usize, flags: u16, fflags: u32) -> Kevent {
    Kevent::new(pid, EVFILT_PROC, flags, fflags, 0, ptr(0xa77))
}

fn add(kq: &Kqueue, pid: i32, fflags: u32) -> io::Result<usize> {
    kq.kevent(&[proc_kev(pid as usize, EV_ADD, fflags)], &mut [], None)
}

fn wait(kq: &Kqueue, t: Duration) -> Vec<Kevent> {
    let mut ev = [Kevent::default(); 64];
    let n = kq.kevent(&[], &mut ev, Some(t)).expect("kevent");
    ev[..n].to_vec()
}

fn collect_until(kq: &Kqueue, mut done: impl FnMut(&[Kevent]) -> bool) -> Vec<Kevent> {
    let end = Instant::now() + Duration::from_secs(20);
    let mut all = Vec::new();
    while !done(&all) {
        assert!(Instant::now() < end, "timed out; events so far: {all:#?}");
        all.extend(wait(kq, Duration::from_millis(100)));
    }
    all
}

const fn exited(code: i32) -> i32 {
    (code & 0xff) << 8
}

fn open_pidfds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.as_os_str() == "anon_inode:[pidfd]")
        .count()
}

/// P5 exit_status: the program reaps the child with waitpid(-1) before kevent() looks;
/// the exit is still reported (EV_EOF, NOTE_EXIT), not lost, with the real status where
/// Linux can still give it (PIDFD_GET_INFO), else 0.
#[test]
fn p5_exit_reaped_by_wait_any_before_kevent() {
    let _s = serial();
    for p in BOTH {
        let kq = kq(p);
        let (r, w) = pipe();
        let rfd = r.as_raw_fd();
        let pid = fork_child(|| {
            child_wait(rfd);
            7
        });
        add(&kq, pid, NOTE_EXIT).unwrap();
        send(&w, 1);
        let mut st = 0;
        // SAFETY: `st` is a live int.
        assert_eq!(unsafe { libc::waitpid(-1, &mut st, 0) }, pid);
        assert_eq!(st, exited(7));
        let evs = collect_until(&kq, |e| !e.is_empty());
        assert_eq!(evs.len(), 1, "{evs:?}");
        let ev = evs[0];
        assert_eq!(ev.ident, pid as usize);
        assert!(ev.flags & EV_EOF != 0);
        assert_eq!(ev.fflags & NOTE_EXIT, NOTE_EXIT);
        if std::env::var_os("KQ_NO_PIDFD_INFO").is_none()
            && std::env::var_os("KQ_NO_PIDFD").is_none()
        {
            assert!(ev.data == exited(7) as isize || ev.data == 0, "{ev:?}");
        }
        assert!(wait(&kq, Duration::ZERO).is_empty());
    }
}

/// P5 exit_status: 200 children exit at once, each watched by two kqueues: every kqueue
/// gets every exit exactly once with the right status.
#[test]
fn p5_many_exits_two_kqueues() {
    let _s = serial();
    let kqs = [kq(Personality::NetBsd), kq(Personality::FreeBsd)];
    let (r, w) = pipe();
    let rfd = r.as_raw_fd();
    let pids: Vec<i32> = (0..200)
        .map(|i| {
            fork_child(move || {
                child_wait(rfd);
                i % 256
            })
        })
        .collect();
    for kq in &kqs {
        for &pid in &pids {
            add(kq, pid, NOTE_EXIT).unwrap();
        }
    }
    send(&w, pids.len());
    for kq in &kqs {
        let evs = collect_until(kq, |e| e.len() >= pids.len());
        assert_eq!(evs.len(), pids.len());
        for (i, &pid) in pids.iter().enumerate() {
            let mine: Vec<_> = evs.iter().filter(|e| e.ident == pid as usize).collect();
            assert_eq!(mine.len(), 1, "pid {pid}: {mine:?}");
            assert_eq!(mine[0].data, exited(i as i32) as isize);
        }
        std::thread::sleep(Duration::from_millis(20));
        assert!(wait(kq, Duration::ZERO).is_empty());
    }
    for (i, pid) in pids.into_iter().enumerate() {
        assert_eq!(reap(pid), exited(i as i32));
    }
}

/// P5 no_such_process: idents that cannot be a process (0, negative, beyond pid_max,
/// beyond 32 bits) are ESRCH, in both personalities, with any fflags; garbage fflags on a
/// real child are accepted and the exit is still reported.
#[test]
fn p5_garbage_idents_and_fflags() {
    let _s = serial();
    let pid_max: i64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(4_194_304);
    let idents = [
        0usize,
        usize::MAX,
        (-2isize) as usize,
        i32::MAX as usize,
        (pid_max + 1) as usize,
        1usize << 40,
        (1usize << 32) | 1,
    ];
    for p in BOTH {
        let kq = kq(p);
        for &ident in &idents {
            for fflags in [0, NOTE_EXIT, u32::MAX, NOTE_TRACK | NOTE_FORK] {
                let r = kq.kevent(&[proc_kev(ident, EV_ADD, fflags)], &mut [], None);
                assert_eq!(
                    r.err().and_then(|e| e.raw_os_error()),
                    Some(libc::ESRCH),
                    "{p:?} ident {ident:#x} fflags {fflags:#x}"
                );
            }
            let r = kq.kevent(&[proc_kev(ident, EV_DELETE, 0)], &mut [], None);
            assert_eq!(r.err().and_then(|e| e.raw_os_error()), Some(libc::ENOENT));
        }
        let (r, w) = pipe();
        let rfd = r.as_raw_fd();
        let pid = fork_child(|| {
            child_wait(rfd);
            3
        });
        let mut fflags = u32::MAX;
        if forced("KQ_NO_PROC_CONNECTOR") {
            // Forks, execs and tracking need the connector.
            let e = add(&kq, pid, fflags).expect_err("no connector");
            assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP));
            fflags &= !(NOTE_FORK | NOTE_EXEC | NOTE_TRACK);
        }
        add(&kq, pid, fflags).unwrap();
        send(&w, 1);
        let evs = collect_until(&kq, |e| e.iter().any(|e| e.flags & EV_EOF != 0));
        let last = evs.last().unwrap();
        assert_eq!(last.ident, pid as usize);
        assert_eq!(last.data, exited(3) as isize);
        assert_eq!(reap(pid), exited(3));
    }
}

/// RLIMIT_NOFILE exhausted at EV_ADD: the change fails with EMFILE, nothing is left (no
/// process descriptor, no knote), and the same change works once descriptors are free.
#[test]
fn p5_emfile_at_add() {
    let _s = serial();
    for p in BOTH {
        let kq = kq(p);
        let (r, w) = pipe();
        let rfd = r.as_raw_fd();
        let pid = fork_child(|| {
            child_wait(rfd);
            1
        });
        let before = open_pidfds();
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `old` is a live rlimit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
        // Fill every free descriptor below a small limit.
        let lim = 256u64;
        let mut fillers = Vec::new();
        // SAFETY: setrlimit with a live struct.
        let set = |cur: u64| unsafe {
            let l = libc::rlimit {
                rlim_cur: cur,
                rlim_max: old.rlim_max,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &l), 0);
        };
        let highest = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap();
        set(lim.max(highest + 1));
        loop {
            // SAFETY: dup of a live descriptor.
            let fd = unsafe { libc::fcntl(rfd, libc::F_DUPFD_CLOEXEC, 0) };
            if fd < 0 {
                break;
            }
            // SAFETY: a new descriptor, owned from here on.
            fillers.push(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        for fflags in [NOTE_EXIT, NOTE_EXIT | NOTE_FORK | NOTE_EXEC] {
            let d = || kq.kevent(&[proc_kev(pid as usize, EV_DELETE, 0)], &mut [], None);
            match add(&kq, pid, fflags) {
                // Without process descriptors a child is polled by the process monitor's
                // thread: no descriptor is needed once the thread runs.
                Ok(_) if forced("KQ_NO_PIDFD") && fflags == NOTE_EXIT => {
                    d().unwrap();
                    continue;
                }
                Ok(n) => panic!("{p:?} {fflags:#x}: {n}, with no descriptor left"),
                Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{p:?} {fflags:#x}"),
            }
            assert_eq!(d().err().and_then(|e| e.raw_os_error()), Some(libc::ENOENT));
        }
        drop(fillers);
        set(old.rlim_cur);
        assert_eq!(open_pidfds(), before);
        add(&kq, pid, NOTE_EXIT).unwrap();
        send(&w, 1);
        let evs = collect_until(&kq, |e| !e.is_empty());
        assert_eq!(evs[0].data, exited(1) as isize);
        assert_eq!(reap(pid), exited(1));
        drop(r);
    }
}

/// Fork with knotes alive: the child's inherited kqueue says EBADF, and its exit (which
/// closes its copies of everything) does not disturb the parent's knotes, whose exits and
/// forks are still reported.
#[test]
fn p5_fork_with_knotes() {
    let _s = serial();
    if skipped_under("KQ_NO_PROC_CONNECTOR", "NOTE_FORK needs the connector") {
        return;
    }
    for p in BOTH {
        let kq = kq(p);
        let (r, w) = pipe();
        let rfd = r.as_raw_fd();
        let watched = fork_child(|| {
            child_wait(rfd);
            // SAFETY: a child of the child, which exits at once.
            let c = unsafe { libc::fork() };
            if c == 0 {
                // SAFETY: ends the grandchild.
                unsafe { libc::_exit(0) };
            }
            child_wait(rfd);
            9
        });
        add(&kq, watched, NOTE_EXIT | NOTE_FORK).unwrap();
        let kqr = &kq;
        let forked = fork_child(move || {
            // The inherited kqueue is dead here: EBADF, for reading and for changes (a
            // change that would touch the parent's process descriptor and connector).
            let r = kqr.kevent(&[], &mut [], Some(Duration::ZERO));
            if r.err().and_then(|e| e.raw_os_error()) != Some(libc::EBADF) {
                return 1;
            }
            let d = kqr.kevent(&[proc_kev(watched as usize, EV_DELETE, 0)], &mut [], None);
            if d.err().and_then(|e| e.raw_os_error()) != Some(libc::EBADF) {
                return 2;
            }
            // A new kqueue in the child watches the same process without trouble (a
            // sibling: without process descriptors, only children can be watched).
            let Ok(k) = Kqueue::with_personality(p) else {
                return 3;
            };
            match add(&k, watched, NOTE_EXIT | NOTE_FORK) {
                Ok(_) => 0,
                Err(e) if forced("KQ_NO_PIDFD") && e.raw_os_error() == Some(libc::EOPNOTSUPP) => 0,
                Err(_) => 4,
            }
        });
        assert_eq!(reap(forked), 0, "{p:?}: the child's kqueue gives EBADF");
        let w = w;
        // SAFETY: one byte from a live buffer.
        assert_eq!(
            unsafe { libc::write(w.as_raw_fd(), b"x".as_ptr().cast(), 1) },
            1
        );
        let evs = collect_until(&kq, |e| e.iter().any(|e| e.fflags & NOTE_FORK != 0));
        assert!(evs.iter().all(|e| e.ident == watched as usize));
        send(&w, 1);
        let evs = collect_until(&kq, |e| e.iter().any(|e| e.flags & EV_EOF != 0));
        assert_eq!(evs.last().unwrap().data, exited(9) as isize);
        assert_eq!(reap(watched), exited(9));
    }
}

/// The connector socket under two kqueues: one keeps adding and deleting a NOTE_FORK
/// knote (so the socket's last user goes and comes back) while the other adds its own
/// NOTE_FORK knote and then needs its fork reported. A listener added while the last other
/// one was leaving must not be left without a socket.
#[test]
fn p1_fork_listener_races_last_delete() {
    let _s = serial();
    if skipped_under("KQ_NO_PROC_CONNECTOR", "NOTE_FORK needs the connector") {
        return;
    }
    let stop = AtomicBool::new(false);
    let (cr, cw) = pipe();
    let crfd = cr.as_raw_fd();
    let churned = fork_child(|| {
        child_wait(crfd);
        0
    });
    std::thread::scope(|s| {
        s.spawn(|| {
            let kq = kq(Personality::NetBsd);
            while !stop.load(Ordering::Relaxed) {
                add(&kq, churned, NOTE_FORK).unwrap();
                kq.kevent(&[proc_kev(churned as usize, EV_DELETE, 0)], &mut [], None)
                    .unwrap();
            }
        });
        let kq = kq(Personality::NetBsd);
        for _ in 0..40 {
            let (r, w) = pipe();
            let rfd = r.as_raw_fd();
            let pid = fork_child(|| {
                child_wait(rfd);
                // SAFETY: a grandchild that exits at once.
                let c = unsafe { libc::fork() };
                if c == 0 {
                    // SAFETY: ends the grandchild.
                    unsafe { libc::_exit(0) };
                }
                child_wait(rfd);
                0
            });
            add(&kq, pid, NOTE_FORK | NOTE_EXIT).unwrap();
            // SAFETY: one byte from a live buffer.
            assert_eq!(
                unsafe { libc::write(w.as_raw_fd(), b"x".as_ptr().cast(), 1) },
                1
            );
            collect_until(&kq, |e| e.iter().any(|e| e.fflags & NOTE_FORK != 0));
            send(&w, 1);
            collect_until(&kq, |e| e.iter().any(|e| e.flags & EV_EOF != 0));
            assert_eq!(reap(pid), 0);
        }
        stop.store(true, Ordering::Relaxed);
    });
    send(&cw, 1);
    assert_eq!(reap(churned), 0);
}

/// Closing a kqueue while the process monitor posts forks of a tracked, busily forking
/// process to it: no crash, no hang, and a new kqueue still works.
#[test]
fn p4_close_while_monitor_posts() {
    let _s = serial();
    if skipped_under("KQ_NO_PROC_CONNECTOR", "NOTE_TRACK needs the connector") {
        return;
    }
    for p in BOTH {
        for _ in 0..5 {
            let (r, w) = pipe();
            let rfd = r.as_raw_fd();
            let pid = fork_child(|| {
                for _ in 0..200 {
                    // SAFETY: grandchildren that exit at once.
                    let c = unsafe { libc::fork() };
                    if c == 0 {
                        // SAFETY: ends the grandchild.
                        unsafe { libc::_exit(0) };
                    }
                    // SAFETY: reaps it.
                    unsafe { libc::waitpid(c, std::ptr::null_mut(), 0) };
                }
                child_wait(rfd);
                0
            });
            let kq = kq(p);
            add(&kq, pid, NOTE_TRACK | NOTE_FORK | NOTE_EXIT).unwrap();
            std::thread::sleep(Duration::from_millis(2));
            drop(kq);
            send(&w, 1);
            assert_eq!(reap(pid), 0);
        }
        // The kqueue still works afterwards. The child waits for the knote before it
        // exits: NetBSD refuses NOTE_EXIT on a process that is already a zombie.
        let kq = kq(p);
        let (r, w) = pipe();
        let rfd = r.as_raw_fd();
        let pid = fork_child(|| {
            child_wait(rfd);
            4
        });
        add(&kq, pid, NOTE_EXIT).unwrap();
        send(&w, 1);
        let evs = collect_until(&kq, |e| !e.is_empty());
        assert_eq!(evs[0].data, exited(4) as isize);
        assert_eq!(reap(pid), exited(4));
    }
}

/// Runs this binary's tests again with `var` set, so that they take the fallback path.
fn rerun_with(var: &str) {
    let _s = serial();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--test-threads", "1", "--nocapture"])
        .args(["p1_", "p4_", "p5_"])
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

/// The attacks without process descriptors (Linux before 5.3), forced: children are
/// polled, other processes cannot be watched.
#[test]
fn fallbacks_no_pidfd() {
    if !forced("KQ_NO_PIDFD") {
        rerun_with("KQ_NO_PIDFD");
    }
}

/// The attacks without the exit status of PIDFD_GET_INFO (Linux before 6.15), forced.
#[test]
fn fallbacks_no_pidfd_info() {
    if !forced("KQ_NO_PIDFD_INFO") {
        rerun_with("KQ_NO_PIDFD_INFO");
    }
}

/// The attacks without the process events connector (no permission, another namespace),
/// forced: the tests of forks and tracking skip themselves.
#[test]
fn fallbacks_no_connector() {
    if !forced("KQ_NO_PROC_CONNECTOR") {
        rerun_with("KQ_NO_PROC_CONNECTOR");
    }
}
