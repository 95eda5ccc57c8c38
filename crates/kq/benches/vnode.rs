//! EVFILT_VNODE against raw inotify, in the same run.
//!
//! - `vnode_write`: a file is written 10,000 times (one byte, at offset 0, through a
//!   descriptor of its own) and every write is collected before the next. kq: a vnode knote
//!   (EV_CLEAR, NOTE_WRITE) on the file, kevent() with a zero timeout after each write
//!   (one record, NOTE_WRITE). Raw: an inotify instance watching the file for IN_MODIFY,
//!   read() of the event after each write. `kq_append` and `inotify_append` do the same
//!   with writes that grow the file (the knote then reports NOTE_WRITE|NOTE_EXTEND, which
//!   the raw loop learns with an fstat, as a program needing it must). `inotify_fstat` is the
//!   overwriting raw loop with that fstat too: the like-for-like of `kq`, which must look at
//!   the size after every write to tell NOTE_EXTEND (reported with NOTE_WRITE, as the
//!   kernels do) from none.
//! - `empty_latency`: EVFILT_EMPTY on a loopback TCP connection, EV_CLEAR: write one byte,
//!   then wait in kevent() until the knote fires (the byte acknowledged; Linux gives no
//!   event for that, the library re-checks on a timer). Raw: write, then poll SIOCOUTQ in a
//!   busy loop until it is 0 (the lower bound). The receiver reads in a thread of its own
//!   and acknowledges at once (TCP_QUICKACK; otherwise Linux delays the acknowledgement of
//!   such a trickle by up to 40 ms). Reports the latency, not a speed target.
//!
//! Run: `cargo bench -p kq --bench vnode`; the ratios are kq over raw of the medians.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kq::{Kevent, Kqueue, EVFILT_EMPTY, EVFILT_VNODE, EV_ADD, EV_CLEAR, NOTE_WRITE};
use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::null_mut;
use std::time::{Duration, Instant};

const WRITES: u64 = 10_000;

fn temp_file(tag: &str) -> (std::fs::File, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("kq-bench-{}-{tag}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("temp file");
    (f, path)
}

fn pwrite(fd: &impl AsRawFd, off: i64) {
    // SAFETY: one byte from a static buffer.
    let n = unsafe { libc::pwrite(fd.as_raw_fd(), b"x".as_ptr().cast(), 1, off) };
    assert_eq!(n, 1);
}

/// A kqueue with a vnode knote (EV_CLEAR, NOTE_WRITE) on `file`.
fn vnode_kqueue(file: &std::fs::File) -> Kqueue {
    let kq = Kqueue::new().expect("kqueue");
    let add = Kevent::new(
        file.as_raw_fd() as usize,
        EVFILT_VNODE,
        EV_ADD | EV_CLEAR,
        NOTE_WRITE,
        0,
        null_mut(),
    );
    kq.kevent(&[add], &mut [], None).expect("EV_ADD");
    kq
}

/// An inotify instance (non-blocking) watching `path` for IN_MODIFY.
fn inotify_on(path: &std::path::Path) -> OwnedFd {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: plain system calls; the descriptor is checked, then owned.
    unsafe {
        let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
        assert!(fd >= 0);
        assert!(libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_MODIFY) >= 0);
        OwnedFd::from_raw_fd(fd)
    }
}

fn read_event(ino: &OwnedFd) {
    let mut buf = [0u8; 256];
    // SAFETY: reads into a live buffer of its length.
    let n = unsafe { libc::read(ino.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 16, "no inotify event");
}

fn fstat_size(fd: &impl AsRawFd) -> i64 {
    // SAFETY: fstat fills a zeroed stat.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        assert_eq!(libc::fstat(fd.as_raw_fd(), &mut st), 0);
        st.st_size
    }
}

