/*
 * errno values and the report rules of kevent() seen from C (docs/semantics.md §1.2-§1.6,
 * cases of §7.2):
 * bad kqueue descriptors, bad counts and pointers, late timeout validation, ENOENT,
 * EV_ERROR entries, receipts, the no-room abort and changelist == eventlist.
 * kqueue() here has the default (FreeBSD) personality; none of these rules differ.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <limits.h>

static const struct timespec zero = { 0, 0 };

/* Whether a user event with this ident exists (EV_DELETE of it succeeds), deleting it. */
static int user_exists_delete(int kq, uintptr_t ident)
{
	return kqt_user(kq, ident, EV_DELETE, 0, 0, NULL) == 0;
}

/* G1 kqueue: a new kqueue is a descriptor with nothing pending. */
static void case_g1(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	/* nchanges == nevents == 0 with a NULL timeout returns at once. */
	CHECK_EQ(kevent(kq, NULL, 0, NULL, 0, NULL), 0);
	CHECK_EQ(close(kq), 0);
}

/* G2 close: closing a kqueue succeeds. */
static void case_g2(void)
{
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(close(kq), 0);
}

/* G3 bad_kq_fd: -1, a closed descriptor, a regular file, a pipe -> EBADF. */
static void case_g3(void)
{
	struct kevent c, ev;
	EV_SET(&c, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);

	CHECK_ERR(kevent(-1, NULL, 0, &ev, 1, &zero), EBADF);
	CHECK_ERR(kevent(-1, &c, 1, NULL, 0, NULL), EBADF);
	CHECK_ERR(kevent(INT_MAX, NULL, 0, &ev, 1, &zero), EBADF);

	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(close(kq), 0);
	CHECK_ERR(kevent(kq, NULL, 0, &ev, 1, &zero), EBADF);
	CHECK_ERR(kevent(kq, &c, 1, NULL, 0, NULL), EBADF);
	/* A NULL timeout must not block on a closed descriptor. */
	CHECK_ERR(kevent(kq, NULL, 0, &ev, 1, NULL), EBADF);

	int fd = open("/proc/self/exe", O_RDONLY);
	CHECK(fd >= 0);
	CHECK_ERR(kevent(fd, NULL, 0, &ev, 1, &zero), EBADF);
	CHECK_ERR(kevent(fd, &c, 1, &ev, 1, NULL), EBADF);
	CHECK_EQ(close(fd), 0);

	int p[2];
	CHECK_EQ(pipe(p), 0);
	CHECK_ERR(kevent(p[0], NULL, 0, &ev, 1, &zero), EBADF);
	CHECK_ERR(kevent(p[1], &c, 1, NULL, 0, NULL), EBADF);
	close(p[0]);
	close(p[1]);

	/* The descriptor is checked first (docs/semantics.md §1.2 step 1). */
	CHECK_ERR(kevent(-1, NULL, -1, NULL, -1, NULL), EBADF);
}

