//! Helpers shared by the integration tests, in the manner of mio's `tests/util`.
//!
//! Notation follows the worked examples of docs/semantics.md §4.8 (the sections, §, cited
//! here are that document's): `ch(..)` applies changes with no event slots (it never
//! blocks, whatever the timeout), `poll(..)` collects with a zero timeout, `get(..)` waits.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::ffi::c_void;
use std::io;
use std::time::Duration;

use kq::{Kevent, Kqueue, Personality};
use kq::{EVFILT_USER, EV_ADD, EV_DELETE, EV_DISABLE, EV_ENABLE, EV_ERROR, EV_FORCEONESHOT};

/// Both personalities, NetBSD (the reference) first.
pub const PERSONALITIES: [Personality; 2] = [Personality::NetBsd, Personality::FreeBsd];

/// Generates one `#[test]` per personality for a function `fn(Personality)`:
/// `both!(u1_add_and_delete)` gives the tests `u1_add_and_delete::netbsd` and
/// `u1_add_and_delete::freebsd`.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn netbsd() {
                    super::$name(kq::Personality::NetBsd)
                }
                #[test]
                fn freebsd() {
                    super::$name(kq::Personality::FreeBsd)
                }
            }
        )*
    };
}

/// A new kqueue of personality `p`.
pub fn kq(p: Personality) -> Kqueue {
    let kq = Kqueue::with_personality(p).expect("kqueue()");
    assert_eq!(kq.personality(), p);
    kq
}

/// A pointer-sized opaque value for `udata` (never dereferenced).
pub fn ptr(v: usize) -> *mut c_void {
    v as *mut c_void
}

/// An EVFILT_USER change with a NULL udata.
pub fn user(ident: usize, flags: u16, fflags: u32, data: isize) -> Kevent {
    Kevent::new(
        ident,
        EVFILT_USER,
        flags,
        fflags,
        data,
        std::ptr::null_mut(),
    )
}

/// An EVFILT_USER change with a udata.
pub fn user_u(ident: usize, flags: u16, fflags: u32, data: isize, udata: usize) -> Kevent {
    Kevent::new(ident, EVFILT_USER, flags, fflags, data, ptr(udata))
}

/// `ch(..)` of §4.8: the changes, no event slots, NULL timeout (never blocks: §1.2).
pub fn ch(kq: &Kqueue, changes: &[Kevent]) -> io::Result<usize> {
    kq.kevent(changes, &mut [], None)
}

/// `ch(..)` that must succeed (returns 0).
#[track_caller]
pub fn ch_ok(kq: &Kqueue, changes: &[Kevent]) {
    match ch(kq, changes) {
        Ok(0) => {}
        other => panic!("changes {changes:?}: expected Ok(0), got {other:?}"),
    }
}

/// `ch(..)` that must fail with `errno`.
#[track_caller]
pub fn ch_err(kq: &Kqueue, changes: &[Kevent], errno: i32) {
    match ch(kq, changes) {
        Err(e) if e.raw_os_error() == Some(errno) => {}
        other => panic!(
            "changes {changes:?}: expected errno {errno} ({}), got {other:?}",
            io::Error::from_raw_os_error(errno)
        ),
    }
}

/// Triggers user event `ident` (NOTE_TRIGGER, no FF op, data 0, udata NULL).
#[track_caller]
pub fn trigger(kq: &Kqueue, ident: usize) {
    ch_ok(kq, &[user(ident, 0, kq::NOTE_TRIGGER, 0)]);
}

/// A record that no kevent() call writes, to see which slots were written.
pub fn sentinel() -> Kevent {
    Kevent::new(
        0xdead_beef,
        0x7777,
        0xa5a5,
        0x5a5a_5a5a,
        -0x1234_5678,
        ptr(0xfeed),
    )
}

/// Collects up to `n` events with the given timeout and returns them. Slots past the
/// returned count must be left untouched.
#[track_caller]
pub fn get(kq: &Kqueue, n: usize, timeout: Option<Duration>) -> Vec<Kevent> {
    let mut evs = vec![sentinel(); n];
    let got = kq.kevent(&[], &mut evs, timeout).expect("kevent (collect)");
    assert!(got <= n, "kevent returned {got} > nevents {n}");
    assert!(
        evs[got..].iter().all(|e| *e == sentinel()),
        "kevent wrote past its return value {got}: {evs:?}"
    );
    evs.truncate(got);
    evs
}

/// `poll` of §4.8: collect up to `n` events with a zero timeout.
#[track_caller]
pub fn poll(kq: &Kqueue, n: usize) -> Vec<Kevent> {
    get(kq, n, Some(Duration::ZERO))
}

/// Polls with room for 8 and expects nothing.
#[track_caller]
pub fn expect_no_events(kq: &Kqueue) {
    let evs = poll(kq, 8);
    assert!(evs.is_empty(), "expected no events, got {evs:?}");
}

/// Polls with room for 8 and expects exactly one record, which it returns.
#[track_caller]
pub fn expect_one(kq: &Kqueue) -> Kevent {
    let evs = poll(kq, 8);
    assert_eq!(evs.len(), 1, "expected exactly one event, got {evs:?}");
    evs[0]
}

/// Asserts a delivered EVFILT_USER record field by field.
#[track_caller]
pub fn assert_user(ev: &Kevent, ident: usize, flags: u16, fflags: u32, data: isize) {
    assert_eq!(
        (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data),
        (ident, EVFILT_USER, flags, fflags, data),
        "record {ev:?}: expected ident {ident}, EVFILT_USER, flags {flags:#x}, fflags {fflags:#x}, data {data}"
    );
}

/// Asserts an EV_ERROR report entry (§1.3): flags exactly EV_ERROR, data the
/// errno (0 for a receipt).
#[track_caller]
pub fn assert_report(ev: &Kevent, ident: usize, filter: i16, errno: i32) {
    assert_eq!(
        (ev.ident, ev.filter, ev.flags, ev.data),
        (ident, filter, EV_ERROR, errno as isize),
        "report {ev:?}: expected ident {ident}, filter {filter}, flags EV_ERROR, data {errno}"
    );
}

/// The flags a knote created with `flags` reports (§2.1): NetBSD stores them verbatim,
/// FreeBSD strips EV_ADD, EV_DELETE, EV_ENABLE, EV_DISABLE and EV_FORCEONESHOT.
pub fn delivered_flags(p: Personality, flags: u16) -> u16 {
    match p {
        Personality::NetBsd => flags,
        Personality::FreeBsd => {
            flags & !(EV_ADD | EV_DELETE | EV_ENABLE | EV_DISABLE | EV_FORCEONESHOT)
        }
        p => unimplemented!("personality {p:?}"),
    }
}

/// The errno of an io::Result, or panics if it succeeded.
#[track_caller]
pub fn errno<T: std::fmt::Debug>(r: io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.raw_os_error().expect("an OS error"),
    }
}

/// poll(2) on the kqueue descriptor with `timeout_ms`; returns the revents.
pub fn poll_fd(kq: &Kqueue, timeout_ms: i32) -> i16 {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: kq.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    assert!(n >= 0, "poll(2): {}", io::Error::last_os_error());
    pfd.revents
}

/// Compile-time check that a type is Send + Sync.
pub fn assert_send_sync<T: Send + Sync>() {}
