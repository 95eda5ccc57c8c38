//! A vnode knote re-armed for every event, against raw inotify, in the same run.
//!
//! `vnode_oneshot`: a file is written 1,000 times (one byte at offset 0) and each write is
//! collected before the next. kq: the kqueue's only knote is an EV_ONESHOT vnode knote
//! (NOTE_WRITE), added again after each delivery (the delivery drops it, and with it the
//! kqueue's last inotify watch). Raw: one inotify instance, a watch added with IN_ONESHOT
//! for each write (the kernel removes it after the event), the event and the watch's
//! removal read back. `kq_delete` is the kq loop with a plain knote deleted with EV_DELETE
//! after each event instead.
//!
//! Run: `cargo bench -p kq --bench vnode_rearm`; the ratio is kq over raw of the medians.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kq::{Kevent, Kqueue, EVFILT_VNODE, EV_ADD, EV_DELETE, EV_ONESHOT, NOTE_WRITE};
use std::hint::black_box;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::ptr::null_mut;
use std::time::Duration;

const WRITES: u64 = 1_000;

fn pwrite(fd: &impl AsRawFd) {
    // SAFETY: one byte from a static buffer.
    let n = unsafe { libc::pwrite(fd.as_raw_fd(), b"x".as_ptr().cast(), 1, 0) };
    assert_eq!(n, 1);
}

fn vnode(file: &std::fs::File, flags: u16) -> Kevent {
    Kevent::new(
        file.as_raw_fd() as usize,
        EVFILT_VNODE,
        flags,
        NOTE_WRITE,
        0,
        null_mut(),
    )
}

fn vnode_oneshot(c: &mut Criterion) {
    let mut g = c.benchmark_group("vnode_oneshot");
    g.throughput(Throughput::Elements(WRITES));
    let path = std::env::temp_dir().join(format!("kq-bench-{}-rearm", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("temp file");

    let kq = Kqueue::new().expect("kqueue");
    let mut ev = [Kevent::default(); 1];
    g.bench_function("kq", |b| {
        b.iter(|| {
            for _ in 0..WRITES {
                kq.kevent(&[vnode(&file, EV_ADD | EV_ONESHOT)], &mut [], None)
                    .unwrap();
                pwrite(&file);
                let n = kq.kevent(&[], &mut ev, Some(Duration::ZERO)).unwrap();
                assert_eq!(n, 1);
                black_box(ev[0].fflags);
            }
        })
    });
    g.bench_function("kq_delete", |b| {
        b.iter(|| {
            for _ in 0..WRITES {
                kq.kevent(&[vnode(&file, EV_ADD)], &mut [], None).unwrap();
                pwrite(&file);
                let n = kq.kevent(&[], &mut ev, Some(Duration::ZERO)).unwrap();
                assert_eq!(n, 1);
                kq.kevent(&[vnode(&file, EV_DELETE)], &mut [], None)
                    .unwrap();
            }
        })
    });
    drop(kq);

    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: plain system call; the descriptor is checked, then owned.
    let ino = unsafe {
        let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
        assert!(fd >= 0);
        OwnedFd::from_raw_fd(fd)
    };
    let mut buf = [0u8; 256];
    g.bench_function("inotify_oneshot", |b| {
        b.iter(|| {
            for _ in 0..WRITES {
                // SAFETY: a live NUL-terminated path.
                let wd = unsafe {
                    libc::inotify_add_watch(
                        ino.as_raw_fd(),
                        c_path.as_ptr(),
                        libc::IN_MODIFY | libc::IN_ONESHOT,
                    )
                };
                assert!(wd >= 0);
                pwrite(&file);
                // The event and IN_IGNORED, queued together.
                // SAFETY: reads into a live buffer of its length.
                let n = unsafe { libc::read(ino.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                assert!(n >= 32, "no inotify event");
                black_box(buf[4]);
            }
        })
    });
    g.finish();
    drop(file);
    let _ = std::fs::remove_file(&path);
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
    targets = vnode_oneshot
}
criterion_main!(benches);
