//! Plain level EVFILT_READ knotes, whose descriptors the kqueue's epoll holds
//! level-triggered once they are delivered (see `filter/fd.rs`), in both personalities:
//! the kqueue descriptor's readability (poll(2), and an edge-triggered epoll watcher)
//! through read-all, new data and end of file; EV_DISABLE/EV_ENABLE, a modifying EV_ADD
//! (EV_CLEAR, NOTE_LOWAT), a WRITE knote joining and leaving; sockets never connected and
//! listening sockets (no spinning wait); a number closed behind the library's back and
//! reused; a kqueue watching the kqueue (its pending count, its EV_CLEAR edges); threads
//! scanning and waiting at once. With `KQ_NO_LEVEL=1` in the environment the same tests
//! pass on edge-triggered registrations, the readability after a read aside.

mod fdutil;
mod levelutil;
mod util;

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use fdutil::*;
use kq::*;
use levelutil::*;
use util::*;

/// A descriptor to watch and the descriptor that feeds it.
struct Src {
    name: &'static str,
    watched: OwnedFd,
    peer: OwnedFd,
    _path: Option<TempPath>,
}

/// One of each stream-like kind a level registration serves.
fn sources() -> Vec<Src> {
    let (a, b) = stream_pair();
    let (r, w) = pipe();
    let (fr, fw, path) = fifo();
    let (c, s) = tcp_pair();
    let src = |name, watched, peer, path| Src {
        name,
        watched,
        peer,
        _path: path,
    };
    vec![
        src("AF_UNIX stream", a, b, None),
        src("pipe", r, w, None),
        src("FIFO", fr, fw, Some(path)),
        src("TCP", s.into(), c.into(), None),
    ]
}

/// R1 (read-all, new data, EOF): the kqueue descriptor is readable exactly while the
/// level knote's descriptor is, from the knote's delivery (its registration is then
/// level-triggered) until the program reads the data, and an edge-triggered watcher of
/// the kqueue gets an edge for each new event. A knote delivered again without being
/// drained stays queued, as on the BSDs: the descriptor is readable until a scan finds it
/// drained.
fn r1_level_kq_fd_readable_exactly_while_ready(p: Personality) {
    for s in sources() {
        let name = s.name;
        let kq = kq(p);
        let watcher = EdgeWatcher::new(&kq);
        ch_ok(&kq, &[rd(id(&s.watched), EV_ADD, 7)]);
        assert!(!readable(&kq), "{name}: readable with nothing to read");
        assert!(poll(&kq, 4).is_empty());
        watcher.drain();

        for round in 0..3 {
            let n = 3 + round;
            put(&s.peer, n);
            settle(&s.watched, n as isize);
            assert!(watcher.edges(1000) >= 1, "{name}: no edge for new data");
            assert!(readable(&kq), "{name}: data, yet not readable");
            let evs = poll(&kq, 4);
            assert_eq!(evs.len(), 1, "{name}: {evs:?}");
            assert_read(&evs[0], &s.watched, n as isize, false);
            assert_eq!(udata(&evs[0]), 7);
            assert!(readable(&kq), "{name}: the data is still there");
            assert_eq!(take(&s.watched, n), n as isize);
            assert!(
                !level_on() || !readable(&kq),
                "{name}: read all, still readable"
            );
            scanned_empty(&kq, name);
            watcher.drain();
        }

        // Delivered again and again (level), then drained.
        put(&s.peer, 2);
        settle(&s.watched, 2);
        for _ in 0..3 {
            let evs = poll(&kq, 4);
            assert_eq!(evs.len(), 1, "{name}: {evs:?}");
            assert_read(&evs[0], &s.watched, 2, false);
            assert!(readable(&kq), "{name}: the data is still there");
        }
        assert_eq!(take(&s.watched, 2), 2);
        scanned_empty(&kq, name);
        watcher.drain();
        // Exact again from the next delivery.
        put(&s.peer, 1);
        settle(&s.watched, 1);
        assert!(watcher.edges(1000) >= 1, "{name}: no edge for the new data");
        assert_read(&expect_one(&kq), &s.watched, 1, false);
        assert_eq!(take(&s.watched, 1), 1);
        assert!(
            !level_on() || !readable(&kq),
            "{name}: read all, still readable"
        );
        scanned_empty(&kq, name);
        watcher.drain();

        drop(s.peer);
        assert!(watcher.edges(1000) >= 1, "{name}: no edge for EOF");
        let evs = get(&kq, 4, Some(Duration::from_secs(30)));
        assert_eq!(evs.len(), 1, "{name}: {evs:?}");
        assert_read(&evs[0], &s.watched, 0, true);
        // End of file stays: level-triggered, reported again.
        assert!(readable(&kq), "{name}: EOF pending, not readable");
        let evs = poll(&kq, 4);
        assert_eq!(evs.len(), 1, "{name}: {evs:?}");
        assert_read(&evs[0], &s.watched, 0, true);
    }
}

