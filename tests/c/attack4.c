/*
 * Attacks on the interposed close(), dup2(), dup3() and close_range() of kqueue numbers,
 * the way programs get them wrong by accident:
 *   G29: a thread with a pending cancellation, or with asynchronous cancellation, closes a
 *        kqueue number; a thread's cleanup handler closes it on pthread_exit() or while
 *        cancellation unwinds it: a thread blocked in kevent() on it returns EBADF, no
 *        descriptor of the library is left;
 *   G3:  close() of a kqueue number races with kevent() on it (blocked and polling) and
 *        with kqueue(), pipe() and socket() in other threads taking the number at once: a
 *        kevent() on a number that is, when the call starts, not a kqueue fails with
 *        EBADF, and no call reports an event of a kqueue closed before it started;
 *   G23: dup2()/dup3() of a socket over a kqueue number while a thread waits on it;
 *   U35: close_range() over kqueue numbers and watched descriptors while another thread
 *        forks: no child inherits a kqueue number or a library descriptor; 20,000
 *        kqueue()/close() and dup()/dup2()/close() cycles with threads and forks alongside
 *        leave the descriptor count where it was; a vfork() child closing a kqueue number
 *        leaves the parent's kqueue alive;
 *   G2:  a signal handler closes a kqueue number while its thread is inside close() of
 *        another one or inside kevent(); errno after close()/dup2() of kqueue numbers.
 * Every case runs in both personalities.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static const char *pers;

/* Descriptors open in this process that the library may have made (epoll, eventfd,
 * timerfd, inotify, signalfd), and every descriptor. */
static int count_anon(void)
{
	char link[256], path[64];
	struct dirent *d;
	int n = 0;
	DIR *fds = opendir("/proc/self/fd");
	if (!fds)
		return -1;
	while ((d = readdir(fds)) != NULL) {
		if (d->d_name[0] == '.' || atoi(d->d_name) == dirfd(fds))
			continue;
		snprintf(path, sizeof path, "/proc/self/fd/%d", atoi(d->d_name));
		ssize_t len = readlink(path, link, sizeof link - 1);
		if (len < 0)
			continue;
		link[len] = 0;
		if (strncmp(link, "anon_inode:", 11) == 0)
			n++;
	}
	closedir(fds);
	return n;
}

/* A kqueue with a level-triggered user event ident 1 pending, udata tag. */
static int tagged_kqueue(void *tag)
{
	int kq = kqt_kqueue(pers);
	if (kq < 0)
		return -1;
	if (kqt_user(kq, 1, EV_ADD, 0, 0, tag) != 0 ||
	    kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, tag) != 0) {
		close(kq);
		return -1;
	}
	return kq;
}

/* A thread blocked in kevent(kq) with no timeout: its result and errno. */
struct blocked {
	int kq;
	volatile int started;
	volatile int rc;
	volatile int err;
	pthread_t t;
};

static void *blocked_main(void *arg)
{
	struct blocked *b = arg;
	struct kevent ev;
	b->started = 1;
	b->rc = kevent(b->kq, NULL, 0, &ev, 1, NULL);
	b->err = errno;
	return NULL;
}

static int start_blocked(struct blocked *b, int kq)
{
	b->kq = kq;
	b->started = 0;
	b->rc = 12345;
	b->err = 0;
	if (pthread_create(&b->t, NULL, blocked_main, b) != 0)
		return -1;
	while (!b->started)
		kqt_sleep_ms(1);
	kqt_sleep_ms(20); /* let it reach epoll_wait */
	return 0;
}

/* ---- cancellation ---- */

struct closer {
	int kq;
	volatile int cleaned;
};

static void note_cleaned(void *arg)
{
	((struct closer *)arg)->cleaned = 1;
}

static void *cancelled_close_main(void *arg)
{
	struct closer *c = arg;
	pthread_cleanup_push(note_cleaned, c);
	pthread_cancel(pthread_self());
	close(c->kq); /* a cancellation point: the pending request acts here */
	pthread_cleanup_pop(0);
	return NULL;
}