/* CAPI negative_counts: nchanges < 0 or nevents < 0 -> EINVAL (docs/semantics.md §1.2). */
static void case_negative_counts(void)
{
	struct kevent c, ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	EV_SET(&c, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
	CHECK_ERR(kevent(kq, &c, -1, NULL, 0, NULL), EINVAL);
	CHECK_ERR(kevent(kq, NULL, 0, &ev, -1, &zero), EINVAL);
	CHECK_ERR(kevent(kq, &c, INT_MIN, &ev, INT_MIN, NULL), EINVAL);
	/* Nothing was applied: ident 1 does not exist. */
	CHECK_ERR(kqt_user(kq, 1, EV_DELETE, 0, 0, NULL), ENOENT);
	CHECK_EQ(close(kq), 0);
}

/* CAPI null_lists: a NULL list with a non-zero count -> EFAULT, never a crash. */
static void case_null_lists(void)
{
	struct kevent c;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_ERR(kevent(kq, NULL, 1, NULL, 0, NULL), EFAULT);
	CHECK_ERR(kevent(kq, NULL, 0, NULL, 1, &zero), EFAULT);
	EV_SET(&c, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
	CHECK_ERR(kevent(kq, &c, 1, NULL, 4, &zero), EFAULT);
	/* NULL lists with zero counts are fine. */
	CHECK_EQ(kevent(kq, NULL, 0, NULL, 0, &zero), 0);
	CHECK_EQ(close(kq), 0);
}

/*
 * CAPI bad_pointers: list and timeout pointers that cannot be user memory (small integers,
 * -1, kernel addresses, ranges that wrap around) -> EFAULT, never a crash; nothing of the
 * call is applied.
 */
static void case_bad_pointers(void)
{
	struct kevent c, ev;
	static const uintptr_t bad[] = { 1, 8, 4095, (uintptr_t)-1, (uintptr_t)-4096,
					 0xffff800000000000ULL, 0x0100000000000000ULL };
	int kq = kqueue();
	CHECK(kq >= 0);
	EV_SET(&c, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct kevent *p = (struct kevent *)bad[i];
		CHECK_ERR(kevent(kq, p, 1, NULL, 0, NULL), EFAULT);
		CHECK_ERR(kevent(kq, NULL, 0, p, 1, &zero), EFAULT);
		CHECK_ERR(kevent(kq, &c, 1, &ev, 1, (const struct timespec *)bad[i]), EFAULT);
	}
	/* Nothing was applied: ident 1 does not exist. */
	CHECK_ERR(kqt_user(kq, 1, EV_DELETE, 0, 0, NULL), ENOENT);
	CHECK_EQ(close(kq), 0);
}

/* G4 invalid_timeout: EINVAL only when nevents > 0, after the changes are applied. */
static void case_g4(void)
{
	static const struct timespec bad[3] = { { 0, -1 }, { -1, 0 }, { 0, 1000000000 } };
	struct kevent c, ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	for (int i = 0; i < 3; i++) {
		uintptr_t ident = 10 + (uintptr_t)i;
		EV_SET(&c, ident, EVFILT_USER, EV_ADD, 0, 0, NULL);
		CHECK_ERR(kevent(kq, &c, 1, &ev, 1, &bad[i]), EINVAL);
		/* The change was applied before the timeout was looked at. */
		CHECK(user_exists_delete(kq, ident));
		/* With nevents == 0 the timeout is not validated. */
		CHECK_EQ(kevent(kq, &c, 1, NULL, 0, &bad[i]), 0);
		CHECK_EQ(kevent(kq, NULL, 0, NULL, 0, &bad[i]), 0);
		CHECK(user_exists_delete(kq, ident));
	}
	CHECK_EQ(close(kq), 0);
}

/* G5 poll_timeout_zero: {0, 0} on an empty kqueue returns 0 at once. */
static void case_g5(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	double t0 = kqt_now_ms();
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK(kqt_now_ms() - t0 < 10000.0);
	CHECK_EQ(close(kq), 0);
}

/* G6 relative_timeout: {0, 200 ms} returns 0 after at least 200 ms. */
static void case_g6(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	double t0 = kqt_now_ms();
	CHECK_EQ(kqt_wait(kq, &ev, 1, 200), 0);
	double dt = kqt_now_ms() - t0;
	CHECK(dt >= 199.0);
	CHECK(dt < 30000.0);
	CHECK_EQ(close(kq), 0);
}

/* G8 unknown_filter: EINVAL, as an EV_ERROR entry when there is room. */
static void case_g8(void)
{
	struct kevent c, ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	EV_SET(&c, 1, -99, EV_ADD, 0, 0, NULL);
	CHECK_ERR(kevent(kq, &c, 1, NULL, 0, NULL), EINVAL);
	memset(&ev, 0, sizeof ev);
	CHECK_EQ(kevent(kq, &c, 1, &ev, 1, &zero), 1);
	CHECK_EQ(ev.flags, EV_ERROR);
	CHECK_EQ(ev.data, EINVAL);
	CHECK_EQ(ev.filter, -99);
	CHECK_EQ(ev.ident, 1);
	CHECK_EQ(close(kq), 0);
}

/* G10 enoent_ops: DELETE / ENABLE / DISABLE / flags 0 on a missing key -> ENOENT. */
static void case_g10(void)
{
	static const unsigned short ops[4] = { EV_DELETE, EV_ENABLE, EV_DISABLE, 0 };
	int kq = kqueue();
	CHECK(kq >= 0);
	for (int i = 0; i < 4; i++) {
		CHECK_ERR(kqt_user(kq, 42, ops[i], 0, 0, NULL), ENOENT);
		CHECK_ERR(kqt_change(kq, 42, EVFILT_TIMER, ops[i], 0, 0, NULL), ENOENT);
	}
	CHECK_EQ(close(kq), 0);
}

/* U8 trigger_unknown: NOTE_TRIGGER on an ident never added, no room -> -1 ENOENT. */
static void case_u8(void)
{
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_ERR(kqt_user(kq, 99, 0, NOTE_TRIGGER, 0, NULL), ENOENT);
	CHECK_EQ(close(kq), 0);
}

/* U9 trigger_unknown_errslot: the same with room -> one EV_ERROR entry, no scan. */
static void case_u9(void)
{
	struct kevent c, ev[2];
	int kq = kqueue();
	CHECK(kq >= 0);
	/* A pending event that the call must not collect. */
	CHECK_EQ(kqt_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);

	EV_SET(&c, 99, EVFILT_USER, 0, NOTE_TRIGGER, 0, &kqt_cases);
	memset(ev, 0, sizeof ev);
	CHECK_EQ(kevent(kq, &c, 1, ev, 2, &zero), 1);
	CHECK_EQ(ev[0].ident, 99);
	CHECK_EQ(ev[0].filter, EVFILT_USER);
	CHECK_EQ(ev[0].flags, EV_ERROR);
	CHECK_EQ(ev[0].data, ENOENT);
	CHECK_EQ(ev[0].fflags, NOTE_TRIGGER);
	CHECK(ev[0].udata == &kqt_cases);
	CHECK_EQ(ev[1].ident, 0); /* untouched */
	CHECK_EQ(kqt_poll(kq, ev, 2), 1);
	CHECK_EQ(ev[0].ident, 1);
	CHECK_EQ(close(kq), 0);
}

/* G12 errors_continue: an error does not stop later changes; no scan. */
static void case_g12(void)
{
	struct kevent c[3], ev[4];
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);

	EV_SET(&c[0], 50, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);   /* ENOENT */
	EV_SET(&c[1], 51, EVFILT_USER, EV_ADD, 0, 0, NULL);         /* ok */
	EV_SET(&c[2], 52, -99, EV_ADD, 0, 0, NULL);                 /* EINVAL */
	memset(ev, 0, sizeof ev);
	CHECK_EQ(kevent(kq, c, 3, ev, 4, &zero), 2);
	CHECK_EQ(ev[0].ident, 50);
	CHECK_EQ(ev[0].flags, EV_ERROR);
	CHECK_EQ(ev[0].data, ENOENT);
	CHECK_EQ(ev[1].ident, 52);
	CHECK_EQ(ev[1].flags, EV_ERROR);
	CHECK_EQ(ev[1].data, EINVAL);
	CHECK_EQ(ev[2].ident, 0); /* no scan: the pending event was not written */
	CHECK(user_exists_delete(kq, 51));
	CHECK_EQ(kqt_poll(kq, ev, 4), 1);
	CHECK_EQ(ev[0].ident, 1);
	CHECK_EQ(close(kq), 0);
}

/* G13 errors_no_room_abort: an error with no slot left ends the call, later changes skipped. */
static void case_g13(void)
{
	struct kevent c[3], ev[1];
	int kq = kqueue();
	CHECK(kq >= 0);
	EV_SET(&c[0], 60, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
	EV_SET(&c[1], 61, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
	EV_SET(&c[2], 7, EVFILT_USER, EV_ADD, 0, 0, NULL);
	memset(ev, 0, sizeof ev);
	CHECK_ERR(kevent(kq, c, 3, ev, 1, &zero), ENOENT);
	CHECK_EQ(ev[0].ident, 60);
	CHECK_EQ(ev[0].flags, EV_ERROR);
	CHECK_EQ(ev[0].data, ENOENT);
	CHECK_ERR(kqt_user(kq, 7, EV_DELETE, 0, 0, NULL), ENOENT);
	CHECK_EQ(close(kq), 0);
}

/* G14 receipt_batch: receipts are returned, the pending event is not. */
static void case_g14(void)
{
	struct kevent c[2], ev[2];
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 70, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 70, 0, NOTE_TRIGGER, 0, NULL), 0);
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
	CHECK_EQ(kqt_poll(kq, ev, 2), 1);
	CHECK_EQ(ev[0].ident, 70);
	CHECK(user_exists_delete(kq, 71));
	CHECK(user_exists_delete(kq, 72));
	CHECK_EQ(close(kq), 0);
}

/* G15 receipt_no_room: a receipt with no slot returns 0 and skips later changes. */
static void case_g15(void)
{
	struct kevent c[2];
	int kq = kqueue();
	CHECK(kq >= 0);
	EV_SET(&c[0], 81, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, NULL);
	EV_SET(&c[1], 82, EVFILT_USER, EV_ADD, 0, 0, NULL);
	CHECK_EQ(kevent(kq, c, 2, NULL, 0, &zero), 0);
	CHECK(user_exists_delete(kq, 81));
	CHECK_ERR(kqt_user(kq, 82, EV_DELETE, 0, 0, NULL), ENOENT);

	/* W14 (docs/semantics.md §4.8): [EV_ADD|EV_RECEIPT, trigger] with nevents 0. */
	EV_SET(&c[0], 83, EVFILT_USER, EV_ADD | EV_RECEIPT | EV_CLEAR, 0, 0, NULL);
	EV_SET(&c[1], 83, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
	CHECK_EQ(kevent(kq, c, 2, NULL, 0, &zero), 0);
	struct kevent ev;
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0); /* the trigger was not applied */
	CHECK_EQ(close(kq), 0);
}

/* G16 sysflags_stripped: EV_EOF|EV_ERROR|EV_FLAG1 in a change are dropped. */
static void case_g16(void)
{
	struct kevent c, ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	EV_SET(&c, 5, EVFILT_USER, EV_ADD | EV_CLEAR | EV_EOF | EV_ERROR | EV_FLAG1, 0, 0, NULL);
	/* Accepted, and EV_ERROR in the input does not make a report. */
	CHECK_EQ(kevent(kq, &c, 1, &ev, 1, &zero), 0);
	CHECK_EQ(kqt_user(kq, 5, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.ident, 5);
	CHECK_EQ(ev.flags & EV_SYSFLAGS, 0);
	CHECK_EQ(ev.flags & EV_CLEAR, EV_CLEAR);
	CHECK_EQ(close(kq), 0);
}

/* G17 same_array_in_out: one array as changelist and eventlist. */
static void case_g17(void)
{
	struct kevent a[4];
	int kq = kqueue();
	CHECK(kq >= 0);
	EV_SET(&a[0], 90, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);          /* ENOENT */
	EV_SET(&a[1], 91, EVFILT_USER, EV_ADD, 0, 0, NULL);                /* ok */
	EV_SET(&a[2], 92, EVFILT_USER, EV_DELETE, 0, 0, NULL);             /* ENOENT */
	EV_SET(&a[3], 93, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, NULL);   /* receipt */
	CHECK_EQ(kevent(kq, a, 4, a, 4, &zero), 3);
	CHECK_EQ(a[0].ident, 90);
	CHECK_EQ(a[0].flags, EV_ERROR);
	CHECK_EQ(a[0].data, ENOENT);
	CHECK_EQ(a[1].ident, 92);
	CHECK_EQ(a[1].flags, EV_ERROR);
	CHECK_EQ(a[1].data, ENOENT);
	CHECK_EQ(a[2].ident, 93);
	CHECK_EQ(a[2].flags, EV_ERROR);
	CHECK_EQ(a[2].data, 0);
	CHECK(user_exists_delete(kq, 91));
	CHECK(user_exists_delete(kq, 93));

	/* Events collected into the changelist array after its changes were applied. */
	EV_SET(&a[0], 94, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
	EV_SET(&a[1], 94, EVFILT_USER, 0, NOTE_TRIGGER | NOTE_FFCOPY | 0x42, 17, NULL);
	CHECK_EQ(kevent(kq, a, 2, a, 2, &zero), 1);
	CHECK_EQ(a[0].ident, 94);
	CHECK_EQ(a[0].fflags, 0x42);
	CHECK_EQ(a[0].data, 17);
	CHECK_EQ(close(kq), 0);
}

/* 1.1 kqueue_emfile: out of descriptors -> EMFILE, and nothing half-made is left open. */
static void case_emfile(void)
{
	struct rlimit old, rl;
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
	int before = kqt_count_fds();
	int high = -1;
	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			high = fd;
	rl = old;
	rl.rlim_cur = (rlim_t)high + 2;
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
	int n = 0, kq, err = 0;
	/* Fill every free slot up to the limit, then kqueue() must fail. */
	static int fill[4096];
	while (n < 4096 && (fill[n] = open("/dev/null", O_RDONLY)) >= 0)
		n++;
	errno = 0;
	kq = kqueue();
	err = errno;
	for (int i = 0; i < n; i++)
		close(fill[i]);
	setrlimit(RLIMIT_NOFILE, &old);
	if (kq >= 0)
		close(kq);
	CHECK_EQ(kq, -1);
	CHECK_EQ(err, EMFILE);
	CHECK_EQ(kqt_count_fds(), before);
	/* And kqueue() works again. */
	kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(close(kq), 0);
}

int main(void)
{
	kqt_watchdog(30);
	/* First, before any kqueue was closed: kqueue() reclaims the descriptors of closed
	 * kqueues it has not noticed yet when descriptors run out. */
	kqt_run("1.1", "kqueue_emfile", case_emfile);
	kqt_run("G1", "kqueue", case_g1);
	kqt_run("G2", "close", case_g2);
	kqt_run("G3", "bad_kq_fd", case_g3);
	kqt_run("CAPI", "negative_counts", case_negative_counts);
	kqt_run("CAPI", "null_lists_efault", case_null_lists);
	kqt_run("CAPI", "bad_pointers_efault", case_bad_pointers);
	kqt_run("G4", "invalid_timeout", case_g4);
	kqt_run("G5", "poll_timeout_zero", case_g5);
	kqt_run("G6", "relative_timeout", case_g6);
	kqt_run("G8", "unknown_filter", case_g8);
	kqt_run("G10", "enoent_ops", case_g10);
	kqt_run("U8", "trigger_unknown", case_u8);
	kqt_run("U9", "trigger_unknown_errslot", case_u9);
	kqt_run("G12", "errors_continue", case_g12);
	kqt_run("G13", "errors_no_room_abort", case_g13);
	kqt_run("G14", "receipt_batch", case_g14);
	kqt_run("G15", "receipt_no_room", case_g15);
	kqt_run("G16", "sysflags_stripped", case_g16);
	kqt_run("G17", "same_array_in_out", case_g17);
	return kqt_done();
}
