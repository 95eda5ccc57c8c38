/*
 * C-ABI benchmark of libkqueue.so (this project) against the raw Linux primitives, in
 * the same run:
 *
 *   pingpong   two threads bounce a wakeup back and forth.
 *              kqueue:  one kqueue per direction, an EV_CLEAR EVFILT_USER knote in each;
 *                       send = kevent(NOTE_TRIGGER), receive = kevent(NULL timeout).
 *              epoll:   one eventfd+epoll per direction; send = write(eventfd),
 *                       receive = epoll_wait(-1) + read(eventfd).
 *              Reported as round trips per second.
 *   trigger    one thread: fire, then collect without waiting.
 *              kqueue:  kevent(NOTE_TRIGGER) + kevent(nevents 1, timeout {0,0}).
 *              epoll:   write(eventfd) + epoll_wait(0) + read(eventfd).
 *              Reported as operations (fire + collect) per second.
 *
 * Each measurement is repeated (default 5 times) and the median printed, with the ratio
 * kqueue / epoll (above 1: the kqueue is faster).
 *
 * Usage: bench [reps] [pingpong round trips] [trigger ops]   (benches/c/run.sh)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <sys/event.h>

static void die(const char *what)
{
	fprintf(stderr, "bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/* ---- kqueue ------------------------------------------------------------------- */

