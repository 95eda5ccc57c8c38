/*
 * The lifetime of kqueues and of their descriptors, through the C API: making and closing
 * many under a low descriptor limit, fork() while other threads use kqueues or are inside
 * kqueue(), kevent() racing with a close() that frees the kqueue's number for another file,
 * and the timers of a closed kqueue.  Each case states the rule it checks.
 *
 * What changes process-wide state (the descriptor limit) runs in a forked child, which
 * reports through its exit status.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Highest descriptor number the cases look at. */
#define FD_SCAN 1024

/* Waits up to limit_ms for child pid and returns its wait status; past that, kills and
 * reaps it and returns -1. */
static int wait_child(pid_t pid, long limit_ms)
{
	double end = kqt_now_ms() + (double)limit_ms;
	int status = 0;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0)
			return -2;
		if (kqt_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		kqt_sleep_ms(2);
	}
}

/*
 * Runs fn(arg) in a forked child that arms alarm(watchdog_s) first and _exits with fn's
 * result.  Returns that result (0: passed), 100 + n if signal n ended the child (SIGALRM:
 * it hung), 99 if it had to be killed, 98 if fork or waitpid failed.
 */
static int in_child(int (*fn)(void *), void *arg, unsigned watchdog_s)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		return 98;
	if (pid == 0) {
		alarm(watchdog_s);
		_exit(fn(arg));
	}
	int st = wait_child(pid, (long)(watchdog_s + 5) * 1000L);
	if (st == -1)
		return 99;
	if (st < 0)
		return 98;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 100 + WTERMSIG(st);
	return 98;
}

/* Whether descriptor number fd is open (async-signal-safe: usable in a forked child). */
static int fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

/*
 * Child of case_fd_limit.  Exit codes: 0 passed; 1 setrlimit failed; 10/11 kqueue() failed
 * with EMFILE / another errno; 20/21 the timer's EV_ADD failed with EMFILE / another errno;
 * 30 close() failed.
 */
