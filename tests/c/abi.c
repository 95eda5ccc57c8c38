/*
 * ABI of include/sys/event.h: the layout of struct kevent, EV_SET and every constant,
 * with libkqueue 2.x's values (docs/semantics.md §1.7).  Most checks are compile-time
 * asserts; the program also compiles as C++ (the test harness builds it both ways).
 */
#include "kqtest.h"

#include <stddef.h>
#include <limits.h>

#ifdef __cplusplus
#define STATIC_ASSERT(cond) static_assert(cond, #cond)
#else
#define STATIC_ASSERT(cond) _Static_assert(cond, #cond)
#endif

/* Layout: 32 bytes on LP64, field for field libkqueue's. */
STATIC_ASSERT(sizeof(struct kevent) == 32);
STATIC_ASSERT(__alignof__(struct kevent) == 8);
STATIC_ASSERT(offsetof(struct kevent, ident) == 0);
STATIC_ASSERT(offsetof(struct kevent, filter) == 8);
STATIC_ASSERT(offsetof(struct kevent, flags) == 10);
STATIC_ASSERT(offsetof(struct kevent, fflags) == 12);
STATIC_ASSERT(offsetof(struct kevent, data) == 16);
STATIC_ASSERT(offsetof(struct kevent, udata) == 24);
STATIC_ASSERT(sizeof(((struct kevent *)0)->ident) == sizeof(uintptr_t));
STATIC_ASSERT(sizeof(((struct kevent *)0)->filter) == 2);
STATIC_ASSERT(sizeof(((struct kevent *)0)->flags) == 2);
STATIC_ASSERT(sizeof(((struct kevent *)0)->fflags) == 4);
STATIC_ASSERT(sizeof(((struct kevent *)0)->data) == sizeof(intptr_t));
STATIC_ASSERT(sizeof(((struct kevent *)0)->udata) == sizeof(void *));
/* Signedness: filter and data are signed, the rest unsigned. */
STATIC_ASSERT((__typeof__(((struct kevent *)0)->filter))-1 < 0);
STATIC_ASSERT((__typeof__(((struct kevent *)0)->flags))-1 > 0);
STATIC_ASSERT((__typeof__(((struct kevent *)0)->fflags))-1 > 0);
STATIC_ASSERT((__typeof__(((struct kevent *)0)->ident))-1 > 0);
STATIC_ASSERT((__typeof__(((struct kevent *)0)->data))-1 < 0);

/* Filters: FreeBSD numbering as libkqueue. */
STATIC_ASSERT(EVFILT_READ == -1);
STATIC_ASSERT(EVFILT_WRITE == -2);
STATIC_ASSERT(EVFILT_AIO == -3);
STATIC_ASSERT(EVFILT_VNODE == -4);
STATIC_ASSERT(EVFILT_PROC == -5);
STATIC_ASSERT(EVFILT_SIGNAL == -6);
STATIC_ASSERT(EVFILT_TIMER == -7);
STATIC_ASSERT(EVFILT_NETDEV == -8);
STATIC_ASSERT(EVFILT_FS == -9);
STATIC_ASSERT(EVFILT_LIO == -10);
STATIC_ASSERT(EVFILT_USER == -11);
STATIC_ASSERT(EVFILT_EMPTY == -13);
STATIC_ASSERT(EVFILT_SYSCOUNT == 13);

/* Flags. */
STATIC_ASSERT(EV_ADD == 0x0001);
STATIC_ASSERT(EV_DELETE == 0x0002);
STATIC_ASSERT(EV_ENABLE == 0x0004);
STATIC_ASSERT(EV_DISABLE == 0x0008);
STATIC_ASSERT(EV_ONESHOT == 0x0010);
STATIC_ASSERT(EV_CLEAR == 0x0020);
STATIC_ASSERT(EV_RECEIPT == 0x0040);
STATIC_ASSERT(EV_DISPATCH == 0x0080);
STATIC_ASSERT(EV_FORCEONESHOT == 0x0100);
STATIC_ASSERT(EV_KEEPUDATA == 0x0200);
STATIC_ASSERT(EV_SYSFLAGS == 0xF000);
STATIC_ASSERT(EV_FLAG1 == 0x2000);
STATIC_ASSERT(EV_ERROR == 0x4000);
STATIC_ASSERT(EV_EOF == 0x8000);

/* EVFILT_USER. */
STATIC_ASSERT(NOTE_FFNOP == 0x00000000);
STATIC_ASSERT(NOTE_FFAND == 0x40000000);
STATIC_ASSERT(NOTE_FFOR == 0x80000000);
STATIC_ASSERT(NOTE_FFCOPY == 0xC0000000);
STATIC_ASSERT(NOTE_FFCTRLMASK == 0xC0000000);
STATIC_ASSERT(NOTE_FFLAGSMASK == 0x00FFFFFF);
STATIC_ASSERT(NOTE_TRIGGER == 0x01000000);

/* EVFILT_TIMER units: libkqueue's bits, none = milliseconds. */
STATIC_ASSERT(NOTE_MSECONDS == 0);
STATIC_ASSERT(NOTE_SECONDS == 0x1);
STATIC_ASSERT(NOTE_USECONDS == 0x2);
STATIC_ASSERT(NOTE_NSECONDS == 0x4);
STATIC_ASSERT(NOTE_ABSOLUTE == 0x8);
STATIC_ASSERT(NOTE_ABSTIME == NOTE_ABSOLUTE);

/* EVFILT_READ / EVFILT_WRITE. */
STATIC_ASSERT(NOTE_LOWAT == 0x0001);

