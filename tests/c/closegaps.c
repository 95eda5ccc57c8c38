/*
 * The interposed close(), dup(), dup2() and dup3() of kqueue numbers in the hard cases:
 *   G2:  close() by a thread with a cancellation pending (the C library acts on it before
 *        closing: the kqueue, its number and the knotes on it stay), cancellation arriving
 *        at any moment of close(), deferred and asynchronous (nothing aborts or hangs, a
 *        number left open is still its kqueue); close() from a signal handler while the
 *        thread is inside the library (the number is no kqueue once the handler is done,
 *        nothing is left behind);
 *   U35: copies made by dup(), dup2() and dup3() are not inherited by a fork() made right
 *        after, before any kevent() on them; kqueue()/close() cycles with copies, threads
 *        and forks alongside leave the descriptor count where it was;
 *   G3:  a kevent() on the number of a closed kqueue that one of the library's own
 *        descriptors took fails with EBADF and ties nothing to it; close() racing with
 *        kevent() and with other threads taking the numbers;
 *   G29: a signal handler closes the kqueue its thread waits in: the wait ends.
 * Every case runs in both personalities.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* The personality of a run: KQUEUE_PERSONALITY is set once, before any thread starts
 * (setenv() racing the library's getenv() in kqueue(), or a fork(), is the program's bug),
 * and every kqueue of the run is made with a plain kqueue(). */

/* Open descriptors that are anonymous inodes (epoll, eventfd, timerfd, inotify,
 * signalfd): the kind the library makes. */
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

static int is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/* A kqueue with user event 1 (EV_CLEAR) triggered and pending, its udata tag. */
static int tagged_kqueue(void *tag)
{
	int kq = kqueue();
	if (kq < 0)
		return -1;
	if (kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, tag) != 0 ||
	    kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, tag) != 0) {
		close(kq);
		return -1;
	}
	return kq;
}

/* A thread blocked in kevent(kq) with no timeout. */
struct blocked {
	int kq;
	volatile int started;
	volatile int done;
	int rc, err;
	struct kevent ev;
	pthread_t t;
};

