//! EVFILT_READ and EVFILT_WRITE on ordinary descriptors, in both personalities.
//!
//! R1-R6 are FreeBSD read.c's socket cases (AF_UNIX stream socket pair), run here on every
//! stream-like descriptor (AF_UNIX stream, pipe, FIFO, loopback TCP); R7 is the per-type
//! `data` of NetBSD's read/ tests (pipes, FIFOs, ptys, regular files) plus the other socket
//! types; W1-W4 are NetBSD's write/ tests (pipes, FIFOs, ptys) plus sockets and files.
//! Then NOTE_LOWAT, EV_RECEIPT, the errors of a change on a descriptor filter, and READ and
//! WRITE on one descriptor.

mod fdutil;
mod util;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fdutil::*;
use kq::*;
use util::*;

/// A descriptor to watch and the descriptor that feeds it.
struct Src {
    name: &'static str,
    watched: OwnedFd,
    peer: OwnedFd,
    _path: Option<TempPath>,
}

/// One of each stream-like kind: bytes written at `peer` become readable at `watched`.
fn stream_sources() -> Vec<Src> {
    let (a, b) = stream_pair();
    let (r, w) = pipe();
    let (fr, fw, path) = fifo();
    let (c, s) = tcp_pair();
    vec![
        Src {
            name: "AF_UNIX stream",
            watched: a,
            peer: b,
            _path: None,
        },
        Src {
            name: "pipe",
            watched: r,
            peer: w,
            _path: None,
        },
        Src {
            name: "FIFO",
            watched: fr,
            peer: fw,
            _path: Some(path),
        },
        Src {
            name: "TCP",
            watched: s.into(),
            peer: c.into(),
            _path: None,
        },
    ]
}

