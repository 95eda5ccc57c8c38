//! EVFILT_FS: the cases F1-F16 of docs/semantics.md §7 (sections, §, cited here are that
//! document's), each in both personalities.
//!
//! Mounting needs a mount namespace of our own, so that nothing is seen by (or leaks to)
//! the rest of the system: each case runs in a child made by fork() ([`in_namespace`]),
//! which first unshares its mount namespace (`unshare(CLONE_NEWNS)`), makes every mount in
//! it private (`mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)`), then mounts and
//! unmounts tmpfs instances on directories the parent made for it. That takes
//! CAP_SYS_ADMIN: without it the tests fail, saying so. The child reports through its exit
//! status and a pipe.

mod util;

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use kq::*;
use util::*;

/// Exit status of a child that could not make its mount namespace.
const NO_PRIVILEGE: i32 = 77;

/// The message of a panic payload.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked".to_string()
    }
}

/// A private mount namespace for the calling (single-threaded) process.
fn private_namespace() -> Result<(), String> {
    // SAFETY: plain system calls with constant or null arguments.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(format!(
                "unshare(CLONE_NEWNS): {}",
                io::Error::last_os_error()
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
                "mount(NULL, \"/\", NULL, MS_REC|MS_PRIVATE, NULL): {}",
                io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Directories for a case to mount on: removed when dropped (by the parent, after the
/// child and its namespace, with its mounts, are gone).
struct Dirs(PathBuf);

impl Dirs {
    fn new() -> Dirs {
        static N: AtomicUsize = AtomicUsize::new(0);
        let base = std::env::temp_dir().join(format!(
            "kq-fs-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        for sub in ["a", "b"] {
            std::fs::create_dir_all(base.join(sub)).expect("make the mount points");
        }
        Dirs(base)
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `case` (with its two mount points) in a child made by fork() that has a private
/// mount namespace; panics with the child's message if it fails. `mountinfo_only`: the
/// child first makes the library look at the mount table as on kernels without
/// listmount(2).
fn in_namespace(mountinfo_only: bool, case: impl FnOnce(&Path, &Path)) {
    let dirs = Dirs::new();
    let (a, b) = (dirs.0.join("a"), dirs.0.join("b"));
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two ints.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
    let (rd, wr) = (fds[0], fds[1]);
    // SAFETY: the child runs the case and `_exit`s, never returning into the harness; it
    // uses the library under test and the system, no lock of the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: close and alarm only affect this child.
        unsafe {
            libc::close(rd);
            libc::alarm(20);
        }
        let (code, msg) = match private_namespace() {
            Err(m) => (NO_PRIVILEGE, Some(m)),
            Ok(()) => {
                if mountinfo_only {
                    kq::force_fallbacks();
                }
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&a, &b))) {
                    Ok(()) => (0, None),
                    Err(p) => (1, Some(panic_message(&*p))),
                }
            }
        };
        if let Some(m) = &msg {
            let b = &m.as_bytes()[..m.len().min(4000)];
            // SAFETY: `b` is valid for reads of its length; `wr` is our pipe.
            unsafe { libc::write(wr, b.as_ptr().cast(), b.len()) };
        }
        // SAFETY: _exit skips the destructors and atexit handlers of the parent's state.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: our copy of the write end, not used again.
    unsafe { libc::close(wr) };
    let deadline = Instant::now() + Duration::from_secs(70);
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child; `status` is a valid int.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid: {}", io::Error::last_os_error());
        if r == pid {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            break;
        }
        thread::sleep(Duration::from_millis(2));
    }
    let mut buf = vec![0u8; 4096];
    // SAFETY: `rd` is our pipe's read end, `buf` is writable for its length. Children
    // forked meanwhile by other tests may hold copies of the write end: no wait for EOF.
    let n = unsafe {
        libc::fcntl(rd, libc::F_SETFL, libc::O_NONBLOCK);
        let n = libc::read(rd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(rd);
        n
    };
    let msg = String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned();
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == NO_PRIVILEGE {
        panic!(
            "the EVFILT_FS tests need CAP_SYS_ADMIN (run them as root): each case unshares \
             its mount namespace and mounts tmpfs in it, and that failed: {msg}"
        );
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the case failed in its child (wait status {status:#x}): {msg}"
    );
}

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("a path without NUL")
}

/// Mounts a new tmpfs on `dir`.
#[track_caller]
fn mount_tmpfs(dir: &Path) {
    let path = c_path(dir);
    // SAFETY: NUL-terminated strings alive for the call, null data.
    let r = unsafe {
        libc::mount(
            c"kq-test".as_ptr(),
            path.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            null(),
        )
    };
    assert_eq!(
        r,
        0,
        "mount tmpfs on {dir:?}: {}",
        io::Error::last_os_error()
    );
}

/// Remounts `dir` read-only.
#[track_caller]
fn remount_ro(dir: &Path) {
    let path = c_path(dir);
    // SAFETY: as in `mount_tmpfs`.
    let r = unsafe {
        libc::mount(
            null(),
            path.as_ptr(),
            null(),
            libc::MS_REMOUNT | libc::MS_RDONLY,
            null(),
        )
    };
    assert_eq!(r, 0, "remount {dir:?}: {}", io::Error::last_os_error());
}

/// Unmounts `dir`.
#[track_caller]
fn unmount(dir: &Path) {
    let path = c_path(dir);
    // SAFETY: a NUL-terminated string alive for the call.
    let r = unsafe { libc::umount2(path.as_ptr(), 0) };
    assert_eq!(r, 0, "umount {dir:?}: {}", io::Error::last_os_error());
}

/// The mount id (mountinfo's first field) of the mount on `dir`.
fn mount_id(dir: &Path) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = dir.to_str()?;
    table
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(want))
        .and_then(|l| l.split(' ').next()?.parse().ok())
}

/// An EVFILT_FS change, ident 0.
fn fs(flags: u16, fflags: u32, data: isize) -> Kevent {
    Kevent::new(0, EVFILT_FS, flags, fflags, data, null_mut())
}

/// Waits (up to 5 s) for exactly one EVFILT_FS record and checks it: ident, the flags the
/// knote made with `flags` reports (EV_CLEAR added at attach), `fflags`, data 0.
#[track_caller]
fn expect_fs(kq: &Kqueue, p: Personality, ident: usize, flags: u16, fflags: u32) {
    let evs = get(kq, 8, Some(Duration::from_secs(5)));
    assert_eq!(evs.len(), 1, "expected one EVFILT_FS record, got {evs:?}");
    let ev = evs[0];
    assert_eq!(
        (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data),
        (
            ident,
            EVFILT_FS,
            delivered_flags(p, flags) | EV_CLEAR,
            fflags,
            0
        ),
        "record {ev:?}"
    );
}

/// Open descriptors of this process, and how many of them are a mount table.
fn open_fds() -> (usize, usize) {
    let mut all = 0;
    let mut tables = 0;
    for e in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
        let Ok(e) = e else { continue };
        if let Ok(target) = std::fs::read_link(e.path()) {
            all += 1;
            if target.to_string_lossy().ends_with("/mountinfo") {
                tables += 1;
            }
        }
    }
    // One of them was the directory's own descriptor.
    (all - 1, tables)
}

