//! EVFILT_VNODE on files and directories, in both personalities.
//!
//! V1-V6 are NetBSD's t_vnode cases (the directory's NOTE_LINK and NOTE_WRITE, a rename over
//! a hard link of the same file, opens, reads, writes and closes, and knotes through dups);
//! V7 is FreeBSD's vnode.c. Then what the library adds on Linux: the knote follows its file
//! through renames, an unlinked but open file, an overflow of the inotify queue, one inotify
//! instance per kqueue and none without a vnode knote, fork(), and descriptor identity.
//!
//! Every test takes `SERIAL` first: some count the process's inotify instances, which the
//! other tests of this binary make.

mod fdutil;
mod util;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use fdutil::*;
use kq::*;
use util::*;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every note of the 2009 BSD set (what t_vnode's directory cases ask for).
const CLASSIC: u32 =
    NOTE_DELETE | NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB | NOTE_LINK | NOTE_RENAME | NOTE_REVOKE;

/// t_vnode's `create_file`: open(O_WRONLY|O_CREAT), close.
fn create(p: &Path) {
    drop(open(p, libc::O_WRONLY | libc::O_CREAT));
}

fn pwrite(fd: &impl AsRawFd, buf: &[u8], off: i64) {
    // SAFETY: `buf` is valid for reads of its length.
    let n = unsafe { libc::pwrite(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), off) };
    assert_eq!(
        n,
        buf.len() as isize,
        "pwrite: {}",
        std::io::Error::last_os_error()
    );
}

fn fchmod(fd: &impl AsRawFd, mode: libc::mode_t) {
    // SAFETY: plain system call.
    assert_eq!(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }, 0);
}

/// `touch`: sets both times to now.
fn touch(p: &Path) {
    let c = c_path(p);
    // SAFETY: `c` is a NUL-terminated path; NULL times mean "now".
    assert_eq!(unsafe { libc::utimes(c.as_ptr(), std::ptr::null()) }, 0);
}

/// An EVFILT_VNODE change.
fn vn(fd: &impl AsRawFd, flags: u16, fflags: u32) -> Kevent {
    Kevent::new(id(fd), EVFILT_VNODE, flags, fflags, 0, std::ptr::null_mut())
}

/// Polls and expects exactly one EVFILT_VNODE record for `fd`: returns its fflags.
#[track_caller]
fn one_vnode(kq: &Kqueue, fd: &impl AsRawFd) -> u32 {
    let ev = expect_one(kq);
    assert_eq!((ev.ident, ev.filter), (id(fd), EVFILT_VNODE), "{ev:?}");
    ev.fflags
}

// V1-V3: t_vnode's directory cases. The directory "foo" is watched with EV_ADD|EV_ONESHOT
// and every classic note; `setup` runs before the knote is added, `act` after; one record
// is expected, and its fflags are exactly what the BSD kernels post for the operation (each
// case of NetBSD's test checks one bit of it).

fn dir_case(p: Personality, setup: fn(&TempDir), act: fn(&TempDir)) -> u32 {
    let _g = serial();
    let t = TempDir::new();
    std::fs::create_dir(t.join("foo")).unwrap();
    setup(&t);
    let target = open(&t.join("foo"), libc::O_RDONLY);
    let kq = kq(p);
    ch_ok(&kq, &[vn(&target, EV_ADD | EV_ONESHOT, CLASSIC)]);
    act(&t);
    let ev = expect_one(&kq);
    assert_eq!((ev.ident, ev.filter), (id(&target), EVFILT_VNODE), "{ev:?}");
    assert_eq!(ev.flags, delivered_flags(p, EV_ADD | EV_ONESHOT));
    // Oneshot: gone.
    expect_no_events(&kq);
    ch_err(&kq, &[vn(&target, EV_DELETE, 0)], libc::ENOENT);
    ev.fflags
}

fn nothing(_: &TempDir) {}
fn mkdir_bar1(t: &TempDir) {
    std::fs::create_dir(t.join("foo/bar1")).unwrap();
}
fn mkdir_bar(t: &TempDir) {
    std::fs::create_dir(t.join("bar")).unwrap();
}
fn create_baz1(t: &TempDir) {
    create(&t.join("foo/baz1"));
}
fn create_qux(t: &TempDir) {
    create(&t.join("qux"));
}

/// What FreeBSD adds for a rename out of the directory (NOTE_EXTEND on the source too).
fn out_extend(p: Personality) -> u32 {
    if p == Personality::FreeBsd {
        NOTE_EXTEND
    } else {
        0
    }
}

fn v1_dir_no_note_link_create_file_in(p: Personality) {
    let f = dir_case(p, nothing, create_baz1);
    assert_eq!(f & NOTE_LINK, 0);
    assert_eq!(f, NOTE_WRITE);
}

fn v1_dir_no_note_link_delete_file_in(p: Personality) {
    let f = dir_case(p, create_baz1, |t| {
        std::fs::remove_file(t.join("foo/baz1")).unwrap()
    });
    assert_eq!(f & NOTE_LINK, 0);
    assert_eq!(f, NOTE_WRITE);
}

fn v1_dir_no_note_link_mv_dir_within(p: Personality) {
    let f = dir_case(p, mkdir_bar1, |t| {
        std::fs::rename(t.join("foo/bar1"), t.join("foo/bar2")).unwrap()
    });
    assert_eq!(f & NOTE_LINK, 0);
    assert_eq!(f, NOTE_WRITE);
}

