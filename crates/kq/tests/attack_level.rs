//! Attacks on level registrations (plain level EVFILT_READ knotes whose descriptors the
//! kqueue's epoll holds level-triggered once delivered) and on kevent() calls whose
//! changes and scan run under one hold of the lock, in both personalities: the kqueue
//! descriptor's readability through each transition of a level knote, wakeups of
//! sleepers, waits that must sleep, numbers closed unseen and reused, and one-call
//! changes and collections (receipts, errors, short event lists, nested kqueues).
//! With `KQ_NO_LEVEL=1` or `KQ_NO_EPOLL_PWAIT2=1` the same tests pass.

mod fdutil;
mod levelutil;
mod util;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use fdutil::*;
use kq::*;
use levelutil::*;
use util::*;

/// One kevent() call with changes and an event list of `n` slots, zero timeout.
fn one_call(kq: &Kqueue, changes: &[Kevent], n: usize) -> Vec<Kevent> {
    let mut evs = vec![sentinel(); n];
    let got = kq
        .kevent(changes, &mut evs, Some(Duration::ZERO))
        .expect("kevent");
    evs.truncate(got);
    evs
}

// ---------------------------------------------------------------------------------------
// Level knotes

/// R1 on a number dup()ed into two numbers of one kqueue (two registrations of one file):
/// both report, reading all leaves the kqueue descriptor unreadable, new data reports both.
fn r1_attack_level_dup_two_numbers(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    let a2 = dup(&a);
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 1), rd(id(&a2), EV_ADD, 2)]);
    for round in 0..3 {
        put(&b, 2 + round);
        let evs = get(&kq, 4, Some(Duration::from_secs(30)));
        let evs = if evs.len() < 2 {
            [evs, poll(&kq, 4)].concat()
        } else {
            evs
        };
        assert_eq!(evs.len(), 2, "{evs:?}");
        assert!(readable(&kq));
        assert_eq!(take(&a, 2 + round), (2 + round) as isize);
        assert!(!level_on() || !readable(&kq), "read all, still readable");
        scanned_empty(&kq, "dup drained");
    }
    // One of the two numbers goes (told): the other still reports.
    fdclose_and_close(a2);
    put(&b, 1);
    assert_read(&expect_one(&kq), &a, 1, false);
    assert_eq!(take(&a, 1), 1);
    scanned_empty(&kq, "closed dup, drained");
}

/// R1 with the same socket in two kqueues: each is readable exactly while the data is.
fn r1_attack_level_two_kqueues(p: Personality) {
    let k1 = kq(p);
    let k2 = kq(p);
    let (a, b) = stream_pair();
    ch_ok(&k1, &[rd(id(&a), EV_ADD, 0)]);
    ch_ok(&k2, &[rd(id(&a), EV_ADD, 0)]);
    for n in 1..4 {
        put(&b, n);
        assert_read(&expect_one(&k1), &a, n as isize, false);
        assert_read(&expect_one(&k2), &a, n as isize, false);
        assert!(readable(&k1) && readable(&k2));
        assert_eq!(take(&a, n), n as isize);
        assert!(!level_on() || !readable(&k1));
        assert!(!level_on() || !readable(&k2));
        scanned_empty(&k1, "k1");
        scanned_empty(&k2, "k2");
    }
}

/// R1 partial read: the knote reports what is left, the descriptor stays readable; once
/// drained and scanned, new data gives a new edge.
fn r1_attack_level_partial_read(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    let w = EdgeWatcher::new(&kq);
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 0)]);
    put(&b, 10);
    assert!(w.edges(1000) >= 1);
    assert_read(&expect_one(&kq), &a, 10, false);
    assert_eq!(take(&a, 4), 4);
    assert!(readable(&kq), "6 left");
    assert_read(&expect_one(&kq), &a, 6, false);
    assert_eq!(take(&a, 6), 6);
    // Delivered again undrained: kept queued until a scan finds it drained, as on the BSDs.
    scanned_empty(&kq, "drained");
    w.drain();
    put(&b, 1);
    assert!(
        w.edges(1000) >= 1,
        "no edge for new data after the partial reads"
    );
    assert_read(&expect_one(&kq), &a, 1, false);
}

