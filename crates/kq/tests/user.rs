//! EVFILT_USER: every in-process case of docs/semantics.md §7.1 (U1-U37) and the worked
//! examples of its §4.8 (W1-W14), each run in both personalities with that personality's
//! expectation. Sections (§) cited here are that document's.
//!
//! U31 (cross-thread wakeup) and U32 (many waiters, one edge) are threaded and live in
//! `tests/stress.rs`.

mod util;

use std::time::{Duration, Instant};

use kq::*;
use util::*;

// ---------------------------------------------------------------------------------------
// §7.1 U1-U37
// ---------------------------------------------------------------------------------------

/// U1 add_and_delete (FB user.c): EV_ADD and EV_DELETE both succeed, both polls are empty.
fn u1_add_and_delete(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD, 0, 0)]);
    expect_no_events(&kq);
    ch_ok(&kq, &[user(1, EV_DELETE, 0, 0)]);
    expect_no_events(&kq);
}

/// U2 event_wait (FB user.c): EV_ADD|EV_CLEAR, a bare NOTE_TRIGGER change, a waiting get.
fn u2_event_wait(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user_u(1, EV_ADD | EV_CLEAR, 0, 0, 0x1111)]);
    ch_ok(&kq, &[user_u(1, 0, NOTE_TRIGGER, 0, 0x1111)]);
    let evs = get(&kq, 1, Some(Duration::from_secs(30)));
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_user(&evs[0], 1, delivered_flags(p, EV_ADD | EV_CLEAR), 0, 0);
    assert_eq!(evs[0].udata, ptr(0x1111));
    expect_no_events(&kq);
}

/// U3 event_wait_keepudata (FB user.c): a trigger with EV_KEEPUDATA and udata NULL keeps
/// the stored udata in FreeBSD; NetBSD has no EV_KEEPUDATA (bit 0x200 means nothing there)
/// and the trigger's NULL udata replaces it.
fn u3_event_wait_keepudata(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user_u(1, EV_ADD | EV_CLEAR, 0, 0, 0xabcd)]);
    ch_ok(&kq, &[user(1, EV_KEEPUDATA, NOTE_TRIGGER, 0)]);
    let ev = expect_one(&kq);
    match p {
        Personality::FreeBsd => assert_eq!(ev.udata, ptr(0xabcd)),
        Personality::NetBsd => assert!(ev.udata.is_null(), "{ev:?}"),
        _ => unimplemented!("another personality"),
    }
}

/// U4 disable_and_enable (FB user.c): a trigger while disabled is not delivered; after
/// EV_ENABLE and a new trigger exactly one record arrives, fflags 0.
fn u4_disable_and_enable(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    ch_ok(&kq, &[user(1, EV_DISABLE, 0, 0)]);
    trigger(&kq, 1);
    expect_no_events(&kq);
    ch_ok(&kq, &[user(1, EV_ENABLE, 0, 0)]);
    trigger(&kq, 1);
    let evs = get(&kq, 8, Some(Duration::from_secs(30)));
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_user(&evs[0], 1, delivered_flags(p, EV_ADD | EV_CLEAR), 0, 0);
    expect_no_events(&kq);
}

/// U5 disable_and_enable_keepudata (FB user.c): as U4 with EV_KEEPUDATA and a NULL udata
/// on every modification. FreeBSD keeps udata P; NetBSD overwrites it with NULL.
fn u5_disable_and_enable_keepudata(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user_u(1, EV_ADD | EV_CLEAR, 0, 0, 0x5005)]);
    ch_ok(&kq, &[user(1, EV_DISABLE | EV_KEEPUDATA, 0, 0)]);
    ch_ok(&kq, &[user(1, EV_KEEPUDATA, NOTE_TRIGGER, 0)]);
    expect_no_events(&kq);
    ch_ok(&kq, &[user(1, EV_ENABLE | EV_KEEPUDATA, 0, 0)]);
    ch_ok(&kq, &[user(1, EV_KEEPUDATA, NOTE_TRIGGER, 0)]);
    let ev = expect_one(&kq);
    assert_user(&ev, 1, delivered_flags(p, EV_ADD | EV_CLEAR), 0, 0);
    match p {
        Personality::FreeBsd => assert_eq!(ev.udata, ptr(0x5005)),
        Personality::NetBsd => assert!(ev.udata.is_null(), "{ev:?}"),
        _ => unimplemented!("another personality"),
    }
}

/// U6 oneshot (FB user.c; also W7, §4.8): delivered once with flags EV_ONESHOT ([NB]
/// plus EV_ADD), then the knote is gone: a further trigger gives ENOENT.
fn u6_oneshot(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(2, EV_ADD | EV_ONESHOT, 0, 0)]);
    trigger(&kq, 2);
    let evs = get(&kq, 8, Some(Duration::from_secs(30)));
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_user(&evs[0], 2, delivered_flags(p, EV_ADD | EV_ONESHOT), 0, 0);
    expect_no_events(&kq);
    ch_err(&kq, &[user(2, 0, NOTE_TRIGGER, 0)], libc::ENOENT);
}