fn v1_dir_no_note_link_mv_file_within(p: Personality) {
    let f = dir_case(p, create_baz1, |t| {
        std::fs::rename(t.join("foo/baz1"), t.join("foo/baz2")).unwrap()
    });
    assert_eq!(f & NOTE_LINK, 0);
    assert_eq!(f, NOTE_WRITE);
}

both!(
    v1_dir_no_note_link_create_file_in,
    v1_dir_no_note_link_delete_file_in,
    v1_dir_no_note_link_mv_dir_within,
    v1_dir_no_note_link_mv_file_within,
);

fn v2_dir_note_link_create_dir_in(p: Personality) {
    let f = dir_case(p, nothing, mkdir_bar1);
    assert_eq!(f & NOTE_LINK, NOTE_LINK);
    assert_eq!(f, NOTE_WRITE | NOTE_LINK);
}

fn v2_dir_note_link_delete_dir_in(p: Personality) {
    let f = dir_case(p, mkdir_bar1, |t| {
        std::fs::remove_dir(t.join("foo/bar1")).unwrap()
    });
    assert_eq!(f & NOTE_LINK, NOTE_LINK);
    assert_eq!(f, NOTE_WRITE | NOTE_LINK);
}

fn v2_dir_note_link_mv_dir_in(p: Personality) {
    let f = dir_case(p, mkdir_bar, |t| {
        std::fs::rename(t.join("bar"), t.join("foo/bar1")).unwrap()
    });
    assert_eq!(f & NOTE_LINK, NOTE_LINK);
    assert_eq!(f, NOTE_WRITE | NOTE_EXTEND | NOTE_LINK);
}

fn v2_dir_note_link_mv_dir_out(p: Personality) {
    let f = dir_case(p, mkdir_bar1, |t| {
        std::fs::rename(t.join("foo/bar1"), t.join("bar")).unwrap()
    });
    assert_eq!(f & NOTE_LINK, NOTE_LINK);
    assert_eq!(f, NOTE_WRITE | NOTE_LINK | out_extend(p));
}

both!(
    v2_dir_note_link_create_dir_in,
    v2_dir_note_link_delete_dir_in,
    v2_dir_note_link_mv_dir_in,
    v2_dir_note_link_mv_dir_out,
);

fn v3_dir_note_write_create_dir_in(p: Personality) {
    let f = dir_case(p, nothing, mkdir_bar1);
    assert_eq!(f & NOTE_WRITE, NOTE_WRITE);
}

fn v3_dir_note_write_create_file_in(p: Personality) {
    let f = dir_case(p, nothing, create_baz1);
    assert_eq!(f & NOTE_WRITE, NOTE_WRITE);
}

fn v3_dir_note_write_delete_dir_in(p: Personality) {
    let f = dir_case(p, mkdir_bar1, |t| {
        std::fs::remove_dir(t.join("foo/bar1")).unwrap()
    });
    assert_eq!(f & NOTE_WRITE, NOTE_WRITE);
}

fn v3_dir_note_write_delete_file_in(p: Personality) {
    let f = dir_case(p, create_baz1, |t| {
        std::fs::remove_file(t.join("foo/baz1")).unwrap()
    });
    assert_eq!(f & NOTE_WRITE, NOTE_WRITE);
}

fn v3_dir_note_write_mv_dir_in(p: Personality) {
    let f = dir_case(p, mkdir_bar, |t| {
        std::fs::rename(t.join("bar"), t.join("foo/bar1")).unwrap()
    });
    assert_eq!(f & NOTE_WRITE, NOTE_WRITE);
}

fn v3_dir_note_write_mv_dir_out(p: Personality) {
    let f = dir_case(p, mkdir_bar1, |t| {
        std::fs::rename(t.join("foo/bar1"), t.join("bar")).unwrap()
    });
    assert_eq!(f & NOTE_WRITE, NOTE_WRITE);
}

fn v3_dir_note_write_mv_dir_within(p: Personality) {
    let f = dir_case(p, mkdir_bar1, |t| {
        std::fs::rename(t.join("foo/bar1"), t.join("foo/bar2")).unwrap()
    });
    assert_eq!(f & NOTE_WRITE, NOTE_WRITE);
}

fn v3_dir_note_write_mv_file_in(p: Personality) {
    let f = dir_case(p, create_qux, |t| {
        std::fs::rename(t.join("qux"), t.join("foo/baz1")).unwrap()
    });
    assert_eq!(f & NOTE_WRITE, NOTE_WRITE);
    assert_eq!(f, NOTE_WRITE | NOTE_EXTEND);
}

fn v3_dir_note_write_mv_file_out(p: Personality) {
    let f = dir_case(p, create_baz1, |t| {
        std::fs::rename(t.join("foo/baz1"), t.join("qux")).unwrap()
    });
    assert_eq!(f & NOTE_WRITE, NOTE_WRITE);
    assert_eq!(f, NOTE_WRITE | out_extend(p));
}

fn v3_dir_note_write_mv_file_within(p: Personality) {
    let f = dir_case(p, create_baz1, |t| {
        std::fs::rename(t.join("foo/baz1"), t.join("foo/baz2")).unwrap()
    });
    assert_eq!(f & NOTE_WRITE, NOTE_WRITE);
}

both!(
    v3_dir_note_write_create_dir_in,
    v3_dir_note_write_create_file_in,
    v3_dir_note_write_delete_dir_in,
    v3_dir_note_write_delete_file_in,
    v3_dir_note_write_mv_dir_in,
    v3_dir_note_write_mv_dir_out,
    v3_dir_note_write_mv_dir_within,
    v3_dir_note_write_mv_file_in,
    v3_dir_note_write_mv_file_out,
    v3_dir_note_write_mv_file_within,
);

