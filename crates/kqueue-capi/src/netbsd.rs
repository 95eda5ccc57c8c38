//! The NetBSD-flavour C ABI of `include/netbsd/sys/event.h`: `kqueue()`, `kqueue1()` and
//! `kevent()` as NetBSD 10 declares them, exported as `__kqueue_netbsd_kqueue`,
//! `__kqueue_netbsd_kqueue1` and `__kqueue_netbsd_kevent` (the header binds the C names to
//! them with assembler labels).
//!
//! * The kqueues these functions make always have the NetBSD personality, whatever the
//!   environment says. `kevent()` works on any kqueue of the process, and a kqueue keeps
//!   the personality it was made with: one from the libkqueue-compatible `kqueue()` goes
//!   on behaving as FreeBSD's, only its records are NetBSD's.
//! * Records are NetBSD's `struct kevent` (40 bytes on LP64: 32-bit filter, flags and
//!   fflags, 64-bit data). Each change is read by value and translated to the engine's
//!   [`Kevent`] ([`to_engine`]); each report and event is translated back
//!   ([`from_engine`]) and written by value, so the two lists may be one array.
//! * Translation: NetBSD's filter numbers (`EVFILT_READ` 0 ... `EVFILT_EMPTY` 9) become the
//!   engine's; flags keep their values (NetBSD's `EV_*` bits are the engine's) but must fit
//!   in 16 bits; `EVFILT_TIMER` units, an enumerated field in NetBSD's fflags
//!   (`NOTE_NSECONDS` is 3, `NOTE_ABSTIME` 0x10), become the engine's unit bits and back;
//!   other fflags (user events, low-water marks) are the same in both.
//! * A change that cannot be translated is given to the engine in a form the engine
//!   refuses with `EINVAL` at the point where NetBSD does: a filter number no kqueue knows
//!   for an unknown filter or flags above 16 bits (NetBSD does not define any), every unit
//!   at once for timer fflags with a bit NetBSD does not define. The report of such a
//!   change carries the caller's own filter and fflags again: the engine writes the report
//!   of change `i` right after reading change `i`, so the change read last is the one the
//!   report is about ([`Shared`]).
//! * Counts are `size_t`: above `INT_MAX` they give `EINVAL` (the result is an `int`);
//!   descriptor, pointer and timeout checks are those of the libkqueue-compatible
//!   `kevent()`, in the same order.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::ptr;

use kq::{ChangeList, Errno, EventList, Kevent, Kqueue, Personality};

use crate::{borrow_fd, ffi_call, interpose, new_kqueue, read_timeout, user_range};

/// NetBSD's `struct kevent`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NbKevent {
    pub(crate) ident: usize,
    pub(crate) filter: u32,
    pub(crate) flags: u32,
    pub(crate) fflags: u32,
    pub(crate) data: i64,
    pub(crate) udata: *mut c_void,
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<NbKevent>() == 40);
// i686: `data` is 4-aligned in C as in Rust.
#[cfg(target_pointer_width = "32")]
const _: () = assert!(std::mem::size_of::<NbKevent>() == 28);

impl NbKevent {
    const ZERO: NbKevent = NbKevent {
        ident: 0,
        filter: 0,
        flags: 0,
        fflags: 0,
        data: 0,
        udata: ptr::null_mut(),
    };
}

/// NetBSD's values where they differ from the engine's.
mod nb {
    /// `EVFILT_TIMER`.
    pub const EVFILT_TIMER: u32 = 6;
    /// The enumerated unit field of timer fflags.
    pub const NOTE_TIMER_UNITMASK: u32 = 0x3;
    /// Timer unit: seconds.
    pub const NOTE_SECONDS: u32 = 1;
    /// Timer unit: microseconds.
    pub const NOTE_USECONDS: u32 = 2;
    /// Timer unit: nanoseconds.
    pub const NOTE_NSECONDS: u32 = 3;
    /// `data` is an absolute time.
    pub const NOTE_ABSTIME: u32 = 0x10;
}

/// The engine's number of each NetBSD filter, indexed by NetBSD's number.
const FILTERS: [i16; 10] = [
    kq::EVFILT_READ,
    kq::EVFILT_WRITE,
    kq::EVFILT_AIO,
    kq::EVFILT_VNODE,
    kq::EVFILT_PROC,
    kq::EVFILT_SIGNAL,
    kq::EVFILT_TIMER,
    kq::EVFILT_FS,
    kq::EVFILT_USER,
    kq::EVFILT_EMPTY,
];