static int fd_limit_child(void *arg)
{
	struct rlimit rl;
	(void)arg;
	int open_now = kqt_count_fds();
	if (open_now < 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1;
	/* About 64 numbers free. */
	rl.rlim_cur = (rlim_t)open_now + 64;
	if (rl.rlim_cur > rl.rlim_max)
		rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1;
	for (int i = 0; i < 2000; i++) {
		int kq = kqueue();
		if (kq < 0)
			return errno == EMFILE ? 10 : 11;
		if (kqt_change(kq, 1, EVFILT_TIMER, EV_ADD, 0, 1, NULL) != 0)
			return errno == EMFILE ? 20 : 21;
		if (close(kq) != 0)
			return 30;
	}
	return 0;
}

/*
 * With a low descriptor limit (64 numbers free), kqueue(), EV_ADD of a 1 ms timer and
 * close(), 2,000 times in a row, never fail: a closed kqueue gives its descriptors back.
 */
static void case_fd_limit(void)
{
	CHECK_EQ(in_child(fd_limit_child, NULL, 60), 0);
}

struct looper {
	int kq;
	int stop;
	int long_lists; /* apply long change lists (holding the kqueue lock) */
	int errors;
};

static void *looper_main(void *arg)
{
	struct looper *l = (struct looper *)arg;
	struct kevent ev[4], enables[256];
	for (int i = 0; i < 256; i++)
		EV_SET(&enables[i], 2, EVFILT_USER, EV_ENABLE, 0, 0, NULL);
	for (unsigned i = 0; !__atomic_load_n(&l->stop, __ATOMIC_RELAXED); i++) {
		int r;
		if (l->long_lists)
			r = kevent(l->kq, enables, 256, NULL, 0, NULL);
		else if (i % 3 == 0)
			r = kqt_poll(l->kq, ev, 4);
		else if (i % 3 == 1)
			r = kqt_wait(l->kq, ev, 4, 1);
		else
			r = kevent(l->kq, enables, 1, NULL, 0, NULL);
		if (r != 0)
			l->errors++;
	}
	return NULL;
}

/*
 * Child of case_fork_inherited.  Exit codes: 0 passed; 1 memfd_create failed; 11-14 a
 * kevent() on the inherited kqueue did not fail with EBADF (poll, trigger, EV_ADD, wait
 * without timeout); 20 the library wrote to a descriptor number it no longer has.
 */
static int inherited_child(void *arg)
{
	int kq = *(int *)arg;
	struct kevent ev;
	struct timespec zero = { 0, 0 };
	struct stat st;
	int file = memfd_create("kq-lifetime", MFD_CLOEXEC);
	if (file < 0)
		return 1;
	/* The file under every free number: the kqueue's own numbers among them. */
	for (int fd = 3; fd < FD_SCAN; fd++)
		if (!fd_open(fd))
			dup2(file, fd);
	errno = 0;
	if (kevent(kq, NULL, 0, &ev, 1, &zero) != -1 || errno != EBADF)
		return 11;
	errno = 0;
	if (kqt_user(kq, 2, 0, NOTE_TRIGGER, 0, NULL) != -1 || errno != EBADF)
		return 12;
	errno = 0;
	if (kqt_user(kq, 3, EV_ADD, 0, 0, NULL) != -1 || errno != EBADF)
		return 13;
	errno = 0;
	if (kevent(kq, NULL, 0, &ev, 1, NULL) != -1 || errno != EBADF)
		return 14;
	if (fstat(file, &st) != 0 || st.st_size != 0)
		return 20;
	return 0;
}

/*
 * After fork(), every kevent() of the child on an inherited kqueue gives EBADF and touches
 * no descriptor: a file the child puts under every free number (among them the numbers the
 * kqueue had) receives no byte.  This holds while other threads of the parent are in
 * kevent() on the kqueue at the fork (polling, sleeping, holding its lock for long change
 * lists): none of 50 children hangs (each has a 20 s watchdog: a loaded machine may be
 * slow, a child stuck on a lock held at the fork never finishes).
 */
static void case_fork_inherited(void)
{
	pthread_t t[2];
	struct looper l[2];
	int failed = 0, last = 0;
	int kq = kqueue();
	CHECK(kq >= 0 && kq < FD_SCAN - 16);
	CHECK_EQ(kqt_user(kq, 2, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	for (int i = 0; i < 2; i++) {
		memset(&l[i], 0, sizeof l[i]);
		l[i].kq = kq;
		l[i].long_lists = i;
		CHECK_EQ(pthread_create(&t[i], NULL, looper_main, &l[i]), 0);
	}
	for (int i = 0; i < 50 && failed < 5; i++) {
		int rc = in_child(inherited_child, &kq, 20);
		if (rc != 0) {
			failed++;
			last = rc;
		}
		kqt_sleep_ms(1);
	}
	for (int i = 0; i < 2; i++) {
		__atomic_store_n(&l[i].stop, 1, __ATOMIC_RELAXED);
		pthread_join(t[i], NULL);
	}
	/* 100 + 14: SIGALRM, the child hung. */
	CHECK_EQ(last, 0);
	CHECK_EQ(failed, 0);
	CHECK_EQ(l[0].errors + l[1].errors, 0);
	CHECK_EQ(close(kq), 0);
}

/* Open descriptor numbers below FD_SCAN when case_fork_in_kqueue started. */
static char open_before[FD_SCAN];

/* A thread blocked in kevent() on one kqueue. */
struct sleeper {
	pthread_t t;
	int kq;
	int entered;
	int rc;
	int err;
};

static void *sleeper_main(void *arg)
{
	struct sleeper *s = (struct sleeper *)arg;
	struct kevent ev;
	__atomic_store_n(&s->entered, 1, __ATOMIC_RELEASE);
	s->rc = kqt_wait(s->kq, &ev, 1, 30000);
	s->err = errno;
	return NULL;
}

#define CHURN_BATCH 16

/* A thread of case_fork_in_kqueue that makes kqueues. */
struct churn {
	int stop;
	int rounds;
	int kqueue_failed;
	int not_ebadf;    /* sleepers that returned anything but EBADF */
	double worst_ms;  /* longest time from close() to the sleeper's return */
};

/* Thread B of case_fork_in_kqueue: kqueues with a sleeper each. */
static void *sleepers_churn_main(void *arg)
{
	struct churn *c = (struct churn *)arg;
	struct sleeper s[CHURN_BATCH];
	while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
		int n = 0;
		/* Back to back, so that many forks land inside a kqueue(). */
		for (; n < CHURN_BATCH; n++) {
			memset(&s[n], 0, sizeof s[n]);
			s[n].kq = kqueue();
			if (s[n].kq < 0) {
				c->kqueue_failed++;
				break;
			}
		}
		for (int i = 0; i < n; i++)
			if (pthread_create(&s[i].t, NULL, sleeper_main, &s[i]) != 0)
				_exit(2);
		for (int i = 0; i < n; i++)
			while (!__atomic_load_n(&s[i].entered, __ATOMIC_ACQUIRE))
				sched_yield();
		kqt_sleep_ms(2); /* asleep in kevent() by now */
		for (int i = 0; i < n; i++) {
			double t0 = kqt_now_ms();
			close(s[i].kq);
			pthread_join(s[i].t, NULL);
			double dt = kqt_now_ms() - t0;
			if (dt > c->worst_ms)
				c->worst_ms = dt;
			if (s[i].rc != -1 || s[i].err != EBADF)
				c->not_ebadf++;
		}
		c->rounds++;
	}
	return NULL;
}

/* Thread A of case_fork_in_kqueue: kqueue() and close(), back to back. */
static void *tight_churn_main(void *arg)
{
	struct churn *c = (struct churn *)arg;
	while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
		int kq = kqueue();
		if (kq < 0)
			c->kqueue_failed++;
		else
			close(kq);
		c->rounds++;
	}
	return NULL;
}

/*
 * Child of case_fork_in_kqueue.  Exit code 1 if it holds the read end of a pipe that was
 * not open when the case started (a kqueue descriptor proper: the kqueue the parent was
 * making at the fork), 2 if it holds other descriptors that were not (the library's own
 * descriptors of a kqueue being made or closed), else 0; either way only after 2 s, so
 * that such copies stay open while the parent closes its kqueues (long enough for a wakeup
 * that waited for them to be told from a slow one on a loaded machine).
 */
static int fork_in_kqueue_child(void *arg)
{
	int code = 0;
	struct stat st;
	(void)arg;
	for (int fd = 0; fd < FD_SCAN; fd++) {
		if (open_before[fd] || !fd_open(fd))
			continue;
		if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) &&
		    (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY)
			code = 1;
		else if (code == 0)
			code = 2;
	}
	kqt_sleep_ms(2000);
	return code;
}

