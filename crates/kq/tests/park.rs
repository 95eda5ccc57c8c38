//! Parked kevent() calls (`KqueueRef::kevent_park`, `kevent_resume`, `Park`): the wait is
//! the caller's, as the C library makes it to be a thread cancellation point.
//!
//! Each test waits the way the C library does: `epoll_pwait` on `Park::wait_fd` into
//! `Park::wait_buffer`, with `Park::wait_mask`, for `Park::wait_timeout`.

use std::os::fd::AsFd;
use std::ptr::null_mut;
use std::time::{Duration, Instant};

use kq::*;

fn user(ident: usize, flags: u16, fflags: u32) -> Kevent {
    Kevent::new(ident, EVFILT_USER, flags, fflags, 0, null_mut())
}

fn ts(d: Duration) -> Option<Timespec> {
    Some(Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: d.subsec_nanos() as i64,
    })
}

/// The calling thread's signal mask.
fn mask() -> libc::sigset_t {
    // SAFETY: all zeroes is a valid sigset_t; pthread_sigmask only writes the current mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut set);
        set
    }
}

fn blocked(set: &libc::sigset_t, sig: i32) -> bool {
    // SAFETY: reads an initialised set.
    unsafe { libc::sigismember(set, sig) == 1 }
}

/// The parked call's wait, as the C library makes it; Ok(n) entries, or the errno.
fn wait(park: &mut Park) -> Result<usize, Errno> {
    let (buf, len) = park.wait_buffer();
    let ms = park.wait_timeout().map_or(-1, |t| {
        t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
    });
    // SAFETY: the buffer and its length, and the mask, come from the parked call, which
    // lives across the call; the descriptor is the kqueue's epoll.
    let n = unsafe { libc::epoll_pwait(park.wait_fd(), buf, len as i32, ms, park.wait_mask()) };
    if n < 0 {
        Err(Errno(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    } else {
        Ok(n as usize)
    }
}

#[test]
fn parked_call_is_woken_by_a_trigger_from_another_thread() {
    let kq = Kqueue::with_personality(Personality::FreeBsd).unwrap();
    let before = mask();
    assert!(!blocked(&before, libc::SIGUSR1));
    let kqr = Kqueue::find(kq.as_fd()).unwrap();
    let mut events = [Kevent::default(); 2];
    let mut park = Park::new();
    // The change is applied, then the call parks (nothing pending): every signal blocked.
    let n = kqr
        .kevent_park(
            &[user(1, EV_ADD | EV_CLEAR, 0)],
            &mut events,
            ts(Duration::from_secs(10)),
            &mut park,
        )
        .unwrap();
    assert_eq!(n, 0);
    assert!(park.is_waiting());
    assert!(blocked(&mask(), libc::SIGUSR1));
    assert!(park.wait_timeout().unwrap() <= Duration::from_secs(10));
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            kq.kevent(&[user(1, 0, NOTE_TRIGGER)], &mut [], None)
                .unwrap();
        });
        let mut n = 0;
        while park.is_waiting() {
            let woken = wait(&mut park);
            n = kqr.kevent_resume(&mut events, &mut park, woken).unwrap();
        }
        assert_eq!(n, 1);
    });
    assert_eq!((events[0].ident, events[0].filter), (1, EVFILT_USER));
    // The program's mask is back once the call returned.
    assert!(!blocked(&mask(), libc::SIGUSR1));
}

#[test]
fn parked_call_times_out() {
    let kq = Kqueue::new().unwrap();
    let kqr = Kqueue::find(kq.as_fd()).unwrap();
    let mut events = [Kevent::default(); 1];
    let mut park = Park::new();
    let start = Instant::now();
    let mut n = kqr
        .kevent_park(&[], &mut events, ts(Duration::from_millis(30)), &mut park)
        .unwrap();
    while park.is_waiting() {
        let woken = wait(&mut park);
        n = kqr.kevent_resume(&mut events, &mut park, woken).unwrap();
    }
    assert_eq!(n, 0);
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert!(!blocked(&mask(), libc::SIGUSR1));
}

#[test]
fn calls_that_need_no_wait_do_not_park() {
    let kq = Kqueue::new().unwrap();
    let kqr = Kqueue::find(kq.as_fd()).unwrap();
    let mut events = [Kevent::default(); 1];
    let mut park = Park::new();
    // Pending event, zero timeout, no eventlist: each returns at once.
    let add = [user(1, EV_ADD, 0), user(1, 0, NOTE_TRIGGER)];
    assert_eq!(kqr.kevent_park(&add, &mut [], None, &mut park), Ok(0));
    assert!(!park.is_waiting());
    assert_eq!(kqr.kevent_park(&[], &mut events, None, &mut park), Ok(1));
    assert!(!park.is_waiting());
    let del = [user(1, EV_DELETE, 0)];
    assert_eq!(kqr.kevent_park(&del, &mut [], None, &mut park), Ok(0));
    assert_eq!(
        kqr.kevent_park(&[], &mut events, ts(Duration::ZERO), &mut park),
        Ok(0)
    );
    assert!(!park.is_waiting());
    // Resuming a call that is not parked is an error; abandoning one does nothing.
    assert_eq!(
        kqr.kevent_resume(&mut events, &mut park, Ok(0)),
        Err(Errno::INVAL)
    );
    park.abandon();
    assert!(!blocked(&mask(), libc::SIGUSR1));
}

#[test]
fn abandoned_and_interrupted_calls_restore_the_mask() {
    let kq = Kqueue::new().unwrap();
    let kqr = Kqueue::find(kq.as_fd()).unwrap();
    let mut events = [Kevent::default(); 1];
    let mut park = Park::new();
    kqr.kevent_park(&[], &mut events, None, &mut park).unwrap();
    assert!(park.is_waiting() && park.wait_timeout().is_none());
    assert!(blocked(&mask(), libc::SIGUSR1));
    park.abandon();
    assert!(!park.is_waiting());
    assert!(!blocked(&mask(), libc::SIGUSR1));

    // A wait interrupted by a signal: the call fails with EINTR, the mask is back. (The
    // program has a handler, which may have run: an EINTR where none could have is taken
    // for a signal another thread took, and the call goes on.)
    extern "C" fn noop(_: libc::c_int) {}
    // SAFETY: an async-signal-safe handler that does nothing, for a signal nobody sends.
    unsafe { libc::signal(libc::SIGUSR2, noop as extern "C" fn(libc::c_int) as usize) };
    let mut park = Park::new();
    kqr.kevent_park(&[], &mut events, None, &mut park).unwrap();
    assert!(park.is_waiting());
    assert_eq!(
        kqr.kevent_resume(&mut events, &mut park, Err(Errno::INTR)),
        Err(Errno::INTR)
    );
    assert!(!park.is_waiting());
    assert!(!blocked(&mask(), libc::SIGUSR1));

    // With no handler of the program's that could have run, the same EINTR is no
    // interruption: the call parks again, and abandoning it puts the mask back.
    // SAFETY: back to the default action.
    unsafe { libc::signal(libc::SIGUSR2, libc::SIG_DFL) };
    let mut park = Park::new();
    kqr.kevent_park(&[], &mut events, None, &mut park).unwrap();
    assert_eq!(
        kqr.kevent_resume(&mut events, &mut park, Err(Errno::INTR)),
        Ok(0)
    );
    assert!(park.is_waiting());
    park.abandon();
    assert!(!blocked(&mask(), libc::SIGUSR1));
}
