//! The lifetime of kqueues and of their descriptors: making and closing many under a low
//! descriptor limit, using an inherited kqueue after fork(), the timers of a dropped kqueue,
//! and kqueues nested a thousand deep.
//!
//! What changes process-wide state (the descriptor limit) or may take the process down (a
//! stack overflow) runs in a child made by fork() ([`in_child`]), so that the other tests of
//! this binary, running in parallel threads, are not affected. The child reports through
//! its exit status and a pipe; the parent waits for it with a deadline.

mod util;

use std::any::Any;
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use kq::filter::{register_filter, Context, Filter};
use kq::*;
use util::*;

/// The message of a panic payload.
fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

/// Waits up to `limit` for child `pid` and returns its wait status; kills and reaps it past
/// that and returns `None`.
fn wait_child(pid: libc::pid_t, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child; `status` is a valid int.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid: {}", io::Error::last_os_error());
        if r == pid {
            return Some(status);
        }
        if Instant::now() > deadline {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// Runs `work` in a child made by fork() and returns its verdict: `Ok` if `work` returned
/// `Ok`, else the child's message, or how it died.
///
/// The child arms `alarm(watchdog_s)` first (SIGALRM ends it if it hangs) and ends with
/// `_exit`, never returning into the test harness. The parent kills it if it is still there
/// 5 s after the alarm was due (a child stuck with SIGALRM blocked). `work` runs with only
/// the calling thread; locks that other threads held at the fork stay held, so it must use
/// nothing of the test binary but the library under test.
fn in_child(watchdog_s: u32, work: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two ints.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
    let (rd, wr) = (fds[0], fds[1]);
    // SAFETY: the child runs `work` and `_exit`s; see the function's documentation.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: close and alarm only affect this child.
        unsafe {
            libc::close(rd);
            libc::alarm(watchdog_s);
        }
        let msg = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
            Ok(Ok(())) => None,
            Ok(Err(m)) => Some(m),
            Err(p) => Some(panic_message(&*p)),
        };
        if let Some(m) = &msg {
            // Short enough for the pipe's buffer: the parent reads it after the exit.
            let b = &m.as_bytes()[..m.len().min(4000)];
            // SAFETY: `b` is valid for reads of its length; `wr` is our pipe.
            unsafe { libc::write(wr, b.as_ptr().cast(), b.len()) };
        }
        // SAFETY: _exit skips the destructors and atexit handlers of the parent's state.
        unsafe { libc::_exit(i32::from(msg.is_some())) };
    }
    // SAFETY: our copy of the write end, not used again.
    unsafe { libc::close(wr) };
    let status = wait_child(pid, Duration::from_secs(u64::from(watchdog_s) + 5));
    // Children that other tests fork meanwhile may hold copies of the write end: read what
    // is there without waiting for EOF.
    let mut buf = vec![0u8; 4096];
    // SAFETY: `rd` is our pipe's read end and `buf` is writable for its length.
    let n = unsafe {
        libc::fcntl(rd, libc::F_SETFL, libc::O_NONBLOCK);
        let n = libc::read(rd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(rd);
        n
    };
    let msg = String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned();
    let Some(st) = status else {
        return Err(format!(
            "the child still ran {watchdog_s} s + 5 s after it started: killed. {msg}"
        ));
    };
    if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0 {
        Ok(())
    } else if libc::WIFEXITED(st) {
        Err(format!(
            "child exit status {}: {msg}",
            libc::WEXITSTATUS(st)
        ))
    } else if libc::WIFSIGNALED(st) {
        let sig = libc::WTERMSIG(st);
        let why = match sig {
            libc::SIGALRM => " (its watchdog: it hung)",
            libc::SIGABRT => " (abort: a stack overflow is reported so)",
            libc::SIGSEGV => " (segmentation fault)",
            _ => "",
        };
        Err(format!("child killed by signal {sig}{why}. {msg}"))
    } else {
        Err(format!("child wait status {st:#x}. {msg}"))
    }
}

/// Runs `work` in a child and fails the test with the child's message.
#[track_caller]
fn child_must_pass(watchdog_s: u32, work: impl FnOnce() -> Result<(), String>) {
    if let Err(m) = in_child(watchdog_s, work) {
        panic!("{m}");
    }
}

/// Open descriptors of this process.
fn open_fds() -> Result<usize, String> {
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|e| format!("/proc/self/fd: {e}"))?;
    // One of them is the directory's own descriptor.
    Ok(dir.count().saturating_sub(1))
}