/*
 * fork() while other threads are inside kqueue() (or closing kqueues): the child holds no
 * descriptor of the parent's kqueues.  Not the descriptor of a kqueue being made at the
 * fork: a copy would keep that kqueue alive in the child, so that a thread of the parent
 * blocked in kevent() on it would not get EBADF when the parent closes it.  Nor any of the
 * library's own descriptors of a kqueue being made or closed.  Thread A makes and closes
 * kqueues back to back; thread B makes kqueues in batches, puts a thread to sleep in
 * kevent() on each, closes them and times how long each sleeper takes to return;
 * meanwhile the main thread forks 200 children, 1 ms apart, each of which lives 2 s.
 * Every child holds only descriptors that were open before the case, and every sleeper of
 * thread B returns EBADF within 1 s of the close (not when the children exit).
 */
static void case_fork_in_kqueue(void)
{
	enum { FORKS = 200 };
	static pid_t pids[FORKS];
	struct churn tight, batches;
	pthread_t a, b;
	int leaks = 0, internal = 0, odd = 0, forked = 0;
	for (int fd = 0; fd < FD_SCAN; fd++)
		open_before[fd] = (char)fd_open(fd);
	memset(&tight, 0, sizeof tight);
	memset(&batches, 0, sizeof batches);
	CHECK_EQ(pthread_create(&a, NULL, tight_churn_main, &tight), 0);
	CHECK_EQ(pthread_create(&b, NULL, sleepers_churn_main, &batches), 0);
	kqt_sleep_ms(10);
	fflush(stdout);
	fflush(stderr);
	for (; forked < FORKS; forked++) {
		pid_t pid = fork();
		if (pid < 0)
			break;
		if (pid == 0) {
			alarm(20);
			_exit(fork_in_kqueue_child(NULL));
		}
		pids[forked] = pid;
		kqt_sleep_ms(1);
	}
	/* Closes made while the last children are still alive count too. */
	kqt_sleep_ms(100);
	__atomic_store_n(&tight.stop, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&batches.stop, 1, __ATOMIC_RELAXED);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	for (int i = 0; i < forked; i++) {
		int st = wait_child(pids[i], 30000);
		if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1)
			leaks++;
		else if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 2)
			internal++;
		else if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			odd++;
	}
	if (leaks || internal || batches.not_ebadf || batches.worst_ms >= 1000)
		fprintf(stderr, "%d forks, %d kqueues of thread A, %d batches of %d of thread B: "
			"%d children kept a kqueue descriptor, %d others kept only descriptors of "
			"the library; %d sleepers did not get EBADF, the slowest returned %.1f ms "
			"after the close\n",
			forked, tight.rounds, batches.rounds, CHURN_BATCH, leaks, internal,
			batches.not_ebadf, batches.worst_ms);
	CHECK_EQ(forked, FORKS);
	CHECK_EQ(tight.kqueue_failed + batches.kqueue_failed, 0);
	CHECK_EQ(odd, 0);
	CHECK_EQ(leaks, 0);
	/*
	 * `internal` (the library's own close-on-exec descriptors of kqueues that were being
	 * closed when the fork happened) is printed, not checked: those copies vanish at exec
	 * and cannot delay the parent's wakeups, which the library sends itself.
	 */
	CHECK_EQ(batches.not_ebadf, 0);
	CHECK(batches.worst_ms < 1000);
}