/// F1 mount_unmount (derived): nothing at registration; a tmpfs mounted gives one record,
/// ident 0, fflags VQ_MOUNT, data 0, EV_CLEAR added to the stored flags; nothing more
/// until the unmount, which gives VQ_UNMOUNT.
fn f1_mount_unmount_with(p: Personality, mountinfo_only: bool) {
    in_namespace(mountinfo_only, |a, _| {
        let kq = kq(p);
        ch_ok(&kq, &[fs(EV_ADD, 0, 0)]);
        expect_no_events(&kq);
        mount_tmpfs(a);
        expect_fs(&kq, p, 0, EV_ADD, VQ_MOUNT);
        expect_no_events(&kq);
        unmount(a);
        expect_fs(&kq, p, 0, EV_ADD, VQ_UNMOUNT);
        expect_no_events(&kq);
    });
}

fn f1_mount_unmount(p: Personality) {
    f1_mount_unmount_with(p, false);
}

/// F1 on the path of kernels without listmount(2).
fn f1_mount_unmount_mountinfo(p: Personality) {
    f1_mount_unmount_with(p, true);
}

/// F2 only_future_events (derived): a mount made before the EV_ADD is never reported, and
/// the registration does not make the kqueue descriptor readable.
fn f2_only_future_events(p: Personality) {
    in_namespace(false, |a, _| {
        let kq = kq(p);
        mount_tmpfs(a);
        ch_ok(&kq, &[fs(EV_ADD, 0, 0)]);
        assert_eq!(poll_fd(&kq, 0), 0, "readable after the registration");
        expect_no_events(&kq);
        assert_eq!(poll_fd(&kq, 0), 0);
    });
}

