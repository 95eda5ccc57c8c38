//! A tokio task awaits timers and user events of one kqueue.
//!
//! A periodic timer ticks every 10 ms, a one-shot timer ends the run at 80 ms, and a thread
//! triggers a user event at about 30 ms with a value in its user flags (on a machine so
//! loaded that the thread comes later than the one-shot timer, the run ends with the user
//! event instead). The task handles
//! whatever arrives, in one loop on [`AsyncKqueue::wait`], on a current-thread runtime
//! (no thread of the runtime ever blocks in `kevent()`).
//!
//! `cargo run -p kq --example tokio_timers`; the test suite runs it too
//! (`tests/async_examples.rs`).

use kq::tokio::AsyncKqueue;
use kq::{Change, EventFilter, Events, FflagsOp, Kqueue};
use std::io;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const TICK: usize = 1;
const DEADLINE: usize = 2;
const MESSAGE: usize = 3;

pub fn main() -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> io::Result<()> {
    let kq = AsyncKqueue::new(Kqueue::new()?)?;
    let start = Instant::now();
    kq.get_ref().apply(&[
        Change::timer(TICK, Duration::from_millis(10)).add(),
        Change::timer(DEADLINE, Duration::from_millis(80))
            .add()
            .oneshot(),
        Change::user(MESSAGE).add().clear(),
    ])?;
    let sender = {
        let kq = Arc::clone(kq.get_ref());
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            kq.apply(&[Change::user(MESSAGE)
                .trigger()
                .fflags_op(FflagsOp::Copy(0x2a))])
        })
    };

    let mut events = Events::with_capacity(8);
    let (mut ticks, mut message, mut deadline) = (0, None, false);
    while !(deadline && message.is_some()) {
        if deadline && start.elapsed() > Duration::from_secs(30) {
            return Err(io::Error::other("the user event never came"));
        }
        tokio::time::timeout(Duration::from_secs(10), kq.wait(&mut events))
            .await
            .map_err(|_| io::Error::other("no event for 10 s"))??;
        for ev in events.iter() {
            match (ev.filter(), ev.ident()) {
                // `data` counts the expirations since the last report.
                (EventFilter::Timer, TICK) => ticks += ev.data(),
                (EventFilter::Timer, DEADLINE) => deadline = true,
                (EventFilter::User, MESSAGE) => {
                    message = Some((ev.fflags(), start.elapsed()));
                }
                _ => return Err(io::Error::other(format!("unexpected event {ev:?}"))),
            }
        }
    }
    let elapsed = start.elapsed();
    sender.join().unwrap()?;
    let (value, at) = message.expect("the loop ends with the message");
    assert_eq!(value, 0x2a);
    assert!(elapsed >= Duration::from_millis(80), "{elapsed:?}");
    assert!(ticks >= 7, "{ticks} ticks in {elapsed:?}");
    println!("{ticks} ticks, message {value:#x} at {at:?}, deadline at {elapsed:?}");
    Ok(())
}
