//! `libkqueue.so.0`: the C ABI of `<sys/event.h>` (`include/sys/event.h`) over the
//! [`kq`] engine, a drop-in for libkqueue 2.x on Linux.
//!
//! This crate only translates: C integers and pointers become the engine's types, the
//! engine's `Errno` becomes `-1` and `errno`. All kqueue behaviour lives in [`kq`].
//!
//! * `kqueue()` creates a kqueue with the FreeBSD personality, or NetBSD's when the
//!   environment has `KQUEUE_PERSONALITY=netbsd` (any case) at the time of the call.
//! * The NetBSD-flavour ABI of `include/netbsd/sys/event.h` (module `netbsd`) has entry
//!   points of its own, `__kqueue_netbsd_kqueue`, `__kqueue_netbsd_kqueue1` and
//!   `__kqueue_netbsd_kevent`: NetBSD's 40-byte `struct kevent` and numbering, and kqueues
//!   that always have the NetBSD personality.
//! * `kevent()` follows the BSD system call (docs/semantics.md §1). Negative counts give
//!   `EINVAL`; a list or timeout pointer that cannot be user memory (NULL with a non-zero
//!   count, a small integer, -1, a kernel address) gives `EFAULT`; a descriptor that is not
//!   a kqueue of this process gives `EBADF`.
//! * `close()`, `dup2()`, `dup3()` and `close_range()` are defined here too (module
//!   `interpose` says when they replace the C library's): closing a descriptor number
//!   drops the knotes attached to it, as the BSD kernels do, before the C library closes it.
//! * Nothing unwinds into C: a panic inside the library makes the call fail with
//!   `ENOMEM` (in builds with `panic = "abort"` it aborts instead).

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::ffi::c_int;
use std::os::fd::BorrowedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

mod interpose;
mod netbsd;

use kq::{ChangeList, Errno, EventList, Kevent, Kqueue, Personality, Timespec};

/// Sets the calling thread's `errno`.
fn set_errno(e: c_int) {
    // SAFETY: `__errno_location` returns a valid pointer to the calling thread's errno,
    // which only this thread accesses.
    unsafe { *libc::__errno_location() = e };
}

/// Runs the body of an exported function: `Ok(n)` returns `n`, `Err(e)` returns -1 with
/// errno `e`, and a panic returns -1 with errno `ENOMEM` instead of unwinding into C.
fn ffi_call(body: impl FnOnce() -> Result<c_int, Errno>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            set_errno(e.raw());
            -1
        }
        Err(_) => {
            set_errno(libc::ENOMEM);
            -1
        }
    }
}

/// The personality of a kqueue created from C: FreeBSD, unless the environment says
/// `KQUEUE_PERSONALITY=netbsd`.
fn personality_from_env() -> Personality {
    match std::env::var_os("KQUEUE_PERSONALITY") {
        Some(v) if v.eq_ignore_ascii_case("netbsd") => Personality::NetBsd,
        _ => Personality::FreeBsd,
    }
}

/// A new kqueue descriptor with the given personality (close-on-exec).
fn new_kqueue(personality: Personality) -> Result<c_int, Errno> {
    static HOOKED: std::sync::Once = std::sync::Once::new();
    HOOKED.call_once(|| kq::set_close_hooked(interpose::in_effect()));
    Ok(Kqueue::new_raw_fd(personality)?)
}

/// `int kqueue(void)`: a new kqueue descriptor, or -1 with errno set.
#[no_mangle]
pub extern "C" fn kqueue() -> c_int {
    ffi_call(|| new_kqueue(personality_from_env()))
}

/// `int kqueue1(int flags)` (NetBSD): as `kqueue()`; `flags` are accepted and ignored.
#[no_mangle]
pub extern "C" fn kqueue1(_flags: c_int) -> c_int {
    ffi_call(|| new_kqueue(personality_from_env()))
}

/// The C changelist: `len` records at `ptr`, read one at a time by value.
///
/// The array may be the eventlist too, so no Rust reference to it is ever made: each
/// record is copied out with a raw read, and the engine reads entry `i` before it writes
/// any event slot `<= i`.
struct CChanges {
    ptr: *const Kevent,
    len: usize,
}

impl ChangeList for CChanges {
    fn len(&self) -> usize {
        self.len
    }

    fn get(&mut self, i: usize) -> Kevent {
        assert!(i < self.len, "changelist index out of range");
        // SAFETY: the caller of kevent() promised `len` readable records at `ptr` (it is
        // non-NULL when len > 0, checked in kevent), and i < len. Every bit pattern is a
        // valid Kevent. An unaligned read tolerates a misaligned C array.
        unsafe { ptr::read_unaligned(self.ptr.add(i)) }
    }
}

/// The C eventlist: `len` writable slots at `ptr`, written one at a time by value.
struct CEvents {
    ptr: *mut Kevent,
    len: usize,
}