/// R2 (EV_DISABLE/EV_ENABLE): a level knote disabled after its delivery reports nothing
/// and leaves the kqueue descriptor unreadable once a scan found nothing; EV_ENABLE
/// reports what accumulated at once, and the knote is level again.
fn r2_level_disable_enable(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 0)]);
    put(&b, 4);
    assert_read(&expect_one(&kq), &a, 4, false);
    ch_ok(&kq, &[rd(id(&a), EV_DISABLE, 0)]);
    assert!(poll(&kq, 4).is_empty());
    assert!(!readable(&kq), "disabled, scanned: nothing pending");
    put(&b, 1);
    assert!(poll(&kq, 4).is_empty(), "disabled");
    ch_ok(&kq, &[rd(id(&a), EV_ENABLE, 0)]);
    assert!(readable(&kq));
    assert_read(&expect_one(&kq), &a, 5, false);
    assert_read(&expect_one(&kq), &a, 5, false);
    assert_eq!(take(&a, 5), 5);
    scanned_empty(&kq, "enabled, drained");
    put(&b, 1);
    assert!(readable(&kq));
    assert_read(&expect_one(&kq), &a, 1, false);
    assert_eq!(take(&a, 1), 1);
    assert!(!level_on() || !readable(&kq), "level registration again");
    scanned_empty(&kq, "drained");
}

/// R1 with a modifying EV_ADD: EV_CLEAR in a change to an existing knote does not change
/// its flags (the BSDs keep them), so the knote stays level; a NOTE_LOWAT mark above what
/// is there silences it until the mark is reached, and taking the mark away makes it
/// plain level again.
fn r1_level_modified_clear_and_lowat(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 0)]);
    put(&b, 2);
    assert_read(&expect_one(&kq), &a, 2, false);
    ch_ok(&kq, &[rd(id(&a), EV_ADD | EV_CLEAR, 0)]);
    assert_read(&expect_one(&kq), &a, 2, false);
    assert_read(&expect_one(&kq), &a, 2, false);

    let mut lowat = rd(id(&a), EV_ADD, 0);
    lowat.fflags = NOTE_LOWAT;
    lowat.data = 5;
    ch_ok(&kq, &[lowat]);
    assert!(poll(&kq, 4).is_empty(), "2 bytes, mark 5");
    assert!(!readable(&kq));
    put(&b, 3);
    assert_read(&expect_one(&kq), &a, 5, false);
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 0)]);
    assert_read(&expect_one(&kq), &a, 5, false);
    assert_read(&expect_one(&kq), &a, 5, false);
    assert_eq!(take(&a, 5), 5);
    scanned_empty(&kq, "mark taken away, drained");
    put(&b, 1);
    assert_read(&expect_one(&kq), &a, 1, false);
    assert_eq!(take(&a, 1), 1);
    assert!(!level_on() || !readable(&kq), "plain level again");
}

