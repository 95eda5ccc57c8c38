//! What the waiting policy costs and buys: CPU time per second of an idle loop that waits
//! 1 ms at a time, and the cross-thread round trip of a user event, each with spinning on
//! (the default, 20 µs) and off (`set_spin_limit(Duration::ZERO)`).
//!
//!     cargo run --release -p kq --example wait_policy

use kq::{Kevent, Kqueue, EVFILT_USER, EV_ADD, EV_CLEAR, NOTE_TRIGGER};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn user(ident: usize, flags: u16, fflags: u32) -> Kevent {
    Kevent::new(ident, EVFILT_USER, flags, fflags, 0, std::ptr::null_mut())
}

/// CPU time spent per wall-clock second by a loop of 1 ms waits that find nothing.
fn idle_cpu(spin: Option<Duration>) -> Duration {
    let kq = Kqueue::new().unwrap();
    if let Some(s) = spin {
        kq.set_spin_limit(s);
    }
    kq.kevent(&[user(1, EV_ADD | EV_CLEAR, 0)], &mut [], None)
        .unwrap();
    let mut ev = [Kevent::default(); 1];
    let (wall0, cpu0) = (Instant::now(), thread_cpu());
    while wall0.elapsed() < Duration::from_secs(1) {
        kq.kevent(&[], &mut ev, Some(Duration::from_millis(1)))
            .unwrap();
    }
    (thread_cpu() - cpu0).div_f64(wall0.elapsed().as_secs_f64())
}

/// Cross-thread round trip: two kqueues, one per direction; each side triggers the other's
/// EV_CLEAR user event and waits on its own kqueue.
fn round_trip(spin: Option<Duration>, rounds: usize) -> Duration {
    let make = || {
        let kq = Arc::new(Kqueue::new().unwrap());
        if let Some(s) = spin {
            kq.set_spin_limit(s);
        }
        kq.kevent(&[user(1, EV_ADD | EV_CLEAR, 0)], &mut [], None)
            .unwrap();
        kq
    };
    let (ping, pong) = (make(), make());
    let (ping2, pong2) = (Arc::clone(&ping), Arc::clone(&pong));
    let echo = std::thread::spawn(move || {
        let mut ev = [Kevent::default(); 1];
        for _ in 0..rounds {
            ping2.kevent(&[], &mut ev, None).unwrap();
            pong2
                .kevent(&[user(1, 0, NOTE_TRIGGER)], &mut [], None)
                .unwrap();
        }
    });
    let mut ev = [Kevent::default(); 1];
    let start = Instant::now();
    for _ in 0..rounds {
        ping.kevent(&[user(1, 0, NOTE_TRIGGER)], &mut [], None)
            .unwrap();
        pong.kevent(&[], &mut ev, None).unwrap();
    }
    let t = start.elapsed() / rounds as u32;
    echo.join().unwrap();
    t
}

fn main() {
    println!("{:<34} {:>14} {:>14}", "", "spin 20 us", "spin off");
    let on = idle_cpu(None);
    let off = idle_cpu(Some(Duration::ZERO));
    println!(
        "{:<34} {:>11.2} ms {:>11.2} ms",
        "CPU per idle second (1 ms waits)",
        on.as_secs_f64() * 1e3,
        off.as_secs_f64() * 1e3
    );
    let mut on = Vec::new();
    let mut off = Vec::new();
    for _ in 0..5 {
        on.push(round_trip(None, 5_000));
        off.push(round_trip(Some(Duration::ZERO), 2_000));
    }
    on.sort();
    off.sort();
    println!(
        "{:<34} {:>11.2} us {:>11.2} us",
        "cross-thread round trip (median)",
        on[2].as_secs_f64() * 1e6,
        off[2].as_secs_f64() * 1e6
    );
}
