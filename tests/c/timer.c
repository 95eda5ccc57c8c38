/*
 * EVFILT_TIMER from C with short timers (docs/semantics.md §5.4; cases T1/T6/T7/T10 and
 * G24 of its §7), with the header's libkqueue unit bits (NOTE_USECONDS 0x2,
 * NOTE_NSECONDS 0x4, none = ms).
 */
#include "kqtest.h"

static int marker;

/* T1 kevent_zerotimer: a 1 ms timer is accepted and fires. */
static void case_t1(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD, 0, 1, NULL), 0);
	memset(&ev, 0, sizeof ev);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(ev.ident, 1);
	CHECK_EQ(ev.filter, EVFILT_TIMER);
	CHECK(ev.data >= 1);
	CHECK_EQ(ev.flags & EV_ERROR, 0);
	close(kq);
}

/* G24 oneshot_udata: a 1 ms EV_ONESHOT timer keeps its udata and is deleted. */
static void case_g24(void)
{
	struct kevent ev;
	void *udata = (void *)(uintptr_t)0xbeefcafe;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 1, udata), 0);
	memset(&ev, 0, sizeof ev);
	CHECK_EQ(kevent(kq, NULL, 0, &ev, 1, NULL), 1);
	CHECK_EQ(ev.ident, 1);
	CHECK_EQ(ev.data, 1);
	CHECK(ev.udata == udata);
	CHECK_EQ(ev.flags & EV_ONESHOT, EV_ONESHOT);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 20), 0);
	CHECK_ERR(kqt_change(kq, 1, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), ENOENT);
	close(kq);
}

/* T7 periodic: a 10 ms timer counts expirations between reports. */
static void case_periodic(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	double t0 = kqt_now_ms();
	CHECK_EQ(kqt_change(kq, 7, EVFILT_TIMER, EV_ADD, 0, 10, &marker), 0);
	kqt_sleep_ms(105);
	double t1 = kqt_now_ms();
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	double periods = (kqt_now_ms() - t0) / 10.0;
	CHECK_EQ(ev.ident, 7);
	CHECK(ev.udata == &marker);
	/* About one expiration per 10 ms elapsed (slack for a loaded machine). */
	CHECK(ev.data >= 5 && (double)ev.data <= periods + 1.0);
	CHECK_EQ(ev.flags & EV_CLEAR, EV_CLEAR); /* relative timers are EV_CLEAR */
	/*
	 * The count was reset by the report: the next one counts the periods since (about one,
	 * more if this thread was kept off the processor meanwhile): at most one more than the
	 * periods since the poll began.
	 */
	CHECK_EQ(kqt_wait(kq, &ev, 1, 10000), 1);
	CHECK(ev.data >= 1 && (double)ev.data <= (kqt_now_ms() - t1) / 10.0 + 1.0);
	CHECK_EQ(kqt_change(kq, 7, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), 0);
	kqt_sleep_ms(25);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	close(kq);
}

/* T5-like units: NOTE_USECONDS / NOTE_NSECONDS / NOTE_SECONDS with libkqueue's bits. */
static void case_units(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	double t0 = kqt_now_ms();
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, NOTE_USECONDS, 30000, NULL),
		 0);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 60000), 1);
	CHECK_EQ(ev.ident, 1);
	double dt = kqt_now_ms() - t0;
	CHECK(dt >= 29.0 && dt < 30000.0);

	t0 = kqt_now_ms();
	CHECK_EQ(kqt_change(kq, 2, EVFILT_TIMER, EV_ADD | EV_ONESHOT, NOTE_NSECONDS, 30000000,
			    NULL), 0);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 60000), 1);
	CHECK_EQ(ev.ident, 2);
	dt = kqt_now_ms() - t0;
	CHECK(dt >= 29.0 && dt < 30000.0);

	/*
	 * One second is not 1 ms (or 1 us): nothing within 100 ms (unless this thread was kept
	 * off the processor for the second).
	 */
	t0 = kqt_now_ms();
	CHECK_EQ(kqt_change(kq, 3, EVFILT_TIMER, EV_ADD | EV_ONESHOT, NOTE_SECONDS, 1, NULL), 0);
	if (kqt_wait(kq, &ev, 1, 100) != 0)
		CHECK(kqt_now_ms() - t0 >= 999.0);
	CHECK_EQ(kqt_change(kq, 3, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), 0);
	close(kq);
}

