//! Robustness: arbitrary change lists (any filter, flags, fflags, data and ident, in both
//! personalities) never panic, never write past the event list, and give only the errors a
//! BSD kernel would (docs/semantics.md §1.6), as EV_ERROR reports or as the call's error.

use kq::*;
use proptest::prelude::*;
use std::time::Duration;

fn any_filter() -> impl Strategy<Value = i16> {
    prop_oneof![
        4 => Just(EVFILT_USER),
        3 => Just(EVFILT_TIMER),
        1 => Just(EVFILT_READ),
        1 => Just(0i16),
        1 => any::<i16>(),
    ]
}

fn any_change() -> impl Strategy<Value = Kevent> {
    (
        0usize..6,
        any_filter(),
        any::<u16>(),
        any::<u32>(),
        prop_oneof![Just(0isize), 1isize..50, any::<isize>()],
    )
        .prop_map(|(ident, filter, flags, fflags, data)| {
            // Timers: keep most valid and short so that cases stay fast.
            let (fflags, data) = if filter == EVFILT_TIMER && fflags % 4 != 0 {
                (fflags & NOTE_USECONDS, data.rem_euclid(5000))
            } else {
                (fflags, data)
            };
            Kevent::new(ident, filter, flags, fflags, data, std::ptr::null_mut())
        })
}

fn personality() -> impl Strategy<Value = Personality> {
    prop_oneof![Just(Personality::NetBsd), Just(Personality::FreeBsd)]
}

const ERRNOS: [i32; 5] = [
    libc::EINVAL,
    libc::ENOENT,
    libc::EBADF,
    libc::ENOMEM,
    libc::EEXIST,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_change_lists(
        p in personality(),
        calls in prop::collection::vec(
            (prop::collection::vec(any_change(), 0..6), 0usize..5),
            1..8,
        ),
    ) {
        let kq = Kqueue::with_personality(p).unwrap();
        for (changes, nevents) in calls {
            let sentinel = Kevent::new(0xdead, 0x7777, 0xbeef, 0xfeed, -7, std::ptr::null_mut());
            let mut events = vec![sentinel; nevents + 2];
            let r = kq.kevent_raw(
                &changes[..],
                &mut events[..nevents],
                Some(Timespec { tv_sec: 0, tv_nsec: 0 }),
            );
            // Nothing past the list is ever written.
            prop_assert!(events[nevents..].iter().all(|e| *e == sentinel));
            match r {
                Ok(n) => {
                    prop_assert!(n <= nevents);
                    for ev in &events[..n] {
                        if ev.flags == EV_ERROR {
                            let e = ev.data as i32;
                            prop_assert!(e == 0 || ERRNOS.contains(&e), "errno {e}");
                        } else {
                            // A delivered event comes from a knote of a known filter.
                            prop_assert!(
                                [EVFILT_USER, EVFILT_TIMER, EVFILT_READ].contains(&ev.filter),
                                "{ev:?}"
                            );
                            prop_assert_eq!(ev.flags & EV_ERROR, 0);
                        }
                    }
                }
                Err(e) => prop_assert!(ERRNOS.contains(&e.raw_os_error().unwrap_or(0)), "{e:?}"),
            }
        }
        // The kqueue still works after whatever happened.
        let add = Kevent::new(99, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, std::ptr::null_mut());
        let fire = Kevent::new(99, EVFILT_USER, 0, NOTE_TRIGGER, 0, std::ptr::null_mut());
        kq.kevent(&[add, fire], &mut [], None).unwrap();
        let mut evs = [Kevent::default(); 64];
        let n = kq.kevent(&[], &mut evs, Some(Duration::ZERO)).unwrap();
        prop_assert!(evs[..n].iter().any(|e| e.ident == 99 && e.filter == EVFILT_USER));
    }
}