static void *blocked_main(void *arg)
{
	struct blocked *b = arg;
	b->started = 1;
	b->rc = kevent(b->kq, NULL, 0, &b->ev, 1, NULL);
	b->err = errno;
	__atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int start_blocked(struct blocked *b, int kq)
{
	memset(b, 0, sizeof *b);
	b->kq = kq;
	b->rc = 12345;
	if (pthread_create(&b->t, NULL, blocked_main, b) != 0)
		return -1;
	while (!b->started)
		kqt_sleep_ms(1);
	kqt_sleep_ms(20); /* let it reach its wait (either way is fine) */
	return 0;
}

/* ---- G2: close() and cancellation ---- */

static void *pending_cancel_close_main(void *arg)
{
	pthread_cancel(pthread_self());
	close(*(int *)arg); /* a cancellation point: the pending request acts here */
	return NULL;
}

/*
 * G2 close(kq) with a cancellation pending: the C library acts on it before it closes the
 * descriptor (POSIX leaves a cancelled close()'s descriptor open or closed).  If it is
 * still open, it is still the kqueue, for every thread: a sleeper gets an event triggered
 * afterwards, a kqueue watching the number still has its knote, and the later close()
 * works as a first one would (EBADF for the sleeper, the knote gone, no descriptor left).
 */
static void case_pending_cancel_close(void)
{
	struct blocked b;
	struct kevent ev[4];
	void *res;
	pthread_t t;
	int before = kqt_count_fds(), anon = count_anon();
	int kq = tagged_kqueue(NULL);
	CHECK(kq >= 0);
	int watcher = kqueue();
	CHECK(watcher >= 0);
	CHECK_EQ(kqt_change(watcher, kq, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(watcher, ev, 4), 1);
	CHECK_EQ(kqt_poll(kq, ev, 4), 1); /* user event 1 collected */

	CHECK_EQ(pthread_create(&t, NULL, pending_cancel_close_main, &kq), 0);
	CHECK_EQ(pthread_join(t, &res), 0);
	CHECK(res == PTHREAD_CANCELED);
	if (!is_open(kq)) {
		/* Closed before the request acted: POSIX allows it; nothing else to see. */
		printf("# note: the cancelled close() closed the descriptor\n");
		CHECK_ERR(kqt_poll(kq, NULL, 0), EBADF);
		CHECK_EQ(close(watcher), 0);
		CHECK_EQ(kqt_count_fds(), before);
		CHECK_EQ(count_anon(), anon);
		return;
	}
	/* Still the kqueue, with its knotes, and still watched. */
	CHECK_EQ(start_blocked(&b, kq), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(pthread_join(b.t, NULL), 0); /* the watchdog catches a hang */
	CHECK_EQ(b.rc, 1);
	CHECK_EQ(b.ev.ident, 1);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(watcher, ev, 4), 1);
	CHECK_EQ(ev[0].ident, kq);
	CHECK_EQ(ev[0].filter, EVFILT_READ);
	/* Now a close that happens. */
	CHECK_EQ(kqt_poll(kq, ev, 4), 1); /* leave the sleeper nothing */
	CHECK_EQ(start_blocked(&b, kq), 0);
	CHECK_EQ(close(kq), 0);
	CHECK_EQ(pthread_join(b.t, NULL), 0);
	CHECK_EQ(b.rc, -1);
	CHECK_EQ(b.err, EBADF);
	CHECK_ERR(kqt_poll(kq, NULL, 0), EBADF);
	CHECK_EQ(kqt_poll(watcher, ev, 4), 0);
	CHECK_EQ(close(watcher), 0);
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

/* The closer of the cancellation races: closes each kqueue of the list in turn. */
struct closer_list {
	int *kqs;
	int n;
	int async;
	volatile int ready;
};

static void *closer_list_main(void *arg)
{
	struct closer_list *c = arg;
	if (c->async)
		pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, NULL);
	c->ready = 1;
	for (int i = 0; i < c->n; i++)
		close(c->kqs[i]);
	if (c->async)
		pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, NULL);
	for (;;)
		pause(); /* a cancellation point */
	return NULL;
}

/*
 * Cancellation at any moment of a run of close() calls on kqueue numbers: nothing aborts
 * or hangs; each number is closed (EBADF) or still its kqueue, with its pending event;
 * once those are closed too, no descriptor is left.
 */
static void cancel_close_race(int async)
{
	enum { N = 48, ROUNDS = 60 };
	int kqs[N];
	int before = kqt_count_fds(), anon = count_anon();
	unsigned seed = 4321;
	for (int round = 0; round < ROUNDS; round++) {
		for (int i = 0; i < N; i++) {
			kqs[i] = tagged_kqueue((void *)(intptr_t)(i + 1));
			CHECK(kqs[i] >= 0);
		}
		struct closer_list c = { kqs, N, async, 0 };
		pthread_t t;
		CHECK_EQ(pthread_create(&t, NULL, closer_list_main, &c), 0);
		while (!c.ready)
			sched_yield();
		seed = seed * 1103515245u + 12345u;
		for (unsigned spin = (seed >> 16) % 4000; spin > 0; spin--)
			__asm__ __volatile__("" ::: "memory");
		pthread_cancel(t);
		CHECK_EQ(pthread_join(t, NULL), 0);
		for (int i = 0; i < N; i++) {
			if (is_open(kqs[i])) {
				struct kevent ev;
				CHECK_EQ(kqt_poll(kqs[i], &ev, 1), 1);
				CHECK_EQ(ev.ident, 1);
				CHECK_EQ((intptr_t)ev.udata, i + 1);
				CHECK_EQ(close(kqs[i]), 0);
			}
			CHECK_ERR(kqt_poll(kqs[i], NULL, 0), EBADF);
		}
	}
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

/* G2 close() of kqueue numbers, deferred cancellation arriving at any moment. */
static void case_deferred_cancel_race(void)
{
	cancel_close_race(0);
}

/* G2 close() of kqueue numbers, asynchronous cancellation arriving at any moment. */
static void case_async_cancel_race(void)
{
	cancel_close_race(1);
}

/* ---- U35: copies and fork ---- */

/* In a fork child: none of the numbers is open, and no anonymous inode (the program
 * makes none itself: kqueue numbers and library descriptors are all such). */
static int child_has_none(const int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0 && is_open(fds[i]))
			return 10 + i;
	if (count_anon() != 0)
		return 9;
	return 0;
}

static int fork_check(const int *fds, int n)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0)
		_exit(child_has_none(fds, n));
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/*
 * U35 copies of a kqueue number made by dup(), dup2() and dup3(), and a fork() right
 * after, before any kevent() on them: the child has none of the numbers open.  The
 * parent's copies all work, and the kqueue lives until the last is closed.
 */