/// Lowers this process's soft RLIMIT_NOFILE so that about 64 descriptor numbers are free,
/// and returns the limit.
fn lower_fd_limit() -> Result<libc::rlim_t, String> {
    let limit = open_fds()? as libc::rlim_t + 64;
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return Err(format!("getrlimit: {}", io::Error::last_os_error()));
        }
        rl.rlim_cur = limit.min(rl.rlim_max);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
            return Err(format!("setrlimit: {}", io::Error::last_os_error()));
        }
    }
    Ok(rl.rlim_cur)
}

/// A relative timer change.
fn timer(ident: usize, flags: u16, fflags: u32, data: isize) -> Kevent {
    Kevent::new(ident, EVFILT_TIMER, flags, fflags, data, null_mut())
}

/// With a low descriptor limit (64 numbers free), making a kqueue, adding a 1 ms timer to it
/// and dropping it, 2,000 times in a row, never fails: a dropped kqueue gives its
/// descriptors back at once.
#[test]
fn low_fd_limit_new_add_timer_drop_2000_times() {
    child_must_pass(60, || {
        let limit = lower_fd_limit()?;
        for i in 0..2000 {
            let kq = Kqueue::new()
                .map_err(|e| format!("iteration {i} (limit {limit}): Kqueue::new: {e}"))?;
            kq.kevent(&[timer(1, EV_ADD, 0, 1)], &mut [], None)
                .map_err(|e| format!("iteration {i} (limit {limit}): EV_ADD of a timer: {e}"))?;
            drop(kq);
        }
        Ok(())
    });
}

/// With a low descriptor limit (64 numbers free), making a kqueue, adding a 1 ms timer to
/// it, taking its descriptor with `try_into_fd` and closing that with close(2), 2,000 times
/// in a row, never fails with EMFILE (nor otherwise): a kqueue whose descriptor was closed
/// does not keep descriptors of the process.
#[test]
fn low_fd_limit_new_add_timer_into_raw_fd_close_2000_times() {
    child_must_pass(60, || {
        let limit = lower_fd_limit()?;
        for i in 0..2000 {
            let kq = Kqueue::with_personality(Personality::FreeBsd)
                .map_err(|e| format!("iteration {i} (limit {limit}): Kqueue::new: {e}"))?;
            kq.kevent(&[timer(1, EV_ADD, 0, 1)], &mut [], None)
                .map_err(|e| format!("iteration {i} (limit {limit}): EV_ADD of a timer: {e}"))?;
            let fd = kq
                .try_into_fd()
                .map_err(|e| format!("iteration {i} (limit {limit}): try_into_fd: {e}"))?
                .into_raw_fd();
            // SAFETY: `fd` was just handed to us and is closed once.
            if unsafe { libc::close(fd) } != 0 {
                return Err(format!(
                    "iteration {i}: close: {}",
                    io::Error::last_os_error()
                ));
            }
        }
        Ok(())
    });
}

/// A filter for [`Kqueue::post`]: fires once posted a positive hint.
struct Posted;

impl Filter for Posted {
    fn event(&self, kn: &mut Knote, hint: i64, _cx: &mut Context<'_>) -> bool {
        if hint > 0 {
            kn.set_data(kn.data() + hint as isize);
        }
        kn.data() > 0
    }
}

/// The number of the [`Posted`] filter, registered once per process.
fn posted_filter() -> i16 {
    static NUMBER: OnceLock<i16> = OnceLock::new();
    *NUMBER.get_or_init(|| register_filter("LIFETIME_POSTED", Arc::new(Posted)).unwrap())
}

/// An anonymous, empty file.
fn memfd() -> Result<OwnedFd, String> {
    // SAFETY: the name is a NUL-terminated string; the result is checked.
    let fd = unsafe { libc::memfd_create(c"kq-lifetime".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", io::Error::last_os_error()));
    }
    // SAFETY: a new descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Puts `file` under every free descriptor number from 3 to 1023, so that whatever the
/// library does through a number it no longer has lands in `file`.
fn fill_free_numbers(file: &OwnedFd) {
    for fd in 3..1024 {
        // SAFETY: F_GETFD only inspects the number; dup2 onto a free number takes it.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                libc::dup2(file.as_raw_fd(), fd);
            }
        }
    }
}

