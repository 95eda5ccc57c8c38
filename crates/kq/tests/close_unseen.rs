//! Closing a raw kqueue descriptor (one handed out as C's `kqueue()` does) when nothing
//! tells the library: no interposed close(), no `kq::fdclose`. The library still notices,
//! soon: a thread blocked in `kevent()` on it returns EBADF, and kqueue()/close() cycles do
//! not pile up descriptors.

use kq::{Kevent, Kqueue, Personality};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A sleeper in kevent() on a raw kqueue returns EBADF within a second of a close the
/// library did not see.
#[test]
fn unseen_close_wakes_sleeper_with_ebadf() {
    let n = Kqueue::new_raw_fd(Personality::FreeBsd).unwrap();
    let t = std::thread::spawn(move || {
        // SAFETY: the number is open until the main thread closes it; after that the
        // borrow is only handed to the library, which must answer EBADF.
        let fd = unsafe { BorrowedFd::borrow_raw(n) };
        let kq = Kqueue::find(fd).unwrap();
        let mut ev = [Kevent::default(); 1];
        let start = Instant::now();
        let r = kq.kevent_raw(&[][..], &mut ev[..], None);
        (r, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: closes the number this test owns, behind the library's back.
    assert_eq!(unsafe { libc::syscall(libc::SYS_close, n) }, 0);
    let (r, waited) = t.join().unwrap();
    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EBADF));
    assert!(waited < Duration::from_secs(30), "woke after {waited:?}");
}

/// 20,000 raw kqueues created and closed behind the library's back leave the descriptor
/// count where it was (within a small slack).
#[test]
fn unseen_close_cycles_do_not_pile_up() {
    let before = fd_count();
    let mut worst = 0;
    for i in 0..20_000 {
        let n = Kqueue::new_raw_fd(Personality::FreeBsd).unwrap();
        // SAFETY: closes the number just made, behind the library's back.
        unsafe { libc::syscall(libc::SYS_close, n) };
        if i % 1000 == 0 {
            worst = worst.max(fd_count().saturating_sub(before));
        }
    }
    assert!(worst <= 64, "{worst} extra descriptors during the cycles");
    // The background sweep (every 100 ms) lets the last kqueues go: wait for it, however
    // long a loaded machine keeps its thread waiting.
    let start = Instant::now();
    let mut after = fd_count().saturating_sub(before);
    while after > 8 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
        after = fd_count().saturating_sub(before);
    }
    assert!(
        after <= 8,
        "{after} extra descriptors 30 s after the cycles"
    );
}
