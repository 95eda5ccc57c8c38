//! EVFILT_TIMER (SPEC §5.7): periodic, oneshot and absolute timers with no descriptor each.
//!
//! Each kqueue keeps a min-heap of deadlines (CLOCK_MONOTONIC nanoseconds); the kqueue arms
//! one timerfd for the earliest. Knote fields: `sdata`/`sfflags` the interval and unit as
//! given, `hookid` the period in ns (0: fires once; top bit: parked, see `PARKED`), `hook`
//! the next deadline (0: none),
//! `kev.data` the expirations since the last delivery.

use super::{Context, Filter, Touch};
use crate::consts::*;
use crate::kevent::{Errno, Kevent};
use crate::knote::{Knote, Knotes};
use crate::sys;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// NetBSD's `kq_calloutmax`: timer knotes in the whole process.
pub(crate) const MAX_TIMERS: usize = 4096;
static TIMERS_IN_USE: AtomicUsize = AtomicUsize::new(0);

/// NetBSD rejects intervals over INT_MAX clock ticks (HZ = 100): about 248 days.
const MAX_INTERVAL_NS: u64 = i32::MAX as u64 * 10_000_000;

const UNIT_MASK: u32 = NOTE_SECONDS | NOTE_USECONDS | NOTE_NSECONDS;

/// The deadlines of one kqueue's timers.
#[derive(Default)]
pub(crate) struct Timers {
    /// (deadline, knote). An entry is stale once its knote's `hook` no longer equals the
    /// deadline (deleted, restarted, or already fired); stale entries are skipped.
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    /// Timer knotes in this kqueue.
    live: usize,
}

impl Timers {
    /// The earliest deadline, possibly stale (firing early is harmless: expire() rechecks).
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((d, _))| *d)
    }

    fn schedule(&mut self, deadline: u64, id: u32) {
        self.heap.push(Reverse((deadline, id)));
    }

    /// Counts the expirations due at `now` and activates their knotes. Returns whether a
    /// knote was queued.
    pub(crate) fn expire(&mut self, now: u64, knotes: &mut Knotes) -> bool {
        let mut queued = false;
        while let Some(&Reverse((deadline, id))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if !knotes.is_live(id) {
                continue;
            }
            let kn = knotes.get(id);
            if kn.kev.filter != EVFILT_TIMER || kn.hook != deadline {
                continue;
            }
            if kn.hookid != 0 {
                // Expirations missed while nobody looked all count (t_timer count_expirations).
                count_until(kn, now);
                if kn.is_active() {
                    // Already pending (queued, or disabled): nothing to wake anyone for until
                    // it is delivered, which counts the expirations since (`catch_up`). A
                    // fast periodic timer nobody reads then costs nothing.
                    kn.hookid |= PARKED;
                } else {
                    self.heap.push(Reverse((kn.hook, id)));
                }
            } else {
                kn.kev.data = kn.kev.data.saturating_add(1);
                kn.hook = 0;
            }
            queued |= knotes.activate(id);
        }
        if self.heap.len() > 2 * self.live + 64 {
            self.heap.retain(|&Reverse((d, id))| {
                knotes.is_live(id) && {
                    let kn = knotes.get_ref(id);
                    kn.kev.filter == EVFILT_TIMER && kn.hook == d
                }
            });
        }
        queued
    }
}

/// In `hookid`: a periodic timer with no heap entry, whose expirations are counted at its
/// next delivery.
const PARKED: u64 = 1 << 63;

/// Counts the expirations of periodic knote `kn` due at `now` (its next one is `kn.hook`)
/// and moves `kn.hook` past `now`.
fn count_until(kn: &mut Knote, now: u64) {
    let period = kn.hookid & !PARKED;
    if now >= kn.hook {
        let n = 1 + (now - kn.hook) / period;
        kn.kev.data = kn.kev.data.saturating_add(n as isize);
        kn.hook += n * period;
    }
}

/// Before a parked timer is delivered: count what expired meanwhile and schedule it again.
fn catch_up(kn: &mut Knote, cx: &mut Context<'_>) {
    if kn.hookid & PARKED != 0 {
        kn.hookid &= !PARKED;
        count_until(kn, sys::monotonic_ns());
        cx.timers.schedule(kn.hook, cx.id);
    }
}

/// A validated timer setting.
struct Setting {
    period: u64,
    deadline: u64,
    forced: u16,
}

