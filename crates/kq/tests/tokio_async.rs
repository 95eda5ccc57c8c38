//! `kq::tokio::AsyncKqueue`: waking, readiness clearing and the races around it.

use kq::tokio::AsyncKqueue;
use kq::{Change, Event, EventFilter, Events, Kevent, Kqueue};
use std::future::poll_fn;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use tokio::runtime::{Builder, Runtime};
use tokio::time::timeout;

const LONG: Duration = Duration::from_secs(10);
const SHORT: Duration = Duration::from_millis(50);

fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

fn multi_thread() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Waits at most `LONG`; a timeout means a wakeup was lost.
async fn wait_long(kq: &AsyncKqueue, events: &mut Events) -> usize {
    timeout(LONG, kq.wait(events))
        .await
        .expect("no wakeup: an event was lost")
        .unwrap()
}

/// Whether a wait of `SHORT` finds nothing.
async fn quiet(kq: &AsyncKqueue, events: &mut Events) -> bool {
    timeout(SHORT, kq.wait(events)).await.is_err()
}

/// The window the wrapper must get right: a zero-timeout kevent() found nothing, then
/// another thread triggers, then the readiness is cleared. The trigger's edge reaches the
/// reactor after the check, so the clearing must not swallow it: the next wait ends.
#[test]
fn trigger_between_empty_check_and_clearing_is_not_lost() {
    for rt in [current_thread(), multi_thread()] {
        rt.block_on(async {
            let kq = AsyncKqueue::new(Kqueue::new().unwrap()).unwrap();
            kq.get_ref().add_user(1).unwrap();
            let mut events = Events::with_capacity(4);
            for round in 0..50 {
                // Make the descriptor ready, and take the event.
                kq.get_ref().trigger(1, 0).unwrap();
                {
                    let mut ready = timeout(LONG, kq.readable()).await.unwrap().unwrap();
                    assert_eq!(ready.try_wait(&mut events).unwrap(), 1);
                    // Ready still: look again, find nothing, and trigger (from another
                    // thread) before the readiness is cleared. On the current-thread
                    // runtime the reactor cannot run before the clearing, so the edge is
                    // always taken in after it.
                    let r = ready.try_io(|q| {
                        let mut buf = [Kevent::default(); 4];
                        assert_eq!(q.kevent(&[], &mut buf, Some(Duration::ZERO))?, 0);
                        let q2 = Arc::clone(kq.get_ref());
                        thread::spawn(move || q2.trigger(1, 0x10)).join().unwrap()?;
                        Err::<(), _>(io::ErrorKind::WouldBlock.into())
                    });
                    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::WouldBlock);
                }
                assert_eq!(wait_long(&kq, &mut events).await, 1, "round {round}");
                assert_eq!(events.iter().next().unwrap().fflags(), 0x10);
            }
        });
    }
}

/// Ping-pong: a thread triggers at varied moments (before the task looks, while it looks,
/// while it is parked); every trigger is awaited within `LONG`.
#[test]
fn racing_triggers_from_another_thread_are_never_lost() {
    const ROUNDS: usize = 3_000;
    for rt in [current_thread(), multi_thread()] {
        rt.block_on(async {
            let kq = AsyncKqueue::new(Kqueue::new().unwrap()).unwrap();
            kq.get_ref().add_user(9).unwrap();
            let round = Arc::new(AtomicUsize::new(0));
            let trigger = {
                let (kq, round) = (Arc::clone(kq.get_ref()), Arc::clone(&round));
                thread::spawn(move || {
                    let mut seed = 0x2545_f491_4f6c_dd1du64;
                    for r in 0..ROUNDS {
                        while round.load(Ordering::Acquire) < r {
                            std::hint::spin_loop();
                        }
                        // 0 to ~20 µs of delay, so the trigger lands at every point of
                        // the task's check, clear and park.
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        for _ in 0..seed % 4_000 {
                            std::hint::spin_loop();
                        }
                        kq.trigger(9, 0).unwrap();
                    }
                })
            };
            let mut events = Events::with_capacity(4);
            for r in 0..ROUNDS {
                assert_eq!(wait_long(&kq, &mut events).await, 1, "round {r}");
                round.store(r + 1, Ordering::Release);
            }
            trigger.join().unwrap();
            assert!(quiet(&kq, &mut events).await);
        });
    }
}

/// Readiness is kept while events remain: three pending events and room for one are
/// three waits that end at once, with no new edge; only then does a wait park.
#[test]
fn readiness_stays_while_events_remain() {
    current_thread().block_on(async {
        let kq = AsyncKqueue::new(Kqueue::new().unwrap()).unwrap();
        for id in 1..=3 {
            kq.get_ref().add_user(id).unwrap();
            kq.get_ref().trigger(id, 0).unwrap();
        }
        let mut one = Events::with_capacity(1);
        let mut seen = Vec::new();
        for _ in 0..3 {
            assert_eq!(wait_long(&kq, &mut one).await, 1);
            seen.push(one.iter().next().unwrap().ident());
        }
        seen.sort();
        assert_eq!(seen, [1, 2, 3]);
        assert!(quiet(&kq, &mut one).await);
        // A level-triggered event (no EV_CLEAR) stays pending: every wait reports it, though
        // each found fewer events than it had room for and no new edge came.
        kq.get_ref().apply(&[Change::user(4).add()]).unwrap();
        kq.get_ref().trigger(4, 0).unwrap();
        let mut four = Events::with_capacity(4);
        for _ in 0..3 {
            assert_eq!(wait_long(&kq, &mut four).await, 1);
        }
    });
}

