//! A process supervisor on one kqueue, written against the BSD API as a BSD program would
//! be: it starts N children, watches each with EVFILT_PROC/NOTE_EXIT, restarts those that
//! exit (up to a limit per child), and watches SIGTERM and SIGINT with EVFILT_SIGNAL (set
//! to SIG_IGN first, as BSD programs do, so that the kqueue alone sees them) to stop every
//! child and exit cleanly: SIGTERM to each child, then SIGKILL to those still there when a
//! second signal comes or a grace period (EVFILT_TIMER, 3 s) ends. It prints one line per
//! event, on standard output.
//!
//! ```text
//! cargo run -p kq --example supervise -- [-n CHILDREN] [-r RESTARTS] [COMMAND [ARG...]]
//! ```
//!
//! Defaults: 3 children, 2 restarts each, and the command `sh -c 'sleep 1; exit 3'`. It
//! exits 0 when a signal stopped it or when every child used up its restarts, 1 on an
//! error (such as a library without EVFILT_PROC or EVFILT_SIGNAL: EINVAL), 2 on a usage
//! error. The lines:
//!
//! ```text
//! started child 0: pid 4242
//! child 0 (pid 4242) exited with status 3
//! restarted child 0 (restart 1 of 2): pid 4250
//! child 0 (pid 4262) exited with status 3; no restarts left
//! SIGTERM: stopping 2 children
//! child 1 (pid 4251) killed by signal 15
//! all children stopped
//! ```

use kq::{
    Kevent, Kqueue, EVFILT_PROC, EVFILT_SIGNAL, EVFILT_TIMER, EV_ADD, EV_CLEAR, EV_ONESHOT,
    NOTE_EXIT,
};
use std::ffi::CString;
use std::io::{self, Write};
use std::process::ExitCode;
use std::ptr::{null, null_mut};

/// The EVFILT_TIMER ident of the grace period after SIGTERM, and its length.
const GRACE: usize = 1;
const GRACE_MS: isize = 3000;

struct Options {
    children: usize,
    restarts: u32,
    command: Vec<String>,
}

fn usage() -> i32 {
    eprintln!("usage: supervise [-n CHILDREN] [-r RESTARTS] [COMMAND [ARG...]]");
    2
}

fn parse(mut args: impl Iterator<Item = String>) -> Option<Options> {
    let mut o = Options {
        children: 3,
        restarts: 2,
        command: Vec::new(),
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "-n" => o.children = args.next()?.parse().ok().filter(|&n| n > 0)?,
            "-r" => o.restarts = args.next()?.parse().ok()?,
            "--" => {
                o.command.extend(args.by_ref());
                break;
            }
            s if s.starts_with('-') => return None,
            _ => {
                o.command.push(a);
                o.command.extend(args.by_ref());
                break;
            }
        }
    }
    if o.command.is_empty() {
        o.command = ["sh", "-c", "sleep 1; exit 3"].map(String::from).to_vec();
    }
    Some(o)
}

/// One supervised child: the running process (0: none) and the restarts it has had.
struct Slot {
    pid: libc::pid_t,
    restarts: u32,
}

struct Supervisor {
    kq: Kqueue,
    opts: Options,
    /// The command, for execvp.
    argv: Vec<CString>,
    slots: Vec<Slot>,
    /// A signal asked us to stop: no more restarts.
    stopping: bool,
}

/// One line on standard output, flushed at once (a pipe reading it sees each event as it
/// happens).
fn say(line: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// How a wait(2) status reads.
fn describe(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("ended with wait status {status:#x}")
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "signal",
    }
}