/// U7 kqueue_EVFILT_USER (NB t_kevent): EV_ADD|EV_ENABLE ident 666, then flags 0 fflags
/// NOTE_FFCOPY|NOTE_TRIGGER|8; a 1 s kevent returns 1 record with fflags 8.
fn u7_kqueue_evfilt_user(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(666, EV_ADD | EV_ENABLE, 0, 0)]);
    ch_ok(&kq, &[user(666, 0, NOTE_FFCOPY | NOTE_TRIGGER | 8, 0)]);
    let mut evs = [Kevent::default(); 1];
    let n = kq
        .kevent(&[], &mut evs, Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        (evs[0].ident, evs[0].filter, evs[0].fflags),
        (666, EVFILT_USER, 8)
    );
}

/// U8 trigger_unknown: a trigger of a never-added ident with no event slots: -1/ENOENT.
fn u8_trigger_unknown(p: Personality) {
    let kq = kq(p);
    ch_err(&kq, &[user(99, 0, NOTE_TRIGGER, 0)], libc::ENOENT);
}

/// U9 trigger_unknown_errslot: with one slot the error is a report: flags == EV_ERROR
/// exactly, data == ENOENT, ident 99; fflags unchanged (W11, §4.8).
fn u9_trigger_unknown_errslot(p: Personality) {
    let kq = kq(p);
    let mut evs = [sentinel(); 1];
    let n = kq
        .kevent(&[user_u(99, 0, NOTE_TRIGGER, 0, 0x99)], &mut evs, None)
        .unwrap();
    assert_eq!(n, 1);
    assert_report(&evs[0], 99, EVFILT_USER, libc::ENOENT);
    assert_eq!(evs[0].fflags, NOTE_TRIGGER);
    assert_eq!(evs[0].udata, ptr(0x99));
}

/// U10 level_without_clear (also W2, §4.8): without EV_CLEAR every poll returns the
/// event until a change with EV_CLEAR.
fn u10_level_without_clear(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD, 0, 0)]);
    trigger(&kq, 1);
    assert_user(&expect_one(&kq), 1, delivered_flags(p, EV_ADD), 0, 0);
    assert_user(&expect_one(&kq), 1, delivered_flags(p, EV_ADD), 0, 0);
    ch_ok(&kq, &[user(1, EV_CLEAR, 0, 0)]);
    expect_no_events(&kq);
}

/// U11 ffops (also W3, §4.8): FFCOPY without trigger delivers nothing; then OR, AND, NOP
/// with data.
fn u11_ffops(p: Personality) {
    let kq = kq(p);
    let fl = delivered_flags(p, EV_ADD | EV_CLEAR);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    ch_ok(&kq, &[user(1, 0, NOTE_FFCOPY | 0xABC, 7)]);
    expect_no_events(&kq);
    ch_ok(&kq, &[user(1, 0, NOTE_TRIGGER | NOTE_FFOR | 0x1, 9)]);
    assert_user(&expect_one(&kq), 1, fl, 0xABD, 9);
    ch_ok(&kq, &[user(1, 0, NOTE_TRIGGER | NOTE_FFAND | 0xF0, 0)]);
    assert_user(&expect_one(&kq), 1, fl, 0xB0, 0);
    ch_ok(&kq, &[user(1, 0, NOTE_TRIGGER | NOTE_FFNOP, 5)]);
    assert_user(&expect_one(&kq), 1, fl, 0xB0, 5);
    expect_no_events(&kq);
}

/// U12 fflags_24bit_mask: a trigger with fflags 0xFFFFFFFF (FFCOPY, NOTE_TRIGGER, stray bits
/// 25-29, all 24 low bits) stores only the low 24 bits.
fn u12_fflags_24bit_mask(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    ch_ok(&kq, &[user(1, 0, 0xFFFF_FFFF, 0)]);
    let ev = expect_one(&kq);
    assert_eq!(ev.fflags, 0x00FF_FFFF, "{ev:?}");
}

/// U13 add_with_trigger (also W4, §4.8; macOS differs): EV_ADD|EV_CLEAR with
/// NOTE_TRIGGER on a new ident does not fire in [NB] or [FB].
fn u13_add_with_trigger(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, NOTE_TRIGGER, 0)]);
    expect_no_events(&kq);
}

/// U14 raw_creation_fflags (also W5, §4.8): creation fflags NOTE_FFCOPY|5 are stored
/// raw; a NOP trigger reports 0xC0000005 ([NB], [FB], and macOS too).
fn u14_raw_creation_fflags(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, NOTE_FFCOPY | 5, 0)]);
    trigger(&kq, 1);
    assert_eq!(expect_one(&kq).fflags, 0xC000_0005);
}