/// F3 two_kqueues (derived): two kqueues with an EVFILT_FS knote each both see a mount
/// (and each its own copy: collecting from one leaves the other's).
fn f3_two_kqueues(p: Personality) {
    in_namespace(false, |a, _| {
        let (k1, k2) = (kq(p), kq(p));
        ch_ok(&k1, &[fs(EV_ADD, 0, 0)]);
        ch_ok(&k2, &[fs(EV_ADD | EV_CLEAR, 0, 0)]);
        mount_tmpfs(a);
        expect_fs(&k1, p, 0, EV_ADD, VQ_MOUNT);
        expect_fs(&k2, p, 0, EV_ADD | EV_CLEAR, VQ_MOUNT);
        unmount(a);
        expect_fs(&k2, p, 0, EV_ADD | EV_CLEAR, VQ_UNMOUNT);
        expect_fs(&k1, p, 0, EV_ADD, VQ_UNMOUNT);
    });
}

/// F4 delete (derived): after EV_DELETE a mount gives nothing, and a second EV_DELETE
/// gives ENOENT; a pending event goes with the knote.
fn f4_delete(p: Personality) {
    in_namespace(false, |a, b| {
        let kq = kq(p);
        ch_ok(&kq, &[fs(EV_ADD, 0, 0)]);
        mount_tmpfs(a);
        ch_ok(&kq, &[fs(EV_DELETE, 0, 0)]);
        expect_no_events(&kq);
        mount_tmpfs(b);
        expect_no_events(&kq);
        ch_err(&kq, &[fs(EV_DELETE, 0, 0)], libc::ENOENT);
        // A new knote sees only what comes after it.
        ch_ok(&kq, &[fs(EV_ADD, 0, 0)]);
        expect_no_events(&kq);
        unmount(b);
        expect_fs(&kq, p, 0, EV_ADD, VQ_UNMOUNT);
    });
}

/// F5 table_released (derived): the kqueue opens one mount table for all its EVFILT_FS
/// knotes (the first opens it), and closes it when the last is deleted and when the
/// kqueue is closed.
fn f5_table_released(p: Personality) {
    in_namespace(false, |_, _| {
        let (before, tables) = open_fds();
        assert_eq!(tables, 0);
        let queue = kq(p);
        let (with_kq, _) = open_fds();
        ch_ok(&queue, &[fs(EV_ADD, 0, 0), fs(EV_ADD, 0, 0)]);
        assert_eq!(open_fds(), (with_kq + 1, 1));
        let other = Kevent::new(7, EVFILT_FS, EV_ADD, 0, 0, null_mut());
        ch_ok(&queue, &[other]);
        assert_eq!(open_fds(), (with_kq + 1, 1), "one table for every knote");
        ch_ok(&queue, &[fs(EV_DELETE, 0, 0)]);
        assert_eq!(open_fds(), (with_kq + 1, 1), "a knote is left");
        ch_ok(
            &queue,
            &[Kevent::new(7, EVFILT_FS, EV_DELETE, 0, 0, null_mut())],
        );
        assert_eq!(open_fds(), (with_kq, 0), "the last knote went");
        ch_ok(&queue, &[fs(EV_ADD, 0, 0)]);
        assert_eq!(open_fds(), (with_kq + 1, 1));
        drop(queue);
        assert_eq!(open_fds(), (before, 0), "the kqueue was closed");
        // The same through a raw descriptor, closed with close() (told to the library).
        // Handing one out may start the library's background thread, with an epoll of
        // its own: count from after the first.
        let warm = kq(p).into_raw_fd_checked();
        kq::fdclose(warm.0);
        // SAFETY: our descriptor, closed once.
        unsafe { libc::close(warm.0) };
        let (before, _) = open_fds();
        let raw = kq(p).into_raw_fd_checked();
        let found = Kqueue::find(raw.as_fd_ref()).expect("find");
        ch_ok(&found, &[fs(EV_ADD, 0, 0)]);
        drop(found);
        assert_eq!(open_fds().1, 1);
        kq::fdclose(raw.0);
        // SAFETY: our descriptor, closed once.
        unsafe { libc::close(raw.0) };
        assert_eq!(open_fds(), (before, 0), "the raw kqueue was closed");
    });
}

/// A raw kqueue descriptor (test helper).
struct Raw(i32);

impl Raw {
    fn as_fd_ref(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the descriptor is open while `self` is.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.0) }
    }
}

trait IntoRaw {
    fn into_raw_fd_checked(self) -> Raw;
}