/// The size of a file.
fn size_of(file: &OwnedFd) -> Result<i64, String> {
    // SAFETY: fstat fills one stat of an open descriptor (stat64: 64-bit sizes on 32-bit
    // targets too).
    unsafe {
        let mut st: libc::stat64 = std::mem::zeroed();
        if libc::fstat64(file.as_raw_fd(), &mut st) != 0 {
            return Err(format!("fstat: {}", io::Error::last_os_error()));
        }
        Ok(st.st_size)
    }
}

/// Expects EBADF from an inherited kqueue; notes anything else in `failures`.
fn expect_ebadf<T: std::fmt::Debug>(failures: &mut Vec<String>, what: &str, r: io::Result<T>) {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => {}
        other => failures.push(format!("{what}: {other:?}, not EBADF")),
    }
}

/// The child of [`fork_child_gets_ebadf_and_touches_no_descriptor`].
fn inherited_kqueue_child(kq: &Kqueue, filter: i16) -> Result<(), String> {
    let file = memfd()?;
    fill_free_numbers(&file);
    let mut evs = [Kevent::default(); 4];
    let mut failures = Vec::new();
    let f = &mut failures;
    expect_ebadf(f, "post", kq.post(1, filter, 1));
    let trigger = user(2, 0, NOTE_TRIGGER, 0);
    expect_ebadf(f, "a trigger", kq.kevent(&[trigger], &mut [], None));
    let add = user(3, EV_ADD, 0, 0);
    expect_ebadf(f, "an EV_ADD", kq.kevent(&[add], &mut [], None));
    let poll = kq.kevent(&[], &mut evs, Some(Duration::ZERO));
    expect_ebadf(f, "a poll", poll);
    expect_ebadf(f, "a wait without timeout", kq.kevent(&[], &mut evs, None));
    expect_ebadf(f, "Kqueue::trigger", kq.trigger(2, 0));
    let found = Kqueue::find(kq.as_fd()).map(drop);
    expect_ebadf(f, "Kqueue::find", found);
    match size_of(&file)? {
        0 => {}
        n => failures.push(format!(
            "{n} bytes written through descriptor numbers the kqueue had, now another file's"
        )),
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// After fork(), every operation of the child on a kqueue it inherited gives EBADF and
/// touches no descriptor: `post`, `kevent` (a trigger, an EV_ADD, a poll, a wait with no
/// timeout), `trigger` and `from_fd` all fail with EBADF, and a file the child put under
/// every free descriptor number (among them the numbers of the kqueue's own descriptors,
/// which the child does not have) receives no byte. This holds whatever another thread of
/// the parent was doing with the kqueue at the fork (here it loops in kevent(), so it may
/// hold the kqueue's lock or sleep in it): each of 50 children finishes within its 1 s
/// watchdog. The test stops at the fifth child that fails.
#[test]
fn fork_child_gets_ebadf_and_touches_no_descriptor() {
    let filter = posted_filter();
    let kq = Arc::new(Kqueue::new().unwrap());
    assert!(
        kq.as_raw_fd() < 1000,
        "the kqueue's numbers must be under 1024"
    );
    let add = Kevent::new(1, filter, EV_ADD | EV_CLEAR, 0, 0, null_mut());
    ch_ok(&kq, &[add, user(2, EV_ADD | EV_CLEAR, 0, 0)]);
    let stop = Arc::new(AtomicBool::new(false));
    // Two threads in kevent() on the kqueue at every fork: one polls and sleeps in it, the
    // other applies long change lists, holding the kqueue's lock most of the time.
    let loopers: Vec<_> = [false, true]
        .into_iter()
        .map(|long_lists| {
            let (kq, stop) = (Arc::clone(&kq), Arc::clone(&stop));
            thread::spawn(move || {
                let mut evs = [Kevent::default(); 4];
                let enables = [user(2, EV_ENABLE, 0, 0); 256];
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = match i % 3 {
                        _ if long_lists => kq.kevent(&enables, &mut [], None),
                        0 => kq.kevent(&[], &mut evs, Some(Duration::ZERO)),
                        1 => kq.kevent(&[], &mut evs, Some(Duration::from_millis(1))),
                        _ => kq.kevent(&enables[..1], &mut [], None),
                    };
                    assert_eq!(
                        r.expect("kevent in the parent"),
                        0,
                        "no events in the parent"
                    );
                    i += 1;
                }
            })
        })
        .collect();
    // What went wrong, and in how many of the children (up to 5: a hung child costs 1 s).
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut children = 0;
    while children < 50 && failures.values().sum::<usize>() < 5 {
        if let Err(m) = in_child(1, || inherited_kqueue_child(&kq, filter)) {
            *failures.entry(m).or_default() += 1;
        }
        children += 1;
        thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    for looper in loopers {
        looper.join().expect("a thread of the parent in kevent()");
    }
    let report: Vec<String> = failures
        .iter()
        .map(|(m, n)| format!("{n} of {children} children: {m}"))
        .collect();
    assert!(failures.is_empty(), "{}", report.join("\n"));
    // The parent's kqueue is intact.
    assert!(kq.post(1, filter, 1).unwrap());
    let ev = expect_one(&kq);
    assert_eq!((ev.ident, ev.filter, ev.data), (1, filter, 1), "{ev:?}");
}

/// A dropped kqueue's timers stop counting against the process limit of 4,096 timers at
/// once: ten times in a row, a kqueue gets 4,000 timers (the previous kqueue's 4,000 would
/// put it over the limit) and is dropped; no EV_ADD fails with ENOMEM.
#[test]
fn dropped_kqueue_timers_leave_the_timer_limit_at_once() {
    for round in 0..10 {
        let kq = Kqueue::with_personality(Personality::FreeBsd).unwrap();
        for chunk in (0..4000).collect::<Vec<usize>>().chunks(500) {
            let changes: Vec<Kevent> = chunk
                .iter()
                .map(|&i| timer(i, EV_ADD, NOTE_SECONDS, 60))
                .collect();
            if let Err(e) = kq.kevent(&changes, &mut [], None) {
                panic!("round {round}, timers from {}: {e}", chunk[0]);
            }
        }
        drop(kq);
    }
}

/// The child of [`nested_kqueues_1000_deep_trigger_on_small_stack`].
fn nested_child() -> Result<(), String> {
    const DEPTH: usize = 1000;
    // Each kqueue holds a few descriptors: make room for them.
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur = rl.rlim_max.min(16 * 1024);
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
    }
    let mut kqs: Vec<Kqueue> = Vec::with_capacity(DEPTH);
    for i in 0..DEPTH {
        let kq = Kqueue::new()
            .map_err(|e| format!("kqueue {i}: {e} (RLIMIT_NOFILE {}: too low?)", rl.rlim_cur))?;
        let change = match kqs.last() {
            None => user(1, EV_ADD | EV_CLEAR, 0, 0),
            Some(inner) => Kevent::new(
                inner.as_raw_fd() as usize,
                EVFILT_READ,
                EV_ADD,
                0,
                0,
                null_mut(),
            ),
        };
        kq.kevent(&[change], &mut [], None)
            .map_err(|e| format!("kqueue {i}: EV_ADD: {e}"))?;
        kqs.push(kq);
    }
    let (innermost, outermost) = (&kqs[0], &kqs[DEPTH - 1]);
    let watched = kqs[DEPTH - 2].as_raw_fd() as usize;
    thread::scope(|s| {
        let start = Instant::now();
        let trigger = thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn_scoped(s, || innermost.trigger(1, 0))
            .map_err(|e| format!("spawn: {e}"))?;
        let mut evs = [Kevent::default(); 4];
        let n = outermost.kevent(&[], &mut evs, Some(Duration::from_secs(30)));
        let waited = start.elapsed();
        trigger
            .join()
            .map_err(|p| panic_message(&*p))?
            .map_err(|e| format!("the trigger: {e}"))?;
        match n {
            Ok(1) if evs[0].filter == EVFILT_READ && evs[0].ident == watched => Ok(()),
            Ok(0) => Err(format!(
                "the outermost kqueue reported nothing in {waited:?}"
            )),
            other => Err(format!("the outermost kqueue: {other:?}, {:?}", &evs[..1])),
        }
    })
}

/// Nested kqueues: in a chain of 1,000 kqueues, each watching the previous one's descriptor
/// with EVFILT_READ, a trigger of a user event in the innermost, made by a thread with a
/// 128 KiB stack, does not overflow that stack (passing readiness outwards does not take
/// stack in proportion to the depth), and the outermost kqueue reports the EVFILT_READ
/// event of the kqueue it watches (waiting at most 30 s).
#[test]
fn nested_kqueues_1000_deep_trigger_on_small_stack() {
    child_must_pass(30, nested_child);
}
