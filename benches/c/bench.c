/*
 * C-ABI benchmark of libkqueue.so (this project) against the raw Linux primitives, in
 * the same run:
 *
 *   pingpong   two threads bounce a wakeup back and forth.
 *              kqueue:  one kqueue per direction, an EV_CLEAR EVFILT_USER knote in each;
 *                       send = kevent(NOTE_TRIGGER), receive = kevent(NULL timeout).
 *              raw:     one eventfd+epoll per direction; send = write(eventfd),
 *                       receive = epoll_wait(-1) + read(eventfd).
 *   trigger    one thread: fire an EV_CLEAR user event, then collect it without waiting,
 *              in two kevent() calls, and in one (the trigger in its changelist).
 *              kqueue:  kevent(NOTE_TRIGGER) + kevent(nevents 1, timeout {0,0}).
 *              raw:     write(eventfd) + epoll_wait(0) + read(eventfd).
 *   idle       10,000 idle descriptors and one ready one: both ends of 5,000 socketpairs,
 *              one of which has a byte unread.
 *              kqueue:  EVFILT_READ (level-triggered) on each; kevent(nevents 64, timeout
 *                       {0,0}) returns the ready one, with the byte count in data.
 *              raw:     the same descriptors in one epoll (EPOLLIN, level-triggered);
 *                       epoll_wait(64 events, timeout 0), and again followed by
 *                       ioctl(FIONREAD) on the ready descriptor, which is what kevent()
 *                       reports and so the like-for-like comparison.
 *   adddel     the same 10,000 descriptors.
 *              kqueue:  one kevent() with 10,000 EV_ADD EVFILT_READ changes, then one with
 *                       10,000 EV_DELETE changes.
 *              raw:     epoll_ctl(ADD) for each descriptor, then epoll_ctl(DEL) for each.
 *              Reported per descriptor (one add plus one delete).
 *   echo       TCP round trip over loopback: a client thread writes 64 bytes and waits
 *              for the reply in a blocking read; the server thread's event loop waits for
 *              the connection to be readable, reads and writes the bytes back.
 *              kqueue:  the server waits in kevent() on an EVFILT_READ knote.
 *              raw:     the server waits in epoll_wait().
 *
 * The descriptor scenarios raise RLIMIT_NOFILE to its hard limit first and use fewer than
 * 10,000 descriptors if that limit is too low, printing the count used. When the library
 * refuses EV_ADD of EVFILT_READ on a socket, their kqueue halves are skipped with a message
 * and the raw halves still run.
 *
 * Each measurement is repeated (default 5 times), the variants of a scenario interleaved
 * in rotating order so that machine noise hits them alike, and the median printed as time
 * per operation, with the ratio raw time / kqueue time (above 1: the kqueue is faster).
 *
 * Usage: bench [reps] [pingpong round trips] [trigger ops] [scenario...]
 *        (benches/c/run.sh; scenarios: pingpong trigger idle adddel echo, default all)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sys/event.h>

/* Sizes of the descriptor scenarios (the counts are per measured run). */
#define IDLE_FDS	10000	/* descriptors watched, at most */
#define FD_RESERVE	64	/* descriptors left for everything else */
#define IDLE_OPS	100000	/* scans per idle run */
#define ADDDEL_CYCLES	10	/* add+delete of every descriptor, per adddel run */
#define ECHO_ROUNDS	10000	/* round trips per echo run */
#define ECHO_BYTES	64
#define ECHO_WARMUP	100	/* untimed round trips before the clock starts */
#define WAIT_LIMIT_MS	5000	/* a wait that should be answered at once, given up after */