static int kq_new_user(void)
{
	struct kevent c;
	int kq = kqueue();
	if (kq == -1)
		die("kqueue");
	EV_SET(&c, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
	if (kevent(kq, &c, 1, NULL, 0, NULL) == -1)
		die("kevent(EV_ADD)");
	return kq;
}

static void kq_fire(int kq)
{
	struct kevent c;
	EV_SET(&c, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
	if (kevent(kq, &c, 1, NULL, 0, NULL) == -1)
		die("kevent(NOTE_TRIGGER)");
}

static void kq_wait(int kq)
{
	struct kevent ev;
	int n;
	do
		n = kevent(kq, NULL, 0, &ev, 1, NULL);
	while (n == 0 || (n == -1 && errno == EINTR));
	if (n == -1)
		die("kevent(wait)");
}

/* ---- eventfd + epoll -------------------------------------------------------------- */

struct efd {
	int ep;
	int fd;
};

static struct efd efd_new(void)
{
	struct efd e;
	struct epoll_event ee;
	e.ep = epoll_create1(EPOLL_CLOEXEC);
	e.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (e.ep == -1 || e.fd == -1)
		die("epoll/eventfd");
	memset(&ee, 0, sizeof ee);
	ee.events = EPOLLIN;
	if (epoll_ctl(e.ep, EPOLL_CTL_ADD, e.fd, &ee) == -1)
		die("epoll_ctl");
	return e;
}

static void efd_close(struct efd e)
{
	close(e.fd);
	close(e.ep);
}

static void efd_fire(struct efd e)
{
	uint64_t one = 1;
	if (write(e.fd, &one, sizeof one) != sizeof one)
		die("write(eventfd)");
}

/* Collects: epoll_wait (timeout_ms) then read the counter. Returns 1 if there was one. */
static int efd_collect(struct efd e, int timeout_ms)
{
	struct epoll_event out;
	uint64_t v;
	int n;
	do
		n = epoll_wait(e.ep, &out, 1, timeout_ms);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		die("epoll_wait");
	if (n == 0)
		return 0;
	if (read(e.fd, &v, sizeof v) != sizeof v)
		die("read(eventfd)");
	return 1;
}

/* ---- ping-pong -------------------------------------------------------------------- */

struct pong_args {
	long rounds;
	int kq_in, kq_out;		/* kqueue variant */
	struct efd e_in, e_out;		/* epoll variant */
};

static void *kq_ponger(void *arg)
{
	struct pong_args *a = (struct pong_args *)arg;
	for (long i = 0; i < a->rounds; i++) {
		kq_wait(a->kq_in);
		kq_fire(a->kq_out);
	}
	return NULL;
}

static void *efd_ponger(void *arg)
{
	struct pong_args *a = (struct pong_args *)arg;
	for (long i = 0; i < a->rounds; i++) {
		while (!efd_collect(a->e_in, -1))
			;
		efd_fire(a->e_out);
	}
	return NULL;
}

/* Round trips per second. */
static double pingpong_kq(long rounds)
{
	struct pong_args a;
	pthread_t t;
	int to_pong = kq_new_user(), to_ping = kq_new_user();
	a.rounds = rounds;
	a.kq_in = to_pong;
	a.kq_out = to_ping;
	if ((errno = pthread_create(&t, NULL, kq_ponger, &a)))
		die("pthread_create");
	double t0 = now_s();
	for (long i = 0; i < rounds; i++) {
		kq_fire(to_pong);
		kq_wait(to_ping);
	}
	double dt = now_s() - t0;
	pthread_join(t, NULL);
	close(to_pong);
	close(to_ping);
	return (double)rounds / dt;
}

static double pingpong_efd(long rounds)
{
	struct pong_args a;
	pthread_t t;
	struct efd to_pong = efd_new(), to_ping = efd_new();
	a.rounds = rounds;
	a.e_in = to_pong;
	a.e_out = to_ping;
	if ((errno = pthread_create(&t, NULL, efd_ponger, &a)))
		die("pthread_create");
	double t0 = now_s();
	for (long i = 0; i < rounds; i++) {
		efd_fire(to_pong);
		while (!efd_collect(to_ping, -1))
			;
	}
	double dt = now_s() - t0;
	pthread_join(t, NULL);
	efd_close(to_pong);
	efd_close(to_ping);
	return (double)rounds / dt;
}

/* ---- same-thread trigger + collect ------------------------------------------------ */

static double trigger_kq(long ops)
{
	static const struct timespec zero = { 0, 0 };
	struct kevent ev;
	int kq = kq_new_user();
	double t0 = now_s();
	for (long i = 0; i < ops; i++) {
		kq_fire(kq);
		if (kevent(kq, NULL, 0, &ev, 1, &zero) != 1)
			die("kevent(collect) did not return the event");
	}
	double dt = now_s() - t0;
	close(kq);
	return (double)ops / dt;
}

static double trigger_efd(long ops)
{
	struct efd e = efd_new();
	double t0 = now_s();
	for (long i = 0; i < ops; i++) {
		efd_fire(e);
		if (!efd_collect(e, 0))
			die("epoll_wait did not return the event");
	}
	double dt = now_s() - t0;
	efd_close(e);
	return (double)ops / dt;
}

/* ---- driver ----------------------------------------------------------------------- */

static void compare(const char *name, const char *unit, int reps, long n,
		    double (*kq_fn)(long), double (*efd_fn)(long))
{
	double *k = calloc((size_t)reps, sizeof *k), *e = calloc((size_t)reps, sizeof *e);
	if (!k || !e)
		die("calloc");
	/* Warm-up, not measured. */
	kq_fn(n / 10 + 1);
	efd_fn(n / 10 + 1);
	/* Interleave the two so that machine noise hits both alike. */
	for (int r = 0; r < reps; r++) {
		k[r] = kq_fn(n);
		e[r] = efd_fn(n);
	}
	double km = median(k, reps), em = median(e, reps);
	printf("%-28s kqueue %12.0f %s   eventfd+epoll %12.0f %s   ratio %.2fx\n",
	       name, km, unit, em, unit, km / em);
	fflush(stdout);
	free(k);
	free(e);
}

int main(int argc, char **argv)
{
	int reps = argc > 1 ? atoi(argv[1]) : 5;
	long rounds = argc > 2 ? atol(argv[2]) : 50000;
	long ops = argc > 3 ? atol(argv[3]) : 500000;
	if (reps < 1 || rounds < 1 || ops < 1) {
		fprintf(stderr, "usage: %s [reps] [pingpong round trips] [trigger ops]\n", argv[0]);
		return 2;
	}
	printf("medians of %d runs; %ld round trips per ping-pong run, %ld ops per trigger run; "
	       "%ld CPUs online\n", reps, rounds, ops, sysconf(_SC_NPROCESSORS_ONLN));
	compare("cross-thread ping-pong", "rt/s", reps, rounds, pingpong_kq, pingpong_efd);
	compare("same-thread trigger+collect", "op/s", reps, ops, trigger_kq, trigger_efd);
	return 0;
}
