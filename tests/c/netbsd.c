/*
 * The NetBSD-flavour ABI, include/netbsd/sys/event.h, seen from C: built with
 * -Iinclude/netbsd first, so <sys/event.h> below (and in kqtest.h) is NetBSD 10's layout
 * and numbering, and kqueue(), kqueue1() and kevent() are the library's
 * __kqueue_netbsd_* entry points.  Every case expects what NetBSD does: stored flags
 * echo EV_ADD, EV_ENABLE|EV_DISABLE nets to enabled, a relative timer of 0 is EINVAL,
 * timer units are NetBSD's enumerated values.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <sys/socket.h>

/* The libkqueue-compatible kqueue() of the same library (FreeBSD personality). */
int fb_kqueue(void) __asm__("kqueue");

static const struct timespec zero = { 0, 0 };
static int marker_a, marker_b;

/* ---- Layout and constants: checked when the program is compiled. ---- */

#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(struct kevent) == 40, "NetBSD struct kevent is 40 bytes on LP64");
_Static_assert(offsetof(struct kevent, ident) == 0, "ident");
_Static_assert(offsetof(struct kevent, filter) == 8, "filter");
_Static_assert(offsetof(struct kevent, flags) == 12, "flags");
_Static_assert(offsetof(struct kevent, fflags) == 16, "fflags");
_Static_assert(offsetof(struct kevent, data) == 24, "data");
_Static_assert(offsetof(struct kevent, udata) == 32, "udata");
#endif
_Static_assert(sizeof(((struct kevent *)0)->filter) == 4, "32-bit filter");
_Static_assert(sizeof(((struct kevent *)0)->flags) == 4, "32-bit flags");
_Static_assert(sizeof(((struct kevent *)0)->data) == 8, "64-bit data");

_Static_assert(EVFILT_READ == 0 && EVFILT_WRITE == 1 && EVFILT_AIO == 2 &&
	       EVFILT_VNODE == 3 && EVFILT_PROC == 4 && EVFILT_SIGNAL == 5 &&
	       EVFILT_TIMER == 6 && EVFILT_FS == 7 && EVFILT_USER == 8 &&
	       EVFILT_EMPTY == 9 && EVFILT_SYSCOUNT == 10, "NetBSD filter numbers");
_Static_assert(EV_ADD == 0x1 && EV_DELETE == 0x2 && EV_ENABLE == 0x4 && EV_DISABLE == 0x8 &&
	       EV_ONESHOT == 0x10 && EV_CLEAR == 0x20 && EV_RECEIPT == 0x40 &&
	       EV_DISPATCH == 0x80 && EV_SYSFLAGS == 0xF000 && EV_FLAG1 == 0x2000 &&
	       EV_EOF == 0x8000 && EV_ERROR == 0x4000, "NetBSD EV_* flags");
_Static_assert(NOTE_FFNOP == 0 && NOTE_FFAND == 0x40000000 && NOTE_FFOR == 0x80000000 &&
	       NOTE_FFCOPY == 0xc0000000 && NOTE_FFCTRLMASK == 0xc0000000 &&
	       NOTE_FFLAGSMASK == 0x00ffffff && NOTE_TRIGGER == 0x01000000,
	       "NetBSD EVFILT_USER notes");
_Static_assert(NOTE_MSECONDS == 0 && NOTE_SECONDS == 1 && NOTE_USECONDS == 2 &&
	       NOTE_NSECONDS == 3 && NOTE_ABSTIME == 0x10, "NetBSD timer units");
_Static_assert(NOTE_LOWAT == 1 && NOTE_DELETE == 1 && NOTE_WRITE == 2 && NOTE_EXTEND == 4 &&
	       NOTE_ATTRIB == 8 && NOTE_LINK == 0x10 && NOTE_RENAME == 0x20 &&
	       NOTE_REVOKE == 0x40 && NOTE_OPEN == 0x80 && NOTE_CLOSE == 0x100 &&
	       NOTE_CLOSE_WRITE == 0x200 && NOTE_READ == 0x400, "NetBSD vnode notes");
_Static_assert(NOTE_EXIT == 0x80000000 && NOTE_FORK == 0x40000000 &&
	       NOTE_EXEC == 0x20000000 && NOTE_PCTRLMASK == 0xf0000000 &&
	       NOTE_PDATAMASK == 0x000fffff && NOTE_TRACK == 1 && NOTE_TRACKERR == 2 &&
	       NOTE_CHILD == 4, "NetBSD proc notes");

/* ---- Helpers with NetBSD's types. ---- */

static int nb_change(int kq, uintptr_t ident, uint32_t filter, uint32_t flags, uint32_t fflags,
		     int64_t data, void *udata)
{
	struct kevent c;
	EV_SET(&c, ident, filter, flags, fflags, data, udata);
	return kevent(kq, &c, 1, NULL, 0, NULL);
}

static int nb_user(int kq, uintptr_t ident, uint32_t flags, uint32_t fflags, int64_t data,
		   void *udata)
{
	return nb_change(kq, ident, EVFILT_USER, flags, fflags, data, udata);
}

/* Applies one change with one slot for its report: returns what kevent() returns. */
static int nb_report(int kq, struct kevent *c, struct kevent *out)
{
	memset(out, 0xa5, sizeof *out);
	return kevent(kq, c, 1, out, 1, &zero);
}

static int nb_poll(int kq, struct kevent *ev, size_t n)
{
	return kevent(kq, NULL, 0, ev, n, &zero);
}

static int nb_wait(int kq, struct kevent *ev, size_t n, long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	return kevent(kq, NULL, 0, ev, n, &ts);
}

/* Whether user event ident exists (its EV_DELETE succeeds), deleting it. */
static int user_exists_delete(int kq, uintptr_t ident)
{
	return nb_user(kq, ident, EV_DELETE, 0, 0, NULL) == 0;
}

static double realtime_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- ABI ---- */