/// Waits (up to 1 s) until at least `n` bytes are readable at `fd`: loopback TCP delivers
/// asynchronously.
#[track_caller]
fn settle(fd: &impl AsRawFd, n: isize) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while fionread(fd) < n {
        assert!(Instant::now() < deadline, "{n} bytes never became readable");
        thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------------------
// R1-R6: flags on a readable stream
// ---------------------------------------------------------------------------------------

/// R1 (FreeBSD read.c test_kevent_socket_add, _del, _get): EV_ADD succeeds with nothing to
/// report; one byte from the peer gives one record with data 1 and the registered udata,
/// reported again on every poll while the byte is unread (level-triggered); once it is read
/// nothing is reported; after EV_DELETE a new byte is not reported.
fn r1_add_del_get(p: Personality) {
    for s in stream_sources() {
        eprintln!("kind: {}", s.name);
        let kq = kq(p);
        let w = id(&s.watched);
        ch_ok(&kq, &[rd(w, EV_ADD, 0x11)]);
        expect_no_events(&kq);
        put(&s.peer, 1);
        let ev = wait_one(&kq);
        assert_fd_event(&ev, w, EVFILT_READ, delivered_flags(p, EV_ADD), 1);
        assert_eq!((ev.fflags, udata(&ev)), (0, 0x11), "{ev:?}");
        // Level-triggered: the same record while the byte is there.
        assert_fd_event(
            &expect_one(&kq),
            w,
            EVFILT_READ,
            delivered_flags(p, EV_ADD),
            1,
        );
        assert_fd_event(
            &expect_one(&kq),
            w,
            EVFILT_READ,
            delivered_flags(p, EV_ADD),
            1,
        );
        assert_eq!(take(&s.watched, 1), 1);
        expect_no_events(&kq);
        ch_ok(&kq, &[rd(w, EV_DELETE, 0)]);
        put(&s.peer, 1);
        settle(&s.watched, 1);
        expect_no_events(&kq);
        // EV_DELETE of the deleted knote: ENOENT.
        ch_err(&kq, &[rd(w, EV_DELETE, 0)], libc::ENOENT);
    }
}

/// R2 (FreeBSD read.c test_kevent_socket_disable_and_enable): a byte written before
/// EV_ADD|EV_DISABLE is not reported; EV_ENABLE reports it at once, data 1.
fn r2_disable_and_enable(p: Personality) {
    for s in stream_sources() {
        eprintln!("kind: {}", s.name);
        let kq = kq(p);
        let w = id(&s.watched);
        put(&s.peer, 1);
        settle(&s.watched, 1);
        ch_ok(&kq, &[rd(w, EV_ADD | EV_DISABLE, 0x22)]);
        expect_no_events(&kq);
        expect_no_events(&kq);
        ch_ok(&kq, &[rd(w, EV_ENABLE, 0x22)]);
        let ev = expect_one(&kq);
        assert_fd_event(
            &ev,
            w,
            EVFILT_READ,
            delivered_flags(p, EV_ADD | EV_DISABLE),
            1,
        );
        assert_eq!(udata(&ev), 0x22);
        // Disabled again: nothing, although the byte is still there.
        ch_ok(&kq, &[rd(w, EV_DISABLE, 0x22)]);
        expect_no_events(&kq);
        ch_ok(&kq, &[rd(w, EV_DELETE, 0)]);
    }
}

/// R3 (FreeBSD read.c test_kevent_socket_oneshot): an EV_ONESHOT knote is reported once,
/// then never again although the data stays unread; the knote is gone, so EV_DELETE fails
/// with ENOENT.
fn r3_oneshot(p: Personality) {
    for s in stream_sources() {
        eprintln!("kind: {}", s.name);
        let kq = kq(p);
        let w = id(&s.watched);
        ch_ok(&kq, &[rd(w, EV_ADD | EV_ONESHOT, 0x33)]);
        expect_no_events(&kq);
        put(&s.peer, 1);
        let ev = wait_one(&kq);
        assert_fd_event(
            &ev,
            w,
            EVFILT_READ,
            delivered_flags(p, EV_ADD | EV_ONESHOT),
            1,
        );
        assert_eq!(udata(&ev), 0x33);
        expect_no_events(&kq);
        put(&s.peer, 1);
        settle(&s.watched, 2);
        expect_no_events(&kq);
        ch_err(&kq, &[rd(w, EV_DELETE, 0)], libc::ENOENT);
    }
}

/// R4 (FreeBSD read.c test_kevent_socket_clear): with EV_CLEAR, two bytes give one record
/// with data 2; reading one byte (one still unread) gives no new record; a new byte is a
/// new activation, reported with the current count (2).
fn r4_clear(p: Personality) {
    for s in stream_sources() {
        eprintln!("kind: {}", s.name);
        let kq = kq(p);
        let w = id(&s.watched);
        ch_ok(&kq, &[rd(w, EV_ADD | EV_CLEAR, 0x44)]);
        expect_no_events(&kq);
        put(&s.peer, 2);
        let ev = wait_one(&kq);
        assert_fd_event(
            &ev,
            w,
            EVFILT_READ,
            delivered_flags(p, EV_ADD | EV_CLEAR),
            2,
        );
        expect_no_events(&kq);
        assert_eq!(take(&s.watched, 1), 1);
        expect_no_events(&kq);
        put(&s.peer, 1);
        let ev = wait_one(&kq);
        assert_fd_event(
            &ev,
            w,
            EVFILT_READ,
            delivered_flags(p, EV_ADD | EV_CLEAR),
            2,
        );
        expect_no_events(&kq);
    }
}

/// R5 (FreeBSD read.c test_kevent_socket_dispatch): an EV_DISPATCH knote is reported once,
/// then disabled although the data stays unread; EV_ENABLE reports it again (still data
/// 1); EV_DELETE of the disabled knote succeeds.
fn r5_dispatch(p: Personality) {
    for s in stream_sources() {
        eprintln!("kind: {}", s.name);
        let kq = kq(p);
        let w = id(&s.watched);
        let fl = delivered_flags(p, EV_ADD | EV_DISPATCH);
        ch_ok(&kq, &[rd(w, EV_ADD | EV_DISPATCH, 0x55)]);
        expect_no_events(&kq);
        put(&s.peer, 1);
        assert_fd_event(&wait_one(&kq), w, EVFILT_READ, fl, 1);
        expect_no_events(&kq);
        ch_ok(&kq, &[rd(w, EV_ENABLE | EV_DISPATCH, 0x55)]);
        assert_fd_event(&expect_one(&kq), w, EVFILT_READ, fl, 1);
        expect_no_events(&kq);
        ch_ok(&kq, &[rd(w, EV_DELETE, 0)]);
        expect_no_events(&kq);
    }
}

/// R6 (FreeBSD read.c test_kevent_socket_eof): closing the writing side sets EV_EOF (a
/// socket's fflags: no pending error, 0); the EOF is level-triggered (reported on every
/// poll); it is reported even with unread data, whose count stays in `data`.
fn r6_eof(p: Personality) {
    for unread in [0, 3] {
        for Src {
            name,
            watched,
            peer,
            _path,
        } in stream_sources()
        {
            eprintln!("kind: {name}, {unread} unread bytes");
            let kq = kq(p);
            let w = id(&watched);
            ch_ok(&kq, &[rd(w, EV_ADD, 0x66)]);
            if unread > 0 {
                put(&peer, unread);
                settle(&watched, unread as isize);
            }
            drop(peer);
            let ev = poll_until(&kq, "EV_EOF", |e| e.flags & EV_EOF != 0);
            assert_fd_event(
                &ev,
                w,
                EVFILT_READ,
                delivered_flags(p, EV_ADD) | EV_EOF,
                unread as isize,
            );
            assert_eq!((ev.fflags, udata(&ev)), (0, 0x66), "{ev:?}");
            assert_fd_event(
                &expect_one(&kq),
                w,
                EVFILT_READ,
                delivered_flags(p, EV_ADD) | EV_EOF,
                unread as isize,
            );
            // Drained: still at end of file, still reported, data 0.
            drain(&watched);
            assert_fd_event(
                &expect_one(&kq),
                w,
                EVFILT_READ,
                delivered_flags(p, EV_ADD) | EV_EOF,
                0,
            );
        }
    }
}

/// R6, TCP half-close: the peer's shutdown(SHUT_WR) sets EV_EOF with fflags 0, and the
/// watched socket is still writable (WRITE has no EOF).
fn r6_tcp_shutdown_wr(p: Personality) {
    let kq = kq(p);
    let (c, s) = tcp_pair();
    let w = id(&s);
    ch_ok(&kq, &[rd(w, EV_ADD, 1)]);
    expect_no_events(&kq);
    shutdown(&c, libc::SHUT_WR);
    let ev = poll_until(&kq, "EV_EOF", |e| e.flags & EV_EOF != 0);
    assert_fd_event(&ev, w, EVFILT_READ, delivered_flags(p, EV_ADD) | EV_EOF, 0);
    assert_eq!(ev.fflags, 0);
    ch_ok(&kq, &[rd(w, EV_DELETE, 0), wr(w, EV_ADD, 2)]);
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, ev.flags & EV_EOF), (EVFILT_WRITE, 0), "{ev:?}");
    assert!(ev.data > 0, "{ev:?}");
}

