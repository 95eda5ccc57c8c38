//! The kqueue descriptor is readable exactly while events are pending, also when the events
//! come from ordinary descriptors: seen by poll(2), by epoll (level- and edge-triggered)
//! and by another kqueue (EVFILT_READ on the kqueue descriptor, `data` = pending count).
//! The readiness must reach the outer waiter with no thread inside the inner kevent().

mod fdutil;
mod util;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fdutil::*;
use kq::*;
use util::*;

fn readable(kq: &Kqueue, timeout_ms: i32) -> bool {
    poll_fd(kq, timeout_ms) & libc::POLLIN != 0
}

/// An epoll instance watching the kqueue descriptor with `events`.
fn epoll_on(kq: &Kqueue, events: u32) -> OwnedFd {
    // SAFETY: plain system call; the result is checked.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0);
    // SAFETY: `ep` was just returned and is owned by nobody else.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    let mut ev = libc::epoll_event { events, u64: 7 };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call.
    let r =
        unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, kq.as_raw_fd(), &mut ev) };
    cvt(r).expect("EPOLL_CTL_ADD of the kqueue descriptor");
    ep
}

/// epoll_wait with room for 4; returns the number of ready entries (each checked to be the
/// kqueue with EPOLLIN).
fn epoll_wait(ep: &OwnedFd, timeout_ms: i32) -> usize {
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 4];
    // SAFETY: `evs` has room for 4 entries.
    let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), evs.as_mut_ptr(), 4, timeout_ms) };
    assert!(n >= 0, "epoll_wait: {}", std::io::Error::last_os_error());
    for ev in &evs[..n as usize] {
        let (events, token) = (ev.events, ev.u64);
        assert_eq!(token, 7);
        assert_ne!(events & libc::EPOLLIN as u32, 0, "events {events:#x}");
    }
    n as usize
}

/// poll(2) on the kqueue descriptor: not readable with nothing pending; readable (within
/// the poll's own wait, no thread in kevent()) once a watched socket gets data, and still
/// readable on a second poll (poll consumes nothing); not readable right after a kevent()
/// collected the last pending record (EV_CLEAR, so nothing is queued again); a poll(2)
/// sleeping in another thread wakes when the socket gets data.
fn kq_fd_poll_readable_while_pending(p: Personality) {
    let kq = Arc::new(kq(p));
    let (a, b) = stream_pair();
    ch_ok(&kq, &[rd(id(&a), EV_ADD | EV_CLEAR, 1)]);
    assert!(!readable(&kq, 0), "readable with nothing pending");
    put(&b, 1);
    assert!(readable(&kq, 1000), "not readable with a pending event");
    assert!(readable(&kq, 0));
    let evs = get(&kq, 8, Some(Duration::from_secs(30)));
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert!(
        !readable(&kq, 0),
        "readable right after the last pending event was collected"
    );

    let k2 = kq.clone();
    let t = thread::spawn(move || {
        let start = Instant::now();
        (readable(&k2, 60_000), start.elapsed())
    });
    thread::sleep(Duration::from_millis(50));
    put(&b, 1);
    let (was_readable, waited) = t.join().unwrap();
    assert!(was_readable, "poll(2) was not woken by the socket");
    assert!(waited < Duration::from_secs(30), "woke after {waited:?}");
    assert_eq!(poll(&kq, 8).len(), 1);
    assert!(!readable(&kq, 0));
}

/// The kqueue descriptor in a level-triggered epoll: no entry with nothing pending; an
/// entry once a watched socket has data, again on the next epoll_wait; none after the
/// record was collected.
fn kq_fd_in_epoll_level(p: Personality) {
    let kq = kq(p);
    let ep = epoll_on(&kq, libc::EPOLLIN as u32);
    let (a, b) = stream_pair();
    ch_ok(&kq, &[rd(id(&a), EV_ADD | EV_CLEAR, 1)]);
    assert_eq!(epoll_wait(&ep, 0), 0);
    put(&b, 1);
    assert_eq!(epoll_wait(&ep, 1000), 1);
    assert_eq!(epoll_wait(&ep, 0), 1, "level-triggered: reported again");
    assert_eq!(poll(&kq, 8).len(), 1);
    assert_eq!(epoll_wait(&ep, 0), 0, "nothing pending any more");
}

/// The descriptors and feeding ends of three socket pairs, their knotes (EV_CLEAR, udata
/// 1..=3) in `kq`.
fn three_sockets(kq: &Kqueue) -> Vec<(OwnedFd, OwnedFd)> {
    let socks: Vec<_> = (0..3).map(|_| stream_pair()).collect();
    for (i, (a, _)) in socks.iter().enumerate() {
        ch_ok(kq, &[rd(id(a), EV_ADD | EV_CLEAR, i + 1)]);
    }
    socks
}