/// R1 with a WRITE knote on the same descriptor (they share its registration): both are
/// level while it is there; once it is deleted the READ knote alone is reported, and
/// readability follows it again.
fn r1_level_write_knote_added_and_removed(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    ch_ok(&kq, &[rd(id(&a), EV_ADD, 1)]);
    put(&b, 2);
    assert_read(&expect_one(&kq), &a, 2, false);
    ch_ok(&kq, &[wr(id(&a), EV_ADD, 2)]);
    for _ in 0..2 {
        let mut evs = poll(&kq, 4);
        evs.sort_by_key(|e| e.filter);
        assert_eq!(evs.len(), 2, "{evs:?}");
        assert_eq!(evs[0].filter, EVFILT_WRITE);
        assert_read(&evs[1], &a, 2, false);
    }
    assert_eq!(take(&a, 2), 2);
    let evs = poll(&kq, 4);
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].filter, EVFILT_WRITE);
    ch_ok(&kq, &[wr(id(&a), EV_DELETE, 0)]);
    scanned_empty(&kq, "WRITE deleted");
    put(&b, 1);
    assert!(readable(&kq));
    assert_read(&expect_one(&kq), &a, 1, false);
    assert_eq!(take(&a, 1), 1);
    assert!(
        !level_on() || !readable(&kq),
        "READ alone again: level registration"
    );
    scanned_empty(&kq, "drained");
    put(&b, 1);
    assert_read(&expect_one(&kq), &a, 1, false);
    assert_read(&expect_one(&kq), &a, 1, false);
    assert_eq!(take(&a, 1), 1);
    scanned_empty(&kq, "drained");
}