/* T8-like absolute: NOTE_ABSOLUTE in the past fires at once. */
static void case_absolute(void)
{
	struct kevent ev;
	struct timespec now;
	int kq = kqueue();
	CHECK(kq >= 0);
	clock_gettime(CLOCK_REALTIME, &now);
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, NOTE_ABSOLUTE | NOTE_SECONDS,
			    now.tv_sec - 10, NULL), 0);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(ev.ident, 1);
	CHECK_EQ(ev.data, 1);
	/* 50 ms in the future, in milliseconds since the epoch. */
	clock_gettime(CLOCK_REALTIME, &now);
	intptr_t at = (intptr_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + 50;
	double t0 = kqt_now_ms();
	CHECK_EQ(kqt_change(kq, 2, EVFILT_TIMER, EV_ADD | EV_ONESHOT, NOTE_ABSOLUTE, at, NULL), 0);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 60000), 1);
	CHECK_EQ(ev.ident, 2);
	double dt = kqt_now_ms() - t0;
	CHECK(dt >= 40.0 && dt < 30000.0);
	close(kq);
}

/* T7 disable_and_enable: a disabled timer keeps counting; enable delivers the count. */
static void case_disabled(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	double t0 = kqt_now_ms();
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD | EV_DISABLE, 0, 10, NULL), 0);
	kqt_sleep_ms(65);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ENABLE, 0, 10, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	double periods = (kqt_now_ms() - t0) / 10.0;
	CHECK(ev.data >= 3 && (double)ev.data <= periods + 1.0);
	close(kq);
}

/* T6/T9 modify: a re-add restarts the timer and drops the count. */
static void case_readd(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD, 0, 10, NULL), 0);
	kqt_sleep_ms(45);
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD, 0, 200, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 100), 0);
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), 0);
	close(kq);
}

/* T10 invalid: negative data is EINVAL (both personalities); data 0 too on NetBSD. */
static void case_t10(void)
{
	struct kevent c, ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_ERR(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD, 0, -1, NULL), EINVAL);
	EV_SET(&c, 1, EVFILT_TIMER, EV_ADD, 0, -5, NULL);
	CHECK_EQ(kevent(kq, &c, 1, &ev, 1, &(struct timespec){ 0, 0 }), 1);
	CHECK_EQ(ev.flags, EV_ERROR);
	CHECK_EQ(ev.data, EINVAL);
	close(kq);

	kq = kqt_kqueue("netbsd");
	CHECK(kq >= 0);
	CHECK_ERR(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD, 0, 0, NULL), EINVAL);
	CHECK_ERR(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD, 0, -1, NULL), EINVAL);
	close(kq);
}

/* U30 same_ident_other_filter: USER 5 and TIMER 5 are independent knotes. */
static void case_u30(void)
{
	struct kevent ev[2];
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 5, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, 5, EVFILT_TIMER, EV_ADD, 0, 5000, NULL), 0);
	CHECK_EQ(kqt_user(kq, 5, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, ev, 2), 1);
	CHECK_EQ(ev[0].filter, EVFILT_USER);
	CHECK_EQ(kqt_user(kq, 5, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, 5, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), 0);
	close(kq);
}

int main(void)
{
	kqt_watchdog(30);
	kqt_run("T1", "kevent_zerotimer", case_t1);
	kqt_run("G24", "oneshot_udata", case_g24);
	kqt_run("T7", "periodic_count", case_periodic);
	kqt_run("T5", "units_libkqueue_bits", case_units);
	kqt_run("T8", "absolute_time", case_absolute);
	kqt_run("T7", "disabled_keeps_counting", case_disabled);
	kqt_run("T6", "readd_restarts", case_readd);
	kqt_run("T10", "invalid_data", case_t10);
	kqt_run("U30", "same_ident_other_filter", case_u30);
	return kqt_done();
}