/// R1 with EV_DELETE while the level registration has reported (the knote queued,
/// not collected): nothing is left, the descriptor is not readable, no wait spins.
fn r1_attack_level_delete_while_pending(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 0)]);
    put(&b, 1);
    assert_read(&expect_one(&kq), &a, 1, false);
    put(&b, 1);
    assert!(readable(&kq));
    ch_ok(&kq, &[rd(id(&a), EV_DELETE, 0)]);
    assert!(!readable(&kq), "deleted while pending, still readable");
    waits_quietly(&kq, "deleted while pending");
    // And added again: reported at once.
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 0)]);
    assert_read(&expect_one(&kq), &a, 2, false);
}

/// R1 EOF on a pipe whose writer closed: EV_EOF is reported at every look (an event);
/// disabled, a wait sleeps; deleted, a wait sleeps.
fn r1_attack_level_eof_disable_no_spin(p: Personality) {
    let kq = kq(p);
    let (r, w) = pipe();
    ch_ok(&kq, &[rd(id(&r), EV_ADD, 0)]);
    put(&w, 1);
    assert_read(&expect_one(&kq), &r, 1, false);
    drop(w);
    for _ in 0..3 {
        let evs = get(&kq, 4, Some(Duration::from_secs(30)));
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert_read(&evs[0], &r, 1, true);
    }
    assert_eq!(take(&r, 1), 1);
    assert_read(&expect_one(&kq), &r, 0, true);
    ch_ok(&kq, &[rd(id(&r), EV_DISABLE, 0)]);
    waits_quietly(&kq, "EOF, disabled");
    ch_ok(&kq, &[rd(id(&r), EV_ENABLE, 0)]);
    assert_read(&expect_one(&kq), &r, 0, true);
    ch_ok(&kq, &[rd(id(&r), EV_DELETE, 0)]);
    waits_quietly(&kq, "EOF, deleted");
}

/// R1 with NOTE_LOWAT raised above what is there while the registration is level: a
/// blocking wait sleeps (epoll finds the descriptor ready, the knote does not fire).
fn r1_attack_level_lowat_no_spin(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 0)]);
    put(&b, 2);
    assert_read(&expect_one(&kq), &a, 2, false);
    let mut lowat = rd(id(&a), EV_ADD, 0);
    lowat.fflags = NOTE_LOWAT;
    lowat.data = 10;
    ch_ok(&kq, &[lowat]);
    waits_quietly(&kq, "2 bytes under a mark of 10");
    put(&b, 8);
    assert_read(&expect_one(&kq), &a, 10, false);
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 0)]);
    assert_read(&expect_one(&kq), &a, 10, false);
    assert_eq!(take(&a, 10), 10);
    scanned_empty(&kq, "mark cleared, drained");
    waits_quietly(&kq, "mark cleared, drained");
}

/// R1 with the connection reset (RST) and shut down for reading: EV_EOF (with the error
/// for the reset) is reported at every look; the descriptor stays readable.
fn r1_attack_level_rst_and_shut_rd(p: Personality) {
    let kq = kq(p);
    let (c, s) = tcp_pair();
    let (c, s): (OwnedFd, OwnedFd) = (c.into(), s.into());
    ch_ok(&kq, &[rd(id(&s), EV_ADD, 0)]);
    put(&c, 1);
    settle(&s, 1);
    assert_read(&expect_one(&kq), &s, 1, false);
    assert_eq!(take(&s, 1), 1);
    scanned_empty(&kq, "drained");
    set_linger0(&c);
    drop(c);
    let evs = get(&kq, 4, Some(Duration::from_secs(30)));
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert!(evs[0].flags & EV_EOF != 0, "{evs:?}");
    assert!(readable(&kq));
    let evs = poll(&kq, 4);
    assert_eq!(evs.len(), 1, "reset stays: {evs:?}");

    let (a, b) = stream_pair();
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 0)]);
    put(&b, 1);
    let evs = poll(&kq, 4);
    assert!(evs.iter().any(|e| e.ident == id(&a)), "{evs:?}");
    assert_eq!(take(&a, 1), 1);
    let evs = poll(&kq, 4);
    assert!(evs.iter().all(|e| e.ident != id(&a)), "{evs:?}");
    shutdown(&a, libc::SHUT_RD);
    let evs = get(&kq, 4, Some(Duration::from_secs(30)));
    let ev = evs
        .iter()
        .find(|e| e.ident == id(&a))
        .expect("SHUT_RD: EOF");
    assert!(ev.flags & EV_EOF != 0, "{ev:?}");
    drop(b);
}