static void case_copies_not_inherited(void)
{
	struct kevent ev;
	int before = kqt_count_fds(), anon = count_anon();
	int kq = tagged_kqueue(NULL);
	CHECK(kq >= 0);
	int fds[4];
	fds[0] = kq;
	fds[1] = dup(kq);
	CHECK(fds[1] >= 0);
	fds[2] = dup2(kq, 700);
	CHECK_EQ(fds[2], 700);
	fds[3] = dup3(fds[1], 701, O_CLOEXEC);
	CHECK_EQ(fds[3], 701);
	CHECK_EQ(fork_check(fds, 4), 0);
	/* Each copy is the kqueue. */
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(kqt_user(fds[i], 10 + i, EV_ADD, NOTE_TRIGGER, 0, NULL), 0);
		CHECK_EQ(kqt_user(fds[i], 10 + i, EV_DELETE, 0, 0, NULL), 0);
	}
	/* Closed one by one, the kqueue lives on in the others. */
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(kqt_user(fds[3], 1, 0, NOTE_TRIGGER, 0, NULL), 0);
		CHECK_EQ(kqt_poll(fds[i], &ev, 1), 1);
		CHECK_EQ(ev.ident, 1);
		CHECK_EQ(close(fds[i]), 0);
		CHECK_ERR(kqt_poll(fds[i], NULL, 0), EBADF);
	}
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

/*
 * U35 dup2()/dup3() of a kqueue number over another kqueue's number, and over a number
 * of the same kqueue: the number is the first kqueue's from then on (the other kqueue
 * lives on in its own number); a fork right after leaves the child none of them.
 */