/* Makes number kq the read end of a new pipe (kq must be free): the kqueue's number
 * reused by another file.  Returns the write end, or -1. */
static int pipe_at(int kq)
{
	int p[2];
	if (pipe(p) != 0)
		return -1;
	if (p[1] == kq) {
		/* The write end got the number: move it out of the way first. */
		int w = fcntl(p[1], F_DUPFD_CLOEXEC, kq + 1);
		close(p[1]);
		p[1] = w;
		if (w < 0)
			return -1;
	}
	if (p[0] != kq) {
		if (dup2(p[0], kq) != kq)
			return -1;
		close(p[0]);
	}
	return p[1];
}

/* Bytes waiting in pipe read end fd, or -1. */
static int pending_bytes(int fd)
{
	int n = -1;
	if (ioctl(fd, FIONREAD, &n) != 0)
		return -1;
	return n;
}

struct waiter {
	int kq;
	int entered;
	int rc;
	int err;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = (struct waiter *)arg;
	struct kevent ev;
	__atomic_store_n(&w->entered, 1, __ATOMIC_RELEASE);
	w->rc = kqt_wait(w->kq, &ev, 1, 500);
	w->err = errno;
	return NULL;
}

/*
 * A kevent() waiting on a kqueue whose number is closed and given to another file never
 * reads from that file.  The kqueue is readable (an event was triggered and collected);
 * thread 1 waits in kevent() with a 500 ms timeout; thread 2 closes the kqueue's number,
 * makes it the read end of a new pipe and writes one byte to that pipe.  Thread 1 returns
 * EBADF or 0, and the byte is still in the pipe.
 */