/// R1 with EV_DISPATCH and EV_ONESHOT added to an existing level knote (an EV_ADD that
/// modifies: the BSDs keep the knote's flags) and EV_DISPATCH knotes: a dispatched
/// knote is disabled after its delivery and a wait then sleeps.
fn r1_attack_level_dispatch_no_spin(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    ch_ok(&kq, &[rd(id(&a), EV_ADD | EV_DISPATCH, 0)]);
    put(&b, 3);
    assert_read(&expect_one(&kq), &a, 3, false);
    waits_quietly(&kq, "dispatched");
    ch_ok(&kq, &[rd(id(&a), EV_ENABLE, 0)]);
    assert_read(&expect_one(&kq), &a, 3, false);
    waits_quietly(&kq, "dispatched again");
}

/// R1/R2 with a thread asleep in kevent() while another reads everything and then
/// writes more: the sleeper gets the new data (no lost wakeup), every round.
fn r1_attack_level_sleeper_read_then_write(p: Personality) {
    let kq = Arc::new(kq(p));
    let (a, b) = stream_pair();
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 0)]);
    for round in 0..200 {
        put(&b, 1);
        assert_read(&expect_one(&kq), &a, 1, false);
        let k = Arc::clone(&kq);
        let t = thread::spawn(move || get(&k, 4, Some(Duration::from_secs(5))));
        thread::sleep(Duration::from_micros(200));
        assert_eq!(take(&a, 1), 1);
        put(&b, 2);
        let evs = t.join().unwrap();
        assert_eq!(evs.len(), 1, "round {round}: {evs:?}");
        assert_eq!(take(&a, 2), 2);
        let _ = poll(&kq, 4);
    }
}

/// A thread asleep in poll() on the kqueue descriptor wakes for new data of a level
/// knote whose data was read after its delivery.
fn r1_attack_level_poll_sleeper(p: Personality) {
    let kq = Arc::new(kq(p));
    let (a, b) = stream_pair();
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 0)]);
    for round in 0..100 {
        put(&b, 1);
        assert_read(&expect_one(&kq), &a, 1, false);
        assert_eq!(take(&a, 1), 1);
        let k = Arc::clone(&kq);
        let t = thread::spawn(move || poll_fd(&k, 5000));
        thread::sleep(Duration::from_micros(300));
        put(&b, 1);
        let r = t.join().unwrap();
        assert!(r & libc::POLLIN != 0, "round {round}: poll woke with {r}");
        assert_eq!(take(&a, 1), 1);
        let _ = poll(&kq, 4);
    }
}

/// G22: a number closed unseen while its level registration is armed, reused by a pipe,
/// then an eventfd; the old file lives on in a dup: nothing for the new files, a fresh
/// EV_ADD works.
fn g22_attack_level_reuse_pipe_eventfd(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    let slot = if p == Personality::NetBsd { 20 } else { 21 };
    let a = move_to(a, reserved_number(slot));
    let n = a.as_raw_fd();
    ch_ok(&kq, &[rd(n as usize, EV_ADD, 0)]);
    put(&b, 1);
    assert_read(&expect_one(&kq), &a, 1, false);
    assert_eq!(take(&a, 1), 1);
    scanned_empty(&kq, "armed, drained");
    let keep = dup(&a);
    drop(a);
    let (r, w) = pipe();
    let r = move_to(r, n);
    put(&w, 3);
    put(&b, 2);
    assert!(poll(&kq, 4).is_empty(), "pipe on the old number");
    waits_quietly(&kq, "pipe on the old number");
    drop(r);
    let e = move_to(eventfd(), n);
    put_bytes(&e, &1u64.to_ne_bytes());
    put(&b, 1);
    assert!(poll(&kq, 4).is_empty(), "eventfd on the old number");
    waits_quietly(&kq, "eventfd on the old number");
    ch_ok(&kq, &[rd(n as usize, EV_ADD, 0)]);
    let ev = expect_one(&kq);
    assert_eq!((ev.ident, ev.filter), (n as usize, EVFILT_READ), "{ev:?}");
    drop(keep);
}