/// R6, pending error: the peer closes with SO_LINGER 0 (a reset): EV_EOF with fflags =
/// the socket's pending error, ECONNRESET.
fn r6_tcp_reset_fflags_error(p: Personality) {
    let kq = kq(p);
    let (c, s) = tcp_pair();
    let w = id(&c);
    ch_ok(&kq, &[rd(w, EV_ADD, 1)]);
    expect_no_events(&kq);
    set_linger0(&s);
    drop(s);
    let ev = poll_until(&kq, "EV_EOF", |e| e.flags & EV_EOF != 0);
    assert_eq!((ev.ident, ev.filter), (w, EVFILT_READ));
    assert_eq!(ev.flags, delivered_flags(p, EV_ADD) | EV_EOF, "{ev:?}");
    assert_eq!(ev.fflags, libc::ECONNRESET as u32, "{ev:?}");
}

// ---------------------------------------------------------------------------------------
// R7: data per descriptor type
// ---------------------------------------------------------------------------------------

/// R7, TCP connected socket: `data` is the number of bytes readable.
fn r7_tcp_data(p: Personality) {
    let kq = kq(p);
    let (c, s) = tcp_pair();
    let w = id(&s);
    ch_ok(&kq, &[rd(w, EV_ADD, 7)]);
    put(&c, 5);
    let ev = poll_until(&kq, "data 5", |e| e.data == 5);
    assert_fd_event(&ev, w, EVFILT_READ, delivered_flags(p, EV_ADD), 5);
    put(&c, 1000);
    poll_until(&kq, "data 1005", |e| e.data == 1005);
    assert_eq!(take(&s, 5), 5);
    assert_eq!(expect_one(&kq).data, 1000);
    drain(&s);
    expect_no_events(&kq);
}

/// R7, listening TCP socket: `data` is the number of connections waiting in the accept
/// queue, exactly; no record once all were accepted.
fn r7_tcp_listen_queue(p: Personality) {
    let kq = kq(p);
    let l = tcp_listener();
    let w = id(&l);
    ch_ok(&kq, &[rd(w, EV_ADD, 9)]);
    expect_no_events(&kq);
    let addr = l.local_addr().unwrap();
    let clients: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let ev = poll_until(&kq, "data 3", |e| e.data == 3);
    assert_fd_event(&ev, w, EVFILT_READ, delivered_flags(p, EV_ADD), 3);
    assert_eq!(udata(&ev), 9);
    let a1 = accept(&l);
    assert_eq!(expect_one(&kq).data, 2);
    let a2 = accept(&l);
    let a3 = accept(&l);
    expect_no_events(&kq);
    drop((clients, a1, a2, a3));
}

/// R7, UDP: readable once a datagram is queued; Linux can only tell the size of the first
/// datagram, so `data` is that (4) or the total (10); after receiving the first one it
/// describes the second (6); nothing once both are received.
fn r7_udp(p: Personality) {
    let kq = kq(p);
    let (a, b) = udp_pair();
    let w = id(&b);
    ch_ok(&kq, &[rd(w, EV_ADD, 1)]);
    expect_no_events(&kq);
    a.send(&[1; 4]).unwrap();
    a.send(&[2; 6]).unwrap();
    let ev = poll_until(&kq, "a datagram", |_| true);
    assert_eq!((ev.ident, ev.filter), (w, EVFILT_READ));
    assert!(ev.data == 4 || ev.data == 10, "{ev:?}");
    let mut buf = [0u8; 64];
    assert_eq!(b.recv(&mut buf).unwrap(), 4);
    assert_eq!(expect_one(&kq).data, 6);
    assert_eq!(b.recv(&mut buf).unwrap(), 6);
    expect_no_events(&kq);
}

/// R7, AF_UNIX datagram socket pair: as UDP, first datagram (4) or total (10).
fn r7_unix_dgram(p: Personality) {
    let kq = kq(p);
    let (a, b) = socketpair(libc::SOCK_DGRAM);
    let w = id(&b);
    ch_ok(&kq, &[rd(w, EV_ADD, 1)]);
    expect_no_events(&kq);
    put(&a, 4);
    put(&a, 6);
    let ev = expect_one(&kq);
    assert_eq!((ev.ident, ev.filter), (w, EVFILT_READ));
    assert!(ev.data == 4 || ev.data == 10, "{ev:?}");
    assert_eq!(take(&b, 64), 4);
    assert_eq!(expect_one(&kq).data, 6);
    assert_eq!(take(&b, 64), 6);
    expect_no_events(&kq);
    // The peer's close is not an EOF for a datagram socket pair on every system; only check
    // that nothing breaks.
    drop(a);
    let _ = poll(&kq, 8);
}

