//! epoll: the kqueue descriptor itself is an epoll instance, and so is the monitor the
//! process-wide layer uses to notice closed kqueue numbers.
//!
//! Waiting uses epoll_pwait2 (Linux 5.11: nanosecond timeout, atomic signal mask) and falls
//! back to epoll_pwait (same atomic mask, timeout rounded up to whole milliseconds) where the
//! kernel lacks it, or where `KQ_NO_EPOLL_PWAIT2` is set in the environment (so that tests
//! run the fallback on any kernel).

use super::Fd;
use crate::kevent::Errno;
use rustix::event::epoll::{self as ep, CreateFlags, EventData, EventFlags};
use rustix::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

pub(crate) use libc::epoll_event as Event;

pub(crate) const IN: u32 = libc::EPOLLIN as u32;
pub(crate) const OUT: u32 = libc::EPOLLOUT as u32;
pub(crate) const ERR: u32 = libc::EPOLLERR as u32;
pub(crate) const HUP: u32 = libc::EPOLLHUP as u32;
pub(crate) const RDHUP: u32 = libc::EPOLLRDHUP as u32;
pub(crate) const ET: u32 = libc::EPOLLET as u32;
pub(crate) const ONESHOT: u32 = libc::EPOLLONESHOT as u32;

/// A new close-on-exec epoll instance.
pub(crate) fn create() -> Result<Fd, Errno> {
    Ok(ep::create(CreateFlags::CLOEXEC)?)
}

/// `EPOLL_CTL_ADD` of `fd` with interest `events` and user data `data`.
pub(crate) fn add(
    epoll: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    data: u64,
    events: u32,
) -> Result<(), Errno> {
    Ok(ep::add(
        epoll,
        fd,
        EventData::new_u64(data),
        EventFlags::from_bits_retain(events),
    )?)
}

/// `EPOLL_CTL_MOD`. ENOENT when `fd` is not registered: in particular when the number now
/// names another file than the one registered (epoll keys on the pair of file and number).
pub(crate) fn modify(
    epoll: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    data: u64,
    events: u32,
) -> Result<(), Errno> {
    Ok(ep::modify(
        epoll,
        fd,
        EventData::new_u64(data),
        EventFlags::from_bits_retain(events),
    )?)
}

/// `EPOLL_CTL_DEL`.
pub(crate) fn delete(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), Errno> {
    Ok(ep::delete(epoll, fd)?)
}

/// The kernel's `struct __kernel_timespec`, which epoll_pwait2 reads: 64-bit seconds and
/// nanoseconds on every architecture (the call is younger than 64-bit time on 32-bit
/// systems), unlike the C library's `struct timespec` (32-bit fields on i686).
#[repr(C)]
struct KernelTimespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// The size of the kernel's signal set, which epoll_pwait2 is told: 64 signals in all but
/// MIPS's 128.
const KERNEL_SIGSET_SIZE: usize = if cfg!(any(target_arch = "mips", target_arch = "mips64")) {
    16
} else {
    8
};
const _: () = assert!(KERNEL_SIGSET_SIZE <= std::mem::size_of::<libc::sigset_t>());

/// 0: not probed yet, 1: epoll_pwait2 works, 2: use epoll_pwait.
static PWAIT2: AtomicU8 = AtomicU8::new(0);

/// Whether waits use epoll_pwait2 (not yet known to be missing, not disabled).
pub(crate) fn use_pwait2() -> bool {
    match PWAIT2.load(Ordering::Relaxed) {
        0 => {
            let ok = std::env::var_os("KQ_NO_EPOLL_PWAIT2").is_none();
            PWAIT2.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
            ok
        }
        v => v == 1,
    }
}

/// Makes every later wait use the epoll_pwait fallback, as on kernels before 5.11.
pub(crate) fn force_pwait_fallback() {
    PWAIT2.store(2, Ordering::Relaxed);
}

/// Waits for events on `epoll` for up to `timeout` (`None`: forever; zero: poll), with the
/// signal mask `mask` in force during the wait (`None`: the thread's own). Returns the
/// number of entries written to `events`. EINTR when a signal handler ran.
pub(crate) fn wait(
    epoll: BorrowedFd<'_>,
    events: &mut [Event],
    timeout: Option<Duration>,
    mask: Option<&libc::sigset_t>,
) -> Result<usize, Errno> {
    // SAFETY: a slice of initialised entries is a slice of possibly uninitialised ones
    // with the same layout, and `wait_uninit` only writes valid entries to it.
    let uninit = unsafe {
        std::slice::from_raw_parts_mut(
            events.as_mut_ptr().cast::<std::mem::MaybeUninit<Event>>(),
            events.len(),
        )
    };
    Ok(wait_uninit(epoll, uninit, timeout, mask)?.len())
}

