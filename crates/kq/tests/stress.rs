//! Threaded tests: triggers racing scans (docs/semantics.md §6.6, races 1-3), cross-thread
//! wakeup (U31) and many waiters for one edge (U32). Each test is bounded (< 5 s). Sections
//! (§) cited here are those of docs/semantics.md.

mod util;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kq::*;
use util::*;

const SHARED: usize = 1;
const TRIGGER_THREADS: usize = 3;
const SCANNER_THREADS: usize = 2;

fn own_ident(t: usize) -> usize {
    100 + t
}

/// A trigger of `ident` whose data is the sequence number `seq` and whose user flags are
/// set (FFCOPY) to the low 24 bits of `seq`, so a record shows whether its fflags and data
/// come from the same trigger.
fn seq_trigger(ident: usize, seq: isize) -> Kevent {
    user(
        ident,
        0,
        NOTE_TRIGGER | NOTE_FFCOPY | (seq as u32 & NOTE_FFLAGSMASK),
        seq,
    )
}

/// §6.6 race 1 / §4.6: several threads trigger EV_CLEAR user events (each its
/// own ident, plus one shared ident), several threads scan with blocking timeouts. Every
/// trigger is delivered exactly once or coalesced with a later one, never lost:
/// * a record's fflags and data come from one trigger (fflags == data & 0xFFFFFF);
/// * no trigger's data is delivered twice (each EV_CLEAR delivery consumes one activation);
/// * at most one record per ident per kevent() call;
/// * after each burst of triggers, the burst's last trigger (the largest sequence number:
///   shared-ident triggers are numbered under a lock, in the order they are applied) is
///   delivered within 2 s: a lost trigger would leave the knote untriggered;
/// * after a last burst that nobody waits for, once all threads stopped, a final drain
///   returns exactly the idents whose last trigger was not delivered yet, with that data.
fn stress_clear_triggers_never_lost(p: Personality) {
    let kq = Arc::new(kq(p));
    let idents: Vec<usize> = std::iter::once(SHARED)
        .chain((0..TRIGGER_THREADS).map(own_ident))
        .collect();
    for &i in &idents {
        ch_ok(&kq, &[user(i, EV_ADD | EV_CLEAR, 0, 0)]);
    }
    // Highest data delivered per ident (0 = none yet).
    let max_delivered: Arc<HashMap<usize, AtomicIsize>> =
        Arc::new(idents.iter().map(|&i| (i, AtomicIsize::new(0))).collect());
    let shared_seq = Arc::new(Mutex::new(0isize));
    let stop = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(Mutex::new(Vec::<String>::new()));
    let triggers = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_millis(2500);

    let scanners: Vec<_> = (0..SCANNER_THREADS)
        .map(|_| {
            let (kq, max_delivered, stop) = (kq.clone(), max_delivered.clone(), stop.clone());
            thread::spawn(move || {
                let mut seen = Vec::new();
                let mut evs = [Kevent::default(); 4];
                while !stop.load(Ordering::SeqCst) {
                    let n = kq
                        .kevent(&[], &mut evs, Some(Duration::from_millis(20)))
                        .unwrap();
                    let mut in_call = HashSet::new();
                    for ev in &evs[..n] {
                        assert!(
                            in_call.insert(ev.ident),
                            "ident {} twice in one call: {:?}",
                            ev.ident,
                            &evs[..n]
                        );
                        max_delivered[&ev.ident].fetch_max(ev.data, Ordering::SeqCst);
                        seen.push(*ev);
                    }
                }
                seen
            })
        })
        .collect();

    let triggerers: Vec<_> = (0..TRIGGER_THREADS)
        .map(|t| {
            let (kq, max_delivered, shared_seq, lost, triggers) =
                (kq.clone(), max_delivered.clone(), shared_seq.clone(), lost.clone(), triggers.clone());
            thread::spawn(move || {
                let own = own_ident(t);
                let mut own_seq = 0isize;
                let fire = |ident: usize, own_seq: &mut isize| -> isize {
                    triggers.fetch_add(1, Ordering::Relaxed);
                    if ident == SHARED {
                        // Numbered and applied under one lock: numbers follow apply order.
                        let mut s = shared_seq.lock().unwrap();
                        *s += 1;
                        ch_ok(&kq, &[seq_trigger(SHARED, *s)]);
                        *s
                    } else {
                        *own_seq += 1;
                        ch_ok(&kq, &[seq_trigger(ident, *own_seq)]);
                        *own_seq
                    }
                };
                let mut round = 0;
                // At least 40 rounds (the work must be real), however slow the machine.
                while round < 400 && (round < 40 || Instant::now() < deadline) {
                    let ident = if round % 3 == t % 3 { SHARED } else { own };
                    let mut last = 0;
                    for _ in 0..=(round + t) % 5 {
                        last = fire(ident, &mut own_seq);
                    }
                    // The burst's last trigger must be delivered (or overtaken by a later
                    // shared trigger's delivery).
                    let wait_until = Instant::now() + Duration::from_secs(30);
                    let mut spins = 0;
                    while max_delivered[&ident].load(Ordering::SeqCst) < last {
                        if Instant::now() > wait_until {
                            lost.lock().unwrap().push(format!(
                                "thread {t} round {round}: ident {ident} trigger {last} not delivered \
                                 within 30 s (max delivered {})",
                                max_delivered[&ident].load(Ordering::SeqCst)
                            ));
                            return (own, own_seq);
                        }
                        spins += 1;
                        if spins < 100 {
                            thread::yield_now();
                        } else {
                            thread::sleep(Duration::from_micros(100));
                        }
                    }
                    round += 1;
                }
                // A last burst that nobody waits for.
                fire(own, &mut own_seq);
                fire(SHARED, &mut own_seq);
                (own, own_seq)
            })
        })
        .collect();

    let mut last_seq: HashMap<usize, isize> = HashMap::new();
    for t in triggerers {
        let (own, seq) = t.join().unwrap();
        last_seq.insert(own, seq);
    }
    last_seq.insert(SHARED, *shared_seq.lock().unwrap());
    stop.store(true, Ordering::SeqCst);
    let mut records: Vec<Kevent> = Vec::new();
    for s in scanners {
        records.extend(s.join().unwrap());
    }
    let lost = lost.lock().unwrap();
    assert!(lost.is_empty(), "lost triggers: {lost:#?}");

    let drain = poll(&kq, 8);
    let drained: HashMap<usize, Kevent> = drain.iter().map(|e| (e.ident, *e)).collect();
    assert_eq!(
        drained.len(),
        drain.len(),
        "an ident twice in the drain: {drain:?}"
    );
    for &i in &idents {
        let delivered = max_delivered[&i].load(Ordering::SeqCst);
        let last = last_seq[&i];
        if delivered < last {
            let ev = drained.get(&i).unwrap_or_else(|| {
                panic!("ident {i}: last trigger {last} neither delivered (max {delivered}) nor pending")
            });
            assert_eq!(ev.data, last, "ident {i}: drained {ev:?}");
        } else {
            assert_eq!(
                delivered, last,
                "ident {i}: delivered data past the last trigger"
            );
            assert!(
                !drained.contains_key(&i),
                "ident {i}: delivered twice: {drain:?}"
            );
        }
    }
    expect_no_events(&kq);

    records.extend(drain);
    let flags = delivered_flags(p, EV_ADD | EV_CLEAR);
    let mut per_ident: HashMap<usize, HashSet<isize>> = HashMap::new();
    for ev in &records {
        assert_eq!((ev.filter, ev.flags), (EVFILT_USER, flags), "{ev:?}");
        assert_eq!(
            ev.fflags,
            ev.data as u32 & NOTE_FFLAGSMASK,
            "fflags and data of different triggers: {ev:?}"
        );
        assert!(ev.data >= 1 && ev.data <= last_seq[&ev.ident], "{ev:?}");
        assert!(
            per_ident.entry(ev.ident).or_default().insert(ev.data),
            "delivered twice: {ev:?}"
        );
    }
    let total_triggers = triggers.load(Ordering::Relaxed);
    assert!(
        records.len() <= total_triggers,
        "{} records for {total_triggers} triggers",
        records.len()
    );
    // Some deliveries per ident, and the work was real.
    for &i in &idents {
        assert!(
            per_ident.get(&i).is_some_and(|s| !s.is_empty()),
            "ident {i} never delivered"
        );
    }
    assert!(total_triggers >= 100, "only {total_triggers} triggers");
}