impl Supervisor {
    /// Forks and execs the command, as a C program does. Ignored signals stay ignored
    /// across exec, so the child gets the default actions of SIGTERM and SIGINT back; the
    /// two are blocked across the fork, so that one sent to the child before it has reset
    /// them waits, and then ends it.
    fn spawn(&self) -> io::Result<libc::pid_t> {
        let mut ptrs: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(null());
        // SAFETY: sigset_t is plain data, filled by sigemptyset/sigaddset before use.
        let mut stop: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: fork() in a process whose child calls only async-signal-safe functions
        // (signal, sigprocmask, execvp, write, _exit) on data prepared before the fork.
        unsafe {
            libc::sigemptyset(&mut stop);
            libc::sigaddset(&mut stop, libc::SIGTERM);
            libc::sigaddset(&mut stop, libc::SIGINT);
            libc::pthread_sigmask(libc::SIG_BLOCK, &stop, &mut old);
            let pid = libc::fork();
            if pid == 0 {
                libc::signal(libc::SIGTERM, libc::SIG_DFL);
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::pthread_sigmask(libc::SIG_SETMASK, &old, null_mut());
                libc::execvp(ptrs[0], ptrs.as_ptr());
                let msg = b"supervise: cannot run the command\n";
                libc::write(2, msg.as_ptr().cast(), msg.len());
                libc::_exit(127);
            }
            let e = io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, null_mut());
            if pid < 0 {
                return Err(e);
            }
            Ok(pid)
        }
    }

    /// Starts the command for slot `i` and watches its exit.
    fn start(&mut self, i: usize) -> io::Result<libc::pid_t> {
        let pid = self.spawn()?;
        self.slots[i].pid = pid;
        // NOTE_EXIT: the event comes with the wait status in `data`, EV_EOF and EV_ONESHOT.
        // The child may already be gone: then EV_ADD fails with ESRCH, and the exit is
        // handled as if the event had come.
        let watch = Kevent::new(pid as usize, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, i as *mut _);
        match self.kq.kevent(&[watch], &mut [], None) {
            Ok(_) => Ok(pid),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                let status = self.reap(i);
                self.exited(i, pid, status)?;
                Ok(pid)
            }
            Err(e) => {
                // SAFETY: killing our own child, not yet reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                self.reap(i);
                Err(io::Error::new(
                    e.kind(),
                    format!("EV_ADD EVFILT_PROC NOTE_EXIT of pid {pid}: {e}"),
                ))
            }
        }
    }

    /// Collects the exited child of slot `i` (its zombie), returning its wait status.
    fn reap(&mut self, i: usize) -> i32 {
        let pid = std::mem::take(&mut self.slots[i].pid);
        let mut status = 0;
        if pid > 0 {
            // SAFETY: waiting for our own child; `status` is a valid int.
            while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
                && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
        }
        status
    }

    /// Child `i`, pid `pid`, exited with wait status `status`: restart it, unless it has no
    /// restarts left or we are stopping.
    fn exited(&mut self, i: usize, pid: libc::pid_t, status: i32) -> io::Result<()> {
        let what = describe(status);
        let slot = &mut self.slots[i];
        if self.stopping {
            say(format_args!("child {i} (pid {pid}) {what}"));
        } else if slot.restarts >= self.opts.restarts {
            say(format_args!(
                "child {i} (pid {pid}) {what}; no restarts left"
            ));
        } else {
            slot.restarts += 1;
            let n = slot.restarts;
            say(format_args!("child {i} (pid {pid}) {what}"));
            let new = self.start(i)?;
            let max = self.opts.restarts;
            say(format_args!(
                "restarted child {i} (restart {n} of {max}): pid {new}"
            ));
        }
        Ok(())
    }

    fn running(&self) -> usize {
        self.slots.iter().filter(|s| s.pid > 0).count()
    }

    /// Sends `sig` to every running child.
    fn kill_all(&self, sig: i32) {
        for s in self.slots.iter().filter(|s| s.pid > 0) {
            // SAFETY: kill() of our own child, which has not been reaped (its pid is not
            // reused).
            unsafe { libc::kill(s.pid, sig) };
        }
    }

    fn run(&mut self) -> io::Result<()> {
        for i in 0..self.opts.children {
            let pid = self.start(i)?;
            say(format_args!("started child {i}: pid {pid}"));
        }
        let mut events = [Kevent::default(); 16];
        while self.running() > 0 {
            let n = match self.kq.kevent(&[], &mut events, None) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            for ev in &events[..n] {
                match ev.filter {
                    EVFILT_PROC if ev.fflags & NOTE_EXIT != 0 => {
                        let i = ev.udata as usize;
                        let pid = ev.ident as libc::pid_t;
                        // The status is in the event; the zombie is still ours to reap.
                        let status = ev.data as i32;
                        if self.slots.get(i).is_some_and(|s| s.pid == pid) {
                            self.reap(i);
                            self.exited(i, pid, status)?;
                        }
                    }
                    EVFILT_SIGNAL => {
                        let sig = ev.ident as i32;
                        let name = signal_name(sig);
                        if self.stopping {
                            say(format_args!(
                                "{name} again: killing {} children",
                                self.running()
                            ));
                            self.kill_all(libc::SIGKILL);
                        } else {
                            self.stopping = true;
                            say(format_args!("{name}: stopping {} children", self.running()));
                            self.kill_all(libc::SIGTERM);
                            let grace = Kevent::new(
                                GRACE,
                                EVFILT_TIMER,
                                EV_ADD | EV_ONESHOT,
                                0,
                                GRACE_MS,
                                null_mut(),
                            );
                            self.kq.kevent(&[grace], &mut [], None)?;
                        }
                    }
                    EVFILT_TIMER if ev.ident == GRACE => {
                        say(format_args!(
                            "grace period over: killing {} children",
                            self.running()
                        ));
                        self.kill_all(libc::SIGKILL);
                    }
                    _ => say(format_args!("unexpected event {ev:?}")),
                }
            }
        }
        if self.stopping {
            say(format_args!("all children stopped"));
        } else {
            say(format_args!("no child left to run"));
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    ExitCode::from(run(std::env::args().skip(1).collect()) as u8)
}

/// The program, given its arguments (without the program name): returns the exit status.
/// Public so that a test can run it in a process of its own.
pub fn run(args: Vec<String>) -> i32 {
    let Some(opts) = parse(args.into_iter()) else {
        return usage();
    };
    // As BSD programs do: the signals are ignored, so that their default action (ending
    // the process) does not run, and the kqueue reports them (EVFILT_SIGNAL sees ignored
    // signals too).
    // SAFETY: signal() with SIG_IGN installs no function of ours.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    let kq = match Kqueue::new() {
        Ok(kq) => kq,
        Err(e) => {
            eprintln!("supervise: kqueue: {e}");
            return 1;
        }
    };
    let signals = [libc::SIGTERM, libc::SIGINT].map(|s| {
        Kevent::new(
            s as usize,
            EVFILT_SIGNAL,
            EV_ADD | EV_CLEAR,
            0,
            0,
            null_mut(),
        )
    });
    if let Err(e) = kq.kevent(&signals, &mut [], None) {
        eprintln!("supervise: EV_ADD EVFILT_SIGNAL: {e}");
        return 1;
    }
    let Ok(argv) = opts
        .command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return usage();
    };
    let children = opts.children;
    let mut sup = Supervisor {
        kq,
        opts,
        argv,
        slots: (0..children)
            .map(|_| Slot {
                pid: 0,
                restarts: 0,
            })
            .collect(),
        stopping: false,
    };
    match sup.run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("supervise: {e}");
            sup.kill_all(libc::SIGKILL);
            for i in 0..sup.slots.len() {
                sup.reap(i);
            }
            1
        }
    }
}