fn vnode_write(c: &mut Criterion) {
    let mut g = c.benchmark_group("vnode_write");
    g.throughput(Throughput::Elements(WRITES));
    let (watched, path) = temp_file("vnode");
    let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();

    let kq = vnode_kqueue(&watched);
    let mut ev = [Kevent::default(); 1];
    g.bench_function("kq", |b| {
        b.iter(|| {
            for _ in 0..WRITES {
                pwrite(&writer, 0);
                let n = kq.kevent(&[], &mut ev, Some(Duration::ZERO)).unwrap();
                assert_eq!(n, 1);
                black_box(ev[0].fflags);
            }
        })
    });
    g.bench_function("kq_append", |b| {
        b.iter(|| {
            std::fs::File::set_len(&writer, 0).unwrap();
            let _ = kq.kevent(&[], &mut ev, Some(Duration::ZERO));
            for i in 0..WRITES {
                pwrite(&writer, i as i64);
                let n = kq.kevent(&[], &mut ev, Some(Duration::ZERO)).unwrap();
                assert_eq!(n, 1);
                black_box(ev[0].fflags);
            }
        })
    });
    drop(kq);

    let ino = inotify_on(&path);
    g.bench_function("inotify", |b| {
        b.iter(|| {
            for _ in 0..WRITES {
                pwrite(&writer, 0);
                read_event(&ino);
            }
        })
    });
    g.bench_function("inotify_fstat", |b| {
        b.iter(|| {
            let mut size = 0;
            for _ in 0..WRITES {
                pwrite(&writer, 0);
                read_event(&ino);
                let now = fstat_size(&watched);
                black_box(now > size);
                size = now;
            }
        })
    });
    g.bench_function("inotify_append", |b| {
        b.iter(|| {
            std::fs::File::set_len(&writer, 0).unwrap();
            read_event(&ino);
            let mut size = 0;
            for i in 0..WRITES {
                pwrite(&writer, i as i64);
                read_event(&ino);
                let now = fstat_size(&watched);
                black_box(now > size);
                size = now;
            }
        })
    });
    g.finish();
    let _ = std::fs::remove_file(&path);
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    c.set_nodelay(true).unwrap();
    (c, s)
}

fn outq(fd: &impl AsRawFd) -> i32 {
    let mut v: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut v) };
    v
}

/// TCP_QUICKACK on the receiver: its next acknowledgements go out at once rather than
/// delayed (up to 40 ms on Linux), so that the latency measured is the library's.
fn quickack(fd: &impl AsRawFd) {
    let one: libc::c_int = 1;
    // SAFETY: `one` is a valid int of the size given.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

fn empty_latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("empty_latency");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let (w, r) = tcp_pair();
    // The receiver reads in a thread of its own and acknowledges at once.
    let rx = std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        while std::io::Read::read(&mut &r, &mut sink).is_ok_and(|n| n > 0) {
            quickack(&r);
        }
    });
    let kq = Kqueue::new().unwrap();
    let add = Kevent::new(
        w.as_raw_fd() as usize,
        EVFILT_EMPTY,
        EV_ADD | EV_CLEAR,
        0,
        0,
        null_mut(),
    );
    kq.kevent(&[add], &mut [], None).unwrap();
    let mut ev = [Kevent::default(); 1];
    assert_eq!(kq.kevent(&[], &mut ev, Some(Duration::ZERO)).unwrap(), 1);
    g.bench_function("kq", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                std::io::Write::write_all(&mut &w, b"x").unwrap();
                let n = kq
                    .kevent(&[], &mut ev, Some(Duration::from_secs(5)))
                    .unwrap();
                total += start.elapsed();
                assert_eq!(n, 1);
            }
            total
        })
    });
    g.bench_function("siocoutq_spin", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                std::io::Write::write_all(&mut &w, b"x").unwrap();
                while outq(&w) != 0 {
                    std::hint::spin_loop();
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
    let _ = w.shutdown(std::net::Shutdown::Both);
    let _ = rx.join();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
}

criterion_group! {
    name = benches;
    config = config();
    targets = vnode_write, empty_latency
}
criterion_main!(benches);