/// V4 (t_vnode rename_over_self_hardlink): rename(a, b) where a and b are links of one file.
/// The BSDs remove a (the directory gets NOTE_WRITE, the file NOTE_LINK); POSIX says such a
/// rename does nothing, and Linux does nothing: both names stay, no event is posted, so
/// none is reported (a documented deviation).
fn v4_rename_over_self_hardlink(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    std::fs::create_dir(t.join("foo")).unwrap();
    let dir = open(&t.join("foo"), libc::O_RDONLY);
    let file = open(&t.join("foo/baz1"), libc::O_RDONLY | libc::O_CREAT);
    std::fs::hard_link(t.join("foo/baz1"), t.join("foo/baz2")).unwrap();
    let kq = kq(p);
    ch_ok(
        &kq,
        &[
            vn(&dir, EV_ADD, NOTE_WRITE | NOTE_EXTEND | NOTE_LINK),
            vn(&file, EV_ADD, NOTE_LINK | NOTE_DELETE),
        ],
    );
    std::fs::rename(t.join("foo/baz1"), t.join("foo/baz2")).unwrap();
    assert!(t.join("foo/baz1").exists() && t.join("foo/baz2").exists());
    expect_no_events(&kq);
    // What the BSDs see, done explicitly: unlink one of the names.
    std::fs::remove_file(t.join("foo/baz1")).unwrap();
    let evs = poll(&kq, 4);
    assert_eq!(evs.len(), 2, "{evs:?}");
    for ev in evs {
        if ev.ident == id(&dir) {
            assert_eq!(ev.fflags, NOTE_WRITE);
        } else {
            assert_eq!(ev.ident, id(&file));
            assert_eq!(ev.fflags, p_unlink_one_of_two(p));
        }
    }
}

/// What an unlink of one of two names posts on the file (NetBSD NOTE_LINK, FreeBSD
/// NOTE_DELETE), for a knote interested in both.
fn p_unlink_one_of_two(p: Personality) -> u32 {
    if p == Personality::FreeBsd {
        NOTE_DELETE
    } else {
        NOTE_LINK
    }
}

both!(v4_rename_over_self_hardlink);

/// V5 (t_vnode open_write_read_close): NOTE_OPEN, NOTE_WRITE|NOTE_EXTEND for a write that
/// grows the file (NOTE_EXTEND comes with the write although not asked for: the kernels post
/// the pair as one note), NOTE_WRITE alone for an overwrite, NOTE_CLOSE_WRITE for a close of
/// a descriptor open for writing, then NOTE_OPEN, NOTE_READ and NOTE_CLOSE for a read-only
/// one. Each record is exactly that.
fn v5_open_write_read_close(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let path = t.join("testfile");
    let watched = open(&path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC);
    let kq = kq(p);
    ch_ok(
        &kq,
        &[vn(
            &watched,
            EV_ADD | EV_CLEAR,
            NOTE_OPEN | NOTE_READ | NOTE_WRITE | NOTE_CLOSE | NOTE_CLOSE_WRITE,
        )],
    );
    expect_no_events(&kq);
    let fd = open(&path, libc::O_RDWR);
    assert_eq!(one_vnode(&kq, &watched), NOTE_OPEN);
    pwrite(&fd, b"testfile\0", 0);
    assert_eq!(one_vnode(&kq, &watched), NOTE_WRITE | NOTE_EXTEND);
    pwrite(&fd, b"testfile\0", 0);
    assert_eq!(one_vnode(&kq, &watched), NOTE_WRITE);
    pwrite(&fd, b"t", 9);
    assert_eq!(one_vnode(&kq, &watched), NOTE_WRITE | NOTE_EXTEND);
    drop(fd);
    assert_eq!(one_vnode(&kq, &watched), NOTE_CLOSE_WRITE);

    let fd = open(&path, libc::O_RDONLY);
    assert_eq!(one_vnode(&kq, &watched), NOTE_OPEN);
    let mut buf = [0u8; 9];
    // SAFETY: reads into a live buffer of its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(n, 9);
    assert_eq!(one_vnode(&kq, &watched), NOTE_READ);
    drop(fd);
    assert_eq!(one_vnode(&kq, &watched), NOTE_CLOSE);
    expect_no_events(&kq);
}

both!(v5_open_write_read_close);

/// V6 (t_vnode interest): three knotes through three dups of one file, each with its own
/// interest; closing one dup removes only its knote (and its interest).
fn v6_interest(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let path = t.join("testfile");
    let open_ev = open(&path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC);
    let write_ev = dup(&open_ev);
    let close_ev = dup(&open_ev);
    let kq = kq(p);
    ch_ok(
        &kq,
        &[
            vn(&open_ev, EV_ADD | EV_CLEAR, NOTE_OPEN),
            vn(&write_ev, EV_ADD | EV_CLEAR, NOTE_WRITE),
            vn(&close_ev, EV_ADD | EV_CLEAR, NOTE_CLOSE | NOTE_CLOSE_WRITE),
        ],
    );
    fdclose_and_close(write_ev);

    let fd = open(&path, libc::O_RDWR);
    assert_eq!(one_vnode(&kq, &open_ev), NOTE_OPEN);
    pwrite(&fd, b"testfile\0", 0);
    expect_no_events(&kq);
    drop(fd);
    assert_eq!(one_vnode(&kq, &close_ev), NOTE_CLOSE_WRITE);
    expect_no_events(&kq);
}

