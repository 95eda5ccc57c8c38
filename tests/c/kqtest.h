/*
 * Tiny test harness shared by the C test programs in tests/c/.
 *
 * Each program runs named cases (one function each) and prints one line per case:
 *   ok G3 bad_kq_fd
 *   FAIL G13 errors_no_room_abort
 *   skip U37 kq_readable_on_trigger: <why>
 * A failed CHECK prints the file, line, condition and errno to stderr and returns from
 * the case.  main() returns kqt_done(): 0 when every case passed.
 *
 * A watchdog thread ends the program with status 3 if it runs for too long, so a hang
 * (a lost wakeup, a sleeper that is never woken) fails the test instead of blocking it.
 */
#ifndef KQTEST_H
#define KQTEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/epoll.h>
#include <sys/event.h>

static const char *kqt_id __attribute__((unused)) = "";
static const char *kqt_name __attribute__((unused)) = "";
static int kqt_case_failed __attribute__((unused));
static const char *kqt_case_skipped __attribute__((unused));
static int kqt_failed_cases __attribute__((unused));
static int kqt_cases __attribute__((unused));

static inline void kqt_fail(const char *file, int line, const char *what)
{
	int e = errno;
	fprintf(stderr, "%s:%d: [%s %s] CHECK failed: %s (errno %d: %s)\n",
		file, line, kqt_id, kqt_name, what, e, strerror(e));
	fflush(stderr);
	kqt_case_failed = 1;
}

/* Fails the current case (and returns from it) unless cond holds. */
#define CHECK(cond) do {						\
	if (!(cond)) {							\
		kqt_fail(__FILE__, __LINE__, #cond);			\
		return;							\
	}								\
} while (0)

/* Fails the current case unless a == b (both shown as integers). */
#define CHECK_EQ(a, b) do {						\
	long long kqt_a_ = (long long)(a), kqt_b_ = (long long)(b);	\
	if (kqt_a_ != kqt_b_) {						\
		char kqt_msg_[256];					\
		snprintf(kqt_msg_, sizeof kqt_msg_,			\
			 "%s == %s (%lld == %#llx vs %lld == %#llx)",	\
			 #a, #b, kqt_a_, (unsigned long long)kqt_a_,	\
			 kqt_b_, (unsigned long long)kqt_b_);		\
		kqt_fail(__FILE__, __LINE__, kqt_msg_);			\
		return;							\
	}								\
} while (0)

/* Fails the current case unless expr returns -1 with errno e. */
#define CHECK_ERR(expr, e) do {						\
	errno = 0;							\
	int kqt_rc_ = (expr);						\
	int kqt_errno_ = errno;						\
	if (kqt_rc_ != -1 || kqt_errno_ != (e)) {			\
		char kqt_msg_[256];					\
		snprintf(kqt_msg_, sizeof kqt_msg_,			\
			 "%s gives -1/%s (got %d, errno %d: %s)",	\
			 #expr, #e, kqt_rc_, kqt_errno_,		\
			 strerror(kqt_errno_));				\
		kqt_fail(__FILE__, __LINE__, kqt_msg_);			\
		return;							\
	}								\
} while (0)

/* When the running case began (monotonic ms), for the watchdog. */
static long long kqt_case_began __attribute__((unused));

static inline long long kqt_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs one named case: id is its name in docs/semantics.md §7 (G13, U35, ...). */
static inline void kqt_run(const char *id, const char *name, void (*fn)(void))
{
	kqt_id = id;
	kqt_name = name;
	__atomic_store_n(&kqt_case_began, kqt_clock_ms(), __ATOMIC_RELAXED);
	kqt_case_failed = 0;
	kqt_case_skipped = NULL;
	fn();
	kqt_cases++;
	if (kqt_case_failed)
		kqt_failed_cases++;
	if (kqt_case_skipped && !kqt_case_failed)
		printf("skip %s %s: %s\n", id, name, kqt_case_skipped);
	else
		printf("%s %s %s\n", kqt_case_failed ? "FAIL" : "ok", id, name);
	fflush(stdout);
}

/* Marks the current case skipped (the caller returns): printed as "skip ID name: why". */
/*
 * Runs a case with the personality in its name ("ok U2 event_wait.netbsd"), for programs
 * that run every case in both personalities.
 */
static inline void kqt_run_as(const char *personality, const char *id, const char *name,
			      void (*fn)(void))
{
	static char full[96];
	snprintf(full, sizeof full, "%s.%s", name, personality);
	kqt_run(id, full, fn);
}

static inline void kqt_skip(const char *why)
{
	kqt_case_skipped = why;
}

/* The exit status of the program. */
static inline int kqt_done(void)
{
	printf("%d cases, %d failed\n", kqt_cases, kqt_failed_cases);
	return kqt_failed_cases ? 1 : 0;
}