/// U31 cross_thread_wakeup: a thread blocked in kevent() with a NULL timeout is woken by a
/// trigger from another thread and returns 1 promptly.
fn u31_cross_thread_wakeup(p: Personality) {
    let kq = Arc::new(kq(p));
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    for _ in 0..3 {
        let (tx, rx) = mpsc::channel();
        let k = kq.clone();
        thread::spawn(move || {
            let mut evs = [Kevent::default(); 2];
            let r = k.kevent(&[], &mut evs, None);
            tx.send((r.map_err(|e| e.to_string()), evs[0], Instant::now()))
                .unwrap();
        });
        thread::sleep(Duration::from_millis(50));
        let t0 = Instant::now();
        trigger(&kq, 1);
        let (r, ev, woke) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the sleeper was not woken by the trigger within 60 s");
        assert_eq!(r, Ok(1));
        assert_eq!((ev.ident, ev.filter), (1, EVFILT_USER));
        let latency = woke.saturating_duration_since(t0);
        assert!(latency < Duration::from_secs(30), "woken after {latency:?}");
    }
}

/// U32 many_waiters_one_edge (§6.6 race 2): 4 threads blocked with a 400 ms timeout, one
/// EV_CLEAR trigger: exactly one thread gets the record, the others go back to sleep and
/// time out with 0 no earlier than their timeout.
fn u32_many_waiters_one_edge(p: Personality) {
    let kq = Arc::new(kq(p));
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    let timeout = Duration::from_millis(400);
    let barrier = Arc::new(Barrier::new(5));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (kq, barrier) = (kq.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let mut evs = [Kevent::default(); 1];
                let n = kq.kevent(&[], &mut evs, Some(timeout)).unwrap();
                (n, evs[0], start.elapsed())
            })
        })
        .collect();
    barrier.wait();
    thread::sleep(Duration::from_millis(100));
    trigger(&kq, 1);
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let winners: Vec<_> = results.iter().filter(|r| r.0 == 1).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(winners[0].1.ident, 1);
    for (n, _, waited) in &results {
        assert!(*n <= 1);
        if *n == 0 {
            assert!(
                *waited >= timeout,
                "a loser returned 0 after {waited:?} < {timeout:?}"
            );
        }
    }
    expect_no_events(&kq);
}

