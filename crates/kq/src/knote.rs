//! Knotes: one registered (ident, filter) per kqueue, their status bits, the (ident, filter)
//! index and the active queue that `kevent()` scans.
//!
//! Knotes live in a slab indexed by `u32`; the index is a hash table of slab indices (4
//! bytes an entry, the key is read back from the knote) and the active queue is an intrusive
//! doubly linked list through the slab, so a knote costs one slab slot plus a few bytes of
//! table whatever it is doing. All of it is guarded by the kqueue's lock.

use crate::kevent::Kevent;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

/// The filter condition holds.
pub(crate) const ACTIVE: u8 = 0x01;
/// On the active queue.
pub(crate) const QUEUED: u8 = 0x02;
/// EV_DISABLE: not delivered until EV_ENABLE.
pub(crate) const DISABLED: u8 = 0x04;
/// Slab slot not in use.
const FREE: u8 = 0x80;

pub(crate) const NIL: u32 = u32::MAX;

/// A registered event: the kernel's `struct knote`, as a filter hook sees it.
///
/// The hook's view: `ident`, `filter` and `udata` are read-only (the engine indexes and
/// reports the knote by them), the queue links and status bits are the engine's and out of
/// reach; the rest is the filter's to read and write:
/// - `flags` (the stored `EV_*` flags: EV_CLEAR, EV_ONESHOT, ... as registered; a filter
///   may add EV_EOF), `fflags` and `data`: the output values the filter accumulates and
///   reports (the kernel's `kn_fflags`/`kn_data`);
/// - `sfflags`/`sdata`: the input values saved at registration (`kn_sfflags`/`kn_sdata`);
/// - `hookid` and `hook`: two words private to the filter.
///
/// A `Knote` lives in its kqueue; hooks get it by `&mut` for the duration of the call and
/// cannot copy it out (it is not `Clone`).
///
/// # Examples
///
/// ```
/// use kq::{filter::{Context, Filter}, Knote};
///
/// /// Fires once the posted hints add up to the `data` given at registration.
/// struct Threshold;
/// impl Filter for Threshold {
///     fn event(&self, kn: &mut Knote, hint: i64, _cx: &mut Context<'_>) -> bool {
///         kn.set_hook(kn.hook() + hint as u64);
///         kn.set_data(kn.hook() as isize);
///         kn.hook() as i64 >= kn.sdata()
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Knote {
    /// The stored kevent image.
    pub(crate) kev: Kevent,
    /// The input `data` saved at registration (`kn_sdata`).
    pub(crate) sdata: i64,
    /// Filter-private word (EVFILT_USER: triggered; EVFILT_TIMER: period in ns).
    pub(crate) hookid: u64,
    /// Filter-private word (EVFILT_TIMER: deadline in CLOCK_MONOTONIC ns, 0 when unarmed).
    pub(crate) hook: u64,
    /// The input `fflags` saved at registration (`kn_sfflags`).
    pub(crate) sfflags: u32,
    pub(crate) prev: u32,
    pub(crate) next: u32,
    pub(crate) status: u8,
}

#[cfg_attr(not(feature = "custom-filters"), allow(dead_code))]
impl Knote {
    fn new(kev: Kevent) -> Knote {
        Knote {
            kev,
            sdata: 0,
            hookid: 0,
            hook: 0,
            sfflags: 0,
            prev: NIL,
            next: NIL,
            status: 0,
        }
    }

    /// The ident (read-only).
    pub fn ident(&self) -> usize {
        self.kev.ident
    }
    /// The filter number (read-only).
    pub fn filter(&self) -> i16 {
        self.kev.filter
    }
    /// The udata of the knote's last change (read-only).
    pub fn udata(&self) -> *mut std::ffi::c_void {
        self.kev.udata
    }
    /// The stored flags (`EV_*`).
    pub fn flags(&self) -> u16 {
        self.kev.flags
    }
    /// Sets the stored flags. They decide how the knote is delivered (EV_ONESHOT, EV_CLEAR,
    /// EV_DISPATCH) and are reported with its events (EV_EOF, ...).
    pub fn set_flags(&mut self, flags: u16) {
        self.kev.flags = flags;
    }
    /// The output filter flags (`kn_fflags`).
    pub fn fflags(&self) -> u32 {
        self.kev.fflags
    }
    /// Sets the output filter flags.
    pub fn set_fflags(&mut self, fflags: u32) {
        self.kev.fflags = fflags;
    }
    /// The output data (`kn_data`).
    pub fn data(&self) -> isize {
        self.kev.data
    }
    /// Sets the output data.
    pub fn set_data(&mut self, data: isize) {
        self.kev.data = data;
    }
    /// The input `fflags` saved at registration (`kn_sfflags`).
    pub fn sfflags(&self) -> u32 {
        self.sfflags
    }
    /// Sets the saved input `fflags`.
    pub fn set_sfflags(&mut self, sfflags: u32) {
        self.sfflags = sfflags;
    }
    /// The input `data` saved at registration (`kn_sdata`).
    pub fn sdata(&self) -> i64 {
        self.sdata
    }
    /// Sets the saved input `data`.
    pub fn set_sdata(&mut self, sdata: i64) {
        self.sdata = sdata;
    }
    /// The first filter-private word.
    pub fn hookid(&self) -> u64 {
        self.hookid
    }
    /// Sets the first filter-private word.
    pub fn set_hookid(&mut self, v: u64) {
        self.hookid = v;
    }
    /// The second filter-private word.
    pub fn hook(&self) -> u64 {
        self.hook
    }
    /// Sets the second filter-private word.
    pub fn set_hook(&mut self, v: u64) {
        self.hook = v;
    }
    /// The stored image as a record: ident, filter, udata, flags and the output
    /// `fflags`/`data` (what the default [`Touch::Process`](crate::filter::Touch) delivers).
    pub fn record(&self) -> Kevent {
        self.kev
    }