/// R7, AF_UNIX seqpacket socket pair: `data` counts the bytes of all queued records.
fn r7_unix_seqpacket(p: Personality) {
    let kq = kq(p);
    let (a, b) = socketpair(libc::SOCK_SEQPACKET);
    let w = id(&b);
    ch_ok(&kq, &[rd(w, EV_ADD, 1)]);
    expect_no_events(&kq);
    put(&a, 4);
    put(&a, 6);
    assert_fd_event(
        &expect_one(&kq),
        w,
        EVFILT_READ,
        delivered_flags(p, EV_ADD),
        10,
    );
    assert_eq!(take(&b, 64), 4);
    assert_eq!(expect_one(&kq).data, 6);
    drop(a);
    let ev = expect_one(&kq);
    assert_eq!(ev.flags & EV_EOF, EV_EOF, "{ev:?}");
}

/// R7, listening AF_UNIX socket: readable with data >= 1 while a connection waits.
fn r7_unix_listen(p: Personality) {
    use std::os::unix::net::{UnixListener, UnixStream};
    let kq = kq(p);
    let path = TempPath::new("sock");
    let l = UnixListener::bind(path.path()).unwrap();
    l.set_nonblocking(true).unwrap();
    let w = id(&l);
    ch_ok(&kq, &[rd(w, EV_ADD, 1)]);
    expect_no_events(&kq);
    let c = UnixStream::connect(path.path()).unwrap();
    let ev = expect_one(&kq);
    assert_eq!((ev.ident, ev.filter), (w, EVFILT_READ));
    assert!(ev.data >= 1, "{ev:?}");
    let (s, _) = l.accept().unwrap();
    expect_no_events(&kq);
    drop((c, s));
}

/// R7 (NetBSD read/t_pipe): `data` = bytes in the pipe; closing the only writer sets
/// EV_EOF, with the unread count still in `data`.
fn r7_pipe(p: Personality) {
    let kq = kq(p);
    let (r, w) = pipe();
    let ri = id(&r);
    ch_ok(&kq, &[rd(ri, EV_ADD, 1)]);
    expect_no_events(&kq);
    put(&w, 7);
    assert_fd_event(
        &expect_one(&kq),
        ri,
        EVFILT_READ,
        delivered_flags(p, EV_ADD),
        7,
    );
    put(&w, 100);
    assert_eq!(expect_one(&kq).data, 107);
    assert_eq!(take(&r, 100), 100);
    assert_eq!(expect_one(&kq).data, 7);
    // A second writer: EOF only when the last one closes.
    let w2 = dup(&w);
    drop(w);
    assert_eq!(expect_one(&kq).flags & EV_EOF, 0);
    drop(w2);
    assert_fd_event(
        &expect_one(&kq),
        ri,
        EVFILT_READ,
        delivered_flags(p, EV_ADD) | EV_EOF,
        7,
    );
}

/// R7 (NetBSD read/t_fifo): as a pipe, through a named FIFO; EV_EOF when every writer is
/// gone.
fn r7_fifo(p: Personality) {
    let kq = kq(p);
    let (r, w, path) = fifo();
    let w2 = open_fifo(&path, libc::O_WRONLY);
    let ri = id(&r);
    ch_ok(&kq, &[rd(ri, EV_ADD, 1)]);
    expect_no_events(&kq);
    put(&w, 5);
    assert_fd_event(
        &expect_one(&kq),
        ri,
        EVFILT_READ,
        delivered_flags(p, EV_ADD),
        5,
    );
    drop(w);
    assert_eq!(expect_one(&kq).flags & EV_EOF, 0, "one writer is left");
    put(&w2, 2);
    drop(w2);
    assert_fd_event(
        &expect_one(&kq),
        ri,
        EVFILT_READ,
        delivered_flags(p, EV_ADD) | EV_EOF,
        7,
    );
}

/// R7 (NetBSD read/t_ttypty): a pty in raw mode, both directions: bytes written to the
/// master are readable at the slave (data 3), bytes written to the slave at the master
/// (data 4). The line discipline moves them asynchronously.
fn r7_pty_both_directions(p: Personality) {
    let kq = kq(p);
    let (m, s) = pty();
    let (mi, si) = (id(&m), id(&s));
    ch_ok(&kq, &[rd(mi, EV_ADD, 1), rd(si, EV_ADD, 2)]);
    expect_no_events(&kq);
    put(&m, 3);
    let ev = poll_until(&kq, "slave data 3", |e| e.ident == si && e.data == 3);
    assert_fd_event(&ev, si, EVFILT_READ, delivered_flags(p, EV_ADD), 3);
    assert_eq!(udata(&ev), 2);
    assert_eq!(drain(&s), 3);
    expect_no_events(&kq);
    put(&s, 4);
    let ev = poll_until(&kq, "master data 4", |e| e.ident == mi && e.data == 4);
    assert_fd_event(&ev, mi, EVFILT_READ, delivered_flags(p, EV_ADD), 4);
    assert_eq!(udata(&ev), 1);
    assert_eq!(drain(&m), 4);
    expect_no_events(&kq);
}