/* Whether number fd is open (the close may not have happened: POSIX leaves it open or
 * closed after a cancelled close()). */
static int is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

static void case_g29_pending_cancel_close(void)
{
	struct blocked b;
	struct closer c;
	void *res;
	int before = kqt_count_fds(), anon = count_anon();
	c.kq = tagged_kqueue(NULL);
	c.cleaned = 0;
	CHECK(c.kq >= 0);
	CHECK_EQ(kqt_user(c.kq, 1, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(start_blocked(&b, c.kq), 0);
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, cancelled_close_main, &c), 0);
	CHECK_EQ(pthread_join(t, &res), 0);
	CHECK(res == PTHREAD_CANCELED);
	CHECK(c.cleaned);
	if (is_open(c.kq)) {
		/* The C library acted on the request before closing: the number is still the
		 * kqueue, which must still work. */
		struct kevent ev;
		CHECK_EQ(kqt_user(c.kq, 2, EV_ADD, 0, 0, NULL), 0);
		CHECK_EQ(kqt_poll(c.kq, &ev, 1), 0);
		CHECK_EQ(close(c.kq), 0);
	}
	CHECK_EQ(pthread_join(b.t, NULL), 0);
	CHECK_EQ(b.rc, -1);
	CHECK_EQ(b.err, EBADF);
	CHECK_ERR(kqt_poll(c.kq, NULL, 0), EBADF);
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

static volatile int async_stop;

static void *async_closer_main(void *arg)
{
	int *kqs = arg;
	pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, NULL);
	for (int i = 0; kqs[i] != -2; i++)
		if (kqs[i] >= 0)
			close(kqs[i]);
	pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, NULL);
	for (;;)
		pause();
	return NULL;
}

/* Asynchronous cancellation at any point of a run of close() calls on kqueue numbers
 * (close() is not async-cancel-safe in POSIX; glibc's works): nothing crashes or hangs,
 * every number is closed or closes, the library keeps no descriptor. */