/// U15 trigger_and_clear_same_change (also W6, §4.8): EV_CLEAR in the trigger's own
/// change cancels it.
fn u15_trigger_and_clear_same_change(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    ch_ok(&kq, &[user(1, EV_CLEAR, NOTE_TRIGGER, 0)]);
    expect_no_events(&kq);
}

/// U16 clear_cancels_pending: a level event triggered and queued; a change with EV_CLEAR
/// makes the scan drop the queued entry.
fn u16_clear_cancels_pending(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD, 0, 0)]);
    trigger(&kq, 1);
    ch_ok(&kq, &[user(1, EV_CLEAR, 0, 0)]);
    expect_no_events(&kq);
}

/// U17 data_last_change_wins: trigger data 42, then an EV_ENABLE change with data 0 before
/// retrieval: the delivered data is 0.
fn u17_data_last_change_wins(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    ch_ok(&kq, &[user(1, 0, NOTE_TRIGGER, 42)]);
    ch_ok(&kq, &[user(1, EV_ENABLE, 0, 0)]);
    let ev = expect_one(&kq);
    assert_eq!(ev.data, 0, "{ev:?}");
}

/// U18 udata_overwritten_by_trigger: registered with P, triggered with Q: udata Q.
fn u18_udata_overwritten_by_trigger(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user_u(1, EV_ADD | EV_CLEAR, 0, 0, 0xA0)]);
    ch_ok(&kq, &[user_u(1, 0, NOTE_TRIGGER, 0, 0xC0)]);
    assert_eq!(expect_one(&kq).udata, ptr(0xC0));
}

/// U19 dispatch_reenable_redelivers (also W8, §4.8): EV_DISPATCH delivers once, then
/// EV_ENABLE redelivers without a new trigger (the knote is still triggered).
fn u19_dispatch_reenable_redelivers(p: Personality) {
    let kq = kq(p);
    let fl = delivered_flags(p, EV_ADD | EV_DISPATCH);
    ch_ok(&kq, &[user(1, EV_ADD | EV_DISPATCH, 0, 0)]);
    trigger(&kq, 1);
    assert_user(&expect_one(&kq), 1, fl, 0, 0);
    expect_no_events(&kq);
    ch_ok(&kq, &[user(1, EV_ENABLE, 0, 0)]);
    assert_user(&expect_one(&kq), 1, fl, 0, 0);
    expect_no_events(&kq);
}

/// U20 dispatch_clear (§2.3; also W9, §4.8): EV_DISPATCH|EV_CLEAR. [NB] only
/// clears, so a second trigger is delivered; [FB] also disables, so it is not.
fn u20_dispatch_clear(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_DISPATCH | EV_CLEAR, 0, 0)]);
    trigger(&kq, 1);
    let ev = expect_one(&kq);
    assert_user(
        &ev,
        1,
        delivered_flags(p, EV_ADD | EV_DISPATCH | EV_CLEAR),
        0,
        0,
    );
    trigger(&kq, 1);
    match p {
        Personality::NetBsd => {
            expect_one(&kq);
        }
        Personality::FreeBsd => {
            expect_no_events(&kq);
            // Disabled with the trigger latched: EV_ENABLE delivers it.
            ch_ok(&kq, &[user(1, EV_ENABLE, 0, 0)]);
            expect_one(&kq);
        }
        _ => unimplemented!("another personality"),
    }
    expect_no_events(&kq);
}

/// U21 oneshot_output_values (a divergence, §2.3, §4.9): [NB] reports the stored user flags
/// and data through touch; [FB] copies the raw image: fflags 0, data 0.
fn u21_oneshot_output_values(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user_u(1, EV_ADD | EV_ONESHOT, 0, 0, 0x21)]);
    ch_ok(
        &kq,
        &[user_u(1, 0, NOTE_TRIGGER | NOTE_FFCOPY | 0x7, 3, 0x22)],
    );
    let ev = expect_one(&kq);
    let fl = delivered_flags(p, EV_ADD | EV_ONESHOT);
    match p {
        Personality::NetBsd => assert_user(&ev, 1, fl, 7, 3),
        Personality::FreeBsd => assert_user(&ev, 1, fl, 0, 0),
        _ => unimplemented!("another personality"),
    }
    assert_eq!(ev.udata, ptr(0x22));
    ch_err(&kq, &[user(1, EV_DELETE, 0, 0)], libc::ENOENT);
}

/// U22 coalesce: three triggers (FFOR 1, 2, 4) before a get: one record with fflags 7.
fn u22_coalesce(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    for (bit, data) in [(1, 10), (2, 20), (4, 30)] {
        ch_ok(&kq, &[user(1, 0, NOTE_TRIGGER | NOTE_FFOR | bit, data)]);
    }
    let ev = expect_one(&kq);
    assert_user(&ev, 1, delivered_flags(p, EV_ADD | EV_CLEAR), 7, 30);
    expect_no_events(&kq);
}