/// R7 (NetBSD read/t_file): a regular file: `data` = size - offset, reported while not 0
/// (level); nothing at end of file; an append (through another descriptor) makes it fire
/// again with the new count.
fn r7_regular_file(p: Personality) {
    let kq = kq(p);
    let (f, path) = temp_file(&[b'z'; 10]);
    let fi = id(&f);
    ch_ok(&kq, &[rd(fi, EV_ADD, 1)]);
    let fl = delivered_flags(p, EV_ADD);
    assert_fd_event(&expect_one(&kq), fi, EVFILT_READ, fl, 10);
    assert_fd_event(&expect_one(&kq), fi, EVFILT_READ, fl, 10);
    lseek(&f, 4, libc::SEEK_SET);
    assert_fd_event(&expect_one(&kq), fi, EVFILT_READ, fl, 6);
    lseek(&f, 0, libc::SEEK_END);
    expect_no_events(&kq);
    append(&path, 5);
    assert_fd_event(&wait_one(&kq), fi, EVFILT_READ, fl, 5);
    assert_eq!(take(&f, 64), 5);
    expect_no_events(&kq);
}

/// R7 (NetBSD read/t_file): a kevent() blocked with a timeout on a file at end of file is
/// woken by an append from another thread, well before its timeout.
fn r7_regular_file_append_wakes_waiter(p: Personality) {
    let kq = kq(p);
    let (f, path) = temp_file(b"abc");
    lseek(&f, 0, libc::SEEK_END);
    let fi = id(&f);
    ch_ok(&kq, &[rd(fi, EV_ADD | EV_CLEAR, 1)]);
    expect_no_events(&kq);
    let path = Arc::new(path);
    let p2 = path.clone();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        append(&p2, 5);
    });
    let start = Instant::now();
    let evs = get(&kq, 8, Some(Duration::from_secs(60)));
    let waited = start.elapsed();
    t.join().unwrap();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_fd_event(
        &evs[0],
        fi,
        EVFILT_READ,
        delivered_flags(p, EV_ADD | EV_CLEAR),
        5,
    );
    assert!(waited < Duration::from_secs(30), "woke after {waited:?}");
}

/// R7, eventfd: readable while the counter is not 0, `data` the counter (more in
/// fd_counters.rs).
fn r7_eventfd(p: Personality) {
    let kq = kq(p);
    let e = eventfd();
    let ei = id(&e);
    ch_ok(&kq, &[rd(ei, EV_ADD, 1)]);
    expect_no_events(&kq);
    put_bytes(&e, &1u64.to_ne_bytes());
    let ev = expect_one(&kq);
    assert_eq!(
        (ev.ident, ev.filter, ev.flags, ev.data),
        (ei, EVFILT_READ, delivered_flags(p, EV_ADD), 1)
    );
    assert_eq!(take(&e, 8), 8);
    expect_no_events(&kq);
}

/// NOTE_LOWAT (fflags, the mark in data): READ on a socket fires only once at least that
/// many bytes are readable.
fn read_note_lowat(p: Personality) {
    let kq = kq(p);
    for (name, watched, peer) in [
        ("AF_UNIX stream", stream_pair()),
        ("TCP", {
            let (c, s) = tcp_pair();
            (OwnedFd::from(s), OwnedFd::from(c))
        }),
    ]
    .map(|(n, (a, b))| (n, a, b))
    {
        eprintln!("kind: {name}");
        let w = id(&watched);
        let lowat = Kevent::new(w, EVFILT_READ, EV_ADD, NOTE_LOWAT, 5, ptr(1));
        ch_ok(&kq, &[lowat]);
        put(&peer, 3);
        settle(&watched, 3);
        expect_no_events(&kq);
        put(&peer, 2);
        let ev = poll_until(&kq, "data 5", |_| true);
        assert_eq!(
            (ev.ident, ev.filter, ev.data),
            (w, EVFILT_READ, 5),
            "{ev:?}"
        );
        assert_eq!(take(&watched, 1), 1);
        expect_no_events(&kq);
        ch_ok(&kq, &[rd(w, EV_DELETE, 0)]);
    }
}

// ---------------------------------------------------------------------------------------
// W1-W4 and other EVFILT_WRITE cases
// ---------------------------------------------------------------------------------------

/// F_GETPIPE_SZ: the capacity of a pipe or FIFO.
fn pipe_size(fd: &impl AsRawFd) -> isize {
    // SAFETY: F_GETPIPE_SZ takes no argument.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) }).unwrap() as isize
}