/// V6 without the close being seen (a plain close, no `kq::fdclose`): the knote of the closed
/// number stays until it is deleted or the number reused, but never reports anything.
fn v6_interest_close_unseen(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let path = t.join("testfile");
    let open_ev = open(&path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC);
    let write_ev = dup(&open_ev);
    let kq = kq(p);
    ch_ok(
        &kq,
        &[
            vn(&open_ev, EV_ADD | EV_CLEAR, NOTE_OPEN),
            vn(&write_ev, EV_ADD | EV_CLEAR, NOTE_WRITE),
        ],
    );
    let fd = open(&path, libc::O_RDWR);
    assert_eq!(one_vnode(&kq, &open_ev), NOTE_OPEN);
    // Closed with its number left free (a new open of the same file under the number could
    // not be told from the old one: same inode).
    drop(write_ev);
    pwrite(&fd, b"x", 0);
    expect_no_events(&kq);
}

both!(v6_interest, v6_interest_close_unseen);

// V7: FreeBSD vnode.c, on a file opened read-only.

fn v7_setup(p: Personality) -> (TempDir, PathBuf, OwnedFd, Kqueue) {
    let t = TempDir::new();
    let path = t.join("kqueue-test.tmp");
    create(&path);
    let fd = open(&path, libc::O_RDONLY);
    (t, path, fd, kq(p))
}

fn v7_add_del(p: Personality) {
    let _g = serial();
    let (_t, _path, fd, kq) = v7_setup(p);
    ch_ok(
        &kq,
        &[vn(
            &fd,
            EV_ADD,
            NOTE_WRITE | NOTE_ATTRIB | NOTE_RENAME | NOTE_DELETE,
        )],
    );
    ch_ok(&kq, &[vn(&fd, EV_DELETE, 0)]);
    ch_err(&kq, &[vn(&fd, EV_DELETE, 0)], libc::ENOENT);
}

fn v7_note_write(p: Personality) {
    let _g = serial();
    let (_t, path, fd, kq) = v7_setup(p);
    ch_ok(&kq, &[vn(&fd, EV_ADD | EV_ONESHOT, NOTE_WRITE)]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"hello\n"))
        .unwrap();
    let ev = expect_one(&kq);
    // NOTE_EXTEND comes with the write although not asked for (FreeBSD's test says so too).
    assert_eq!(
        (ev.ident, ev.filter, ev.flags, ev.fflags),
        (
            id(&fd),
            EVFILT_VNODE,
            delivered_flags(p, EV_ADD | EV_ONESHOT),
            NOTE_WRITE | NOTE_EXTEND
        )
    );
    expect_no_events(&kq);
}

fn v7_note_attrib(p: Personality) {
    let _g = serial();
    let (_t, path, fd, kq) = v7_setup(p);
    ch_ok(&kq, &[vn(&fd, EV_ADD | EV_ONESHOT, NOTE_ATTRIB)]);
    touch(&path);
    assert_eq!(one_vnode(&kq, &fd), NOTE_ATTRIB);
}

fn v7_note_rename(p: Personality) {
    let _g = serial();
    let (t, path, fd, kq) = v7_setup(p);
    ch_ok(&kq, &[vn(&fd, EV_ADD | EV_ONESHOT, NOTE_RENAME)]);
    let other = t.join("kqueue-test2.tmp");
    std::fs::rename(&path, &other).unwrap();
    assert_eq!(one_vnode(&kq, &fd), NOTE_RENAME);
    std::fs::rename(&other, &path).unwrap();
    expect_no_events(&kq);
}

fn v7_note_delete(p: Personality) {
    let _g = serial();
    let (_t, path, fd, kq) = v7_setup(p);
    ch_ok(&kq, &[vn(&fd, EV_ADD | EV_ONESHOT, NOTE_DELETE)]);
    std::fs::remove_file(&path).unwrap();
    let ev = expect_one(&kq);
    assert_eq!(
        (ev.ident, ev.flags, ev.fflags),
        (
            id(&fd),
            delivered_flags(p, EV_ADD | EV_ONESHOT),
            NOTE_DELETE
        )
    );
}

/// FreeBSD's FIFOs take EVFILT_VNODE (vnode.c note_delete_fifo); NetBSD's fifofs refuses
/// it with EINVAL.
fn v7_note_delete_fifo(p: Personality) {
    let _g = serial();
    let (r, w, path) = fifo();
    let kq = kq(p);
    if p == Personality::NetBsd {
        ch_err(
            &kq,
            &[vn(&w, EV_ADD | EV_ONESHOT, NOTE_DELETE)],
            libc::EINVAL,
        );
        return;
    }
    ch_ok(&kq, &[vn(&w, EV_ADD | EV_ONESHOT, NOTE_DELETE)]);
    std::fs::remove_file(path.path()).unwrap();
    assert_eq!(one_vnode(&kq, &w), NOTE_DELETE);
    // The FIFO still works, and takes EVFILT_READ and EVFILT_WRITE besides (the latter on
    // the descriptor of the vnode knote, which then enters the epoll).
    ch_ok(&kq, &[rd(id(&r), EV_ADD, 0)]);
    put(&w, 3);
    let ev = wait_one(&kq);
    assert_eq!((ev.ident, ev.filter, ev.data), (id(&r), EVFILT_READ, 3));
    ch_ok(
        &kq,
        &[rd(id(&r), EV_DELETE, 0), wr(id(&w), EV_ADD | EV_CLEAR, 0)],
    );
    let ev = wait_one(&kq);
    assert_eq!((ev.ident, ev.filter), (id(&w), EVFILT_WRITE));
    fill(&w);
    expect_no_events(&kq);
    drain(&r);
    let ev = wait_one(&kq);
    assert_eq!((ev.ident, ev.filter), (id(&w), EVFILT_WRITE));
}

