//! `mio::event::Source` for `Kqueue`.

use kq::{Events, Kqueue};
use mio::{Interest, Poll, Token};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(10);
const SHORT: Duration = Duration::from_millis(50);

fn tokens(poll: &mut Poll, timeout: Duration) -> Vec<Token> {
    let mut evs = mio::Events::with_capacity(8);
    poll.poll(&mut evs, Some(timeout)).unwrap();
    evs.iter().map(|e| e.token()).collect()
}

/// Register, reregister with another token, deregister; a new trigger gives a new edge
/// while the kqueue is already readable.
#[test]
fn register_reregister_deregister() {
    let mut poll = Poll::new().unwrap();
    let mut kq = Kqueue::new().unwrap();
    kq.add_user(1).unwrap();
    kq.add_user(2).unwrap();
    poll.registry()
        .register(&mut kq, Token(3), Interest::READABLE)
        .unwrap();
    assert!(tokens(&mut poll, SHORT).is_empty());

    kq.trigger(1, 0).unwrap();
    assert_eq!(tokens(&mut poll, LONG), [Token(3)]);
    // Edge-triggered: nothing new, no event, though the kqueue is still readable.
    assert!(tokens(&mut poll, SHORT).is_empty());
    // A new event while one is pending: a new edge.
    kq.trigger(2, 0).unwrap();
    assert_eq!(tokens(&mut poll, LONG), [Token(3)]);
    let mut events = Events::with_capacity(8);
    assert_eq!(kq.wait(&mut events, Some(Duration::ZERO)).unwrap(), 2);

    poll.registry()
        .reregister(&mut kq, Token(4), Interest::READABLE)
        .unwrap();
    kq.trigger(1, 0).unwrap();
    assert_eq!(tokens(&mut poll, LONG), [Token(4)]);
    assert_eq!(kq.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);

    poll.registry().deregister(&mut kq).unwrap();
    kq.trigger(1, 0).unwrap();
    assert!(tokens(&mut poll, SHORT).is_empty());
}

/// A timer fires into a mio loop with no thread blocked in kevent().
#[test]
fn timer_wakes_the_poll() {
    let mut poll = Poll::new().unwrap();
    let mut kq = Kqueue::new().unwrap();
    poll.registry()
        .register(&mut kq, Token(0), Interest::READABLE)
        .unwrap();
    kq.apply(&[kq::Change::timer(1, Duration::from_millis(5))
        .add()
        .oneshot()])
        .unwrap();
    assert_eq!(tokens(&mut poll, LONG), [Token(0)]);
    let mut events = Events::with_capacity(8);
    assert_eq!(kq.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
    assert_eq!(kq.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
}
