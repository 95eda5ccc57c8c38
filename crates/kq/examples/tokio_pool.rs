//! A thread pool wakes a tokio task through a kqueue.
//!
//! Worker threads (plain `std` threads, no runtime) take jobs from a queue, put each result
//! in a shared list and trigger one user event; the task awaits the kqueue with
//! [`AsyncKqueue::wait`] and empties the list at every wakeup. The user event is
//! edge-triggered (EV_CLEAR): triggers that come while it is pending coalesce into one
//! wakeup, so the list, not the event count, says how much work arrived.
//!
//! `cargo run -p kq --example tokio_pool`; the test suite runs it too
//! (`tests/async_examples.rs`).

use kq::tokio::AsyncKqueue;
use kq::{Events, Kqueue};
use std::io;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The user event the workers trigger.
const RESULTS: usize = 1;
const WORKERS: usize = 4;
const JOBS: u64 = 2_000;

/// The "work": a slow-ish function of the job number.
fn work(job: u64) -> u64 {
    (0..=job % 97).map(|i| i * i).sum::<u64>() + job
}

pub fn main() -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (wakeups, total) = rt.block_on(run())?;
    let expected: u64 = (0..JOBS).map(work).sum();
    assert_eq!(total, expected, "every job's result arrived once");
    println!("{JOBS} jobs on {WORKERS} threads: {wakeups} wakeups of the task, sum {total}");
    Ok(())
}

/// Runs the pool; returns (wakeups of the task, sum of the results).
async fn run() -> io::Result<(usize, u64)> {
    let kq = AsyncKqueue::new(Kqueue::new()?)?;
    kq.get_ref().add_user(RESULTS)?;

    let (job_tx, job_rx) = mpsc::channel::<u64>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let results = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (jobs, results, kq) = (
                Arc::clone(&job_rx),
                Arc::clone(&results),
                Arc::clone(kq.get_ref()),
            );
            thread::spawn(move || -> io::Result<()> {
                loop {
                    let job = jobs.lock().unwrap().recv();
                    let Ok(job) = job else { return Ok(()) };
                    let r = work(job);
                    results.lock().unwrap().push(r);
                    kq.trigger(RESULTS, 0)?; // after the push: the task sees the result
                }
            })
        })
        .collect();
    for job in 0..JOBS {
        job_tx.send(job).unwrap();
    }
    drop(job_tx);

    let mut events = Events::with_capacity(4);
    let (mut wakeups, mut received, mut total) = (0, 0, 0);
    while received < JOBS {
        let wait = kq.wait(&mut events);
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .map_err(|_| io::Error::other("no wakeup for 10 s: a trigger was lost"))??;
        wakeups += 1;
        for r in std::mem::take(&mut *results.lock().unwrap()) {
            received += 1;
            total += r;
        }
    }
    for w in workers {
        w.join().unwrap()?;
    }
    Ok((wakeups, total))
}
