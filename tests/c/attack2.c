/*
 * Second adversarial pass: each case reproduced one defect it found, and now guards
 * the fix. (The Rust cases are in crates/kq/tests/attack2.rs.)
 */
#include "kqtest.h"

#include <sys/time.h>
#include <sys/wait.h>

static int storm_kq = -1;
static volatile sig_atomic_t storm_alarms, storm_fail, storm_deadlk;

static void on_alarm_trigger(int sig)
{
	struct kevent c;
	int saved = errno;
	(void)sig;
	storm_alarms++;
	EV_SET(&c, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
	if (kevent(storm_kq, &c, 1, NULL, 0, NULL) != 0) {
		if (errno == EDEADLK)
			storm_deadlk++;
		else
			storm_fail++;
	}
	errno = saved;
}

static void install(void (*fn)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
}

static void storm(long usec)
{
	struct itimerval it;
	memset(&it, 0, sizeof it);
	it.it_value.tv_usec = usec;
	it.it_interval.tv_usec = usec;
	setitimer(ITIMER_REAL, &it, NULL);
}

/*
 * AT2-1 trigger_from_signal_handler: a SIGALRM handler wakes the event loop with
 * kevent(NOTE_TRIGGER), the BSD idiom (kevent is a system call there). The library keeps
 * a lock per kqueue in user space: a kevent() from a handler that interrupted the same
 * thread inside the lock fails with EDEADLK (documented) instead of deadlocking; any
 * other failure, or a hang, is a defect. With SIGALRM every
 * 20 us, the main loop (which also triggers user events itself) collecting with kevent() must keep running: it deadlocks when the
 * signal arrives while the main thread's kevent() holds the kqueue's lock (the handler's
 * kevent() waits for the std Mutex in `Inner::lock`, held by the very thread it
 * interrupted; signals are blocked only around the sleep, not around the change list or
 * the collection). The loop runs in a child so that the hang is seen within 5 s.
 */
static int handler_trigger_child(void)
{
	struct kevent ev[8];
	storm_kq = kqueue();
	if (storm_kq < 0 || kqt_user(storm_kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL) != 0)
		return 2;
	for (int i = 2; i < 34; i++)
		if (kqt_user(storm_kq, i, EV_ADD, 0, 0, NULL) != 0)
			return 2;
	install(on_alarm_trigger);
	storm(20);
	int got = 0;
	double t0 = kqt_now_ms();
	while (kqt_now_ms() - t0 < 1500) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		struct kevent c;
		EV_SET(&c, 2 + got % 32, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
		int n = kevent(storm_kq, &c, 1, ev, 8, &ts);
		if (n > 0)
			got += n;
	}
	storm(0);
	close(storm_kq);
	return got > 0 && storm_fail == 0 ? 0 : 1;
}

static void case_handler_trigger(void)
{
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(handler_trigger_child());
	int status = 0;
	pid_t done = 0;
	double t0 = kqt_now_ms();
	while ((done = waitpid(pid, &status, WNOHANG)) == 0 && kqt_now_ms() - t0 < 5000)
		kqt_sleep_ms(10);
	if (done == 0) {
		fprintf(stderr, "AT2-1: the loop hung (deadlock in kevent() from the handler)\n");
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	CHECK_EQ(done, pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	kqt_watchdog(30);
	kqt_run("AT2-1", "trigger_from_signal_handler", case_handler_trigger);
	return kqt_done();
}
