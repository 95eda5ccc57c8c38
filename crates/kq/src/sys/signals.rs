//! Signal masks: kevent() blocks every signal from the moment it decides to wait until the
//! wait itself restores the program's mask atomically, so that a signal arriving in between
//! interrupts the wait (EINTR) instead of being lost.

/// An empty signal set (no call: all zeroes is the empty set on Linux).
pub(crate) fn empty_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, valid with all bits zero.
    unsafe { std::mem::zeroed() }
}

/// Every signal blocked in this thread until dropped, which restores the mask from before.
pub(crate) struct SignalsBlocked {
    pub(crate) old: libc::sigset_t,
}

impl SignalsBlocked {
    pub(crate) fn new() -> SignalsBlocked {
        // SAFETY: sigset_t is plain data; sigfillset initialises `all`; pthread_sigmask only
        // changes this thread's mask and writes the previous one to `old`.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            SignalsBlocked { old }
        }
    }
}

impl SignalsBlocked {
    /// Takes over signals that a [`SignalsBlocked::keep`] left blocked, `old` being the mask
    /// from before: dropping the result restores it.
    pub(crate) fn adopt(old: libc::sigset_t) -> SignalsBlocked {
        SignalsBlocked { old }
    }

    /// Leaves every signal blocked and returns the mask to restore later, by
    /// [`SignalsBlocked::adopt`] (or by the caller itself).
    pub(crate) fn keep(self) -> libc::sigset_t {
        let old = self.old;
        std::mem::forget(self);
        old
    }
}

impl SignalsBlocked {
    /// Drops the signals that arrived while every signal was blocked, that the program's
    /// own mask (`old`) lets through, and whose disposition ignores them (SIG_IGN, or the
    /// default action of SIGCHLD, SIGCONT, SIGURG and SIGWINCH): a wait that unblocks them
    /// would end with EINTR though nothing handles them (a child's exit would interrupt a
    /// kevent() waiting for it), where the BSDs never interrupt kevent() for an ignored
    /// signal, and where Linux itself discards such a signal as it is sent to a thread that
    /// does not block it. A signal the program blocks stays pending (a sigwait() thread may
    /// want it), and so does one it handles.
    pub(crate) fn discard_ignored(&self) {
        let mut pending = empty_set();
        // SAFETY: sigpending writes the set it is given.
        if unsafe { libc::sigpending(&mut pending) } != 0 || is_empty(&pending) {
            return;
        }
        for sig in 1..=libc::SIGRTMAX() {
            // SAFETY: membership tests of live sets.
            let candidate = unsafe {
                libc::sigismember(&pending, sig) == 1 && libc::sigismember(&self.old, sig) == 0
            };
            if candidate && ignored(sig) {
                let mut one = empty_set();
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: `one` is a live set; sigtimedwait with a zero timeout takes the
                // signal if it is pending (it is blocked in this thread) and returns.
                unsafe {
                    libc::sigaddset(&mut one, sig);
                    libc::sigtimedwait(&one, std::ptr::null_mut(), &zero);
                }
            }
        }
    }
}

impl SignalsBlocked {
    /// The mask to sleep with: the program's, plus SIGCHLD where `keep_sigchld` says so
    /// (the process watches processes) and SIGCHLD is ignored (SIG_IGN or SIG_DFL): a child
    /// that exits while kevent() is going to sleep then cannot end the sleep with EINTR,
    /// whatever the instant. The signal stays pending until the program's mask is back,
    /// and is discarded then, as Linux would have discarded it.
    pub(crate) fn sleep_mask(&self, keep_sigchld: bool) -> libc::sigset_t {
        let mut mask = self.old;
        // SAFETY: membership test and insertion in a live set.
        unsafe {
            if keep_sigchld
                && libc::sigismember(&mask, libc::SIGCHLD) == 0
                && ignored(libc::SIGCHLD)
            {
                libc::sigaddset(&mut mask, libc::SIGCHLD);
            }
        }
        mask
    }
}

/// Whether no signal is in `set`.
fn is_empty(set: &libc::sigset_t) -> bool {
    // SAFETY: a sigset_t is plain data; its bytes are read for the length of the value.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (set as *const libc::sigset_t).cast::<u8>(),
            std::mem::size_of::<libc::sigset_t>(),
        )
    };
    bytes.iter().all(|&b| b == 0)
}

/// Whether signal `sig`'s disposition discards it: the action installed in the kernel (the
/// C library's `sigaction`, never an interposed one, which would give the program's view
/// where the library's own handler is installed for an EVFILT_SIGNAL knote).
fn ignored(sig: libc::c_int) -> bool {
    // SAFETY: sigaction is plain data, valid when zeroed.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    if super::sigaction::sigaction(sig, None, Some(&mut sa)).is_err() {
        return false;
    }
    sa.sa_sigaction == libc::SIG_IGN
        || (sa.sa_sigaction == libc::SIG_DFL
            && matches!(
                sig,
                libc::SIGCHLD | libc::SIGCONT | libc::SIGURG | libc::SIGWINCH
            ))
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores this thread's mask from a set saved by `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}
