//! `struct kevent`, the errno type and the change/event list abstractions of `kevent()`.

use std::ffi::c_void;
use std::fmt;

/// One change or one event: `struct kevent` of libkqueue on Linux (32 bytes on 64-bit
/// targets, 20 on 32-bit ones: `ident`, `data` and `udata` are pointer-sized).
///
/// The layout is the C struct's, field for field, so a `*const Kevent` can be handed to or
/// taken from C unchanged.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kevent {
    /// Identifier of the event source: a descriptor, a timer id, a user event id.
    pub ident: usize,
    /// The filter (`EVFILT_*`).
    pub filter: i16,
    /// Action flags on input (`EV_ADD`, ...), status flags on output.
    pub flags: u16,
    /// Filter-specific flags (`NOTE_*`).
    pub fflags: u32,
    /// Filter-specific data.
    pub data: isize,
    /// Opaque user value, returned unchanged.
    pub udata: *mut c_void,
}

const _: () = assert!(
    std::mem::size_of::<Kevent>()
        == 2 * std::mem::size_of::<usize>() + 8 + std::mem::size_of::<*mut c_void>()
);

// SAFETY: `udata` is an opaque value that the library stores and hands back; it never
// dereferences it. Sending or sharing the number between threads is what C programs do
// with it, and whoever dereferences it is responsible for what it points to.
#[allow(unsafe_code)]
unsafe impl Send for Kevent {}
// SAFETY: as above; a `Kevent` has no interior mutability.
#[allow(unsafe_code)]
unsafe impl Sync for Kevent {}

impl Default for Kevent {
    fn default() -> Self {
        Kevent {
            ident: 0,
            filter: 0,
            flags: 0,
            fflags: 0,
            data: 0,
            udata: std::ptr::null_mut(),
        }
    }
}

impl Kevent {
    /// Builds a record, like the C macro `EV_SET`.
    #[doc(alias = "EV_SET")]
    pub const fn new(
        ident: usize,
        filter: i16,
        flags: u16,
        fflags: u32,
        data: isize,
        udata: *mut c_void,
    ) -> Kevent {
        Kevent {
            ident,
            filter,
            flags,
            fflags,
            data,
            udata,
        }
    }
}

impl fmt::Debug for Kevent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kevent")
            .field("ident", &self.ident)
            .field("filter", &self.filter)
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("fflags", &format_args!("{:#x}", self.fflags))
            .field("data", &self.data)
            .field("udata", &self.udata)
            .finish()
    }
}

