/*
 * Attacks on "close() of a kqueue detaches its knotes at once", through the C API, the
 * way programs get it wrong by accident:
 *   G29: close() of a kqueue while threads sleep in kevent() on it and other threads
 *        apply change lists adding knotes of every filter: every thread returns EBADF,
 *        the process descriptors and inotify instances are gone when close() returns,
 *        the signal's action is the program's again, no descriptor is left;
 *   U37: close() of a kqueue watched by another while a thread triggers it: the watcher
 *        reports nothing for it afterwards; a chain of 1,000 kqueues closed in the middle,
 *        at the outside, then the rest;
 *   P2:  close() while the process monitor posts NOTE_TRACK forks and exits to it;
 *   S2:  close() while the watched signal arrives leaves the kernel's action exactly as
 *        EV_DELETE does;
 *   G3:  close() of a kqueue by a signal handler that interrupted a kevent() on another
 *        kqueue (in the middle of a long change list): no deadlock, the kqueue is closed
 *        and its number, once another file's, is no kqueue; a kqueue number closed by the
 *        raw system call, then used in kevent() with changes that make descriptors: no
 *        deadlock;
 *   U35: fork() racing close(): no child has a descriptor of the library;
 *   G2:  20,000 kqueue()/add (every filter)/close() cycles while threads do the same and
 *        the process monitor is busy: the descriptors are those of before.
 * Every case runs in both personalities.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static const char *pers;

/* ------------------------------------------------------------------------------------ */
/* Descriptors. */

struct census {
	int total, pidfd, inotify, timerfd, eventpoll, eventfd, sock;
};

static struct census census(void)
{
	struct census c;
	memset(&c, 0, sizeof c);
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	if (!d) {
		c.total = -1;
		return c;
	}
	while ((e = readdir(d)) != NULL) {
		char path[300], t[256];
		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
			continue;
		snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(path, t, sizeof t - 1);
		if (n < 0)
			continue;
		t[n] = 0;
		c.total++;
		if (!strcmp(t, "anon_inode:[pidfd]"))
			c.pidfd++;
		else if (!strcmp(t, "anon_inode:inotify"))
			c.inotify++;
		else if (!strcmp(t, "anon_inode:[timerfd]"))
			c.timerfd++;
		else if (!strcmp(t, "anon_inode:[eventpoll]"))
			c.eventpoll++;
		else if (!strcmp(t, "anon_inode:[eventfd]"))
			c.eventfd++;
		else if (!strncmp(t, "socket:", 7))
			c.sock++;
	}
	closedir(d);
	return c;
}

static int same(struct census a, struct census b)
{
	return !memcmp(&a, &b, sizeof a);
}

static void show(const char *what, struct census now, struct census base)
{
	fprintf(stderr,
		"%s: total %d pidfd %d inotify %d timerfd %d eventpoll %d eventfd %d socket %d;"
		" before: total %d pidfd %d inotify %d timerfd %d eventpoll %d eventfd %d"
		" socket %d\n",
		what, now.total, now.pidfd, now.inotify, now.timerfd, now.eventpoll, now.eventfd,
		now.sock, base.total, base.pidfd, base.inotify, base.timerfd, base.eventpoll,
		base.eventfd, base.sock);
}

/* Waits up to 30 s for the descriptors of base (the process events connector closes on
 * the monitor thread's next turn): 0, or -1 after showing the difference. */
static int settle(struct census base, const char *what)
{
	double end = kqt_now_ms() + 30000;
	struct census now = census();
	while (!same(now, base) && kqt_now_ms() < end) {
		kqt_sleep_ms(2);
		now = census();
	}
	if (same(now, base))
		return 0;
	show(what, now, base);
	return -1;
}

/* The knote descriptors a close must release before it returns. */
static int released_at_once(struct census base, const char *what)
{
	struct census now = census();
	if (now.pidfd == base.pidfd && now.inotify == base.inotify)
		return 0;
	show(what, now, base);
	return -1;
}

/* ------------------------------------------------------------------------------------ */
/* What knotes of every filter watch. */

