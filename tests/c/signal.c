/*
 * EVFILT_SIGNAL through the C API (docs/semantics.md §5.9, cases S1-S19 of §7.7): posts
 * are counted while the signal's own disposition keeps working, and sigaction()/signal()
 * called by the program on a watched signal (interposed by the library) change what the
 * signal does without stopping the counting.
 *
 * Signal actions are process-wide: every case runs in a child process of its own, once
 * with a FreeBSD-personality kqueue (the C default) and once with a NetBSD one.
 */
#include "kqtest.h"

#include <sys/wait.h>

/* The personality of the case being run ("freebsd" or "netbsd"). */
static const char *pers;

static int new_kq(void)
{
	return kqt_kqueue(pers);
}

static int is_netbsd(void)
{
	return strcmp(pers, "netbsd") == 0;
}

static int sig_change(int kq, int sig, unsigned short flags)
{
	return kqt_change(kq, (uintptr_t)sig, EVFILT_SIGNAL, flags, 0, 0, NULL);
}

/* Waits up to 5 s for one event; returns its data, or -1. */
static intptr_t one(int kq, int sig)
{
	struct kevent ev[2];
	int n = kqt_wait(kq, ev, 2, 5000);
	if (n != 1 || ev[0].ident != (uintptr_t)sig || ev[0].filter != EVFILT_SIGNAL ||
	    ev[0].fflags != 0 || !(ev[0].flags & EV_CLEAR))
		return -1;
	return ev[0].data;
}

static volatile sig_atomic_t handled;
static void on_signal(int sig)
{
	(void)sig;
	handled++;
}

static volatile sig_atomic_t info_ok;
static void on_signal_info(int sig, siginfo_t *info, void *ctx)
{
	if (info != NULL && info->si_signo == sig && ctx != NULL)
		info_ok++;
}

/* S1 sig [NetBSD t_sig]: SIGUSR1 set to SIG_IGN, the filter number looked up by name; a
 * child sends five SIGUSR1 (50 ms apart); kevent() with a 1 s timeout returns them, and
 * never fails. */
static void case_s1(void)
{
	pid_t parent = getpid(), child;
	int kq, status, posts = 0, go[2];
	struct kevent ev;
	double start;
	char b = 'g';

	/* The child starts sending once the parent is ready, however long that takes. */
	CHECK_EQ(pipe(go), 0);
	child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		if (read(go[0], &b, 1) != 1)
			_exit(1);
		for (int i = 0; i < 5; i++) {
			kill(parent, SIGUSR1);
			kqt_sleep_ms(50);
		}
		_exit(0);
	}
	kq = new_kq();
	CHECK(kq >= 0);
	CHECK(signal(SIGUSR1, SIG_IGN) != SIG_ERR);
	EV_SET(&ev, SIGUSR1, EVFILT_SIGNAL, EV_ADD | EV_ENABLE, 0, 0, NULL);
	CHECK_EQ(kevent(kq, &ev, 1, NULL, 0, NULL), 0);
	CHECK_EQ(write(go[1], &b, 1), 1);
	close(go[0]);
	close(go[1]);
	start = kqt_now_ms();
	while (posts < 5 && kqt_now_ms() - start < 60000) {
		struct timespec one_s = { 1, 0 };
		int n = kevent(kq, NULL, 0, &ev, 1, &one_s);
		CHECK(n != -1);
		if (n == 0)
			continue;
		CHECK_EQ(ev.ident, SIGUSR1);
		CHECK(ev.data >= 1);
		posts += (int)ev.data;
	}
	CHECK_EQ(posts, 5); /* within 60 s */
	CHECK_EQ(waitpid(child, &status, 0), child);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(kq);
}