/// U23 disabled_trigger_latched (also W10, §4.8): a trigger while disabled is delivered
/// after EV_ENABLE.
fn u23_disabled_trigger_latched(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    ch_ok(&kq, &[user(1, EV_DISABLE, 0, 0)]);
    trigger(&kq, 1);
    expect_no_events(&kq);
    ch_ok(&kq, &[user(1, EV_ENABLE, 0, 0)]);
    assert_user(
        &expect_one(&kq),
        1,
        delivered_flags(p, EV_ADD | EV_CLEAR),
        0,
        0,
    );
    expect_no_events(&kq);
}

/// U24 readd_keeps_state: a re-add (fflags 0) of a triggered EV_CLEAR knote neither resets
/// the trigger nor the stored flags.
fn u24_readd_keeps_state(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    trigger(&kq, 1);
    ch_ok(&kq, &[user(1, EV_ADD, 0, 0)]);
    let ev = expect_one(&kq);
    assert_user(&ev, 1, delivered_flags(p, EV_ADD | EV_CLEAR), 0, 0);
    // Still EV_CLEAR: one delivery per trigger.
    expect_no_events(&kq);
}

/// U25 readd_does_not_enable: EV_ADD (without EV_ENABLE) plus a trigger on a disabled
/// knote leaves it disabled.
fn u25_readd_does_not_enable(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    ch_ok(&kq, &[user(1, EV_DISABLE, 0, 0)]);
    ch_ok(&kq, &[user(1, EV_ADD, NOTE_TRIGGER, 0)]);
    expect_no_events(&kq);
    // The trigger was latched.
    ch_ok(&kq, &[user(1, EV_ENABLE, 0, 0)]);
    expect_one(&kq);
}

/// U26 enable_disable_together (a divergence, §2.2): [NB] disable then enable = enabled,
/// the trigger is delivered; [FB] rejects the change with EINVAL and applies nothing.
fn u26_enable_disable_together(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    let c = user(1, EV_ENABLE | EV_DISABLE, NOTE_TRIGGER, 0);
    match p {
        Personality::NetBsd => {
            ch_ok(&kq, &[c]);
            expect_one(&kq);
        }
        Personality::FreeBsd => {
            ch_err(&kq, &[c], libc::EINVAL);
            expect_no_events(&kq);
            // The rejected change left the knote enabled and untriggered.
            trigger(&kq, 1);
            expect_one(&kq);
        }
        _ => unimplemented!("another personality"),
    }
}

/// U27 delete_discards_pending: EV_DELETE of a triggered knote discards the record; a later
/// trigger gives ENOENT.
fn u27_delete_discards_pending(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    trigger(&kq, 1);
    ch_ok(&kq, &[user(1, EV_DELETE, 0, 0)]);
    expect_no_events(&kq);
    ch_err(&kq, &[user(1, 0, NOTE_TRIGGER, 0)], libc::ENOENT);
}

/// U28 readd_after_delete_fresh: after a delete, EV_ADD creates a fresh knote: a NOP trigger
/// reports fflags 0, data 0.
fn u28_readd_after_delete_fresh(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD, 0, 0)]);
    ch_ok(&kq, &[user(1, 0, NOTE_FFCOPY | NOTE_TRIGGER | 0x9, 4)]);
    ch_ok(&kq, &[user(1, EV_DELETE, 0, 0)]);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    // Fresh: not triggered.
    expect_no_events(&kq);
    ch_ok(&kq, &[user(1, 0, NOTE_TRIGGER, 0)]);
    assert_user(
        &expect_one(&kq),
        1,
        delivered_flags(p, EV_ADD | EV_CLEAR),
        0,
        0,
    );
    expect_no_events(&kq);
}

