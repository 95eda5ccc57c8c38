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

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores this thread's mask from a set saved by `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}