/// R1 with two level knotes ready and one slot per call: both are delivered in turn (a
/// delivered knote goes behind the others, as on the BSDs), none starved.
fn r1_attack_level_one_slot_no_starvation(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    let (c, d) = stream_pair();
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 0), rd(id(&c), EV_ADD, 0)]);
    put(&b, 1);
    put(&d, 1);
    let mut seen = [0; 2];
    for _ in 0..10 {
        let evs = poll(&kq, 1);
        assert_eq!(evs.len(), 1, "{evs:?}");
        seen[usize::from(evs[0].ident == id(&c))] += 1;
    }
    assert!(seen[0] >= 4 && seen[1] >= 4, "one starved: {seen:?}");
}

/// R1 with a modifying EV_ADD (new udata) of a delivered level knote whose descriptor is
/// still ready: the next delivery carries the new udata.
fn r1_attack_level_modify_udata(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 1)]);
    put(&b, 1);
    assert_eq!(udata(&expect_one(&kq)), 1);
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 2)]);
    assert!(readable(&kq));
    assert_eq!(udata(&expect_one(&kq)), 2);
    assert_eq!(take(&a, 1), 1);
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 3)]);
    scanned_empty(&kq, "drained, modified");
    put(&b, 1);
    assert_eq!(udata(&expect_one(&kq)), 3);
}

