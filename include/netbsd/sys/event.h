/*
 * <sys/event.h>, NetBSD flavour, for the kq library: BSD kqueue(2)/kevent(2)
 * on Linux.
 *
 * A program written for NetBSD 10 compiles unchanged against this header and
 * runs with libkqueue.so.0 (or libkqueue.a) from this project: the same
 * 40-byte struct kevent (on LP64) with 32-bit filter, flags and fflags and a
 * 64-bit data field, NetBSD's filter numbers (EVFILT_READ == 0,
 * EVFILT_USER == 8), its EV_* and NOTE_* values, its timer units (an
 * enumerated field: NOTE_NSECONDS == 3) and size_t counts in kevent().
 *
 * Put the directory that holds this sys/ first on the include path
 * (cc -I<prefix>/include/kqueue/netbsd ...).  The functions below are the
 * library's NetBSD entry points (__kqueue_netbsd_*), bound by assembler
 * labels: kqueue(), kqueue1() and kevent() in the program's source name them,
 * and every kqueue they make behaves as NetBSD's does (see kqueue_netbsd(3)).
 * The libkqueue-compatible <sys/event.h> of this project declares the other
 * ABI; a translation unit uses one of the two.
 *
 * Not provided: the KFILTER_BYFILTER/KFILTER_BYNAME ioctls, struct
 * kfilter_mapping, struct klist and the kernel part of NetBSD's header.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef KQ_NETBSD_SYS_EVENT_H
#define KQ_NETBSD_SYS_EVENT_H

#ifdef KQ_SYS_EVENT_H
#error "the NetBSD-flavour <sys/event.h> cannot be mixed with the libkqueue-compatible one"
#endif

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Declared at file scope even where <time.h> does not define it (strict ISO C modes). */
struct timespec;

/* Filters. */
#define EVFILT_READ		0U	/* descriptor readable */
#define EVFILT_WRITE		1U	/* descriptor writable */
#define EVFILT_AIO		2U	/* asynchronous I/O (not implemented) */
#define EVFILT_VNODE		3U	/* file or directory changed */
#define EVFILT_PROC		4U	/* process events */
#define EVFILT_SIGNAL		5U	/* signal deliveries */
#define EVFILT_TIMER		6U	/* timers */
#define EVFILT_FS		7U	/* file system events */
#define EVFILT_USER		8U	/* user-triggered events */
#define EVFILT_EMPTY		9U	/* send buffer empty */
#define EVFILT_SYSCOUNT		10U	/* number of filters */

/*
 * One change (input) or one event (output).
 *
 *   ident   what the event is about: a descriptor, a timer id, a user event id
 *   filter  EVFILT_*
 *   flags   EV_* actions on input, EV_* status on output
 *   fflags  filter-specific NOTE_* flags
 *   data    filter-specific value (an errno when flags has EV_ERROR)
 *   udata   opaque user pointer, handed back unchanged
 */
struct kevent {
	uintptr_t	ident;
	uint32_t	filter;
	uint32_t	flags;
	uint32_t	fflags;
	int64_t		data;
	void		*udata;
};

/* Fill in *kevp.  A function, so each argument is evaluated exactly once. */
static __inline void
_EV_SET(struct kevent *_kevp, uintptr_t _ident, uint32_t _filter,
    uint32_t _flags, uint32_t _fflags, int64_t _data, void *_udata)
{
	_kevp->ident = _ident;
	_kevp->filter = _filter;
	_kevp->flags = _flags;
	_kevp->fflags = _fflags;
	_kevp->data = _data;
	_kevp->udata = _udata;
}

#define EV_SET(kevp, ident, filter, flags, fflags, data, udata)	\
	_EV_SET((kevp), (uintptr_t)(ident), (filter), (flags),	\
	    (fflags), (data), (void *)(udata))

/* Actions (input flags). */
#define EV_ADD			0x0001U	/* create, or modify if present */
#define EV_DELETE		0x0002U	/* remove */
#define EV_ENABLE		0x0004U	/* allow delivery */
#define EV_DISABLE		0x0008U	/* suppress delivery */

/* Behaviour (input flags, kept by the knote). */
#define EV_ONESHOT		0x0010U	/* deliver once, then delete */
#define EV_CLEAR		0x0020U	/* reset state after delivery */
#define EV_RECEIPT		0x0040U	/* always report the change */
#define EV_DISPATCH		0x0080U	/* disable after delivery */

/* Reserved for the system: stripped from every change. */
#define EV_SYSFLAGS		0xF000U
#define EV_FLAG1		0x2000U	/* filter-private */

/* Status (output flags). */
#define EV_EOF			0x8000U	/* the filter saw end of file */
#define EV_ERROR		0x4000U	/* data holds an errno (0 for a receipt) */

