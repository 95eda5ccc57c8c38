//! A file watcher on EVFILT_VNODE: `cargo run -p kq --example watch -- PATH`.
//!
//! PATH is a file or a directory. A directory is watched together with the regular files in
//! it: a file created (or moved) into it is watched from then on, a renamed file is followed
//! to its new name, a deleted one dropped. Each event prints one line, `NAME: NOTES`, the
//! notes in a fixed order (`delete write extend attrib link rename revoke`); then what the
//! watcher made of it (`new NAME`, `OLD renamed to NEW`, `NAME moved away`). The watcher
//! stops when PATH itself is deleted, or when its standard input (a pipe or a terminal)
//! reaches end of file.
//!
//! ```text
//! $ cargo run -p kq --example watch -- /tmp/d &
//! watching /tmp/d
//! $ echo hi > /tmp/d/a
//! /tmp/d: write
//! new a
//! a: write extend
//! ```
//!
//! The test suite runs it through a scripted scenario (`tests/watch_example.rs`); the C
//! version is `examples/watch.c`.

use kq::*;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::ptr::null_mut;

const DIR_NOTES: u32 =
    NOTE_DELETE | NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB | NOTE_LINK | NOTE_RENAME | NOTE_REVOKE;
const FILE_NOTES: u32 = DIR_NOTES;

/// The notes of `fflags`, by name, in a fixed order.
fn names(fflags: u32) -> String {
    const NAMES: [(u32, &str); 11] = [
        (NOTE_DELETE, "delete"),
        (NOTE_WRITE, "write"),
        (NOTE_EXTEND, "extend"),
        (NOTE_ATTRIB, "attrib"),
        (NOTE_LINK, "link"),
        (NOTE_RENAME, "rename"),
        (NOTE_REVOKE, "revoke"),
        (NOTE_OPEN, "open"),
        (NOTE_CLOSE, "close"),
        (NOTE_CLOSE_WRITE, "close_write"),
        (NOTE_READ, "read"),
    ];
    let words: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| fflags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    words.join(" ")
}

/// A watched file: its name (relative to the watched directory) and its inode, and the
/// open file the knote watches through (closed when the entry goes).
struct Entry {
    name: String,
    _file: File,
    ino: u64,
}

struct Watcher<'a, W: Write> {
    kq: Kqueue,
    root: PathBuf,
    root_fd: RawFd,
    dir: bool,
    files: HashMap<RawFd, Entry>,
    out: &'a mut W,
}

impl<W: Write> Watcher<'_, W> {
    fn add(&self, fd: RawFd, notes: u32) -> io::Result<()> {
        let c = Kevent::new(
            fd as usize,
            EVFILT_VNODE,
            EV_ADD | EV_CLEAR,
            notes,
            0,
            null_mut(),
        );
        self.kq.kevent(&[c], &mut [], None)?;
        Ok(())
    }

    fn forget(&mut self, fd: RawFd) {
        let c = Kevent::new(fd as usize, EVFILT_VNODE, EV_DELETE, 0, 0, null_mut());
        let _ = self.kq.kevent(&[c], &mut [], None);
        self.files.remove(&fd);
    }

    /// The regular files of the directory, by inode.
    fn scan(&self) -> io::Result<HashMap<u64, String>> {
        let mut found = HashMap::new();
        for e in std::fs::read_dir(&self.root)? {
            let e = e?;
            if e.file_type()?.is_file() {
                found.insert(
                    e.metadata()?.ino(),
                    e.file_name().to_string_lossy().into_owned(),
                );
            }
        }
        Ok(found)
    }

    /// Watches the files of the directory not watched yet.
    fn watch_new(&mut self) -> io::Result<()> {
        let known: Vec<u64> = self.files.values().map(|e| e.ino).collect();
        for (ino, name) in self.scan()? {
            if known.contains(&ino) {
                continue;
            }
            let Ok(file) = File::open(self.root.join(&name)) else {
                continue; // gone meanwhile
            };
            if file.metadata()?.ino() != ino {
                continue; // replaced meanwhile: the next scan sees it
            }
            let fd = file.as_raw_fd();
            self.add(fd, FILE_NOTES)?;
            writeln!(self.out, "new {name}")?;
            self.files.insert(
                fd,
                Entry {
                    name,
                    _file: file,
                    ino,
                },
            );
        }
        Ok(())
    }

    /// Handles one event; returns whether to go on.
    fn handle(&mut self, ev: &Kevent) -> io::Result<bool> {
        let fd = ev.ident as RawFd;
        if fd == self.root_fd {
            writeln!(self.out, "{}: {}", self.root.display(), names(ev.fflags))?;
            if ev.fflags & (NOTE_DELETE | NOTE_REVOKE) != 0 {
                return Ok(false);
            }
            if self.dir && ev.fflags & NOTE_WRITE != 0 {
                self.watch_new()?;
            }
            return Ok(true);
        }
        let Some(entry) = self.files.get(&fd) else {
            return Ok(true);
        };
        let (old, ino) = (entry.name.clone(), entry.ino);
        writeln!(self.out, "{old}: {}", names(ev.fflags))?;
        if ev.fflags & NOTE_DELETE != 0 {
            self.forget(fd);
        } else if ev.fflags & NOTE_RENAME != 0 {
            match self.scan()?.remove(&ino) {
                Some(new) => {
                    writeln!(self.out, "{old} renamed to {new}")?;
                    if let Some(e) = self.files.get_mut(&fd) {
                        e.name = new;
                    }
                }
                None => {
                    writeln!(self.out, "{old} moved away")?;
                    self.forget(fd);
                }
            }
        }
        Ok(true)
    }
}

