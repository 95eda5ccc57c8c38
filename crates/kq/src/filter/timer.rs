//! EVFILT_TIMER (docs/semantics.md §5.4): periodic, oneshot and absolute timers with no
//! descriptor each.
//!
//! Each kqueue keeps two min-heaps of deadlines in nanoseconds: CLOCK_MONOTONIC for relative
//! timers, CLOCK_REALTIME for NOTE_ABSOLUTE ones (so that they follow changes of the wall
//! clock), and arms one timerfd per clock for the earliest. Knote fields: `sdata`/`sfflags`
//! the interval and unit as given, `hookid` the period in ns (0: fires once; top bit:
//! parked, see `PARKED`), `hook` the next deadline on the knote's clock (0: none), `kev.data`
//! the expirations since the last delivery.

use super::{Context, Filter, Touch};
use crate::consts::*;
use crate::kevent::{Errno, Kevent};
use crate::knote::{Knote, Knotes};
use crate::sys::{self, Clock};
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
    /// (deadline, knote) per clock (`Clock as usize`). An entry is stale once its knote's
    /// `hook` no longer equals the deadline (deleted, restarted, or already fired) or the
    /// knote moved to the other clock; stale entries are skipped.
    heaps: [BinaryHeap<Reverse<(u64, u32)>>; 2],
    /// Timer knotes in this kqueue.
    live: usize,
}

/// The clock of a timer knote.
fn clock_of(kn: &Knote) -> Clock {
    if kn.sfflags & NOTE_ABSOLUTE != 0 {
        Clock::Realtime
    } else {
        Clock::Monotonic
    }
}

/// Whether heap entry (`deadline`, `id`) of `clock` still stands for its knote.
fn is_current(knotes: &Knotes, clock: Clock, deadline: u64, id: u32) -> bool {
    knotes.is_live(id) && {
        let kn = knotes.get_ref(id);
        kn.kev.filter == EVFILT_TIMER && kn.hook == deadline && clock_of(kn) == clock
    }
}

impl Timers {
    /// The earliest deadline on `clock`, possibly stale (firing early is harmless: expire()
    /// rechecks).
    pub(crate) fn next_deadline(&self, clock: Clock) -> Option<u64> {
        self.heaps[clock as usize].peek().map(|Reverse((d, _))| *d)
    }

    /// Whether no timer is scheduled.
    pub(crate) fn is_empty(&self) -> bool {
        self.heaps.iter().all(|h| h.is_empty())
    }

    fn schedule(&mut self, clock: Clock, deadline: u64, id: u32) {
        self.heaps[clock as usize].push(Reverse((deadline, id)));
    }

    /// Counts the expirations due now and activates their knotes. Returns whether a knote
    /// was queued.
    pub(crate) fn expire(&mut self, knotes: &mut Knotes) -> bool {
        let mut queued = false;
        for clock in [Clock::Monotonic, Clock::Realtime] {
            if !self.heaps[clock as usize].is_empty() {
                queued |= self.expire_clock(clock, sys::now_ns(clock), knotes);
            }
        }
        queued
    }

    fn expire_clock(&mut self, clock: Clock, now: u64, knotes: &mut Knotes) -> bool {
        let mut queued = false;
        let heap = &mut self.heaps[clock as usize];
        while let Some(&Reverse((deadline, id))) = heap.peek() {
            if deadline > now {
                break;
            }
            heap.pop();
            if !is_current(knotes, clock, deadline, id) {
                continue;
            }
            let kn = knotes.get(id);
            if kn.hookid != 0 {
                // Expirations missed while nobody looked all count (t_timer count_expirations).
                count_until(kn, now);
                if kn.is_active() {
                    // Already pending (queued, or disabled): nothing to wake anyone for until
                    // it is delivered, which counts the expirations since (`catch_up`). A
                    // fast periodic timer nobody reads then costs nothing.
                    kn.hookid |= PARKED;
                } else {
                    heap.push(Reverse((kn.hook, id)));
                }
            } else {
                kn.kev.data = kn.kev.data.saturating_add(1);
                kn.hook = 0;
            }
            queued |= knotes.activate(id);
        }
        if heap.len() > 2 * self.live + 64 {
            heap.retain(|&Reverse((d, id))| is_current(knotes, clock, d, id));
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
        count_until(kn, sys::now_ns(Clock::Monotonic));
        cx.objs.timers.schedule(Clock::Monotonic, kn.hook, cx.id);
    }
}

/// A validated timer setting.
struct Setting {
    period: u64,
    clock: Clock,
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
    if fflags & NOTE_ABSOLUTE != 0 {
        // An absolute CLOCK_REALTIME time; one already past (even before the epoch) fires at
        // once. Deadline 0 means "none", so the earliest is 1.
        let at = (data as i128) * (unit_ns as i128);
        let forced = if cx.personality.absolute_timer_forces_clear() {
            EV_CLEAR
        } else {
            0
        };
        return Ok(Setting {
            period: 0,
            clock: Clock::Realtime,
            deadline: at.clamp(1, i64::MAX as i128) as u64,
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
        clock: Clock::Monotonic,
        deadline: sys::now_ns(Clock::Monotonic) + interval,
        // Relative timers are always EV_CLEAR: each delivery reports the new expirations.
        forced: EV_CLEAR,
    })
}

fn arm(kn: &mut Knote, s: &Setting, cx: &mut Context<'_>) {
    kn.hookid = s.period;
    kn.hook = s.deadline;
    kn.kev.flags |= s.forced;
    cx.objs.timers.schedule(s.clock, s.deadline, cx.id);
}

pub(crate) struct TimerFilter;

impl Filter for TimerFilter {
    fn attach(&self, kn: &mut Knote, cx: &mut Context<'_>) -> Result<(), Errno> {
        let s = compute(kn.sfflags, kn.sdata, kn.kev.flags, cx)?;
        if TIMERS_IN_USE.fetch_add(1, Ordering::Relaxed) >= MAX_TIMERS {
            TIMERS_IN_USE.fetch_sub(1, Ordering::Relaxed);
            return Err(Errno::NOMEM);
        }
        cx.objs.timers.live += 1;
        arm(kn, &s, cx);
        Ok(())
    }

    fn detach(&self, kn: &mut Knote, cx: &mut Context<'_>) {
        TIMERS_IN_USE.fetch_sub(1, Ordering::Relaxed);
        cx.objs.timers.live -= 1;
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
                // The flags the timer has from now on: the change's (NetBSD) or the stored
                // ones, untouched (FreeBSD). They decide whether it repeats (EV_ONESHOT).
                let flags = if cx.personality.timer_modify_keeps_flags() {
                    kn.kev.flags
                } else {
                    cx.personality.stored_flags(kev.flags)
                };
                let s = compute(kev.fflags, kev.data as i64, flags, cx)?;
                // Restart: drop the pending expirations and the queued record, and start
                // over from the new interval.
                cx.deactivate();
                kn.sfflags = kev.fflags;
                kn.sdata = kev.data as i64;
                kn.kev.data = 0;
                kn.kev.flags = flags;
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