/// The engine's filter number for a change it must refuse with `EINVAL`: no filter has it
/// (system filters are small negative numbers, registered ones positive), and it is not 0,
/// which a FreeBSD-personality kqueue skips without a word.
const REFUSED_FILTER: i16 = i16::MIN;

/// The engine's unit bits of a timer.
const ENGINE_UNITS: u32 = kq::NOTE_SECONDS | kq::NOTE_USECONDS | kq::NOTE_NSECONDS;

/// Timer fflags the engine refuses with `EINVAL` where it validates them (an `EV_ADD`):
/// every unit at once.
const REFUSED_TIMER_FFLAGS: u32 = ENGINE_UNITS;

/// NetBSD timer fflags as the engine's: the unit value becomes a unit bit, `NOTE_ABSTIME`
/// the engine's `NOTE_ABSOLUTE`; any other bit makes them [`REFUSED_TIMER_FFLAGS`].
fn timer_fflags_in(f: u32) -> u32 {
    if f & !(nb::NOTE_TIMER_UNITMASK | nb::NOTE_ABSTIME) != 0 {
        return REFUSED_TIMER_FFLAGS;
    }
    let unit = match f & nb::NOTE_TIMER_UNITMASK {
        nb::NOTE_SECONDS => kq::NOTE_SECONDS,
        nb::NOTE_USECONDS => kq::NOTE_USECONDS,
        nb::NOTE_NSECONDS => kq::NOTE_NSECONDS,
        _ => kq::NOTE_MSECONDS,
    };
    let absolute = if f & nb::NOTE_ABSTIME != 0 {
        kq::NOTE_ABSOLUTE
    } else {
        0
    };
    unit | absolute
}

/// The engine's timer fflags as NetBSD's (the inverse of [`timer_fflags_in`] on the
/// values it produces; other bits are kept).
fn timer_fflags_out(f: u32) -> u32 {
    let unit = match f & ENGINE_UNITS {
        kq::NOTE_SECONDS => nb::NOTE_SECONDS,
        kq::NOTE_USECONDS => nb::NOTE_USECONDS,
        kq::NOTE_NSECONDS => nb::NOTE_NSECONDS,
        _ => 0,
    };
    let absolute = if f & kq::NOTE_ABSOLUTE != 0 {
        nb::NOTE_ABSTIME
    } else {
        0
    };
    unit | absolute | (f & !(ENGINE_UNITS | kq::NOTE_ABSOLUTE))
}

/// A NetBSD change as the engine's record. A change the engine cannot be given as is gets
/// [`REFUSED_FILTER`], or [`REFUSED_TIMER_FFLAGS`] for timer fflags NetBSD does not define.
pub(crate) fn to_engine(c: &NbKevent) -> Kevent {
    let filter = usize::try_from(c.filter)
        .ok()
        .and_then(|i| FILTERS.get(i).copied());
    let flags = u16::try_from(c.flags).ok();
    let data = isize::try_from(c.data).ok();
    match (filter, flags, data) {
        (Some(filter), Some(flags), Some(data)) => {
            let fflags = if c.filter == nb::EVFILT_TIMER {
                timer_fflags_in(c.fflags)
            } else {
                c.fflags
            };
            Kevent::new(c.ident, filter, flags, fflags, data, c.udata)
        }
        _ => Kevent::new(
            c.ident,
            REFUSED_FILTER,
            c.flags as u16,
            c.fflags,
            0,
            c.udata,
        ),
    }
}

/// Whether engine record `ev` is the report of a change that [`to_engine`] could not
/// translate faithfully, whose filter and fflags must be the caller's own again.
fn reports_refused_change(ev: &Kevent) -> bool {
    ev.flags & kq::EV_ERROR != 0
        && (ev.filter == REFUSED_FILTER
            || (ev.filter == kq::EVFILT_TIMER && ev.fflags & ENGINE_UNITS == REFUSED_TIMER_FFLAGS))
}

/// An engine record (event or report) as NetBSD's. `last` is the change read last: for the
/// report of a change [`to_engine`] refused, its filter and fflags are the caller's.
pub(crate) fn from_engine(ev: &Kevent, last: &NbKevent) -> NbKevent {
    let (filter, fflags) = if reports_refused_change(ev) {
        (last.filter, last.fflags)
    } else {
        let filter = FILTERS
            .iter()
            .position(|&f| f == ev.filter)
            // A filter with no NetBSD number (never a system filter): its engine number,
            // sign-extended.
            .map_or(i32::from(ev.filter) as u32, |i| i as u32);
        let fflags = if ev.filter == kq::EVFILT_TIMER {
            timer_fflags_out(ev.fflags)
        } else {
            ev.fflags
        };
        (filter, fflags)
    };
    NbKevent {
        ident: ev.ident,
        filter,
        flags: u32::from(ev.flags),
        fflags,
        data: ev.data as i64,
        udata: ev.udata,
    }
}