/// The kqueue descriptor in an edge-triggered epoll (EPOLLIN|EPOLLET), events from
/// sockets: two pending records give an edge; a kevent() that collects only one of them
/// leaves one pending; a NEW record (a third socket) must give a new edge although the
/// descriptor never stopped being readable; the two left are then collected.
fn kq_fd_in_epoll_edge(p: Personality) {
    let kq = kq(p);
    let ep = epoll_on(&kq, (libc::EPOLLIN | libc::EPOLLET) as u32);
    let socks = three_sockets(&kq);
    assert_eq!(epoll_wait(&ep, 0), 0);
    put(&socks[0].1, 1);
    put(&socks[1].1, 1);
    assert_eq!(epoll_wait(&ep, 1000), 1);
    assert_eq!(poll(&kq, 1).len(), 1, "nevents 1 collects one of two");
    put(&socks[2].1, 1);
    assert_eq!(
        epoll_wait(&ep, 1000),
        1,
        "a new event after a partial collect gave no edge"
    );
    let mut got: Vec<usize> = poll(&kq, 8).iter().map(udata).collect();
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains(&3), "{got:?}");
}

/// As `kq_fd_in_epoll_edge`, with user events: every activation is an edge for an
/// edge-triggered watcher of the kqueue descriptor, even after a partial collect.
fn kq_fd_in_epoll_edge_user_events(p: Personality) {
    let kq = kq(p);
    let ep = epoll_on(&kq, (libc::EPOLLIN | libc::EPOLLET) as u32);
    for i in 1..=3 {
        ch_ok(&kq, &[user(i, EV_ADD | EV_CLEAR, 0, 0)]);
    }
    assert_eq!(epoll_wait(&ep, 0), 0);
    trigger(&kq, 1);
    trigger(&kq, 2);
    assert_eq!(epoll_wait(&ep, 1000), 1);
    assert_eq!(poll(&kq, 1).len(), 1, "nevents 1 collects one of two");
    trigger(&kq, 3);
    assert_eq!(
        epoll_wait(&ep, 1000),
        1,
        "a new event after a partial collect gave no edge"
    );
    assert_eq!(poll(&kq, 8).len(), 2);
}

/// A kqueue watching another with EVFILT_READ, events from sockets in the inner one: the
/// outer record's `data` is the inner pending count (1, then 2); nothing once the inner one
/// is drained; a kevent() blocked on the outer kqueue wakes when a socket of the inner one
/// gets data, with no thread in the inner kevent().
fn kq_in_kq_read_sockets(p: Personality) {
    let inner = kq(p);
    let outer = kq(p);
    let ii = inner.as_raw_fd() as usize;
    let socks = three_sockets(&inner);
    ch_ok(&outer, &[rd(ii, EV_ADD, 0x10)]);
    expect_no_events(&outer);
    put(&socks[0].1, 1);
    let ev = wait_one(&outer);
    assert_fd_event(&ev, ii, EVFILT_READ, delivered_flags(p, EV_ADD), 1);
    assert_eq!(udata(&ev), 0x10);
    put(&socks[1].1, 1);
    assert_eq!(expect_one(&outer).data, 2);
    assert_eq!(poll(&inner, 8).len(), 2);
    expect_no_events(&outer);

    let b = socks[2].1.try_clone().unwrap();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        put(&b, 1);
    });
    let start = Instant::now();
    let evs = get(&outer, 4, Some(Duration::from_secs(60)));
    let waited = start.elapsed();
    t.join().unwrap();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!((evs[0].ident, evs[0].data), (ii, 1));
    assert!(waited < Duration::from_secs(30), "woke after {waited:?}");
    assert_eq!(udata(&expect_one(&inner)), 3);
    expect_no_events(&outer);
}

/// EV_CLEAR on the outer knote: each new activation in the inner kqueue is a new edge for
/// the outer one, even when the inner one was never drained in between.
fn kq_in_kq_clear_sees_each_new_event(p: Personality) {
    let inner = kq(p);
    let outer = kq(p);
    let ii = inner.as_raw_fd() as usize;
    let socks = three_sockets(&inner);
    ch_ok(&outer, &[rd(ii, EV_ADD | EV_CLEAR, 1)]);
    put(&socks[0].1, 1);
    assert_eq!(wait_one(&outer).data, 1);
    expect_no_events(&outer);
    put(&socks[1].1, 1);
    assert_eq!(wait_one(&outer).data, 2);
    assert_eq!(poll(&inner, 1).len(), 1);
    put(&socks[2].1, 1);
    assert_eq!(wait_one(&outer).data, 2);
}

