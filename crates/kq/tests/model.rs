//! Property test: random sequences of kevent() calls (EVFILT_USER changes and zero-timeout
//! scans) against a small reference model, comparing every output record.
//!
//! The model is that of docs/semantics.md §4.7 (NetBSD `kern_event.c` 1.140), whose
//! sections (§) are cited here, plus:
//! * the generic kevent() rules of §1.2 and §1.3: SYSFLAGS stripped, changes in order,
//!   EV_ERROR reports (flags exactly EV_ERROR, data the errno or 0 for EV_RECEIPT, the
//!   echoed record as registration left it: fflags/data zeroed for a new knote, fflags
//!   masked to 24 bits by the user touch), the no-room abort (-1/errno, or 0 for a receipt,
//!   later changes not applied), no scan in a call that wrote a report;
//! * the scan of §2.3: FIFO in activation order, the marker (a level-triggered knote is
//!   requeued at the tail, after the marker: at most one report per knote per call),
//!   disabled entries dropped but left ACTIVE, stale entries dropped, ONESHOT not
//!   re-checked, post-delivery ONESHOT > CLEAR > DISPATCH > requeue;
//! * the FreeBSD divergences (`kern_event.c` kqueue_register/kqueue_scan, §2.1-§2.3, §4.9,
//!   docs/personality.md): stored flags without EV_ADD/DELETE/ENABLE/DISABLE/FORCEONESHOT;
//!   EV_ENABLE|EV_DISABLE rejected with EINVAL before anything else; on a modification
//!   EV_FORCEONESHOT (set EV_ONESHOT, activate) then EV_ENABLE/EV_DISABLE are applied
//!   *before* the touch, and the filter is not evaluated while disabled; a knote created
//!   with EV_DISABLE starts disabled; EV_KEEPUDATA; ONESHOT records bypass the touch
//!   (fflags 0, data 0); EV_CLEAR|EV_DISPATCH both clears and disables.
//!
//! A second property checks that the kqueue fd is readable while the model's pending queue
//! is non-empty (§3.4: the count includes queued disabled and stale entries), and not
//! readable after a zero-timeout scan found nothing with nothing pending.

mod util;

use std::collections::{BTreeMap, VecDeque};

use kq::*;
use proptest::prelude::*;
use util::*;

// ---------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Knote {
    /// Stored kevent flags (kn_flags).
    kflags: u16,
    /// Stored user flags (kn_sfflags), reported in fflags.
    uflags: u32,
    /// Stored user data (kn_sdata), reported in data.
    udat: isize,
    udata: *mut std::ffi::c_void,
    /// The EVFILT_USER "triggered" bit (kn_hookid).
    triggered: bool,
    active: bool,
    disabled: bool,
    queued: bool,
}

#[derive(Debug)]
struct Model {
    nb: bool,
    knotes: BTreeMap<usize, Knote>,
    /// Pending queue of idents (all knotes are EVFILT_USER).
    queue: VecDeque<usize>,
}

/// The outcome of one kevent() call: the return value and the records written, in order
/// (reports or events; on an abort, the reports written before it).
type Outcome = (Result<usize, Errno>, Vec<Kevent>);

impl Model {
    fn new(p: Personality) -> Model {
        Model {
            nb: p == Personality::NetBsd,
            knotes: BTreeMap::new(),
            queue: VecDeque::new(),
        }
    }

    fn enqueue(&mut self, id: usize) {
        let kn = self.knotes.get_mut(&id).unwrap();
        debug_assert!(!kn.queued);
        kn.queued = true;
        self.queue.push_back(id);
    }

    fn remove(&mut self, id: usize) {
        let kn = self.knotes.remove(&id).unwrap();
        if kn.queued {
            self.queue.retain(|&x| x != id);
        }
    }

    /// filt_usertouch(EVENT_REGISTER); `c` is the echoed change record.
    fn touch(kn: &mut Knote, c: &mut Kevent) {
        if c.fflags & NOTE_TRIGGER != 0 {
            kn.triggered = true;
        }
        let v = c.fflags & NOTE_FFLAGSMASK;
        match c.fflags & NOTE_FFCTRLMASK {
            NOTE_FFAND => kn.uflags &= v,
            NOTE_FFOR => kn.uflags |= v,
            NOTE_FFCOPY => kn.uflags = v,
            _ => {}
        }
        c.fflags = v;
        kn.udat = c.data;
        if c.flags & EV_CLEAR != 0 {
            kn.triggered = false;
        }
    }