static void die(const char *what)
{
	fprintf(stderr, "bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void fail(const char *what)
{
	fprintf(stderr, "bench: %s\n", what);
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

static const struct timespec zero_ts = { 0, 0 };
static const struct timespec limit_ts = { WAIT_LIMIT_MS / 1000, 0 };

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

/* ---- the comparison driver -------------------------------------------------------- */

/*
 * One way of doing a scenario's operation: `run` does `n` operations on `ctx` and returns
 * the seconds per operation.
 */
struct variant {
	const char *what;
	double (*run)(void *ctx, long n);
	int kq;		/* a kqueue variant after v[0] (compared with the first raw one) */
};

/*
 * Measures v[0] (the kqueue) and v[1..nv-1] (raw Linux, except those marked kq) `reps`
 * times each, interleaved, and prints the medians and the ratios raw / kqueue: on each raw
 * line against v[0], on each further kqueue line the first raw variant's against it. With
 * `skip` set, v[0] is not run and `skip` says why.
 */
static void compare(const char *title, int reps, long n, void *ctx, const struct variant *v,
		    int nv, const char *skip)
{
	double *t = calloc((size_t)(reps * nv), sizeof *t), med[8];
	int first = skip ? 1 : 0, count = nv - first;
	if (!t || nv > 8)
		die("calloc");
	printf("%s\n", title);
	fflush(stdout);
	/* Warm-up, not measured. */
	for (int j = first; j < nv; j++)
		v[j].run(ctx, n / 10 + 1);
	/* Interleaved, starting with a different variant each round. */
	for (int r = 0; r < reps; r++)
		for (int k = 0; k < count; k++) {
			int j = first + (r + k) % count;
			t[j * reps + r] = v[j].run(ctx, n);
		}
	for (int j = first; j < nv; j++)
		med[j] = median(t + j * reps, reps);
	int raw = 1;
	while (raw < nv && v[raw].kq)
		raw++;
	for (int j = 0; j < nv; j++) {
		int kq = j == 0 || v[j].kq;
		printf("  %-6s %-53s", kq ? "kqueue" : "raw", v[j].what);
		if (j < first) {
			printf(" skipped: %s\n", skip);
			continue;
		}
		printf(" %10.1f ns/op %13.0f op/s", med[j] * 1e9, 1.0 / med[j]);
		if (j > 0 && !kq && !skip)
			printf("   ratio %.2fx", med[j] / med[0]);
		else if (j > 0 && raw < nv)
			printf("   ratio %.2fx", med[raw] / med[j]);
		printf("\n");
	}
	fflush(stdout);
	free(t);
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

static double pingpong_kq(void *ctx, long rounds)
{
	struct pong_args a;
	pthread_t t;
	int to_pong = kq_new_user(), to_ping = kq_new_user();
	(void)ctx;
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
	return dt / (double)rounds;
}

static double pingpong_efd(void *ctx, long rounds)
{
	struct pong_args a;
	pthread_t t;
	struct efd to_pong = efd_new(), to_ping = efd_new();
	(void)ctx;
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
	return dt / (double)rounds;
}

/* ---- same-thread trigger + collect ------------------------------------------------ */

static double trigger_kq(void *ctx, long ops)
{
	struct kevent ev;
	int kq = kq_new_user();
	(void)ctx;
	double t0 = now_s();
	for (long i = 0; i < ops; i++) {
		kq_fire(kq);
		if (kevent(kq, NULL, 0, &ev, 1, &zero_ts) != 1)
			fail("kevent(collect) did not return the event");
	}
	double dt = now_s() - t0;
	close(kq);
	return dt / (double)ops;
}

/* The same in one call: the trigger in the changelist, the event collected by the scan. */
static double trigger_kq_one_call(void *ctx, long ops)
{
	struct kevent c, ev;
	int kq = kq_new_user();
	(void)ctx;
	double t0 = now_s();
	for (long i = 0; i < ops; i++) {
		EV_SET(&c, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
		if (kevent(kq, &c, 1, &ev, 1, &zero_ts) != 1 || ev.ident != 1)
			fail("kevent(trigger + collect) did not return the event");
	}
	double dt = now_s() - t0;
	close(kq);
	return dt / (double)ops;
}

static double trigger_efd(void *ctx, long ops)
{
	struct efd e = efd_new();
	(void)ctx;
	double t0 = now_s();
	for (long i = 0; i < ops; i++) {
		efd_fire(e);
		if (!efd_collect(e, 0))
			fail("epoll_wait did not return the event");
	}
	double dt = now_s() - t0;
	efd_close(e);
	return dt / (double)ops;
}

/* ---- descriptors ------------------------------------------------------------------ */

/* Both ends of n/2 socketpairs; fd[1] has a byte unread (its peer fd[0] wrote it). */
struct fdset {
	int n;
	int *fd;
	int ready;
};

/* Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the soft limit in force. */
static long raise_nofile(long *hard)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		die("getrlimit(RLIMIT_NOFILE)");
	*hard = rl.rlim_max == RLIM_INFINITY ? -1 : (long)rl.rlim_max;
	if (rl.rlim_cur != rl.rlim_max) {
		struct rlimit want = rl;
		want.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl = want;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)1 << 30)
		return 1L << 30;
	return (long)rl.rlim_cur;
}

static struct fdset fdset_new(void)
{
	struct fdset s;
	long hard, soft = raise_nofile(&hard);
	long n = soft - FD_RESERVE < IDLE_FDS ? soft - FD_RESERVE : IDLE_FDS;
	n &= ~1L;
	if (n < 2)
		fail("RLIMIT_NOFILE is too low for the descriptor scenarios");
	s.n = (int)n;
	s.fd = calloc((size_t)n, sizeof *s.fd);
	if (!s.fd)
		die("calloc");
	for (int i = 0; i < s.n; i += 2)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s.fd + i) == -1)
			die("socketpair");
	if (write(s.fd[0], "x", 1) != 1)
		die("write(socketpair)");
	s.ready = s.fd[1];
	printf("descriptors: %d (both ends of %d socketpairs; RLIMIT_NOFILE %ld, hard %ld)%s\n",
	       s.n, s.n / 2, soft, hard,
	       s.n < IDLE_FDS ? ", fewer than 10,000: the hard limit is too low" : "");
	fflush(stdout);
	return s;
}

static void fdset_close(struct fdset *s)
{
	for (int i = 0; i < s->n; i++)
		close(s->fd[i]);
	free(s->fd);
}

/*
 * Registers EVFILT_READ (level-triggered) for the first n descriptors of `fd` in one
 * kevent(). Returns 0, or the errno of the failed EV_ADD.
 */
static int kq_add_reads(int kq, const int *fd, int n)
{
	struct kevent *ch = calloc((size_t)n, sizeof *ch);
	int r = 0;
	if (!ch)
		die("calloc");
	for (int i = 0; i < n; i++)
		EV_SET(&ch[i], fd[i], EVFILT_READ, EV_ADD, 0, 0, NULL);
	if (kevent(kq, ch, n, NULL, 0, NULL) == -1)
		r = errno;
	free(ch);
	return r;
}

/* "EV_ADD of EVFILT_READ on a socket failed: <error>" for a skipped kqueue half. */
static const char *skip_reason(int err)
{
	static char buf[160];
	snprintf(buf, sizeof buf, "EV_ADD of EVFILT_READ on a socket failed: %s", strerror(err));
	return buf;
}

static int epoll_with(const int *fd, int n)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep == -1)
		die("epoll_create1");
	for (int i = 0; i < n; i++) {
		struct epoll_event ee;
		memset(&ee, 0, sizeof ee);
		ee.events = EPOLLIN;
		ee.data.fd = fd[i];
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ee) == -1)
			die("epoll_ctl(ADD)");
	}
	return ep;
}