    /// Whether EV_DISABLE is in force.
    pub fn is_disabled(&self) -> bool {
        self.status & DISABLED != 0
    }

    /// Whether the knote is active (its condition held when last evaluated).
    pub fn is_active(&self) -> bool {
        self.status & ACTIVE != 0
    }
}

/// The knotes of one kqueue.
pub(crate) struct Knotes {
    slab: Vec<Knote>,
    free: u32,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    head: u32,
    tail: u32,
    /// Number of queued knotes (the kernel's `kq_count`).
    pub(crate) queued: usize,
}

impl Knotes {
    pub(crate) fn new() -> Knotes {
        Knotes {
            slab: Vec::new(),
            free: NIL,
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            head: NIL,
            tail: NIL,
            queued: 0,
        }
    }

    fn hash(hasher: &DefaultHashBuilder, ident: usize, filter: i16) -> u64 {
        hasher.hash_one((ident, filter))
    }

    pub(crate) fn find(&self, ident: usize, filter: i16) -> Option<u32> {
        let slab = &self.slab;
        self.index
            .find(Self::hash(&self.hasher, ident, filter), |&id| {
                let k = &slab[id as usize].kev;
                k.ident == ident && k.filter == filter
            })
            .copied()
    }

    /// Stores a new knote for `kev`'s (ident, filter), which must not exist yet.
    pub(crate) fn insert(&mut self, kev: Kevent) -> Result<u32, crate::Errno> {
        let id = self.insert_unindexed(kev)?;
        let (slab, hasher) = (&self.slab, &self.hasher);
        if self
            .index
            .try_reserve(1, |&i| {
                let k = &slab[i as usize].kev;
                Self::hash(hasher, k.ident, k.filter)
            })
            .is_err()
        {
            self.release(id);
            return Err(crate::Errno::NOMEM);
        }
        let h = Self::hash(&self.hasher, kev.ident, kev.filter);
        let slab = &self.slab;
        self.index.insert_unique(h, id, |&i| {
            let k = &slab[i as usize].kev;
            Self::hash(hasher, k.ident, k.filter)
        });
        Ok(id)
    }

    /// Stores a knote for `kev` that is not in the (ident, filter) index: it is reached
    /// only through the queue (a record delivered once, see `filter::Spawn`).
    pub(crate) fn insert_unindexed(&mut self, kev: Kevent) -> Result<u32, crate::Errno> {
        let knote = Knote::new(kev);
        if self.free != NIL {
            let id = self.free;
            self.free = self.slab[id as usize].next;
            self.slab[id as usize] = knote;
            return Ok(id);
        }
        let id = u32::try_from(self.slab.len())
            .ok()
            .filter(|&id| id != NIL)
            .ok_or(crate::Errno::NOMEM)?;
        self.slab.try_reserve(1).map_err(|_| crate::Errno::NOMEM)?;
        self.slab.push(knote);
        Ok(id)
    }

    /// Removes knote `id` from the index and the queue and frees its slot.
    pub(crate) fn remove(&mut self, id: u32) {
        self.dequeue(id);
        let kev = self.slab[id as usize].kev;
        let h = Self::hash(&self.hasher, kev.ident, kev.filter);
        if let Ok(entry) = self.index.find_entry(h, |&i| i == id) {
            entry.remove();
        }
        self.release(id);
    }

    fn release(&mut self, id: u32) {
        let k = &mut self.slab[id as usize];
        k.status = FREE;
        k.next = self.free;
        self.free = id;
    }

    pub(crate) fn get(&mut self, id: u32) -> &mut Knote {
        &mut self.slab[id as usize]
    }