impl EventList for CEvents {
    fn len(&self) -> usize {
        self.len
    }

    fn put(&mut self, i: usize, ev: Kevent) {
        assert!(i < self.len, "eventlist index out of range");
        // SAFETY: the caller of kevent() promised `len` writable records at `ptr`
        // (non-NULL when len > 0, checked in kevent), and i < len. No reference to the
        // array exists, so writing through the raw pointer cannot invalidate one, even
        // when the array is also the changelist.
        unsafe { ptr::write_unaligned(self.ptr.add(i), ev) }
    }
}

/// The descriptor number `fd` as a `BorrowedFd` for the duration of one call; negative
/// numbers are never descriptors (`EBADF`).
fn borrow_fd<'a>(fd: c_int) -> Result<BorrowedFd<'a>, Errno> {
    if fd < 0 {
        return Err(Errno::BADF);
    }
    // SAFETY: fd is not -1 (the one value BorrowedFd cannot hold). The borrow lasts only
    // for the kevent() call that received the number from C, and the engine never closes
    // it. If the number is not an open descriptor (or is closed by another thread during
    // the call), the engine's lookups and system calls on it fail with EBADF, which is the
    // result kevent() must give; no memory safety depends on the descriptor being open.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

#[cfg(not(target_os = "linux"))]
compile_error!("the kqueue C library is built on the kq engine, which is for Linux only");

/// Lowest address a process can map (the usual vm.mmap_min_addr).
const USER_MIN: usize = 4096;

/// Where user memory can be, per architecture: the highest end address of user space
/// (`USER_END`) and the pointer bits the kernel ignores in user pointers (`USER_TAG_BITS`,
/// taken off before comparing). Each is the most a valid pointer can have, so that no valid
/// pointer is ever refused: the checks only catch values that cannot be user memory.
#[cfg(target_arch = "x86_64")]
mod layout {
    /// End of user space with 5-level paging (2^56 - 4096); 4-level ends lower, at
    /// 2^47 - 4096.
    pub(crate) const USER_END: usize = 0x00ff_ffff_ffff_f000;
    /// Linear address masking (LAM_U57): a program may keep a tag in bits 57-62 of its
    /// pointers. Bit 63 set is always a kernel address.
    pub(crate) const USER_TAG_BITS: usize = 0x7e00_0000_0000_0000;
}
#[cfg(target_arch = "aarch64")]
mod layout {
    /// End of user space with 52-bit virtual addresses (the most arm64 Linux gives a
    /// process); 48-bit ones end lower.
    pub(crate) const USER_END: usize = 1 << 52;
    /// Top-byte ignore: bits 56-63 of a user pointer may hold a tag (hardware-assisted
    /// sanitizers, memory tagging) that the hardware and the kernel ignore. Kernel addresses
    /// (bits 48-55 set) stay above `USER_END` once the top byte is gone.
    pub(crate) const USER_TAG_BITS: usize = 0xff00_0000_0000_0000;
}
#[cfg(target_pointer_width = "32")]
mod layout {
    /// A 32-bit process on a 64-bit kernel may map up to 4 GiB - 8 KiB (a native i686 kernel
    /// with the usual 3 GiB split ends lower): only the last page is never user memory.
    pub(crate) const USER_END: usize = 0xffff_f000;
    /// No tag bits.
    pub(crate) const USER_TAG_BITS: usize = 0;
}
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_pointer_width = "32"
)))]
mod layout {
    /// Other 64-bit architectures: nothing assumed beyond the last page.
    pub(crate) const USER_END: usize = usize::MAX - 4095;
    /// No tag bits.
    pub(crate) const USER_TAG_BITS: usize = 0;
}
use layout::{USER_END, USER_TAG_BITS};

/// Whether `len` records at `ptr` can be user memory at all: not NULL (when `len > 0`), not
/// in the first page, not past the end of user space (tag bits aside, see `layout`), no
/// wrap-around. This catches NULL, small integers, -1 and kernel addresses for free; a
/// pointer into unmapped user memory still faults, as with any C library (telling it apart
/// costs a ~1.5 us system call, such as mincore or process_vm_readv, on every call).
fn user_range<T>(ptr: *const T, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    let start = ptr as usize & !USER_TAG_BITS;
    let end = len
        .checked_mul(std::mem::size_of::<T>())
        .and_then(|bytes| start.checked_add(bytes));
    start >= USER_MIN && end.is_some_and(|end| end <= USER_END)
}

/// Converts a C count to a length: negative counts are `EINVAL`.
fn count(n: c_int) -> Result<usize, Errno> {
    usize::try_from(n).map_err(|_| Errno::INVAL)
}