/// What the change list and the event list of one call share: the change read last, as
/// the caller wrote it.
type Shared = Cell<NbKevent>;

/// The C changelist of NetBSD records, read one at a time by value (see `CChanges` in the
/// crate root: the array may be the eventlist too).
struct NbChanges<'a> {
    ptr: *const NbKevent,
    len: usize,
    last: &'a Shared,
}

impl ChangeList for NbChanges<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn get(&mut self, i: usize) -> Kevent {
        assert!(i < self.len, "changelist index out of range");
        // SAFETY: the caller of kevent() promised `len` readable records at `ptr` (non-NULL
        // and within user space when len > 0, checked in kevent), and i < len. Every bit
        // pattern is a valid NbKevent. An unaligned read tolerates a misaligned C array.
        let c = unsafe { ptr::read_unaligned(self.ptr.add(i)) };
        self.last.set(c);
        to_engine(&c)
    }
}

/// The C eventlist of NetBSD records, written one at a time by value.
struct NbEvents<'a> {
    ptr: *mut NbKevent,
    len: usize,
    last: &'a Shared,
}

impl EventList for NbEvents<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn put(&mut self, i: usize, ev: Kevent) {
        assert!(i < self.len, "eventlist index out of range");
        let out = from_engine(&ev, &self.last.get());
        // SAFETY: the caller of kevent() promised `len` writable records at `ptr`
        // (non-NULL and within user space when len > 0, checked in kevent), and i < len.
        // No reference to the array exists, so writing through the raw pointer cannot
        // invalidate one, even when the array is also the changelist.
        unsafe { ptr::write_unaligned(self.ptr.add(i), out) }
    }
}

/// Converts a `size_t` count: above `INT_MAX` it is `EINVAL` (kevent() returns an `int`).
fn count(n: usize) -> Result<usize, Errno> {
    if n > c_int::MAX as usize {
        Err(Errno::INVAL)
    } else {
        Ok(n)
    }
}

/// `kqueue1()`: a NetBSD-personality kqueue whose descriptor has the flags asked for.
fn kqueue1_with(flags: c_int) -> Result<c_int, Errno> {
    if flags & !(libc::O_CLOEXEC | libc::O_NONBLOCK) != 0 {
        return Err(Errno::INVAL);
    }
    let fd = new_kqueue(Personality::NetBsd)?;
    let set = || -> Result<(), Errno> {
        // The descriptor is made close-on-exec; NetBSD's is not unless asked.
        if flags & libc::O_CLOEXEC == 0 {
            // SAFETY: fcntl on a descriptor this call just created and owns.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
                return Err(std::io::Error::last_os_error().into());
            }
        }
        if flags & libc::O_NONBLOCK != 0 {
            // SAFETY: as above. The kqueue is an epoll instance, which nothing reads:
            // the status flag only shows in F_GETFL, as on NetBSD.
            let old = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            // SAFETY: as above.
            if old == -1 || unsafe { libc::fcntl(fd, libc::F_SETFL, old | libc::O_NONBLOCK) } == -1
            {
                return Err(std::io::Error::last_os_error().into());
            }
        }
        Ok(())
    };
    if let Err(e) = set() {
        // Through the library's close(), which forgets the kqueue first.
        interpose::close(fd);
        return Err(e);
    }
    Ok(fd)
}

/// `int kqueue(void)` of the NetBSD header: `kqueue1(0)`.
#[export_name = "__kqueue_netbsd_kqueue"]
pub extern "C" fn netbsd_kqueue() -> c_int {
    ffi_call(|| kqueue1_with(0))
}

/// `int kqueue1(int flags)` of the NetBSD header: `O_CLOEXEC` and `O_NONBLOCK` are
/// honoured, any other flag is `EINVAL`.
#[export_name = "__kqueue_netbsd_kqueue1"]
pub extern "C" fn netbsd_kqueue1(flags: c_int) -> c_int {
    ffi_call(|| kqueue1_with(flags))
}