static int pipe_r = -1, pipe_w = -1, file_fd = -1, sock_fd = -1, peer_fd = -1;
static pid_t sleeper = -1;

static int objects(void)
{
	int p[2], s[2];
	char path[] = "/tmp/kq-attack5-XXXXXX";
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, s) != 0)
		return -1;
	int f = mkostemp(path, O_CLOEXEC);
	if (f < 0)
		return -1;
	unlink(path);
	pipe_r = p[0];
	pipe_w = p[1];
	sock_fd = s[0];
	peer_fd = s[1];
	file_fd = f;
	sleeper = fork();
	if (sleeper == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	return sleeper > 0 ? 0 : -1;
}

static void objects_done(void)
{
	kill(sleeper, SIGKILL);
	waitpid(sleeper, NULL, 0);
	close(pipe_r);
	close(pipe_w);
	close(file_fd);
	close(sock_fd);
	close(peer_fd);
}

/* EV_ADD (with flags) of every filter into ch (room for 9); returns the count. In round
 * `round` of many, EVFILT_VNODE only every 100th round (closing an inotify instance waits
 * for the kernel to free its watches) and EVFILT_FS every 50th (the mount table is slow
 * to read); round -1: all of them. */
static int every_filter(struct kevent *ch, uintptr_t base, unsigned short flags, long round)
{
	unsigned short f = EV_ADD | flags;
	int n = 0;
	EV_SET(&ch[n++], base, EVFILT_USER, f, NOTE_TRIGGER, 0, NULL);
	EV_SET(&ch[n++], base, EVFILT_TIMER, f, 0, 1, NULL);
	EV_SET(&ch[n++], pipe_r, EVFILT_READ, f, 0, 0, NULL);
	EV_SET(&ch[n++], pipe_w, EVFILT_WRITE, f, 0, 0, NULL);
	if (round < 0 || round % 100 == 0)
		EV_SET(&ch[n++], file_fd, EVFILT_VNODE, f, NOTE_WRITE | NOTE_ATTRIB, 0, NULL);
	EV_SET(&ch[n++], sleeper, EVFILT_PROC, f, NOTE_EXIT, 0, NULL);
	EV_SET(&ch[n++], SIGURG, EVFILT_SIGNAL, f, 0, 0, NULL);
	EV_SET(&ch[n++], sock_fd, EVFILT_EMPTY, f, 0, 0, NULL);
	if (round < 0 || round % 50 == 0)
		EV_SET(&ch[n++], 0, EVFILT_FS, f, 0, 0, NULL);
	return n;
}

/* Some activity on the objects. */
static void stir(void)
{
	char b[64];
	if (write(pipe_w, "x", 1) < 0 || pwrite(file_fd, "x", 1, 0) < 0 ||
	    read(pipe_r, b, sizeof b) < 0)
		return;
}

/* A kqueue with every filter's knote, made and closed: the process-wide descriptors (a
 * signal's eventfd) exist afterwards. */
static void warm_up(void)
{
	struct kevent ch[9];
	int kq = kqt_kqueue(pers);
	int n = every_filter(ch, 1, 0, -1);
	if (kevent(kq, ch, n, NULL, 0, NULL) != 0)
		perror("warm_up");
	close(kq);
}

/* A child that forks children exiting at once, until killed (NOTE_TRACK traffic). */
static pid_t forking_child(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;) {
			pid_t g = fork();
			if (g == 0)
				_exit(0);
			if (g > 0)
				waitpid(g, NULL, 0);
			usleep(300);
		}
	}
	return pid;
}

/* Starts the process monitor (its thread and eventfd stay) with a NOTE_TRACK knote that
 * goes at once, and waits until the process events connector is closed again. */
static void warm_up_monitor(pid_t pid)
{
	int sockets = census().sock;
	int kq = kqt_kqueue(pers);
	kqt_change(kq, pid, EVFILT_PROC, EV_ADD, NOTE_TRACK, 0, NULL);
	close(kq);
	double end = kqt_now_ms() + 30000;
	while (census().sock != sockets && kqt_now_ms() < end)
		kqt_sleep_ms(1);
}