/* ---- idle descriptors, one ready ---------------------------------------------------- */

struct idle {
	struct fdset *s;
	int kq, ep;
};

static double idle_kq(void *ctx, long ops)
{
	struct idle *c = ctx;
	struct kevent ev[64];
	double t0 = now_s();
	for (long i = 0; i < ops; i++)
		if (kevent(c->kq, NULL, 0, ev, 64, &zero_ts) != 1 ||
		    ev[0].ident != (uintptr_t)c->s->ready)
			fail("idle: kevent() did not return exactly the ready descriptor");
	return (now_s() - t0) / (double)ops;
}

static double idle_epoll(void *ctx, long ops)
{
	struct idle *c = ctx;
	struct epoll_event ev[64];
	double t0 = now_s();
	for (long i = 0; i < ops; i++)
		if (epoll_wait(c->ep, ev, 64, 0) != 1 || ev[0].data.fd != c->s->ready)
			fail("idle: epoll_wait() did not return exactly the ready descriptor");
	return (now_s() - t0) / (double)ops;
}

static double idle_epoll_fionread(void *ctx, long ops)
{
	struct idle *c = ctx;
	struct epoll_event ev[64];
	int avail;
	double t0 = now_s();
	for (long i = 0; i < ops; i++)
		if (epoll_wait(c->ep, ev, 64, 0) != 1 || ioctl(ev[0].data.fd, FIONREAD, &avail) == -1 ||
		    avail != 1)
			fail("idle: epoll_wait()+FIONREAD did not find the byte");
	return (now_s() - t0) / (double)ops;
}