impl IntoRaw for Kqueue {
    fn into_raw_fd_checked(self) -> Raw {
        use std::os::fd::IntoRawFd;
        Raw(self
            .try_into_fd()
            .expect("hand out the descriptor")
            .into_raw_fd())
    }
}

/// F6 fork (derived; U35 for EVFILT_FS): the child of a fork cannot use the parent's
/// kqueue (EBADF for every call), and the parent's kqueue goes on seeing mounts.
fn f6_fork(p: Personality) {
    in_namespace(false, |a, _| {
        let kq = kq(p);
        ch_ok(&kq, &[fs(EV_ADD, 0, 0)]);
        // SAFETY: the grandchild only makes kevent calls and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            let mut evs = [Kevent::default(); 2];
            let polled = kq.kevent(&[], &mut evs, Some(Duration::ZERO));
            let added = kq.kevent(&[fs(EV_ADD, 0, 0)], &mut [], None);
            let ok = [polled.map(drop), added.map(drop)]
                .iter()
                .all(|r| r.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EBADF));
            // SAFETY: ends the grandchild without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the fork's child did not get EBADF from the inherited kqueue ({status:#x})"
        );
        mount_tmpfs(a);
        expect_fs(&kq, p, 0, EV_ADD, VQ_MOUNT);
    });
}

/// F7 accumulate (derived): a mount and an unmount before one collection give one record
/// with VQ_MOUNT|VQ_UNMOUNT; the knote is EV_CLEAR (attach adds it), so nothing follows.
fn f7_accumulate_with(p: Personality, mountinfo_only: bool) {
    in_namespace(mountinfo_only, |a, b| {
        let kq = kq(p);
        mount_tmpfs(a);
        ch_ok(&kq, &[fs(EV_ADD, 0, 0)]);
        mount_tmpfs(b);
        unmount(a);
        expect_fs(&kq, p, 0, EV_ADD, VQ_MOUNT | VQ_UNMOUNT);
        expect_no_events(&kq);
        mount_tmpfs(a);
        mount_tmpfs(a); // over the first: another mount
        expect_fs(&kq, p, 0, EV_ADD, VQ_MOUNT);
    });
}

fn f7_accumulate(p: Personality) {
    f7_accumulate_with(p, false);
}

/// F7 on the path of kernels without listmount(2).
fn f7_accumulate_mountinfo(p: Personality) {
    f7_accumulate_with(p, true);
}

/// F8 interest_mask_ignored (derived; NetBSD's and FreeBSD's filt_fs): a knote asking for
/// VQ_UNMOUNT only, with data 123 and without EV_CLEAR, still records a mount; data is 0;
/// the knote is EV_CLEAR.
fn f8_interest_mask_ignored(p: Personality) {
    in_namespace(false, |a, _| {
        let kq = kq(p);
        ch_ok(&kq, &[fs(EV_ADD, VQ_UNMOUNT, 123)]);
        mount_tmpfs(a);
        expect_fs(&kq, p, 0, EV_ADD, VQ_MOUNT);
        // Not level-triggered: the record is not repeated.
        expect_no_events(&kq);
        // A modification (EV_ADD again, other mask) keeps the knote EV_CLEAR.
        ch_ok(&kq, &[fs(EV_ADD, VQ_MOUNT, 0)]);
        unmount(a);
        expect_fs(&kq, p, 0, EV_ADD, VQ_UNMOUNT);
        expect_no_events(&kq);
    });
}

/// F9 disable_enable (derived): a mount while the knote is disabled is recorded, not
/// delivered; EV_ENABLE delivers it.
fn f9_disable_enable(p: Personality) {
    in_namespace(false, |a, _| {
        let kq = kq(p);
        ch_ok(&kq, &[fs(EV_ADD, 0, 0), fs(EV_DISABLE, 0, 0)]);
        mount_tmpfs(a);
        expect_no_events(&kq);
        ch_ok(&kq, &[fs(EV_ENABLE, 0, 0)]);
        expect_fs(&kq, p, 0, EV_ADD, VQ_MOUNT);
        expect_no_events(&kq);
    });
}

