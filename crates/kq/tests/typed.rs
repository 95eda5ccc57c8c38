//! The typed layer and the guarantees of the Rust API: `apply` neither allocates nor drops
//! changes, tokens, event accessors, one spelling per filter, the event buffer, the waker,
//! the lookup by descriptor and descriptor hand-over, and the kqueue's state after a
//! panicking filter hook or change/event list (poisoned: EBADF) or a call from inside one
//! (EDEADLK).

use kq::filter::{register_filter, Context, Filter};
use kq::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

/// Counts the allocations of each thread.
struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; the counter is a const-initialised thread local
// that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as allocated above.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(|a| a.get());
    f();
    ALLOCS.with(|a| a.get()) - before
}

fn errno<T: std::fmt::Debug>(r: std::io::Result<T>) -> i32 {
    r.expect_err("expected an error").raw_os_error().unwrap()
}

/// `apply`, `trigger`, `Waker::wake` and `wait` allocate nothing once the knotes exist.
#[test]
fn hot_paths_do_not_allocate() {
    let kq = Kqueue::new().unwrap();
    let waker = kq.waker(1).unwrap();
    kq.add_user(2).unwrap();
    let mut events = Events::with_capacity(8);
    let fire = [
        Change::user(2).trigger().token(5),
        Change::user(2).trigger().data(3).token(5),
    ];
    // Warm up (thread locals, lazily made objects).
    kq.apply(&fire).unwrap();
    waker.wake().unwrap();
    kq.wait(&mut events, Some(Duration::ZERO)).unwrap();
    let n = allocations_in(|| {
        for _ in 0..100 {
            kq.apply(&fire).unwrap();
            kq.trigger(2, 1).unwrap();
            waker.wake().unwrap();
            assert_eq!(kq.wait(&mut events, Some(Duration::ZERO)).unwrap(), 2);
        }
    });
    assert_eq!(n, 0, "allocations on the hot paths");
}

/// A change with EV_RECEIPT makes `apply` fail with EINVAL before anything is applied
/// (instead of applying the changes up to the receipt and silently dropping the rest).
#[test]
fn apply_refuses_receipts_and_applies_nothing() {
    let kq = Kqueue::new().unwrap();
    let changes = [
        Change::user(1).add(),
        Change::user(2).add().receipt(),
        Change::user(3).add(),
    ];
    assert_eq!(errno(kq.apply(&changes)), libc::EINVAL);
    for ident in 1..=3 {
        assert_eq!(errno(kq.trigger(ident, 0)), libc::ENOENT, "ident {ident}");
    }
    // Failing changes stop the list, with their error.
    let changes = [
        Change::user(1).add(),
        Change::user(9).delete(),
        Change::user(3).add(),
    ];
    assert_eq!(errno(kq.apply(&changes)), libc::ENOENT);
    kq.trigger(1, 0).unwrap();
    assert_eq!(errno(kq.trigger(3, 0)), libc::ENOENT);
}

/// Tokens travel through `udata`; every change replaces them.
#[test]
fn tokens() {
    let kq = Kqueue::new().unwrap();
    kq.apply(&[Change::user(1).add().clear().token(usize::MAX)])
        .unwrap();
    kq.apply(&[Change::user(1).trigger().token(usize::MAX)])
        .unwrap();
    let mut events = Events::with_capacity(2);
    kq.wait(&mut events, Some(Duration::ZERO)).unwrap();
    assert_eq!(events.iter().next().unwrap().token(), usize::MAX);
    kq.trigger(1, 0).unwrap();
    kq.wait(&mut events, Some(Duration::ZERO)).unwrap();
    assert_eq!(events.iter().next().unwrap().token(), 0);
}