static void case_copy_over_kqueue_number(void)
{
	struct kevent ev;
	int before = kqt_count_fds(), anon = count_anon();
	int a = tagged_kqueue((void *)1);
	int b = tagged_kqueue((void *)2);
	CHECK(a >= 0 && b >= 0);
	int b2 = dup(b);
	CHECK(b2 >= 0);
	int a2 = dup(a);
	CHECK(a2 >= 0);
	/* Over b's second number: b2 is a copy of a now. */
	CHECK_EQ(dup2(a, b2), b2);
	/* Over a number of the same kqueue. */
	CHECK_EQ(dup3(a2, a, O_CLOEXEC), a);
	int fds[4] = { a, a2, b, b2 };
	CHECK_EQ(fork_check(fds, 4), 0);
	CHECK_EQ(kqt_poll(b2, &ev, 1), 1);
	CHECK_EQ((intptr_t)ev.udata, 1);
	CHECK_EQ(kqt_poll(b, &ev, 1), 1);
	CHECK_EQ((intptr_t)ev.udata, 2);
	CHECK_EQ(close(a2), 0);
	CHECK_EQ(close(b2), 0);
	CHECK_EQ(kqt_user(a, 1, 0, NOTE_TRIGGER, 0, (void *)3), 0);
	CHECK_EQ(kqt_poll(a, &ev, 1), 1);
	CHECK_EQ((intptr_t)ev.udata, 3);
	CHECK_EQ(close(a), 0);
	CHECK_EQ(close(b), 0);
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

/* Threads of the cycles case. */
static volatile int cycles_stop;
static volatile int cycles_failures;
static volatile int forks_done;

static void *cycles_churn_main(void *arg)
{
	(void)arg;
	struct kevent ev;
	while (!cycles_stop) {
		int kq = tagged_kqueue(NULL);
		if (kq < 0)
			continue;
		kqt_poll(kq, &ev, 1);
		close(kq);
	}
	return NULL;
}

static void *cycles_forker_main(void *arg)
{
	(void)arg;
	while (!cycles_stop) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			/* The parent's kqueues are anonymous inodes; the child has made none. */
			_exit(count_anon() == 0 ? 0 : 1);
		}
		int st;
		if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			__atomic_add_fetch(&cycles_failures, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&forks_done, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/*
 * U35 kqueue()/close() cycles, with copies made by dup() and dup2() (over a socket) and
 * used and closed in turn, while a thread churns kqueues and another forks: no child has
 * a descriptor of the library or a kqueue number, and the parent's descriptor count ends
 * where it began.
 */
static void case_cycles_with_forks(void)
{
	int before = kqt_count_fds(), anon = count_anon();
	pthread_t churn, forker;
	cycles_stop = 0;
	cycles_failures = 0;
	forks_done = 0;
	CHECK_EQ(pthread_create(&churn, NULL, cycles_churn_main, NULL), 0);
	CHECK_EQ(pthread_create(&forker, NULL, cycles_forker_main, NULL), 0);
	for (int i = 0; i < 3000; i++) {
		int kq = kqueue();
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
	while (forks_done < 3)
		kqt_sleep_ms(1);
	cycles_stop = 1;
	pthread_join(churn, NULL);
	pthread_join(forker, NULL);
	CHECK_EQ(cycles_failures, 0);
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

/* ---- G2/G29: close() from a signal handler ---- */

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

/* The thread the signals interrupt, inside the library as much as it can be. */
static void *sig_target_main(void *arg)
{
	(void)arg;
	struct kevent ev, ch[64], out[64];
	struct timespec zero = { 0, 0 };
	int mine = kqueue();
	int other = kqueue();
	for (int i = 0; i < 64; i++)
		EV_SET(&ch[i], 100 + i, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_TRIGGER, 0, NULL);
	while (!sig_stop) {
		switch (sig_mode) {
		case 0: { /* inside kqueue() and close() of other kqueue numbers */
			int kq = tagged_kqueue(NULL);
			if (kq >= 0)
				close(kq);
			break;
		}
		case 1: /* inside kevent(): long change lists, events collected */
			kevent(mine, ch, 64, out, 64, &zero);
			break;
		case 2: /* inside kevent() that waits a little */
			kqt_wait(mine, &ev, 1, 1);
			break;
		default: { /* inside dup2() and close() of a kqueue number */
			int d = dup2(other, 900);
			if (d >= 0)
				close(d);
			break;
		}
		}
	}
	close(mine);
	close(other);
	return NULL;
}

/*
 * G2 close() of a kqueue number from a signal handler that interrupted a thread inside
 * the library (in kqueue(), kevent(), close(), dup2()): nothing deadlocks, and once the
 * handler is done the number is no kqueue any more (a pipe that takes it gives EBADF);
 * at the end no descriptor is left.  The kqueue closed is watched by another kqueue.
 */
static void case_close_in_signal_handler(void)
{
	int before = kqt_count_fds(), anon = count_anon();
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = close_in_handler;
	sa.sa_flags = SA_RESTART;
	CHECK_EQ(sigaction(SIGUSR1, &sa, &old), 0);
	int watcher = kqueue();
	CHECK(watcher >= 0);
	for (int mode = 0; mode < 4; mode++) {
		pthread_t t;
		sig_stop = 0;
		sig_mode = mode;
		sig_closed = 0;
		CHECK_EQ(pthread_create(&t, NULL, sig_target_main, NULL), 0);
		for (int i = 0; i < 1500; i++) {
			int kq = tagged_kqueue(NULL);
			CHECK(kq >= 0);
			if (i % 2)
				CHECK_EQ(kqt_change(watcher, kq, EVFILT_READ, EV_ADD, 0, 0, NULL),
					 0);
			sig_kq = kq;
			pthread_kill(t, SIGUSR1);
			while (sig_kq != -1)
				sched_yield();
			/* The number is no longer the kqueue: a pipe may take it (unless the
			 * thread's own kqueue() took it first). */
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
	/* The watcher's knotes went with the numbers. */
	struct kevent ev[8];
	CHECK_EQ(kqt_poll(watcher, ev, 8), 0);
	CHECK_EQ(close(watcher), 0);
	sigaction(SIGUSR1, &old, NULL);
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

/*
 * G29 a signal handler closes the kqueue its own thread waits in (no timeout): the wait
 * ends (EBADF, or EINTR for the signal), and no descriptor is left.
 */
static void case_handler_closes_waited_kqueue(void)
{
	int before = kqt_count_fds(), anon = count_anon();
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = close_in_handler;
	sa.sa_flags = SA_RESTART;
	CHECK_EQ(sigaction(SIGUSR1, &sa, &old), 0);
	for (int i = 0; i < 50; i++) {
		struct blocked b;
		int kq = kqueue();
		CHECK(kq >= 0);
		CHECK_EQ(start_blocked(&b, kq), 0);
		sig_kq = kq;
		pthread_kill(b.t, SIGUSR1);
		CHECK_EQ(pthread_join(b.t, NULL), 0); /* the watchdog catches a hang */
		CHECK_EQ(sig_kq, -1);
		CHECK_EQ(b.rc, -1);
		CHECK(b.err == EBADF || b.err == EINTR);
		CHECK_ERR(kqt_poll(kq, NULL, 0), EBADF);
	}
	sigaction(SIGUSR1, &old, NULL);
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

/* ---- G3: numbers taken by the library's own descriptors, races ---- */

/*
 * G3 the number of a closed kqueue number (the kqueue lives on in a copy), taken by the
 * epoll of the next kqueue the library makes: kevent() on it fails with EBADF (it is no
 * descriptor of the program), and both kqueues still close completely.
 */
static void case_number_taken_by_library(void)
{
	int before = kqt_count_fds(), anon = count_anon();
	for (int i = 0; i < 20; i++) {
		int old = kqueue();
		CHECK(old >= 0);
		int copy = dup(old);
		CHECK(copy >= 0);
		CHECK_EQ(close(old), 0);
		int kq = kqueue();
		CHECK(kq >= 0);
		if (kq == old || !is_open(old)) {
			printf("# note: the new kqueue's epoll did not take number %d\n", old);
		} else {
			CHECK_ERR(kqt_poll(old, NULL, 0), EBADF);
			CHECK_ERR(kqt_user(old, 1, EV_ADD, 0, 0, NULL), EBADF);
		}
		CHECK_EQ(kqt_poll(copy, NULL, 0), 0);
		CHECK_EQ(close(kq), 0);
		CHECK_EQ(close(copy), 0);
		CHECK_ERR(kqt_poll(kq, NULL, 0), EBADF);
		CHECK_ERR(kqt_poll(copy, NULL, 0), EBADF);
		CHECK_EQ(kqt_count_fds(), before);
	}
	CHECK_EQ(count_anon(), anon);
}

static volatile int race_stop;
static volatile long race_wrong;
static volatile uint64_t published;

/* Makes kqueues with a pending event tagged with a generation, publishes (generation,
 * number), closes them. */
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

/* kevent() on the published number: an event must come from a kqueue made no earlier. */
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
		if (n == 1 && ev.filter == EVFILT_USER &&
		    (uint32_t)(uintptr_t)ev.udata < gen) {
			fprintf(stderr, "kevent(%d): generation %u, published %u\n", kq,
				(unsigned)(uintptr_t)ev.udata, gen);
			__atomic_add_fetch(&race_wrong, 1, __ATOMIC_RELAXED);
		} else if (n == -1 && errno != EBADF) {
			fprintf(stderr, "kevent(%d): errno %d\n", kq, errno);
			__atomic_add_fetch(&race_wrong, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

/* Pipes and sockets take the numbers freed: kevent() on them fails with EBADF. */
static void *race_taker_main(void *arg)
{
	(void)arg;
	struct kevent ev, ch;
	for (long i = 0; !race_stop; i++) {
		int p[2];
		if (i % 2 ? pipe2(p, O_CLOEXEC)
			  : socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p))
			continue;
		for (int k = 0; k < 2; k++) {
			struct timespec zero = { 0, 0 };
			EV_SET(&ch, 77, EVFILT_USER, EV_ADD, 0, 0, NULL);
			errno = 0;
			if (kevent(p[k], &ch, 1, &ev, 1, &zero) != -1 || errno != EBADF) {
				fprintf(stderr, "kevent(%d) on a pipe or socket: errno %d\n", p[k],
					errno);
				__atomic_add_fetch(&race_wrong, 1, __ATOMIC_RELAXED);
			}
		}
		close(p[0]);
		close(p[1]);
	}
	return NULL;
}

/*
 * G3 close() racing with kevent() (polling and waiting) on the number and with other
 * threads taking the numbers (pipes, sockets, the library's own descriptors of new
 * kqueues): a kevent() on a number that is no kqueue fails with EBADF, no call reports an
 * event of a kqueue closed before it started, and no descriptor is left.
 */
static void case_close_races_kevent_and_reuse(void)
{
	enum { POLLERS = 3, TAKERS = 2 };
	pthread_t closer, pollers[POLLERS], takers[TAKERS];
	int before = kqt_count_fds(), anon = count_anon();
	race_stop = 0;
	race_wrong = 0;
	published = 0;
	CHECK_EQ(pthread_create(&closer, NULL, race_closer_main, NULL), 0);
	for (int i = 0; i < POLLERS; i++)
		CHECK_EQ(pthread_create(&pollers[i], NULL, race_poller_main,
					(void *)(intptr_t)(i == 0)), 0);
	for (int i = 0; i < TAKERS; i++)
		CHECK_EQ(pthread_create(&takers[i], NULL, race_taker_main, NULL), 0);
	kqt_sleep_ms(1500);
	race_stop = 1;
	pthread_join(closer, NULL);
	for (int i = 0; i < POLLERS; i++)
		pthread_join(pollers[i], NULL);
	for (int i = 0; i < TAKERS; i++)
		pthread_join(takers[i], NULL);
	CHECK_EQ(race_wrong, 0);
	CHECK_EQ(kqt_count_fds(), before);
	CHECK_EQ(count_anon(), anon);
}

static void run_all(const char *personality)
{
	setenv("KQUEUE_PERSONALITY", personality, 1);
	kqt_run_as(personality, "G2", "pending_cancel_close_keeps_kqueue",
		   case_pending_cancel_close);
	kqt_run_as(personality, "G2", "deferred_cancel_during_close", case_deferred_cancel_race);
	kqt_run_as(personality, "G2", "async_cancel_during_close", case_async_cancel_race);
	kqt_run_as(personality, "U35", "dup_dup2_dup3_copies_not_inherited",
		   case_copies_not_inherited);
	kqt_run_as(personality, "U35", "copy_over_kqueue_number_not_inherited",
		   case_copy_over_kqueue_number);
	kqt_run_as(personality, "U35", "cycles_with_copies_and_forks", case_cycles_with_forks);
	kqt_run_as(personality, "G2", "close_in_signal_handler", case_close_in_signal_handler);
	kqt_run_as(personality, "G29", "handler_closes_waited_kqueue",
		   case_handler_closes_waited_kqueue);
	kqt_run_as(personality, "G3", "number_taken_by_library_descriptor",
		   case_number_taken_by_library);
	kqt_run_as(personality, "G3", "close_races_kevent_and_reuse",
		   case_close_races_kevent_and_reuse);
	unsetenv("KQUEUE_PERSONALITY");
}

int main(void)
{
	kqt_watchdog(60);
#ifdef CLOSEGAPS_NETBSD_ABI
	run_all("netbsd");
#else
	run_all("freebsd");
	run_all("netbsd");
#endif
	return kqt_done();
}