/// F10 oneshot_dispatch (derived): EV_ONESHOT gives one record and the knote is gone;
/// EV_DISPATCH gives one record, then nothing until EV_ENABLE.
fn f10_oneshot_dispatch(p: Personality) {
    in_namespace(false, |a, b| {
        let kq = kq(p);
        ch_ok(&kq, &[fs(EV_ADD | EV_ONESHOT, 0, 0)]);
        mount_tmpfs(a);
        expect_fs(&kq, p, 0, EV_ADD | EV_ONESHOT, VQ_MOUNT);
        ch_err(&kq, &[fs(EV_DELETE, 0, 0)], libc::ENOENT);
        assert_eq!(open_fds().1, 0, "the oneshot's table was closed");

        ch_ok(&kq, &[fs(EV_ADD | EV_DISPATCH, 0, 0)]);
        mount_tmpfs(b);
        expect_fs(&kq, p, 0, EV_ADD | EV_DISPATCH, VQ_MOUNT);
        unmount(b);
        // NetBSD's EV_CLEAR|EV_DISPATCH only clears (§2.3); FreeBSD also disables.
        match p {
            Personality::NetBsd => expect_fs(&kq, p, 0, EV_ADD | EV_DISPATCH, VQ_UNMOUNT),
            _ => {
                expect_no_events(&kq);
                ch_ok(&kq, &[fs(EV_ENABLE, 0, 0)]);
                expect_fs(&kq, p, 0, EV_ADD | EV_DISPATCH, VQ_UNMOUNT);
            }
        }
    });
}

/// F11 descriptor_readable (derived; §3.4): the kqueue descriptor is not readable after
/// the registration, becomes readable when a mount happens with no kevent() call, and is
/// not readable once the record was collected. A kqueue watching it sees it too.
fn f11_descriptor_readable(p: Personality) {
    in_namespace(false, |a, _| {
        let inner = kq(p);
        let outer = kq(p);
        let watch = Kevent::new(
            inner.as_raw_fd() as usize,
            EVFILT_READ,
            EV_ADD | EV_CLEAR,
            0,
            0,
            null_mut(),
        );
        ch_ok(&outer, &[watch]);
        ch_ok(&inner, &[fs(EV_ADD, 0, 0)]);
        assert_eq!(poll_fd(&inner, 0), 0, "readable after the registration");
        expect_no_events(&outer);
        mount_tmpfs(a);
        assert_eq!(
            poll_fd(&inner, 1000) & libc::POLLIN,
            libc::POLLIN,
            "not readable after a mount"
        );
        let evs = get(&outer, 4, Some(Duration::from_secs(5)));
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert_eq!((evs[0].filter, evs[0].data), (EVFILT_READ, 1));
        expect_fs(&inner, p, 0, EV_ADD, VQ_MOUNT);
        assert_eq!(poll_fd(&inner, 0), 0, "readable after the collection");
    });
}

/// F12 blocked_waiter (derived): a thread blocked in kevent() with no timeout returns the
/// record of a mount made by another thread.
fn f12_blocked_waiter(p: Personality) {
    in_namespace(false, |a, _| {
        let kq = std::sync::Arc::new(kq(p));
        ch_ok(&kq, &[fs(EV_ADD, 0, 0)]);
        let waiter = {
            let kq = std::sync::Arc::clone(&kq);
            thread::spawn(move || {
                let mut evs = [Kevent::default(); 4];
                let n = kq.kevent(&[], &mut evs, None).expect("kevent");
                evs[..n].to_vec()
            })
        };
        thread::sleep(Duration::from_millis(100));
        mount_tmpfs(a);
        let evs = waiter.join().expect("the waiter");
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert_eq!((evs[0].filter, evs[0].fflags), (EVFILT_FS, VQ_MOUNT));
    });
}

/// F13 remount (derived): a remount changes no mount (FreeBSD posts nothing for
/// MNT_UPDATE): nothing is reported.
fn f13_remount(p: Personality) {
    in_namespace(false, |a, _| {
        let kq = kq(p);
        mount_tmpfs(a);
        ch_ok(&kq, &[fs(EV_ADD, 0, 0)]);
        remount_ro(a);
        expect_no_events(&kq);
        unmount(a);
        expect_fs(&kq, p, 0, EV_ADD, VQ_UNMOUNT);
    });
}

/// F14 reused_mount_id (derived): an unmount then a mount on the same directory before
/// one collection, the new mount getting the old one's mountinfo id: VQ_MOUNT|VQ_UNMOUNT
/// where listmount(2) tells the mounts apart (Linux 6.8); on the mountinfo-only path the
/// two cancel out (personality.md, Linux differences) when the id is reused.
fn f14_reused_mount_id_with(p: Personality, mountinfo_only: bool) {
    in_namespace(mountinfo_only, |a, _| {
        let kq = kq(p);
        mount_tmpfs(a);
        ch_ok(&kq, &[fs(EV_ADD, 0, 0)]);
        let old = mount_id(a).expect("the mount's id");
        unmount(a);
        mount_tmpfs(a);
        let new = mount_id(a).expect("the new mount's id");
        if mountinfo_only && old == new {
            expect_no_events(&kq);
        } else {
            expect_fs(&kq, p, 0, EV_ADD, VQ_MOUNT | VQ_UNMOUNT);
        }
    });
}