static void case_reuse_while_waiting(void)
{
	pthread_t t;
	struct waiter w;
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	memset(&w, 0, sizeof w);
	w.kq = kq;
	CHECK_EQ(pthread_create(&t, NULL, waiter_main, &w), 0);
	while (!__atomic_load_n(&w.entered, __ATOMIC_ACQUIRE))
		sched_yield();
	kqt_sleep_ms(50);
	CHECK_EQ(close(kq), 0);
	int wr = pipe_at(kq);
	CHECK(wr >= 0);
	CHECK_EQ(write(wr, "x", 1), 1);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK(w.rc == 0 || (w.rc == -1 && w.err == EBADF));
	CHECK_EQ(pending_bytes(kq), 1);
	close(kq);
	close(wr);
}

/* Shared by the threads of case_reuse_while_polling. */
static struct {
	int kq;      /* the round's kqueue number (-1 between rounds) */
	int round;   /* set by the main thread to start a round */
	int calling; /* set by the poller to the round whose kevent() it is about to call */
	int polled;  /* set by the poller to the round whose kevent() returned */
	int stop;
	int rc, err;
} race;

/* Polls each round's kqueue once as soon as the round starts. */
static void *poller_main(void *arg)
{
	struct kevent ev;
	struct timespec zero = { 0, 0 };
	int seen = 0;
	(void)arg;
	for (;;) {
		int round;
		while ((round = __atomic_load_n(&race.round, __ATOMIC_ACQUIRE)) == seen) {
			if (__atomic_load_n(&race.stop, __ATOMIC_RELAXED))
				return NULL;
			sched_yield();
		}
		seen = round;
		int kq = __atomic_load_n(&race.kq, __ATOMIC_RELAXED);
		__atomic_store_n(&race.calling, round, __ATOMIC_RELEASE);
		race.rc = kevent(kq, NULL, 0, &ev, 1, &zero);
		race.err = errno;
		__atomic_store_n(&race.polled, round, __ATOMIC_RELEASE);
	}
}

#define CONTENDER_CHANGES 256

/* Keeps the kqueue's lock busy: long change lists on the current round's kqueue. */
static void *contender_main(void *arg)
{
	static struct kevent adds[CONTENDER_CHANGES];
	(void)arg;
	for (int i = 0; i < CONTENDER_CHANGES; i++)
		EV_SET(&adds[i], 100 + (uintptr_t)i, EVFILT_USER, EV_ADD, 0, 0, NULL);
	while (!__atomic_load_n(&race.stop, __ATOMIC_RELAXED)) {
		int kq = __atomic_load_n(&race.kq, __ATOMIC_RELAXED);
		if (kq >= 0)
			kevent(kq, adds, CONTENDER_CHANGES, NULL, 0, NULL); /* EBADF once closed */
		else
			sched_yield();
	}
	return NULL;
}

/* Busy-waits us microseconds. */
static void spin_us(unsigned us)
{
	double until = kqt_now_ms() + (double)us / 1000.0;
	while (kqt_now_ms() < until)
		;
}

/*
 * A kevent() that waited for the kqueue's lock while the kqueue's number was closed and
 * given to another file never reads from that file.  Each round: a readable kqueue (an
 * event triggered and collected, so a poll that finds nothing would drain its
 * readability); a third thread keeps the kqueue's lock busy with long change lists; the
 * poller thread calls kevent() with a zero timeout on it, and as it does, the main thread
 * (after a random delay of up to 20 us) closes the number, makes it the read end of a new
 * pipe and writes one byte there.  After the poll returns (0 or EBADF), the byte is still
 * in the pipe.  Rounds for 1.5 s.
 */
