//! EVFILT_SIGNAL against signalfd, in the same run: 10,000 signals sent by the measuring
//! thread to itself (`tgkill`, so that each is delivered before the call returns) and
//! counted.
//!
//! - `kevent`: SIGUSR1 ignored and watched by an EVFILT_SIGNAL knote; each signal is
//!   followed by a kevent() with a zero timeout that collects its event (data 1). The
//!   library's handler runs for each (count, eventfd write), then kevent() takes the edge
//!   from its epoll.
//! - `signalfd`: the raw Linux mechanism: SIGUSR2 blocked in the thread, a signalfd; each
//!   signal is followed by a read() of the signalfd.
//! - `handler_only`: the floor of any design that leaves the program's disposition alone:
//!   a bare counting handler (no library), each signal delivered to it.
//! - `kevent_batch`: the 10,000 signals, then one kevent() that reports data 10,000 (the
//!   counting alone, without a collect per signal).
//!
//! Run: `cargo bench -p kq --bench signal`; the ratio to quote is `kevent` / `signalfd`.

use criterion::{criterion_group, Criterion, Throughput};
use kq::{Kevent, Kqueue, EVFILT_SIGNAL, EV_ADD};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SIGNALS: u64 = 10_000;

/// Sends `sig` to the calling thread (delivered before the call returns unless blocked).
fn send_to_self(sig: i32) {
    // SAFETY: gettid/getpid/tgkill take plain integers; the signal goes to this thread.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid);
        libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, sig);
    }
}

static HANDLED: AtomicU64 = AtomicU64::new(0);
extern "C" fn count(_: i32) {
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

fn signals(c: &mut Criterion) {
    let mut g = c.benchmark_group("signal_10k");
    g.throughput(Throughput::Elements(SIGNALS));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(5));

    // kevent: SIGUSR1 ignored, watched.
    // SAFETY: SIG_IGN runs no code.
    unsafe { libc::signal(libc::SIGUSR1, libc::SIG_IGN) };
    let kq = Kqueue::new().expect("kqueue");
    let add = Kevent::new(
        libc::SIGUSR1 as usize,
        EVFILT_SIGNAL,
        EV_ADD,
        0,
        0,
        null_mut(),
    );
    kq.kevent(&[add], &mut [], None).expect("EV_ADD");
    g.bench_function("kevent", |b| {
        let mut ev = [Kevent::default()];
        b.iter(|| {
            for _ in 0..SIGNALS {
                send_to_self(libc::SIGUSR1);
                let n = kq.kevent(&[], &mut ev, Some(Duration::ZERO)).unwrap();
                assert!(n == 1 && ev[0].data == 1);
            }
        })
    });
    g.bench_function("kevent_batch", |b| {
        let mut ev = [Kevent::default()];
        b.iter(|| {
            for _ in 0..SIGNALS {
                send_to_self(libc::SIGUSR1);
            }
            let n = kq.kevent(&[], &mut ev, Some(Duration::ZERO)).unwrap();
            assert!(n == 1 && ev[0].data == SIGNALS as isize);
        })
    });
    drop(kq);

    // signalfd: SIGUSR2 blocked in this thread.
    let mut set = kq::signal::default().sa_mask;
    // SAFETY: sigaddset writes the set; pthread_sigmask changes this thread's mask;
    // signalfd makes a descriptor for the set.
    let sfd = unsafe {
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, null_mut());
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC)
    };
    assert!(sfd >= 0);
    g.bench_function("signalfd", |b| {
        // SAFETY: all zeroes is a valid signalfd_siginfo.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        b.iter(|| {
            for _ in 0..SIGNALS {
                send_to_self(libc::SIGUSR2);
                // SAFETY: reads one signalfd_siginfo into `info`.
                let r = unsafe {
                    libc::read(sfd, (&mut info as *mut libc::signalfd_siginfo).cast(), size)
                };
                assert!(r == size as isize && info.ssi_signo == libc::SIGUSR2 as u32);
            }
        })
    });
    // SAFETY: our descriptor, closed once; the mask put back.
    unsafe {
        libc::close(sfd);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, null_mut());
    }

    // handler_only: a bare handler on SIGURG.
    // SAFETY: the handler only counts.
    unsafe {
        libc::signal(
            libc::SIGURG,
            count as extern "C" fn(i32) as libc::sighandler_t,
        )
    };
    g.bench_function("handler_only", |b| {
        b.iter(|| {
            for _ in 0..SIGNALS {
                send_to_self(libc::SIGURG);
            }
        })
    });
    assert!(HANDLED.load(Ordering::Relaxed) > 0);
    g.finish();
}

