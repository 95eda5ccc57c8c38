//! Runs the tokio and mio examples (`examples/`) as tests.

#[path = "../examples/mio_loop.rs"]
mod mio_loop;
#[path = "../examples/tokio_pool.rs"]
mod tokio_pool;
#[path = "../examples/tokio_timers.rs"]
mod tokio_timers;

/// Worker threads trigger a user event, a tokio task awaits it.
#[test]
fn example_tokio_pool() {
    tokio_pool::main().unwrap();
}

/// A tokio task awaits timers and user events.
#[test]
fn example_tokio_timers() {
    tokio_timers::main().unwrap();
}

/// A kqueue in a mio Poll loop.
#[test]
fn example_mio_loop() {
    mio_loop::main().unwrap();
}