/// R1 on a FIFO opened before any writer: a wait sleeps; a writer writes and closes: the
/// data then EV_EOF; drained: EV_EOF stays (an event); a new writer: no EOF any more, and a
/// wait sleeps. Both as a plain level knote and with a NOTE_LOWAT mark of 2 (never a level
/// registration: the edge-triggered one gets no edge when the writer comes, and the end of
/// file it saw last must not be taken as still there).
fn r1_attack_level_fifo_writer_comes_and_goes(p: Personality) {
    for mark in [0, 2] {
        let kq = kq(p);
        let path = TempPath::new("attack-level-fifo");
        let c = std::ffi::CString::new(path.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: c is a valid path string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let r = open_fifo(&path, libc::O_RDONLY | libc::O_NONBLOCK);
        let mut add = rd(id(&r), EV_ADD, 0);
        if mark > 0 {
            add.fflags = NOTE_LOWAT;
            add.data = mark;
        }
        ch_ok(&kq, &[add]);
        waits_quietly(&kq, "FIFO, no writer yet");
        let w = open_fifo(&path, libc::O_WRONLY | libc::O_NONBLOCK);
        put(&w, 2);
        assert_read(&expect_one(&kq), &r, 2, false);
        assert_eq!(take(&r, 2), 2);
        scanned_empty(&kq, "FIFO drained, writer open");
        waits_quietly(&kq, "FIFO drained, writer open");
        drop(w);
        let evs = get(&kq, 4, Some(Duration::from_secs(30)));
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert_read(&evs[0], &r, 0, true);
        let w = open_fifo(&path, libc::O_WRONLY | libc::O_NONBLOCK);
        let _ = poll(&kq, 4);
        waits_quietly(&kq, &format!("mark {mark}: FIFO, a writer again"));
        put(&w, 2);
        assert_read(&expect_one(&kq), &r, 2, false);
    }
}

// ---------------------------------------------------------------------------------------
// Changes and scan in one call

/// One-call trigger and collect with a short event list: what is left is pending, the
/// kqueue descriptor readable, an edge-triggered watcher has an edge, and a kqueue
/// watching it with EV_CLEAR gets the event.
fn u37_attack_one_call_short_list_leaves_pending(p: Personality) {
    let kq = kq(p);
    let outer = kq_outer(p, &kq);
    let w = EdgeWatcher::new(&kq);
    kq.as_fd_exposed();
    ch_ok(
        &kq,
        &[
            user(1, EV_ADD | EV_CLEAR, 0, 0),
            user(2, EV_ADD | EV_CLEAR, 0, 0),
        ],
    );
    w.drain();
    assert!(poll(&outer, 4).is_empty());
    // Both triggered, one slot.
    let trig = |i| user(i, 0, NOTE_TRIGGER, 0);
    let evs = one_call(&kq, &[trig(1), trig(2)], 1);
    assert_eq!(evs.len(), 1);
    assert!(readable(&kq), "one left queued, not readable");
    assert!(w.edges(0) >= 1, "one left queued, no edge");
    let o = poll(&outer, 4);
    assert_eq!(o.len(), 1, "outer: {o:?}");
    assert_eq!(o[0].data, 1);
    assert_eq!(poll(&kq, 4).len(), 1);
    assert!(!readable(&kq));
    assert!(poll(&outer, 4).is_empty());
    // Triggered and collected by the same call: nothing for anyone.
    w.drain();
    let evs = one_call(&kq, &[trig(1)], 4);
    assert_eq!(evs.len(), 1);
    assert!(!readable(&kq));
    assert!(
        poll(&outer, 4).is_empty(),
        "collected in the call, outer told"
    );
    // One pending from before, one triggered and collected with it: nothing left.
    trig_ok(&kq, 2);
    let evs = one_call(&kq, &[trig(1)], 4);
    assert_eq!(evs.len(), 2);
    assert!(!readable(&kq));
    let _ = poll(&outer, 4);
    assert!(poll(&outer, 4).is_empty());
}

fn trig_ok(kq: &Kqueue, i: usize) {
    ch_ok(kq, &[user(i, 0, NOTE_TRIGGER, 0)]);
}

fn kq_outer(p: Personality, inner: &Kqueue) -> Kqueue {
    let outer = kq(p);
    ch_ok(
        &outer,
        &[rd(inner.as_raw_fd() as usize, EV_ADD | EV_CLEAR, 0)],
    );
    outer
}

trait Expose {
    fn as_fd_exposed(&self);
}
impl Expose for Kqueue {
    fn as_fd_exposed(&self) {
        let _ = readable(self);
    }
}

/// One-call with errors in the changelist: the error entries take the slots, the scan
/// does not run, and what the changes triggered is pending and signalled.
fn u37_attack_one_call_errors_leave_trigger_signalled(p: Personality) {
    let kq = kq(p);
    let outer = kq_outer(p, &kq);
    let w = EdgeWatcher::new(&kq);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    w.drain();
    let bad = user(99, 0, NOTE_TRIGGER, 0); // no such knote: ENOENT
    let evs = one_call(&kq, &[user(1, 0, NOTE_TRIGGER, 0), bad], 4);
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].flags & EV_ERROR, EV_ERROR);
    assert_eq!(evs[0].data, libc::ENOENT as isize);
    assert!(readable(&kq), "trigger pending, not readable");
    assert!(w.edges(0) >= 1, "trigger pending, no edge");
    assert_eq!(poll(&outer, 4).len(), 1, "outer not told");
    assert_eq!(poll(&kq, 4).len(), 1);
    // EV_RECEIPT mixed in.
    let evs = one_call(
        &kq,
        &[
            user(1, 0, NOTE_TRIGGER, 0),
            user(5, EV_ADD | EV_RECEIPT, 0, 0),
        ],
        4,
    );
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!((evs[0].ident, evs[0].data), (5, 0));
    assert!(readable(&kq), "receipt: trigger pending, not readable");
    assert_eq!(poll(&outer, 4).len(), 1, "receipt: outer not told");
    assert_eq!(poll(&kq, 4).len(), 1);
}

