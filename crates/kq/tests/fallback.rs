//! Waiting on kernels before 5.11, which lack epoll_pwait2: the library then uses
//! epoll_pwait, whose timeout is in whole milliseconds (rounded up, so that no wait ends
//! early) and which restores the signal mask as atomically. `kq::force_fallbacks()` makes
//! this process take that path on any kernel; this file is its own test binary, so every
//! test here runs on the fallback.

use kq::{Kevent, Kqueue, EVFILT_READ, EVFILT_TIMER, EVFILT_USER, EV_ADD, EV_CLEAR, NOTE_TRIGGER};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn kq() -> Kqueue {
    kq::force_fallbacks();
    Kqueue::new().unwrap()
}

fn kev(ident: usize, filter: i16, flags: u16, fflags: u32, data: isize) -> Kevent {
    Kevent::new(ident, filter, flags, fflags, data, std::ptr::null_mut())
}

/// A timeout shorter than a millisecond is never cut short: nothing pending, the call
/// returns 0 no earlier than asked.
#[test]
fn fallback_short_timeout_not_early() {
    let kq = kq();
    let mut ev = [Kevent::default(); 1];
    for t in [
        Duration::from_micros(1),
        Duration::from_micros(300),
        Duration::from_millis(3),
    ] {
        let start = Instant::now();
        assert_eq!(kq.kevent(&[], &mut ev, Some(t)).unwrap(), 0);
        assert!(
            start.elapsed() >= t,
            "{t:?} wait ended after {:?}",
            start.elapsed()
        );
    }
}

/// A trigger from another thread wakes a sleeper; a timer fires on time.
#[test]
fn fallback_wakeups() {
    let kq = Arc::new(kq());
    kq.kevent(
        &[kev(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0)],
        &mut [],
        None,
    )
    .unwrap();
    let k2 = Arc::clone(&kq);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        k2.kevent(&[kev(1, EVFILT_USER, 0, NOTE_TRIGGER, 0)], &mut [], None)
            .unwrap();
    });
    let mut ev = [Kevent::default(); 1];
    let start = Instant::now();
    assert_eq!(
        kq.kevent(&[], &mut ev, Some(Duration::from_secs(60)))
            .unwrap(),
        1
    );
    assert_eq!((ev[0].ident, ev[0].filter), (1, EVFILT_USER));
    assert!(start.elapsed() < Duration::from_secs(30));
    t.join().unwrap();

    kq.kevent(&[kev(2, EVFILT_TIMER, EV_ADD, 0, 20)], &mut [], None)
        .unwrap();
    let start = Instant::now();
    assert_eq!(
        kq.kevent(&[], &mut ev, Some(Duration::from_secs(60)))
            .unwrap(),
        1
    );
    assert_eq!((ev[0].ident, ev[0].filter), (2, EVFILT_TIMER));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(19) && waited < Duration::from_secs(30),
        "{waited:?}"
    );
}

/// Data on a watched socket wakes a sleeper.
#[test]
fn fallback_descriptor_wakes() {
    let kq = kq();
    let (a, mut b) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd() as usize;
    kq.kevent(&[kev(fd, EVFILT_READ, EV_ADD, 0, 0)], &mut [], None)
        .unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        b.write_all(b"abc").unwrap();
        b
    });
    let mut ev = [Kevent::default(); 1];
    assert_eq!(
        kq.kevent(&[], &mut ev, Some(Duration::from_secs(30)))
            .unwrap(),
        1
    );
    assert_eq!(
        (ev[0].ident, ev[0].filter, ev[0].data),
        (fd, EVFILT_READ, 3)
    );
    drop(t.join().unwrap());
}

extern "C" fn on_signal(_: libc::c_int) {}

/// A signal handled while the thread waits interrupts the wait with EINTR (never
/// restarted), on the fallback too.
#[test]
fn fallback_eintr() {
    let kq = Arc::new(kq());
    // SAFETY: installs a handler that does nothing, for SIGUSR2, without SA_RESTART.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let k2 = Arc::clone(&kq);
    let t = std::thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        tx.send(unsafe { libc::pthread_self() }).unwrap();
        let mut ev = [Kevent::default(); 1];
        k2.kevent(&[], &mut ev, Some(Duration::from_secs(60)))
    });
    let thread = rx.recv().unwrap();
    // A signal that lands before the thread waits in kevent only runs the handler: keep
    // signalling until the call returns.
    while !t.is_finished() {
        // SAFETY: the thread is alive (it is waiting in kevent, or about to).
        unsafe { libc::pthread_kill(thread, libc::SIGUSR2) };
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = t.join().unwrap();
    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EINTR));
}