/// U29 independent_idents_and_kqs: ident 1 in kq A and B, ident 2 in A; triggering A/1 only
/// shows in A, and A/2 is untouched.
fn u29_independent_idents_and_kqs(p: Personality) {
    let a = kq(p);
    let b = kq(p);
    ch_ok(
        &a,
        &[
            user(1, EV_ADD | EV_CLEAR, 0, 0),
            user(2, EV_ADD | EV_CLEAR, 0, 0),
        ],
    );
    ch_ok(&b, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    trigger(&a, 1);
    let ev = expect_one(&a);
    assert_eq!(ev.ident, 1);
    expect_no_events(&b);
    expect_no_events(&a);
    trigger(&a, 2);
    assert_eq!(expect_one(&a).ident, 2);
    trigger(&b, 1);
    assert_eq!(expect_one(&b).ident, 1);
    expect_no_events(&a);
}

/// U30 same_ident_other_filter: USER 5 and TIMER 5 are independent knotes. (The timer is
/// 60 s long: it must not fire during the test.)
fn u30_same_ident_other_filter(p: Personality) {
    let kq = kq(p);
    ch_ok(
        &kq,
        &[
            user(5, EV_ADD | EV_CLEAR, 0, 0),
            Kevent::new(5, EVFILT_TIMER, EV_ADD, NOTE_SECONDS, 60, ptr(0)),
        ],
    );
    trigger(&kq, 5);
    let ev = expect_one(&kq);
    assert_eq!((ev.ident, ev.filter), (5, EVFILT_USER));
    ch_ok(&kq, &[user(5, EV_DELETE, 0, 0)]);
    // TIMER 5 is still there; USER 5 is gone.
    ch_err(&kq, &[user(5, 0, NOTE_TRIGGER, 0)], libc::ENOENT);
    ch_ok(
        &kq,
        &[Kevent::new(5, EVFILT_TIMER, EV_DELETE, 0, 0, ptr(0))],
    );
}

/// U33 receipt_on_modify: EV_RECEIPT on a trigger with NOTE_FFCOPY|0x123: one report,
/// flags EV_ERROR, data 0, fflags 0x123 (the touch masked the echo); no scan in that call
/// (2 slots, yet only the report); a following poll returns the event with fflags 0x123.
fn u33_receipt_on_modify(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    let mut evs = [sentinel(); 2];
    let n = kq
        .kevent(
            &[user_u(
                1,
                EV_RECEIPT,
                NOTE_TRIGGER | NOTE_FFCOPY | 0x123,
                0,
                0x33,
            )],
            &mut evs,
            Some(Duration::ZERO),
        )
        .unwrap();
    assert_eq!(n, 1, "{evs:?}");
    assert_report(&evs[0], 1, EVFILT_USER, 0);
    assert_eq!(evs[0].fflags, 0x123);
    assert_eq!(evs[0].udata, ptr(0x33));
    assert_eq!(evs[1], sentinel());
    let ev = expect_one(&kq);
    assert_user(&ev, 1, delivered_flags(p, EV_ADD | EV_CLEAR), 0x123, 0);
}

/// U34 close_kq_removes: closing a kqueue removes its knotes; a new kqueue knows nothing of
/// the ident.
fn u34_close_kq_removes(p: Personality) {
    let kq1 = kq(p);
    ch_ok(&kq1, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    trigger(&kq1, 1);
    drop(kq1);
    let kq2 = kq(p);
    ch_err(&kq2, &[user(1, 0, NOTE_TRIGGER, 0)], libc::ENOENT);
    expect_no_events(&kq2);
}

/// U35 fork_not_inherited (§3.3): in a forked child the inherited kqueue gives EBADF, and
/// the child's attempt to trigger does not disturb the parent's kqueue.
fn u35_fork_not_inherited(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    // SAFETY: the child only calls kevent on the copied Kqueue and then _exit; it never
    // returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // Child: 0 = EBADF as expected, 1 = the call succeeded, 2 = another errno.
        let code = match kq.kevent(&[user(1, 0, NOTE_TRIGGER, 0)], &mut [], None) {
            Ok(_) => 1,
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => 0,
            Err(_) => 2,
        };
        let mut evs = [Kevent::default(); 1];
        let code2 = match kq.kevent(&[], &mut evs, Some(Duration::ZERO)) {
            Ok(_) => 10,
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => 0,
            Err(_) => 20,
        };
        // SAFETY: _exit is async-signal-safe and skips the parent's atexit/destructors.
        unsafe { libc::_exit(code + code2) };
    }
    // Parent: wait at most 5 s for the child.
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid: {}", std::io::Error::last_os_error());
        if r == pid {
            break status;
        }
        if Instant::now() > deadline {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the forked child hung in kevent()");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(libc::WIFEXITED(status), "child status {status:#x}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "child: 1/2 = trigger succeeded/other errno, 10/20 = collect succeeded/other errno"
    );
    // The child's trigger attempt did not reach the parent's kqueue.
    expect_no_events(&kq);
    trigger(&kq, 1);
    expect_one(&kq);
}

/// U36 big_data: data INT64_MIN and INT64_MAX are delivered unchanged (LP64).
fn u36_big_data(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    for data in [isize::MIN, isize::MAX, -1] {
        ch_ok(&kq, &[user(1, 0, NOTE_TRIGGER, data)]);
        assert_eq!(expect_one(&kq).data, data);
    }
}

/// U37 kq_readable_on_trigger, poll(2) half (§3.4): the kqueue fd is not readable while
/// nothing is pending, POLLIN once a user event is triggered, not readable after the EV_CLEAR
/// record was collected; a poll(2) sleeping in another thread is woken by the trigger.
/// (The outer-kqueue half is `u37_outer_kqueue_watches_inner`.)
fn u37_kq_readable_on_trigger(p: Personality) {
    let kq = std::sync::Arc::new(kq(p));
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    assert_eq!(poll_fd(&kq, 0) & libc::POLLIN, 0);
    trigger(&kq, 1);
    assert_ne!(poll_fd(&kq, 0) & libc::POLLIN, 0);
    // poll(2) does not consume anything.
    assert_ne!(poll_fd(&kq, 0) & libc::POLLIN, 0);
    expect_one(&kq);
    // A zero-timeout kevent() that finds nothing leaves the fd not readable (the strict
    // "not readable right after the last collect" is U37b).
    expect_no_events(&kq);
    assert_eq!(
        poll_fd(&kq, 0) & libc::POLLIN,
        0,
        "readable with nothing pending"
    );

    // A sleeper in poll(2) wakes on a trigger from this thread.
    let k2 = kq.clone();
    let t = std::thread::spawn(move || {
        let start = Instant::now();
        let revents = poll_fd(&k2, 60_000);
        (revents, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(50));
    trigger(&kq, 1);
    let (revents, waited) = t.join().unwrap();
    assert_ne!(revents & libc::POLLIN, 0);
    assert!(
        waited < Duration::from_secs(30),
        "poll(2) woke after {waited:?}"
    );
    expect_one(&kq);
}

/// U37 (§3.4, §3.5): an outer kqueue watches the inner one with EVFILT_READ: active while
/// the inner has pending events, `data` = their number; re-checked at delivery; a trigger
/// from another thread wakes a sleeper in the outer kqueue.
fn u37_outer_kqueue_watches_inner(p: Personality) {
    use std::os::fd::AsRawFd;
    let inner = std::sync::Arc::new(kq(p));
    let outer = kq(p);
    let ifd = inner.as_raw_fd() as usize;
    ch_ok(
        &inner,
        &[
            user(1, EV_ADD | EV_CLEAR, 0, 0),
            user(2, EV_ADD | EV_CLEAR, 0, 0),
        ],
    );
    let watch = Kevent::new(ifd, EVFILT_READ, EV_ADD, 0, 0, std::ptr::null_mut());
    ch_ok(&outer, &[watch]);
    expect_no_events(&outer);
    trigger(&inner, 1);
    let ev = expect_one(&outer);
    assert_eq!((ev.ident, ev.filter, ev.data), (ifd, EVFILT_READ, 1));
    trigger(&inner, 2);
    assert_eq!(expect_one(&outer).data, 2, "data is the pending count");
    // Level-triggered, and re-evaluated at delivery: gone once the inner is drained.
    assert_eq!(poll(&inner, 8).len(), 2);
    expect_no_events(&outer);

    // A sleeper in the outer kqueue wakes on a trigger in the inner from another thread.
    let i2 = inner.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        trigger(&i2, 1);
    });
    let evs = get(&outer, 4, Some(Duration::from_secs(5)));
    t.join().unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!((evs[0].ident, evs[0].data), (ifd, 1));

    // EV_DELETE removes the watch.
    let del = Kevent::new(ifd, EVFILT_READ, EV_DELETE, 0, 0, std::ptr::null_mut());
    ch_ok(&outer, &[del]);
    trigger(&inner, 2);
    expect_no_events(&outer);
}

/// U37 edge cases and G11: a kqueue cannot watch itself (EINVAL); EVFILT_READ on a
/// descriptor that is not open, or past INT_MAX, is EBADF; a device without poll support
/// (/dev/null) is always readable with data 0, as the BSDs' `seltrue` devices are.
fn u37_kqueue_read_errors(p: Personality) {
    use std::os::fd::AsRawFd;
    let kq = kq(p);
    let me = Kevent::new(
        kq.as_raw_fd() as usize,
        EVFILT_READ,
        EV_ADD,
        0,
        0,
        std::ptr::null_mut(),
    );
    ch_err(&kq, &[me], libc::EINVAL);
    // A descriptor number that is not open: the highest the limit allows (descriptors are
    // allocated lowest first, so tests running in parallel do not take it).
    let closed = {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0);
        let fd = (rl.rlim_cur.min(i32::MAX as libc::rlim_t) - 1) as libc::c_int;
        // SAFETY: F_GETFD on any number is harmless.
        assert_eq!(
            unsafe { libc::fcntl(fd, libc::F_GETFD) },
            -1,
            "fd {fd} is open"
        );
        fd as usize
    };
    for ident in [closed, 1usize << 31, usize::MAX] {
        let c = Kevent::new(ident, EVFILT_READ, EV_ADD, 0, 0, std::ptr::null_mut());
        ch_err(&kq, &[c], libc::EBADF);
        let d = Kevent::new(ident, EVFILT_READ, EV_DELETE, 0, 0, std::ptr::null_mut());
        ch_err(&kq, &[d], libc::EBADF);
    }
    let file = std::fs::File::open("/dev/null").unwrap();
    let c = Kevent::new(
        file.as_raw_fd() as usize,
        EVFILT_READ,
        EV_ADD,
        0,
        0,
        std::ptr::null_mut(),
    );
    ch_ok(&kq, &[c]);
    let ev = expect_one(&kq);
    assert_eq!((ev.filter, ev.data), (EVFILT_READ, 0));
}

/// U37b (§3.4, and docs/personality.md): the kqueue fd is readable whenever something is
/// pending, including a queued stale entry; a zero-timeout kevent() that finds nothing
/// always leaves it not readable, and the next activation makes it readable again.
fn u37b_readability_cleared_by_empty_poll(p: Personality) {
    let kq = kq(p);
    ch_ok(
        &kq,
        &[user(1, EV_ADD | EV_CLEAR, 0, 0), user(2, EV_ADD, 0, 0)],
    );
    assert_eq!(poll_fd(&kq, 0) & libc::POLLIN, 0, "empty kqueue readable");
    trigger(&kq, 1);
    assert_ne!(
        poll_fd(&kq, 0) & libc::POLLIN,
        0,
        "pending but not readable"
    );
    expect_one(&kq);
    expect_no_events(&kq); // the empty zero-timeout poll clears readability
    assert_eq!(
        poll_fd(&kq, 0) & libc::POLLIN,
        0,
        "readable after an empty zero-timeout kevent()"
    );
    trigger(&kq, 1);
    assert_ne!(
        poll_fd(&kq, 0) & libc::POLLIN,
        0,
        "re-armed by the next trigger"
    );
    ch_ok(&kq, &[user(1, EV_DELETE, 0, 0)]);
    expect_no_events(&kq);
    assert_eq!(poll_fd(&kq, 0) & libc::POLLIN, 0);
    // A queued stale entry (EV_CLEAR change on a queued level event) still counts (§3.4,
    // §4.3 step 2d): readable until a scan drops it.
    trigger(&kq, 2);
    ch_ok(&kq, &[user(2, EV_CLEAR, 0, 0)]);
    assert_ne!(
        poll_fd(&kq, 0) & libc::POLLIN,
        0,
        "the stale entry is still queued"
    );
    expect_no_events(&kq);
    assert_eq!(poll_fd(&kq, 0) & libc::POLLIN, 0);
}

// ---------------------------------------------------------------------------------------
// §4.8 worked examples (ident 1 unless stated otherwise)
// ---------------------------------------------------------------------------------------

/// W1 (§4.8): EV_ADD|EV_CLEAR, poll 0, trigger, one record, poll 0.
fn w01_clear_trigger(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    expect_no_events(&kq);
    trigger(&kq, 1);
    assert_user(
        &expect_one(&kq),
        1,
        delivered_flags(p, EV_ADD | EV_CLEAR),
        0,
        0,
    );
    expect_no_events(&kq);
}

/// W11 (§4.8): trigger of never-added ident 99 with room: a report {99, USER,
/// EV_ERROR, data ENOENT, fflags NOTE_TRIGGER}; the same call collects nothing (a pending
/// level event on ident 1 and a second slot prove it).
fn w11_unknown_report_no_scan(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD, 0, 0)]);
    trigger(&kq, 1);
    let mut evs = [sentinel(); 2];
    let n = kq
        .kevent(
            &[user(99, 0, NOTE_TRIGGER, 0)],
            &mut evs,
            Some(Duration::ZERO),
        )
        .unwrap();
    assert_eq!(n, 1, "{evs:?}");
    assert_report(&evs[0], 99, EVFILT_USER, libc::ENOENT);
    assert_eq!(evs[0].fflags, NOTE_TRIGGER);
    assert_eq!(evs[1], sentinel());
    // The level event is still pending.
    assert_eq!(expect_one(&kq).ident, 1);
}

