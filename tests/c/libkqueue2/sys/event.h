/*
 * A <sys/event.h> shaped like the one libkqueue 2.x installs (in <prefix>/include/kqueue),
 * written for this test: the declarations and values a program built against libkqueue
 * 2.x compiled in, and nothing of this project's own header.  libkqueue 2.x exports two
 * functions, kqueue() and kevent(); its version queries go through kevent() (a filter of
 * its own), not through exported functions.
 *
 * tests/c/libkqueue2/compat.c is compiled against this header alone and run against this
 * project's libkqueue.so.0: a program built for libkqueue 2.x must run unchanged.
 */
#ifndef LIBKQUEUE2_SYS_EVENT_H
#define LIBKQUEUE2_SYS_EVENT_H

#include <stdint.h>
#include <sys/types.h>

struct timespec;

#define EVFILT_READ	(-1)
#define EVFILT_WRITE	(-2)
#define EVFILT_VNODE	(-4)
#define EVFILT_PROC	(-5)
#define EVFILT_SIGNAL	(-6)
#define EVFILT_TIMER	(-7)
#define EVFILT_USER	(-11)
#define EVFILT_SYSCOUNT	11

/* libkqueue's form: the argument is evaluated once, the others are assigned as given. */
#define EV_SET(kevp_, a, b, c, d, e, f) do {	\
	struct kevent *kevp = (kevp_);		\
	(kevp)->ident = (a);			\
	(kevp)->filter = (b);			\
	(kevp)->flags = (c);			\
	(kevp)->fflags = (d);			\
	(kevp)->data = (e);			\
	(kevp)->udata = (f);			\
} while (0)

struct kevent {
	uintptr_t	ident;
	short		filter;
	u_short		flags;
	u_int		fflags;
	intptr_t	data;
	void		*udata;
};

#define EV_ADD		0x0001
#define EV_DELETE	0x0002
#define EV_ENABLE	0x0004
#define EV_DISABLE	0x0008
#define EV_ONESHOT	0x0010
#define EV_CLEAR	0x0020
#define EV_RECEIPT	0x0040
#define EV_DISPATCH	0x0080
#define EV_SYSFLAGS	0xF000
#define EV_FLAG1	0x2000
#define EV_EOF		0x8000
#define EV_ERROR	0x4000

#define NOTE_FFNOP	0x00000000
#define NOTE_FFAND	0x40000000
#define NOTE_FFOR	0x80000000
#define NOTE_FFCOPY	0xc0000000
#define NOTE_FFCTRLMASK	0xc0000000
#define NOTE_FFLAGSMASK	0x00ffffff
#define NOTE_TRIGGER	0x01000000

#define NOTE_LOWAT	0x0001

#define NOTE_DELETE	0x0001
#define NOTE_WRITE	0x0002
#define NOTE_EXTEND	0x0004
#define NOTE_ATTRIB	0x0008
#define NOTE_LINK	0x0010
#define NOTE_RENAME	0x0020
#define NOTE_REVOKE	0x0040

#define NOTE_EXIT	0x80000000

#ifdef __cplusplus
extern "C" {
#endif

int kqueue(void);
int kevent(int kq, const struct kevent *changelist, int nchanges,
	   struct kevent *eventlist, int nevents,
	   const struct timespec *timeout);

#ifdef __cplusplus
}
#endif

#endif /* LIBKQUEUE2_SYS_EVENT_H */
