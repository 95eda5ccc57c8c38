/*
 * <sys/event.h> for the kq library: BSD kqueue(2)/kevent(2) on Linux.
 *
 * Source- and binary-compatible with libkqueue 2.x on x86_64 Linux: the same
 * struct kevent layout (32 bytes on LP64), the same FreeBSD-style filter
 * numbering (EVFILT_USER == -11) and the same constant values, so programs
 * built for libkqueue build and run unchanged against libkqueue.so.0 from
 * this project.
 *
 * Behaviour follows the BSD kernels.  kqueue() gives a kqueue with the FreeBSD
 * personality; set KQUEUE_PERSONALITY=netbsd in the environment before calling
 * it to get NetBSD's (see the project's README for the differences).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef KQ_SYS_EVENT_H
#define KQ_SYS_EVENT_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Declared at file scope even where <time.h> does not define it (strict ISO C modes). */
struct timespec;

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
	short		filter;
	unsigned short	flags;
	unsigned int	fflags;
	intptr_t	data;
	void		*udata;
};

/*
 * Fill in *kevp.  Each argument is evaluated exactly once, so expressions such
 * as EV_SET(&changes[n++], ...) are safe.
 */
#define EV_SET(kevp, a, b, c, d, e, f) do {			\
	struct kevent *kq_ev_set_p_ = (kevp);			\
	kq_ev_set_p_->ident = (uintptr_t)(a);			\
	kq_ev_set_p_->filter = (short)(b);			\
	kq_ev_set_p_->flags = (unsigned short)(c);		\
	kq_ev_set_p_->fflags = (unsigned int)(d);		\
	kq_ev_set_p_->data = (intptr_t)(e);			\
	kq_ev_set_p_->udata = (void *)(f);			\
} while (0)

/* Filters. */
#define EVFILT_READ		(-1)	/* descriptor readable */
#define EVFILT_WRITE		(-2)	/* descriptor writable */
#define EVFILT_AIO		(-3)	/* asynchronous I/O (not implemented) */
#define EVFILT_VNODE		(-4)	/* file or directory changed */
#define EVFILT_PROC		(-5)	/* process events */
#define EVFILT_SIGNAL		(-6)	/* signal deliveries */
#define EVFILT_TIMER		(-7)	/* timers */
#define EVFILT_NETDEV		(-8)	/* network devices (not implemented) */
#define EVFILT_FS		(-9)	/* file system events */
#define EVFILT_LIO		(-10)	/* lio_listio (not implemented) */
#define EVFILT_USER		(-11)	/* user-triggered events */
#define EVFILT_EMPTY		(-13)	/* send buffer empty */
#define EVFILT_SYSCOUNT		13

/* Actions (input flags). */
#define EV_ADD			0x0001	/* create, or modify if present */
#define EV_DELETE		0x0002	/* remove */
#define EV_ENABLE		0x0004	/* allow delivery */
#define EV_DISABLE		0x0008	/* suppress delivery */

/* Behaviour (input flags, kept by the knote). */
#define EV_ONESHOT		0x0010	/* deliver once, then delete */
#define EV_CLEAR		0x0020	/* reset state after delivery */
#define EV_RECEIPT		0x0040	/* always report the change */
#define EV_DISPATCH		0x0080	/* disable after delivery */
#define EV_FORCEONESHOT		0x0100	/* FreeBSD: fire once now, then delete */
#define EV_KEEPUDATA		0x0200	/* FreeBSD: a modification keeps udata */

/* Reserved for the system: stripped from every change. */
#define EV_SYSFLAGS		0xF000
#define EV_FLAG1		0x2000	/* filter-private */

/* Status (output flags). */
#define EV_EOF			0x8000	/* the filter saw end of file */
#define EV_ERROR		0x4000	/* data holds an errno (0 for a receipt) */

/*
 * EVFILT_USER fflags.  The top two bits select how the low 24 bits of a
 * change combine with the stored user flags; NOTE_TRIGGER fires the event.
 */
