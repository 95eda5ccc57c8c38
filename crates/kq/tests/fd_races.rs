//! Threaded tests of descriptor knotes: closing and re-registering descriptors while other
//! threads collect, EV_DELETE while other threads deliver, and an accept/close loop that
//! reuses descriptor numbers at once (the event-loop pattern of nginx and libevent).
//! Each test is bounded (well under 2 s when the engine is right, 8 s at worst).
//!
//! Every registration gets a serial number as its udata. A record is wrong if its udata
//! names a registration of another descriptor number, or one that was closed or deleted
//! before the kevent() call that returned it began.

mod fdutil;
mod util;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fdutil::*;
use kq::*;
use util::*;

/// How long the churning loops run at least.
const RUN: Duration = Duration::from_millis(500);
/// How many operations the churning loops make at least, however slow the machine.
const MIN_OPS: usize = 200;
/// Descriptors churned at a time.
const SLOTS: usize = 8;
/// Threads collecting while the test thread churns.
const SCANNERS: usize = 2;

/// The registrations made so far, by serial (the udata); serial 0 is never used.
#[derive(Default)]
struct Book {
    /// The descriptor number of each registration.
    ident: Vec<usize>,
    /// When each registration ended (closed or deleted): a tick of `clock`, 0 while alive.
    ended: Vec<u64>,
}

