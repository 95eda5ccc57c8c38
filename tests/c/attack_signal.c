/*
 * Attacks on EVFILT_SIGNAL through the C API (docs/semantics.md §5.9, cases S1-S19 of
 * §7.7): the interposed sigaction()/signal() read back exactly, handlers that call kevent()
 * or leave by siglongjmp(), the kqueue closed under a sleeper, descriptor exhaustion, fork()
 * while signals fly, SA_RESETHAND taken by several threads at once.
 *
 * Signal actions are process-wide: every case runs in a child process of its own, once
 * with a FreeBSD-personality kqueue (the C default) and once with a NetBSD one.
 */
#include "kqtest.h"

#include <setjmp.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* Defined by the library (glibc's headers no longer declare it). */
extern void (*bsd_signal(int sig, void (*handler)(int)))(int);

static const char *pers;

static int new_kq(void)
{
	return kqt_kqueue(pers);
}

static int sig_change(int kq, int sig, unsigned short flags)
{
	return kqt_change(kq, (uintptr_t)sig, EVFILT_SIGNAL, flags, 0, 0, NULL);
}

/* Sum of the data of the events of signal sig collected without waiting; -1 on a wrong
 * event. */
static long drain(int kq, int sig)
{
	struct kevent ev[4];
	long total = 0;
	int n;
	while ((n = kqt_poll(kq, ev, 4)) > 0) {
		for (int i = 0; i < n; i++) {
			if (ev[i].ident != (uintptr_t)sig || ev[i].filter != EVFILT_SIGNAL ||
			    ev[i].data <= 0)
				return -1;
			total += ev[i].data;
		}
	}
	return n < 0 ? -1 : total;
}

/* The action as the kernel has it (not what the interposed sigaction() reports). */
struct kernel_action {
	void *handler;
	unsigned long flags;
	void *restorer;
	unsigned long mask;
};

static void *kernel_handler(int sig)
{
	struct kernel_action k;
	if (syscall(SYS_rt_sigaction, sig, NULL, &k, sizeof k.mask) != 0)
		return (void *)-2;
	return k.handler;
}

static int same_action(const struct sigaction *x, const struct sigaction *y)
{
	for (int s = 1; s < 65; s++)
		if (sigismember(&x->sa_mask, s) != sigismember(&y->sa_mask, s))
			return 0;
	return x->sa_handler == y->sa_handler && x->sa_flags == y->sa_flags;
}

static volatile sig_atomic_t handled;
static void on_signal(int sig)
{
	(void)sig;
	handled++;
}

/* S7 query_exact: what sigaction() reports for a watched signal is what it reports for the
 * same action on a signal nobody watches (handler, flags as the C library returns them,
 * mask), before and after a change; signal() and bsd_signal() return the previous
 * handler. */
static void case_query_exact(void)
{
	struct sigaction a, plain, watched, x;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(sig_change(kq, SIGUSR2, EV_ADD), 0);
	memset(&a, 0, sizeof a);
	a.sa_handler = on_signal;
	a.sa_flags = SA_RESTART | SA_NODEFER;
	sigemptyset(&a.sa_mask);
	sigaddset(&a.sa_mask, SIGHUP);
	sigaddset(&a.sa_mask, SIGRTMIN + 1);
	CHECK_EQ(sigaction(SIGUSR1, &a, NULL), 0);
	CHECK_EQ(sigaction(SIGUSR1, NULL, &plain), 0);
	CHECK_EQ(sigaction(SIGUSR2, &a, NULL), 0);
	CHECK_EQ(sigaction(SIGUSR2, NULL, &watched), 0);
	CHECK(kernel_handler(SIGUSR2) != (void *)on_signal);
	CHECK_EQ(watched.sa_flags, plain.sa_flags);
	CHECK(same_action(&watched, &plain));
	x = a;
	x.sa_handler = SIG_IGN;
	CHECK_EQ(sigaction(SIGUSR2, &x, &watched), 0);
	CHECK(same_action(&watched, &plain));
	CHECK(signal(SIGUSR2, on_signal) == SIG_IGN);
	CHECK(bsd_signal(SIGUSR2, SIG_DFL) == on_signal);
	CHECK(signal(SIGUSR2, SIG_IGN) == SIG_DFL);
	CHECK_EQ(raise(SIGUSR2), 0);
	CHECK_EQ(drain(kq, SIGUSR2), 1);
	/* Deleted: the kernel's action is the last one set, read back as before. */
	CHECK_EQ(sigaction(SIGUSR2, &a, NULL), 0);
	CHECK_EQ(sig_change(kq, SIGUSR2, EV_DELETE), 0);
	CHECK(kernel_handler(SIGUSR2) == (void *)on_signal);
	CHECK_EQ(sigaction(SIGUSR2, NULL, &watched), 0);
	CHECK(same_action(&watched, &plain));
	close(kq);
}