static void kill_child(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* kqueue() in threads: the personality is set once, before they start (setenv racing
 * getenv or fork is not safe). */
static void personality_for_threads(void)
{
	if (pers)
		setenv("KQUEUE_PERSONALITY", pers, 1);
	else
		unsetenv("KQUEUE_PERSONALITY");
}

/* ------------------------------------------------------------------------------------ */
/* G29: close() against sleepers and change lists of every filter. */

static int g29_kq;
static pthread_barrier_t g29_go;

static void *g29_sleeper(void *arg)
{
	struct kevent ev[4];
	(void)arg;
	pthread_barrier_wait(&g29_go);
	for (;;)
		if (kevent(g29_kq, NULL, 0, ev, 4, NULL) < 0)
			return (void *)(intptr_t)errno;
}

static void *g29_changer(void *arg)
{
	struct kevent ch[9], ev[9];
	uintptr_t base = 100 + (uintptr_t)arg;
	pthread_barrier_wait(&g29_go);
	struct timespec zero = { 0, 0 };
	for (long i = 0;; i++) {
		int n = every_filter(ch, base, 0, -1);
		if (i % 3 == 2)
			for (int k = 0; k < n; k++)
				ch[k].flags = EV_DELETE;
		/* Errors of single changes (ENOENT of a delete) come back as entries. */
		if (kevent(g29_kq, ch, n, ev, 9, &zero) < 0)
			return (void *)(intptr_t)errno;
		stir();
	}
}

static void case_g29_close_vs_sleepers_and_changes(void)
{
	CHECK_EQ(objects(), 0);
	warm_up();
	struct census base = census();
	for (int round = 0; round < 40; round++) {
		pthread_t t[5];
		g29_kq = kqt_kqueue(pers);
		CHECK(g29_kq >= 0);
		CHECK_EQ(pthread_barrier_init(&g29_go, NULL, 6), 0);
		for (int i = 0; i < 3; i++)
			CHECK_EQ(pthread_create(&t[i], NULL, g29_sleeper, NULL), 0);
		for (int i = 3; i < 5; i++)
			CHECK_EQ(pthread_create(&t[i], NULL, g29_changer, (void *)(intptr_t)i), 0);
		pthread_barrier_wait(&g29_go);
		kqt_sleep_ms(1 + round % 5);
		CHECK_EQ(close(g29_kq), 0);
		CHECK_EQ(released_at_once(base, "after close()"), 0);
		struct sigaction sa;
		CHECK_EQ(sigaction(SIGURG, NULL, &sa), 0);
		CHECK(sa.sa_handler == SIG_DFL);
		for (int i = 0; i < 5; i++) {
			void *r;
			CHECK_EQ(pthread_join(t[i], &r), 0);
			CHECK_EQ((intptr_t)r, EBADF);
		}
		pthread_barrier_destroy(&g29_go);
		CHECK_EQ(settle(base, "after the threads"), 0);
	}
	objects_done();
}

/* ------------------------------------------------------------------------------------ */
/* U37: a watcher of a closed kqueue. */

static volatile int u37_stop;
static int u37_inner;

static void *u37_trigger(void *arg)
{
	(void)arg;
	while (!u37_stop)
		if (kqt_user(u37_inner, 1, 0, NOTE_TRIGGER, 0, NULL) != 0)
			break;
	return NULL;
}

static void case_u37_watcher_of_a_closed_kqueue(void)
{
	struct kevent ev[4];
	for (int round = 0; round < 200; round++) {
		u37_inner = kqt_kqueue(pers);
		int outer = kqt_kqueue(pers);
		CHECK(u37_inner >= 0 && outer >= 0);
		CHECK_EQ(kqt_user(u37_inner, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
		CHECK_EQ(kqt_change(outer, u37_inner, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
		u37_stop = 0;
		pthread_t t;
		CHECK_EQ(pthread_create(&t, NULL, u37_trigger, NULL), 0);
		usleep(200);
		int n = u37_inner;
		CHECK_EQ(close(u37_inner), 0);
		int got = kqt_poll(outer, ev, 4);
		if (got != 0)
			fprintf(stderr, "round %d: %d events, ident %lu (the closed kqueue: %d)\n",
				round, got, (unsigned long)ev[0].ident, n);
		CHECK_EQ(got, 0);
		CHECK_EQ(kqt_wait(outer, ev, 4, 2), 0);
		u37_stop = 1;
		pthread_join(t, NULL);
		CHECK_EQ(kqt_poll(outer, ev, 4), 0);
		/* The knote went with the number. */
		CHECK_ERR(kqt_change(outer, n, EVFILT_READ, EV_DELETE, 0, 0, NULL), EBADF);
		close(outer);
	}
}

#define DEPTH 1000

static int chain[DEPTH];
static volatile int chain_stop;

static void *chain_trigger(void *arg)
{
	(void)arg;
	while (!chain_stop)
		if (kqt_user(chain[0], 1, 0, NOTE_TRIGGER, 0, NULL) != 0)
			break;
	return NULL;
}

static void case_u37_chain_of_1000_closed(void)
{
	struct kevent ev[4];
	struct rlimit rl;
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 8 * DEPTH && rl.rlim_max > rl.rlim_cur) {
		rl.rlim_cur = rl.rlim_max < 16 * DEPTH ? rl.rlim_max : 16 * DEPTH;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	struct census base = census();
	for (int i = 0; i < DEPTH; i++) {
		chain[i] = kqt_kqueue(pers);
		CHECK(chain[i] >= 0);
		if (i == 0)
			CHECK_EQ(kqt_user(chain[0], 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
		else
			CHECK_EQ(kqt_change(chain[i], chain[i - 1], EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	}
	chain_stop = 0;
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, chain_trigger, NULL), 0);
	CHECK_EQ(kqt_wait(chain[DEPTH - 1], ev, 4, 30000), 1);
	/* The middle one: its watcher reports nothing more. */
	int mid = DEPTH / 2;
	CHECK_EQ(close(chain[mid]), 0);
	for (int k = 0; k < 3; k++) {
		CHECK_EQ(kqt_poll(chain[mid + 1], ev, 4), 0);
		kqt_sleep_ms(1);
	}
	/* The outermost, while the inner ones have events. */
	CHECK_EQ(close(chain[DEPTH - 1]), 0);
	chain_stop = 1;
	pthread_join(t, NULL);
	for (int i = 0; i < DEPTH - 1; i++)
		if (i != mid)
			CHECK_EQ(close(chain[i]), 0);
	CHECK_EQ(settle(base, "after the chain"), 0);
}

/* ------------------------------------------------------------------------------------ */
/* P2: the process monitor posting to a kqueue being closed. */

static int p2_kq;

static void *p2_collect(void *arg)
{
	struct kevent ev[32];
	(void)arg;
	for (;;)
		if (kevent(p2_kq, NULL, 0, ev, 32, NULL) < 0)
			return (void *)(intptr_t)errno;
}

static void case_p2_close_vs_note_track_posts(void)
{
	pid_t forker = forking_child();
	CHECK(forker > 0);
	warm_up_monitor(forker);
	struct census base = census();
	for (int round = 0; round < 20; round++) {
		p2_kq = kqt_kqueue(pers);
		CHECK(p2_kq >= 0);
		if (kqt_change(p2_kq, forker, EVFILT_PROC, EV_ADD,
			       NOTE_TRACK | NOTE_FORK | NOTE_EXIT, 0, NULL) != 0) {
			CHECK_EQ(errno, EOPNOTSUPP);
			close(p2_kq);
			kqt_skip("no process events connector");
			break;
		}
		pthread_t t;
		CHECK_EQ(pthread_create(&t, NULL, p2_collect, NULL), 0);
		kqt_sleep_ms(20 + round);
		CHECK_EQ(close(p2_kq), 0);
		CHECK_EQ(released_at_once(base, "after close()"), 0);
		kqt_sleep_ms(10);
		CHECK_EQ(released_at_once(base, "10 ms after close()"), 0);
		void *r;
		CHECK_EQ(pthread_join(t, &r), 0);
		CHECK_EQ((intptr_t)r, EBADF);
		CHECK_EQ(settle(base, "after the collector"), 0);
	}
	kill_child(forker);
}

/* ------------------------------------------------------------------------------------ */
/* S2: the signal's action after close(), as after EV_DELETE. */

/* The kernel's own record of a signal action (not the C library's, nor the one the
 * library keeps for a watched signal). */
struct kact {
	unsigned long handler, flags, restorer, mask;
};

static int kernel_action(int sig, struct kact *a)
{
	memset(a, 0, sizeof *a);
	return (int)syscall(SYS_rt_sigaction, sig, NULL, a, 8);
}

static volatile unsigned long s2_hits;
static volatile int s2_stop;

static void s2_handler(int sig)
{
	(void)sig;
	__atomic_fetch_add(&s2_hits, 1, __ATOMIC_RELAXED);
}

static void *s2_sender(void *arg)
{
	(void)arg;
	while (!s2_stop) {
		kill(getpid(), SIGUSR1);
		usleep(20);
	}
	return NULL;
}

static void case_s2_close_restores_action(void)
{
	struct sigaction sa;
	struct kact before, now;
	struct kevent ev[2];
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = s2_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	CHECK_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
	CHECK_EQ(kernel_action(SIGUSR1, &before), 0);
	s2_stop = 0;
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, s2_sender, NULL), 0);
	for (int round = 0; round < 300; round++) {
		int kq = kqt_kqueue(pers);
		CHECK(kq >= 0);
		CHECK_EQ(kqt_change(kq, SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0, NULL), 0);
		kqt_wait(kq, ev, 2, round % 3);
		if (round % 2 == 0)
			CHECK_EQ(kqt_change(kq, SIGUSR1, EVFILT_SIGNAL, EV_DELETE, 0, 0, NULL), 0);
		CHECK_EQ(close(kq), 0);
		CHECK_EQ(kernel_action(SIGUSR1, &now), 0);
		if (memcmp(&now, &before, sizeof now) != 0)
			fprintf(stderr, "round %d: handler %#lx flags %#lx mask %#lx, was %#lx %#lx %#lx\n",
				round, now.handler, now.flags, now.mask, before.handler,
				before.flags, before.mask);
		CHECK(memcmp(&now, &before, sizeof now) == 0);
	}
	unsigned long hits = s2_hits;
	double end = kqt_now_ms() + 30000;
	while (s2_hits == hits && kqt_now_ms() < end)
		kqt_sleep_ms(1);
	s2_stop = 1;
	pthread_join(t, NULL);
	CHECK(s2_hits != hits);
	signal(SIGUSR1, SIG_DFL);
}

/* ------------------------------------------------------------------------------------ */
/* G3: close() from a signal handler; a number closed by the raw system call. */

static volatile int g3_victim = -1;
static volatile int g3_closed;

static void g3_handler(int sig)
{
	(void)sig;
	int n = g3_victim;
	if (n >= 0) {
		g3_victim = -1;
		close(n);
		g3_closed = 1;
	}
}

static volatile int g3_stop;
static pthread_t g3_main;

static void *g3_sender(void *arg)
{
	(void)arg;
	while (!g3_stop) {
		if (g3_victim >= 0)
			pthread_kill(g3_main, SIGUSR2);
		usleep(300);
	}
	return NULL;
}

#define G3_CHANGES 2000

static void case_g3_close_from_a_signal_handler(void)
{
	static struct kevent ch[G3_CHANGES];
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = g3_handler;
	CHECK_EQ(sigaction(SIGUSR2, &sa, NULL), 0);
	CHECK_EQ(objects(), 0);
	int kq1 = kqt_kqueue(pers);
	CHECK(kq1 >= 0);
	for (int i = 0; i < G3_CHANGES; i++)
		EV_SET(&ch[i], i, EVFILT_USER, EV_ADD, 0, 0, NULL);
	{
		/* The background thread (where close() is not interposed) exists before the
		 * baseline. */
		int k = kqt_kqueue(pers);
		close(k);
	}
	struct census base = census();
	g3_stop = 0;
	g3_main = pthread_self();
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, g3_sender, NULL), 0);
	for (int round = 0; round < 100; round++) {
		int kq2 = kqt_kqueue(pers);
		CHECK(kq2 >= 0);
		CHECK_EQ(kqt_change(kq2, sleeper, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL), 0);
		CHECK_EQ(kqt_change(kq2, 1, EVFILT_TIMER, EV_ADD, 0, 60000, NULL), 0);
		g3_closed = 0;
		g3_victim = kq2;
		/* Long change lists on kq1, which a signal lands in the middle of. */
		double end = kqt_now_ms() + 30000;
		while (!g3_closed && kqt_now_ms() < end) {
			int r = kevent(kq1, ch, G3_CHANGES, NULL, 0, NULL);
			CHECK(r == 0 || (r == -1 && errno == EINTR));
		}
		CHECK(g3_closed);
		CHECK_EQ(released_at_once(base, "after the handler's close()"), 0);
		/* The number, another file's now, is no kqueue. */
		int p[2];
		CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
		CHECK_EQ(dup2(p[0], kq2), kq2);
		CHECK_ERR(kqt_change(kq2, 1, EVFILT_USER, EV_ADD, 0, 0, NULL), EBADF);
		close(kq2);
		close(p[0]);
		close(p[1]);
		CHECK_EQ(settle(base, "after the round"), 0);
	}
	g3_stop = 1;
	pthread_join(t, NULL);
	signal(SIGUSR2, SIG_DFL);
	close(kq1);
	objects_done();
}

static void case_g3_raw_close_then_kevent(void)
{
	CHECK_EQ(objects(), 0);
	for (int which = 0; which < 2; which++) {
		int kq = kqt_kqueue(pers);
		CHECK(kq >= 0);
		/* Every lower number taken, so that the next descriptor made gets kq's. */
		int filler = open("/dev/null", O_RDONLY | O_CLOEXEC);
		int fillers[64], nf = 0;
		for (int k = 0; k < kq && nf < 64; k++)
			if (fcntl(k, F_GETFD) == -1 && dup2(filler, k) == k)
				fillers[nf++] = k;
		CHECK_EQ((int)syscall(SYS_close, kq), 0);
		int r = which == 0 ? kqt_change(kq, 1, EVFILT_TIMER, EV_ADD, 0, 60000, NULL)
				   : kqt_change(kq, sleeper, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
		CHECK(r == 0 || (r == -1 && errno == EBADF));
		for (int k = 0; k < nf; k++)
			close(fillers[k]);
		close(filler);
	}
	objects_done();
}

/* ------------------------------------------------------------------------------------ */
/* U35: fork() racing close(). */

/* In a child: the library's kinds of descriptor it has. */
static int library_kinds(void)
{
	struct census c = census();
	return c.pidfd + c.inotify + c.timerfd + c.eventpoll + c.eventfd;
}

static volatile int u35_stop;

static void *u35_churn(void *arg)
{
	struct kevent ch[9];
	(void)arg;
	while (!u35_stop) {
		int kq = kqueue();
		if (kq < 0)
			continue;
		int n = every_filter(ch, 1, 0, -1);
		kevent(kq, ch, n, NULL, 0, NULL);
		close(kq);
	}
	return NULL;
}

static void case_u35_fork_racing_close(void)
{
	CHECK_EQ(objects(), 0);
	personality_for_threads();
	u35_stop = 0;
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, u35_churn, NULL), 0);
	int failures = 0, last = 0;
	for (int i = 0; i < 300; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			alarm(30);
			int n = library_kinds();
			_exit(n > 100 ? 100 : n);
		}
		int status = 0;
		waitpid(pid, &status, 0);
		if (status != 0) {
			failures++;
			last = status;
		}
	}
	u35_stop = 1;
	pthread_join(t, NULL);
	unsetenv("KQUEUE_PERSONALITY");
	objects_done();
	if (failures)
		fprintf(stderr, "%d children had descriptors of the library, last status %#x\n",
			failures, last);
	CHECK_EQ(failures, 0);
}

/* ------------------------------------------------------------------------------------ */
/* G2: 20,000 cycles. */

static volatile int g2_stop;
static int g2_tracker;

static void *g2_churn(void *arg)
{
	struct kevent ch[9];
	long k = 0;
	while (!g2_stop) {
		int kq = kqueue();
		if (kq < 0)
			return (void *)1;
		int n = every_filter(ch, 10 + (uintptr_t)arg, 0, k++);
		if (kevent(kq, ch, n, NULL, 0, NULL) != 0)
			return (void *)2;
		close(kq);
		usleep(100);
	}
	return NULL;
}

static void *g2_drain(void *arg)
{
	struct kevent ev[64];
	(void)arg;
	while (!g2_stop)
		kqt_wait(g2_tracker, ev, 64, 5);
	return NULL;
}

static void case_g2_20000_cycles(void)
{
	struct kevent ch[9];
	CHECK_EQ(objects(), 0);
	warm_up();
	pid_t forker = forking_child();
	CHECK(forker > 0);
	warm_up_monitor(forker);
	struct census base = census();
	g2_tracker = kqt_kqueue(pers);
	CHECK(g2_tracker >= 0);
	if (kqt_change(g2_tracker, forker, EVFILT_PROC, EV_ADD | EV_CLEAR,
		       NOTE_TRACK | NOTE_EXIT, 0, NULL) != 0)
		CHECK_EQ(errno, EOPNOTSUPP);
	personality_for_threads();
	g2_stop = 0;
	pthread_t t[3];
	CHECK_EQ(pthread_create(&t[0], NULL, g2_churn, (void *)0), 0);
	CHECK_EQ(pthread_create(&t[1], NULL, g2_churn, (void *)1), 0);
	CHECK_EQ(pthread_create(&t[2], NULL, g2_drain, NULL), 0);
	for (long i = 0; i < 20000; i++) {
		int kq = kqueue();
		CHECK(kq >= 0);
		int n = every_filter(ch, 1, 0, i);
		CHECK_EQ(kevent(kq, ch, n, NULL, 0, NULL), 0);
		CHECK_EQ(close(kq), 0);
	}
	g2_stop = 1;
	for (int i = 0; i < 3; i++) {
		void *r;
		pthread_join(t[i], &r);
		CHECK(r == NULL);
	}
	unsetenv("KQUEUE_PERSONALITY");
	close(g2_tracker);
	kill_child(forker);
	objects_done();
	/* The objects' own descriptors are gone too. */
	base.total -= 5;
	base.sock -= 2;
	CHECK_EQ(settle(base, "after 20,000 cycles"), 0);
}

static void run_all(const char *personality)
{
	pers = personality;
	const char *name = personality ? personality : "freebsd";
	kqt_run_as(name, "G29", "close_vs_sleepers_and_changes_of_every_filter",
		   case_g29_close_vs_sleepers_and_changes);
	kqt_run_as(name, "U37", "watcher_of_a_closed_kqueue", case_u37_watcher_of_a_closed_kqueue);
	kqt_run_as(name, "U37", "chain_of_1000_closed", case_u37_chain_of_1000_closed);
	kqt_run_as(name, "P2", "close_vs_note_track_posts", case_p2_close_vs_note_track_posts);
	kqt_run_as(name, "S2", "close_restores_the_action", case_s2_close_restores_action);
	kqt_run_as(name, "G3", "close_from_a_signal_handler", case_g3_close_from_a_signal_handler);
	kqt_run_as(name, "G3", "raw_close_then_kevent", case_g3_raw_close_then_kevent);
	kqt_run_as(name, "U35", "fork_racing_close", case_u35_fork_racing_close);
	kqt_run_as(name, "G2", "20000_cycles_with_every_filter", case_g2_20000_cycles);
}

int main(void)
{
	kqt_watchdog(120);
	run_all(NULL);
	run_all("netbsd");
	return kqt_done();
}
