/*
 * EVFILT_USER from C in both personalities (docs/semantics.md §4, §7.1): every case runs
 * once on a kqueue made with KQUEUE_PERSONALITY=freebsd (the C default) and once with
 * KQUEUE_PERSONALITY=netbsd; the divergences of §4.9 there are checked per personality.
 */
#include "kqtest.h"

static const char *pers;     /* "freebsd" or "netbsd" */
static int nb;               /* pers is netbsd */

/* The delivered flags for a knote stored with `flags` (docs/semantics.md §2.1). */
static unsigned short delivered(unsigned short flags)
{
	return nb ? flags : (unsigned short)(flags & ~(EV_ADD | EV_DELETE | EV_ENABLE |
						       EV_DISABLE | EV_FORCEONESHOT));
}

static int new_kq(void)
{
	return kqt_kqueue(pers);
}

static int marker_a, marker_b;

/* U1 add_and_delete */
static void case_u1(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(kqt_user(kq, 1, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	close(kq);
}

/* U2 event_wait: a triggered EV_CLEAR event, collected with a NULL timeout. */
static void case_u2(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, &marker_a), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, &marker_a), 0);
	memset(&ev, 0, sizeof ev);
	CHECK_EQ(kevent(kq, NULL, 0, &ev, 1, NULL), 1);
	CHECK_EQ(ev.ident, 1);
	CHECK_EQ(ev.filter, EVFILT_USER);
	CHECK_EQ(ev.flags, delivered(EV_ADD | EV_CLEAR));
	CHECK_EQ(ev.fflags, 0);
	CHECK_EQ(ev.data, 0);
	CHECK(ev.udata == &marker_a);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	close(kq);
}

/* U3 event_wait_keepudata: FreeBSD keeps udata with EV_KEEPUDATA; NetBSD has no such flag. */
static void case_u3(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, &marker_a), 0);
	CHECK_EQ(kqt_user(kq, 1, EV_KEEPUDATA, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK(ev.udata == (nb ? NULL : (void *)&marker_a));
	close(kq);
}

/* U6 oneshot: delivered once, then gone. */
static void case_u6(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 2, EV_ADD | EV_ONESHOT, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 2, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.ident, 2);
	CHECK_EQ(ev.flags, delivered(EV_ADD | EV_ONESHOT));
	CHECK_EQ(ev.fflags, 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_ERR(kqt_user(kq, 2, 0, NOTE_TRIGGER, 0, NULL), ENOENT);
	CHECK_ERR(kqt_user(kq, 2, EV_DELETE, 0, 0, NULL), ENOENT);
	close(kq);
}

/* U7 kqueue_EVFILT_USER (NetBSD t_kevent) */
static void case_u7(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 666, EV_ADD | EV_ENABLE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 666, 0, NOTE_FFCOPY | NOTE_TRIGGER | 8, 0, NULL), 0);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(ev.ident, 666);
	CHECK_EQ(ev.filter, EVFILT_USER);
	CHECK_EQ(ev.fflags, 8);
	close(kq);
}

/* U10 level_without_clear: reported on every call until a change with EV_CLEAR. */
static void case_u10(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(kqt_user(kq, 1, EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	close(kq);
}

/* U11 ffops: NOTE_FFCOPY / FFOR / FFAND / FFNOP and data. */
static void case_u11(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_FFCOPY | 0xABC, 7, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER | NOTE_FFOR | 0x1, 9, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.fflags, 0xABD);
	CHECK_EQ(ev.data, 9);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER | NOTE_FFAND | 0xF0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.fflags, 0xB0);
	CHECK_EQ(ev.data, 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 5, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.fflags, 0xB0);
	CHECK_EQ(ev.data, 5);
	close(kq);
}

/* U12 fflags_24bit_mask */
static void case_u12(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, 0xFFFFFFFFu, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.fflags, 0x00FFFFFF);
	close(kq);
}

/* U13 add_with_trigger: EV_ADD|NOTE_TRIGGER on a new ident does not fire (NB and FB). */
static void case_u13(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	close(kq);
}

/* U14 raw_creation_fflags: creation fflags are stored raw. */
static void case_u14(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, NOTE_FFCOPY | 5, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.fflags, 0xC0000005u);
	close(kq);
}

/* U15 trigger_and_clear_same_change: the clear wins. */
static void case_u15(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, EV_CLEAR, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	close(kq);
}

/* U19 dispatch_reenable_redelivers */
static void case_u19(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_DISPATCH, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ENABLE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	close(kq);
}

/* U20 dispatch_clear: NetBSD clears without disabling; FreeBSD does both. */
static void case_u20(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_DISPATCH | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), nb ? 1 : 0);
	close(kq);
}

