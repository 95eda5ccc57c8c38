//! `/proc/self/fdinfo/N` of an epoll instance lists its registrations, one line each:
//! `tfd: <fd> events: <hex> data: <hex> ...`. The library tags one registration of every
//! kqueue's epoll with the kqueue's process-unique id, which identifies a kqueue reached
//! through a number the library has never seen (a dup() of it).
//!
//! The fdinfo of an eventfd shows its counter (`eventfd-count:`, hexadecimal), that of a
//! timerfd its expirations (`ticks:`), which EVFILT_READ and EVFILT_WRITE report in `data`
//! as the BSDs do ([`number`]).

use rustix::fd::RawFd;
use rustix::fs::{Mode, OFlags};
use std::ffi::CStr;
use std::io::Read;
use std::sync::atomic::{AtomicU8, Ordering};

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

/// Whether `/proc/self/fdinfo` may be read for the counters of eventfds and timerfds: not
/// where `KQ_NO_PROC_FDINFO` is set in the environment (so that tests run the fallback of a
/// system without /proc), nor after a read found it missing. 0: not known yet, 1: yes,
/// 2: no.
static COUNTERS: AtomicU8 = AtomicU8::new(0);

fn counters_readable() -> bool {
    match COUNTERS.load(Ordering::Relaxed) {
        0 => {
            let ok = std::env::var_os("KQ_NO_PROC_FDINFO").is_none();
            COUNTERS.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
            ok
        }
        v => v == 1,
    }
}

/// The number on line `name` (e.g. `b"eventfd-count:"`, hexadecimal, or `b"ticks:"`,
/// decimal: `radix`) of `/proc/self/fdinfo/<fd>`, read with one open, read and close and no
/// allocation; `None` when /proc is not there (then never asked again) or the line is
/// missing. Reading fdinfo consumes nothing: an eventfd's counter, a timerfd's expirations
/// stay as they were.
pub(crate) fn number(fd: RawFd, name: &[u8], radix: u32) -> Option<u64> {
    if fd < 0 || !counters_readable() {
        return None;
    }
    // "/proc/self/fdinfo/" and up to 10 digits and the NUL.
    let mut path = [0u8; 40];
    let prefix = b"/proc/self/fdinfo/";
    path[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 10];
    let (mut n, mut len) = (fd as u32, 0);
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (i, d) in digits[..len].iter().rev().enumerate() {
        path[prefix.len() + i] = *d;
    }
    let path = CStr::from_bytes_until_nul(&path).ok()?;
    let file = match rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
        Ok(f) => f,
        Err(_) => {
            // No /proc (or no fdinfo in it): today's answers from now on. A closed number
            // (ENOENT), or no descriptor to spare (EMFILE, ENFILE) with /proc there, says
            // nothing about /proc.
            if !proc_mounted() {
                COUNTERS.store(2, Ordering::Relaxed);
            }
            return None;
        }
    };
    let mut buf = [0u8; 1024];
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::io::read(&file, &mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
    drop(file);
    parse_number(&buf[..filled], name, radix)
}

/// Whether /proc is mounted (its `self` link resolves).
fn proc_mounted() -> bool {
    rustix::fs::access("/proc/self/fdinfo", rustix::fs::Access::EXISTS).is_ok()
}

/// The value of line `name` in fdinfo text `text`.
fn parse_number(text: &[u8], name: &[u8], radix: u32) -> Option<u64> {
    let line = text.split(|b| *b == b'\n').find(|l| l.starts_with(name))?;
    let value = std::str::from_utf8(&line[name.len()..]).ok()?.trim();
    u64::from_str_radix(value, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::parse_number;

    #[test]
    fn parses_eventfd_and_timerfd_lines() {
        let e = b"pos:\t0\nflags:\t02004002\nmnt_id:\t15\nino:\t1057\neventfd-count:               1f\neventfd-id: 3\n";
        assert_eq!(parse_number(e, b"eventfd-count:", 16), Some(31));
        let t = b"pos:\t0\nclockid: 1\nticks: 42\nsettime flags: 00\nit_value: (0, 1)\n";
        assert_eq!(parse_number(t, b"ticks:", 10), Some(42));
        assert_eq!(parse_number(t, b"eventfd-count:", 16), None);
    }
}