static int handler_kq = -1;
static volatile sig_atomic_t deleting_runs, delete_result = -1;
static void deleting_handler(int sig)
{
	struct kevent c;
	int saved = errno;
	deleting_runs++;
	EV_SET(&c, sig, EVFILT_SIGNAL, EV_DELETE, 0, 0, NULL);
	delete_result = kevent(handler_kq, &c, 1, NULL, 0, NULL) == 0 ? 0 : errno;
	errno = saved;
}

/* S7 handler_deletes_last_knote: a handler deletes the last knote on its own signal: the
 * program's action is back in the kernel at once, the handler ran once; the next post runs
 * it directly and the delete then says ENOENT. */
static void case_handler_deletes_last(void)
{
	struct kevent ev;
	handler_kq = new_kq();
	CHECK(handler_kq >= 0);
	CHECK(signal(SIGUSR1, deleting_handler) != SIG_ERR);
	CHECK_EQ(sig_change(handler_kq, SIGUSR1, EV_ADD), 0);
	CHECK(kernel_handler(SIGUSR1) != (void *)deleting_handler);
	CHECK_EQ(raise(SIGUSR1), 0);
	CHECK_EQ(deleting_runs, 1);
	CHECK_EQ(delete_result, 0);
	CHECK(kernel_handler(SIGUSR1) == (void *)deleting_handler);
	CHECK_EQ(kqt_poll(handler_kq, &ev, 1), 0);
	CHECK_EQ(raise(SIGUSR1), 0);
	CHECK_EQ(deleting_runs, 2);
	CHECK_EQ(delete_result, ENOENT);
	close(handler_kq);
}

static volatile sig_atomic_t reenter_ok, reenter_deadlk, reenter_other;
static void reentering_handler(int sig)
{
	struct kevent c[2];
	int saved = errno;
	(void)sig;
	/* Changes that allocate nothing: adding a knote allocates, which a handler may do
	 * only where it may call malloc() (not when it interrupted an allocation). */
	EV_SET(&c[0], SIGUSR2, EVFILT_SIGNAL, EV_DISABLE, 0, 0, NULL);
	EV_SET(&c[1], SIGUSR2, EVFILT_SIGNAL, EV_ENABLE, 0, 0, NULL);
	int r = kevent(handler_kq, c, 2, NULL, 0, NULL);
	if (r == 0)
		reenter_ok++;
	else if (errno == EDEADLK)
		reenter_deadlk++;
	else
		reenter_other = errno;
	errno = saved;
}

static volatile int stop_sending;
static void *send_to(void *arg)
{
	pthread_t target = *(pthread_t *)arg;
	while (!stop_sending) {
		pthread_kill(target, SIGUSR1);
		usleep(20);
	}
	return NULL;
}

/* S17 handler_kevent_during_library_calls: a watched signal's handler disables and enables
 * a knote with kevent() while the thread it interrupted makes and closes kqueues and calls
 * kevent() on another one: each of the handler's calls works or fails with EDEADLK, and
 * nothing hangs. */