/// As [`wait`], into a buffer that need not be initialised: returns the entries written.
pub(crate) fn wait_uninit<'a>(
    epoll: BorrowedFd<'_>,
    events: &'a mut [std::mem::MaybeUninit<Event>],
    timeout: Option<Duration>,
    mask: Option<&libc::sigset_t>,
) -> Result<&'a [Event], Errno> {
    let max = events.len().min(i32::MAX as usize) as libc::c_int;
    let mask_ptr = mask.map_or(std::ptr::null(), |m| m as *const libc::sigset_t);
    let n = if use_pwait2() && timeout.is_some_and(|t| !t.is_zero()) {
        let ts = timeout.map(|t| KernelTimespec {
            tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const KernelTimespec);
        // SAFETY: `events` is a writable array of at least `max` entries, `ts_ptr` is null
        // or points to a kernel timespec and `mask_ptr` is null or points to a sigset_t, all
        // alive for the call; the kernel reads KERNEL_SIGSET_SIZE bytes of the mask, which
        // the C library's sigset_t has (its first words are the kernel's set).
        let n = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                epoll.as_raw_fd(),
                events.as_mut_ptr(),
                max,
                ts_ptr,
                mask_ptr,
                KERNEL_SIGSET_SIZE,
            )
        };
        if n < 0 {
            let e = Errno::from(std::io::Error::last_os_error());
            if e.0 == libc::ENOSYS {
                force_pwait_fallback();
                return wait_uninit(epoll, events, timeout, mask);
            }
            return Err(e);
        }
        n as isize
    } else {
        // Whole milliseconds, rounded up so that the wait is never shorter than asked.
        let ms = match timeout {
            None => -1,
            Some(t) => {
                let ms = t.as_nanos().div_ceil(1_000_000);
                ms.min(i32::MAX as u128) as libc::c_int
            }
        };
        // The system call itself, not the C library's wrapper, which is a cancellation point
        // (the engine's waits are not: see the C library's kevent()).
        // SAFETY: as above: `events` has room for `max` entries and `mask_ptr` is null or a
        // live sigset_t of at least KERNEL_SIGSET_SIZE bytes.
        let n = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait,
                epoll.as_raw_fd(),
                events.as_mut_ptr(),
                max,
                ms,
                mask_ptr,
                KERNEL_SIGSET_SIZE,
            )
        };
        if n < 0 {
            return Err(Errno::from(std::io::Error::last_os_error()));
        }
        n as isize
    };
    // SAFETY: the kernel initialised the first `n` entries (at most `max`).
    Ok(unsafe { std::slice::from_raw_parts(events.as_ptr().cast::<Event>(), n as usize) })
}

/// An empty event buffer entry.
pub(crate) const EMPTY: Event = Event { events: 0, u64: 0 };

/// A buffer of `N` events for the waits of one `kevent()` call, left uninitialised until
/// its first wait: most calls never wait, and should not pay for clearing it.
pub(crate) struct Edges<const N: usize> {
    buf: [std::mem::MaybeUninit<Event>; N],
    /// Every entry has been written (cleared, then by the kernel).
    init: bool,
}

impl<const N: usize> Edges<N> {
    pub(crate) const fn new() -> Edges<N> {
        Edges {
            buf: [const { std::mem::MaybeUninit::uninit() }; N],
            init: false,
        }
    }

    /// The whole buffer, for a wait to write to (cleared the first time).
    pub(crate) fn buffer(&mut self) -> &mut [Event; N] {
        if !self.init {
            self.buf = [const { std::mem::MaybeUninit::new(EMPTY) }; N];
            self.init = true;
        }
        // SAFETY: every entry is initialised (just above, or before), and
        // [MaybeUninit<Event>; N] has the layout of [Event; N].
        unsafe { &mut *self.buf.as_mut_ptr().cast::<[Event; N]>() }
    }

    /// The first `n` entries (at most `N`; none before the first wait).
    pub(crate) fn first(&self, n: usize) -> &[Event] {
        if !self.init {
            return &[];
        }
        // SAFETY: every entry is initialised, and n is clamped to the buffer's length.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast::<Event>(), n.min(N)) }
    }
}