/* S2 [FreeBSD signal.c add, del, get, disable, enable, oneshot]. */
static void case_s2(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK(signal(SIGUSR1, SIG_IGN) != SIG_ERR);
	/* add, del */
	CHECK_EQ(sig_change(kq, SIGUSR1, EV_ADD), 0);
	CHECK_EQ(sig_change(kq, SIGUSR1, EV_DELETE), 0);
	CHECK_EQ(kill(getpid(), SIGUSR1), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_ERR(sig_change(kq, SIGUSR1, EV_DELETE), ENOENT);
	/* get */
	CHECK_EQ(sig_change(kq, SIGUSR1, EV_ADD), 0);
	CHECK_EQ(kill(getpid(), SIGUSR1), 0);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 5000), 1);
	CHECK_EQ(ev.ident, SIGUSR1);
	CHECK_EQ(ev.filter, EVFILT_SIGNAL);
	CHECK_EQ(ev.flags, (is_netbsd() ? EV_ADD : 0) | EV_CLEAR);
	CHECK_EQ(ev.fflags, 0);
	CHECK_EQ(ev.data, 1);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	/* disable, enable */
	CHECK_EQ(sig_change(kq, SIGUSR1, EV_DISABLE), 0);
	CHECK_EQ(kill(getpid(), SIGUSR1), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(sig_change(kq, SIGUSR1, EV_ENABLE), 0);
	CHECK_EQ(kill(getpid(), SIGUSR1), 0);
	CHECK_EQ(one(kq, SIGUSR1), 2);
	CHECK_EQ(sig_change(kq, SIGUSR1, EV_DELETE), 0);
	/* oneshot */
	CHECK_EQ(sig_change(kq, SIGUSR1, EV_ADD | EV_ONESHOT), 0);
	CHECK_EQ(kill(getpid(), SIGUSR1), 0);
	CHECK_EQ(one(kq, SIGUSR1), 1);
	CHECK_EQ(kill(getpid(), SIGUSR1), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_ERR(sig_change(kq, SIGUSR1, EV_DELETE), ENOENT);
	close(kq);
}

/* S3 handler_still_runs, through the interposed sigaction(): a handler installed after
 * EV_ADD runs and the count goes on; oldact is the program's previous action; a query
 * gives the program's action, not the library's. */
static void case_s3(void)
{
	struct sigaction a, old;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK(signal(SIGUSR2, SIG_IGN) != SIG_ERR);
	CHECK_EQ(sig_change(kq, SIGUSR2, EV_ADD), 0);
	memset(&a, 0, sizeof a);
	a.sa_handler = on_signal;
	sigemptyset(&a.sa_mask);
	CHECK_EQ(sigaction(SIGUSR2, &a, &old), 0);
	CHECK(old.sa_handler == SIG_IGN);
	CHECK_EQ(raise(SIGUSR2), 0);
	CHECK_EQ(raise(SIGUSR2), 0);
	CHECK_EQ(handled, 2);
	CHECK_EQ(one(kq, SIGUSR2), 2);
	CHECK_EQ(sigaction(SIGUSR2, NULL, &old), 0);
	CHECK(old.sa_handler == on_signal);
	/* An SA_SIGINFO handler gets the siginfo and the context. */
	memset(&a, 0, sizeof a);
	a.sa_sigaction = on_signal_info;
	a.sa_flags = SA_SIGINFO;
	CHECK_EQ(sigaction(SIGUSR2, &a, NULL), 0);
	CHECK_EQ(raise(SIGUSR2), 0);
	CHECK_EQ(info_ok, 1);
	CHECK_EQ(handled, 2);
	/* signal(): returns the previous handler. */
	CHECK(signal(SIGUSR2, on_signal) == (void (*)(int))on_signal_info);
	CHECK_EQ(raise(SIGUSR2), 0);
	CHECK_EQ(handled, 3);
	CHECK_EQ(one(kq, SIGUSR2), 2);
	/* sysv_signal(): the handler runs once, then the default (SIGURG: ignored). */
	CHECK_EQ(sig_change(kq, SIGURG, EV_ADD), 0);
	CHECK(sysv_signal(SIGURG, on_signal) == SIG_DFL);
	CHECK_EQ(raise(SIGURG), 0);
	CHECK_EQ(raise(SIGURG), 0);
	CHECK_EQ(handled, 4);
	CHECK(signal(SIGURG, SIG_DFL) == SIG_DFL);
	CHECK_EQ(one(kq, SIGURG), 2);
	/* Errors are the C library's. */
	CHECK_ERR(sigaction(SIGKILL, &a, NULL), EINVAL);
	errno = 0;
	CHECK(signal(0, SIG_IGN) == SIG_ERR && errno == EINVAL);
	close(kq);
}

/* S4 default_terminate: a process watching SIGTERM with its default action dies by it; a
 * default-ignore signal (SIGURG) is counted and ignored. */
static void case_s4(void)
{
	int status;
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		int kq = new_kq();
		if (kq < 0 || sig_change(kq, SIGURG, EV_ADD) != 0 ||
		    sig_change(kq, SIGTERM, EV_ADD) != 0)
			_exit(3);
		raise(SIGURG);
		if (one(kq, SIGURG) != 1)
			_exit(4);
		raise(SIGTERM);
		_exit(5);
	}
	CHECK_EQ(waitpid(child, &status, 0), child);
	CHECK(WIFSIGNALED(status));
	CHECK_EQ(WTERMSIG(status), SIGTERM);
}

