/*
 * 100,000 kqueue()/close() cycles leak no descriptor, thread or memory, and a kqueue()
 * that reuses a closed number starts empty (docs/semantics.md §3.2).
 */
#include "kqtest.h"

#include <sys/resource.h>

static long status_field(const char *name)
{
	char line[256];
	long v = -1;
	size_t n = strlen(name);
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, name, n) == 0 && line[n] == ':') {
			v = atol(line + n + 1);
			break;
		}
	fclose(f);
	return v;
}

/*
 * Descriptors held now beyond `base`.  A library may reclaim the descriptors of closed
 * kqueues lazily, but what it holds must stay bounded, whatever the number of cycles.
 */
#define FD_SLACK 64

/* LEAK kqueue_close_100k */
static void case_cycles(void)
{
	struct kevent ev;
	/* Warm up whatever the library sets up once per process (the timer thread too). */
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, 2, EVFILT_TIMER, EV_ADD, 0, 1000, NULL), 0);
	CHECK_EQ(close(kq), 0);

	int fds0 = kqt_count_fds();
	long threads0 = status_field("Threads");
	long rss0 = status_field("VmRSS");
	CHECK(fds0 > 0 && threads0 > 0 && rss0 > 0);
	double t0 = kqt_now_ms();
	int max_extra = 0;
	for (int i = 1; i <= 100000; i++) {
		kq = kqueue();
		CHECK(kq >= 0);
		if (i % 1000 == 0) {
			/* Some with knotes, a pending event and a timer. */
			CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
			CHECK_EQ(kqt_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
			CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
			CHECK_EQ(kqt_change(kq, 2, EVFILT_TIMER, EV_ADD, 0, 1000, NULL), 0);
		}
		CHECK_EQ(close(kq), 0);
		if (i % 10000 == 0) {
			int extra = kqt_count_fds() - fds0;
			if (extra > max_extra)
				max_extra = extra;
		}
	}
	double dt = kqt_now_ms() - t0;
	int fds1 = kqt_count_fds();
	long threads1 = status_field("Threads");
	long rss1 = status_field("VmRSS");
	printf("# 100000 cycles in %.0f ms; fds %d -> %d (at most %d extra), threads %ld -> %ld, "
	       "rss %ld -> %ld kB\n", dt, fds0, fds1, max_extra, threads0, threads1, rss0, rss1);
	CHECK(max_extra <= FD_SLACK);
	CHECK(fds1 - fds0 <= FD_SLACK);
	CHECK_EQ(threads1, threads0);
	CHECK(rss1 - rss0 < 8192);
}

/*
 * LEAK churn_near_fd_limit: with many kqueues open and a small descriptor limit,
 * kqueue()/close() cycles never fail with EMFILE: closed kqueues give their descriptors
 * back (BSD frees them at close).
 */
static void case_churn(void)
{
	enum { LIVE = 200, LIMIT = 1024, CYCLES = 5000 };
	struct rlimit old, rl;
	int live[LIVE];
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
	rl = old;
	rl.rlim_cur = LIMIT;
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
	int nlive = 0;
	for (; nlive < LIVE; nlive++) {
		live[nlive] = kqueue();
		if (live[nlive] < 0)
			break;
	}
	int used = kqt_count_fds();
	printf("# %d live kqueues use %d descriptors of %d\n", nlive, used, LIMIT);
	int failed_at = -1, err = 0;
	for (int i = 0; i < CYCLES; i++) {
		int kq = kqueue();
		if (kq < 0) {
			failed_at = i;
			err = errno;
			break;
		}
		close(kq);
	}
	for (int i = 0; i < nlive; i++)
		close(live[i]);
	setrlimit(RLIMIT_NOFILE, &old);
	if (failed_at >= 0)
		printf("# kqueue() failed after %d cycles: %s\n", failed_at, strerror(err));
	CHECK_EQ(nlive, LIVE);
	CHECK_EQ(failed_at, -1);
}

/* U34 reuse_starts_empty: every reused number is a fresh, empty kqueue. */
static void case_reuse(void)
{
	struct kevent ev;
	int prev = -1;
	for (int i = 0; i < 1000; i++) {
		int kq = kqueue();
		CHECK(kq >= 0);
		if (prev >= 0 && kq == prev)
			CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
		CHECK_EQ(kqt_user(kq, 9, EV_ADD, 0, 0, NULL), 0);
		CHECK_EQ(kqt_user(kq, 9, 0, NOTE_TRIGGER, 0, NULL), 0);
		CHECK_EQ(close(kq), 0);
		prev = kq;
	}
}

int main(void)
{
	/* 100,000 cycles take 10-50 s on a loaded 2-CPU machine. */
	kqt_watchdog(300);
	kqt_run("LEAK", "kqueue_close_100k", case_cycles);
	kqt_run("U34", "reuse_starts_empty", case_reuse);
	kqt_run("LEAK", "churn_near_fd_limit", case_churn);
	return kqt_done();
}