fn f14_reused_mount_id(p: Personality) {
    f14_reused_mount_id_with(p, false);
}

/// F14 on the path of kernels without listmount(2).
fn f14_reused_mount_id_mountinfo(p: Personality) {
    f14_reused_mount_id_with(p, true);
}

/// F15 idents_and_receipt (derived): the ident names nothing, so knotes with idents 0 and
/// 5 are two knotes that both fire; EV_RECEIPT reports the EV_ADD with data 0.
fn f15_idents_and_receipt(p: Personality) {
    in_namespace(false, |a, _| {
        let kq = kq(p);
        let mut out = [Kevent::default(); 2];
        let five = Kevent::new(5, EVFILT_FS, EV_ADD | EV_RECEIPT, 0, 0, null_mut());
        let n = kq
            .kevent(&[fs(EV_ADD, 0, 0), five], &mut out, None)
            .expect("kevent");
        assert_eq!(n, 1);
        assert_report(&out[0], 5, EVFILT_FS, 0);
        mount_tmpfs(a);
        let mut evs = get(&kq, 8, Some(Duration::from_secs(5)));
        evs.sort_by_key(|e| e.ident);
        assert_eq!(evs.len(), 2, "{evs:?}");
        assert_eq!((evs[0].ident, evs[0].fflags), (0, VQ_MOUNT));
        assert_eq!((evs[1].ident, evs[1].fflags), (5, VQ_MOUNT));
        assert_eq!(
            evs[1].flags,
            delivered_flags(p, EV_ADD | EV_RECEIPT) | EV_CLEAR
        );
    });
}

/// F16 other_namespace_thread (derived): the kqueue watches the namespace its first
/// EVFILT_FS knote was added in. A thread that moved to a namespace of its own collects the
/// mounts of the first namespace, not its own.
fn f16_other_namespace_thread(p: Personality) {
    in_namespace(false, |a, b| {
        let kq = std::sync::Arc::new(kq(p));
        ch_ok(&kq, &[fs(EV_ADD, 0, 0)]);
        let (to_main, from_thread) = std::sync::mpsc::channel();
        let (to_thread, from_main) = std::sync::mpsc::channel::<()>();
        let b = b.to_path_buf();
        let other = {
            let kq = std::sync::Arc::clone(&kq);
            thread::spawn(move || {
                // SAFETY: unshares this thread's mount namespace only.
                let r = unsafe { libc::unshare(libc::CLONE_NEWNS) };
                assert_eq!(r, 0, "unshare: {}", io::Error::last_os_error());
                // A mount in the thread's own namespace is not the kqueue's business.
                mount_tmpfs(&b);
                let mine = poll(&kq, 4);
                to_main.send(()).unwrap();
                from_main.recv().unwrap();
                let theirs = get(&kq, 4, Some(Duration::from_secs(5)));
                unmount(&b);
                (mine, theirs)
            })
        };
        from_thread.recv().unwrap();
        mount_tmpfs(a);
        to_thread.send(()).unwrap();
        let (mine, theirs) = other.join().expect("the other thread");
        assert!(mine.is_empty(), "{mine:?}");
        assert_eq!(theirs.len(), 1, "{theirs:?}");
        assert_eq!((theirs[0].filter, theirs[0].fflags), (EVFILT_FS, VQ_MOUNT));
        expect_no_events(&kq);
        unmount(a);
        expect_fs(&kq, p, 0, EV_ADD, VQ_UNMOUNT);
    });
}

both!(
    f1_mount_unmount,
    f1_mount_unmount_mountinfo,
    f2_only_future_events,
    f3_two_kqueues,
    f4_delete,
    f5_table_released,
    f6_fork,
    f7_accumulate,
    f7_accumulate_mountinfo,
    f8_interest_mask_ignored,
    f9_disable_enable,
    f10_oneshot_dispatch,
    f11_descriptor_readable,
    f12_blocked_waiter,
    f13_remount,
    f14_reused_mount_id,
    f14_reused_mount_id_mountinfo,
    f15_idents_and_receipt,
    f16_other_namespace_thread,
);