    /// kqueue_register for one change (flags already stripped of EV_SYSFLAGS). Returns the
    /// errno (0 on success) and leaves in `c` the record a report would echo.
    fn register(&mut self, c: &mut Kevent) -> i32 {
        let nb = self.nb;
        if !nb && c.flags & (EV_ENABLE | EV_DISABLE) == EV_ENABLE | EV_DISABLE {
            return libc::EINVAL;
        }
        if c.filter != EVFILT_USER {
            return libc::EINVAL;
        }
        let id = c.ident;
        let Some(kn) = self.knotes.get_mut(&id) else {
            if c.flags & EV_ADD == 0 {
                return libc::ENOENT;
            }
            let kflags = if nb {
                c.flags
            } else {
                c.flags & !(EV_ADD | EV_DELETE | EV_ENABLE | EV_DISABLE | EV_FORCEONESHOT)
            };
            let mut kn = Knote {
                kflags,
                uflags: c.fflags, // raw, all 32 bits (§4.2)
                udat: c.data,
                udata: c.udata,
                triggered: false, // EV_ADD|NOTE_TRIGGER does not fire (§4.2)
                active: false,
                disabled: !nb && c.flags & EV_DISABLE != 0,
                queued: false,
            };
            if nb {
                // Step 6 finds it untriggered; steps 7 and 8 (disable, then enable).
                if c.flags & EV_DISABLE != 0 {
                    kn.disabled = true;
                }
                if c.flags & EV_ENABLE != 0 {
                    kn.disabled = false;
                }
            }
            self.knotes.insert(id, kn);
            c.fflags = 0;
            c.data = 0;
            return 0;
        };
        if c.flags & EV_DELETE != 0 {
            self.remove(id);
            return 0;
        }
        let mut enqueue = false;
        if nb {
            kn.udata = c.udata;
            Self::touch(kn, c);
            if kn.triggered {
                kn.active = true;
                enqueue |= !kn.disabled && !kn.queued;
            }
            if c.flags & EV_DISABLE != 0 {
                kn.disabled = true;
            }
            if c.flags & EV_ENABLE != 0 {
                kn.disabled = false;
                enqueue |= kn.active && !kn.queued;
            }
        } else {
            if c.flags & EV_FORCEONESHOT != 0 {
                kn.kflags |= EV_ONESHOT;
                kn.active = true;
                enqueue |= !kn.disabled && !kn.queued;
            }
            if c.flags & EV_ENABLE != 0 {
                kn.disabled = false;
            } else if c.flags & EV_DISABLE != 0 {
                kn.disabled = true;
            }
            if c.flags & EV_KEEPUDATA == 0 {
                kn.udata = c.udata;
            }
            Self::touch(kn, c);
            if !kn.disabled && kn.triggered {
                kn.active = true;
            }
            enqueue |= kn.active && !kn.disabled && !kn.queued;
        }
        if enqueue {
            let kn = &self.knotes[&id];
            // An enqueue decided before a disable in the same change still happened.
            if !kn.queued {
                self.enqueue(id);
            }
        }
        0
    }

    /// kqueue_scan with a zero timeout.
    fn scan(&mut self, nevents: usize) -> Vec<Kevent> {
        let mut out = Vec::new();
        if nevents == 0 {
            return out;
        }
        // Everything currently queued is before our marker.
        for _ in 0..self.queue.len() {
            if out.len() == nevents {
                break;
            }
            let id = self.queue.pop_front().unwrap();
            let nb = self.nb;
            let kn = self.knotes.get_mut(&id).unwrap();
            kn.queued = false;
            if kn.disabled {
                continue; // dropped, stays ACTIVE
            }
            let oneshot = kn.kflags & EV_ONESHOT != 0;
            if !oneshot && !kn.triggered {
                kn.active = false; // stale
                continue;
            }
            let (fflags, data) = if oneshot && !nb {
                (0, 0) // [FB] the raw image: kn_fflags/kn_data, zero for EVFILT_USER
            } else {
                (kn.uflags, kn.udat)
            };
            out.push(Kevent::new(
                id,
                EVFILT_USER,
                kn.kflags,
                fflags,
                data,
                kn.udata,
            ));
            let clear = kn.kflags & EV_CLEAR != 0;
            let dispatch = kn.kflags & EV_DISPATCH != 0;
            if oneshot {
                self.knotes.remove(&id);
            } else if nb {
                if clear {
                    kn.triggered = false;
                    kn.active = false;
                } else if dispatch {
                    kn.disabled = true;
                    kn.active = false;
                } else {
                    self.enqueue(id);
                }
            } else {
                if clear {
                    kn.triggered = false;
                }
                if clear || dispatch {
                    if dispatch {
                        kn.disabled = true;
                    }
                    kn.active = false;
                } else {
                    self.enqueue(id);
                }
            }
        }
        out
    }

