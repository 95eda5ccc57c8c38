/*
 * Thread cancellation: kevent() is a cancellation point when it may wait (nevents > 0 and
 * a timeout that is not zero); kqueue() and the kevent() calls that cannot wait are not.
 *
 *   - a thread blocked in kevent() (NULL timeout, a long timeout, a descriptor event) is
 *     cancelled by pthread_cancel() and joined within a second; its own cleanup handlers
 *     run; the changes of the interrupted call stay applied;
 *   - a cancellation already pending when such a call starts acts before any change;
 *   - kqueue(), kevent() without an eventlist and kevent() with a zero timeout do not act
 *     on a pending cancellation (the descriptor case makes the library harvest epoll);
 *   - with cancellation disabled, a waiting kevent() runs to its timeout;
 *   - cancelled waits leak nothing: the kqueue stays usable by other threads, and closing
 *     it after many cancelled waiters gives back its descriptors.
 */
#include "kqtest.h"


/* A thread's view of one test: what it waits on and how far it got. */
struct waiter {
	int kq;
	int fd;			/* EVFILT_READ on this descriptor, or -1 for EVFILT_USER */
	int timeout_ms;		/* -1: NULL timeout */
	volatile int started;	/* set just before the kevent() call */
	volatile int returned;	/* set if kevent() returned (it must not) */
	volatile int cleaned;	/* set by the thread's cleanup handler */
};

static void mark_cleaned(void *arg)
{
	((struct waiter *)arg)->cleaned = 1;
}

/* Waits in kevent(), applying EV_ADD of user event 7 in the same call. */
static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	struct kevent ch[2], ev;
	struct timespec ts, *tsp = NULL;
	int n = 0;

	EV_SET(&ch[n++], 7, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
	if (w->fd >= 0)
		EV_SET(&ch[n++], (uintptr_t)w->fd, EVFILT_READ, EV_ADD, 0, 0, NULL);
	if (w->timeout_ms >= 0) {
		ts.tv_sec = w->timeout_ms / 1000;
		ts.tv_nsec = (w->timeout_ms % 1000) * 1000000L;
		tsp = &ts;
	}
	pthread_cleanup_push(mark_cleaned, w);
	w->started = 1;
	kevent(w->kq, ch, n, &ev, 1, tsp);
	w->returned = 1;
	pthread_cleanup_pop(0);
	return NULL;
}

/* Joins t within `ms` milliseconds; 0 on success, with the thread's result in *res. */
static int join_within(pthread_t t, long ms, void **res)
{
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	return pthread_timedjoin_np(t, res, &deadline);
}