/// W12 (§4.8): a trigger with udata NULL wipes udata P ([FB] with EV_KEEPUDATA in
/// the trigger keeps P).
fn w12_trigger_wipes_udata(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user_u(1, EV_ADD | EV_CLEAR, 0, 0, 0x1200)]);
    ch_ok(&kq, &[user(1, 0, NOTE_TRIGGER, 0)]);
    assert!(expect_one(&kq).udata.is_null());
    ch_ok(&kq, &[user_u(1, 0, 0, 0, 0x1200)]);
    ch_ok(&kq, &[user(1, EV_KEEPUDATA, NOTE_TRIGGER, 0)]);
    let ev = expect_one(&kq);
    match p {
        Personality::FreeBsd => assert_eq!(ev.udata, ptr(0x1200)),
        Personality::NetBsd => assert!(ev.udata.is_null()),
        _ => unimplemented!("another personality"),
    }
}

/// W13 (§4.8): [EV_ADD|EV_CLEAR, NOTE_TRIGGER] with one slot and a zero timeout:
/// the changes are applied first, then the scan delivers the event in the same call.
fn w13_changes_then_scan(p: Personality) {
    let kq = kq(p);
    let mut evs = [sentinel(); 1];
    let n = kq
        .kevent(
            &[
                user(1, EV_ADD | EV_CLEAR, 0, 0),
                user(1, 0, NOTE_TRIGGER, 0),
            ],
            &mut evs,
            Some(Duration::ZERO),
        )
        .unwrap();
    assert_eq!(n, 1);
    assert_user(&evs[0], 1, delivered_flags(p, EV_ADD | EV_CLEAR), 0, 0);
}