fn v7_disable_and_enable(p: Personality) {
    let _g = serial();
    let (_t, path, fd, kq) = v7_setup(p);
    expect_no_events(&kq);
    ch_ok(&kq, &[vn(&fd, EV_ADD | EV_ONESHOT, NOTE_ATTRIB)]);
    ch_ok(&kq, &[vn(&fd, EV_DISABLE, NOTE_ATTRIB)]);
    touch(&path);
    expect_no_events(&kq);
    ch_ok(&kq, &[vn(&fd, EV_ENABLE, NOTE_ATTRIB)]);
    touch(&path);
    assert_eq!(one_vnode(&kq, &fd), NOTE_ATTRIB);
    expect_no_events(&kq);
}

fn v7_dispatch(p: Personality) {
    let _g = serial();
    let (_t, path, fd, kq) = v7_setup(p);
    expect_no_events(&kq);
    ch_ok(&kq, &[vn(&fd, EV_ADD | EV_DISPATCH, NOTE_ATTRIB)]);
    touch(&path);
    assert_eq!(one_vnode(&kq, &fd), NOTE_ATTRIB);
    touch(&path);
    expect_no_events(&kq);
    ch_ok(&kq, &[vn(&fd, EV_DELETE, NOTE_ATTRIB)]);
}

both!(
    v7_add_del,
    v7_note_write,
    v7_note_attrib,
    v7_note_rename,
    v7_note_delete,
    v7_note_delete_fifo,
    v7_disable_and_enable,
    v7_dispatch,
);

/// Without EV_CLEAR the filter stays true while bits are set: the same bits on every call;
/// with EV_CLEAR they reset on delivery. Bits accumulate (OR) until delivered.
fn v_level_and_clear(p: Personality) {
    let _g = serial();
    let (_t, path, fd, kq) = v7_setup(p);
    ch_ok(&kq, &[vn(&fd, EV_ADD, NOTE_ATTRIB | NOTE_WRITE)]);
    touch(&path);
    assert_eq!(one_vnode(&kq, &fd), NOTE_ATTRIB);
    assert_eq!(one_vnode(&kq, &fd), NOTE_ATTRIB);
    std::fs::write(&path, b"abc").unwrap();
    assert_eq!(one_vnode(&kq, &fd), NOTE_ATTRIB | NOTE_WRITE | NOTE_EXTEND);
    // A modification keeps the stored flags (EV_CLEAR given now does not take): a new knote.
    ch_ok(&kq, &[vn(&fd, EV_ADD | EV_CLEAR, NOTE_ATTRIB | NOTE_WRITE)]);
    assert_eq!(one_vnode(&kq, &fd), NOTE_ATTRIB | NOTE_WRITE | NOTE_EXTEND);
    assert_eq!(one_vnode(&kq, &fd), NOTE_ATTRIB | NOTE_WRITE | NOTE_EXTEND);
    ch_ok(&kq, &[vn(&fd, EV_DELETE, 0)]);
    ch_ok(&kq, &[vn(&fd, EV_ADD | EV_CLEAR, NOTE_ATTRIB | NOTE_WRITE)]);
    expect_no_events(&kq);
    touch(&path);
    assert_eq!(one_vnode(&kq, &fd), NOTE_ATTRIB);
    expect_no_events(&kq);
}

/// Events outside the interest are not reported: a write to a NOTE_ATTRIB knote.
fn v_only_the_interest(p: Personality) {
    let _g = serial();
    let (_t, path, fd, kq) = v7_setup(p);
    ch_ok(
        &kq,
        &[vn(&fd, EV_ADD | EV_CLEAR, NOTE_ATTRIB | NOTE_RENAME)],
    );
    std::fs::write(&path, b"abc").unwrap();
    expect_no_events(&kq);
    // Another change replaces the interest.
    ch_ok(&kq, &[vn(&fd, EV_ADD | EV_CLEAR, NOTE_WRITE)]);
    std::fs::write(&path, b"abcd").unwrap();
    let f = one_vnode(&kq, &fd);
    assert_eq!(f & NOTE_WRITE, NOTE_WRITE, "{f:#x}");
    assert_eq!(f & (NOTE_ATTRIB | NOTE_RENAME), 0);
}

both!(v_level_and_clear, v_only_the_interest);

/// The knote follows the open file, not its path: renamed into another directory, its
/// writes are still reported, and a new file at the old path is not watched.
fn v_rename_follows_file(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    std::fs::create_dir(t.join("d")).unwrap();
    let path = t.join("f");
    let fd = open(&path, libc::O_RDWR | libc::O_CREAT);
    let kq = kq(p);
    ch_ok(&kq, &[vn(&fd, EV_ADD | EV_CLEAR, NOTE_RENAME | NOTE_WRITE)]);
    std::fs::rename(&path, t.join("d/g")).unwrap();
    assert_eq!(one_vnode(&kq, &fd), NOTE_RENAME);
    create(&path);
    std::fs::write(&path, b"other file").unwrap();
    expect_no_events(&kq);
    std::fs::write(t.join("d/g"), b"x").unwrap();
    assert_eq!(one_vnode(&kq, &fd) & NOTE_WRITE, NOTE_WRITE);
    pwrite(&fd, b"yz", 0);
    assert_eq!(one_vnode(&kq, &fd), NOTE_WRITE | NOTE_EXTEND);
}

