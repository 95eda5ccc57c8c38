//! Filters registered at run time (kfilter_register(9)) and the name lookups of NetBSD's
//! KFILTER_BYNAME / KFILTER_BYFILTER ioctls (docs/semantics.md §5.6, G28).

use kq::filter::{filter_by_name, filter_name, register_filter, Context, Filter, Touch};
use kq::*;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The io::Result of the public API, with the errno comparable.
fn r<T>(x: std::io::Result<T>) -> Result<T, Errno> {
    x.map_err(Errno::from)
}

/// G28 kfilter_ioctls: names to numbers and back; unknown ones are ENOENT.
#[test]
fn g28_filter_names() {
    assert_eq!(r(filter_by_name("EVFILT_USER")), Ok(EVFILT_USER));
    assert_eq!(r(filter_by_name("EVFILT_TIMER")), Ok(EVFILT_TIMER));
    assert_eq!(r(filter_name(EVFILT_USER)).as_deref(), Ok("EVFILT_USER"));
    assert_eq!(r(filter_name(EVFILT_READ)).as_deref(), Ok("EVFILT_READ"));
    assert_eq!(r(filter_by_name("EVFILT_NOPE")), Err(Errno::NOENT));
    assert_eq!(r(filter_name(-99)), Err(Errno::NOENT));
    assert_eq!(r(filter_name(30000)), Err(Errno::NOENT));
}

/// Counts its hook calls; attach fails for ident 0 with EPERM.
struct Probe {
    attached: AtomicUsize,
    detached: AtomicUsize,
}

impl Filter for Probe {
    fn attach(&self, kn: &mut Knote, _cx: &mut Context<'_>) -> Result<(), Errno> {
        if kn.ident() == 0 {
            return Err(Errno(libc::EPERM));
        }
        self.attached.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn detach(&self, _kn: &mut Knote, _cx: &mut Context<'_>) {
        self.detached.fetch_add(1, Ordering::SeqCst);
    }

    fn event(&self, kn: &mut Knote, hint: i64, _cx: &mut Context<'_>) -> bool {
        kn.set_data(kn.data() + hint as isize);
        kn.data() > 0
    }

    fn touch(
        &self,
        kn: &mut Knote,
        kev: &mut Kevent,
        ty: Touch,
        _cx: &mut Context<'_>,
    ) -> Result<(), Errno> {
        match ty {
            // A change's data is added to the count: the touch sees every modification.
            Touch::Register => kn.set_data(kn.data() + kev.data),
            Touch::Process => *kev = kn.record(),
        }
        Ok(())
    }
}

/// A registered filter gets a positive number, is found by name, and runs its hooks from
/// kevent(): attach errors come back as the change's error, touch sees every modification,
/// posts activate, EV_CLEAR resets the accumulated data, delete and close detach.
#[test]
fn registered_filter_hooks() {
    let probe = Arc::new(Probe {
        attached: AtomicUsize::new(0),
        detached: AtomicUsize::new(0),
    });
    let f = register_filter("TEST_PROBE", probe.clone()).unwrap();
    assert!(f > 0);
    assert_eq!(r(filter_by_name("TEST_PROBE")), Ok(f));
    assert_eq!(r(filter_name(f)).as_deref(), Ok("TEST_PROBE"));
    assert_eq!(
        r(register_filter("TEST_PROBE", probe.clone())),
        Err(Errno(libc::EEXIST))
    );
    assert_eq!(
        r(register_filter("EVFILT_USER", probe.clone())),
        Err(Errno(libc::EEXIST))
    );
    assert_eq!(r(register_filter("", probe.clone())), Err(Errno::INVAL));

    let kq = Kqueue::new().unwrap();
    let ev = |ident, flags, data| Kevent::new(ident, f, flags, 0, data, null_mut());
    let mut out = [Kevent::default(); 4];
    // Attach failure: EPERM as a report, and no knote.
    assert_eq!(kq.kevent(&[ev(0, EV_ADD, 0)], &mut out, None).unwrap(), 1);
    assert_eq!(
        (out[0].flags, out[0].data),
        (EV_ERROR, libc::EPERM as isize)
    );
    assert_eq!(r(kq.post(0, f, 1)), Err(Errno::NOENT));

    kq.kevent(
        &[ev(1, EV_ADD | EV_CLEAR, 0), ev(2, EV_ADD, 0)],
        &mut [],
        None,
    )
    .unwrap();
    assert_eq!(probe.attached.load(Ordering::SeqCst), 2);
    assert_eq!(kq.kevent(&[], &mut out, Some(Duration::ZERO)).unwrap(), 0);
    assert_eq!(r(kq.post(1, f, 2)), Ok(true));
    assert_eq!(r(kq.post(1, f, 3)), Ok(true));
    // A modification goes through touch (data += 10) and re-evaluates.
    kq.kevent(&[ev(1, 0, 10)], &mut [], None).unwrap();
    let n = kq.kevent(&[], &mut out, Some(Duration::ZERO)).unwrap();
    assert_eq!((n, out[0].ident, out[0].data), (1, 1, 15));
    // EV_CLEAR reset the count: nothing until the next post.
    assert_eq!(kq.kevent(&[], &mut out, Some(Duration::ZERO)).unwrap(), 0);
    assert_eq!(r(kq.post(1, f, 0)), Ok(false));

    kq.kevent(&[ev(1, EV_DELETE, 0)], &mut [], None).unwrap();
    assert_eq!(probe.detached.load(Ordering::SeqCst), 1);
    drop(kq);
    assert_eq!(
        probe.detached.load(Ordering::SeqCst),
        2,
        "close detaches the rest"
    );
}
