//! EVFILT_EMPTY (docs/semantics.md §5.8): a socket's send buffer has drained, nothing left
//! unsent or (TCP) unacknowledged. Level-triggered; `data` is what is left (0 when reported).
//!
//! The state is read as EVFILT_WRITE's is (`fd.rs`, which shares the descriptor's epoll
//! registration, with EPOLLOUT interest), but Linux gives no event when the buffer becomes
//! empty: EPOLLOUT edges come when room is freed in a buffer a writer found full, or, on
//! AF_UNIX sockets, whenever the peer reads. So, while an EVFILT_EMPTY knote of the kqueue
//! is enabled and not active, the kqueue also looks at those knotes' sockets on a timer
//! ([`EmptyPoll`], which arms the kqueue's CLOCK_MONOTONIC timerfd, so a sleeping `kevent()`
//! wakes and the kqueue descriptor becomes readable with no caller awake): every 1 ms for
//! 60 ms after a knote went inactive or its socket changed (longer than Linux's 40 ms
//! delayed acknowledgement), then backing off to every 25 ms while nothing changes. A knote
//! is evaluated when its socket changed since the last look: its queue length, or, on TCP,
//! the count of acknowledged bytes (so that data sent and acknowledged between two looks
//! still counts as news, which an EV_CLEAR knote needs).

use super::{default_touch, fd, Context, Filter, Touch};
use crate::consts::*;
use crate::kevent::{Errno, Kevent};
use crate::knote::{Knote, Knotes};
use crate::sys::{self, io, Clock};
use std::collections::HashMap;
use std::os::fd::RawFd;

/// The re-check interval while something changed lately.
const FIRST_LOOK_NS: u64 = 1_000_000;
/// How long after the last change the re-checks stay that frequent: longer than the usual
/// round trip and than Linux's delayed acknowledgement (40 ms), so that the buffer
/// emptying soon after a send is seen within about a millisecond.
const FAST_NS: u64 = 60_000_000;
/// The longest wait between re-checks while nothing changes.
const LAST_LOOK_NS: u64 = 25_000_000;

/// What the last look at a knote's socket saw.
struct Seen {
    fd: RawFd,
    tcp: bool,
    queued: i64,
    acked: u64,
}

/// The EVFILT_EMPTY knotes of a kqueue and their re-check schedule.
#[derive(Default)]
pub(crate) struct EmptyPoll {
    seen: HashMap<u32, Seen>,
    /// CLOCK_MONOTONIC time of the next re-check (0: none scheduled).
    next: u64,
    interval: u64,
    /// When a knote last went inactive, or a socket was last seen to change.
    changed_at: u64,
}

impl EmptyPoll {
    /// When the next re-check is due, if one is scheduled.
    pub(crate) fn deadline(&self) -> Option<u64> {
        (self.next != 0).then_some(self.next)
    }

    /// A knote may have gone inactive: look again soon.
    fn wake(&mut self) {
        let now = sys::now_ns(Clock::Monotonic);
        self.interval = FIRST_LOOK_NS;
        self.changed_at = now;
        let soon = now + FIRST_LOOK_NS;
        if self.next == 0 || self.next > soon {
            self.next = soon;
        }
    }

    /// Records what an evaluation of knote `id` saw.
    fn saw(&mut self, id: u32, queued: i64) {
        if let Some(s) = self.seen.get_mut(&id) {
            s.queued = queued;
            if s.tcp {
                s.acked = io::tcp_bytes_acked(sys::borrow(s.fd)).unwrap_or(s.acked);
            }
        }
    }

    /// The re-check, if it is due: the knotes to evaluate (enabled, inactive, and whose
    /// socket changed since the last look). Schedules the next one while some knote waits.
    pub(crate) fn due(&mut self, knotes: &Knotes) -> Vec<u32> {
        let now = sys::now_ns(Clock::Monotonic);
        let mut out = Vec::new();
        if self.next == 0 || now < self.next {
            return out;
        }
        let (mut waiting, mut changed) = (false, false);
        for (&id, s) in &mut self.seen {
            if !knotes.is_live(id) {
                continue;
            }
            let kn = knotes.get_ref(id);
            if kn.is_active() || kn.is_disabled() {
                continue;
            }
            let target = sys::borrow(s.fd);
            let queued = match io::unsent(target) {
                Ok(q) => q,
                Err(e) if e.0 == libc::EINVAL => 0, // became a listener
                // Closed unseen: nothing to wait for.
                Err(_) => continue,
            };
            waiting = true;
            let acked = if s.tcp {
                io::tcp_bytes_acked(target).unwrap_or(s.acked)
            } else {
                0
            };
            if (queued, acked) != (s.queued, s.acked) {
                changed = true;
                (s.queued, s.acked) = (queued, acked);
                if queued == 0 {
                    out.push(id);
                }
            }
        }
        if changed {
            self.changed_at = now;
        }
        if waiting {
            self.interval = if now.saturating_sub(self.changed_at) < FAST_NS {
                FIRST_LOOK_NS
            } else {
                (self.interval * 2).clamp(FIRST_LOOK_NS, LAST_LOOK_NS)
            };
            self.next = now + self.interval;
        } else {
            self.next = 0;
        }
        out
    }
}

/// EVFILT_EMPTY.
pub(crate) struct EmptyFilter;

impl Filter for EmptyFilter {
    fn is_fd(&self) -> bool {
        true
    }

    fn attach(&self, kn: &mut Knote, cx: &mut Context<'_>) -> Result<(), Errno> {
        fd::attach(kn, EVFILT_EMPTY, cx)?;
        let fd = kn.kev.ident as RawFd;
        let tcp = io::is_tcp(sys::borrow(fd));
        cx.objs.empty.seen.insert(
            cx.id,
            Seen {
                fd,
                tcp,
                queued: -1,
                acked: 0,
            },
        );
        Ok(())
    }

    fn detach(&self, kn: &mut Knote, cx: &mut Context<'_>) {
        cx.objs.empty.seen.remove(&cx.id);
        fd::detach(kn, EVFILT_EMPTY, cx);
    }

    fn event(&self, kn: &mut Knote, hint: i64, cx: &mut Context<'_>) -> bool {
        let active = fd::event(kn, EVFILT_EMPTY, hint, cx);
        cx.objs.empty.saw(cx.id, kn.kev.data as i64);
        if !active {
            cx.objs.empty.wake();
        }
        active
    }

    fn touch(
        &self,
        kn: &mut Knote,
        kev: &mut Kevent,
        ty: Touch,
        cx: &mut Context<'_>,
    ) -> Result<(), Errno> {
        default_touch(kn, kev, ty);
        if ty == Touch::Process && kn.kev.flags & (EV_CLEAR | EV_DISPATCH) != 0 {
            // Delivered: an EV_CLEAR or EV_DISPATCH knote goes inactive now.
            cx.objs.empty.wake();
        }
        Ok(())
    }
}