/* Starts a waiter, lets it block, cancels it and checks it was cancelled in time. */
static void cancel_waiter(int fd, int timeout_ms)
{
	struct waiter w = { .fd = fd, .timeout_ms = timeout_ms };
	struct kevent ev;
	pthread_t t;
	void *res = NULL;

	w.kq = kqueue();
	CHECK(w.kq >= 0);
	CHECK_EQ(pthread_create(&t, NULL, waiter_main, &w), 0);
	while (!w.started)
		kqt_sleep_ms(1);
	/* Until the call has applied its change (an EV_ENABLE receipt finds the event; it
	 * does not wake the waiter), then a little longer: the thread is then in the wait. */
	for (;;) {
		struct kevent probe, receipt;
		EV_SET(&probe, 7, EVFILT_USER, EV_ENABLE | EV_RECEIPT, 0, 0, NULL);
		CHECK_EQ(kevent(w.kq, &probe, 1, &receipt, 1, NULL), 1);
		if (receipt.data == 0)
			break;
		CHECK_EQ(receipt.data, ENOENT);
		kqt_sleep_ms(1);
	}
	kqt_sleep_ms(100);
	double t0 = kqt_now_ms();
	CHECK_EQ(pthread_cancel(t), 0);
	CHECK_EQ(join_within(t, 60000, &res), 0);
	CHECK(kqt_now_ms() - t0 < 30000);
	CHECK(res == PTHREAD_CANCELED);
	CHECK(!w.returned);
	CHECK(w.cleaned);

	/* The change of the interrupted call stays applied: user event 7 exists. */
	CHECK_EQ(kqt_user(w.kq, 7, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(w.kq, &ev, 1), 1);
	CHECK_EQ(ev.ident, 7);
	CHECK_EQ(ev.filter, EVFILT_USER);
	CHECK_EQ(close(w.kq), 0);
}

/* CANCEL blocked_null_timeout */
static void case_null_timeout(void)
{
	cancel_waiter(-1, -1);
}

/* CANCEL blocked_long_timeout */
static void case_long_timeout(void)
{
	cancel_waiter(-1, 30000);
}

/* CANCEL blocked_on_descriptor */
static void case_descriptor(void)
{
	int p[2];
	CHECK_EQ(pipe(p), 0);
	cancel_waiter(p[0], -1);
	close(p[0]);
	close(p[1]);
}

/* The progress of a thread that calls kevent() with a cancellation pending. */
struct pending {
	int kq;
	int fd;
	int step;		/* how many of the calls returned */
	int results[4];
};

static void *pending_main(void *arg)
{
	struct pending *p = arg;
	struct kevent ch, ev[2];
	struct timespec zero = { 0, 0 };

	pthread_cancel(pthread_self()); /* deferred: acts at the next cancellation point */

	int kq = kqueue();
	p->results[p->step++] = kq;
	EV_SET(&ch, (uintptr_t)p->fd, EVFILT_READ, EV_ADD, 0, 0, NULL);
	p->results[p->step++] = kevent(p->kq, &ch, 1, NULL, 0, NULL);
	p->results[p->step++] = kevent(p->kq, NULL, 0, ev, 2, &zero);
	p->results[p->step++] = 0;	/* (close() is a cancellation point: main closes kq) */
	/* May wait: the cancellation acts here, before the change is applied. */
	EV_SET(&ch, 9, EVFILT_USER, EV_ADD, 0, 0, NULL);
	kevent(p->kq, &ch, 1, ev, 1, NULL);
	p->step = 100;
	return NULL;
}

/* CANCEL not_cancellation_points */
static void case_pending(void)
{
	struct pending p = { .step = 0 };
	int fds[2];
	pthread_t t;
	void *res = NULL;

	CHECK_EQ(pipe(fds), 0);
	CHECK_EQ(write(fds[1], "x", 1), 1);
	p.fd = fds[0];
	p.kq = kqueue();
	CHECK(p.kq >= 0);
	CHECK_EQ(pthread_create(&t, NULL, pending_main, &p), 0);
	CHECK_EQ(join_within(t, 5000, &res), 0);
	CHECK(res == PTHREAD_CANCELED);
	CHECK_EQ(p.step, 4);
	CHECK(p.results[0] >= 0);	/* kqueue() */
	CHECK_EQ(close(p.results[0]), 0);
	CHECK_EQ(p.results[1], 0);	/* kevent() without an eventlist */
	CHECK_EQ(p.results[2], 1);	/* kevent() with a zero timeout: the pipe */
	/* The waiting call was cancelled on entry: user event 9 was never added. */
	CHECK_ERR(kqt_user(p.kq, 9, 0, NOTE_TRIGGER, 0, NULL), ENOENT);
	CHECK_EQ(close(p.kq), 0);
	close(fds[0]);
	close(fds[1]);
}

struct disabled {
	int kq;
	int rc;
	double waited_ms;
};

static void *disabled_main(void *arg)
{
	struct disabled *d = arg;
	struct kevent ev;
	struct timespec ts = { 0, 300 * 1000000L };
	int old;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	double t0 = kqt_now_ms();
	d->rc = kevent(d->kq, NULL, 0, &ev, 1, &ts);
	d->waited_ms = kqt_now_ms() - t0;
	pthread_setcancelstate(old, NULL);
	pthread_testcancel();
	return NULL;
}

/* CANCEL disabled_runs_to_timeout */
static void case_disabled(void)
{
	struct disabled d = { .rc = -2 };
	pthread_t t;
	void *res = NULL;

	d.kq = kqueue();
	CHECK(d.kq >= 0);
	CHECK_EQ(pthread_create(&t, NULL, disabled_main, &d), 0);
	kqt_sleep_ms(100);
	CHECK_EQ(pthread_cancel(t), 0);
	CHECK_EQ(join_within(t, 5000, &res), 0);
	CHECK(res == PTHREAD_CANCELED);
	CHECK_EQ(d.rc, 0);
	CHECK(d.waited_ms >= 290);
	CHECK_EQ(close(d.kq), 0);
}

struct woken {
	int kq;
	int rc;
	struct kevent ev;
};

static void *woken_main(void *arg)
{
	struct woken *w = arg;
	w->rc = kevent(w->kq, NULL, 0, &w->ev, 1, NULL);
	return NULL;
}

/* CANCEL no_leak_after_cancel */
static void case_no_leak(void)
{
	int fds0 = kqt_count_fds();
	for (int i = 0; i < 20; i++) {
		struct waiter w = { .fd = -1, .timeout_ms = -1 };
		struct woken other = { .rc = -2 };
		pthread_t t, u;
		void *res = NULL;

		w.kq = kqueue();
		CHECK(w.kq >= 0);
		CHECK_EQ(pthread_create(&t, NULL, waiter_main, &w), 0);
		while (!w.started)
			kqt_sleep_ms(1);
		kqt_sleep_ms(5);
		CHECK_EQ(pthread_cancel(t), 0);
		CHECK_EQ(join_within(t, 1000, &res), 0);
		CHECK(res == PTHREAD_CANCELED);

		/* Another thread waits on the same kqueue and is woken as usual. */
		other.kq = w.kq;
		CHECK_EQ(pthread_create(&u, NULL, woken_main, &other), 0);
		kqt_sleep_ms(5);
		CHECK_EQ(kqt_user(w.kq, 7, 0, NOTE_TRIGGER, 0, NULL), 0);
		CHECK_EQ(join_within(u, 1000, &res), 0);
		CHECK_EQ(other.rc, 1);
		CHECK_EQ(other.ev.ident, 7);
		CHECK_EQ(close(w.kq), 0);
	}
	/* The library may give descriptors back lazily, but not hold one per kqueue. */
	int extra = 0;
	for (int tries = 0; tries < 100; tries++) {
		extra = kqt_count_fds() - fds0;
		if (extra <= 2)
			break;
		kqt_sleep_ms(10);
	}
	CHECK(extra <= 2);
}

/* The calling thread's signal mask is the program's again after a cancelled wait. */
static volatile int mask_ok = -1;

static void check_mask(void *arg)
{
	sigset_t now;
	(void)arg;
	pthread_sigmask(SIG_SETMASK, NULL, &now);
	mask_ok = !sigismember(&now, SIGUSR1) && !sigismember(&now, SIGTERM);
}

static void *mask_main(void *arg)
{
	int kq = *(int *)arg;
	struct kevent ev;
	pthread_cleanup_push(check_mask, NULL);
	kevent(kq, NULL, 0, &ev, 1, NULL);
	pthread_cleanup_pop(0);
	return NULL;
}

/* CANCEL mask_restored_for_cleanup */
static void case_mask(void)
{
	pthread_t t;
	void *res = NULL;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(pthread_create(&t, NULL, mask_main, &kq), 0);
	kqt_sleep_ms(50);
	CHECK_EQ(pthread_cancel(t), 0);
	CHECK_EQ(join_within(t, 1000, &res), 0);
	CHECK(res == PTHREAD_CANCELED);
	CHECK_EQ(mask_ok, 1);
	CHECK_EQ(close(kq), 0);
}

int main(void)
{
	kqt_watchdog(60);
	kqt_run("CANCEL", "blocked_null_timeout", case_null_timeout);
	kqt_run("CANCEL", "blocked_long_timeout", case_long_timeout);
	kqt_run("CANCEL", "blocked_on_descriptor", case_descriptor);
	kqt_run("CANCEL", "not_cancellation_points", case_pending);
	kqt_run("CANCEL", "disabled_runs_to_timeout", case_disabled);
	kqt_run("CANCEL", "no_leak_after_cancel", case_no_leak);
	kqt_run("CANCEL", "mask_restored_for_cleanup", case_mask);
	return kqt_done();
}
