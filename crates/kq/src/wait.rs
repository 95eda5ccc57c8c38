//! The waiting policy: before a kevent() goes to sleep in the kernel, it may spin for a few
//! microseconds, because an event from another thread that arrives in that window costs
//! neither side a system call (a sleep costs an eventfd write, an epoll_wait and two
//! context switches, and on a VM an idle vCPU takes tens of microseconds to wake).
//!
//! The spin must cost nothing when it does not pay off:
//! - it never outlasts the caller's timeout;
//! - it starts with CPU pause hints (`spin_loop`), which leave the core to its sibling
//!   hyperthread, and only then yields to other threads;
//! - at most one thread spins per kqueue; the others sleep at once;
//! - it adapts: after n spins in a row that found nothing, the next 2^n - 1 waits (at most
//!   `SKIP`) sleep at once, so an idle loop waiting 1 ms at a time soon spins once in 64
//!   waits, while a busy exchange that misses now and then is back to spinning at once;
//! - the limit is per kqueue (`Kqueue::set_spin_limit`), 20 µs by default, or the
//!   `KQUEUE_SPIN_US` environment variable (read once per process; 0 turns spinning off).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The most waits skipped after spins that found nothing.
const SKIP: u32 = 63;
/// How long pause hints are tried before yielding.
const PAUSE: Duration = Duration::from_micros(2);

/// The default limit, from `KQUEUE_SPIN_US` or 20 µs.
fn default_limit() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("KQUEUE_SPIN_US")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(20_000, |us| us.saturating_mul(1000))
    })
}

/// One kqueue's spinning state.
pub(crate) struct Spin {
    limit_ns: AtomicU64,
    spinning: AtomicBool,
    misses: AtomicU32,
    skip: AtomicU32,
}

impl Spin {
    pub(crate) fn new() -> Spin {
        Spin {
            limit_ns: AtomicU64::new(default_limit()),
            spinning: AtomicBool::new(false),
            misses: AtomicU32::new(0),
            skip: AtomicU32::new(0),
        }
    }

    pub(crate) fn set_limit(&self, limit: Duration) {
        let ns = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
        self.limit_ns.store(ns, Ordering::Relaxed);
    }

    pub(crate) fn limit(&self) -> Duration {
        Duration::from_nanos(self.limit_ns.load(Ordering::Relaxed))
    }

    /// Spins until `ready()` says so or the budget (the limit, at most `remaining`) is
    /// spent, unless the policy says not to. Returns whether it spun.
    pub(crate) fn spin(&self, remaining: Option<Duration>, ready: impl Fn() -> bool) -> bool {
        let mut budget = self.limit();
        if let Some(r) = remaining {
            budget = budget.min(r);
        }
        if budget.is_zero() {
            return false;
        }
        if self.skip.load(Ordering::Relaxed) > 0 {
            self.skip.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        if self.spinning.swap(true, Ordering::Acquire) {
            return false; // another thread spins for this kqueue
        }
        let start = Instant::now();
        let mut found = ready();
        while !found && start.elapsed() < budget.min(PAUSE) {
            for _ in 0..32 {
                std::hint::spin_loop();
            }
            found = ready();
        }
        while !found && start.elapsed() < budget {
            std::thread::yield_now();
            found = ready();
        }
        self.spinning.store(false, Ordering::Release);
        if found {
            self.misses.store(0, Ordering::Relaxed);
        } else {
            let n = (self.misses.fetch_add(1, Ordering::Relaxed) + 1).min(6);
            self.skip.store(((1 << n) - 1).min(SKIP), Ordering::Relaxed);
        }
        true
    }
}
