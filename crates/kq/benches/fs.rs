//! EVFILT_FS against the raw Linux mechanism, in the same run.
//!
//! - `fs_change`: a tmpfs mounted, then unmounted, each seen by a waiter. kq: an EVFILT_FS
//!   knote, kevent() waits for VQ_MOUNT after the mount and for VQ_UNMOUNT after the
//!   unmount. Raw: the mount table (`/proc/self/mountinfo`) in an epoll, epoll_wait, then
//!   the table read again and its mount ids compared with the last set, which is what
//!   telling a mount from an unmount takes by hand. Both include the mount(2) and
//!   umount2(2) calls, which are the larger part.
//! - `fs_register`: EV_ADD then EV_DELETE of an EVFILT_FS knote (the kqueue opens the
//!   table, registers it in its epoll, reads it, and closes it again). Raw: open the table,
//!   epoll_ctl(ADD), read it and take its ids, close.
//!
//! Mounting needs a mount namespace of our own: `main` unshares one before criterion starts
//! (CAP_SYS_ADMIN; without it `fs_change` is skipped, saying so) and makes its mounts
//! private, so nothing is seen outside.
//!
//! Run: `cargo bench -p kq --bench fs`.

use criterion::Criterion;
use kq::{Kevent, Kqueue, EVFILT_FS, EV_ADD, EV_DELETE, VQ_MOUNT, VQ_UNMOUNT};
use rustix::event::epoll;
use rustix::fd::{AsFd, OwnedFd};
use std::ffi::CString;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};
use std::time::Duration;

fn fs(flags: u16) -> Kevent {
    Kevent::new(0, EVFILT_FS, flags, 0, 0, null_mut())
}

