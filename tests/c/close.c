/*
 * Closing a kqueue descriptor (docs/semantics.md §1.4, §3.2, §6.4): threads blocked in
 * kevent() on it return -1/EBADF (G29); its knotes are gone (U34); a kqueue() that reuses
 * the number starts empty.
 */
#include "kqtest.h"

struct sleeper {
	int kq;
	long timeout_ms; /* < 0: NULL timeout */
	int rc;
	int err;
	double woke_at;
	struct kevent ev;
};

static void *sleeper_main(void *arg)
{
	struct sleeper *s = (struct sleeper *)arg;
	struct timespec ts = { s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000000L };
	s->rc = kevent(s->kq, NULL, 0, &s->ev, 1, s->timeout_ms < 0 ? NULL : &ts);
	s->err = errno;
	s->woke_at = kqt_now_ms();
	return NULL;
}

/* Joins t, failing the case if it takes more than 2 s. */
#define JOIN_2S(t) do {							\
	struct timespec dl_;						\
	clock_gettime(CLOCK_REALTIME, &dl_);				\
	dl_.tv_sec += 2;						\
	CHECK_EQ(pthread_timedjoin_np((t), NULL, &dl_), 0);		\
} while (0)

/* G29 kq_close_wakes: a NULL-timeout sleeper gets -1/EBADF when the kqueue is closed. */
static void case_g29(void)
{
	pthread_t t;
	struct sleeper s;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	memset(&s, 0, sizeof s);
	s.kq = kq;
	s.timeout_ms = -1;
	CHECK_EQ(pthread_create(&t, NULL, sleeper_main, &s), 0);
	kqt_sleep_ms(100);
	double t0 = kqt_now_ms();
	CHECK_EQ(close(kq), 0);
	JOIN_2S(t);
	CHECK_EQ(s.rc, -1);
	CHECK_EQ(s.err, EBADF);
	CHECK(s.woke_at - t0 < 1000.0);
}

/* G29 kq_close_wakes_all: every sleeper (NULL and long timeouts) gets EBADF. */
static void case_g29_many(void)
{
	pthread_t t[3];
	struct sleeper s[3];
	static const long timeouts[3] = { -1, 10000, -1 };
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD, 0, 60000, NULL), 0);
	for (int i = 0; i < 3; i++) {
		memset(&s[i], 0, sizeof s[i]);
		s[i].kq = kq;
		s[i].timeout_ms = timeouts[i];
		CHECK_EQ(pthread_create(&t[i], NULL, sleeper_main, &s[i]), 0);
	}
	kqt_sleep_ms(100);
	CHECK_EQ(close(kq), 0);
	for (int i = 0; i < 3; i++) {
		JOIN_2S(t[i]);
		CHECK_EQ(s[i].rc, -1);
		CHECK_EQ(s[i].err, EBADF);
	}
}

/* U34 close_kq_removes: after close, a new kqueue does not know the old idents. */
static void case_u34(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, 2, EVFILT_TIMER, EV_ADD, 0, 1, NULL), 0);
	CHECK_EQ(close(kq), 0);
	int kq2 = kqueue();
	CHECK(kq2 >= 0);
	CHECK_ERR(kqt_user(kq2, 1, 0, NOTE_TRIGGER, 0, NULL), ENOENT);
	CHECK_ERR(kqt_change(kq2, 2, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), ENOENT);
	CHECK_EQ(kqt_wait(kq2, &ev, 1, 20), 0);
	CHECK_EQ(close(kq2), 0);
}

/* U34 reused_number_starts_empty: kqueue() that gets the closed number back is fresh. */
static void case_reuse(void)
{
	struct kevent ev;
	for (int round = 0; round < 50; round++) {
		int kq = kqueue();
		CHECK(kq >= 0);
		CHECK_EQ(kqt_user(kq, 7, EV_ADD, 0, 0, NULL), 0);
		CHECK_EQ(kqt_user(kq, 7, 0, NOTE_TRIGGER, 0, NULL), 0);
		CHECK_EQ(close(kq), 0);
		/* The old number is dead until reused... */
		CHECK_ERR(kqt_poll(kq, &ev, 1), EBADF);
		int kq2 = kqueue();
		CHECK(kq2 >= 0);
		/* ...and the number is normally the same one: then it must start empty. */
		CHECK_EQ(kqt_poll(kq2, &ev, 1), 0);
		CHECK_ERR(kqt_user(kq2, 7, EV_DELETE, 0, 0, NULL), ENOENT);
		if (round == 0 && kq2 != kq)
			printf("# note: kqueue() did not reuse descriptor %d (got %d)\n", kq, kq2);
		CHECK_EQ(close(kq2), 0);
	}
}

struct hammer {
	int kq;
	long ok;
	long ebadf;
	long other;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = (struct hammer *)arg;
	struct kevent ev;
	for (;;) {
		int rc = kqt_user(h->kq, 1, 0, NOTE_TRIGGER, 0, NULL);
		if (rc == 0) {
			h->ok++;
			rc = kqt_poll(h->kq, &ev, 1);
		}
		if (rc == -1 && errno == EBADF) {
			h->ebadf++;
			break;
		} else if (rc == -1) {
			h->other++;
			break;
		}
	}
	return NULL;
}

/* G29 close_during_use: closing while another thread triggers and scans: EBADF, no crash. */
static void case_close_race(void)
{
	pthread_t t;
	struct hammer h;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	memset(&h, 0, sizeof h);
	h.kq = kq;
	CHECK_EQ(pthread_create(&t, NULL, hammer_main, &h), 0);
	kqt_sleep_ms(50);
	CHECK_EQ(close(kq), 0);
	JOIN_2S(t);
	CHECK(h.ok > 0);
	CHECK_EQ(h.ebadf, 1);
	CHECK_EQ(h.other, 0);
}

int main(void)
{
	kqt_watchdog(30);
	kqt_run("G29", "kq_close_wakes", case_g29);
	kqt_run("G29", "kq_close_wakes_all", case_g29_many);
	kqt_run("U34", "close_kq_removes", case_u34);
	kqt_run("U34", "reused_number_starts_empty", case_reuse);
	kqt_run("G29", "close_during_use", case_close_race);
	return kqt_done();
}