/// W1 (NetBSD write/t_pipe pipe1): EVFILT_WRITE EV_ADD on a pipe whose read end is already
/// closed fails: NetBSD EBADF, FreeBSD EPIPE. The failed change leaves no knote.
fn w1_pipe_reader_closed(p: Personality) {
    let kq = kq(p);
    let (r, w) = pipe();
    drop(r);
    let wi = id(&w);
    let errno = match p {
        Personality::NetBsd => libc::EBADF,
        Personality::FreeBsd => libc::EPIPE,
        _ => unimplemented!("another personality"),
    };
    ch_err(&kq, &[wr(wi, EV_ADD, 1)], errno);
    // The same as an EV_ERROR report when there is a slot.
    let mut evs = [sentinel(); 2];
    let n = kq.kevent(&[wr(wi, EV_ADD, 1)], &mut evs, None).unwrap();
    assert_eq!(n, 1);
    assert_report(&evs[0], wi, EVFILT_WRITE, errno);
    ch_err(&kq, &[wr(wi, EV_DELETE, 0)], libc::ENOENT);
    expect_no_events(&kq);
}

/// W1, the write side of a pipe: `data` = free space (an empty 64 KiB pipe: 65536, less
/// what was written); a full pipe is not reported; closing the reader sets EV_EOF.
fn w1_pipe_space_and_eof(p: Personality) {
    let kq = kq(p);
    let (r, w) = pipe();
    let wi = id(&w);
    let cap = pipe_size(&w);
    assert_eq!(cap, 65536, "the default pipe size");
    ch_ok(&kq, &[wr(wi, EV_ADD, 1)]);
    let fl = delivered_flags(p, EV_ADD);
    assert_fd_event(&expect_one(&kq), wi, EVFILT_WRITE, fl, cap);
    put(&w, 100);
    assert_fd_event(&expect_one(&kq), wi, EVFILT_WRITE, fl, cap - 100);
    fill(&w);
    expect_no_events(&kq);
    drain(&r);
    assert_fd_event(&expect_one(&kq), wi, EVFILT_WRITE, fl, cap);
    drop(r);
    let ev = expect_one(&kq);
    assert_eq!(
        (ev.ident, ev.filter, ev.flags),
        (wi, EVFILT_WRITE, fl | EV_EOF),
        "{ev:?}"
    );
}

/// W2 (NetBSD write/t_pipe pipe2): a kevent() blocked on the write end of a full pipe
/// returns once a reader drains it, well before its timeout.
fn w2_pipe_blocked_until_drained(p: Personality) {
    let kq = kq(p);
    let (r, w) = pipe();
    let wi = id(&w);
    fill(&w);
    ch_ok(&kq, &[wr(wi, EV_ADD, 1)]);
    expect_no_events(&kq);
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        drain(&r);
        r
    });
    let start = Instant::now();
    let evs = get(&kq, 8, Some(Duration::from_secs(60)));
    let waited = start.elapsed();
    let _r = t.join().unwrap();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!((evs[0].ident, evs[0].filter), (wi, EVFILT_WRITE));
    assert!(evs[0].data > 0, "{evs:?}");
    assert!(waited < Duration::from_secs(30), "woke after {waited:?}");
}

/// W3 (NetBSD write/t_pipe pipe3): closing the read end, then the write end, with a WRITE
/// knote attached does not crash; the closed descriptor's knote is never reported again,
/// whether the EOF was collected in between or not, and whether the library was told of
/// the close (fdclose) or not.
fn w3_pipe_close_reader_then_writer(p: Personality) {
    for collect_eof in [false, true] {
        for tell in [false, true] {
            eprintln!("collect EOF first: {collect_eof}, fdclose: {tell}");
            let kq = kq(p);
            let (r, w) = pipe();
            let wi = id(&w);
            ch_ok(&kq, &[wr(wi, EV_ADD, 1), rd(id(&r), EV_ADD, 2)]);
            assert_eq!(expect_one(&kq).ident, wi);
            if tell {
                fdclose_and_close(r);
            } else {
                drop(r);
            }
            if collect_eof {
                let ev = expect_one(&kq);
                assert_eq!((ev.ident, ev.flags & EV_EOF), (wi, EV_EOF), "{ev:?}");
            }
            if tell {
                fdclose_and_close(w);
            } else {
                drop(w);
            }
            expect_no_events(&kq);
            expect_no_events(&kq);
        }
    }
}

/// W4 (NetBSD write/t_fifo): the write side of a FIFO: `data` = free space; a full FIFO
/// is not reported; draining it reports it again.
fn w4_fifo_space(p: Personality) {
    let kq = kq(p);
    let (r, w, _path) = fifo();
    let wi = id(&w);
    let cap = pipe_size(&w);
    ch_ok(&kq, &[wr(wi, EV_ADD, 1)]);
    let fl = delivered_flags(p, EV_ADD);
    assert_fd_event(&expect_one(&kq), wi, EVFILT_WRITE, fl, cap);
    put(&w, 10);
    assert_fd_event(&expect_one(&kq), wi, EVFILT_WRITE, fl, cap - 10);
    fill(&w);
    expect_no_events(&kq);
    drain(&r);
    assert_fd_event(&expect_one(&kq), wi, EVFILT_WRITE, fl, cap);
}