/// Watches `root`, printing to `out`, until it is deleted or `stop` (if given) reaches end
/// of file.
pub fn run(root: &Path, stop: Option<BorrowedFd<'_>>, out: &mut impl Write) -> io::Result<()> {
    let root_file = File::open(root)?;
    let dir = root_file.metadata()?.is_dir();
    let mut w = Watcher {
        kq: Kqueue::new()?,
        root: root.to_path_buf(),
        root_fd: root_file.as_raw_fd(),
        dir,
        files: HashMap::new(),
        out,
    };
    w.add(w.root_fd, DIR_NOTES)?;
    if dir {
        for (ino, name) in w.scan()? {
            if let Ok(file) = File::open(root.join(&name)) {
                w.add(file.as_raw_fd(), FILE_NOTES)?;
                w.files.insert(
                    file.as_raw_fd(),
                    Entry {
                        name,
                        _file: file,
                        ino,
                    },
                );
            }
        }
    }
    if let Some(stop) = stop {
        let c = Kevent::new(
            stop.as_raw_fd() as usize,
            EVFILT_READ,
            EV_ADD,
            0,
            0,
            null_mut(),
        );
        w.kq.kevent(&[c], &mut [], None)?;
    }
    writeln!(w.out, "watching {}", root.display())?;
    w.out.flush()?;
    let mut events = [Kevent::default(); 16];
    loop {
        let n = w.kq.kevent(&[], &mut events, None)?;
        for ev in &events[..n] {
            if ev.filter == EVFILT_READ {
                // The standard input: end of file stops the watcher, input is ignored.
                let mut buf = [0u8; 512];
                let fd = ev.ident as RawFd;
                // SAFETY: reads into a live buffer of its length.
                let got = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                if got <= 0 {
                    return Ok(());
                }
                continue;
            }
            if !w.handle(ev)? {
                w.out.flush()?;
                return Ok(());
            }
        }
        w.out.flush()?;
    }
}

#[allow(dead_code)] // the tests call `run`
pub fn main() -> io::Result<()> {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: watch PATH");
        std::process::exit(2);
    };
    // Stop at the end of the standard input if it is a pipe or a terminal (not /dev/null).
    let stdin = io::stdin();
    let kind = stdin.as_fd().try_clone_to_owned()?;
    let meta = File::from(kind).metadata()?;
    use std::os::unix::fs::FileTypeExt;
    let stop = (meta.file_type().is_fifo()
        || meta.file_type().is_char_device() && std::io::IsTerminal::is_terminal(&stdin))
    .then(|| stdin.as_fd());
    run(Path::new(&path), stop, &mut io::stdout().lock())
}