static void case_handler_kevent(void)
{
	struct kevent ev[2];
	pthread_t self = pthread_self(), t;
	handler_kq = new_kq();
	CHECK(handler_kq >= 0);
	CHECK(signal(SIGUSR1, reentering_handler) != SIG_ERR);
	CHECK(signal(SIGUSR2, SIG_IGN) != SIG_ERR);
	CHECK_EQ(sig_change(handler_kq, SIGUSR2, EV_ADD), 0);
	int watcher = new_kq();
	CHECK(watcher >= 0);
	CHECK_EQ(sig_change(watcher, SIGUSR1, EV_ADD), 0);
	stop_sending = 0;
	CHECK_EQ(pthread_create(&t, NULL, send_to, &self), 0);
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		int k = new_kq();
		CHECK(k >= 0);
		CHECK_EQ(kqt_user(k, 1, EV_ADD, 0, 0, NULL), 0);
		CHECK(kqt_poll(k, ev, 2) >= 0);
		CHECK(kqt_poll(watcher, ev, 2) >= 0);
		CHECK_EQ(close(k), 0);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec - start.tv_sec < 2);
	stop_sending = 1;
	pthread_join(t, NULL);
	CHECK_EQ(reenter_other, 0);
	CHECK(reenter_ok > 0);
	CHECK(kernel_handler(SIGUSR2) != SIG_IGN);
	close(watcher);
	close(handler_kq);
	CHECK(kernel_handler(SIGUSR2) == SIG_IGN);
}

static sigjmp_buf segv_jump;
static volatile sig_atomic_t segv_runs, segv_addr_ok;
static volatile char *segv_target;
static void on_segv(int sig, siginfo_t *info, void *ctx)
{
	(void)sig;
	(void)ctx;
	segv_runs++;
	if (info->si_addr == (void *)segv_target && info->si_code == SEGV_MAPERR)
		segv_addr_ok++;
	siglongjmp(segv_jump, 1);
}

/* S3 segv_longjmp: a watched SIGSEGV whose handler leaves by siglongjmp(): every fault
 * runs it with the fault's siginfo (address, SEGV_MAPERR) and is counted; the library is
 * left in order (the next faults, a kevent(), the action back after EV_DELETE). */
static void case_segv_longjmp(void)
{
	struct sigaction a;
	int kq = new_kq();
	CHECK(kq >= 0);
	memset(&a, 0, sizeof a);
	a.sa_sigaction = on_segv;
	a.sa_flags = SA_SIGINFO;
	sigemptyset(&a.sa_mask);
	CHECK_EQ(sigaction(SIGSEGV, &a, NULL), 0);
	CHECK_EQ(sig_change(kq, SIGSEGV, EV_ADD), 0);
	segv_target = (volatile char *)(uintptr_t)64;
	for (int i = 0; i < 50; i++) {
		if (sigsetjmp(segv_jump, 1) == 0)
			*segv_target = 1;
	}
	CHECK_EQ(segv_runs, 50);
	CHECK_EQ(segv_addr_ok, 50);
	CHECK_EQ(drain(kq, SIGSEGV), 50);
	CHECK_EQ(sig_change(kq, SIGSEGV, EV_DELETE), 0);
	CHECK(kernel_handler(SIGSEGV) == (void *)on_segv);
	close(kq);
}

struct sleeper {
	int kq;
	int result;
	int error;
};

static void *sleep_in_kevent(void *arg)
{
	struct sleeper *s = arg;
	struct kevent ev;
	s->result = kevent(s->kq, NULL, 0, &ev, 1, NULL);
	s->error = errno;
	return NULL;
}

/* S7 close_under_sleeper: a kqueue watching a signal is closed (no EV_DELETE) while
 * another thread sleeps in kevent() on it: the sleeper returns EBADF, the program's action
 * is back in the kernel, and a post then only runs the program's handler. */