#[derive(Default)]
struct Shared {
    book: Mutex<Book>,
    clock: AtomicU64,
    /// Records the scanners have checked so far.
    seen: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// Waits (up to 2 s) until the scanners have checked a record: on a loaded machine
    /// they may not have run during the churn itself.
    fn wait_for_a_record(&self) {
        let until = Instant::now() + Duration::from_secs(30);
        while self.seen.load(Ordering::SeqCst) == 0 && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Shared {
    /// Records a registration of descriptor `ident` about to be made; returns its serial.
    fn open(&self, ident: usize) -> usize {
        let mut b = self.book.lock().unwrap();
        if b.ident.is_empty() {
            b.ident.push(usize::MAX);
            b.ended.push(0);
        }
        b.ident.push(ident);
        b.ended.push(0);
        b.ident.len() - 1
    }

    /// Records that registration `serial` ended (its descriptor was closed or its knote
    /// deleted; call after that happened).
    fn end(&self, serial: usize) {
        let tick = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        self.book.lock().unwrap().ended[serial] = tick;
    }

    /// Checks a record returned by a kevent() call that began at clock value `start`.
    fn check(&self, start: u64, ev: &Kevent) {
        let b = self.book.lock().unwrap();
        let s = udata(ev);
        assert!(s > 0 && s < b.ident.len(), "unknown udata: {ev:?}");
        assert_eq!(
            b.ident[s], ev.ident,
            "record with the udata of registration {s}, which was for descriptor {}: {ev:?}",
            b.ident[s]
        );
        let ended = b.ended[s];
        assert!(
            ended == 0 || ended > start,
            "record of registration {s}, which ended before this kevent() began: {ev:?}"
        );
    }
}

/// Sets the flag when dropped, so the helper threads stop even if the test thread panics.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Threads that collect (10 ms timeouts) and check every record until `stop`; each returns
/// the number of records it saw.
fn scanners(
    kq: &Arc<Kqueue>,
    sh: &Arc<Shared>,
    stop: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<usize>> {
    (0..SCANNERS)
        .map(|_| {
            let (kq, sh, stop) = (kq.clone(), sh.clone(), stop.clone());
            thread::spawn(move || {
                let mut evs = [Kevent::default(); 16];
                let mut seen = 0;
                while !stop.load(Ordering::SeqCst) {
                    let start = sh.clock.load(Ordering::SeqCst);
                    let n = kq
                        .kevent(&[], &mut evs, Some(Duration::from_millis(10)))
                        .expect("kevent (collect)");
                    for ev in &evs[..n] {
                        sh.check(start, ev);
                    }
                    sh.seen.fetch_add(n, Ordering::SeqCst);
                    seen += n;
                }
                seen
            })
        })
        .collect()
}

/// A socket pair with one byte readable at `a`, its READ knote registered (level or
/// EV_CLEAR by the serial's parity) with a new serial.
struct Slot {
    a: OwnedFd,
    b: OwnedFd,
    serial: usize,
}

fn flags_for(serial: usize) -> u16 {
    if serial & 1 == 0 {
        EV_ADD
    } else {
        EV_ADD | EV_CLEAR
    }
}

fn open_slot(kq: &Kqueue, sh: &Shared) -> Slot {
    let (a, b) = stream_pair();
    put(&b, 1);
    let serial = sh.open(id(&a));
    ch_ok(kq, &[rd(id(&a), flags_for(serial), serial)]);
    Slot { a, b, serial }
}

/// One thread closes registered sockets (without EV_DELETE) and registers new ones, which
/// usually get the same numbers back, while two threads loop in kevent(). No panic, no
/// error, no record of a closed registration or of another number; once everything is
/// closed, nothing is reported. `tell`: the close goes through fdclose first.
fn close_while_scanning(p: Personality, tell: bool) {
    let kq = Arc::new(kq(p));
    let sh = Arc::new(Shared::default());
    let stop = Arc::new(AtomicBool::new(false));
    let guard = StopOnDrop(stop.clone());
    let mut slots: Vec<Option<Slot>> = (0..SLOTS).map(|_| Some(open_slot(&kq, &sh))).collect();
    let threads = scanners(&kq, &sh, &stop);
    let deadline = Instant::now() + RUN;
    let mut closes = 0;
    while closes < MIN_OPS || Instant::now() < deadline {
        for slot in slots.iter_mut() {
            let Slot { a, b, serial } = slot.take().unwrap();
            if tell {
                fdclose_and_close(a);
            } else {
                drop(a);
            }
            sh.end(serial);
            drop(b);
            *slot = Some(open_slot(&kq, &sh));
            closes += 1;
        }
    }
    sh.wait_for_a_record();
    drop(guard);
    let seen: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(closes > 100, "only {closes} closes");
    assert!(seen > 0, "the scanners saw nothing");
    for Slot { a, b: _, serial } in slots.into_iter().flatten() {
        if tell {
            fdclose_and_close(a);
        } else {
            drop(a);
        }
        sh.end(serial);
    }
    expect_no_events(&kq);
}

/// Close while scanning, the library told of each close (fdclose first).
fn race_close_while_scanning_fdclose(p: Personality) {
    close_while_scanning(p, true);
}

/// Close while scanning, plain close(): the library is not told.
fn race_close_while_scanning_plain(p: Personality) {
    close_while_scanning(p, false);
}

/// One thread deletes knotes (EV_DELETE, which must succeed: level and EV_CLEAR knotes
/// never go away by themselves) and adds them again with a new serial, while two threads
/// deliver their always-ready records. No record of a deleted registration is returned by a
/// kevent() that began after the delete; at the end, deleting everything leaves nothing.
fn race_delete_while_delivering(p: Personality) {
    let kq = Arc::new(kq(p));
    let sh = Arc::new(Shared::default());
    let stop = Arc::new(AtomicBool::new(false));
    let guard = StopOnDrop(stop.clone());
    let mut slots: Vec<Slot> = (0..SLOTS).map(|_| open_slot(&kq, &sh)).collect();
    let threads = scanners(&kq, &sh, &stop);
    let deadline = Instant::now() + RUN;
    let mut deletes = 0;
    while deletes < MIN_OPS || Instant::now() < deadline {
        for slot in slots.iter_mut() {
            let ai = id(&slot.a);
            ch_ok(&kq, &[rd(ai, EV_DELETE, 0)]);
            sh.end(slot.serial);
            slot.serial = sh.open(ai);
            ch_ok(&kq, &[rd(ai, flags_for(slot.serial), slot.serial)]);
            deletes += 1;
        }
    }
    sh.wait_for_a_record();
    drop(guard);
    let seen: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(deletes > 100, "only {deletes} deletes");
    assert!(seen > 0, "the scanners saw nothing");
    for slot in &slots {
        ch_ok(&kq, &[rd(id(&slot.a), EV_DELETE, 0)]);
        sh.end(slot.serial);
    }
    expect_no_events(&kq);
}

/// Connections in the accept/close loop.
const CONNECTIONS: u64 = 1000;
/// Client threads.
const CLIENTS: u64 = 2;
/// How many connections the clients may be ahead of the server: a full accept queue drops
/// SYNs, and the client's retransmission would take a second.
const WINDOW: u64 = 32;

/// The nginx/libevent pattern over loopback TCP: client threads make CONNECTIONS
/// connections, each sending its index (8 bytes) and closing. The server (this thread)
/// accepts every connection that the listener's READ record announces, registers READ with
/// a fresh serial as udata, reads the 8 bytes when its record comes, and closes the socket
/// at once WITHOUT EV_DELETE (`tell`: through fdclose), so accept() hands the same numbers
/// out again. Every record's udata must be the registration live on that number, and each
/// connection's data is seen exactly once.
fn accept_close_reuse(p: Personality, tell: bool) {
    let kq = kq(p);
    let listener = tcp_listener();
    let addr = listener.local_addr().unwrap();
    let li = id(&listener);
    ch_ok(&kq, &[rd(li, EV_ADD, 0)]);
    let stop = Arc::new(AtomicBool::new(false));
    let guard = StopOnDrop(stop.clone());
    let served = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (stop, served) = (stop.clone(), served.clone());
            thread::spawn(move || -> std::io::Result<()> {
                let mut i = c;
                while i < CONNECTIONS && !stop.load(Ordering::SeqCst) {
                    if i >= served.load(Ordering::SeqCst) + WINDOW {
                        thread::sleep(Duration::from_micros(50));
                        continue;
                    }
                    let s = TcpStream::connect(addr)?;
                    put_bytes(&s, &i.to_le_bytes());
                    drop(s);
                    i += CLIENTS;
                }
                Ok(())
            })
        })
        .collect();

    struct Conn {
        stream: TcpStream,
        serial: usize,
        buf: Vec<u8>,
    }
    let mut live: HashMap<usize, Conn> = HashMap::new();
    let mut closed_numbers: HashSet<usize> = HashSet::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut next_serial = 1;
    let mut reused = 0;
    let mut evs = [Kevent::default(); 32];
    let deadline = Instant::now() + Duration::from_secs(60);
    while (seen.len() as u64) < CONNECTIONS {
        assert!(
            Instant::now() < deadline,
            "only {} of {CONNECTIONS} connections seen in 60 s ({} live)",
            seen.len(),
            live.len()
        );
        let n = kq
            .kevent(&[], &mut evs, Some(Duration::from_millis(100)))
            .expect("kevent (collect)");
        for ev in &evs[..n] {
            assert_eq!(ev.filter, EVFILT_READ, "{ev:?}");
            if udata(ev) == 0 {
                assert_eq!(ev.ident, li, "{ev:?}");
                loop {
                    let stream = match listener.accept() {
                        Ok((s, _)) => s,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("accept: {e}"),
                    };
                    stream.set_nonblocking(true).unwrap();
                    let fd = id(&stream);
                    assert!(!live.contains_key(&fd), "accept returned a live number");
                    if closed_numbers.contains(&fd) {
                        reused += 1;
                    }
                    let serial = next_serial;
                    next_serial += 1;
                    ch_ok(&kq, &[rd(fd, EV_ADD, serial)]);
                    live.insert(
                        fd,
                        Conn {
                            stream,
                            serial,
                            buf: Vec::new(),
                        },
                    );
                }
                continue;
            }
            let Some(conn) = live.get_mut(&ev.ident) else {
                panic!(
                    "record for descriptor {}, which is closed: {ev:?}",
                    ev.ident
                );
            };
            assert_eq!(
                udata(ev),
                conn.serial,
                "record with another registration's udata: {ev:?}"
            );
            let mut chunk = [0u8; 64];
            let eof = loop {
                match conn.stream.read(&mut chunk) {
                    Ok(0) => break true,
                    Ok(k) => conn.buf.extend_from_slice(&chunk[..k]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
                    Err(e) => panic!("read: {e}"),
                }
            };
            if conn.buf.len() >= 8 {
                assert_eq!(conn.buf.len(), 8, "a client sends 8 bytes");
                let idx = u64::from_le_bytes(conn.buf[..8].try_into().unwrap());
                assert!(idx < CONNECTIONS, "bad index {idx}");
                assert!(seen.insert(idx), "connection {idx} seen twice");
                served.fetch_add(1, Ordering::SeqCst);
                let conn = live.remove(&ev.ident).unwrap();
                // Closed without EV_DELETE: the number is free for the next accept().
                if tell {
                    fdclose_and_close(OwnedFd::from(conn.stream));
                } else {
                    drop(conn.stream);
                }
                closed_numbers.insert(ev.ident);
            } else {
                assert!(!eof, "connection closed before its 8 bytes: {ev:?}");
            }
        }
    }
    drop(guard);
    for c in clients {
        c.join().unwrap().expect("client");
    }
    assert!(live.is_empty(), "{} connections left", live.len());
    assert!(reused > 0, "accept() never reused a closed number");
    eprintln!("{reused} of {CONNECTIONS} connections got a reused number");
    // Only the listener is left, and nobody connects any more.
    expect_no_events(&kq);
    assert_eq!(listener.as_raw_fd() as usize, li);
}

/// The accept/close loop with plain close(): the library is not told.
fn race_accept_close_reuse_plain(p: Personality) {
    accept_close_reuse(p, false);
}

/// The accept/close loop with fdclose before each close.
fn race_accept_close_reuse_fdclose(p: Personality) {
    accept_close_reuse(p, true);
}

both!(
    race_close_while_scanning_fdclose,
    race_close_while_scanning_plain,
    race_delete_while_delivering,
    race_accept_close_reuse_plain,
    race_accept_close_reuse_fdclose,
);
