//! EVFILT_SIGNAL: a signal sent to the process that another thread takes does not
//! interrupt a `kevent()` (docs/semantics.md §5.9, case S5 of §7.7). Linux wakes every
//! thread that lets a pending process signal through when it starts waiting, and the first
//! to look takes the signal: a thread entering `kevent()`'s sleep at that moment found its
//! wait interrupted with no handler run in it. On BSD the signal interrupts only the thread
//! that takes it.
//!
//! Signals and their actions are process-wide, so each test runs in a process of its own
//! (`isolated::in_child`).

#[macro_use]
mod isolated;
mod util;

use kq::{Kevent, Personality, EVFILT_SIGNAL, EV_ADD};
use std::ptr::null_mut;
use std::time::Duration;
use util::{ch_ok, kq};

/// S5 process_signal_taken_by_another_thread: 3000 times, a thread sends SIGUSR1 (watched,
/// ignored by the program) to the process and waits for its event in `kevent()`, while
/// other threads that let the signal through sleep (Linux may pick one of them to take
/// it). The `kevent()` never fails with EINTR: it returns the event, counted once.
fn s5_process_signal_taken_by_another_thread(p: Personality) {
    let s = libc::SIGUSR1;
    // SAFETY: SIG_IGN for SIGUSR1; no handler involved.
    unsafe { libc::signal(s, libc::SIG_IGN) };
    let kq = kq(p);
    ch_ok(
        &kq,
        &[Kevent::new(
            s as usize,
            EVFILT_SIGNAL,
            EV_ADD,
            0,
            0,
            null_mut(),
        )],
    );
    // A thread that lets signals through, asleep meanwhile: Linux may pick it for a
    // signal sent to the process.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let idle = std::thread::spawn(move || {
        let _ = done_rx.recv();
    });
    let mut eintr = 0;
    for i in 0..3000 {
        // SAFETY: sent to the process; SIGUSR1 is watched and ignored.
        assert_eq!(unsafe { libc::kill(libc::getpid(), s) }, 0);
        let mut ev = [Kevent::default(); 2];
        loop {
            match kq.kevent(&[], &mut ev, Some(Duration::from_secs(5))) {
                Ok(1) => {
                    assert_eq!((ev[0].ident, ev[0].data), (s as usize, 1), "{p:?} {i}");
                    break;
                }
                Ok(n) => panic!("{p:?} {i}: {n} events"),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => eintr += 1,
                Err(e) => panic!("{p:?} {i}: {e}"),
            }
        }
    }
    done_tx.send(()).unwrap();
    idle.join().unwrap();
    assert_eq!(eintr, 0, "{p:?}: kevent() failed with EINTR {eintr} times");
}

isolated_both!(s5_process_signal_taken_by_another_thread);