static void case_close_under_sleeper(void)
{
	struct sleeper s;
	pthread_t t;
	s.kq = new_kq();
	s.result = 0;
	CHECK(s.kq >= 0);
	CHECK(signal(SIGUSR1, on_signal) != SIG_ERR);
	CHECK_EQ(sig_change(s.kq, SIGUSR1, EV_ADD), 0);
	CHECK_EQ(pthread_create(&t, NULL, sleep_in_kevent, &s), 0);
	kqt_sleep_ms(100);
	CHECK_EQ(close(s.kq), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(s.result, -1);
	CHECK_EQ(s.error, EBADF);
	CHECK(kernel_handler(SIGUSR1) == (void *)on_signal);
	CHECK_EQ(raise(SIGUSR1), 0);
	CHECK_EQ(handled, 1);
}

/* S7 emfile_first_knote: with no descriptor left for the signal's eventfd the first
 * EV_ADD fails with EMFILE (as an EV_ERROR entry with EV_RECEIPT), leaving the action and
 * the kqueue as they were; once a descriptor is free it works. */
static void case_emfile(void)
{
	struct rlimit old, low;
	struct kevent c, out;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK(signal(SIGUSR2, SIG_IGN) != SIG_ERR);
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
	int spare = dup(0);
	CHECK(spare >= 0);
	low = old;
	low.rlim_cur = (rlim_t)spare;	/* every number below spare is in use, spare is not */
	close(spare);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
	CHECK_ERR(sig_change(kq, SIGUSR2, EV_ADD), EMFILE);
	EV_SET(&c, SIGUSR2, EVFILT_SIGNAL, EV_ADD | EV_RECEIPT, 0, 0, NULL);
	CHECK_EQ(kevent(kq, &c, 1, &out, 1, NULL), 1);
	CHECK(out.flags & EV_ERROR);
	CHECK_EQ(out.data, EMFILE);
	CHECK(kernel_handler(SIGUSR2) == SIG_IGN);
	CHECK_ERR(sig_change(kq, SIGUSR2, EV_DELETE), ENOENT);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
	CHECK_EQ(sig_change(kq, SIGUSR2, EV_ADD), 0);
	CHECK_EQ(raise(SIGUSR2), 0);
	CHECK_EQ(drain(kq, SIGUSR2), 1);
	close(kq);
	CHECK(kernel_handler(SIGUSR2) == SIG_IGN);
}

static volatile long rt_runs;
static void on_rt(int sig)
{
	(void)sig;
	/* Several threads may run it at once. */
	__atomic_add_fetch(&rt_runs, 1, __ATOMIC_SEQ_CST);
}

static volatile long queued;
static void *queue_signals(void *arg)
{
	int sig = *(int *)arg;
	union sigval v = { .sival_int = 0 };
	while (!stop_sending) {
		if (sigqueue(getpid(), sig, v) == 0)
			__atomic_add_fetch(&queued, 1, __ATOMIC_SEQ_CST);
		usleep(50);
	}
	return NULL;
}

/* S8 fork_while_signals_fly: real-time signals queued by two threads while the main thread
 * forks 30 times; each child finds the program's action in the kernel and in sigaction(),
 * can watch the signal in a kqueue of its own and count its own posts; the parent's knote
 * counts every signal and its handler ran for each. */
static void case_fork_signals_fly(void)
{
	pthread_t t[2];
	static int sig;
	long counted = 0;
	sig = SIGRTMIN + 1;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK(signal(sig, on_rt) != SIG_ERR);
	CHECK_EQ(sig_change(kq, sig, EV_ADD), 0);
	stop_sending = 0;
	for (int i = 0; i < 2; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, queue_signals, &sig), 0);
	for (int round = 0; round < 30; round++) {
		int status;
		pid_t child = fork();
		CHECK(child >= 0);
		if (child == 0) {
			struct sigaction now;
			struct kevent ev;
			int code = 0;
			int mine;
			if (kernel_handler(sig) != (void *)on_rt)
				code = 10;
			else if (sigaction(sig, NULL, &now) != 0 || now.sa_handler != on_rt)
				code = 11;
			else if (kevent(kq, NULL, 0, &ev, 1, &(struct timespec){ 0, 0 }) != -1 ||
				 errno != EBADF)
				code = 12;
			else if ((mine = new_kq()) < 0 || sig_change(mine, sig, EV_ADD) != 0)
				code = 13;
			else if (raise(sig) != 0 || raise(sig) != 0 || kqt_poll(mine, &ev, 1) != 1 ||
				 ev.data != 2)
				code = 14;
			_exit(code);
		}
		pid_t r;
		while ((r = waitpid(child, &status, 0)) == -1 && errno == EINTR)
			;
		CHECK_EQ(r, child);
		CHECK(WIFEXITED(status));
		CHECK_EQ(WEXITSTATUS(status), 0);
		long d = drain(kq, sig);
		CHECK(d >= 0);
		counted += d;
	}
	stop_sending = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 500 && rt_runs < queued; i++)
		kqt_sleep_ms(10);
	long d = drain(kq, sig);
	CHECK(d >= 0);
	counted += d;
	CHECK_EQ(rt_runs, queued);
	CHECK_EQ(counted, queued);
	close(kq);
}