/// `int kevent(int kq, const struct kevent *changelist, size_t nchanges,
/// struct kevent *eventlist, size_t nevents, const struct timespec *timeout)` of the
/// NetBSD header, on NetBSD's records.
///
/// Returns the number of entries written to `eventlist`, or -1 with errno set.
///
/// # Safety
///
/// As for the C function: `changelist` must point to `nchanges` readable records and
/// `eventlist` to `nevents` writable records (they may be the same array), and `timeout`
/// must be NULL or point to a readable `struct timespec`. NULL lists with non-zero counts
/// and pointers that cannot be user memory are detected and give `EFAULT`.
#[export_name = "__kqueue_netbsd_kevent"]
pub unsafe extern "C" fn netbsd_kevent(
    kq: c_int,
    changelist: *const NbKevent,
    nchanges: usize,
    eventlist: *mut NbKevent,
    nevents: usize,
    timeout: *const libc::timespec,
) -> c_int {
    ffi_call(|| {
        // The descriptor is checked before anything else.
        let kqueue = Kqueue::find(borrow_fd(kq)?)?;
        let last = Shared::new(NbKevent::ZERO);
        let changes = NbChanges {
            ptr: changelist,
            len: count(nchanges)?,
            last: &last,
        };
        let events = NbEvents {
            ptr: eventlist,
            len: count(nevents)?,
            last: &last,
        };
        if !user_range(changes.ptr, changes.len) || !user_range(events.ptr, events.len) {
            return Err(Errno::FAULT);
        }
        // SAFETY: `timeout` is NULL or points to a readable timespec (the caller's promise).
        let timeout = unsafe { read_timeout(timeout) }?;
        let n = kqueue.kevent_raw(changes, events, timeout)?;
        // n <= nevents <= INT_MAX.
        Ok(c_int::try_from(n).unwrap_or(c_int::MAX))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(filter: u32, flags: u32, fflags: u32, data: i64) -> NbKevent {
        NbKevent {
            ident: 7,
            filter,
            flags,
            fflags,
            data,
            udata: 0x40 as *mut c_void,
        }
    }

    #[test]
    fn filters_map_both_ways() {
        for (nb, &engine) in FILTERS.iter().enumerate() {
            let c = change(nb as u32, 1, 0, 5);
            let k = to_engine(&c);
            assert_eq!((k.ident, k.filter, k.flags, k.data), (7, engine, 1, 5));
            assert_eq!(k.udata, c.udata);
            assert_eq!(from_engine(&k, &NbKevent::ZERO), c);
        }
    }

    #[test]
    fn timer_units_map_both_ways() {
        let cases = [
            (0, kq::NOTE_MSECONDS),
            (1, kq::NOTE_SECONDS),
            (2, kq::NOTE_USECONDS),
            (3, kq::NOTE_NSECONDS),
            (0x10, kq::NOTE_ABSOLUTE),
            (0x13, kq::NOTE_NSECONDS | kq::NOTE_ABSOLUTE),
        ];
        for (nb, engine) in cases {
            assert_eq!(timer_fflags_in(nb), engine, "{nb:#x}");
            assert_eq!(timer_fflags_out(engine), nb, "{nb:#x}");
        }
        for bad in [0x4, 0x8, 0x20, 0x8000_0000, 0x17] {
            assert_eq!(timer_fflags_in(bad), REFUSED_TIMER_FFLAGS, "{bad:#x}");
        }
        // Other filters' fflags are left alone.
        let c = change(8, 1, 0xc100_0003, 0);
        assert_eq!(to_engine(&c).fflags, 0xc100_0003);
    }

    #[test]
    fn untranslatable_changes_are_refused_and_reported_as_given() {
        for c in [
            change(10, 1, 0, 0),
            change(u32::MAX, 1, 0, 0),
            change(8, 0x1_0001, 0, 0),
        ] {
            let mut k = to_engine(&c);
            assert_eq!(k.filter, REFUSED_FILTER);
            k.flags = kq::EV_ERROR;
            k.data = libc::EINVAL as isize;
            let out = from_engine(&k, &c);
            assert_eq!((out.filter, out.fflags), (c.filter, c.fflags));
            assert_eq!((out.flags, out.data), (0x4000, libc::EINVAL as i64));
        }
        let c = change(6, 1, 0x24, 10);
        let mut k = to_engine(&c);
        assert_eq!(
            (k.filter, k.fflags),
            (kq::EVFILT_TIMER, REFUSED_TIMER_FFLAGS)
        );
        k.flags = kq::EV_ERROR;
        assert_eq!(from_engine(&k, &c).fflags, 0x24);
    }
}