/* U21 oneshot_output_values: NetBSD reports the stored values, FreeBSD 0/0. */
static void case_u21(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_ONESHOT, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER | NOTE_FFCOPY | 0x7, 3, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.fflags, nb ? 7 : 0);
	CHECK_EQ(ev.data, nb ? 3 : 0);
	close(kq);
}

/* U22 coalesce: three triggers, one record with the OR of the bits. */
static void case_u22(void)
{
	struct kevent ev[2];
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER | NOTE_FFOR | 1, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER | NOTE_FFOR | 2, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER | NOTE_FFOR | 4, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, ev, 2), 1);
	CHECK_EQ(ev[0].fflags, 7);
	CHECK_EQ(kqt_poll(kq, ev, 2), 0);
	close(kq);
}

/* U23 disabled_trigger_latched */
static void case_u23(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, EV_DISABLE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ENABLE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	close(kq);
}

/* U26 enable_disable_together: NetBSD nets to enabled, FreeBSD rejects with EINVAL. */
static void case_u26(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	if (nb) {
		CHECK_EQ(kqt_user(kq, 1, EV_ENABLE | EV_DISABLE, NOTE_TRIGGER, 0, NULL), 0);
		CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	} else {
		CHECK_ERR(kqt_user(kq, 1, EV_ENABLE | EV_DISABLE, NOTE_TRIGGER, 0, NULL), EINVAL);
		CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	}
	close(kq);
}

/* U33 receipt_on_modify: the echoed record has the masked fflags; no scan. */
static void case_u33(void)
{
	struct kevent c, ev[2];
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	EV_SET(&c, 1, EVFILT_USER, EV_RECEIPT, NOTE_TRIGGER | NOTE_FFCOPY | 0x123, 0, NULL);
	memset(ev, 0, sizeof ev);
	CHECK_EQ(kevent(kq, &c, 1, ev, 1, &(struct timespec){ 0, 0 }), 1);
	CHECK_EQ(ev[0].flags, EV_ERROR);
	CHECK_EQ(ev[0].data, 0);
	CHECK_EQ(ev[0].fflags, 0x123);
	CHECK_EQ(kqt_poll(kq, ev, 2), 1);
	CHECK_EQ(ev[0].flags & EV_ERROR, 0);
	CHECK_EQ(ev[0].fflags, 0x123);
	close(kq);
}

/* U36 big_data: INT64_MIN / INT64_MAX delivered unchanged. */
static void case_u36(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, INT64_MIN, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK(ev.data == INT64_MIN);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, INT64_MAX, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK(ev.data == INT64_MAX);
	close(kq);
}

/* G19 fifo_order: records come in activation order. */
static void case_g19(void)
{
	struct kevent ev[3];
	int kq = new_kq();
	CHECK(kq >= 0);
	for (uintptr_t i = 1; i <= 3; i++)
		CHECK_EQ(kqt_user(kq, i, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 3, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 2, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, ev, 3), 3);
	CHECK_EQ(ev[0].ident, 3);
	CHECK_EQ(ev[1].ident, 1);
	CHECK_EQ(ev[2].ident, 2);
	close(kq);
}

/* G20 level_round_robin */
static void case_g20(void)
{
	static const uintptr_t want[5] = { 10, 20, 10, 20, 10 };
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 10, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 20, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 10, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 20, 0, NOTE_TRIGGER, 0, NULL), 0);
	for (int i = 0; i < 5; i++) {
		CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
		CHECK_EQ(ev.ident, want[i]);
	}
	close(kq);
}