fn socket(domain: i32, ty: i32) -> OwnedFd {
    // SAFETY: plain system call.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: just returned by socket().
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// R1 on sockets whose readiness in epoll is not the READ filter's: a stream socket never
/// connected (epoll reports a hang-up, the BSDs nothing), an unbound datagram socket, and
/// listening sockets with no connection waiting: nothing is reported, a blocking wait
/// sleeps its timeout out, the kqueue descriptor is not readable. A connection waiting is
/// reported (level), and after accept() nothing is left.
fn r1_level_unconnected_and_listening_sockets_no_spin(p: Personality) {
    let kq = kq(p);
    let tcp = socket(libc::AF_INET, libc::SOCK_STREAM);
    let unix = socket(libc::AF_UNIX, libc::SOCK_STREAM);
    let udp = socket(libc::AF_INET, libc::SOCK_DGRAM);
    let listener = tcp_listener();
    ch_ok(
        &kq,
        &[
            rd(id(&tcp), EV_ADD, 0),
            rd(id(&unix), EV_ADD, 0),
            rd(id(&udp), EV_ADD, 0),
            rd(id(&listener), EV_ADD, 0),
        ],
    );
    waits_quietly(&kq, "never connected, listening");
    waits_quietly(&kq, "again");

    let mut keep = Vec::new();
    for round in 0..3 {
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let evs = get(&kq, 4, Some(Duration::from_secs(30)));
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert_read(&evs[0], &listener, 1, false);
        if round == 0 {
            assert_read(&expect_one(&kq), &listener, 1, false);
        }
        assert!(readable(&kq));
        keep.push((accept(&listener), client));
        if round > 0 {
            assert!(!level_on() || !readable(&kq), "accepted: nothing waits");
        }
        waits_quietly(&kq, "after accept");
    }
}

/// G22 with the close unseen: a number whose level knote was delivered is closed behind
/// the library's back (no fdclose) while its file lives on through a dup, and taken by
/// another socket: nothing is reported for the new file, whatever either file receives,
/// and no wait spins on the registration the old file keeps in the epoll.
fn g22_level_number_closed_unseen_and_reused(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    // A number of its own, so that only this test can take it again.
    let slot = if p == Personality::NetBsd { 10 } else { 11 };
    let a = move_to(a, reserved_number(slot));
    let n = a.as_raw_fd();
    ch_ok(&kq, &[rd(n as usize, EV_ADD, 0)]);
    put(&b, 1);
    assert_read(&expect_one(&kq), &a, 1, false);
    let keep = dup(&a);
    drop(a); // closed, the library not told
    let (c, d) = stream_pair();
    let c = move_to(c, n);
    put(&d, 2);
    put(&b, 3);
    assert!(
        poll(&kq, 4).is_empty(),
        "nothing is registered for the new file"
    );
    waits_quietly(&kq, "old file and new file both readable");
    put(&b, 1);
    put(&d, 1);
    waits_quietly(&kq, "more data on both");
    // A new knote on the number watches the new file.
    ch_ok(&kq, &[rd(n as usize, EV_ADD, 0)]);
    assert_read(&expect_one(&kq), &c, 3, false);
    drop(keep);
}

/// G22 for a READ knote registered without a look (never reported yet): its number is
/// closed behind the library's back, the file living on through a dup, and taken by a
/// kqueue with an event pending; when the old file gets data, its registration's report
/// must not be taken for that kqueue (which `look` would classify the number as).
fn g22_unlooked_number_taken_by_a_kqueue(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    let slot = if p == Personality::NetBsd { 12 } else { 13 };
    let a = move_to(a, reserved_number(slot));
    let n = a.as_raw_fd();
    ch_ok(&kq, &[rd(n as usize, EV_ADD, 0)]);
    let keep = dup(&a);
    drop(a); // closed, the library not told
    let other: OwnedFd = Kqueue::new().unwrap().try_into_fd().unwrap();
    let other = move_to(other, n);
    let watched = Kqueue::find(other.as_fd()).unwrap();
    ch_ok(&watched, &[user(1, EV_ADD, 0, 0)]);
    trigger(&watched, 1);
    put(&b, 1);
    assert!(
        poll(&kq, 4).is_empty(),
        "number {n} names another kqueue now"
    );
    waits_quietly(&kq, "old file readable, number taken by a kqueue");
    drop(keep);
}

/// U37 with a level knote in the watched kqueue: the watcher's EV_CLEAR knote fires for
/// each new activation only, not for the level knote staying pending across deliveries;
/// its `data` (the pending count) counts the knote while it is pending.
fn u37_level_outer_clear_sees_new_activations_only(p: Personality) {
    let inner = kq(p);
    let outer = kq(p);
    let (a, b) = stream_pair();
    ch_ok(&inner, &[rd(id(&a), EV_ADD, 0)]);
    ch_ok(
        &outer,
        &[rd(inner.as_raw_fd() as usize, EV_ADD | EV_CLEAR, 0)],
    );
    assert!(poll(&outer, 4).is_empty());
    put(&b, 1);
    let evs = get(&outer, 4, Some(Duration::from_secs(30)));
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].data, 1);
    for _ in 0..3 {
        assert_read(&expect_one(&inner), &a, 1, false);
        assert!(poll(&outer, 4).is_empty(), "no new activation");
    }
    assert_eq!(take(&a, 1), 1);
    assert!(poll(&inner, 4).is_empty());
    assert!(poll(&outer, 4).is_empty());
    put(&b, 2);
    let evs = get(&outer, 4, Some(Duration::from_secs(30)));
    assert_eq!(evs.len(), 1, "a new activation: {evs:?}");
    assert_eq!(evs[0].data, 1);
    assert_read(&expect_one(&inner), &a, 2, false);
}

/// A level knote whose report was taken in (by a watching kqueue's look) and whose data
/// was then read before the delivery: nothing is delivered, nothing left readable, and
/// the knote goes on reporting new data, level.
fn r1_level_report_drained_before_delivery(p: Personality) {
    let inner = kq(p);
    let outer = kq(p);
    let (a, b) = stream_pair();
    ch_ok(&inner, &[rd(id(&a), EV_ADD, 0)]);
    put(&b, 3);
    assert_read(&expect_one(&inner), &a, 3, false);
    ch_ok(&outer, &[rd(inner.as_raw_fd() as usize, EV_ADD, 0)]);
    let evs = poll(&outer, 4);
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].data, 1);
    assert_eq!(take(&a, 3), 3);
    assert!(poll(&inner, 4).is_empty());
    assert!(!readable(&inner));
    assert!(poll(&outer, 4).is_empty());
    put(&b, 2);
    assert_read(&expect_one(&inner), &a, 2, false);
    assert_read(&expect_one(&inner), &a, 2, false);
    assert_eq!(take(&a, 2), 2);
    assert!(poll(&inner, 4).is_empty());
    assert!(!readable(&inner));
}