/// W4 (NetBSD write/t_ttypty): the master and the slave of a pty are both writable, with
/// data > 0.
fn w4_pty_writable(p: Personality) {
    let kq = kq(p);
    let (m, s) = pty();
    let (mi, si) = (id(&m), id(&s));
    ch_ok(&kq, &[wr(mi, EV_ADD, 1), wr(si, EV_ADD, 2)]);
    let mut evs = poll(&kq, 8);
    evs.sort_by_key(|e| e.ident);
    assert_eq!(evs.len(), 2, "{evs:?}");
    for ev in &evs {
        assert_eq!(ev.filter, EVFILT_WRITE, "{ev:?}");
        assert!(ev.data > 0, "{ev:?}");
        assert_eq!(udata(ev), if ev.ident == mi { 1 } else { 2 });
    }
    assert!(evs.iter().any(|e| e.ident == si));
}

/// EVFILT_WRITE on sockets (AF_UNIX stream, TCP): reported with data > 0 while there is
/// room; not reported once the send buffer is full; reported again once the peer drained.
fn write_socket_full_then_drained(p: Personality) {
    for (name, a, b) in [
        ("AF_UNIX stream", stream_pair()),
        ("TCP", {
            let (c, s) = tcp_pair();
            (OwnedFd::from(c), OwnedFd::from(s))
        }),
    ]
    .map(|(n, (a, b))| (n, a, b))
    {
        eprintln!("kind: {name}");
        let kq = kq(p);
        let ai = id(&a);
        ch_ok(&kq, &[wr(ai, EV_ADD, 1)]);
        let ev = expect_one(&kq);
        assert_eq!(
            (ev.ident, ev.filter, ev.flags),
            (ai, EVFILT_WRITE, delivered_flags(p, EV_ADD))
        );
        assert!(ev.data > 0, "{ev:?}");
        // Fill until a poll says nothing (TCP may move some bytes to the peer meanwhile).
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            fill(&a);
            let evs = poll(&kq, 8);
            if evs.is_empty() {
                break;
            }
            assert!(evs.iter().all(|e| e.data > 0), "{evs:?}");
            assert!(Instant::now() < deadline, "send buffer never full: {evs:?}");
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        let ev = loop {
            drain(&b);
            if let Some(ev) = poll(&kq, 8).first() {
                break *ev;
            }
            assert!(Instant::now() < deadline, "never writable again");
            thread::sleep(Duration::from_millis(1));
        };
        assert_eq!((ev.ident, ev.filter), (ai, EVFILT_WRITE));
        assert!(ev.data > 0, "{ev:?}");
    }
}

/// EVFILT_WRITE with EV_CLEAR on a writable socket: reported once, not again while nothing
/// changes.
fn write_clear_once(p: Personality) {
    let kq = kq(p);
    let (a, _b) = stream_pair();
    let ai = id(&a);
    ch_ok(&kq, &[wr(ai, EV_ADD | EV_CLEAR, 1)]);
    let ev = expect_one(&kq);
    assert_eq!(
        (ev.ident, ev.filter, ev.flags),
        (ai, EVFILT_WRITE, delivered_flags(p, EV_ADD | EV_CLEAR))
    );
    expect_no_events(&kq);
}

/// EVFILT_WRITE on the writing side of a socket whose peer is gone: EV_EOF.
fn write_socket_peer_closed_eof(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    let ai = id(&a);
    ch_ok(&kq, &[wr(ai, EV_ADD, 1)]);
    assert_eq!(expect_one(&kq).flags & EV_EOF, 0);
    drop(b);
    let ev = expect_one(&kq);
    assert_eq!(
        (ev.ident, ev.filter, ev.flags),
        (ai, EVFILT_WRITE, delivered_flags(p, EV_ADD) | EV_EOF),
        "{ev:?}"
    );
}

/// EVFILT_WRITE on a regular file: always reported (level), with or without data.
fn write_regular_file_always(p: Personality) {
    let kq = kq(p);
    let (f, _path) = temp_file(b"");
    let fi = id(&f);
    ch_ok(&kq, &[wr(fi, EV_ADD, 1)]);
    for _ in 0..3 {
        let ev = expect_one(&kq);
        assert_eq!(
            (ev.ident, ev.filter, ev.flags),
            (fi, EVFILT_WRITE, delivered_flags(p, EV_ADD)),
            "{ev:?}"
        );
    }
    put(&f, 10);
    assert_eq!(expect_one(&kq).filter, EVFILT_WRITE);
}

// ---------------------------------------------------------------------------------------
// Receipts, errors, READ and WRITE together
// ---------------------------------------------------------------------------------------