/// §6.6 race 3 (trigger versus EV_DELETE): one thread adds and deletes an ident, another
/// triggers it, a third scans. A trigger either succeeds or gets ENOENT; records only name
/// that ident; nothing hangs or crashes; a final delete leaves nothing pending.
fn race_trigger_delete(p: Personality) {
    let kq = Arc::new(kq(p));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_millis(800);
    let adder = {
        let (kq, stop) = (kq.clone(), stop.clone());
        thread::spawn(move || {
            let mut n = 0;
            while Instant::now() < deadline {
                let flags = if n % 2 == 0 {
                    EV_ADD | EV_CLEAR
                } else {
                    EV_ADD | EV_ONESHOT
                };
                ch_ok(&kq, &[user(9, flags, 0, 0)]);
                thread::yield_now();
                let r = ch(&kq, &[user(9, EV_DELETE, 0, 0)]);
                // ENOENT when a ONESHOT delivery consumed it first.
                assert!(r.is_ok() || errno(r) == libc::ENOENT);
                n += 1;
            }
            stop.store(true, Ordering::SeqCst);
            n
        })
    };
    let triggerer = {
        let (kq, stop) = (kq.clone(), stop.clone());
        thread::spawn(move || {
            let (mut ok, mut enoent) = (0, 0);
            while !stop.load(Ordering::SeqCst) {
                match ch(&kq, &[user(9, 0, NOTE_TRIGGER, 5)]) {
                    Ok(0) => ok += 1,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => enoent += 1,
                    other => panic!("trigger: {other:?}"),
                }
            }
            (ok, enoent)
        })
    };
    let scanner = {
        let (kq, stop) = (kq.clone(), stop.clone());
        thread::spawn(move || {
            let mut got = 0;
            let mut evs = [Kevent::default(); 4];
            while !stop.load(Ordering::SeqCst) {
                let n = kq
                    .kevent(&[], &mut evs, Some(Duration::from_millis(10)))
                    .unwrap();
                for ev in &evs[..n] {
                    // [FB] a ONESHOT record bypasses the touch: data 0 (§4.9).
                    let oneshot_fb = p == Personality::FreeBsd && ev.flags & EV_ONESHOT != 0;
                    let data = if oneshot_fb { 0 } else { 5 };
                    assert_eq!(
                        (ev.ident, ev.filter, ev.data),
                        (9, EVFILT_USER, data),
                        "{ev:?}"
                    );
                }
                got += n;
            }
            got
        })
    };
    let cycles = adder.join().unwrap();
    let (ok, enoent) = triggerer.join().unwrap();
    let _got = scanner.join().unwrap();
    assert!(
        cycles > 10 && ok + enoent > 10,
        "cycles {cycles}, triggers {ok}/{enoent}"
    );
    // The adder ended with a delete (or a consumed oneshot).
    expect_no_events(&kq);
    ch_err(&kq, &[user(9, EV_DELETE, 0, 0)], libc::ENOENT);
}

/// U37 under a race: an outer kqueue starts watching an inner one (EVFILT_READ) while
/// another thread triggers a user event in the inner one. Whatever the interleaving, once
/// both are done the outer reports the inner as readable (§3.5): the activation is never
/// missed by a watcher being added at that moment.
fn race_watch_vs_trigger(p: Personality) {
    use std::os::fd::AsRawFd;
    for _ in 0..300 {
        let inner = Arc::new(kq(p));
        let outer = kq(p);
        ch_ok(&inner, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
        let barrier = Arc::new(Barrier::new(2));
        let t = {
            let (inner, barrier) = (inner.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                trigger(&inner, 1);
            })
        };
        let watch = Kevent::new(
            inner.as_raw_fd() as usize,
            EVFILT_READ,
            EV_ADD | EV_CLEAR,
            0,
            0,
            std::ptr::null_mut(),
        );
        barrier.wait();
        ch_ok(&outer, &[watch]);
        t.join().unwrap();
        let ev = expect_one(&outer);
        assert_eq!((ev.filter, ev.data), (EVFILT_READ, 1));
    }
}

both!(
    race_watch_vs_trigger,
    stress_clear_triggers_never_lost,
    u31_cross_thread_wakeup,
    u32_many_waiters_one_edge,
    race_trigger_delete,
);