/// A wait dropped before it ended (a timeout) takes no event: cancel safety.
#[test]
fn cancelled_wait_loses_nothing() {
    multi_thread().block_on(async {
        let kq = AsyncKqueue::new(Kqueue::new().unwrap()).unwrap();
        kq.get_ref().add_user(5).unwrap();
        let mut events = Events::with_capacity(4);
        assert!(quiet(&kq, &mut events).await);
        kq.get_ref().trigger(5, 0x1).unwrap();
        assert_eq!(wait_long(&kq, &mut events).await, 1);
        assert_eq!(events.iter().next().unwrap().fflags(), 0x1);
    });
}

/// `kevent` applies its changes first; reports (receipts, errors) end it at once.
#[test]
fn async_kevent_applies_changes_and_returns_reports() {
    current_thread().block_on(async {
        let kq = AsyncKqueue::new(Kqueue::new().unwrap()).unwrap();
        let mut out = [Kevent::default(); 4];
        let changes = [
            Change::user(1).add().clear().receipt().kevent(),
            Change::user(2).trigger().kevent(),
        ];
        let n = timeout(LONG, kq.kevent(&changes, &mut out))
            .await
            .unwrap()
            .unwrap();
        let reports: Vec<_> = out[..n]
            .iter()
            .map(|k| {
                Event::from(*k)
                    .report()
                    .map(|r| r.map_err(|e| e.raw_os_error()))
            })
            .collect();
        assert_eq!(reports, [Some(Ok(())), Some(Err(Some(libc::ENOENT)))]);
        // No events slots: nothing to wait for.
        assert_eq!(kq.kevent(&[], &mut []).await.unwrap(), 0);
        let mut none = Events::with_capacity(0);
        assert_eq!(timeout(LONG, kq.wait(&mut none)).await.unwrap().unwrap(), 0);
        // A trigger in the changes: its event comes back from the same call.
        let fire = [Change::user(1).trigger().data(3).kevent()];
        let n = timeout(LONG, kq.kevent(&fire, &mut out))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((n, out[0].ident, out[0].data), (1, 1, 3));
    });
}

/// The poll forms, as a hand-written future uses them.
#[test]
fn poll_kevent_and_poll_wait() {
    multi_thread().block_on(async {
        let kq = AsyncKqueue::new(Kqueue::new().unwrap()).unwrap();
        kq.get_ref().add_user(2).unwrap();
        let q = Arc::clone(kq.get_ref());
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            q.trigger(2, 0)
        });
        let mut buf = [Kevent::default(); 2];
        let n = timeout(LONG, poll_fn(|cx| kq.poll_kevent(cx, &mut buf)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((n, buf[0].ident), (1, 2));
        t.join().unwrap().unwrap();

        kq.get_ref().trigger(2, 0).unwrap();
        let mut events = Events::with_capacity(2);
        let n = timeout(LONG, poll_fn(|cx| kq.poll_wait(cx, &mut events)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1);
    });
}

/// Descriptor events reach the task through the kqueue's own epoll: data written to a
/// socket by another thread wakes a task waiting on EVFILT_READ.
#[test]
fn socket_data_wakes_the_task() {
    multi_thread().block_on(async {
        let kq = AsyncKqueue::new(Kqueue::new().unwrap()).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd() as usize;
        kq.get_ref()
            .apply(&[Change::new(fd, EventFilter::Read).add().clear()])
            .unwrap();
        let mut events = Events::with_capacity(4);
        assert!(quiet(&kq, &mut events).await);
        let writer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(10));
            b.write_all(b"hello").unwrap();
            b
        });
        assert_eq!(wait_long(&kq, &mut events).await, 1);
        let ev = events.iter().next().unwrap();
        assert_eq!(
            (ev.ident(), ev.filter(), ev.data()),
            (fd, EventFilter::Read, 5)
        );
        drop(writer.join().unwrap());
        drop(a);
    });
}

/// Timers fire into a task on a current-thread runtime, whose only thread never blocks in
/// kevent(): the kqueue's timer wakeups alone wake it.
#[test]
fn timers_wake_a_current_thread_runtime() {
    current_thread().block_on(async {
        let kq = AsyncKqueue::new(Kqueue::new().unwrap()).unwrap();
        kq.get_ref()
            .apply(&[Change::timer(1, Duration::from_millis(2)).add()])
            .unwrap();
        let mut events = Events::with_capacity(4);
        let mut fired = 0;
        while fired < 20 {
            wait_long(&kq, &mut events).await;
            fired += events.iter().map(|e| e.data()).sum::<isize>();
        }
        kq.get_ref().delete(1, EventFilter::Timer).unwrap();
        assert!(quiet(&kq, &mut events).await);
    });
}

/// The kqueue can be taken back out of the reactor, and registered again.
#[test]
fn into_inner_and_register_again() {
    current_thread().block_on(async {
        let kq = AsyncKqueue::new(Kqueue::new().unwrap()).unwrap();
        kq.get_ref().add_user(1).unwrap();
        let inner = kq.into_inner();
        inner.trigger(1, 0).unwrap();
        let kq = AsyncKqueue::new(inner).unwrap();
        let mut events = Events::with_capacity(4);
        assert_eq!(wait_long(&kq, &mut events).await, 1);
    });
}