/// EV_RECEIPT on a descriptor filter: EV_ADD|EV_RECEIPT on a readable socket gives one
/// report (EV_ERROR, data 0) and suppresses the collection; the next poll gets the event.
/// A receipt for a change that fails carries the errno.
fn read_receipt(p: Personality) {
    let kq = kq(p);
    let (a, b) = stream_pair();
    let ai = id(&a);
    put(&b, 1);
    let mut evs = [sentinel(); 4];
    let n = kq
        .kevent(&[rd(ai, EV_ADD | EV_RECEIPT, 5)], &mut evs, None)
        .unwrap();
    assert_eq!(n, 1, "{evs:?}");
    assert_report(&evs[0], ai, EVFILT_READ, 0);
    assert_eq!(udata(&evs[0]), 5);
    assert_eq!(evs[1], sentinel());
    let ev = expect_one(&kq);
    assert_fd_event(
        &ev,
        ai,
        EVFILT_READ,
        delivered_flags(p, EV_ADD | EV_RECEIPT),
        1,
    );
    let bad = closed_number();
    let mut evs = [sentinel(); 4];
    let n = kq
        .kevent(
            &[
                rd(bad, EV_ADD | EV_RECEIPT, 6),
                rd(ai, EV_DELETE | EV_RECEIPT, 0),
            ],
            &mut evs,
            None,
        )
        .unwrap();
    assert_eq!(n, 2, "{evs:?}");
    assert_report(&evs[0], bad, EVFILT_READ, libc::EBADF);
    assert_report(&evs[1], ai, EVFILT_READ, 0);
    expect_no_events(&kq);
}

/// Errors of a change on a descriptor filter: an ident that is not an open descriptor, or
/// is above INT_MAX, gives EBADF (whatever the action); EV_DELETE, EV_ENABLE or EV_DISABLE
/// of a knote never added on an open descriptor gives ENOENT.
fn read_write_errors(p: Personality) {
    let kq = kq(p);
    let (a, _b) = stream_pair();
    for filter in [EVFILT_READ, EVFILT_WRITE] {
        for ident in [closed_number(), 1usize << 31, usize::MAX] {
            for flags in [EV_ADD, EV_DELETE, EV_ENABLE] {
                let c = Kevent::new(ident, filter, flags, 0, 0, ptr(0));
                ch_err(&kq, &[c], libc::EBADF);
            }
        }
        for flags in [EV_DELETE, EV_ENABLE, EV_DISABLE] {
            let c = Kevent::new(id(&a), filter, flags, 0, 0, ptr(0));
            ch_err(&kq, &[c], libc::ENOENT);
        }
    }
    expect_no_events(&kq);
}

/// READ and WRITE on one descriptor are two knotes: both reported, each with its own udata;
/// deleting one leaves the other; re-adding it brings it back. The same descriptor in two
/// kqueues: independent knotes.
fn read_and_write_same_fd(p: Personality) {
    let kq = kq(p);
    let kq2 = util::kq(p);
    let (a, b) = stream_pair();
    let ai = id(&a);
    ch_ok(&kq, &[rd(ai, EV_ADD, 1), wr(ai, EV_ADD, 2)]);
    ch_ok(&kq2, &[rd(ai, EV_ADD, 3)]);
    assert_eq!(expect_one(&kq).filter, EVFILT_WRITE);
    expect_no_events(&kq2);
    put(&b, 4);
    let mut evs = poll(&kq, 8);
    evs.sort_by_key(|e| e.filter);
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert_eq!((evs[0].filter, udata(&evs[0])), (EVFILT_WRITE, 2));
    assert_eq!(
        (evs[1].filter, udata(&evs[1]), evs[1].data),
        (EVFILT_READ, 1, 4)
    );
    let ev = expect_one(&kq2);
    assert_eq!((ev.filter, udata(&ev), ev.data), (EVFILT_READ, 3, 4));
    ch_ok(&kq, &[rd(ai, EV_DELETE, 0)]);
    assert_eq!(expect_one(&kq).filter, EVFILT_WRITE);
    assert_eq!(expect_one(&kq2).filter, EVFILT_READ);
    ch_ok(&kq, &[wr(ai, EV_DELETE, 0), rd(ai, EV_ADD, 5)]);
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, udata(&ev)), (EVFILT_READ, 5));
    // Modifying the READ knote's udata leaves the WRITE side alone (there is none now).
    ch_ok(&kq, &[rd(ai, EV_ADD, 6)]);
    assert_eq!(udata(&expect_one(&kq)), 6);
}

both!(
    r1_add_del_get,
    r2_disable_and_enable,
    r3_oneshot,
    r4_clear,
    r5_dispatch,
    r6_eof,
    r6_tcp_shutdown_wr,
    r6_tcp_reset_fflags_error,
    r7_tcp_data,
    r7_tcp_listen_queue,
    r7_udp,
    r7_unix_dgram,
    r7_unix_seqpacket,
    r7_unix_listen,
    r7_pipe,
    r7_fifo,
    r7_pty_both_directions,
    r7_regular_file,
    r7_regular_file_append_wakes_waiter,
    r7_eventfd,
    read_note_lowat,
    w1_pipe_reader_closed,
    w1_pipe_space_and_eof,
    w2_pipe_blocked_until_drained,
    w3_pipe_close_reader_then_writer,
    w4_fifo_space,
    w4_pty_writable,
    write_socket_full_then_drained,
    write_clear_once,
    write_socket_peer_closed_eof,
    write_regular_file_always,
    read_receipt,
    read_write_errors,
    read_and_write_same_fd,
);