static void bench_idle(struct fdset *s, int reps)
{
	static const struct variant v[] = {
		{ "kevent(nevents 64, zero timeout)", idle_kq },
		{ "epoll_wait(64, 0)", idle_epoll },
		{ "epoll_wait(64, 0) + ioctl(FIONREAD) on the ready fd", idle_epoll_fionread },
	};
	struct idle c = { s, -1, -1 };
	char title[160];
	const char *skip = NULL;
	c.kq = kqueue();
	if (c.kq == -1)
		die("kqueue");
	int err = kq_add_reads(c.kq, s->fd, s->n);
	if (err) {
		skip = skip_reason(err);
	} else {
		/* The ready descriptor, with the byte count, and nothing else. */
		struct kevent ev[64];
		int n = kevent(c.kq, NULL, 0, ev, 64, &zero_ts);
		if (n != 1 || ev[0].ident != (uintptr_t)s->ready || ev[0].filter != EVFILT_READ ||
		    ev[0].data != 1)
			fail("idle: the first kevent() did not report the ready descriptor with data 1");
	}
	c.ep = epoll_with(s->fd, s->n);
	snprintf(title, sizeof title,
		 "idle descriptors: %d watched (EVFILT_READ / EPOLLIN), 1 ready", s->n);
	compare(title, reps, IDLE_OPS, &c, v, 3, skip);
	close(c.kq);
	close(c.ep);
}

/* ---- add then delete every descriptor ----------------------------------------------- */

struct adddel {
	struct fdset *s;
	struct kevent *add, *del;
	int kq, ep;
};

static double adddel_kq(void *ctx, long cycles)
{
	struct adddel *c = ctx;
	double t0 = now_s();
	for (long i = 0; i < cycles; i++) {
		if (kevent(c->kq, c->add, c->s->n, NULL, 0, NULL) == -1)
			die("adddel: kevent(EV_ADD)");
		if (kevent(c->kq, c->del, c->s->n, NULL, 0, NULL) == -1)
			die("adddel: kevent(EV_DELETE)");
	}
	return (now_s() - t0) / (double)cycles / c->s->n;
}

static double adddel_epoll(void *ctx, long cycles)
{
	struct adddel *c = ctx;
	double t0 = now_s();
	for (long i = 0; i < cycles; i++) {
		for (int k = 0; k < c->s->n; k++) {
			struct epoll_event ee;
			memset(&ee, 0, sizeof ee);
			ee.events = EPOLLIN;
			ee.data.fd = c->s->fd[k];
			if (epoll_ctl(c->ep, EPOLL_CTL_ADD, c->s->fd[k], &ee) == -1)
				die("adddel: epoll_ctl(ADD)");
		}
		for (int k = 0; k < c->s->n; k++)
			if (epoll_ctl(c->ep, EPOLL_CTL_DEL, c->s->fd[k], NULL) == -1)
				die("adddel: epoll_ctl(DEL)");
	}
	return (now_s() - t0) / (double)cycles / c->s->n;
}

static void bench_adddel(struct fdset *s, int reps)
{
	static const struct variant v[] = {
		{ "kevent(n x EV_ADD), kevent(n x EV_DELETE)", adddel_kq },
		{ "epoll_ctl(ADD) x n, epoll_ctl(DEL) x n", adddel_epoll },
	};
	struct adddel c = { s, NULL, NULL, -1, -1 };
	char title[160];
	const char *skip = NULL;
	c.add = calloc((size_t)s->n, sizeof *c.add);
	c.del = calloc((size_t)s->n, sizeof *c.del);
	if (!c.add || !c.del)
		die("calloc");
	for (int i = 0; i < s->n; i++) {
		EV_SET(&c.add[i], s->fd[i], EVFILT_READ, EV_ADD, 0, 0, NULL);
		EV_SET(&c.del[i], s->fd[i], EVFILT_READ, EV_DELETE, 0, 0, NULL);
	}
	c.kq = kqueue();
	c.ep = epoll_create1(EPOLL_CLOEXEC);
	if (c.kq == -1 || c.ep == -1)
		die("kqueue/epoll_create1");
	int err = kq_add_reads(c.kq, s->fd, 1);
	if (err)
		skip = skip_reason(err);
	else if (kevent(c.kq, c.del, 1, NULL, 0, NULL) == -1)
		die("adddel: kevent(EV_DELETE)");
	snprintf(title, sizeof title,
		 "add then delete %d descriptors, one change list each; per descriptor", s->n);
	compare(title, reps, ADDDEL_CYCLES, &c, v, 2, skip);
	close(c.kq);
	close(c.ep);
	free(c.add);
	free(c.del);
}