/// Readiness accessors on descriptor events, reports and receipts.
#[test]
fn event_accessors() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = a.as_raw_fd() as usize;
    let kq = Kqueue::new().unwrap();
    kq.apply(&[
        Change::new(fd, EventFilter::Read).add().token(1),
        Change::new(fd, EventFilter::Write).add().token(2),
    ])
    .unwrap();
    let mut events = Events::with_capacity(4);
    assert_eq!(kq.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
    let w = events.iter().next().unwrap();
    assert!(w.is_writable() && !w.is_readable() && !w.is_eof() && !w.is_error());
    assert_eq!((w.filter(), w.token()), (EventFilter::Write, 2));
    assert!(w.report().is_none() && w.error().is_none());
    drop(b);
    kq.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
    let r = events.iter().find(|e| e.is_readable()).unwrap();
    assert!(r.is_eof() && r.flags().contains(Flags::EOF) && !r.is_error());

    // Reports: a failure is an error, a receipt is not.
    let mut out = [Kevent::default(); 2];
    let changes = [
        Change::user(1).add().receipt().kevent(),
        Change::user(2).trigger().kevent(),
    ];
    assert_eq!(kq.kevent(&changes, &mut out, None).unwrap(), 2);
    let (receipt, failure) = (Event::from(out[0]), Event::from(out[1]));
    assert!(!receipt.is_error() && receipt.report().unwrap().is_ok());
    assert!(!receipt.is_user(), "a report is not an event");
    assert!(failure.is_error() && failure.flags().contains(Flags::ERROR));
    assert_eq!(failure.error().unwrap().raw_os_error(), Some(libc::ENOENT));
}

/// Every filter number has one spelling, which round-trips.
#[test]
fn one_spelling_per_filter() {
    for n in i16::MIN..=i16::MAX {
        let f = EventFilter::from_raw(n);
        assert_eq!(f.raw(), n);
        assert_eq!(EventFilter::from(n), f);
        if let EventFilter::Other(o) = f {
            assert_eq!(o.raw(), n);
            assert!(!(-13..=-1).contains(&n) || n == -12, "{n} has a name");
        }
    }
    assert_eq!(EventFilter::from_raw(EVFILT_EMPTY), EventFilter::Empty);
}

/// Flags keep unknown bits.
#[test]
fn flags_round_trip() {
    for bits in [0u16, EV_ADD | EV_CLEAR, 0x0800, 0xFFFF] {
        assert_eq!(Flags::from_bits_retain(bits).bits(), bits);
    }
    let c = Change::user(1).flags(Flags::ADD).flags(Flags::ONESHOT);
    assert_eq!(c.kevent().flags, EV_ADD | EV_ONESHOT);
}

/// The event buffer: capacity, clear, iteration by reference, Debug of the delivered
/// records only.
#[test]
fn events_buffer() {
    let kq = Kqueue::new().unwrap();
    let mut events = Events::with_capacity(8);
    assert_eq!(format!("{events:?}"), "[]");
    for i in 0..3 {
        kq.add_user(i).unwrap();
        kq.trigger(i, 0).unwrap();
    }
    assert_eq!(kq.wait(&mut events, Some(Duration::ZERO)).unwrap(), 3);
    assert_eq!((events.len(), events.capacity()), (3, 8));
    let idents: Vec<usize> = (&events).into_iter().map(|e| e.ident()).collect();
    assert_eq!(idents, [0, 1, 2]);
    assert_eq!(events.iter().next_back().unwrap().ident(), 2);
    assert_eq!(format!("{events:?}").matches("Event(").count(), 3);
    events.clear();
    assert!(events.is_empty() && events.iter().next().is_none());
    assert_eq!(events.capacity(), 8);
}

/// A waker wakes a thread blocked in `wait`, from clones in many threads; wakes coalesce;
/// once the kqueue is gone, wake gives EBADF.
#[test]
fn waker_across_threads() {
    let kq = Kqueue::new().unwrap();
    let waker = Waker::new(&kq, 77).unwrap();
    thread::scope(|s| {
        for _ in 0..4 {
            let w = waker.clone();
            s.spawn(move || w.wake().unwrap());
        }
        let mut events = Events::with_capacity(4);
        assert_eq!(
            kq.wait(&mut events, Some(Duration::from_secs(5))).unwrap(),
            1
        );
        let ev = events.iter().next().unwrap();
        assert_eq!(
            (ev.ident(), ev.token(), ev.filter()),
            (77, 77, EventFilter::User)
        );
    });
    assert_eq!(waker.token(), 77);
    drop(kq);
    assert_eq!(errno(waker.wake()), libc::EBADF);
}