/// Reads the timeout argument of kevent(): `None` for NULL, `EFAULT` for a pointer that
/// cannot be user memory. The value is validated by the engine.
///
/// # Safety
///
/// `timeout` is NULL or points to a readable `struct timespec` (as the caller of kevent()
/// promised).
unsafe fn read_timeout(timeout: *const libc::timespec) -> Result<Option<Timespec>, Errno> {
    if timeout.is_null() {
        return Ok(None);
    }
    if !user_range(timeout, 1) {
        return Err(Errno::FAULT);
    }
    // SAFETY: the caller passed a non-NULL pointer to a readable timespec; every bit
    // pattern of it is valid.
    let ts = unsafe { ptr::read_unaligned(timeout) };
    Ok(Some(Timespec {
        tv_sec: ts.tv_sec,
        tv_nsec: ts.tv_nsec,
    }))
}

/// `int kevent(int kq, const struct kevent *changelist, int nchanges,
/// struct kevent *eventlist, int nevents, const struct timespec *timeout)`.
///
/// Returns the number of entries written to `eventlist`, or -1 with errno set.
///
/// # Safety
///
/// As for the C function: `changelist` must point to `nchanges` readable records and
/// `eventlist` to `nevents` writable records (they may be the same array), and `timeout`
/// must be NULL or point to a readable `struct timespec`. NULL lists with non-zero counts
/// and pointers that cannot be user memory (small integers, -1, kernel addresses) are
/// detected and give `EFAULT`.
#[no_mangle]
pub unsafe extern "C" fn kevent(
    kq: c_int,
    changelist: *const Kevent,
    nchanges: c_int,
    eventlist: *mut Kevent,
    nevents: c_int,
    timeout: *const libc::timespec,
) -> c_int {
    ffi_call(|| {
        // docs/semantics.md §1.2 step 1: the descriptor is checked before anything else.
        let kqueue = Kqueue::find(borrow_fd(kq)?)?;
        let changes = CChanges {
            ptr: changelist,
            len: count(nchanges)?,
        };
        let events = CEvents {
            ptr: eventlist,
            len: count(nevents)?,
        };
        if !user_range(changes.ptr, changes.len) || !user_range(events.ptr, events.len) {
            return Err(Errno::FAULT);
        }
        if !timeout.is_null() && !user_range(timeout, 1) {
            return Err(Errno::FAULT);
        }
        let timeout = if timeout.is_null() {
            None
        } else {
            // SAFETY: the caller passed a non-NULL pointer to a readable timespec; every
            // bit pattern of it is valid. Its value is validated by the engine.
            let ts = unsafe { ptr::read_unaligned(timeout) };
            Some(Timespec {
                tv_sec: ts.tv_sec,
                tv_nsec: ts.tv_nsec,
            })
        };
        let n = kqueue.kevent_raw(changes, events, timeout)?;
        // n <= nevents, which is a c_int.
        Ok(c_int::try_from(n).unwrap_or(c_int::MAX))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(addr: usize) -> *const Kevent {
        addr as *const Kevent
    }

    #[test]
    fn user_range_refuses_what_cannot_be_user_memory() {
        let kev = std::mem::size_of::<Kevent>();
        for bad in [0, 1, 4095, usize::MAX, usize::MAX - kev + 1] {
            assert!(!user_range(at(bad), 1), "{bad:#x}");
        }
        // Wrap-around and past the end.
        assert!(!user_range(at(USER_MIN), usize::MAX / kev));
        assert!(!user_range(at(USER_END - kev + 1), 1));
        // Nothing to read: anything goes, NULL included.
        assert!(user_range(at(0), 0));
    }

    #[test]
    fn user_range_accepts_every_user_address() {
        let kev = std::mem::size_of::<Kevent>();
        let local = Kevent::default();
        assert!(user_range(&local as *const Kevent, 1));
        assert!(user_range(at(USER_MIN), 1));
        assert!(user_range(at(USER_END - kev), 1));
        let heap = vec![Kevent::default(); 100];
        assert!(user_range(heap.as_ptr(), heap.len()));
    }

    /// A tagged pointer (top-byte ignore on aarch64, address masking on x86_64) is as good
    /// as the untagged one.
    #[test]
    fn user_range_ignores_tag_bits() {
        let local = Kevent::default();
        let addr = &local as *const Kevent as usize;
        for tag in [USER_TAG_BITS, USER_TAG_BITS & USER_TAG_BITS.wrapping_neg()] {
            assert!(user_range(at(addr | tag), 1), "{:#x}", addr | tag);
        }
        #[cfg(target_arch = "aarch64")]
        {
            assert!(user_range(at(addr | 0x5a00_0000_0000_0000), 1));
            // A kernel address, tag or not.
            assert!(!user_range(at(0xffff_0000_0000_1000), 1));
            assert!(!user_range(at(0x00ff_8000_0000_1000), 1));
        }
        #[cfg(target_arch = "x86_64")]
        {
            assert!(user_range(at(addr | 0x3e00_0000_0000_0000), 1));
            assert!(!user_range(at(0xffff_8000_0000_1000), 1));
            assert!(!user_range(at(addr | 0x8000_0000_0000_0000), 1));
        }
    }
}
