//! `/proc/self/fdinfo/N` of an epoll instance lists its registrations, one line each:
//! `tfd: <fd> events: <hex> data: <hex> ...`. The library tags one registration of every
//! kqueue's epoll with the kqueue's process-unique id, which identifies a kqueue reached
//! through a number the library has never seen (a dup() of it).

use rustix::fd::RawFd;
use std::io::Read;

/// The `data` words of the registrations of epoll descriptor `fd`; empty when `fd` is not an
/// epoll instance or /proc is not mounted.
pub(crate) fn epoll_data(fd: RawFd) -> Vec<u64> {
    let mut text = String::new();
    let path = format!("/proc/self/fdinfo/{fd}");
    if std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .is_err()
    {
        return Vec::new();
    }
    text.lines()
        .filter(|l| l.starts_with("tfd:"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "data:")?;
            u64::from_str_radix(words.next()?, 16).ok()
        })
        .collect()
}