static volatile sig_atomic_t reset_runs;
static void on_reset(int sig)
{
	(void)sig;
	reset_runs++;
}

static pthread_barrier_t go;
static void *raise_at_once(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&go);
	raise(SIGWINCH);
	return NULL;
}

/* S14 resethand_concurrent: sysv_signal() (SA_RESETHAND) on a watched SIGWINCH taken by
 * six threads at the same moment: the handler runs once per round (the others get the
 * default: ignored), every delivery is counted. */
static void case_resethand_concurrent(void)
{
	enum { THREADS = 6 };
	pthread_t t[THREADS];
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(sig_change(kq, SIGWINCH, EV_ADD), 0);
	for (int round = 0; round < 100; round++) {
		reset_runs = 0;
		CHECK(sysv_signal(SIGWINCH, on_reset) != SIG_ERR);
		CHECK_EQ(pthread_barrier_init(&go, NULL, THREADS), 0);
		for (int i = 0; i < THREADS; i++)
			CHECK_EQ(pthread_create(&t[i], NULL, raise_at_once, NULL), 0);
		for (int i = 0; i < THREADS; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&go);
		CHECK_EQ(reset_runs, 1);
		CHECK(signal(SIGWINCH, SIG_DFL) == SIG_DFL);
		CHECK_EQ(drain(kq, SIGWINCH), THREADS);
	}
	close(kq);
}

static volatile sig_atomic_t info_runs, info_good;
static void on_rt_info(int sig, siginfo_t *info, void *ctx)
{
	(void)ctx;
	info_runs++;
	if (info->si_signo == sig && info->si_code == SI_QUEUE &&
	    info->si_value.sival_int == info_runs && info->si_pid == getpid())
		info_good++;
}

/* S10 rt_siginfo: SIGRTMAX queued five times with values while blocked, then unblocked:
 * the SA_SIGINFO handler gets each siginfo (SI_QUEUE, the sender, the value, in order),
 * and the knote counts five. */
static void case_rt_siginfo(void)
{
	struct sigaction a;
	sigset_t set, old;
	int kq = new_kq();
	CHECK(kq >= 0);
	memset(&a, 0, sizeof a);
	a.sa_sigaction = on_rt_info;
	a.sa_flags = SA_SIGINFO;
	sigemptyset(&a.sa_mask);
	CHECK_EQ(sigaction(SIGRTMAX, &a, NULL), 0);
	CHECK_EQ(sig_change(kq, SIGRTMAX, EV_ADD), 0);
	/* Blocked in every thread (only this one exists), so they wait for this one. */
	sigemptyset(&set);
	sigaddset(&set, SIGRTMAX);
	CHECK_EQ(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
	for (int v = 1; v <= 5; v++) {
		union sigval val = { .sival_int = v };
		CHECK_EQ(sigqueue(getpid(), SIGRTMAX, val), 0);
	}
	CHECK_EQ(drain(kq, SIGRTMAX), 0);
	CHECK_EQ(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	CHECK_EQ(info_runs, 5);
	CHECK_EQ(info_good, 5);
	CHECK_EQ(drain(kq, SIGRTMAX), 5);
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
	kqt_watchdog(120);
	run("S7", "query_exact", case_query_exact);
	run("S7", "handler_deletes_last_knote", case_handler_deletes_last);
	run("S17", "handler_kevent_during_library_calls", case_handler_kevent);
	run("S3", "segv_longjmp", case_segv_longjmp);
	run("S7", "close_under_sleeper", case_close_under_sleeper);
	run("S7", "emfile_first_knote", case_emfile);
	run("S8", "fork_while_signals_fly", case_fork_signals_fly);
	run("S14", "resethand_concurrent", case_resethand_concurrent);
	run("S10", "rt_siginfo", case_rt_siginfo);
	return kqt_done();
}