/// W14 (§4.8): [EV_ADD|EV_RECEIPT, trigger] with no slots returns 0 and the trigger
/// is NOT applied (processing stopped at the receipt); the add was.
fn w14_receipt_no_room_stops(p: Personality) {
    let kq = kq(p);
    let n = kq
        .kevent(
            &[
                user(1, EV_ADD | EV_RECEIPT, 0, 0),
                user(1, 0, NOTE_TRIGGER, 0),
            ],
            &mut [],
            None,
        )
        .unwrap();
    assert_eq!(n, 0);
    // Level-triggered: had the trigger been applied, this poll would return it.
    expect_no_events(&kq);
    ch_ok(&kq, &[user(1, EV_DELETE, 0, 0)]);
}

/// §4.1: ident is any uintptr_t, including 0 and usize::MAX.
fn extreme_idents(p: Personality) {
    let kq = kq(p);
    for ident in [0, usize::MAX, 1 << (usize::BITS - 24)] {
        ch_ok(&kq, &[user(ident, EV_ADD | EV_CLEAR, 0, 0)]);
        trigger(&kq, ident);
        assert_eq!(expect_one(&kq).ident, ident);
        ch_ok(&kq, &[user(ident, EV_DELETE, 0, 0)]);
    }
}

/// §2.4 [FB] EV_FORCEONESHOT: on an existing knote it sets EV_ONESHOT and fires it, so the
/// next scan returns it once and deletes it. [NB] has no such flag: bit 0x100 does nothing
/// on a modification.
fn forceoneshot(p: Personality) {
    let kq = kq(p);
    ch_ok(&kq, &[user(1, EV_ADD | EV_CLEAR, 0, 0)]);
    ch_ok(&kq, &[user(1, EV_FORCEONESHOT, 0, 0)]);
    match p {
        Personality::FreeBsd => {
            let ev = expect_one(&kq);
            assert_eq!(ev.flags, EV_CLEAR | EV_ONESHOT, "{ev:?}");
            ch_err(&kq, &[user(1, EV_DELETE, 0, 0)], libc::ENOENT);
        }
        Personality::NetBsd => {
            expect_no_events(&kq);
            ch_ok(&kq, &[user(1, EV_DELETE, 0, 0)]);
        }
        _ => unimplemented!("another personality"),
    }
}