/// An unlinked file that is still open: NOTE_DELETE (not NOTE_ATTRIB, not NOTE_LINK) at the
/// unlink, then its changes as they come.
fn v_unlinked_but_open(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let path = t.join("f");
    let fd = open(&path, libc::O_RDWR | libc::O_CREAT);
    let kq = kq(p);
    let all = NOTE_DELETE | NOTE_LINK | NOTE_ATTRIB | NOTE_WRITE | NOTE_EXTEND;
    ch_ok(&kq, &[vn(&fd, EV_ADD | EV_CLEAR, all)]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(one_vnode(&kq, &fd), NOTE_DELETE);
    fchmod(&fd, 0o644);
    assert_eq!(one_vnode(&kq, &fd), NOTE_ATTRIB);
    pwrite(&fd, b"abc", 0);
    assert_eq!(one_vnode(&kq, &fd), NOTE_WRITE | NOTE_EXTEND);
    // A knote added now, on the unlinked file, works too.
    let kq2 = kq_of(p);
    ch_ok(&kq2, &[vn(&fd, EV_ADD | EV_CLEAR, NOTE_WRITE)]);
    pwrite(&fd, b"d", 0);
    assert_eq!(one_vnode(&kq2, &fd), NOTE_WRITE);
}

fn kq_of(p: Personality) -> Kqueue {
    kq(p)
}

/// Links: link() is NOTE_LINK; removing one of two names is NOTE_LINK on NetBSD and
/// NOTE_DELETE on FreeBSD; removing the last is NOTE_DELETE.
fn v_link_counts(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let path = t.join("f");
    let fd = open(&path, libc::O_RDWR | libc::O_CREAT);
    let kq = kq(p);
    ch_ok(&kq, &[vn(&fd, EV_ADD | EV_CLEAR, NOTE_LINK | NOTE_DELETE)]);
    std::fs::hard_link(&path, t.join("g")).unwrap();
    assert_eq!(one_vnode(&kq, &fd), NOTE_LINK);
    std::fs::remove_file(t.join("g")).unwrap();
    assert_eq!(one_vnode(&kq, &fd), p_unlink_one_of_two(p));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(one_vnode(&kq, &fd), NOTE_DELETE);
    expect_no_events(&kq);
}

/// A file replaced by a rename over it: it loses its name.
fn v_replaced_by_rename(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let path = t.join("f");
    let fd = open(&path, libc::O_RDWR | libc::O_CREAT);
    create(&t.join("new"));
    let kq = kq(p);
    ch_ok(
        &kq,
        &[vn(&fd, EV_ADD | EV_CLEAR, NOTE_DELETE | NOTE_RENAME)],
    );
    std::fs::rename(t.join("new"), &path).unwrap();
    assert_eq!(one_vnode(&kq, &fd), NOTE_DELETE);
}

both!(
    v_rename_follows_file,
    v_unlinked_but_open,
    v_link_counts,
    v_replaced_by_rename
);

/// Not a vnode: EINVAL (the BSDs' socket, pipe and kqueue kqfilter routines refuse the
/// filter); a closed number: EBADF.
fn v_not_a_vnode(p: Personality) {
    let _g = serial();
    let kq = kq(p);
    let (a, _b) = stream_pair();
    let (r, w) = pipe();
    let e = eventfd();
    let other = Kqueue::new().unwrap();
    for fd in [a.as_raw_fd(), r.as_raw_fd(), w.as_raw_fd(), e.as_raw_fd()] {
        let c = Kevent::new(fd as usize, EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, ptr(0));
        ch_err(&kq, &[c], libc::EINVAL);
    }
    let c = Kevent::new(
        other.as_raw_fd() as usize,
        EVFILT_VNODE,
        EV_ADD,
        NOTE_WRITE,
        0,
        ptr(0),
    );
    ch_err(&kq, &[c], libc::EINVAL);
    let c = Kevent::new(closed_number(), EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, ptr(0));
    ch_err(&kq, &[c], libc::EBADF);
}

/// A number closed unseen and reused by another file: the old file's events are not
/// reported, and EV_ADD on the number makes a fresh knote for the new file.
fn v_reused_number(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let slot = reserved_number(if p == Personality::FreeBsd { 301 } else { 300 });
    let a = move_to(open(&t.join("a"), libc::O_RDWR | libc::O_CREAT), slot);
    let kq = kq(p);
    ch_ok(&kq, &[vn(&a, EV_ADD | EV_CLEAR, NOTE_WRITE | NOTE_ATTRIB)]);
    drop(a);
    let b = move_to(open(&t.join("b"), libc::O_RDWR | libc::O_CREAT), slot);
    std::fs::write(t.join("a"), b"old file").unwrap();
    expect_no_events(&kq);
    // The change finds the old knote stale and makes a new one.
    ch_ok(&kq, &[vn(&b, EV_ADD | EV_CLEAR, NOTE_WRITE)]);
    std::fs::write(t.join("a"), b"old file again").unwrap();
    expect_no_events(&kq);
    std::fs::write(t.join("b"), b"new file").unwrap();
    assert_eq!(one_vnode(&kq, &b) & NOTE_WRITE, NOTE_WRITE);
}

/// G27 (NetBSD t_kevent kqueue_unsupported_fd): a descriptor of a kind with no kqueue
/// support at all (NetBSD's test uses /dev/drvctl; here an inotify instance and a signalfd,
/// which no BSD has): NetBSD EOPNOTSUPP, FreeBSD EINVAL.
fn g27_unsupported_fd(p: Personality) {
    let _g = serial();
    let kq = kq(p);
    // SAFETY: plain system calls; the results are checked and then owned.
    let (ino, sfd) = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        let ino = libc::inotify_init1(libc::IN_CLOEXEC);
        let sfd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        assert!(ino >= 0 && sfd >= 0);
        (OwnedFd::from_raw_fd(ino), OwnedFd::from_raw_fd(sfd))
    };
    let want = if p == Personality::FreeBsd {
        libc::EINVAL
    } else {
        libc::EOPNOTSUPP
    };
    for fd in [&ino, &sfd] {
        let c = vn(fd, EV_ADD | EV_ENABLE | EV_CLEAR, CLASSIC);
        ch_err(&kq, &[c], want);
        let c = Kevent::new(id(fd), EVFILT_EMPTY, EV_ADD, 0, 0, ptr(0));
        ch_err(&kq, &[c], want);
    }
}