    /// kevent(kq, changes, nevents, {0, 0}).
    fn kevent(&mut self, changes: &[Kevent], nevents: usize) -> Outcome {
        let mut out = Vec::new();
        for c in changes {
            let mut c = *c;
            c.flags &= !EV_SYSFLAGS;
            let err = self.register(&mut c);
            if err != 0 || c.flags & EV_RECEIPT != 0 {
                if out.len() == nevents {
                    let r = if err != 0 { Err(Errno(err)) } else { Ok(0) };
                    return (r, out);
                }
                c.flags = EV_ERROR;
                c.data = err as isize;
                out.push(c);
            }
        }
        if !out.is_empty() {
            return (Ok(out.len()), out);
        }
        let evs = self.scan(nevents);
        (Ok(evs.len()), evs)
    }
}

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

/// (flag, probability in 1/256) of each flag bit in a generated change.
const FLAG_WEIGHTS: [(u16, u8); 11] = [
    (EV_ADD, 140),
    (EV_DELETE, 28),
    (EV_ENABLE, 40),
    (EV_DISABLE, 40),
    (EV_ONESHOT, 36),
    (EV_CLEAR, 90),
    (EV_RECEIPT, 28),
    (EV_DISPATCH, 36),
    (EV_FORCEONESHOT, 10),
    (EV_KEEPUDATA, 16),
    (EV_EOF | EV_FLAG1 | 0x1000, 8),
];

fn flags() -> impl Strategy<Value = u16> {
    // A byte per flag; the flag is set when the byte is high, so shrinking clears flags.
    any::<[u8; 11]>().prop_map(|bytes| {
        let mut flags = 0;
        for (&(flag, weight), byte) in FLAG_WEIGHTS.iter().zip(bytes) {
            if byte > 255 - weight {
                flags |= flag;
            }
        }
        flags
    })
}

fn fflags() -> impl Strategy<Value = u32> {
    (
        0u32..4,
        prop::bool::weighted(0.45),
        prop::sample::select(vec![0u32, 1, 2, 4, 7, 0xF0, 0xABC, 0x00FF_FFFF]),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(op, trig, low, stray)| {
            (op << 30)
                | if trig { NOTE_TRIGGER } else { 0 }
                | low
                | if stray { 0x3E00_0000 } else { 0 }
        })
}

fn data() -> impl Strategy<Value = isize> {
    prop_oneof![
        4 => -3isize..10,
        1 => Just(isize::MIN),
        1 => Just(isize::MAX),
    ]
}

fn change() -> impl Strategy<Value = Kevent> {
    let filter = prop_oneof![
        40 => Just(EVFILT_USER),
        1 => Just(1234i16),
        1 => Just(-99i16),
    ];
    (0usize..4, filter, flags(), fflags(), data(), 0usize..4).prop_map(
        |(ident, filter, flags, fflags, data, udata)| {
            Kevent::new(ident, filter, flags, fflags, data, ptr(udata))
        },
    )
}

#[derive(Clone, Debug)]
struct Call {
    changes: Vec<Kevent>,
    nevents: usize,
}

fn call() -> impl Strategy<Value = Call> {
    (prop::collection::vec(change(), 0..4), 0usize..5)
        .prop_map(|(changes, nevents)| Call { changes, nevents })
}

fn calls() -> impl Strategy<Value = Vec<Call>> {
    prop::collection::vec(call(), 1..40)
}

// ---------------------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------------------

fn run(p: Personality, mut calls: Vec<Call>, check_readable: bool) -> Result<(), TestCaseError> {
    let kq = kq(p);
    let mut model = Model::new(p);
    // Two final drains compare the leftover state.
    calls.push(Call {
        changes: vec![],
        nevents: 8,
    });
    calls.push(Call {
        changes: vec![],
        nevents: 8,
    });
    for (i, c) in calls.iter().enumerate() {
        let mut buf = vec![sentinel(); c.nevents];
        let got = kq
            .kevent_raw(
                &c.changes,
                &mut buf,
                Some(Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                }),
            )
            .map_err(Errno::from);
        let (want, records) = model.kevent(&c.changes, c.nevents);
        prop_assert_eq!(got, want, "call #{}: {:?}; model {:?}", i, c, model);
        prop_assert_eq!(
            &buf[..records.len()],
            &records[..],
            "call #{} records: {:?}; model {:?}",
            i,
            c,
            model
        );
        prop_assert!(
            buf[records.len()..].iter().all(|e| *e == sentinel()),
            "call #{}: slots written past the records: {:?}",
            i,
            buf
        );
        if check_readable {
            // §3.4: the descriptor is readable exactly while entries are pending: pending
            // entries make it readable (no lost wakeup of an outer poller), and it is not
            // readable once none is left.
            let readable = poll_fd(&kq, 0) & libc::POLLIN != 0;
            let pending = !model.queue.is_empty();
            prop_assert!(
                readable == pending,
                "call #{}: {:?}: kq fd readable {} but pending queue {:?}",
                i,
                c,
                readable,
                model.queue
            );
        }
    }
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn model_netbsd(calls in calls()) {
        run(Personality::NetBsd, calls, false)?;
    }

    #[test]
    fn model_freebsd(calls in calls()) {
        run(Personality::FreeBsd, calls, false)?;
    }

    #[test]
    fn model_readable_netbsd(calls in calls()) {
        run(Personality::NetBsd, calls, true)?;
    }

    #[test]
    fn model_readable_freebsd(calls in calls()) {
        run(Personality::FreeBsd, calls, true)?;
    }
}