/* ---- TCP echo over loopback --------------------------------------------------------- */

/* A connected loopback TCP pair: *client (blocking) and *server (non-blocking). */
static void tcp_pair(int *client, int *server)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	int one = 1;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l == -1)
		die("socket");
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (struct sockaddr *)&a, sizeof a) == -1 || listen(l, 1) == -1 ||
	    getsockname(l, (struct sockaddr *)&a, &len) == -1)
		die("bind/listen on 127.0.0.1");
	*client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*client == -1 || connect(*client, (struct sockaddr *)&a, sizeof a) == -1)
		die("connect to 127.0.0.1");
	*server = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (*server == -1)
		die("accept4");
	close(l);
	setsockopt(*client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(*server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

struct echo_server {
	int conn;
	int poller;	/* the kqueue or the epoll the server waits in */
};

/* Reads what is there and writes it back; returns 0 at end of file. */
static int echo_once(int conn)
{
	char buf[4096];
	ssize_t r = read(conn, buf, sizeof buf);
	if (r == -1 && (errno == EAGAIN || errno == EINTR))
		return 1;
	if (r == -1)
		die("echo server: read");
	for (ssize_t off = 0; off < r;) {
		ssize_t w = write(conn, buf + off, (size_t)(r - off));
		if (w == -1 && errno != EAGAIN && errno != EINTR)
			die("echo server: write");
		if (w > 0)
			off += w;
	}
	return r > 0;
}

static void *echo_server_kq(void *arg)
{
	struct echo_server *s = arg;
	struct kevent ev;
	for (;;) {
		int n = kevent(s->poller, NULL, 0, &ev, 1, &limit_ts);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			die("echo server: kevent");
		if (n == 0)
			fail("echo server: no event from kevent() in 5 s");
		if (!echo_once(s->conn))
			return NULL;
	}
}

static void *echo_server_epoll(void *arg)
{
	struct echo_server *s = arg;
	struct epoll_event ev;
	for (;;) {
		int n = epoll_wait(s->poller, &ev, 1, WAIT_LIMIT_MS);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			die("echo server: epoll_wait");
		if (n == 0)
			fail("echo server: no event from epoll_wait() in 5 s");
		if (!echo_once(s->conn))
			return NULL;
	}
}

/* One round trip from the client's side: write 64 bytes, read the 64 back. */
static void echo_client_round(int fd)
{
	char out[ECHO_BYTES], in[ECHO_BYTES];
	memset(out, 'e', sizeof out);
	if (write(fd, out, sizeof out) != (ssize_t)sizeof out)
		die("echo client: write");
	for (size_t got = 0; got < sizeof in;) {
		ssize_t r = read(fd, in + got, sizeof in - got);
		if (r <= 0)
			die("echo client: read");
		got += (size_t)r;
	}
}

/* Runs `rounds` timed round trips against a server thread running `server`. */
static double echo_run(long rounds, int use_kq)
{
	struct echo_server s;
	struct timeval tv = { WAIT_LIMIT_MS / 1000, 0 };
	pthread_t t;
	int client;
	tcp_pair(&client, &s.conn);
	/* A reply that never comes fails the read instead of hanging. */
	setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (use_kq) {
		s.poller = kqueue();
		if (s.poller == -1)
			die("kqueue");
		int err = kq_add_reads(s.poller, &s.conn, 1);
		if (err) {
			errno = err;
			die("echo: kevent(EV_ADD EVFILT_READ)");
		}
	} else {
		s.poller = epoll_with(&s.conn, 1);
	}
	if ((errno = pthread_create(&t, NULL, use_kq ? echo_server_kq : echo_server_epoll, &s)))
		die("pthread_create");
	for (int i = 0; i < ECHO_WARMUP; i++)
		echo_client_round(client);
	double t0 = now_s();
	for (long i = 0; i < rounds; i++)
		echo_client_round(client);
	double dt = now_s() - t0;
	close(client);		/* the server sees end of file and returns */
	pthread_join(t, NULL);
	close(s.conn);
	close(s.poller);
	return dt / (double)rounds;
}

static double echo_kq(void *ctx, long rounds)
{
	(void)ctx;
	return echo_run(rounds, 1);
}

static double echo_epoll(void *ctx, long rounds)
{
	(void)ctx;
	return echo_run(rounds, 0);
}

static void bench_echo(int reps)
{
	static const struct variant v[] = {
		{ "server waits in kevent() (EVFILT_READ)", echo_kq },
		{ "server waits in epoll_wait()", echo_epoll },
	};
	const char *skip = NULL;
	int client, server, kq = kqueue();
	if (kq == -1)
		die("kqueue");
	tcp_pair(&client, &server);
	int err = kq_add_reads(kq, &server, 1);
	if (err)
		skip = skip_reason(err);
	close(kq);
	close(client);
	close(server);
	compare("TCP echo round trip over loopback, 64 bytes, client thread + server thread",
		reps, ECHO_ROUNDS, NULL, v, 2, skip);
}

/* ---- driver ----------------------------------------------------------------------- */

static const char *const names[] = { "pingpong", "trigger", "idle", "adddel", "echo" };

static int wanted(int argc, char **argv, int first, const char *name)
{
	if (first >= argc)
		return 1;
	for (int i = first; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct variant pingpong[] = {
		{ "kevent(NOTE_TRIGGER) / kevent(NULL timeout)", pingpong_kq },
		{ "eventfd write / epoll_wait(-1) + read", pingpong_efd },
	};
	static const struct variant trigger[] = {
		{ "kevent(NOTE_TRIGGER) + kevent(zero timeout)", trigger_kq },
		{ "kevent(NOTE_TRIGGER, nevents 1, zero timeout): one call", trigger_kq_one_call, 1 },
		{ "eventfd write + epoll_wait(0) + read", trigger_efd },
	};
	long num[3] = { 5, 50000, 500000 };
	int first = 1;
	/* Leading numbers: reps, round trips, ops; then scenario names. */
	for (int i = 0; first < argc && i < 3; i++, first++) {
		char *end;
		long v = strtol(argv[first], &end, 10);
		if (*argv[first] == '\0' || *end != '\0')
			break;
		num[i] = v;
	}
	for (int i = first; i < argc; i++) {
		int known = 0;
		for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
			known |= strcmp(argv[i], names[k]) == 0;
		if (!known)
			num[0] = 0;
	}
	int reps = (int)num[0];
	long rounds = num[1], ops = num[2];
	if (reps < 1 || rounds < 1 || ops < 1) {
		fprintf(stderr, "usage: %s [reps] [pingpong round trips] [trigger ops] "
			"[pingpong|trigger|idle|adddel|echo ...]\n", argv[0]);
		return 2;
	}
	printf("medians of %d interleaved runs; %ld round trips per ping-pong run, %ld ops per "
	       "trigger run; %ld CPUs online\n", reps, rounds, ops, sysconf(_SC_NPROCESSORS_ONLN));
	printf("ratio: raw time / kqueue time (above 1: the kqueue is faster)\n");
	if (wanted(argc, argv, first, "pingpong"))
		compare("cross-thread ping-pong (EV_CLEAR user event), per round trip",
			reps, rounds, NULL, pingpong, 2, NULL);
	if (wanted(argc, argv, first, "trigger"))
		compare("same-thread trigger+collect (EV_CLEAR user event)",
			reps, ops, NULL, trigger, 3, NULL);
	if (wanted(argc, argv, first, "idle") || wanted(argc, argv, first, "adddel")) {
		struct fdset s = fdset_new();
		if (wanted(argc, argv, first, "idle"))
			bench_idle(&s, reps);
		if (wanted(argc, argv, first, "adddel"))
			bench_adddel(&s, reps);
		fdset_close(&s);
	}
	if (wanted(argc, argv, first, "echo"))
		bench_echo(reps);
	return 0;
}