/// One-call changes that delete what was pending: nothing readable afterwards, the
/// collection finds nothing; a level knote pending deleted in the same call as a trigger.
fn u37_attack_one_call_delete_pending(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 0), user(1, EV_ADD, 0, 0)]);
    put(&b, 1);
    assert_read(&expect_one(&kq), &a, 1, false);
    assert!(readable(&kq));
    let evs = one_call(&kq, &[rd(id(&a), EV_DELETE, 0)], 4);
    assert!(evs.is_empty(), "{evs:?}");
    assert!(!readable(&kq));
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 0)]);
    let evs = one_call(
        &kq,
        &[user(1, 0, NOTE_TRIGGER, 0), rd(id(&a), EV_DELETE, 0)],
        1,
    );
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].filter, EVFILT_USER);
    assert!(readable(&kq), "the user knote is level: still pending");
    ch_ok(&kq, &[user(1, EV_DELETE, 0, 0)]);
    assert!(!readable(&kq));
    waits_quietly(&kq, "all deleted");
}

/// A level READ knote added by a one-call kevent() on a ready descriptor with one slot,
/// along with a trigger: one is returned, the other stays and is signalled.
fn u37_attack_one_call_level_add_and_trigger(p: Personality) {
    let kq = kq(p);
    let outer = kq_outer(p, &kq);
    let (a, b) = stream_pair();
    put(&b, 1);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    let evs = one_call(
        &kq,
        &[rd(id(&a), EV_ADD, 0), user(1, 0, NOTE_TRIGGER, 0)],
        1,
    );
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert!(readable(&kq), "one left, not readable");
    let o = poll(&outer, 4);
    assert_eq!(o.len(), 1, "outer: {o:?}");
    let evs = poll(&kq, 4);
    assert_eq!(
        evs.len(),
        if evs[0].filter == EVFILT_USER { 2 } else { 1 },
        "{evs:?}"
    );
}

/// Threads: one-call trigger+collect in one thread, a collector and an EV_DELETE/EV_ADD
/// thread racing: every trigger is collected by someone, nothing lost, no hang.
fn g25_attack_one_call_races(p: Personality) {
    let kq = Arc::new(kq(p));
    ch_ok(
        &kq,
        &[
            user(1, EV_ADD | EV_CLEAR, 0, 0),
            user(2, EV_ADD | EV_CLEAR, 0, 0),
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let (kq, stop) = (Arc::clone(&kq), Arc::clone(&stop));
        thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                n += get(&kq, 4, Some(Duration::from_millis(5))).len();
            }
            n
        })
    };
    let churn = {
        let (kq, stop) = (Arc::clone(&kq), Arc::clone(&stop));
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                ch_ok(&kq, &[user(3, EV_ADD, 0, 0)]);
                ch_ok(&kq, &[user(3, EV_DELETE, 0, 0)]);
            }
        })
    };
    for _ in 0..5000 {
        let _ = one_call(&kq, &[user(1, 0, NOTE_TRIGGER, 0)], 1);
        trig_ok(&kq, 2);
    }
    // Whatever is left is pending and readable.
    thread::sleep(Duration::from_millis(20));
    stop.store(true, Ordering::Relaxed);
    collector.join().unwrap();
    churn.join().unwrap();
    let left = poll(&kq, 4).len();
    assert!(!readable(&kq), "{left} collected, still readable");
}

both!(
    r1_attack_level_dup_two_numbers,
    r1_attack_level_two_kqueues,
    r1_attack_level_partial_read,
    r1_attack_level_delete_while_pending,
    r1_attack_level_eof_disable_no_spin,
    r1_attack_level_lowat_no_spin,
    r1_attack_level_rst_and_shut_rd,
    r1_attack_level_dispatch_no_spin,
    r1_attack_level_sleeper_read_then_write,
    r1_attack_level_poll_sleeper,
    g22_attack_level_reuse_pipe_eventfd,
    r1_attack_level_one_slot_no_starvation,
    r1_attack_level_modify_udata,
    r1_attack_level_fifo_writer_comes_and_goes,
    u37_attack_one_call_short_list_leaves_pending,
    u37_attack_one_call_errors_leave_trigger_signalled,
    u37_attack_one_call_delete_pending,
    u37_attack_one_call_level_add_and_trigger,
    g25_attack_one_call_races,
);