/// A private mount namespace for this (still single-threaded) process.
fn private_namespace() -> Result<(), String> {
    // SAFETY: plain system calls with constant or null arguments.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(format!(
                "unshare(CLONE_NEWNS): {}",
                std::io::Error::last_os_error()
            ));
        }
        if libc::mount(
            null(),
            c"/".as_ptr(),
            null(),
            libc::MS_REC | libc::MS_PRIVATE,
            null(),
        ) != 0
        {
            return Err(format!(
                "making / private: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

fn mount_tmpfs(dir: &CString) {
    // SAFETY: NUL-terminated strings alive for the call, null data.
    let r = unsafe {
        libc::mount(
            c"kq-bench".as_ptr(),
            dir.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            null(),
        )
    };
    assert_eq!(r, 0, "mount: {}", std::io::Error::last_os_error());
}

fn unmount(dir: &CString) {
    // SAFETY: a NUL-terminated string alive for the call.
    let r = unsafe { libc::umount2(dir.as_ptr(), 0) };
    assert_eq!(r, 0, "umount: {}", std::io::Error::last_os_error());
}

fn open_table() -> OwnedFd {
    use rustix::fs::{open, Mode, OFlags};
    open(
        "/proc/self/mountinfo",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open mountinfo")
}

/// The mount ids of the table, sorted: read from the start, first field of each line.
fn table_ids(fd: &OwnedFd, buf: &mut Vec<u8>) -> Vec<u32> {
    buf.clear();
    let mut len = 0;
    loop {
        buf.resize(len + 16384, 0);
        let n = rustix::io::pread(fd, &mut buf[len..], len as u64).expect("read mountinfo");
        if n == 0 {
            break;
        }
        len += n;
    }
    buf.truncate(len);
    let mut ids: Vec<u32> = buf
        .split(|&b| b == b'\n')
        .filter_map(|l| {
            std::str::from_utf8(l.split(|&b| b == b' ').next()?)
                .ok()?
                .parse()
                .ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// The raw waiter: the table in an epoll; a wait, a read, a comparison.
struct Raw {
    table: OwnedFd,
    ep: OwnedFd,
    ids: Vec<u32>,
    buf: Vec<u8>,
}

impl Raw {
    fn new() -> Raw {
        let table = open_table();
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
        epoll::add(
            &ep,
            &table,
            epoll::EventData::new_u64(1),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )
        .expect("epoll_ctl");
        let mut buf = Vec::new();
        let ids = table_ids(&table, &mut buf);
        let mut raw = Raw {
            table,
            ep,
            ids,
            buf,
        };
        // The registration is ready at once.
        raw.wait_change();
        raw
    }

    /// Waits for a change; returns what it was (VQ_MOUNT / VQ_UNMOUNT bits).
    fn wait_change(&mut self) -> u32 {
        let mut events = [epoll::Event {
            flags: epoll::EventFlags::empty(),
            data: epoll::EventData::new_u64(0),
        }; 4];
        let limit = rustix::time::Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        };
        let n = epoll::wait(&self.ep, &mut events, Some(&limit)).expect("epoll_wait");
        assert!(n > 0, "no change of the table");
        let ids = table_ids(&self.table, &mut self.buf);
        let mounted = ids.iter().any(|i| self.ids.binary_search(i).is_err());
        let gone = self.ids.iter().any(|i| ids.binary_search(i).is_err());
        self.ids = ids;
        (u32::from(mounted) * VQ_MOUNT) | (u32::from(gone) * VQ_UNMOUNT)
    }
}

fn wait_fs(kq: &Kqueue) -> u32 {
    let mut ev = [Kevent::default(); 2];
    let n = kq
        .kevent(&[], &mut ev, Some(Duration::from_secs(5)))
        .expect("kevent");
    assert_eq!(n, 1, "no EVFILT_FS record");
    ev[0].fflags
}

fn fs_change(c: &mut Criterion, dir: &Path) {
    let path = CString::new(dir.as_os_str().as_encoded_bytes()).expect("path");
    let mut g = c.benchmark_group("fs_change");
    g.bench_function("kq", |b| {
        let kq = Kqueue::new().expect("kqueue");
        kq.kevent(&[fs(EV_ADD)], &mut [], None).expect("EV_ADD");
        b.iter(|| {
            mount_tmpfs(&path);
            assert_eq!(wait_fs(&kq), VQ_MOUNT);
            unmount(&path);
            assert_eq!(wait_fs(&kq), VQ_UNMOUNT);
        });
    });
    g.bench_function("mountinfo_epoll", |b| {
        let mut raw = Raw::new();
        b.iter(|| {
            mount_tmpfs(&path);
            assert_eq!(raw.wait_change(), VQ_MOUNT);
            unmount(&path);
            assert_eq!(raw.wait_change(), VQ_UNMOUNT);
        });
    });
    g.finish();
}

fn fs_register(c: &mut Criterion) {
    let mut g = c.benchmark_group("fs_register");
    g.bench_function("kq", |b| {
        let kq = Kqueue::new().expect("kqueue");
        b.iter(|| {
            kq.kevent(&[fs(EV_ADD)], &mut [], None).expect("EV_ADD");
            kq.kevent(&[fs(EV_DELETE)], &mut [], None)
                .expect("EV_DELETE");
        });
    });
    g.bench_function("mountinfo_epoll", |b| {
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
        let mut buf = Vec::new();
        b.iter(|| {
            let table = open_table();
            epoll::add(
                &ep,
                table.as_fd(),
                epoll::EventData::new_u64(1),
                epoll::EventFlags::IN | epoll::EventFlags::ET,
            )
            .expect("epoll_ctl");
            black_box(table_ids(&table, &mut buf));
            drop(table);
        });
    });
    g.finish();
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn main() {
    let ns = private_namespace();
    let mut c = Criterion::default().configure_from_args();
    fs_register(&mut c);
    match ns {
        Ok(()) => {
            let dir = Dir(std::env::temp_dir().join(format!("kq-bench-fs-{}", std::process::id())));
            std::fs::create_dir_all(&dir.0).expect("mount point");
            fs_change(&mut c, &dir.0);
        }
        Err(e) => eprintln!(
            "fs_change skipped: mounting needs CAP_SYS_ADMIN (run as root) to unshare a \
             mount namespace: {e}"
        ),
    }
    c.final_summary();
}