// ---------------------------------------------------------------------------------------
// The model against the worked examples of §4.8, so that the model itself is checked
// ---------------------------------------------------------------------------------------

fn mk(p: Personality, steps: &[(Vec<Kevent>, usize)]) -> Vec<Outcome> {
    let mut m = Model::new(p);
    steps.iter().map(|(c, n)| m.kevent(c, *n)).collect()
}

#[test]
fn model_self_check_worked_examples() {
    let nb = Personality::NetBsd;
    let fb = Personality::FreeBsd;
    // W3 (§4.8).
    let r = mk(
        nb,
        &[
            (vec![user(1, EV_ADD | EV_CLEAR, 0, 0)], 0),
            (vec![user(1, 0, NOTE_FFCOPY | 0xABC, 7)], 1),
            (vec![user(1, 0, NOTE_TRIGGER | NOTE_FFOR | 1, 9)], 1),
        ],
    );
    assert_eq!(r[1].0, Ok(0));
    assert_eq!((r[2].1[0].fflags, r[2].1[0].data), (0xABD, 9));
    // W5 and W9 (§4.8), both personalities.
    for p in [nb, fb] {
        let r = mk(
            p,
            &[
                (vec![user(1, EV_ADD | EV_CLEAR, NOTE_FFCOPY | 5, 0)], 0),
                (vec![user(1, 0, NOTE_TRIGGER, 0)], 1),
                (vec![user(2, EV_ADD | EV_DISPATCH | EV_CLEAR, 0, 0)], 0),
                (vec![user(2, 0, NOTE_TRIGGER, 0)], 1),
                (vec![user(2, 0, NOTE_TRIGGER, 0)], 1),
            ],
        );
        assert_eq!(r[1].1[0].fflags, 0xC000_0005);
        assert_eq!(r[3].0, Ok(1));
        assert_eq!(r[4].0, Ok(if p == nb { 1 } else { 0 }));
    }
    // W14 (§4.8) and G13.
    let r = mk(
        nb,
        &[
            (
                vec![
                    user(1, EV_ADD | EV_RECEIPT, 0, 0),
                    user(1, 0, NOTE_TRIGGER, 0),
                ],
                0,
            ),
            (vec![], 1),
            (
                vec![
                    user(5, 0, NOTE_TRIGGER, 0),
                    user(5, 0, NOTE_TRIGGER, 0),
                    user(7, EV_ADD, 0, 0),
                ],
                1,
            ),
            (vec![user(7, EV_DELETE, 0, 0)], 0),
        ],
    );
    assert_eq!(r[0].0, Ok(0));
    assert_eq!(r[1].0, Ok(0));
    assert_eq!(r[2].0, Err(Errno(libc::ENOENT)));
    assert_eq!(r[2].1.len(), 1);
    assert_eq!(r[3].0, Err(Errno(libc::ENOENT)));
    // G20 round robin.
    let r = mk(
        nb,
        &[
            (vec![user(1, EV_ADD, 0, 0), user(2, EV_ADD, 0, 0)], 0),
            (
                vec![user(1, 0, NOTE_TRIGGER, 0), user(2, 0, NOTE_TRIGGER, 0)],
                0,
            ),
            (vec![], 1),
            (vec![], 1),
            (vec![], 1),
            (vec![], 8),
        ],
    );
    let seq: Vec<_> = r[2..5].iter().map(|o| o.1[0].ident).collect();
    assert_eq!(seq, [1, 2, 1]);
    assert_eq!(r[5].1.iter().map(|e| e.ident).collect::<Vec<_>>(), [2, 1]);
}