static void *idle(void *arg)
{
	int *stop = arg;
	while (!__atomic_load_n(stop, __ATOMIC_SEQ_CST))
		kqt_sleep_ms(1);
	return NULL;
}

/* S5 thread_directed: pthread_kill() to another thread is counted. */
static void case_s5(void)
{
	pthread_t t;
	int stop = 0;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK(signal(SIGUSR1, SIG_IGN) != SIG_ERR);
	CHECK_EQ(sig_change(kq, SIGUSR1, EV_ADD), 0);
	CHECK_EQ(pthread_create(&t, NULL, idle, &stop), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(pthread_kill(t, SIGUSR1), 0);
		CHECK_EQ(one(kq, SIGUSR1), 1);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
	CHECK_EQ(pthread_join(t, NULL), 0);
	close(kq);
}

/* S6 two_kqueues: each counts on its own. */
static void case_s6(void)
{
	int a = new_kq(), b = new_kq();
	CHECK(a >= 0 && b >= 0);
	CHECK(signal(SIGUSR1, SIG_IGN) != SIG_ERR);
	CHECK_EQ(sig_change(a, SIGUSR1, EV_ADD), 0);
	CHECK_EQ(sig_change(b, SIGUSR1, EV_ADD), 0);
	CHECK_EQ(raise(SIGUSR1), 0);
	CHECK_EQ(one(a, SIGUSR1), 1);
	CHECK_EQ(raise(SIGUSR1), 0);
	CHECK_EQ(one(b, SIGUSR1), 2);
	CHECK_EQ(one(a, SIGUSR1), 1);
	close(a);
	close(b);
}

/* Whether two actions have the same handler, flags and mask. */
static int same_action(const struct sigaction *x, const struct sigaction *y)
{
	for (int s = 1; s < 65; s++)
		if (sigismember(&x->sa_mask, s) != sigismember(&y->sa_mask, s))
			return 0;
	return x->sa_handler == y->sa_handler && x->sa_flags == y->sa_flags;
}

/* S7 action_restored: the program's action is back exactly after the last knote goes
 * (EV_DELETE, close of the kqueue), and is what sigaction() reports meanwhile. */
static void case_s7(void)
{
	struct sigaction a, before, now;
	int k1 = new_kq(), k2 = new_kq();
	CHECK(k1 >= 0 && k2 >= 0);
	memset(&a, 0, sizeof a);
	a.sa_handler = on_signal;
	a.sa_flags = SA_RESTART | SA_NODEFER;
	sigemptyset(&a.sa_mask);
	sigaddset(&a.sa_mask, SIGHUP);
	CHECK_EQ(sigaction(SIGUSR2, &a, &before), 0);
	CHECK_EQ(sigaction(SIGUSR2, NULL, &before), 0);
	CHECK_EQ(sig_change(k1, SIGUSR2, EV_ADD), 0);
	CHECK_EQ(sig_change(k2, SIGUSR2, EV_ADD), 0);
	CHECK_EQ(sigaction(SIGUSR2, NULL, &now), 0);
	CHECK(same_action(&now, &before));
	CHECK_EQ(sig_change(k1, SIGUSR2, EV_DELETE), 0);
	close(k2);
	CHECK_EQ(sigaction(SIGUSR2, NULL, &now), 0);
	CHECK(same_action(&now, &before));
	CHECK_EQ(raise(SIGUSR2), 0);
	CHECK_EQ(handled, 1);
	close(k1);
}

/* S8 fork: the child has the program's actions back and no kqueue. */
static void case_s8(void)
{
	int status;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK(signal(SIGUSR1, SIG_IGN) != SIG_ERR);
	CHECK_EQ(sig_change(kq, SIGUSR1, EV_ADD), 0);
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		struct sigaction now;
		struct kevent ev;
		if (sigaction(SIGUSR1, NULL, &now) != 0 || now.sa_handler != SIG_IGN)
			_exit(3);
		raise(SIGUSR1);
		if (kqt_poll(kq, &ev, 1) != -1 || errno != EBADF)
			_exit(4);
		int mine = new_kq();
		if (mine < 0 || sig_change(mine, SIGUSR1, EV_ADD) != 0)
			_exit(5);
		raise(SIGUSR1);
		_exit(one(mine, SIGUSR1) == 1 ? 0 : 6);
	}
	CHECK_EQ(waitpid(child, &status, 0), child);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK_EQ(raise(SIGUSR1), 0);
	CHECK_EQ(one(kq, SIGUSR1), 1);
	close(kq);
}