/// The two main lines interleaved, round by round (criterion measures its lines one after
/// the other, which a loaded machine skews): prints the per-signal times (median of the
/// rounds) and their ratio.
fn interleaved() {
    const ROUNDS: usize = 31;
    const PER_ROUND: u64 = 2_000;
    // SAFETY: SIG_IGN runs no code.
    unsafe { libc::signal(libc::SIGUSR1, libc::SIG_IGN) };
    let kq = Kqueue::new().expect("kqueue");
    let add = Kevent::new(
        libc::SIGUSR1 as usize,
        EVFILT_SIGNAL,
        EV_ADD,
        0,
        0,
        null_mut(),
    );
    kq.kevent(&[add], &mut [], None).expect("EV_ADD");
    let mut set = kq::signal::default().sa_mask;
    // SAFETY: as in `signals`.
    let sfd = unsafe {
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, null_mut());
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC)
    };
    assert!(sfd >= 0);
    // SAFETY: all zeroes is a valid signalfd_siginfo.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: the handler only counts.
    unsafe {
        libc::signal(
            libc::SIGURG,
            count as extern "C" fn(i32) as libc::sighandler_t,
        )
    };
    let mut ev = [Kevent::default()];
    let (mut k, mut s, mut h, mut b) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = std::time::Instant::now();
        for _ in 0..PER_ROUND {
            send_to_self(libc::SIGUSR1);
        }
        let n = kq.kevent(&[], &mut ev, Some(Duration::ZERO)).unwrap();
        assert!(n == 1 && ev[0].data == PER_ROUND as isize);
        b.push(t.elapsed().as_nanos() as f64 / PER_ROUND as f64);
        let t = std::time::Instant::now();
        for _ in 0..PER_ROUND {
            send_to_self(libc::SIGURG);
        }
        h.push(t.elapsed().as_nanos() as f64 / PER_ROUND as f64);
        let t = std::time::Instant::now();
        for _ in 0..PER_ROUND {
            send_to_self(libc::SIGUSR1);
            let n = kq.kevent(&[], &mut ev, Some(Duration::ZERO)).unwrap();
            assert!(n == 1 && ev[0].data == 1);
        }
        k.push(t.elapsed().as_nanos() as f64 / PER_ROUND as f64);
        let t = std::time::Instant::now();
        for _ in 0..PER_ROUND {
            send_to_self(libc::SIGUSR2);
            // SAFETY: reads one signalfd_siginfo into `info`.
            let r =
                unsafe { libc::read(sfd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
            assert!(r == size as isize);
        }
        s.push(t.elapsed().as_nanos() as f64 / PER_ROUND as f64);
    }
    // SAFETY: our descriptor, closed once; the mask put back.
    unsafe {
        libc::close(sfd);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, null_mut());
    }
    for v in [&mut k, &mut s, &mut h, &mut b] {
        v.sort_by(f64::total_cmp);
    }
    let (km, sm, hm, bm) = (k[ROUNDS / 2], s[ROUNDS / 2], h[ROUNDS / 2], b[ROUNDS / 2]);
    println!(
        "signal interleaved ({ROUNDS} rounds of {PER_ROUND}, median ns per signal): \
         kevent {km:.0}, signalfd {sm:.0}, kevent/signalfd {:.2}; kevent_batch {bm:.0} \
         ({:.2}); a bare handler {hm:.0} (signalfd {:.2}, kevent {:.2})",
        km / sm,
        bm / sm,
        hm / sm,
        km / hm
    );
}

criterion_group!(benches, signals);

fn main() {
    interleaved();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