/// R1 on an eventfd (readable while its count is not 0): level, and readability follows.
fn r1_level_eventfd(p: Personality) {
    let kq = kq(p);
    let e = eventfd();
    ch_ok(&kq, &[rd(id(&e), EV_ADD, 0)]);
    assert!(poll(&kq, 4).is_empty());
    let one = 1u64.to_ne_bytes();
    put_bytes(&e, &one);
    for _ in 0..2 {
        let evs = poll(&kq, 4);
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert_eq!(evs[0].ident, id(&e));
    }
    let mut buf = [0u8; 8];
    // SAFETY: reads 8 bytes into buf.
    let read = |buf: &mut [u8; 8]| unsafe { libc::read(e.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
    assert_eq!(read(&mut buf), 8);
    scanned_empty(&kq, "eventfd read");
    put_bytes(&e, &one);
    assert_eq!(expect_one(&kq).ident, id(&e));
    assert_eq!(read(&mut buf), 8);
    assert!(
        !level_on() || !readable(&kq),
        "eventfd read, still readable"
    );
    scanned_empty(&kq, "eventfd read");
}

/// G25 with waits: two threads each make 2,000 blocking calls for one event on a kqueue
/// whose only knote is a level READ knote on a pipe holding a byte: every call returns it
/// (none waits its 5 s out).
fn g25_level_multithread_waits(p: Personality) {
    let kq = Arc::new(kq(p));
    let (r, w) = pipe();
    ch_ok(&kq, &[rd(id(&r), EV_ADD, 0)]);
    put(&w, 1);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let kq = Arc::clone(&kq);
            let fd = id(&r);
            thread::spawn(move || {
                for i in 0..2000 {
                    let evs = get(&kq, 1, Some(Duration::from_secs(5)));
                    assert_eq!(evs.len(), 1, "call {i}: {evs:?}");
                    assert_eq!((evs[0].ident, evs[0].data), (fd, 1));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Round trips through a server thread blocked in kevent() on a level READ knote: every
/// request is answered (no lost wakeup between the level registration's reports).
fn r1_level_echo_round_trips(p: Personality) {
    let kq = Arc::new(kq(p));
    let (client, server) = tcp_pair();
    client.set_nonblocking(false).unwrap();
    let server: OwnedFd = server.into();
    let sfd: RawFd = server.as_raw_fd();
    ch_ok(&kq, &[rd(sfd as usize, EV_ADD, 0)]);
    let k = Arc::clone(&kq);
    let t = thread::spawn(move || loop {
        let evs = get(&k, 1, Some(Duration::from_secs(5)));
        assert_eq!(evs.len(), 1, "no request in 5 s");
        let mut buf = [0u8; 256];
        // SAFETY: reads into buf.
        let n = unsafe { libc::read(sfd, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            return;
        }
        if n > 0 {
            put_bytes(&server, &buf[..n as usize]);
        }
    });
    let c: OwnedFd = client.into();
    for i in 0..2000 {
        put_bytes(&c, &[i as u8; 16]);
        let mut got = 0;
        let mut buf = [0u8; 16];
        while got < 16 {
            // SAFETY: reads into the rest of buf; the socket is blocking.
            let n = unsafe { libc::read(c.as_raw_fd(), buf[got..].as_mut_ptr().cast(), 16 - got) };
            assert!(n > 0, "round {i}");
            got += n as usize;
        }
        assert_eq!(buf, [i as u8; 16]);
    }
    drop(c);
    t.join().unwrap();
}

both!(
    r1_level_kq_fd_readable_exactly_while_ready,
    r2_level_disable_enable,
    r1_level_modified_clear_and_lowat,
    r1_level_write_knote_added_and_removed,
    r1_level_unconnected_and_listening_sockets_no_spin,
    g22_level_number_closed_unseen_and_reused,
    g22_unlooked_number_taken_by_a_kqueue,
    u37_level_outer_clear_sees_new_activations_only,
    r1_level_report_drained_before_delivery,
    r1_level_eventfd,
    g25_level_multithread_waits,
    r1_level_echo_round_trips,
);