/* S9 uncatchable_accepted: SIGKILL, SIGSTOP, reserved and out-of-range numbers are
 * accepted and never fire. */
static void case_s9(void)
{
	static const int idents[] = { SIGKILL, SIGSTOP, 32, 33, 0, 65, 100000 };
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	for (size_t i = 0; i < sizeof idents / sizeof idents[0]; i++)
		CHECK_EQ(sig_change(kq, idents[i], EV_ADD), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	for (size_t i = 0; i < sizeof idents / sizeof idents[0]; i++)
		CHECK_EQ(sig_change(kq, idents[i], EV_DELETE), 0);
	close(kq);
}

/* S11 ignored_sigchld: with SIGCHLD ignored, kill(SIGCHLD) is counted by NetBSD and not by
 * FreeBSD; a child's exit posts nothing and the child is reaped by the system. */
static void case_s11(void)
{
	struct kevent ev;
	int status;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(sig_change(kq, SIGCHLD, EV_ADD), 0);
	CHECK(signal(SIGCHLD, SIG_IGN) != SIG_ERR);
	CHECK_EQ(raise(SIGCHLD), 0);
	if (is_netbsd())
		CHECK_EQ(one(kq, SIGCHLD), 1);
	else
		CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0)
		_exit(0);
	CHECK_ERR(waitpid(child, &status, 0), ECHILD);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	/* At its default, a child's exit is a post. */
	CHECK(signal(SIGCHLD, SIG_DFL) == SIG_IGN);
	child = fork();
	CHECK(child >= 0);
	if (child == 0)
		_exit(0);
	CHECK_EQ(one(kq, SIGCHLD), 1);
	CHECK_EQ(waitpid(child, &status, 0), child);
	close(kq);
}

static void *wait_in_kevent(void *arg)
{
	int *kq = arg;
	struct kevent ev;
	struct timespec ts = { 5, 0 };
	int n = kevent(*kq, NULL, 0, &ev, 1, &ts);
	return (void *)(intptr_t)(n == 1 ? ev.data : -errno);
}

/* S12 wait_not_interrupted: a kevent() sleeping in the thread that takes an ignored,
 * watched signal returns its event instead of failing with EINTR. */
static void case_s12(void)
{
	pthread_t t;
	void *r;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK(signal(SIGUSR1, SIG_IGN) != SIG_ERR);
	CHECK_EQ(sig_change(kq, SIGUSR1, EV_ADD), 0);
	CHECK_EQ(pthread_create(&t, NULL, wait_in_kevent, &kq), 0);
	kqt_sleep_ms(50);
	CHECK_EQ(pthread_kill(t, SIGUSR1), 0);
	CHECK_EQ(pthread_join(t, &r), 0);
	CHECK_EQ((intptr_t)r, 1);
	close(kq);
}

/* S13 default_stop: a process watching SIGTSTP with its default action stops by it, goes
 * on when continued, and counted the post. */
static void case_s13(void)
{
	int status;
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		/* A process group of its own, not orphaned (its parent is in another group of
		 * the session): the kernel would discard a default-action SIGTSTP in an orphaned
		 * group, whatever runs the tests. */
		setpgid(0, 0);
		int kq = new_kq();
		if (kq < 0 || sig_change(kq, SIGTSTP, EV_ADD) != 0)
			_exit(3);
		raise(SIGTSTP);
		_exit(one(kq, SIGTSTP) == 1 ? 0 : 4);
	}
	CHECK_EQ(waitpid(child, &status, WUNTRACED), child);
	CHECK(WIFSTOPPED(status));
	CHECK_EQ(WSTOPSIG(status), SIGTSTP);
	CHECK_EQ(kill(child, SIGCONT), 0);
	CHECK_EQ(waitpid(child, &status, 0), child);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
}

/* S18 vfork_child: a child made by vfork() shares the parent's memory until it execs: a
 * watched signal it takes is not counted by the parent, and its sigaction() calls change
 * its own actions, not the parent's kept ones. */