#define NOTE_FFNOP		0x00000000U	/* leave the stored flags alone */
#define NOTE_FFAND		0x40000000U	/* stored &= low 24 bits */
#define NOTE_FFOR		0x80000000U	/* stored |= low 24 bits */
#define NOTE_FFCOPY		0xC0000000U	/* stored = low 24 bits */
#define NOTE_FFCTRLMASK		0xC0000000U	/* the operation bits */
#define NOTE_FFLAGSMASK		0x00FFFFFFU	/* the user bits */
#define NOTE_TRIGGER		0x01000000U	/* fire the event */

/* EVFILT_TIMER fflags: the unit of data (none: milliseconds), absolute time. */
#define NOTE_MSECONDS		0x0000	/* milliseconds (the default) */
#define NOTE_SECONDS		0x0001	/* seconds */
#define NOTE_USECONDS		0x0002	/* microseconds */
#define NOTE_NSECONDS		0x0004	/* nanoseconds */
#define NOTE_ABSOLUTE		0x0008	/* data is a CLOCK_REALTIME time */
#define NOTE_ABSTIME		NOTE_ABSOLUTE	/* FreeBSD and NetBSD name */

/* EVFILT_READ and EVFILT_WRITE fflags. */
#define NOTE_LOWAT		0x0001	/* data is a low-water mark */

/* EVFILT_VNODE fflags. */
#define NOTE_DELETE		0x0001	/* unlinked */
#define NOTE_WRITE		0x0002	/* contents changed */
#define NOTE_EXTEND		0x0004	/* size grew */
#define NOTE_ATTRIB		0x0008	/* metadata changed */
#define NOTE_LINK		0x0010	/* link count changed */
#define NOTE_RENAME		0x0020	/* renamed */
#define NOTE_REVOKE		0x0040	/* access revoked */
#define NOTE_OPEN		0x0080	/* opened */
#define NOTE_CLOSE		0x0100	/* closed, had not been open for writing */
#define NOTE_CLOSE_WRITE	0x0200	/* closed, had been open for writing */
#define NOTE_READ		0x0400	/* read */

/* EVFILT_PROC fflags. */
#define NOTE_EXIT		0x80000000U	/* exited */
#define NOTE_FORK		0x40000000U	/* forked */
#define NOTE_EXEC		0x20000000U	/* called exec */
#define NOTE_PCTRLMASK		0xF0000000U	/* control bits */
#define NOTE_PDATAMASK		0x000FFFFFU	/* pid bits */
#define NOTE_TRACK		0x00000001U	/* follow forks */
#define NOTE_TRACKERR		0x00000002U	/* could not follow */
#define NOTE_CHILD		0x00000004U	/* a followed child */

/* EVFILT_FS fflags. */
#define VQ_NOTRESP		0x0001	/* server not responding */
#define VQ_NEEDAUTH		0x0002	/* server needs authentication */
#define VQ_LOWDISK		0x0004	/* disk space low */
#define VQ_MOUNT		0x0008	/* file system mounted */
#define VQ_UNMOUNT		0x0010	/* file system unmounted */
#define VQ_DEAD			0x0020	/* file system dead */
#define VQ_ASSIST		0x0040	/* needs a user-space helper */
#define VQ_NOTRESPLOCK		0x0080	/* lock manager not responding */

/*
 * Create a kqueue: a descriptor that poll(2), select(2) and epoll(7) report
 * readable while an event is pending.  Returns the descriptor, or -1 with
 * errno set.  The kqueue is not inherited by a child after fork(2).
 */
int kqueue(void);

/* NetBSD's kqueue1(): flags are accepted and ignored. */
int kqueue1(int flags);

/*
 * Apply nchanges changes in order, then (unless a change produced an EV_ERROR
 * or EV_RECEIPT report) wait for up to nevents events.  timeout NULL waits
 * forever, {0, 0} polls.  Returns the number of entries written to eventlist,
 * or -1 with errno set.  changelist and eventlist may be the same array.
 */
int kevent(int kq, const struct kevent *changelist, int nchanges,
	   struct kevent *eventlist, int nevents,
	   const struct timespec *timeout);

#ifdef __cplusplus
}
#endif

#endif /* KQ_SYS_EVENT_H */