    pub(crate) fn get_ref(&self, id: u32) -> &Knote {
        &self.slab[id as usize]
    }

    /// Whether `id` names a knote in use (heap entries of deleted timers point at freed or
    /// reused slots).
    pub(crate) fn is_live(&self, id: u32) -> bool {
        self.slab
            .get(id as usize)
            .is_some_and(|k| k.status & FREE == 0)
    }

    /// The kernel's `knote_activate`: mark active and queue at the tail unless disabled or
    /// already queued. Returns whether it was queued now (the caller then wakes sleepers).
    pub(crate) fn activate(&mut self, id: u32) -> bool {
        let k = &mut self.slab[id as usize];
        k.status |= ACTIVE;
        if k.status & (DISABLED | QUEUED) == 0 {
            self.enqueue(id);
            true
        } else {
            false
        }
    }

    /// Queues an active, enabled, unqueued knote (EV_ENABLE). Returns whether it did.
    pub(crate) fn requeue_if_active(&mut self, id: u32) -> bool {
        let k = &self.slab[id as usize];
        if k.status & (ACTIVE | QUEUED | DISABLED) == ACTIVE {
            self.enqueue(id);
            true
        } else {
            false
        }
    }

    pub(crate) fn enqueue(&mut self, id: u32) {
        let tail = self.tail;
        {
            let k = &mut self.slab[id as usize];
            debug_assert!(k.status & QUEUED == 0);
            k.status |= QUEUED;
            k.prev = tail;
            k.next = NIL;
        }
        if tail == NIL {
            self.head = id;
        } else {
            self.slab[tail as usize].next = id;
        }
        self.tail = id;
        self.queued += 1;
    }

    /// Takes knote `id` off the queue if it is on it.
    pub(crate) fn dequeue(&mut self, id: u32) {
        let (prev, next) = {
            let k = &mut self.slab[id as usize];
            if k.status & QUEUED == 0 {
                return;
            }
            k.status &= !QUEUED;
            (k.prev, k.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.slab[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slab[next as usize].prev = prev;
        }
        self.queued -= 1;
    }

    /// Takes the head of the queue.
    pub(crate) fn pop(&mut self) -> Option<u32> {
        let id = self.head;
        if id == NIL {
            None
        } else {
            self.dequeue(id);
            Some(id)
        }
    }

    /// Every knote in use (for teardown).
    pub(crate) fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.slab
            .iter()
            .enumerate()
            .filter(|(_, k)| k.status & FREE == 0)
            .map(|(i, _)| i as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::EVFILT_USER;

    fn kev(ident: usize) -> Kevent {
        Kevent::new(ident, EVFILT_USER, 0, 0, 0, std::ptr::null_mut())
    }

    fn drain(k: &mut Knotes) -> Vec<usize> {
        let mut out = Vec::new();
        while let Some(id) = k.pop() {
            out.push(k.get_ref(id).kev.ident);
        }
        out
    }

    #[test]
    fn queue_is_fifo_and_dequeue_unlinks_anywhere() {
        let mut k = Knotes::new();
        let ids: Vec<u32> = (0..5).map(|i| k.insert(kev(i)).unwrap()).collect();
        for &id in &ids {
            assert!(k.activate(id));
        }
        assert!(!k.activate(ids[0]), "already queued");
        k.dequeue(ids[2]); // middle
        k.dequeue(ids[0]); // head
        k.dequeue(ids[4]); // tail
        assert_eq!(k.queued, 2);
        assert_eq!(drain(&mut k), vec![1, 3]);
        assert_eq!(k.queued, 0);
    }

    #[test]
    fn disabled_knote_activates_without_queueing() {
        let mut k = Knotes::new();
        let id = k.insert(kev(9)).unwrap();
        k.get(id).status |= DISABLED;
        assert!(!k.activate(id));
        assert!(k.get_ref(id).is_active());
        k.get(id).status &= !DISABLED;
        assert!(k.requeue_if_active(id));
        assert_eq!(drain(&mut k), vec![9]);
    }

    #[test]
    fn removed_slots_are_reused_and_index_follows() {
        let mut k = Knotes::new();
        let a = k.insert(kev(1)).unwrap();
        let b = k.insert(kev(2)).unwrap();
        k.activate(a);
        k.remove(a);
        assert_eq!(k.queued, 0, "remove takes the knote off the queue");
        assert_eq!(k.find(1, EVFILT_USER), None);
        assert!(!k.is_live(a));
        let c = k.insert(kev(3)).unwrap();
        assert_eq!(c, a, "freed slot reused");
        assert_eq!(k.find(3, EVFILT_USER), Some(c));
        assert_eq!(k.find(2, EVFILT_USER), Some(b));
        assert_eq!(k.ids().count(), 2);
    }
}