/* L1 ev_set_once: EV_SET evaluates each argument once and fills every field. */
static void case_ev_set(void)
{
	struct kevent k[3];
	int n = 0, i = 0;
	memset(k, 0, sizeof k);
	EV_SET(&k[n++], (uintptr_t)++i, EVFILT_TIMER, EV_ADD | EV_ONESHOT, NOTE_NSECONDS,
	       INT64_MIN, &marker_a);
	CHECK_EQ(n, 1);
	CHECK_EQ(i, 1);
	CHECK_EQ(k[0].ident, 1);
	CHECK_EQ(k[0].filter, 6);
	CHECK_EQ(k[0].flags, 0x11);
	CHECK_EQ(k[0].fflags, 3);
	CHECK(k[0].data == INT64_MIN);
	CHECK(k[0].udata == &marker_a);
	CHECK_EQ(k[1].ident, 0);
}

/* K1 kqueue_flags: kqueue() is kqueue1(0), not close-on-exec; O_CLOEXEC and O_NONBLOCK. */
static void case_kqueue1_flags(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(fcntl(kq, F_GETFD) & FD_CLOEXEC, 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	CHECK_EQ(close(kq), 0);

	kq = kqueue1(0);
	CHECK(kq >= 0);
	CHECK_EQ(fcntl(kq, F_GETFD) & FD_CLOEXEC, 0);
	CHECK_EQ(fcntl(kq, F_GETFL) & O_NONBLOCK, 0);
	CHECK_EQ(close(kq), 0);

	kq = kqueue1(O_CLOEXEC);
	CHECK(kq >= 0);
	CHECK_EQ(fcntl(kq, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	CHECK_EQ(fcntl(kq, F_GETFL) & O_NONBLOCK, 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(close(kq), 0);

	kq = kqueue1(O_NONBLOCK);
	CHECK(kq >= 0);
	CHECK_EQ(fcntl(kq, F_GETFD) & FD_CLOEXEC, 0);
	CHECK_EQ(fcntl(kq, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	CHECK_EQ(close(kq), 0);

	kq = kqueue1(O_CLOEXEC | O_NONBLOCK);
	CHECK(kq >= 0);
	CHECK_EQ(fcntl(kq, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	CHECK_EQ(fcntl(kq, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	/* A non-blocking kqueue still waits in kevent() for its timeout. */
	double t0 = kqt_now_ms();
	CHECK_EQ(nb_wait(kq, &ev, 1, 30), 0);
	CHECK(kqt_now_ms() - t0 >= 29.0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_wait(kq, &ev, 1, 1000), 1);
	CHECK_EQ(close(kq), 0);
}

/* K2 kqueue1_einval: any other flag is EINVAL, and no descriptor is left behind. */
static void case_kqueue1_einval(void)
{
	static const int bad[] = { O_RDWR, O_APPEND, O_CLOEXEC | O_APPEND, O_NONBLOCK | 0x4,
				   O_DIRECTORY, -1, INT_MIN };
	int before = kqt_count_fds();
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_ERR(kqueue1(bad[i]), EINVAL);
	CHECK_EQ(kqt_count_fds(), before);
}

/* K3 personality: a kqueue of this header is NetBSD's whatever KQUEUE_PERSONALITY says. */
static void case_personality_fixed(void)
{
	struct kevent ev;
	setenv("KQUEUE_PERSONALITY", "freebsd", 1);
	int kq = kqueue();
	unsetenv("KQUEUE_PERSONALITY");
	CHECK(kq >= 0);
	/* NetBSD: EV_ENABLE|EV_DISABLE together nets to enabled; FreeBSD would say EINVAL. */
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_ENABLE | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, EV_ENABLE | EV_DISABLE, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.flags, EV_ADD | EV_ENABLE | EV_CLEAR);
	CHECK_EQ(close(kq), 0);
}

/* K4 freebsd_kqueue: this kevent() on a kqueue of the libkqueue-compatible kqueue(): the
 * records are NetBSD's, the behaviour the kqueue's own (FreeBSD). */
static void case_freebsd_kqueue(void)
{
	struct kevent ev, c;
	int kq = fb_kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 3, EV_ADD | EV_ENABLE | EV_CLEAR, 0, 0, &marker_a), 0);
	CHECK_ERR(nb_user(kq, 3, EV_ENABLE | EV_DISABLE, NOTE_TRIGGER, 0, NULL), EINVAL);
	CHECK_EQ(nb_user(kq, 3, 0, NOTE_TRIGGER | NOTE_FFCOPY | 0x5, 11, &marker_b), 0);
	memset(&ev, 0, sizeof ev);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.ident, 3);
	CHECK_EQ(ev.filter, EVFILT_USER);
	CHECK_EQ(ev.flags, EV_CLEAR); /* FreeBSD strips the action flags */
	CHECK_EQ(ev.fflags, 0x5);
	CHECK_EQ(ev.data, 11);
	CHECK(ev.udata == &marker_b);
	/* NetBSD's EVFILT_READ (0) is a descriptor filter here too, not FreeBSD's "skip". */
	EV_SET(&c, 1000000, EVFILT_READ, EV_ADD, 0, 0, NULL);
	CHECK_EQ(nb_report(kq, &c, &ev), 1);
	CHECK_EQ(ev.filter, EVFILT_READ);
	CHECK_EQ(ev.flags, EV_ERROR);
	CHECK_EQ(ev.data, EBADF);
	CHECK_EQ(close(kq), 0);
}

/* ---- EVFILT_USER, NetBSD's expectations ---- */

/* U1 add_and_delete */
static void case_u1(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	CHECK_EQ(nb_user(kq, 1, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	CHECK_ERR(nb_user(kq, 1, EV_DELETE, 0, 0, NULL), ENOENT);
	close(kq);
}

/* U2 event_wait: the delivered record echoes the stored flags, EV_ADD included. */
static void case_u2(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, &marker_a), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER, 0, &marker_a), 0);
	memset(&ev, 0, sizeof ev);
	CHECK_EQ(kevent(kq, NULL, 0, &ev, 1, NULL), 1);
	CHECK_EQ(ev.ident, 1);
	CHECK_EQ(ev.filter, EVFILT_USER);
	CHECK_EQ(ev.flags, EV_ADD | EV_CLEAR);
	CHECK_EQ(ev.fflags, 0);
	CHECK_EQ(ev.data, 0);
	CHECK(ev.udata == &marker_a);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	close(kq);
}

/* U3 udata_replaced: every change replaces udata (NetBSD has no EV_KEEPUDATA). */
static void case_u3(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, &marker_a), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK(ev.udata == NULL);
	close(kq);
}

/* U6 oneshot: delivered once with the stored flags, then gone. */
static void case_u6(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 2, EV_ADD | EV_ONESHOT, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 2, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.ident, 2);
	CHECK_EQ(ev.flags, EV_ADD | EV_ONESHOT);
	CHECK_EQ(ev.fflags, 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	CHECK_ERR(nb_user(kq, 2, 0, NOTE_TRIGGER, 0, NULL), ENOENT);
	CHECK_ERR(nb_user(kq, 2, EV_DELETE, 0, 0, NULL), ENOENT);
	close(kq);
}

/* U7 kqueue_EVFILT_USER (NetBSD's own t_kevent case, unchanged). */
static void case_u7(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 666, EV_ADD | EV_ENABLE, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 666, 0, NOTE_FFCOPY | NOTE_TRIGGER | 8, 0, NULL), 0);
	CHECK_EQ(nb_wait(kq, &ev, 1, 1000), 1);
	CHECK_EQ(ev.ident, 666);
	CHECK_EQ(ev.filter, EVFILT_USER);
	CHECK_EQ(ev.fflags, 8);
	close(kq);
}

/* U10 level_without_clear: reported on every call until a change with EV_CLEAR. */
static void case_u10(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(nb_user(kq, 1, EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	close(kq);
}

/* U11 ffops: NOTE_FFCOPY / FFOR / FFAND / FFNOP and data. */
static void case_u11(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_FFCOPY | 0xABC, 7, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER | NOTE_FFOR | 0x1, 9, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.fflags, 0xABD);
	CHECK_EQ(ev.data, 9);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER | NOTE_FFAND | 0xF0, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.fflags, 0xB0);
	CHECK_EQ(ev.data, 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER | NOTE_FFNOP, 5, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.fflags, 0xB0);
	CHECK_EQ(ev.data, 5);
	close(kq);
}

/* U12 fflags_24bit_mask */
static void case_u12(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, 0xFFFFFFFFu, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.fflags, NOTE_FFLAGSMASK);
	close(kq);
}

/* U13 add_with_trigger: EV_ADD|NOTE_TRIGGER on a new ident does not fire. */
static void case_u13(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_CLEAR, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	close(kq);
}

/* U14 raw_creation_fflags: creation fflags are stored raw. */
static void case_u14(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_CLEAR, NOTE_FFCOPY | 5, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.fflags, 0xC0000005u);
	close(kq);
}