/// Changes and collection in one kevent() call: a trigger the same call collects was
/// pending only inside the call, so the descriptor never turns readable for it (no edge
/// for an edge-triggered watcher, nothing for a kqueue watching it); a trigger the call
/// leaves queued (no room in the eventlist) makes the descriptor readable, with an edge,
/// and reaches the watching kqueue, exactly as if it had been triggered in a call of its
/// own; an EV_CLEAR knote triggered again and collected by one call leaves no trace either.
fn kq_fd_changes_and_collect_in_one_call(p: Personality) {
    let kq = kq(p);
    let outer = kq_new_watching(&kq, p);
    let ep = epoll_on(&kq, (libc::EPOLLIN | libc::EPOLLET) as u32);
    ch_ok(
        &kq,
        &[
            user(1, EV_ADD | EV_CLEAR, 0, 0),
            user(2, EV_ADD | EV_CLEAR, 0, 0),
        ],
    );
    let fire = |ids: &[usize], room: usize| {
        let changes: Vec<Kevent> = ids.iter().map(|&i| user(i, 0, NOTE_TRIGGER, 0)).collect();
        let mut evs = vec![Kevent::default(); room];
        let n = kq
            .kevent(&changes, &mut evs, Some(Duration::ZERO))
            .expect("kevent (changes and collect)");
        evs.truncate(n);
        evs.iter().map(|e| e.ident).collect::<Vec<_>>()
    };
    for _ in 0..3 {
        assert_eq!(fire(&[1], 1), [1]);
        assert!(!readable(&kq, 0), "readable with nothing pending");
        assert_eq!(
            epoll_wait(&ep, 0),
            0,
            "an edge for an event never pending outside"
        );
        expect_no_events(&outer);
    }
    // Two triggered, room for one: the other is pending once the call returns.
    let got = fire(&[1, 2], 1);
    assert_eq!(got.len(), 1);
    assert!(
        readable(&kq, 0),
        "the event left queued does not make it readable"
    );
    assert_eq!(epoll_wait(&ep, 0), 1, "no edge for the event left queued");
    let seen = expect_one(&outer);
    assert_eq!((seen.ident, seen.data), (kq.as_raw_fd() as usize, 1));
    let rest = poll(&kq, 8);
    assert_eq!(rest.len(), 1);
    assert_ne!(rest[0].ident, got[0]);
    assert!(!readable(&kq, 0));
    // One still pending from a call of its own, a second triggered and collected with it.
    trigger(&kq, 1);
    assert_eq!(epoll_wait(&ep, 0), 1);
    let mut both = fire(&[2], 8);
    both.sort();
    assert_eq!(both, [1, 2]);
    assert!(!readable(&kq, 0));
    assert_eq!(epoll_wait(&ep, 0), 0);
    expect_no_events(&outer);
    // A level READ knote added and delivered by one call stays pending (its data is not
    // read): the descriptor is readable and the watching kqueue gets the event.
    let (a, b) = stream_pair();
    put(&b, 3);
    let mut evs = [Kevent::default(); 1];
    let n = kq
        .kevent(&[rd(id(&a), EV_ADD, 0)], &mut evs, Some(Duration::ZERO))
        .expect("kevent (EV_ADD and collect)");
    assert_eq!((n, evs[0].ident, evs[0].data), (1, id(&a), 3));
    assert!(
        readable(&kq, 0),
        "the level event left pending does not make it readable"
    );
    let seen = expect_one(&outer);
    assert_eq!(seen.ident, kq.as_raw_fd() as usize);
}

/// A kqueue watching `inner` with EVFILT_READ, EV_CLEAR.
fn kq_new_watching(inner: &Kqueue, p: Personality) -> Kqueue {
    let outer = kq(p);
    ch_ok(
        &outer,
        &[rd(inner.as_raw_fd() as usize, EV_ADD | EV_CLEAR, 0)],
    );
    expect_no_events(&outer);
    outer
}

both!(
    kq_fd_poll_readable_while_pending,
    kq_fd_in_epoll_level,
    kq_fd_in_epoll_edge,
    kq_fd_in_epoll_edge_user_events,
    kq_in_kq_read_sockets,
    kq_in_kq_clear_sees_each_new_event,
    kq_fd_changes_and_collect_in_one_call,
);