static void case_reuse_while_polling(void)
{
	pthread_t poller, contender;
	struct kevent ev;
	unsigned seed = 12345;
	int rounds = 0, lost = 0, bad_rc = 0, moved = 0;
	memset(&race, 0, sizeof race);
	race.kq = -1;
	CHECK_EQ(pthread_create(&poller, NULL, poller_main, NULL), 0);
	CHECK_EQ(pthread_create(&contender, NULL, contender_main, NULL), 0);
	double end = kqt_now_ms() + 1500;
	while (kqt_now_ms() < end) {
		int kq = kqueue();
		if (kq < 0 || kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL) != 0 ||
		    kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL) != 0 ||
		    kqt_wait(kq, &ev, 1, 1000) != 1) {
			bad_rc++;
			break;
		}
		rounds++;
		__atomic_store_n(&race.kq, kq, __ATOMIC_RELAXED);
		kqt_sleep_ms(0); /* let the contender take the lock */
		__atomic_store_n(&race.round, rounds, __ATOMIC_RELEASE);
		while (__atomic_load_n(&race.calling, __ATOMIC_ACQUIRE) != rounds)
			;
		seed = seed * 1103515245u + 12345u;
		spin_us((seed >> 16) % 21);
		close(kq);
		__atomic_store_n(&race.kq, -1, __ATOMIC_RELAXED);
		int wr = pipe_at(kq);
		if (wr < 0) {
			moved++;
			break;
		}
		if (write(wr, "x", 1) != 1)
			moved++;
		while (__atomic_load_n(&race.polled, __ATOMIC_ACQUIRE) != rounds)
			sched_yield();
		if (race.rc != 0 && !(race.rc == -1 && race.err == EBADF))
			bad_rc++;
		if (pending_bytes(kq) != 1)
			lost++;
		close(kq);
		close(wr);
	}
	__atomic_store_n(&race.stop, 1, __ATOMIC_RELAXED);
	pthread_join(poller, NULL);
	pthread_join(contender, NULL);
	if (lost)
		fprintf(stderr, "%d of %d rounds: the poll read the byte of the new pipe\n",
			lost, rounds);
	CHECK_EQ(moved, 0);
	CHECK_EQ(bad_rc, 0);
	CHECK_EQ(lost, 0);
	CHECK(rounds > 0);
}

/*
 * A closed kqueue's timers stop counting against the process limit of 4,096 timers at
 * once: ten times in a row, kqueue(), 4,000 timers added (the previous kqueue's 4,000
 * would put it over the limit), close(); no EV_ADD fails with ENOMEM.
 */
static void case_closed_timers(void)
{
	static struct kevent ch[500];
	for (int round = 0; round < 10; round++) {
		int kq = kqueue();
		CHECK(kq >= 0);
		for (int base = 0; base < 4000; base += 500) {
			for (int i = 0; i < 500; i++)
				EV_SET(&ch[i], (uintptr_t)(base + i), EVFILT_TIMER, EV_ADD,
				       NOTE_SECONDS, 60, NULL);
			if (kevent(kq, ch, 500, NULL, 0, NULL) != 0) {
				fprintf(stderr, "round %d, timers from %d:\n", round, base);
				CHECK_EQ(errno, 0);
			}
		}
		CHECK_EQ(close(kq), 0);
	}
}

int main(void)
{
	kqt_watchdog(90);
	kqt_run("lifetime", "low_fd_limit_2000_kqueues_with_timer", case_fd_limit);
	kqt_run("lifetime", "fork_inherited_kqueue_ebadf_touches_nothing", case_fork_inherited);
	kqt_run("lifetime", "fork_inside_kqueue_child_keeps_nothing", case_fork_in_kqueue);
	kqt_run("lifetime", "close_reuse_while_waiting_reads_nothing", case_reuse_while_waiting);
	kqt_run("lifetime", "close_reuse_while_polling_reads_nothing", case_reuse_while_polling);
	kqt_run("lifetime", "closed_kqueue_timers_leave_limit", case_closed_timers);
	return kqt_done();
}
