//! EVFILT_USER: events that user code triggers (NetBSD PR kern/55663), with the rules of
//! docs/semantics.md §4.
//!
//! No kernel object: the state is the knote's. `hookid` is the "triggered" bit, `sfflags`
//! the stored user flags reported in `fflags`, `sdata` the value reported in `data`.

use super::{Context, Filter, Touch};
use crate::consts::*;
use crate::kevent::{Errno, Kevent};
use crate::knote::Knote;

pub(crate) struct UserFilter;

impl Filter for UserFilter {
    fn attach(&self, kn: &mut Knote, _cx: &mut Context<'_>) -> Result<(), Errno> {
        // Like the kernels, test the output fflags, which registration has just zeroed,
        // rather than the saved input: EV_ADD|NOTE_TRIGGER never fires a new knote on
        // NetBSD or FreeBSD (docs/semantics.md §4.2). The creation fflags stay raw in
        // `sfflags`, control bits included (also §4.2).
        kn.hookid = u64::from(kn.kev.fflags & NOTE_TRIGGER != 0);
        Ok(())
    }

    fn event(&self, kn: &mut Knote, _hint: i64, _cx: &mut Context<'_>) -> bool {
        kn.hookid != 0
    }

    fn touch(
        &self,
        kn: &mut Knote,
        kev: &mut Kevent,
        ty: Touch,
        _cx: &mut Context<'_>,
    ) -> Result<(), Errno> {
        match ty {
            Touch::Register => {
                if kev.fflags & NOTE_TRIGGER != 0 {
                    kn.hookid = 1;
                }
                let v = kev.fflags & NOTE_FFLAGSMASK;
                match kev.fflags & NOTE_FFCTRLMASK {
                    NOTE_FFAND => kn.sfflags &= v,
                    NOTE_FFOR => kn.sfflags |= v,
                    NOTE_FFCOPY => kn.sfflags = v,
                    _ => {} // NOTE_FFNOP
                }
                // The echoed change (an EV_RECEIPT entry) shows the masked value.
                kev.fflags = v;
                // Every change overwrites the reported data, a bare EV_ENABLE included.
                kn.sdata = kev.data as i64;
                // EV_CLEAR in a change cancels the trigger, even one in the same change; it
                // does not make the knote an EV_CLEAR knote.
                if kev.flags & EV_CLEAR != 0 {
                    kn.hookid = 0;
                    kn.kev.data = 0;
                    kn.kev.fflags = 0;
                }
            }
            Touch::Process => {
                *kev = kn.kev;
                kev.fflags = kn.sfflags;
                kev.data = kn.sdata as isize;
                // Delivery resets only the trigger; the user flags and data are reported
                // again on the next firing unless a change edits them.
                if kn.kev.flags & EV_CLEAR != 0 {
                    kn.hookid = 0;
                    kn.kev.data = 0;
                    kn.kev.fflags = 0;
                }
            }
        }
        Ok(())
    }
}
