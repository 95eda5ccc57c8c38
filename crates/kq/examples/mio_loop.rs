//! A kqueue in a mio event loop, next to a `mio::Waker`.
//!
//! The kqueue is registered with the `Poll` like a socket. Worker threads trigger user
//! events (one ident each) and wait for the loop to acknowledge each trigger before the
//! next, so every trigger must produce exactly one event: a lost wakeup would stall a
//! worker. On each mio event for the kqueue the loop collects with zero-timeout calls
//! until one finds nothing (mio's edge-triggered rule: work until "would block").
//!
//! `cargo run -p kq --example mio_loop`; the test suite runs it too
//! (`tests/async_examples.rs`).

use kq::{Events, Kqueue};
use mio::{Interest, Poll, Token, Waker};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const KQUEUE: Token = Token(0);
const WAKER: Token = Token(1);
const WORKERS: usize = 3;
const ROUNDS: usize = 500;

pub fn main() -> io::Result<()> {
    let mut poll = Poll::new()?;
    let kq = Kqueue::new()?;
    for w in 0..WORKERS {
        kq.add_user(w)?;
    }
    let mut kq = kq;
    poll.registry()
        .register(&mut kq, KQUEUE, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let kq = Arc::new(kq);

    // acks[w]: the events of ident w the loop has handled.
    let acks: Arc<Vec<AtomicUsize>> = Arc::new((0..WORKERS).map(|_| AtomicUsize::new(0)).collect());
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (kq, acks) = (Arc::clone(&kq), Arc::clone(&acks));
            thread::spawn(move || -> io::Result<()> {
                for round in 0..ROUNDS {
                    kq.trigger(w, 0)?;
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while acks[w].load(Ordering::Acquire) <= round {
                        if Instant::now() > deadline {
                            return Err(io::Error::other(format!(
                                "worker {w}: round {round} lost"
                            )));
                        }
                        thread::yield_now();
                    }
                }
                Ok(())
            })
        })
        .collect();
    let done = {
        let waker = Arc::clone(&waker);
        thread::spawn(move || {
            let r: io::Result<()> = workers.into_iter().try_for_each(|w| w.join().unwrap());
            waker.wake()?;
            r
        })
    };

    let mut mio_events = mio::Events::with_capacity(16);
    let mut events = Events::with_capacity(8);
    let mut handled = 0;
    let mut finished = false;
    while !finished {
        poll.poll(&mut mio_events, Some(Duration::from_secs(10)))?;
        if mio_events.is_empty() {
            return Err(io::Error::other("no mio event for 10 s"));
        }
        for ev in mio_events.iter() {
            match ev.token() {
                KQUEUE => {
                    while kq.wait(&mut events, Some(Duration::ZERO))? > 0 {
                        for e in events.iter() {
                            acks[e.ident()].fetch_add(1, Ordering::Release);
                            handled += 1;
                        }
                    }
                }
                WAKER => finished = true,
                _ => unreachable!(),
            }
        }
    }
    done.join().unwrap()?;
    assert_eq!(handled, WORKERS * ROUNDS);
    println!("{handled} user events through mio, none lost");
    Ok(())
}