/// G31 modify_resets_sfflags: every change replaces the interest, an EV_DISABLE or
/// EV_ENABLE with fflags 0 too: a write is then not reported.
fn g31_modify_resets_sfflags(p: Personality) {
    let _g = serial();
    let (_t, path, fd, kq) = v7_setup(p);
    ch_ok(&kq, &[vn(&fd, EV_ADD | EV_CLEAR, NOTE_WRITE)]);
    ch_ok(&kq, &[vn(&fd, EV_DISABLE, 0)]);
    ch_ok(&kq, &[vn(&fd, EV_ENABLE, 0)]);
    std::fs::write(&path, b"abc").unwrap();
    expect_no_events(&kq);
}

both!(
    v_not_a_vnode,
    v_reused_number,
    g27_unsupported_fd,
    g31_modify_resets_sfflags
);

/// The names of the inotify instances this process has open.
fn inotify_fds() -> Vec<RawFd> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(target) = std::fs::read_link(e.path()) {
            if target.as_os_str().as_bytes() == b"anon_inode:inotify" {
                out.push(e.file_name().to_string_lossy().parse().unwrap());
            }
        }
    }
    out
}

/// The watches of inotify instance `fd`, as (inode, mask) from /proc/self/fdinfo.
fn watches(fd: RawFd) -> Vec<(u64, u32)> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    info.lines()
        .filter(|l| l.starts_with("inotify wd:"))
        .map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .unwrap()
                    .to_string()
            };
            (
                u64::from_str_radix(&field("ino:"), 16).unwrap(),
                u32::from_str_radix(&field("mask:"), 16).unwrap(),
            )
        })
        .collect()
}

/// One inotify instance per kqueue, made with the first vnode knote (or regular file read
/// knote), shared by every knote of the kqueue; once the last goes, kept for reuse, then
/// closed by the first kevent() 100 ms later; none for a kqueue without such knotes; a
/// closed kqueue's goes at once.
fn v_one_inotify_per_kqueue(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let base = inotify_fds().len();
    let files: Vec<OwnedFd> = (0..3)
        .map(|i| open(&t.join(&format!("f{i}")), libc::O_RDWR | libc::O_CREAT))
        .collect();
    let kq = kq(p);
    let (s, _peer) = stream_pair();
    ch_ok(&kq, &[rd(id(&s), EV_ADD, 0)]);
    assert_eq!(inotify_fds().len(), base, "no vnode knote, no inotify");
    for f in &files {
        ch_ok(&kq, &[vn(f, EV_ADD, NOTE_WRITE)]);
    }
    ch_ok(&kq, &[rd(id(&files[0]), EV_ADD, 0)]);
    let mine = inotify_fds();
    assert_eq!(mine.len(), base + 1);
    let kq2 = kq_of(p);
    ch_ok(&kq2, &[vn(&files[0], EV_ADD, NOTE_ATTRIB)]);
    assert_eq!(inotify_fds().len(), base + 2, "one per kqueue");
    for f in &files {
        ch_ok(&kq, &[vn(f, EV_DELETE, 0)]);
    }
    assert_eq!(
        inotify_fds().len(),
        base + 2,
        "still one for the read knote"
    );
    ch_ok(&kq, &[rd(id(&files[0]), EV_DELETE, 0)]);
    let idle = inotify_fds();
    assert_eq!(idle.len(), base + 2, "idle, kept for reuse");
    ch_ok(&kq, &[vn(&files[2], EV_ADD, NOTE_WRITE)]);
    assert_eq!(inotify_fds(), idle, "reused");
    ch_ok(&kq, &[vn(&files[2], EV_DELETE, 0)]);
    thread::sleep(Duration::from_millis(150));
    expect_no_events(&kq);
    assert_eq!(inotify_fds().len(), base + 1, "closed after the last watch");
    drop(kq2);
    assert_eq!(inotify_fds().len(), base, "closed with its kqueue");
    // A kqueue handed out as a descriptor and closed (as an interposed close() does).
    let raw = Kqueue::new_raw_fd(p).unwrap();
    let k = Kqueue::find(kq_fd(raw)).unwrap();
    ch_ok(&k, &[vn(&files[1], EV_ADD, NOTE_WRITE)]);
    drop(k);
    assert_eq!(inotify_fds().len(), base + 1);
    kq::fdclose(raw);
    // SAFETY: our descriptor, closed once.
    unsafe { libc::close(raw) };
    assert_eq!(inotify_fds().len(), base, "released at close");
}

fn kq_fd(raw: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: the test keeps `raw` open while the borrow is used.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) }
}