/// Validates `fflags`/`data`/`flags` of a timer change and computes its first deadline.
fn compute(fflags: u32, data: i64, flags: u16, cx: &Context<'_>) -> Result<Setting, Errno> {
    if fflags & !(UNIT_MASK | NOTE_ABSOLUTE) != 0 || (fflags & UNIT_MASK).count_ones() > 1 {
        return Err(Errno::INVAL);
    }
    let unit_ns: i64 = match fflags & UNIT_MASK {
        NOTE_SECONDS => 1_000_000_000,
        NOTE_USECONDS => 1_000,
        NOTE_NSECONDS => 1,
        _ => 1_000_000,
    };
    let now = sys::monotonic_ns();
    if fflags & NOTE_ABSOLUTE != 0 {
        // An absolute CLOCK_REALTIME time; one already past fires at once.
        let at = (data as i128) * (unit_ns as i128);
        let delta = (at - sys::realtime_ns() as i128).clamp(0, MAX_INTERVAL_NS as i128) as u64;
        let forced = if cx.personality.absolute_timer_forces_clear() {
            EV_CLEAR
        } else {
            0
        };
        return Ok(Setting {
            period: 0,
            deadline: now + delta,
            forced,
        });
    }
    let data = match data {
        d if d < 0 => return Err(Errno::INVAL),
        0 if cx.personality.timer_accepts_zero() => 1,
        0 => return Err(Errno::INVAL),
        d => d,
    };
    let interval = data
        .checked_mul(unit_ns)
        .map(|ns| ns as u64)
        .filter(|&ns| ns <= MAX_INTERVAL_NS)
        .ok_or(Errno::INVAL)?;
    Ok(Setting {
        period: if flags & EV_ONESHOT != 0 { 0 } else { interval },
        deadline: now + interval,
        // Relative timers are always EV_CLEAR: each delivery reports the new expirations.
        forced: EV_CLEAR,
    })
}

fn arm(kn: &mut Knote, s: &Setting, cx: &mut Context<'_>) {
    kn.hookid = s.period;
    kn.hook = s.deadline;
    kn.kev.flags |= s.forced;
    cx.timers.schedule(s.deadline, cx.id);
}

pub(crate) struct TimerFilter;

impl Filter for TimerFilter {
    fn attach(&self, kn: &mut Knote, cx: &mut Context<'_>) -> Result<(), Errno> {
        let s = compute(kn.sfflags, kn.sdata, kn.kev.flags, cx)?;
        if TIMERS_IN_USE.fetch_add(1, Ordering::Relaxed) >= MAX_TIMERS {
            TIMERS_IN_USE.fetch_sub(1, Ordering::Relaxed);
            return Err(Errno::NOMEM);
        }
        cx.timers.live += 1;
        arm(kn, &s, cx);
        Ok(())
    }

    fn detach(&self, kn: &mut Knote, cx: &mut Context<'_>) {
        TIMERS_IN_USE.fetch_sub(1, Ordering::Relaxed);
        cx.timers.live -= 1;
        kn.hook = 0;
    }

    fn event(&self, kn: &mut Knote, _hint: i64, _cx: &mut Context<'_>) -> bool {
        kn.kev.data > 0
    }

    fn touch(
        &self,
        kn: &mut Knote,
        kev: &mut Kevent,
        ty: Touch,
        cx: &mut Context<'_>,
    ) -> Result<(), Errno> {
        match ty {
            // Only EV_ADD reprograms a timer; a bare enable/disable leaves it running.
            Touch::Register if kev.flags & EV_ADD != 0 => {
                let s = compute(kev.fflags, kev.data as i64, kev.flags, cx)?;
                // Restart: drop the pending expirations and the queued record, take the
                // change's flags as the stored flags (SPEC §5.7, t_timer modify).
                cx.deactivate();
                kn.sfflags = kev.fflags;
                kn.sdata = kev.data as i64;
                kn.kev.data = 0;
                kn.kev.flags = cx.personality.stored_flags(kev.flags);
                arm(kn, &s, cx);
            }
            Touch::Register => {}
            Touch::Process => {
                catch_up(kn, cx);
                *kev = kn.kev;
            }
        }
        Ok(())
    }
}

pub(crate) fn forget() {
    TIMERS_IN_USE.store(0, Ordering::Relaxed);
}