/* EVFILT_VNODE. */
STATIC_ASSERT(NOTE_DELETE == 0x0001);
STATIC_ASSERT(NOTE_WRITE == 0x0002);
STATIC_ASSERT(NOTE_EXTEND == 0x0004);
STATIC_ASSERT(NOTE_ATTRIB == 0x0008);
STATIC_ASSERT(NOTE_LINK == 0x0010);
STATIC_ASSERT(NOTE_RENAME == 0x0020);
STATIC_ASSERT(NOTE_REVOKE == 0x0040);

/* EVFILT_PROC. */
STATIC_ASSERT(NOTE_EXIT == 0x80000000);
STATIC_ASSERT(NOTE_FORK == 0x40000000);
STATIC_ASSERT(NOTE_EXEC == 0x20000000);
STATIC_ASSERT(NOTE_PCTRLMASK == 0xF0000000);
STATIC_ASSERT(NOTE_PDATAMASK == 0x000FFFFF);
STATIC_ASSERT(NOTE_TRACK == 0x00000001);
STATIC_ASSERT(NOTE_TRACKERR == 0x00000002);
STATIC_ASSERT(NOTE_CHILD == 0x00000004);

/* The prototypes are exactly libkqueue's. */
static int (*const kqt_kqueue_fn)(void) = kqueue;
static int (*const kqt_kqueue1_fn)(int) = kqueue1;
static int (*const kqt_kevent_fn)(int, const struct kevent *, int, struct kevent *, int,
				  const struct timespec *) = kevent;

static int kqt_dummy;

/* ABI ev_set: EV_SET fills every field and evaluates each argument once. */
static void case_ev_set(void)
{
	struct kevent a[3];
	int i = 0, n = 0;
	memset(a, 0xAB, sizeof a);
	EV_SET(&a[i++], 5 + n++, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_TRIGGER | NOTE_FFOR | 3,
	       -7, &kqt_dummy);
	CHECK_EQ(i, 1);
	CHECK_EQ(n, 1);
	CHECK_EQ(a[0].ident, 5);
	CHECK_EQ(a[0].filter, EVFILT_USER);
	CHECK_EQ(a[0].flags, EV_ADD | EV_CLEAR);
	CHECK_EQ(a[0].fflags, 0x81000003u);
	CHECK_EQ(a[0].data, -7);
	CHECK(a[0].udata == &kqt_dummy);
	/* The neighbour is untouched. */
	CHECK_EQ(a[1].filter, (short)0xABAB);

	/* Pointer idents, full-width data, NULL udata. */
	EV_SET(&a[1], &kqt_dummy, EVFILT_TIMER, EV_DELETE, 0, INTPTR_MAX, NULL);
	CHECK(a[1].ident == (uintptr_t)&kqt_dummy);
	CHECK_EQ(a[1].data, INTPTR_MAX);
	CHECK(a[1].udata == NULL);

	/* A statement: usable as the body of an if without braces. */
	if (i == 1)
		EV_SET(&a[2], 1, EVFILT_USER, 0, 0, 0, 0);
	else
		CHECK(0);
	CHECK_EQ(a[2].ident, 1);
}

/* ABI entry_points: the library exports kqueue, kqueue1 and kevent. */
static void case_entry_points(void)
{
	CHECK(kqt_kqueue_fn != NULL);
	CHECK(kqt_kqueue1_fn != NULL);
	CHECK(kqt_kevent_fn != NULL);
	int kq = kqt_kqueue_fn();
	CHECK(kq >= 0);
	int kq1 = kqt_kqueue1_fn(0);
	CHECK(kq1 >= 0);
	CHECK(kq1 != kq);
	struct timespec zero = { 0, 0 };
	struct kevent ev;
	CHECK_EQ(kqt_kevent_fn(kq, NULL, 0, &ev, 1, &zero), 0);
	CHECK_EQ(kqt_kevent_fn(kq1, NULL, 0, &ev, 1, &zero), 0);
	CHECK_EQ(close(kq1), 0);
	CHECK_EQ(close(kq), 0);
}

/* ABI struct_roundtrip: every field crosses the library unchanged (U36 big data). */
static void case_roundtrip(void)
{
	int kq = kqueue();
	CHECK(kq >= 0);
	struct kevent c[2], ev[2];
	EV_SET(&c[0], UINTPTR_MAX, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
	EV_SET(&c[1], UINTPTR_MAX, EVFILT_USER, 0, NOTE_TRIGGER | NOTE_FFCOPY | 0xABCDEF,
	       INTPTR_MIN, (void *)(uintptr_t)0xFEEDFACECAFEBEEFULL);
	CHECK_EQ(kevent(kq, c, 2, NULL, 0, NULL), 0);
	memset(ev, 0, sizeof ev);
	CHECK_EQ(kqt_poll(kq, ev, 2), 1);
	CHECK(ev[0].ident == UINTPTR_MAX);
	CHECK_EQ(ev[0].filter, EVFILT_USER);
	CHECK_EQ(ev[0].flags & EV_CLEAR, EV_CLEAR);
	CHECK_EQ(ev[0].fflags, 0xABCDEF);
	CHECK(ev[0].data == INTPTR_MIN);
	CHECK(ev[0].udata == (void *)(uintptr_t)0xFEEDFACECAFEBEEFULL);
	CHECK_EQ(close(kq), 0);
}

int main(void)
{
	kqt_watchdog(20);
	kqt_run("ABI", "ev_set", case_ev_set);
	kqt_run("ABI", "entry_points", case_entry_points);
	kqt_run("U36", "struct_roundtrip", case_roundtrip);
	return kqt_done();
}