/// Knotes on one inode share one watch whose mask is the union of what they need; it
/// narrows again when a knote goes.
fn v_shared_watch_mask(p: Personality) {
    let _g = serial();
    let t = TempDir::new();
    let path = t.join("f");
    let a = open(&path, libc::O_RDWR | libc::O_CREAT);
    let b = open(&path, libc::O_RDONLY);
    let kq = kq(p);
    let before = inotify_fds();
    ch_ok(
        &kq,
        &[vn(&a, EV_ADD, NOTE_OPEN), vn(&b, EV_ADD, NOTE_WRITE)],
    );
    let ino = inotify_fds()
        .into_iter()
        .find(|f| !before.contains(f))
        .expect("the kqueue's inotify");
    let w = watches(ino);
    assert_eq!(w.len(), 1, "one watch for one inode: {w:?}");
    assert_eq!(
        w[0].1 & (libc::IN_OPEN | libc::IN_MODIFY),
        libc::IN_OPEN | libc::IN_MODIFY
    );
    ch_ok(&kq, &[vn(&a, EV_DELETE, 0)]);
    let w = watches(ino);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].1 & libc::IN_OPEN, 0, "narrowed: {:#x}", w[0].1);
    assert_eq!(w[0].1 & libc::IN_MODIFY, libc::IN_MODIFY);
    // The interest changes with a modification too.
    ch_ok(&kq, &[vn(&b, EV_ADD, NOTE_OPEN)]);
    let w = watches(ino);
    assert_eq!(
        w[0].1 & (libc::IN_OPEN | libc::IN_MODIFY),
        libc::IN_OPEN,
        "{:#x}",
        w[0].1
    );
}

both!(v_one_inotify_per_kqueue, v_shared_watch_mask);

/// An overflow of the inotify queue (more events queued than the kernel keeps, 16384 by
/// default) loses events: every vnode knote is checked against what fstat shows, and the
/// bits the comparison proves are reported. Here file `a` is written and chmod'ed in turn
/// until the queue overflows, then grows; file `c` is chmod'ed once the queue is full
/// (its event is lost).
fn v_overflow_recheck(p: Personality) {
    let _g = serial();
    let limit: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(16384);
    if limit > 1 << 20 {
        eprintln!("max_queued_events is {limit}: not overflowing it");
        return;
    }
    let t = TempDir::new();
    let a = open(&t.join("a"), libc::O_RDWR | libc::O_CREAT);
    let c = open(&t.join("c"), libc::O_RDWR | libc::O_CREAT);
    let kq = kq(p);
    ch_ok(
        &kq,
        &[
            vn(
                &a,
                EV_ADD | EV_CLEAR,
                NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB,
            ),
            vn(&c, EV_ADD | EV_CLEAR, NOTE_ATTRIB | NOTE_WRITE),
        ],
    );
    pwrite(&a, b"x", 0);
    for i in 0..limit / 2 + 16 {
        pwrite(&a, b"x", 0);
        fchmod(&a, if i % 2 == 0 { 0o640 } else { 0o600 });
    }
    fchmod(&a, 0o600);
    pwrite(&a, b"grown", 0);
    fchmod(&c, 0o644);
    let evs = poll(&kq, 4);
    assert_eq!(evs.len(), 2, "{evs:?}");
    for ev in evs {
        if ev.ident == id(&a) {
            let want = NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB;
            assert_eq!(ev.fflags & want, want, "{:#x}", ev.fflags);
        } else {
            assert_eq!(ev.ident, id(&c));
            assert_eq!(ev.fflags, NOTE_ATTRIB, "the lost chmod, proved by the mode");
        }
    }
    // Back to normal afterwards.
    fchmod(&c, 0o600);
    assert_eq!(one_vnode(&kq, &c), NOTE_ATTRIB);
}

both!(v_overflow_recheck);

/// A thread blocked in kevent() wakes for a vnode event, and the kqueue descriptor becomes
/// readable.
fn v_wakes_waiter(p: Personality) {
    let _g = serial();
    let (_t, path, fd, kq) = v7_setup(p);
    ch_ok(&kq, &[vn(&fd, EV_ADD | EV_CLEAR, NOTE_ATTRIB)]);
    assert_eq!(poll_fd(&kq, 0), 0);
    let start = Instant::now();
    let kq = std::sync::Arc::new(kq);
    let k2 = std::sync::Arc::clone(&kq);
    let waiter = thread::spawn(move || get(&k2, 1, Some(Duration::from_secs(10))));
    thread::sleep(Duration::from_millis(50));
    touch(&path);
    let evs = waiter.join().unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].fflags, NOTE_ATTRIB);
    assert!(start.elapsed() < Duration::from_secs(10));
    touch(&path);
    assert_ne!(poll_fd(&kq, 1000) & libc::POLLIN, 0);
}

both!(v_wakes_waiter);

/// fork(): the child's copy of the kqueue is dead (EBADF) and the child cannot take the
/// parent's events; the parent's knote goes on.
fn v_fork(p: Personality) {
    let _g = serial();
    let (_t, path, fd, kq) = v7_setup(p);
    ch_ok(&kq, &[vn(&fd, EV_ADD | EV_CLEAR, NOTE_ATTRIB)]);
    touch(&path);
    // SAFETY: the child uses only the library and async-signal-safe calls, then _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut evs = [Kevent::default(); 1];
        let code = match kq.kevent(&[], &mut evs, Some(Duration::ZERO)) {
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => 0,
            _ => 1,
        };
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: our child; `status` is a valid int.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child: {status:#x}"
    );
    assert_eq!(one_vnode(&kq, &fd), NOTE_ATTRIB);
    touch(&path);
    assert_eq!(one_vnode(&kq, &fd), NOTE_ATTRIB);
}

both!(v_fork);