/// The lookup by descriptor has the typed methods; a kqueue handed over as a descriptor
/// lives until that is closed.
#[test]
fn find_and_hand_over() {
    let kq = Kqueue::new().unwrap();
    let waker = kq.waker(3).unwrap();
    let fd: OwnedFd = kq.into();
    {
        let found = Kqueue::find(fd.as_fd()).unwrap();
        assert_eq!(found.as_fd().as_raw_fd(), fd.as_raw_fd());
        found.add_user(1).unwrap();
        found.trigger(1, 0x2).unwrap();
        waker.wake().unwrap();
        let mut events = Events::with_capacity(4);
        assert_eq!(found.wait(&mut events, Some(Duration::ZERO)).unwrap(), 2);
        found.delete(1, EventFilter::User).unwrap();
    }
    let raw = fd.into_raw_fd();
    kq::fdclose(raw);
    // SAFETY: the number is ours and closed once.
    assert_eq!(unsafe { libc::close(raw) }, 0);
    assert_eq!(errno(waker.wake()), libc::EBADF);

    let file = std::fs::File::open("/dev/null").unwrap();
    assert_eq!(errno(Kqueue::find(file.as_fd())), libc::EBADF);
    let raw = Kqueue::new().unwrap().into_raw_fd();
    kq::fdclose(raw);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::close(raw) }, 0);
}

/// The builder sets the personality and the waiting policy.
#[test]
fn builder() {
    let kq = Kqueue::builder()
        .personality(Personality::FreeBsd)
        .spin_limit(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(kq.personality(), Personality::FreeBsd);
    let mut events = Events::with_capacity(1);
    assert_eq!(
        kq.wait(&mut events, Some(Duration::from_millis(1)))
            .unwrap(),
        0
    );
}

/// Panics in ident 666's attach, in ident 667's touch on delivery; counts detaches.
struct Bomb {
    detached: AtomicUsize,
}

impl Filter for Bomb {
    fn attach(&self, kn: &mut Knote, _cx: &mut Context<'_>) -> Result<(), Errno> {
        assert_ne!(kn.ident(), 666, "attach bomb");
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
        ty: kq::filter::Touch,
        _cx: &mut Context<'_>,
    ) -> Result<(), Errno> {
        assert!(
            !(ty == kq::filter::Touch::Process && kn.ident() == 667),
            "touch bomb"
        );
        kq::filter::default_touch(kn, kev, ty);
        Ok(())
    }
}

fn bomb() -> (i16, &'static Bomb) {
    static B: OnceLock<(i16, Arc<Bomb>)> = OnceLock::new();
    let (n, b) = B.get_or_init(|| {
        let b = Arc::new(Bomb {
            detached: AtomicUsize::new(0),
        });
        (register_filter("TYPED_BOMB", b.clone()).unwrap(), b)
    });
    (*n, &**b)
}

fn bomb_change(filter: i16, ident: usize) -> Kevent {
    Kevent::new(ident, filter, EV_ADD, 0, 0, std::ptr::null_mut())
}

fn expect_poisoned(kq: &Kqueue) {
    let mut out = [Kevent::default(); 2];
    assert_eq!(
        errno(kq.kevent(&[], &mut out, Some(Duration::ZERO))),
        libc::EBADF
    );
    assert_eq!(errno(kq.trigger(1, 0)), libc::EBADF);
    assert_eq!(errno(kq.apply(&[Change::user(5).add()])), libc::EBADF);
}

/// A hook that panics while a change is applied poisons the kqueue: the panic reaches the
/// caller, a thread asleep in it wakes with EBADF, every later call fails with EBADF, and
/// dropping it detaches the knotes without panicking.
#[test]
fn panic_in_attach_poisons() {
    let (f, b) = bomb();
    let kq = Kqueue::new().unwrap();
    kq.add_user(1).unwrap();
    kq.kevent(&[bomb_change(f, 1)], &mut [], None).unwrap();
    thread::scope(|s| {
        let sleeper = s.spawn(|| {
            let mut events = Events::with_capacity(1);
            kq.wait(&mut events, Some(Duration::from_secs(20)))
        });
        thread::sleep(Duration::from_millis(50));
        let r = catch_unwind(AssertUnwindSafe(|| {
            kq.kevent(&[bomb_change(f, 666)], &mut [], None)
        }));
        assert!(r.is_err(), "the panic reaches the caller");
        assert_eq!(errno(sleeper.join().unwrap()), libc::EBADF);
    });
    expect_poisoned(&kq);
    let before = b.detached.load(Ordering::SeqCst);
    drop(kq);
    // Ident 1 detached; 666, whose attach panicked, may be detached too.
    assert!(b.detached.load(Ordering::SeqCst) > before);
}

/// A hook that panics while events are delivered poisons the kqueue too.
#[test]
fn panic_in_touch_poisons() {
    let (f, _) = bomb();
    let kq = Kqueue::new().unwrap();
    kq.kevent(&[bomb_change(f, 667)], &mut [], None).unwrap();
    kq.post(667, f, 1).unwrap();
    let mut out = [Kevent::default(); 2];
    let r = catch_unwind(AssertUnwindSafe(|| {
        kq.kevent(&[], &mut out, Some(Duration::ZERO))
    }));
    assert!(r.is_err());
    expect_poisoned(&kq);
    assert_eq!(errno(kq.post(667, f, 1)), libc::EBADF);
}

/// A change list or an event list that panics poisons the kqueue.
#[test]
fn panic_in_lists_poisons() {
    struct BadChanges;
    impl ChangeList for BadChanges {
        fn len(&self) -> usize {
            2
        }
        fn get(&mut self, i: usize) -> Kevent {
            assert_eq!(i, 0, "change list bomb");
            Change::user(1).add().kevent()
        }
    }
    let kq = Kqueue::new().unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| {
        kq.kevent_raw(BadChanges, &mut [][..], None)
    }));
    assert!(r.is_err());
    expect_poisoned(&kq);

    struct BadEvents;
    impl EventList for BadEvents {
        fn len(&self) -> usize {
            1
        }
        fn put(&mut self, _i: usize, _ev: Kevent) {
            panic!("event list bomb");
        }
    }
    let kq = Kqueue::new().unwrap();
    kq.add_user(1).unwrap();
    kq.trigger(1, 0).unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| kq.kevent_raw(&[][..], BadEvents, None)));
    assert!(r.is_err());
    expect_poisoned(&kq);
}