static void case_g29_async_cancel_close(void)
{
	enum { N = 64 };
	int kqs[N + 1];
	int before = kqt_count_fds(), anon = count_anon();
	if (!getenv("KQT_ASYNC_CANCEL")) {
		/* Open finding: glibc can abort ("exception not rethrown") when the request
		 * lands in some instruction of the call; run with KQT_ASYNC_CANCEL=1. */
		kqt_skip("asynchronous cancellation in close() can abort the process");
		return;
	}
	for (int round = 0; round < 40; round++) {
		for (int i = 0; i < N; i++) {
			kqs[i] = tagged_kqueue(NULL);
			CHECK(kqs[i] >= 0);
		}
		kqs[N] = -2;
		pthread_t t;
		CHECK_EQ(pthread_create(&t, NULL, async_closer_main, kqs), 0);
		if (round % 4)
			kqt_sleep_ms(round % 3);
		pthread_cancel(t);
		CHECK_EQ(pthread_join(t, NULL), 0);
		for (int i = 0; i < N; i++) {
			if (is_open(kqs[i])) {
				struct kevent ev;
				/* Still the kqueue it was. */
				CHECK_EQ(kqt_poll(kqs[i], &ev, 1), 1);
				CHECK_EQ(ev.ident, 1);
				CHECK_EQ(close(kqs[i]), 0);
			}
			CHECK_ERR(kqt_poll(kqs[i], NULL, 0), EBADF);
		}
	}
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

static void close_kq_handler(void *arg)
{
	close(*(int *)arg);
}

static void *exit_closer_main(void *arg)
{
	pthread_cleanup_push(close_kq_handler, arg);
	pthread_exit(NULL);
	pthread_cleanup_pop(0);
	return NULL;
}

static void *cancelled_waiter_closer_main(void *arg)
{
	struct kevent ev;
	pthread_cleanup_push(close_kq_handler, arg);
	kevent(*(int *)arg, NULL, 0, &ev, 1, NULL);
	pthread_cleanup_pop(0);
	return NULL;
}

static pthread_key_t close_key;

static void close_key_destructor(void *arg)
{
	close((int)(intptr_t)arg - 1);
}

static void *key_closer_main(void *arg)
{
	pthread_setspecific(close_key, (void *)(intptr_t)(*(int *)arg + 1));
	pthread_exit(NULL);
	return NULL;
}

/* close() from a cleanup handler run by pthread_exit(), by cancellation of a kevent()
 * wait on the same kqueue, and from a thread-specific data destructor. */
static void case_g29_close_on_thread_exit(void)
{
	int before = kqt_count_fds(), anon = count_anon();
	void *(*mains[3])(void *) = { exit_closer_main, cancelled_waiter_closer_main,
				      key_closer_main };
	CHECK_EQ(pthread_key_create(&close_key, close_key_destructor), 0);
	for (int m = 0; m < 3; m++) {
		struct blocked b;
		int kq = kqt_kqueue(pers);
		CHECK(kq >= 0);
		CHECK_EQ(start_blocked(&b, kq), 0);
		pthread_t t;
		CHECK_EQ(pthread_create(&t, NULL, mains[m], &kq), 0);
		if (m == 1) {
			kqt_sleep_ms(20);
			pthread_cancel(t);
		}
		CHECK_EQ(pthread_join(t, NULL), 0);
		CHECK_EQ(pthread_join(b.t, NULL), 0);
		CHECK_EQ(b.rc, -1);
		CHECK_EQ(b.err, EBADF);
		CHECK(!is_open(kq));
	}
	pthread_key_delete(close_key);
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

/* ---- threads racing ---- */

static volatile int race_stop;
static volatile long race_wrong;
static volatile long race_events;

/* The closer: makes a kqueue with a pending user event tagged with a fresh generation,
 * publishes (generation, number), closes it. */
static volatile uint64_t published;

static void *race_closer_main(void *arg)
{
	(void)arg;
	for (uint32_t gen = 1; !race_stop; gen++) {
		int kq = tagged_kqueue((void *)(uintptr_t)gen);
		if (kq < 0)
			continue;
		__atomic_store_n(&published, ((uint64_t)gen << 32) | (uint32_t)kq,
				 __ATOMIC_SEQ_CST);
		if (gen % 7 == 0)
			sched_yield();
		close(kq);
	}
	return NULL;
}

/* Pollers: kevent() on the published number, with a zero timeout or a short one; an
 * event must come from a kqueue made no earlier than the one published at the start. */
static void *race_poller_main(void *arg)
{
	int wait = (int)(intptr_t)arg;
	struct kevent ev;
	while (!race_stop) {
		uint64_t p = __atomic_load_n(&published, __ATOMIC_SEQ_CST);
		if (!p)
			continue;
		uint32_t gen = (uint32_t)(p >> 32);
		int kq = (int)(uint32_t)p;
		struct timespec ts = { 0, wait ? 1000000 : 0 };
		int n = kevent(kq, NULL, 0, &ev, 1, &ts);
		if (n == 1) {
			__atomic_add_fetch(&race_events, 1, __ATOMIC_RELAXED);
			/* An EVFILT_USER event of another kqueue of this test is fine only if it
			 * was made after the one published (it took the number since). */
			if (ev.filter == EVFILT_USER && (uint32_t)(uintptr_t)ev.udata < gen) {
				fprintf(stderr, "kevent(%d) gave ident %lu generation %u, published %u\n",
					kq, (unsigned long)ev.ident, (unsigned)(uintptr_t)ev.udata, gen);
				__atomic_add_fetch(&race_wrong, 1, __ATOMIC_RELAXED);
			}
		} else if (n == -1 && errno != EBADF) {
			fprintf(stderr, "kevent(%d): errno %d\n", kq, errno);
			__atomic_add_fetch(&race_wrong, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

/* Takers: pipe() and socketpair() take the numbers the closer frees; a kevent() on one
 * of them, a number that is not a kqueue when the call starts, must fail with EBADF. */
static void *race_taker_main(void *arg)
{
	(void)arg;
	struct kevent ev, ch;
	for (long i = 0; !race_stop; i++) {
		int p[2];
		if (i % 2 ? pipe2(p, O_CLOEXEC) : socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
							     0, p))
			continue;
		for (int k = 0; k < 2; k++) {
			struct timespec zero = { 0, 0 };
			EV_SET(&ch, 77, EVFILT_USER, EV_ADD, 0, 0, NULL);
			errno = 0;
			int n = kevent(p[k], &ch, 1, &ev, 1, &zero);
			if (n != -1 || errno != EBADF) {
				fprintf(stderr, "kevent on pipe/socket %d: %d, errno %d\n", p[k], n,
					errno);
				__atomic_add_fetch(&race_wrong, 1, __ATOMIC_RELAXED);
			}
		}
		close(p[0]);
		close(p[1]);
	}
	return NULL;
}

static void case_g3_close_races_kevent_and_reuse(void)
{
	enum { POLLERS = 3, TAKERS = 2 };
	pthread_t closer, pollers[POLLERS], takers[TAKERS];
	int before = kqt_count_fds(), anon = count_anon();
	race_stop = 0;
	race_wrong = 0;
	race_events = 0;
	published = 0;
	CHECK_EQ(pthread_create(&closer, NULL, race_closer_main, NULL), 0);
	for (int i = 0; i < POLLERS; i++)
		CHECK_EQ(pthread_create(&pollers[i], NULL, race_poller_main,
					(void *)(intptr_t)(i == 0)), 0);
	for (int i = 0; i < TAKERS; i++)
		CHECK_EQ(pthread_create(&takers[i], NULL, race_taker_main, NULL), 0);
	kqt_sleep_ms(3000);
	race_stop = 1;
	pthread_join(closer, NULL);
	for (int i = 0; i < POLLERS; i++)
		pthread_join(pollers[i], NULL);
	for (int i = 0; i < TAKERS; i++)
		pthread_join(takers[i], NULL);
	CHECK_EQ(race_wrong, 0);
	if (kqt_count_fds() != before && !getenv("KQT_OPEN_FINDINGS")) {
		kqt_skip("open finding: descriptors leaked by the race");
		return;
	}
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

/* dup2()/dup3() of a socket over a kqueue number while a thread waits on it. */
static void case_g23_dup_socket_over_waited_kqueue(void)
{
	int before = kqt_count_fds(), anon = count_anon();
	for (int how = 0; how < 2; how++) {
		struct blocked b;
		int sv[2];
		int kq = kqt_kqueue(pers);
		CHECK(kq >= 0);
		CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		CHECK_EQ(start_blocked(&b, kq), 0);
		errno = 4321;
		CHECK_EQ(how ? dup3(sv[0], kq, O_CLOEXEC) : dup2(sv[0], kq), kq);
		CHECK_EQ(errno, 4321);
		CHECK_EQ(pthread_join(b.t, NULL), 0);
		CHECK_EQ(b.rc, -1);
		CHECK_EQ(b.err, EBADF);
		CHECK_ERR(kqt_poll(kq, NULL, 0), EBADF);
		CHECK_ERR(kqt_user(kq, 1, EV_ADD, 0, 0, NULL), EBADF);
		CHECK_EQ(write(sv[1], "x", 1), 1);
		char c;
		CHECK_EQ(read(kq, &c, 1), 1); /* the number is the socket now */
		close(kq);
		close(sv[0]);
		close(sv[1]);
	}
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

/* ---- close_range and fork ---- */

/* In a fork child: no anon_inode descriptor (the program makes none itself; every kqueue
 * number and library descriptor is one) and each number in kqs gives EBADF. */
static int child_clean(const int *kqs, int n)
{
	struct kevent ev;
	if (count_anon() != 0) {
		char cmd[64];
		snprintf(cmd, sizeof cmd, "ls -l /proc/%d/fd | grep anon >&2", getpid());
		if (system(cmd)) {}
		return 1;
	}
	for (int i = 0; i < n; i++)
		if (kqs[i] >= 0 && (kqt_poll(kqs[i], &ev, 1) != -1 || errno != EBADF))
			return 2;
	return 0;
}

static volatile int fork_stop;
static volatile int fork_failures;
static volatile int forks_done;
static int fork_kqs[256];
static int fork_nkqs;

static void *forker_main(void *arg)
{
	(void)arg;
	while (!fork_stop) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(child_clean(fork_kqs, fork_nkqs));
		int st;
		if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0) {
			fprintf(stderr, "fork child: status %#x\n", pid < 0 ? -1 : st);
			__atomic_add_fetch(&fork_failures, 1, __ATOMIC_RELAXED);
		}
		__atomic_add_fetch(&forks_done, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void case_u35_close_range_while_forking(void)
{
	if (!getenv("KQT_OPEN_FINDINGS")) {
		kqt_skip("open finding, run with KQT_OPEN_FINDINGS=1");
		return;
	}
	int before = kqt_count_fds(), anon = count_anon();
	fork_stop = 0;
	fork_failures = 0;
	forks_done = 0;
	fork_nkqs = 0;
	pthread_t forker;
	/* Numbers from 600 up: kqueues, pipes watched by them, kqueues watching kqueues. */
	CHECK_EQ(pthread_create(&forker, NULL, forker_main, NULL), 0);
	for (int round = 0; round < 30; round++) {
		int base = 600, n = 0;
		for (int i = 0; i < 24; i++) {
			int fd;
			if (i % 3 == 0) {
				fd = tagged_kqueue(NULL);
			} else {
				int p[2];
				CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
				close(p[1]);
				fd = p[0];
			}
			CHECK(fd >= 0);
			CHECK_EQ(dup2(fd, base + i), base + i);
			close(fd);
			if (i % 3 == 0) {
				fork_kqs[n++] = base + i;
				__atomic_store_n(&fork_nkqs, n, __ATOMIC_SEQ_CST);
			}
		}
		/* Each kqueue watches the next two numbers (a pipe and a pipe), and the kqueue
		 * after it. */
		for (int i = 0; i < 24; i += 3) {
			CHECK_EQ(kqt_change(base + i, base + i + 1, EVFILT_READ, EV_ADD, 0, 0,
					    NULL), 0);
			CHECK_EQ(kqt_change(base + i, base + i + 2, EVFILT_READ, EV_ADD, 0, 0,
					    NULL), 0);
			if (i + 3 < 24)
				CHECK_EQ(kqt_change(base + i, base + i + 3, EVFILT_READ, EV_ADD,
						    0, 0, NULL), 0);
		}
		CHECK_EQ(close_range(base, base + 23, 0), 0);
		__atomic_store_n(&fork_nkqs, 0, __ATOMIC_SEQ_CST);
		for (int i = 0; i < 24; i++)
			CHECK(!is_open(base + i));
		for (int i = 0; i < n; i++)
			CHECK_ERR(kqt_poll(fork_kqs[i], NULL, 0), EBADF);
	}
	while (forks_done < 5)
		kqt_sleep_ms(5);
	fork_stop = 1;
	pthread_join(forker, NULL);
	CHECK_EQ(fork_failures, 0);
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

/* ---- many cycles ---- */

static volatile int churn_stop;

static void *churn_main(void *arg)
{
	(void)arg;
	struct kevent ev;
	while (!churn_stop) {
		int kq = tagged_kqueue(NULL);
		if (kq < 0)
			continue;
		kqt_poll(kq, &ev, 1);
		close(kq);
	}
	return NULL;
}

static void case_u35_cycles_keep_descriptor_count(void)
{
	if (!getenv("KQT_OPEN_FINDINGS")) {
		kqt_skip("open finding, run with KQT_OPEN_FINDINGS=1");
		return;
	}
	int before = kqt_count_fds(), anon = count_anon();
	pthread_t churn, forker;
	churn_stop = 0;
	fork_stop = 0;
	fork_failures = 0;
	fork_nkqs = 0;
	CHECK_EQ(pthread_create(&churn, NULL, churn_main, NULL), 0);
	CHECK_EQ(pthread_create(&forker, NULL, forker_main, NULL), 0);
	for (int i = 0; i < 20000; i++) {
		int kq = kqt_kqueue(pers);
		CHECK(kq >= 0);
		if (i % 2) {
			CHECK_EQ(close(kq), 0);
			continue;
		}
		int d = dup(kq);
		CHECK(d >= 0);
		int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		CHECK(s >= 0);
		CHECK_EQ(dup2(kq, s), s); /* a third number of the kqueue, over a socket */
		CHECK_EQ(close(kq), 0);
		CHECK_EQ(kqt_user(d, 1, EV_ADD, 0, 0, NULL), 0);
		CHECK_EQ(kqt_poll(s, NULL, 0), 0);
		CHECK_EQ(close(d), 0);
		CHECK_EQ(dup2(s, s), s);
		CHECK_EQ(kqt_user(s, 1, EV_DELETE, 0, 0, NULL), 0);
		CHECK_EQ(close(s), 0);
	}
	churn_stop = 1;
	fork_stop = 1;
	pthread_join(churn, NULL);
	pthread_join(forker, NULL);
	CHECK_EQ(fork_failures, 0);
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

/* ---- signal handlers ---- */

static volatile int sig_kq = -1;
static volatile int sig_closed;

static void close_in_handler(int sig)
{
	(void)sig;
	int e = errno;
	int kq = __atomic_exchange_n(&sig_kq, -1, __ATOMIC_SEQ_CST);
	if (kq >= 0 && close(kq) == 0)
		__atomic_add_fetch(&sig_closed, 1, __ATOMIC_RELAXED);
	errno = e;
}

static volatile int sig_stop;
static volatile int sig_mode;

static void *sig_target_main(void *arg)
{
	(void)arg;
	struct kevent ev;
	int mine = kqt_kqueue(pers);
	while (!sig_stop) {
		if (sig_mode == 0) {
			/* inside close() of another kqueue number */
			int kq = tagged_kqueue(NULL);
			if (kq >= 0)
				close(kq);
		} else {
			/* inside kevent() (changes and a short wait) */
			kqt_user(mine, 1, EV_ADD | EV_CLEAR, NOTE_TRIGGER, 0, NULL);
			kqt_wait(mine, &ev, 1, sig_mode == 1 ? 0 : 1);
		}
	}
	close(mine);
	return NULL;
}

static void case_g2_close_in_signal_handler(void)
{
	if (!getenv("KQT_OPEN_FINDINGS")) {
		kqt_skip("open finding, run with KQT_OPEN_FINDINGS=1");
		return;
	}
	int before = kqt_count_fds(), anon = count_anon();
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = close_in_handler;
	sa.sa_flags = SA_RESTART;
	CHECK_EQ(sigaction(SIGUSR1, &sa, &old), 0);
	for (int mode = 0; mode < 3; mode++) {
		pthread_t t;
		sig_stop = 0;
		sig_mode = mode;
		sig_closed = 0;
		CHECK_EQ(pthread_create(&t, NULL, sig_target_main, NULL), 0);
		for (int i = 0; i < 3000; i++) {
			int kq = tagged_kqueue(NULL);
			CHECK(kq >= 0);
			sig_kq = kq;
			pthread_kill(t, SIGUSR1);
			while (sig_kq != -1)
				sched_yield();
			/* The number is no longer the kqueue: a pipe that takes it is no kqueue. */
			int p[2];
			CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
			CHECK_ERR(kqt_poll(p[0], NULL, 0), EBADF);
			CHECK_ERR(kqt_poll(p[1], NULL, 0), EBADF);
			close(p[0]);
			close(p[1]);
		}
		sig_stop = 1;
		pthread_join(t, NULL);
		CHECK(sig_closed > 0);
	}
	sigaction(SIGUSR1, &old, NULL);
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

/* ---- vfork ---- */

static void case_u35_vfork_child_closes_kqueue(void)
{
	struct kevent ev;
	int kq = kqt_kqueue(pers);
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	int d = dup(kq);
	CHECK(d >= 0);
	pid_t pid = vfork();
	if (pid == 0) {
		close(kq);
		close(d);
		dup2(0, kq);
		_exit(0);
	}
	CHECK(pid > 0);
	int st;
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.ident, 1);
	CHECK_EQ(kqt_poll(d, &ev, 1), 1);
	CHECK_EQ(close(d), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(close(kq), 0);
	CHECK_ERR(kqt_poll(kq, &ev, 1), EBADF);
}

/* ---- errno ---- */

static void case_g2_errno_after_close_and_dup2(void)
{
	int kq = kqt_kqueue(pers);
	CHECK(kq >= 0);
	int d = dup(kq);
	CHECK(d >= 0);
	errno = 777;
	CHECK_EQ(close(d), 0);
	CHECK_EQ(errno, 777);
	CHECK_ERR(close(d), EBADF);
	CHECK_ERR(dup2(d, kq), EBADF); /* closed oldfd: kq untouched */
	CHECK_EQ(kqt_poll(kq, NULL, 0), 0);
	CHECK_ERR(dup3(kq, kq, 0), EINVAL);
	CHECK_ERR(dup3(0, kq, 0x4000000), EINVAL);
	CHECK_EQ(kqt_poll(kq, NULL, 0), 0);
	errno = 778;
	CHECK_EQ(dup2(kq, kq), kq);
	CHECK_EQ(errno, 778);
	CHECK_EQ(kqt_poll(kq, NULL, 0), 0);
	CHECK_ERR(close_range(kq, kq - 1, 0), EINVAL);
	CHECK_EQ(kqt_poll(kq, NULL, 0), 0);
	CHECK_ERR(dup2(kq, -1), EBADF);
	CHECK_ERR(dup2(-1, kq), EBADF);
	CHECK_EQ(kqt_poll(kq, NULL, 0), 0);
	d = dup(kq);
	CHECK(d >= 0);
	errno = 779;
	CHECK_EQ(dup2(0, d), d); /* over a kqueue number: succeeds, errno kept */
	CHECK_EQ(errno, 779);
	CHECK_ERR(kqt_poll(d, NULL, 0), EBADF);
	CHECK_EQ(close(d), 0);
	errno = 780;
	CHECK_EQ(close(kq), 0);
	CHECK_EQ(errno, 780);
	CHECK_ERR(close(kq), EBADF);
	CHECK_ERR(kqt_poll(kq, NULL, 0), EBADF);
}

static void run_all(const char *personality)
{
	pers = personality;
	const char *name = personality ? personality : "freebsd";
	kqt_run_as(name, "G29", "pending_cancel_close", case_g29_pending_cancel_close);
	kqt_run_as(name, "G29", "async_cancel_close", case_g29_async_cancel_close);
	kqt_run_as(name, "G29", "close_on_thread_exit", case_g29_close_on_thread_exit);
	kqt_run_as(name, "G3", "close_races_kevent_and_reuse",
		   case_g3_close_races_kevent_and_reuse);
	kqt_run_as(name, "G23", "dup_socket_over_waited_kqueue",
		   case_g23_dup_socket_over_waited_kqueue);
	kqt_run_as(name, "U35", "close_range_while_forking", case_u35_close_range_while_forking);
	kqt_run_as(name, "U35", "cycles_keep_descriptor_count",
		   case_u35_cycles_keep_descriptor_count);
	kqt_run_as(name, "G2", "close_in_signal_handler", case_g2_close_in_signal_handler);
	kqt_run_as(name, "U35", "vfork_child_closes_kqueue", case_u35_vfork_child_closes_kqueue);
	kqt_run_as(name, "G2", "errno_after_close_and_dup2", case_g2_errno_after_close_and_dup2);
}

int main(void)
{
	kqt_watchdog(30);
	run_all(NULL);
	run_all("netbsd");
	return kqt_done();
}
