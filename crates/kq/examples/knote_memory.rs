//! Memory per user event: adds 1,000,000 EV_CLEAR user events to one kqueue (1024 changes
//! per kevent() call) and prints the resident-set growth per event, with the live heap
//! growth (counted by this program's allocator) as a cross-check.
//!
//! Run: `cargo run --release -p kq --example knote_memory [COUNT]`. The target is at most
//! 128 bytes per event; the exit status is 1 when RSS says it is missed.

use kq::{Kevent, Kqueue, EVFILT_USER, EV_ADD, EV_CLEAR};
use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counting live and peak bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: isize) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(live.max(0) as usize, Ordering::Relaxed);
}

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the
// counters have no effect on the allocations.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller promised for `layout`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through `alloc`/`realloc`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        grew(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as the caller promised for `ptr`, `layout` and `new_size`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            grew(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A field of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<usize>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Resident set from /proc/self/statm (pages), in bytes.
fn statm_rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("statm");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    pages * page
}

fn main() -> std::io::Result<()> {
    let count: usize = match std::env::args().nth(1) {
        Some(s) => s.parse().expect("COUNT must be a number"),
        None => 1_000_000,
    };
    const CHUNK: usize = 1024;

    let kq = Kqueue::new()?;
    let mut changes: Vec<Kevent> = Vec::with_capacity(CHUNK);
    let (rss0, statm0, heap0) = (
        status_bytes("VmRSS"),
        statm_rss(),
        LIVE.load(Ordering::Relaxed),
    );
    PEAK.store(heap0.max(0) as usize, Ordering::Relaxed);

    let start = Instant::now();
    let mut ident = 0;
    while ident < count {
        let end = (ident + CHUNK).min(count);
        changes.clear();
        changes.extend(
            (ident..end).map(|i| Kevent::new(i, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, null_mut())),
        );
        kq.kevent(&changes, &mut [], None)?;
        ident = end;
    }
    let elapsed = start.elapsed();

    let (rss1, statm1, heap1, peak) = (
        status_bytes("VmRSS"),
        statm_rss(),
        LIVE.load(Ordering::Relaxed),
        PEAK.load(Ordering::Relaxed),
    );
    let per = |a: usize, b: usize| (b as f64 - a as f64) / count as f64;
    let rss_per = per(rss0, rss1);
    println!("user events added:        {count}");
    println!(
        "time:                     {:.1} ms ({:.1} ns/event)",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / count as f64
    );
    println!(
        "VmRSS delta:              {} bytes = {:.1} bytes/event",
        rss1 as isize - rss0 as isize,
        rss_per
    );
    println!(
        "statm RSS delta:          {} bytes = {:.1} bytes/event",
        statm1 as isize - statm0 as isize,
        per(statm0, statm1)
    );
    println!(
        "live heap delta:          {} bytes = {:.1} bytes/event",
        heap1 - heap0,
        per(heap0.max(0) as usize, heap1.max(0) as usize)
    );
    println!(
        "peak heap during adds:    {:.1} bytes/event (old and new index coexist while it grows)",
        per(heap0.max(0) as usize, peak)
    );
    println!("VmHWM (process peak RSS): {} bytes", status_bytes("VmHWM"));
    println!(
        "target <= 128 bytes/event: {}",
        if rss_per <= 128.0 { "met" } else { "MISSED" }
    );

    // Keep the kqueue alive until everything is measured.
    drop(kq);
    if rss_per > 128.0 {
        std::process::exit(1);
    }
    Ok(())
}