/* G21 nevents_limits */
static void case_g21(void)
{
	struct kevent ev[2];
	int kq = new_kq();
	CHECK(kq >= 0);
	for (uintptr_t i = 1; i <= 5; i++) {
		CHECK_EQ(kqt_user(kq, i, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
		CHECK_EQ(kqt_user(kq, i, 0, NOTE_TRIGGER, 0, NULL), 0);
	}
	CHECK_EQ(kqt_poll(kq, ev, 2), 2);
	CHECK_EQ(kqt_poll(kq, ev, 2), 2);
	CHECK_EQ(kqt_poll(kq, ev, 2), 1);
	CHECK_EQ(kqt_poll(kq, ev, 2), 0);
	close(kq);
}

/* G30 flags_echo: NetBSD echoes EV_ADD|EV_ENABLE, FreeBSD strips them. */
static void case_g30(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_ENABLE | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.flags, nb ? (EV_ADD | EV_ENABLE | EV_CLEAR) : EV_CLEAR);
	close(kq);
}

/* W13 (docs/semantics.md §4.8): add and trigger in one call, collected by that call. */
static void case_same_call(void)
{
	struct kevent c[2], ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	EV_SET(&c[0], 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
	EV_SET(&c[1], 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
	CHECK_EQ(kevent(kq, c, 2, &ev, 1, &(struct timespec){ 0, 0 }), 1);
	CHECK_EQ(ev.ident, 1);
	CHECK_EQ(ev.flags & EV_ERROR, 0);
	close(kq);
}

struct waiter {
	int kq;
	long timeout_ms;   /* < 0: NULL timeout */
	int rc;
	int err;
	struct kevent ev;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = (struct waiter *)arg;
	struct timespec ts = { w->timeout_ms / 1000, (w->timeout_ms % 1000) * 1000000L };
	w->rc = kevent(w->kq, NULL, 0, &w->ev, 1, w->timeout_ms < 0 ? NULL : &ts);
	w->err = errno;
	return NULL;
}

/* U31 cross_thread_wakeup: a trigger wakes a thread blocked with a NULL timeout. */
static void case_u31(void)
{
	pthread_t t;
	struct waiter w;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, &marker_b), 0);
	memset(&w, 0, sizeof w);
	w.kq = kq;
	w.timeout_ms = -1;
	CHECK_EQ(pthread_create(&t, NULL, waiter_main, &w), 0);
	kqt_sleep_ms(50);
	double t0 = kqt_now_ms();
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, &marker_b), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK(kqt_now_ms() - t0 < 30000.0);
	CHECK_EQ(w.rc, 1);
	CHECK_EQ(w.ev.ident, 1);
	CHECK(w.ev.udata == &marker_b);
	close(kq);
}

/* U32 many_waiters_one_edge: one EV_CLEAR trigger, four sleepers, exactly one record. */
static void case_u32(void)
{
	pthread_t t[4];
	struct waiter w[4];
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	for (int i = 0; i < 4; i++) {
		memset(&w[i], 0, sizeof w[i]);
		w[i].kq = kq;
		w[i].timeout_ms = 500;
		CHECK_EQ(pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
	}
	kqt_sleep_ms(50);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	int got = 0, timed_out = 0;
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(pthread_join(t[i], NULL), 0);
		if (w[i].rc == 1)
			got++;
		else if (w[i].rc == 0)
			timed_out++;
	}
	CHECK_EQ(got, 1);
	CHECK_EQ(timed_out, 3);
	close(kq);
}

static void run_all(const char *p)
{
	pers = p;
	nb = strcmp(p, "netbsd") == 0;
	kqt_run_as(pers, "U1", "add_and_delete", case_u1);
	kqt_run_as(pers, "U2", "event_wait", case_u2);
	kqt_run_as(pers, "U3", "keepudata", case_u3);
	kqt_run_as(pers, "U6", "oneshot", case_u6);
	kqt_run_as(pers, "U7", "kqueue_EVFILT_USER", case_u7);
	kqt_run_as(pers, "U10", "level_without_clear", case_u10);
	kqt_run_as(pers, "U11", "ffops", case_u11);
	kqt_run_as(pers, "U12", "fflags_24bit_mask", case_u12);
	kqt_run_as(pers, "U13", "add_with_trigger", case_u13);
	kqt_run_as(pers, "U14", "raw_creation_fflags", case_u14);
	kqt_run_as(pers, "U15", "trigger_and_clear", case_u15);
	kqt_run_as(pers, "U19", "dispatch_reenable", case_u19);
	kqt_run_as(pers, "U20", "dispatch_clear", case_u20);
	kqt_run_as(pers, "U21", "oneshot_output_values", case_u21);
	kqt_run_as(pers, "U22", "coalesce", case_u22);
	kqt_run_as(pers, "U23", "disabled_trigger_latched", case_u23);
	kqt_run_as(pers, "U26", "enable_disable_together", case_u26);
	kqt_run_as(pers, "U33", "receipt_on_modify", case_u33);
	kqt_run_as(pers, "U36", "big_data", case_u36);
	kqt_run_as(pers, "G19", "fifo_order", case_g19);
	kqt_run_as(pers, "G20", "level_round_robin", case_g20);
	kqt_run_as(pers, "G21", "nevents_limits", case_g21);
	kqt_run_as(pers, "G30", "flags_echo", case_g30);
	kqt_run_as(pers, "W13", "add_trigger_collect", case_same_call);
	kqt_run_as(pers, "U31", "cross_thread_wakeup", case_u31);
	kqt_run_as(pers, "U32", "many_waiters_one_edge", case_u32);
}

int main(void)
{
	kqt_watchdog(30);
	run_all("freebsd");
	run_all("netbsd");
	return kqt_done();
}