/// A call made by a destructor while the thread unwinds from a panic of its own does not
/// poison the kqueue.
#[test]
fn unwinding_caller_does_not_poison() {
    struct TriggerOnDrop<'a>(&'a Kqueue);
    impl Drop for TriggerOnDrop<'_> {
        fn drop(&mut self) {
            self.0.trigger(1, 0).unwrap();
        }
    }
    let kq = Kqueue::new().unwrap();
    kq.add_user(1).unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _guard = TriggerOnDrop(&kq);
        panic!("unrelated");
    }));
    assert!(r.is_err());
    let mut events = Events::with_capacity(1);
    assert_eq!(kq.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
}

/// A change list that calls back into a kqueue gets EDEADLK (no deadlock), and the
/// kqueue stays usable.
#[test]
fn reentry_from_a_list_is_edeadlk() {
    struct Reenter<'a>(&'a Waker, Option<i32>);
    impl ChangeList for &mut Reenter<'_> {
        fn len(&self) -> usize {
            1
        }
        fn get(&mut self, _i: usize) -> Kevent {
            self.1 = self.0.wake().err().and_then(|e| e.raw_os_error());
            Change::user(2).add().kevent()
        }
    }
    let kq = Kqueue::new().unwrap();
    let waker = kq.waker(1).unwrap();
    let mut list = Reenter(&waker, None);
    kq.kevent_raw(&mut list, &mut [][..], None).unwrap();
    assert_eq!(list.1, Some(libc::EDEADLK));
    kq.trigger(2, 0).unwrap();
    waker.wake().unwrap();
}