static void case_s18(void)
{
	struct sigaction a, now;
	struct kevent ev;
	int status;
	int kq = new_kq();
	CHECK(kq >= 0);
	memset(&a, 0, sizeof a);
	a.sa_handler = on_signal;
	sigemptyset(&a.sa_mask);
	CHECK_EQ(sigaction(SIGUSR1, &a, NULL), 0);
	CHECK(signal(SIGUSR2, SIG_IGN) != SIG_ERR);
	CHECK_EQ(sig_change(kq, SIGUSR1, EV_ADD), 0);
	CHECK_EQ(sig_change(kq, SIGUSR2, EV_ADD), 0);
	pid_t child = vfork();
	CHECK(child >= 0);
	if (child == 0) {
		raise(SIGUSR2);		  /* the library's handler, in the child */
		signal(SIGUSR1, SIG_IGN); /* the child's own action */
		raise(SIGUSR1);
		_exit(0);
	}
	CHECK_EQ(waitpid(child, &status, 0), child);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(sigaction(SIGUSR1, NULL, &now), 0);
	CHECK(now.sa_handler == on_signal);
	CHECK_EQ(raise(SIGUSR1), 0);
	CHECK_EQ(handled, 1);
	CHECK_EQ(one(kq, SIGUSR1), 1);
	close(kq);
}

static volatile sig_atomic_t rearmed;
static void rearm_on_sigchld(int sig)
{
	/* System V style: the handler installs itself again (an interposed call). */
	signal(sig, rearm_on_sigchld);
	rearmed++;
}

/* S19 fork_storm_rearm: forks while a SIGCHLD handler calls signal() on every child's
 * exit, with SIGCHLD watched and then not watched (a handler that runs in the forking
 * thread during fork() takes the library's signal table): no deadlock, every child reaped,
 * the handler ran and (watched) posts counted. */
static void case_s19(void)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(sig_change(kq, SIGUSR1, EV_ADD), 0);
	for (int watched = 1; watched >= 0; watched--) {
		int counted = 0;
		rearmed = 0;
		CHECK(signal(SIGCHLD, rearm_on_sigchld) != SIG_ERR);
		if (watched)
			CHECK_EQ(sig_change(kq, SIGCHLD, EV_ADD), 0);
		for (int i = 0; i < 100; i++) {
			pid_t child = fork();
			CHECK(child >= 0);
			if (child == 0)
				_exit(0);
		}
		for (int i = 0; i < 100; i++) {
			int status;
			pid_t r;
			while ((r = wait(&status)) == -1 && errno == EINTR)
				;
			CHECK(r > 0);
		}
		CHECK(rearmed > 0);
		while (kqt_poll(kq, &ev, 1) == 1)
			counted += (int)ev.data;
		if (watched) {
			CHECK(counted > 0);
			CHECK_EQ(sig_change(kq, SIGCHLD, EV_DELETE), 0);
		} else {
			CHECK_EQ(counted, 0);
		}
	}
	CHECK(signal(SIGCHLD, SIG_DFL) == rearm_on_sigchld);
	close(kq);
}

static void (*current_case)(void);

/* Runs current_case in a child process; fails unless it passes there. */
static void isolated(void)
{
	int status;
	fflush(stdout);
	fflush(stderr);
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		current_case();
		fflush(stderr);
		_exit(kqt_case_failed ? 1 : 0);
	}
	CHECK_EQ(waitpid(child, &status, 0), child);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
}

static void run(const char *id, const char *name, void (*fn)(void))
{
	static const char *const both[] = { "freebsd", "netbsd" };
	for (int i = 0; i < 2; i++) {
		char full[96];
		pers = both[i];
		snprintf(full, sizeof full, "%s_%s", name, pers);
		current_case = fn;
		kqt_run(id, full, isolated);
	}
}

int main(void)
{
	kqt_watchdog(90);
	run("S1", "sig", case_s1);
	run("S2", "add_del_get_disable_enable_oneshot", case_s2);
	run("S3", "handler_still_runs", case_s3);
	run("S4", "default_terminate", case_s4);
	run("S5", "thread_directed", case_s5);
	run("S6", "two_kqueues", case_s6);
	run("S7", "action_restored", case_s7);
	run("S8", "fork", case_s8);
	run("S9", "uncatchable_accepted", case_s9);
	run("S11", "ignored_sigchld", case_s11);
	run("S12", "wait_not_interrupted", case_s12);
	run("S13", "default_stop", case_s13);
	run("S18", "vfork_child", case_s18);
	run("S19", "fork_storm_rearm", case_s19);
	return kqt_done();
}