/* U15 trigger_and_clear_same_change: the clear wins. */
static void case_u15(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, EV_CLEAR, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	close(kq);
}

/* U19 dispatch_reenable_redelivers */
static void case_u19(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_DISPATCH, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.flags, EV_ADD | EV_DISPATCH);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	CHECK_EQ(nb_user(kq, 1, EV_ENABLE, 0, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	close(kq);
}

/* U20 dispatch_clear: NetBSD clears without disabling. */
static void case_u20(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_DISPATCH | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	close(kq);
}

/* U21 oneshot_output_values: NetBSD reports the stored fflags and data. */
static void case_u21(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_ONESHOT, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER | NOTE_FFCOPY | 0x7, 3, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.fflags, 7);
	CHECK_EQ(ev.data, 3);
	close(kq);
}

/* U22 coalesce: three triggers, one record with the OR of the bits. */
static void case_u22(void)
{
	struct kevent ev[2];
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER | NOTE_FFOR | 1, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER | NOTE_FFOR | 2, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER | NOTE_FFOR | 4, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, ev, 2), 1);
	CHECK_EQ(ev[0].fflags, 7);
	CHECK_EQ(nb_poll(kq, ev, 2), 0);
	close(kq);
}

/* U23 disabled_trigger_latched */
static void case_u23(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, EV_DISABLE, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	CHECK_EQ(nb_user(kq, 1, EV_ENABLE, 0, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	close(kq);
}

/* U26 enable_disable_together: NetBSD nets to enabled. */
static void case_u26(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, EV_ENABLE | EV_DISABLE, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	close(kq);
}

/* U33 receipt_on_modify: the echoed record has the masked fflags; no scan. */
static void case_u33(void)
{
	struct kevent c, ev[2];
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	EV_SET(&c, 1, EVFILT_USER, EV_RECEIPT, NOTE_TRIGGER | NOTE_FFCOPY | 0x123, 0, &marker_b);
	memset(ev, 0, sizeof ev);
	CHECK_EQ(kevent(kq, &c, 1, ev, 1, &zero), 1);
	CHECK_EQ(ev[0].ident, 1);
	CHECK_EQ(ev[0].filter, EVFILT_USER);
	CHECK_EQ(ev[0].flags, EV_ERROR);
	CHECK_EQ(ev[0].data, 0);
	CHECK_EQ(ev[0].fflags, 0x123);
	CHECK(ev[0].udata == &marker_b);
	CHECK_EQ(nb_poll(kq, ev, 2), 1);
	CHECK_EQ(ev[0].flags & EV_ERROR, 0);
	CHECK_EQ(ev[0].fflags, 0x123);
	close(kq);
}

/* U36 big_data: INT64_MIN / INT64_MAX delivered unchanged in the 64-bit data field. */
static void case_u36(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER, INT64_MIN, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK(ev.data == INT64_MIN);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER, INT64_MAX, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK(ev.data == INT64_MAX);
	close(kq);
}

/* G19 fifo_order, G21 nevents_limits: activation order, size_t slots. */
static void case_g19_g21(void)
{
	struct kevent ev[3];
	int kq = kqueue();
	CHECK(kq >= 0);
	for (uintptr_t i = 1; i <= 3; i++)
		CHECK_EQ(nb_user(kq, i, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 3, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 2, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, ev, 2), 2);
	CHECK_EQ(ev[0].ident, 3);
	CHECK_EQ(ev[1].ident, 1);
	CHECK_EQ(nb_poll(kq, ev, 2), 1);
	CHECK_EQ(ev[0].ident, 2);
	CHECK_EQ(nb_poll(kq, ev, 2), 0);
	close(kq);
}

/* G30 flags_echo: EV_ADD|EV_ENABLE and EV_RECEIPT are stored and delivered. */
static void case_g30(void)
{
	struct kevent c, ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_ENABLE | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.flags, EV_ADD | EV_ENABLE | EV_CLEAR);
	EV_SET(&c, 2, EVFILT_USER, EV_ADD | EV_CLEAR | EV_RECEIPT, 0, 0, NULL);
	CHECK_EQ(nb_report(kq, &c, &ev), 1);
	CHECK_EQ(nb_user(kq, 2, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.flags, EV_ADD | EV_CLEAR | EV_RECEIPT);
	close(kq);
}

/* add and trigger in one call, collected by the same call. */
static void case_same_call(void)
{
	struct kevent c[2], ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	EV_SET(&c[0], 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
	EV_SET(&c[1], 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
	CHECK_EQ(kevent(kq, c, 2, &ev, 1, &zero), 1);
	CHECK_EQ(ev.ident, 1);
	CHECK_EQ(ev.flags, EV_ADD | EV_CLEAR);
	close(kq);
}

struct waiter {
	int kq;
	int rc;
	struct kevent ev;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = (struct waiter *)arg;
	w->rc = kevent(w->kq, NULL, 0, &w->ev, 1, NULL);
	return NULL;
}

/* U31 cross_thread_wakeup: a trigger wakes a thread blocked with a NULL timeout. */
static void case_u31(void)
{
	pthread_t t;
	struct waiter w;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, &marker_b), 0);
	memset(&w, 0, sizeof w);
	w.kq = kq;
	CHECK_EQ(pthread_create(&t, NULL, waiter_main, &w), 0);
	kqt_sleep_ms(30);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER, 0, &marker_b), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(w.rc, 1);
	CHECK_EQ(w.ev.ident, 1);
	CHECK_EQ(w.ev.filter, EVFILT_USER);
	CHECK(w.ev.udata == &marker_b);
	close(kq);
}

/* ---- Errors and reports ---- */

/* G3 bad_kq_fd: -1, a closed descriptor, a pipe -> EBADF, checked before anything else. */
static void case_g3(void)
{
	struct kevent c, ev;
	EV_SET(&c, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
	CHECK_ERR(kevent(-1, NULL, 0, &ev, 1, &zero), EBADF);
	CHECK_ERR(kevent(-1, &c, 1, NULL, 0, NULL), EBADF);
	CHECK_ERR(kevent(-1, NULL, SIZE_MAX, NULL, SIZE_MAX, NULL), EBADF);
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(close(kq), 0);
	CHECK_ERR(kevent(kq, NULL, 0, &ev, 1, NULL), EBADF);
	int p[2];
	CHECK_EQ(pipe(p), 0);
	CHECK_ERR(kevent(p[0], &c, 1, &ev, 1, &zero), EBADF);
	close(p[0]);
	close(p[1]);
}

/* CAPI big_counts: size_t counts above INT_MAX -> EINVAL, nothing applied. */
static void case_big_counts(void)
{
	struct kevent c, ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	EV_SET(&c, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
	CHECK_ERR(kevent(kq, &c, (size_t)INT_MAX + 1, NULL, 0, NULL), EINVAL);
	CHECK_ERR(kevent(kq, &c, SIZE_MAX, NULL, 0, NULL), EINVAL);
	CHECK_ERR(kevent(kq, NULL, 0, &ev, (size_t)INT_MAX + 1, &zero), EINVAL);
	CHECK_ERR(kevent(kq, &c, 1, &ev, SIZE_MAX, &zero), EINVAL);
	CHECK_ERR(nb_user(kq, 1, EV_DELETE, 0, 0, NULL), ENOENT);
	CHECK_EQ(close(kq), 0);
}

/* CAPI bad_pointers: NULL with a count, small integers, -1, kernel addresses -> EFAULT. */
static void case_bad_pointers(void)
{
	struct kevent c, ev;
	static const uintptr_t bad[] = { 0, 1, 8, 4095, (uintptr_t)-1, (uintptr_t)-4096,
					 0xffff800000000000ULL };
	int kq = kqueue();
	CHECK(kq >= 0);
	EV_SET(&c, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct kevent *p = (struct kevent *)bad[i];
		CHECK_ERR(kevent(kq, p, 1, NULL, 0, NULL), EFAULT);
		CHECK_ERR(kevent(kq, NULL, 0, p, 1, &zero), EFAULT);
		if (bad[i] != 0)
			CHECK_ERR(kevent(kq, &c, 1, &ev, 1, (const struct timespec *)bad[i]),
				  EFAULT);
	}
	CHECK_ERR(nb_user(kq, 1, EV_DELETE, 0, 0, NULL), ENOENT);
	CHECK_EQ(kevent(kq, NULL, 0, NULL, 0, &zero), 0);
	CHECK_EQ(close(kq), 0);
}

/* G4 invalid_timeout: EINVAL only when nevents > 0, after the changes are applied. */
static void case_g4(void)
{
	static const struct timespec bad = { 0, 1000000000 };
	struct kevent c, ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	EV_SET(&c, 10, EVFILT_USER, EV_ADD, 0, 0, NULL);
	CHECK_ERR(kevent(kq, &c, 1, &ev, 1, &bad), EINVAL);
	CHECK(user_exists_delete(kq, 10));
	CHECK_EQ(kevent(kq, &c, 1, NULL, 0, &bad), 0);
	CHECK(user_exists_delete(kq, 10));
	CHECK_EQ(close(kq), 0);
}

/* G8 unknown_filter: NetBSD numbers past EVFILT_EMPTY -> EINVAL; the report gives the
 * caller's filter, fflags and udata back. EVFILT_AIO is EINVAL too, as on NetBSD. */
static void case_g8(void)
{
	static const uint32_t bad[] = { EVFILT_SYSCOUNT, 11, 99, 0x8000, 0xfff5, 0x80000000,
					0xffffffff, EVFILT_AIO };
	struct kevent c, ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		EV_SET(&c, 1, bad[i], EV_ADD, 0x1234, 77, &marker_a);
		CHECK_ERR(kevent(kq, &c, 1, NULL, 0, NULL), EINVAL);
		CHECK_EQ(nb_report(kq, &c, &ev), 1);
		CHECK_EQ(ev.ident, 1);
		CHECK_EQ(ev.filter, bad[i]);
		CHECK_EQ(ev.flags, EV_ERROR);
		CHECK_EQ(ev.fflags, 0x1234);
		CHECK_EQ(ev.data, EINVAL);
		CHECK(ev.udata == &marker_a);
		EV_SET(&c, 1, bad[i], EV_DELETE, 0, 0, NULL);
		CHECK_ERR(kevent(kq, &c, 1, NULL, 0, NULL), EINVAL);
	}
	CHECK_EQ(close(kq), 0);
}

/* CAPI wide_flags: flags bits above 16 (none is defined) -> EINVAL, reported as given. */
static void case_wide_flags(void)
{
	struct kevent c, ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	EV_SET(&c, 4, EVFILT_USER, EV_ADD | 0x10000, NOTE_FFCOPY | 1, 0, NULL);
	CHECK_ERR(kevent(kq, &c, 1, NULL, 0, NULL), EINVAL);
	CHECK_EQ(nb_report(kq, &c, &ev), 1);
	CHECK_EQ(ev.filter, EVFILT_USER);
	CHECK_EQ(ev.flags, EV_ERROR);
	CHECK_EQ(ev.fflags, NOTE_FFCOPY | 1);
	CHECK_EQ(ev.data, EINVAL);
	CHECK_ERR(nb_user(kq, 4, EV_DELETE, 0, 0, NULL), ENOENT);
	CHECK_EQ(close(kq), 0);
}

/* G10 enoent_ops: DELETE / ENABLE / DISABLE / flags 0 on a missing key -> ENOENT. */
static void case_g10(void)
{
	static const uint32_t ops[4] = { EV_DELETE, EV_ENABLE, EV_DISABLE, 0 };
	int kq = kqueue();
	CHECK(kq >= 0);
	for (int i = 0; i < 4; i++) {
		CHECK_ERR(nb_user(kq, 42, ops[i], 0, 0, NULL), ENOENT);
		CHECK_ERR(nb_change(kq, 42, EVFILT_TIMER, ops[i], 0, 0, NULL), ENOENT);
	}
	CHECK_EQ(close(kq), 0);
}

/* U9 trigger_unknown_errslot: one EV_ERROR entry with the change's fields, no scan. */
static void case_u9(void)
{
	struct kevent c, ev[2];
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_ERR(nb_user(kq, 99, 0, NOTE_TRIGGER, 0, NULL), ENOENT);
	EV_SET(&c, 99, EVFILT_USER, 0, NOTE_TRIGGER, 0, &kqt_cases);
	memset(ev, 0, sizeof ev);
	CHECK_EQ(kevent(kq, &c, 1, ev, 2, &zero), 1);
	CHECK_EQ(ev[0].ident, 99);
	CHECK_EQ(ev[0].filter, EVFILT_USER);
	CHECK_EQ(ev[0].flags, EV_ERROR);
	CHECK_EQ(ev[0].data, ENOENT);
	CHECK_EQ(ev[0].fflags, NOTE_TRIGGER);
	CHECK(ev[0].udata == &kqt_cases);
	CHECK_EQ(ev[1].ident, 0);
	CHECK_EQ(nb_poll(kq, ev, 2), 1);
	CHECK_EQ(ev[0].ident, 1);
	CHECK_EQ(close(kq), 0);
}

/* G12 errors_continue, G13 errors_no_room_abort */
static void case_g12_g13(void)
{
	struct kevent c[3], ev[4];
	int kq = kqueue();
	CHECK(kq >= 0);
	EV_SET(&c[0], 50, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);   /* ENOENT */
	EV_SET(&c[1], 51, EVFILT_USER, EV_ADD, 0, 0, NULL);         /* ok */
	EV_SET(&c[2], 52, 1234, EV_ADD, 0, 0, NULL);                /* EINVAL */
	memset(ev, 0, sizeof ev);
	CHECK_EQ(kevent(kq, c, 3, ev, 4, &zero), 2);
	CHECK_EQ(ev[0].ident, 50);
	CHECK_EQ(ev[0].data, ENOENT);
	CHECK_EQ(ev[1].ident, 52);
	CHECK_EQ(ev[1].filter, 1234);
	CHECK_EQ(ev[1].data, EINVAL);
	CHECK_EQ(ev[2].ident, 0);
	CHECK(user_exists_delete(kq, 51));

	/* No slot left: the call ends with the error, later changes are not applied. */
	EV_SET(&c[0], 60, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
	EV_SET(&c[1], 61, 4321, EV_ADD, 0, 0, NULL);
	EV_SET(&c[2], 7, EVFILT_USER, EV_ADD, 0, 0, NULL);
	memset(ev, 0, sizeof ev);
	CHECK_ERR(kevent(kq, c, 3, ev, 1, &zero), EINVAL);
	CHECK_EQ(ev[0].ident, 60);
	CHECK_EQ(ev[0].data, ENOENT);
	CHECK_ERR(nb_user(kq, 7, EV_DELETE, 0, 0, NULL), ENOENT);
	CHECK_EQ(close(kq), 0);
}

/* G14 receipt_batch, G15 receipt_no_room */
static void case_g14_g15(void)
{
	struct kevent c[2], ev[2];
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_user(kq, 70, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(nb_user(kq, 70, 0, NOTE_TRIGGER, 0, NULL), 0);
	EV_SET(&c[0], 71, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, NULL);
	EV_SET(&c[1], 72, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, NULL);
	memset(ev, 0, sizeof ev);
	CHECK_EQ(kevent(kq, c, 2, ev, 2, &zero), 2);
	CHECK_EQ(ev[0].ident, 71);
	CHECK_EQ(ev[0].flags, EV_ERROR);
	CHECK_EQ(ev[0].data, 0);
	CHECK_EQ(ev[1].ident, 72);
	CHECK_EQ(ev[1].flags, EV_ERROR);
	CHECK_EQ(ev[1].data, 0);
	CHECK_EQ(nb_poll(kq, ev, 2), 1);
	CHECK_EQ(ev[0].ident, 70);

	EV_SET(&c[0], 81, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, NULL);
	EV_SET(&c[1], 82, EVFILT_USER, EV_ADD, 0, 0, NULL);
	CHECK_EQ(kevent(kq, c, 2, NULL, 0, &zero), 0);
	CHECK(user_exists_delete(kq, 81));
	CHECK_ERR(nb_user(kq, 82, EV_DELETE, 0, 0, NULL), ENOENT);
	CHECK_EQ(close(kq), 0);
}

/* G16 sysflags_stripped: EV_EOF|EV_ERROR|EV_FLAG1 in a change are dropped. */
static void case_g16(void)
{
	struct kevent c, ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	EV_SET(&c, 5, EVFILT_USER, EV_ADD | EV_CLEAR | EV_EOF | EV_ERROR | EV_FLAG1, 0, 0, NULL);
	CHECK_EQ(kevent(kq, &c, 1, &ev, 1, &zero), 0);
	CHECK_EQ(nb_user(kq, 5, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.flags, EV_ADD | EV_CLEAR);
	CHECK_EQ(close(kq), 0);
}

/* G17 same_array_in_out: one array of 40-byte records as changelist and eventlist. */
static void case_g17(void)
{
	struct kevent a[4];
	int kq = kqueue();
	CHECK(kq >= 0);
	EV_SET(&a[0], 90, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);          /* ENOENT */
	EV_SET(&a[1], 91, EVFILT_USER, EV_ADD, 0, 0, NULL);                /* ok */
	EV_SET(&a[2], 92, 77, EV_ADD, 0, 0, &marker_a);                    /* EINVAL */
	EV_SET(&a[3], 93, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, NULL);   /* receipt */
	CHECK_EQ(kevent(kq, a, 4, a, 4, &zero), 3);
	CHECK_EQ(a[0].ident, 90);
	CHECK_EQ(a[0].data, ENOENT);
	CHECK_EQ(a[1].ident, 92);
	CHECK_EQ(a[1].filter, 77);
	CHECK_EQ(a[1].flags, EV_ERROR);
	CHECK_EQ(a[1].data, EINVAL);
	CHECK(a[1].udata == &marker_a);
	CHECK_EQ(a[2].ident, 93);
	CHECK_EQ(a[2].flags, EV_ERROR);
	CHECK_EQ(a[2].data, 0);
	CHECK(user_exists_delete(kq, 91));
	CHECK(user_exists_delete(kq, 93));

	EV_SET(&a[0], 94, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
	EV_SET(&a[1], 94, EVFILT_USER, 0, NOTE_TRIGGER | NOTE_FFCOPY | 0x42, 17, NULL);
	CHECK_EQ(kevent(kq, a, 2, a, 2, &zero), 1);
	CHECK_EQ(a[0].ident, 94);
	CHECK_EQ(a[0].fflags, 0x42);
	CHECK_EQ(a[0].data, 17);
	CHECK_EQ(close(kq), 0);
}

/* ---- EVFILT_TIMER with NetBSD's units ---- */

/* A oneshot timer of `data` in `unit` fires after 30 ms, reporting NetBSD's values. */
static void check_relative_unit(uint32_t unit, int64_t data)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	double t0 = kqt_now_ms();
	CHECK_EQ(nb_change(kq, 5, EVFILT_TIMER, EV_ADD | EV_ONESHOT, unit, data, &marker_a), 0);
	memset(&ev, 0, sizeof ev);
	CHECK_EQ(nb_wait(kq, &ev, 1, 60000), 1);
	double dt = kqt_now_ms() - t0;
	CHECK(dt >= 29.0);
	CHECK(dt < 30000.0);
	CHECK_EQ(ev.ident, 5);
	CHECK_EQ(ev.filter, EVFILT_TIMER);
	CHECK_EQ(ev.flags, EV_ADD | EV_ONESHOT | EV_CLEAR);
	CHECK_EQ(ev.fflags, 0);
	CHECK_EQ(ev.data, 1);
	CHECK(ev.udata == &marker_a);
	CHECK_ERR(nb_change(kq, 5, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), ENOENT);
	close(kq);
}

/* T5 units: 30 ms in milliseconds (the default), microseconds and nanoseconds. */
static void case_units(void)
{
	check_relative_unit(NOTE_MSECONDS, 30);
	if (kqt_case_failed)
		return;
	check_relative_unit(NOTE_USECONDS, 30000);
	if (kqt_case_failed)
		return;
	check_relative_unit(NOTE_NSECONDS, 30000000);
}

/* T5 seconds: a 1 s timer has not fired after 40 ms (it would have in any smaller unit);
 * a receipt of its modification echoes NOTE_SECONDS (NetBSD's value, 1). */
static void case_seconds(void)
{
	struct kevent c, ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_change(kq, 1, EVFILT_TIMER, EV_ADD, NOTE_SECONDS, 1, NULL), 0);
	CHECK_EQ(nb_wait(kq, &ev, 1, 40), 0);
	EV_SET(&c, 1, EVFILT_TIMER, EV_ADD | EV_RECEIPT, NOTE_SECONDS, 2, NULL);
	CHECK_EQ(nb_report(kq, &c, &ev), 1);
	CHECK_EQ(ev.filter, EVFILT_TIMER);
	CHECK_EQ(ev.flags, EV_ERROR);
	CHECK_EQ(ev.data, 0);
	CHECK_EQ(ev.fflags, NOTE_SECONDS);
	EV_SET(&c, 1, EVFILT_TIMER, EV_ADD | EV_RECEIPT, NOTE_NSECONDS, 1000000000, NULL);
	CHECK_EQ(nb_report(kq, &c, &ev), 1);
	CHECK_EQ(ev.fflags, NOTE_NSECONDS);
	CHECK_EQ(nb_wait(kq, &ev, 1, 20), 0);
	CHECK_EQ(nb_change(kq, 1, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), 0);
	close(kq);
}

/* T7 periodic: a 10 ms timer counts its expirations. */
static void case_periodic(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_change(kq, 7, EVFILT_TIMER, EV_ADD, NOTE_USECONDS, 10000, NULL), 0);
	kqt_sleep_ms(45);
	CHECK_EQ(nb_poll(kq, &ev, 1), 1);
	CHECK(ev.data >= 2);
	CHECK_EQ(ev.flags, EV_ADD | EV_CLEAR);
	CHECK_EQ(nb_wait(kq, &ev, 1, 1000), 1);
	CHECK(ev.data >= 1);
	CHECK_EQ(nb_change(kq, 7, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), 0);
	close(kq);
}

/* T10 invalid: unit bits NetBSD does not define, and a relative 0 or negative -> EINVAL,
 * reported with the caller's fflags. fflags are only looked at by EV_ADD. */
static void case_timer_invalid(void)
{
	static const uint32_t bad_fflags[] = { 0x4, 0x8, 0x20, 0x40, 0x80000000u,
					       NOTE_ABSTIME | 0x4, NOTE_NSECONDS | 0x100 };
	struct kevent c, ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	for (size_t i = 0; i < sizeof bad_fflags / sizeof bad_fflags[0]; i++) {
		EV_SET(&c, 1, EVFILT_TIMER, EV_ADD, bad_fflags[i], 10, &marker_b);
		CHECK_ERR(kevent(kq, &c, 1, NULL, 0, NULL), EINVAL);
		CHECK_EQ(nb_report(kq, &c, &ev), 1);
		CHECK_EQ(ev.filter, EVFILT_TIMER);
		CHECK_EQ(ev.flags, EV_ERROR);
		CHECK_EQ(ev.fflags, bad_fflags[i]);
		CHECK_EQ(ev.data, EINVAL);
		CHECK(ev.udata == &marker_b);
		CHECK_ERR(nb_change(kq, 1, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), ENOENT);
	}
	CHECK_ERR(nb_change(kq, 1, EVFILT_TIMER, EV_ADD, 0, 0, NULL), EINVAL);
	CHECK_ERR(nb_change(kq, 1, EVFILT_TIMER, EV_ADD, NOTE_USECONDS, 0, NULL), EINVAL);
	CHECK_ERR(nb_change(kq, 1, EVFILT_TIMER, EV_ADD, 0, -5, NULL), EINVAL);
	/* An existing timer: a bad unit in a change without EV_ADD is not looked at. */
	CHECK_EQ(nb_change(kq, 2, EVFILT_TIMER, EV_ADD, 0, 10000, NULL), 0);
	EV_SET(&c, 2, EVFILT_TIMER, EV_DISABLE | EV_RECEIPT, 0x4, 0, NULL);
	CHECK_EQ(nb_report(kq, &c, &ev), 1);
	CHECK_EQ(ev.data, 0);
	CHECK_EQ(ev.fflags, 0x4);
	CHECK_EQ(nb_change(kq, 2, EVFILT_TIMER, EV_DELETE, 0x80, 0, NULL), 0);
	close(kq);
}

/* T3 abstime: NOTE_ABSTIME in each unit fires at that CLOCK_REALTIME time; NetBSD does not
 * force EV_CLEAR on it, so it is reported on every call until deleted. */
static void case_abstime(void)
{
	static const uint32_t units[] = { NOTE_MSECONDS, NOTE_USECONDS, NOTE_NSECONDS };
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		double at = realtime_ms() + 30.0;
		int64_t data = (int64_t)at;
		if (units[i] == NOTE_USECONDS)
			data = (int64_t)(at * 1e3);
		else if (units[i] == NOTE_NSECONDS)
			data = (int64_t)(at * 1e6);
		CHECK_EQ(nb_change(kq, 9, EVFILT_TIMER, EV_ADD, units[i] | NOTE_ABSTIME, data,
				   NULL), 0);
		CHECK_EQ(nb_wait(kq, &ev, 1, 2000), 1);
		CHECK(realtime_ms() >= at - 1.0);
		CHECK(realtime_ms() < at + 1000.0);
		CHECK_EQ(ev.ident, 9);
		CHECK_EQ(ev.filter, EVFILT_TIMER);
		CHECK_EQ(ev.flags, EV_ADD);
		CHECK_EQ(ev.data, 1);
		CHECK_EQ(nb_poll(kq, &ev, 1), 1);
		CHECK_EQ(ev.ident, 9);
		CHECK_EQ(nb_change(kq, 9, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), 0);
		CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	}
	/* Seconds: a time in the past fires at once, one an hour ahead does not. */
	time_t now = time(NULL);
	CHECK_EQ(nb_change(kq, 10, EVFILT_TIMER, EV_ADD, NOTE_SECONDS | NOTE_ABSTIME,
			   (int64_t)now - 1, NULL), 0);
	CHECK_EQ(nb_change(kq, 11, EVFILT_TIMER, EV_ADD, NOTE_SECONDS | NOTE_ABSTIME,
			   (int64_t)now + 3600, NULL), 0);
	CHECK_EQ(nb_wait(kq, &ev, 1, 1000), 1);
	CHECK_EQ(ev.ident, 10);
	CHECK_EQ(nb_change(kq, 10, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(nb_wait(kq, &ev, 1, 30), 0);
	CHECK_EQ(nb_change(kq, 11, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), 0);
	close(kq);
}

/* ---- EVFILT_READ / EVFILT_WRITE with NetBSD's numbers (0 and 1) ---- */

/* R1 socketpair: EVFILT_READ is filter 0 and works; data counts bytes; NOTE_LOWAT; EV_EOF. */
/* S2 signal_get: EVFILT_SIGNAL is filter 5; EV_CLEAR is forced and shows beside the stored
 * EV_ADD; data counts the deliveries; SIGURG's action is its default again afterwards. */
static void case_signal_get(void)
{
	struct kevent ev;
	struct sigaction now;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(nb_change(kq, SIGURG, EVFILT_SIGNAL, EV_ADD, 0, 0, &marker_a), 0);
	CHECK_EQ(raise(SIGURG), 0);
	CHECK_EQ(raise(SIGURG), 0);
	memset(&ev, 0, sizeof ev);
	CHECK_EQ(nb_wait(kq, &ev, 1, 1000), 1);
	CHECK_EQ(ev.ident, SIGURG);
	CHECK_EQ(ev.filter, EVFILT_SIGNAL);
	CHECK_EQ(ev.flags, EV_ADD | EV_CLEAR);
	CHECK_EQ(ev.fflags, 0);
	CHECK_EQ(ev.data, 2);
	CHECK(ev.udata == &marker_a);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	CHECK_EQ(nb_change(kq, SIGURG, EVFILT_SIGNAL, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(sigaction(SIGURG, NULL, &now), 0);
	CHECK(now.sa_handler == SIG_DFL);
	close(kq);
}

static void case_read_socketpair(void)
{
	struct kevent ev;
	int s[2];
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	CHECK_EQ(nb_change(kq, (uintptr_t)s[0], 0, EV_ADD, 0, 0, &s[0]), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	CHECK_EQ(write(s[1], "hello", 5), 5);
	memset(&ev, 0, sizeof ev);
	CHECK_EQ(nb_wait(kq, &ev, 1, 1000), 1);
	CHECK_EQ(ev.ident, s[0]);
	CHECK_EQ(ev.filter, EVFILT_READ);
	CHECK_EQ(ev.flags, EV_ADD);
	CHECK_EQ(ev.data, 5);
	CHECK(ev.udata == &s[0]);

	/* A low-water mark of 8: not reported with 5 bytes, reported with 10. */
	CHECK_EQ(nb_change(kq, (uintptr_t)s[0], EVFILT_READ, EV_ADD, NOTE_LOWAT, 8, NULL), 0);
	CHECK_EQ(nb_poll(kq, &ev, 1), 0);
	CHECK_EQ(write(s[1], "world", 5), 5);
	CHECK_EQ(nb_wait(kq, &ev, 1, 1000), 1);
	CHECK_EQ(ev.data, 10);

	/* EVFILT_WRITE is filter 1: a fresh socket is writable. */
	CHECK_EQ(nb_change(kq, (uintptr_t)s[0], EVFILT_WRITE, EV_ADD | EV_ONESHOT, 0, 0, NULL),
		 0);
	struct kevent evs[2];
	CHECK_EQ(nb_poll(kq, evs, 2), 2);
	int w = evs[0].filter == EVFILT_WRITE ? 0 : 1;
	CHECK_EQ(evs[w].filter, EVFILT_WRITE);
	CHECK_EQ(evs[1 - w].filter, EVFILT_READ);
	CHECK(evs[w].data > 0);
	CHECK_EQ(evs[w].flags, EV_ADD | EV_ONESHOT);

	/* The peer closes: EV_EOF. */
	CHECK_EQ(close(s[1]), 0);
	CHECK_EQ(nb_wait(kq, &ev, 1, 1000), 1);
	CHECK_EQ(ev.filter, EVFILT_READ);
	CHECK_EQ(ev.flags & EV_EOF, EV_EOF);
	CHECK_EQ(nb_change(kq, (uintptr_t)s[0], EVFILT_READ, EV_DELETE, 0, 0, NULL), 0);
	close(s[0]);
	close(kq);
}

int main(void)
{
	kqt_watchdog(60);
	kqt_run("L1", "ev_set_evaluates_once", case_ev_set);
	kqt_run("K1", "kqueue1_flags", case_kqueue1_flags);
	kqt_run("K2", "kqueue1_einval", case_kqueue1_einval);
	kqt_run("K3", "personality_always_netbsd", case_personality_fixed);
	kqt_run("K4", "kevent_on_freebsd_kqueue", case_freebsd_kqueue);
	kqt_run("U1", "add_and_delete", case_u1);
	kqt_run("U2", "event_wait", case_u2);
	kqt_run("U3", "udata_replaced", case_u3);
	kqt_run("U6", "oneshot", case_u6);
	kqt_run("U7", "kqueue_EVFILT_USER", case_u7);
	kqt_run("U10", "level_without_clear", case_u10);
	kqt_run("U11", "ffops", case_u11);
	kqt_run("U12", "fflags_24bit_mask", case_u12);
	kqt_run("U13", "add_with_trigger", case_u13);
	kqt_run("U14", "raw_creation_fflags", case_u14);
	kqt_run("U15", "trigger_and_clear", case_u15);
	kqt_run("U19", "dispatch_reenable", case_u19);
	kqt_run("U20", "dispatch_clear", case_u20);
	kqt_run("U21", "oneshot_output_values", case_u21);
	kqt_run("U22", "coalesce", case_u22);
	kqt_run("U23", "disabled_trigger_latched", case_u23);
	kqt_run("U26", "enable_disable_together", case_u26);
	kqt_run("U33", "receipt_on_modify", case_u33);
	kqt_run("U36", "big_data", case_u36);
	kqt_run("G19", "fifo_order_nevents", case_g19_g21);
	kqt_run("G30", "flags_echo", case_g30);
	kqt_run("U-same", "add_trigger_collect", case_same_call);
	kqt_run("U31", "cross_thread_wakeup", case_u31);
	kqt_run("G3", "bad_kq_fd", case_g3);
	kqt_run("CAPI", "counts_above_int_max", case_big_counts);
	kqt_run("CAPI", "bad_pointers_efault", case_bad_pointers);
	kqt_run("G4", "invalid_timeout", case_g4);
	kqt_run("G8", "unknown_filter", case_g8);
	kqt_run("CAPI", "flags_above_16_bits", case_wide_flags);
	kqt_run("G10", "enoent_ops", case_g10);
	kqt_run("U9", "trigger_unknown_errslot", case_u9);
	kqt_run("G12", "errors_continue_no_room", case_g12_g13);
	kqt_run("G14", "receipts", case_g14_g15);
	kqt_run("G16", "sysflags_stripped", case_g16);
	kqt_run("G17", "same_array_in_out", case_g17);
	kqt_run("T5", "relative_units", case_units);
	kqt_run("T5", "seconds", case_seconds);
	kqt_run("T7", "periodic", case_periodic);
	kqt_run("T10", "timer_invalid", case_timer_invalid);
	kqt_run("T3", "abstime", case_abstime);
	kqt_run("R1", "read_write_socketpair", case_read_socketpair);
	kqt_run("S2", "signal_get", case_signal_get);
	return kqt_done();
}