#[test]
fn kqueue_is_send_sync() {
    assert_send_sync::<Kqueue>();
    assert_send_sync::<Kevent>();
}

both!(
    u1_add_and_delete,
    u2_event_wait,
    u3_event_wait_keepudata,
    u4_disable_and_enable,
    u5_disable_and_enable_keepudata,
    u6_oneshot,
    u7_kqueue_evfilt_user,
    u8_trigger_unknown,
    u9_trigger_unknown_errslot,
    u10_level_without_clear,
    u11_ffops,
    u12_fflags_24bit_mask,
    u13_add_with_trigger,
    u14_raw_creation_fflags,
    u15_trigger_and_clear_same_change,
    u16_clear_cancels_pending,
    u17_data_last_change_wins,
    u18_udata_overwritten_by_trigger,
    u19_dispatch_reenable_redelivers,
    u20_dispatch_clear,
    u21_oneshot_output_values,
    u22_coalesce,
    u23_disabled_trigger_latched,
    u24_readd_keeps_state,
    u25_readd_does_not_enable,
    u26_enable_disable_together,
    u27_delete_discards_pending,
    u28_readd_after_delete_fresh,
    u29_independent_idents_and_kqs,
    u30_same_ident_other_filter,
    u33_receipt_on_modify,
    u34_close_kq_removes,
    u35_fork_not_inherited,
    u36_big_data,
    u37_kq_readable_on_trigger,
    u37_outer_kqueue_watches_inner,
    u37_kqueue_read_errors,
    u37b_readability_cleared_by_empty_poll,
    w01_clear_trigger,
    w11_unknown_report_no_scan,
    w12_trigger_wipes_udata,
    w13_changes_then_scan,
    w14_receipt_no_room_stops,
    extreme_idents,
    forceoneshot,
);