/*
 * EVFILT_USER fflags.  The top two bits select how the low 24 bits of a
 * change combine with the stored user flags; NOTE_TRIGGER fires the event.
 */
#define NOTE_FFNOP		0x00000000U	/* leave the stored flags alone */
#define NOTE_FFAND		0x40000000U	/* stored &= low 24 bits */
#define NOTE_FFOR		0x80000000U	/* stored |= low 24 bits */
#define NOTE_FFCOPY		0xc0000000U	/* stored = low 24 bits */
#define NOTE_FFCTRLMASK		0xc0000000U	/* the operation bits */
#define NOTE_FFLAGSMASK		0x00ffffffU	/* the user bits */
#define NOTE_TRIGGER		0x01000000U	/* fire the event */

/* EVFILT_READ and EVFILT_WRITE fflags. */
#define NOTE_LOWAT		0x0001U	/* data is a low-water mark */

/* EVFILT_VNODE fflags. */
#define NOTE_DELETE		0x0001U	/* unlinked */
#define NOTE_WRITE		0x0002U	/* contents changed */
#define NOTE_EXTEND		0x0004U	/* size grew */
#define NOTE_ATTRIB		0x0008U	/* metadata changed */
#define NOTE_LINK		0x0010U	/* link count changed */
#define NOTE_RENAME		0x0020U	/* renamed */
#define NOTE_REVOKE		0x0040U	/* access revoked */
#define NOTE_OPEN		0x0080U	/* opened */
#define NOTE_CLOSE		0x0100U	/* closed, had not been open for writing */
#define NOTE_CLOSE_WRITE	0x0200U	/* closed, had been open for writing */
#define NOTE_READ		0x0400U	/* read */

/* EVFILT_PROC fflags. */
#define NOTE_EXIT		0x80000000U	/* exited */
#define NOTE_FORK		0x40000000U	/* forked */
#define NOTE_EXEC		0x20000000U	/* called exec */
#define NOTE_PCTRLMASK		0xf0000000U	/* control bits */
#define NOTE_PDATAMASK		0x000fffffU	/* pid bits */
#define NOTE_TRACK		0x00000001U	/* follow forks */
#define NOTE_TRACKERR		0x00000002U	/* could not follow */
#define NOTE_CHILD		0x00000004U	/* a followed child */

/* EVFILT_FS fflags. */
#define VQ_NOTRESP		0x0001U	/* server not responding */
#define VQ_NEEDAUTH		0x0002U	/* server needs authentication */
#define VQ_LOWDISK		0x0004U	/* disk space low */
#define VQ_MOUNT		0x0008U	/* file system mounted */
#define VQ_UNMOUNT		0x0010U	/* file system unmounted */
#define VQ_DEAD			0x0020U	/* file system dead */
#define VQ_ASSIST		0x0040U	/* needs a user-space helper */
#define VQ_NOTRESPLOCK		0x0080U	/* lock manager not responding */

/*
 * EVFILT_TIMER fflags: the unit of data is a value in the two low bits (not a
 * bit each), NOTE_ABSTIME makes data a CLOCK_REALTIME time since the epoch.
 * Any other bit gives EINVAL.
 */
#define NOTE_MSECONDS		0x00000000U	/* milliseconds (the default) */
#define NOTE_SECONDS		0x00000001U	/* seconds */
#define NOTE_USECONDS		0x00000002U	/* microseconds */
#define NOTE_NSECONDS		0x00000003U	/* nanoseconds */
#define NOTE_ABSTIME		0x00000010U	/* data is an absolute time */

/*
 * Create a kqueue: a descriptor that poll(2), select(2) and epoll(7) report
 * readable while an event is pending.  Returns the descriptor, or -1 with
 * errno set.  As on NetBSD, kqueue() is kqueue1(0): the descriptor is not
 * close-on-exec.  The kqueue is not inherited by a child after fork(2).
 */
int kqueue(void) __asm__("__kqueue_netbsd_kqueue");

/*
 * kqueue() with flags: O_CLOEXEC makes the descriptor close-on-exec,
 * O_NONBLOCK sets its file status flag; any other flag gives EINVAL.
 */
int kqueue1(int flags) __asm__("__kqueue_netbsd_kqueue1");

/*
 * Apply nchanges changes in order, then (unless a change produced an EV_ERROR
 * or EV_RECEIPT report) wait for up to nevents events.  timeout NULL waits
 * forever, {0, 0} polls.  Returns the number of entries written to eventlist,
 * or -1 with errno set.  changelist and eventlist may be the same array.
 * Counts above INT_MAX give EINVAL.
 */
int kevent(int kq, const struct kevent *changelist, size_t nchanges,
	   struct kevent *eventlist, size_t nevents,
	   const struct timespec *timeout) __asm__("__kqueue_netbsd_kevent");

#ifdef __cplusplus
}
#endif

#endif /* KQ_NETBSD_SYS_EVENT_H */