/// An errno value: the error type of the engine and of filter hooks, as of the system
/// call. Public functions return [`std::io::Error`], which it converts to and from.
///
/// ```
/// use kq::Errno;
/// let e: std::io::Error = Errno::NOENT.into();
/// assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
/// assert_eq!(Errno::from(e), Errno::NOENT);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// Bad descriptor.
    pub const BADF: Errno = Errno(libc::EBADF);
    /// Invalid argument.
    pub const INVAL: Errno = Errno(libc::EINVAL);
    /// No such knote.
    pub const NOENT: Errno = Errno(libc::ENOENT);
    /// Out of memory or over a limit.
    pub const NOMEM: Errno = Errno(libc::ENOMEM);
    /// Interrupted by a signal.
    pub const INTR: Errno = Errno(libc::EINTR);
    /// Bad address.
    pub const FAULT: Errno = Errno(libc::EFAULT);

    /// The raw errno number.
    pub const fn raw(self) -> i32 {
        self.0
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Errno({}: {})",
            self.0,
            std::io::Error::from_raw_os_error(self.0)
        )
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&std::io::Error::from_raw_os_error(self.0), f)
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> Self {
        std::io::Error::from_raw_os_error(e.0)
    }
}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Self {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl From<rustix::io::Errno> for Errno {
    fn from(e: rustix::io::Errno) -> Self {
        Errno(e.raw_os_error())
    }
}

/// A `timespec` as `kevent()` receives it: not yet validated (see [`Kqueue::kevent_raw`]).
///
/// The fields have the C library's types (`time_t` and `long`: 64 bits on x86_64 and
/// aarch64, 32 bits on i686), so a C caller's `struct timespec` converts field for field.
///
/// [`Kqueue::kevent_raw`]: crate::Kqueue::kevent_raw
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timespec {
    /// Seconds.
    pub tv_sec: libc::time_t,
    /// Nanoseconds, valid in `0..1_000_000_000`.
    pub tv_nsec: libc::c_long,
}

/// The source of the changes of one `kevent()` call, read in order, each entry once.
///
/// Entry `i` is always read before any event is written at an index `<= i`, so a C caller
/// may pass the same array as changelist and eventlist.
///
/// `get` is called with the kqueue locked. It must not call back into a kqueue (such a
/// call fails with EDEADLK) and must not block; if it panics, the kqueue is poisoned (every
/// later call fails with EBADF).
///
/// # Examples
///
/// Changes made on the fly, without a buffer:
///
/// ```
/// use kq::{Change, ChangeList, Kevent, Kqueue};
///
/// struct AddUsers(usize);
/// impl ChangeList for AddUsers {
///     fn len(&self) -> usize {
///         self.0
///     }
///     fn get(&mut self, i: usize) -> Kevent {
///         Change::user(i).add().clear().kevent()
///     }
/// }
///
/// let kq = Kqueue::new()?;
/// kq.kevent_raw(AddUsers(100), &mut [][..], None)?;
/// kq.trigger(99, 0)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait ChangeList {
    /// Number of changes.
    fn len(&self) -> usize;
    /// Whether there are no changes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads change `i` (`i < len()`).
    fn get(&mut self, i: usize) -> Kevent;
}

/// The destination of the reports and events of one `kevent()` call.
///
/// `put` is called with the kqueue locked. It must not call back into a kqueue (such a
/// call fails with EDEADLK) and must not block; if it panics, the kqueue is poisoned (every
/// later call fails with EBADF).
///
/// # Examples
///
/// Counting events without storing them:
///
/// ```
/// use kq::{EventList, Kevent, Kqueue, Timespec};
///
/// struct Count(usize);
/// impl EventList for &mut Count {
///     fn len(&self) -> usize {
///         64
///     }
///     fn put(&mut self, _i: usize, _ev: Kevent) {
///         self.0 += 1;
///     }
/// }
///
/// let kq = Kqueue::new()?;
/// kq.add_user(1)?;
/// kq.trigger(1, 0)?;
/// let mut count = Count(0);
/// let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
/// assert_eq!(kq.kevent_raw(&[][..], &mut count, Some(zero))?, 1);
/// assert_eq!(count.0, 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait EventList {
    /// Number of slots.
    fn len(&self) -> usize;
    /// Whether there are no slots.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes slot `i` (`i < len()`).
    fn put(&mut self, i: usize, ev: Kevent);
}

impl ChangeList for &[Kevent] {
    fn len(&self) -> usize {
        <[Kevent]>::len(self)
    }
    fn get(&mut self, i: usize) -> Kevent {
        self[i]
    }
}

impl EventList for &mut [Kevent] {
    fn len(&self) -> usize {
        <[Kevent]>::len(self)
    }
    fn put(&mut self, i: usize, ev: Kevent) {
        self[i] = ev;
    }
}

impl<const N: usize> ChangeList for &[Kevent; N] {
    fn len(&self) -> usize {
        N
    }
    fn get(&mut self, i: usize) -> Kevent {
        self[i]
    }
}

impl ChangeList for &Vec<Kevent> {
    fn len(&self) -> usize {
        <[Kevent]>::len(self)
    }
    fn get(&mut self, i: usize) -> Kevent {
        self[i]
    }
}

impl<const N: usize> EventList for &mut [Kevent; N] {
    fn len(&self) -> usize {
        N
    }
    fn put(&mut self, i: usize, ev: Kevent) {
        self[i] = ev;
    }
}

impl EventList for &mut Vec<Kevent> {
    fn len(&self) -> usize {
        <[Kevent]>::len(self)
    }
    fn put(&mut self, i: usize, ev: Kevent) {
        self[i] = ev;
    }
}