static __attribute__((unused)) void *kqt_watchdog_main(void *arg)
{
	long long limit = (long long)(uintptr_t)arg * 1000;
	for (;;) {
		sleep(1);
		if (kqt_clock_ms() - __atomic_load_n(&kqt_case_began, __ATOMIC_RELAXED) > limit)
			break;
	}
	fprintf(stderr, "watchdog: case %s %s still running after %lld s\n",
		kqt_id, kqt_name, limit / 1000);
	fflush(stderr);
	_exit(3);
	return NULL;
}

/*
 * Starts the watchdog: the program exits with status 3 when one case (or the program
 * before its first case) runs longer than secs seconds, a hang.  The limit is per case, so
 * that a loaded machine, which slows every case down, does not add them up.  The watchdog
 * blocks every signal, so process-directed signals (the SIGALRM of the EINTR test) go to
 * the program's own threads.
 */
static inline void kqt_watchdog(unsigned secs)
{
	sigset_t all, old;
	pthread_t t;
	__atomic_store_n(&kqt_case_began, kqt_clock_ms(), __ATOMIC_RELAXED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&t, NULL, kqt_watchdog_main, (void *)(uintptr_t)secs) != 0) {
		perror("pthread_create");
		exit(2);
	}
	pthread_detach(t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Monotonic time in milliseconds. */
static inline double kqt_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline void kqt_sleep_ms(long ms)
{
	struct timespec ts;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * A kqueue with the given personality ("freebsd", "netbsd"; NULL: the default, with
 * KQUEUE_PERSONALITY unset).  The library reads the variable in kqueue().
 */
static inline int kqt_kqueue(const char *personality)
{
	if (personality)
		setenv("KQUEUE_PERSONALITY", personality, 1);
	else
		unsetenv("KQUEUE_PERSONALITY");
	int kq = kqueue();
	unsetenv("KQUEUE_PERSONALITY");
	return kq;
}

/* Applies one change with no eventlist: kevent(kq, &c, 1, NULL, 0, NULL). */
static inline int kqt_change(int kq, uintptr_t ident, short filter, unsigned short flags,
			     unsigned int fflags, intptr_t data, void *udata)
{
	struct kevent c;
	EV_SET(&c, ident, filter, flags, fflags, data, udata);
	return kevent(kq, &c, 1, NULL, 0, NULL);
}

/* EVFILT_USER shorthand for kqt_change. */
static inline int kqt_user(int kq, uintptr_t ident, unsigned short flags,
			   unsigned int fflags, intptr_t data, void *udata)
{
	return kqt_change(kq, ident, EVFILT_USER, flags, fflags, data, udata);
}

/* Collects up to n events without waiting (timeout {0, 0}). */
static inline int kqt_poll(int kq, struct kevent *ev, int n)
{
	struct timespec zero = { 0, 0 };
	return kevent(kq, NULL, 0, ev, n, &zero);
}

/* Collects up to n events, waiting up to ms milliseconds. */
static inline int kqt_wait(int kq, struct kevent *ev, int n, long ms)
{
	struct timespec ts;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	return kevent(kq, NULL, 0, ev, n, &ts);
}

/* Number of open descriptors of this process. */
static inline int kqt_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

/* Whether poll(2) says fd is readable now. */
static inline int kqt_readable(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* An epoll instance watching fd edge-triggered for input (-1 on failure). */
static inline int kqt_edge_watcher(int fd)
{
	struct epoll_event e;
	memset(&e, 0, sizeof e);
	e.events = EPOLLIN | EPOLLET;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0) {
		close(ep);
		return -1;
	}
	return ep;
}

/* Edges waiting at epoll instance ep, waiting up to ms for one. */
static inline int kqt_edges(int ep, int ms)
{
	struct epoll_event e[4];
	return epoll_wait(ep, e, 4, ms);
}

/* Takes every edge waiting at ep. */
static inline void kqt_drain_edges(int ep)
{
	while (kqt_edges(ep, 0) > 0)
		;
}

/* One read(2) of up to n bytes (at most 256) from fd; its return value. */
static inline int kqt_take(int fd, size_t n)
{
	char buf[256];
	return (int)read(fd, buf, n < sizeof buf ? n : sizeof buf);
}

/*
 * A 50 ms wait on kq returns nothing after its timeout, having slept (less than 40 ms of
 * processor time), and leaves kq unreadable: 0; else -1, with what was seen on stderr.
 */
static inline int kqt_quiet_wait(int kq)
{
	struct kevent ev[4];
	struct timespec c0, c1;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	double t0 = kqt_now_ms();
	int n = kqt_wait(kq, ev, 4, 50);
	double waited = kqt_now_ms() - t0;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	double cpu = (double)(c1.tv_sec - c0.tv_sec) * 1e3 +
		     (double)(c1.tv_nsec - c0.tv_nsec) / 1e6;
	if (n != 0 || waited < 45 || cpu >= 40 || kqt_readable(kq)) {
		fprintf(stderr, "wait: %d events after %.1f ms, %.1f ms of processor time\n",
			n, waited, cpu);
		return -1;
	}
	return 0;
}

#endif /* KQTEST_H */
