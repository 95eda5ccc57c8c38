/*
 * G7 eintr: a signal during the wait makes kevent() fail with EINTR, even with
 * SA_RESTART (docs/semantics.md §1.4); changes of the same call stay applied.
 */
#include "kqtest.h"

#include <sys/time.h>

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static int install(int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGALRM, &sa, NULL);
}

/* Arms a one-shot process-directed SIGALRM in ms milliseconds. */
static int arm(long ms)
{
	struct itimerval it;
	memset(&it, 0, sizeof it);
	it.it_value.tv_sec = ms / 1000;
	it.it_value.tv_usec = (ms % 1000) * 1000;
	return setitimer(ITIMER_REAL, &it, NULL);
}

/* G7 eintr: NULL timeout, SA_RESTART handler. */
static void case_restart(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(install(SA_RESTART), 0);
	int before = alarms;
	CHECK_EQ(arm(100), 0);
	double t0 = kqt_now_ms();
	CHECK_ERR(kevent(kq, NULL, 0, &ev, 1, NULL), EINTR);
	CHECK(kqt_now_ms() - t0 >= 90.0);
	CHECK_EQ(alarms, before + 1);
	close(kq);
}

/* G7 eintr_timeout: a finite timeout is interrupted too, not resumed. */
static void case_timeout(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(install(SA_RESTART), 0);
	CHECK_EQ(arm(100), 0);
	double t0 = kqt_now_ms();
	CHECK_ERR(kqt_wait(kq, &ev, 1, 60000), EINTR);
	CHECK(kqt_now_ms() - t0 < 30000.0);
	close(kq);
}

/* G7 eintr_changes_applied: the changes before the wait stay applied. */
static void case_changes(void)
{
	struct kevent c, ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(install(0), 0);
	CHECK_EQ(arm(100), 0);
	EV_SET(&c, 5, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
	CHECK_ERR(kevent(kq, &c, 1, &ev, 1, NULL), EINTR);
	CHECK_EQ(kqt_user(kq, 5, EV_DELETE, 0, 0, NULL), 0);
	close(kq);
}

/* G7 eintr_with_timer: also when the kqueue has a timer armed (and the library a timer thread). */
static void case_with_timer(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD, 0, 10000, NULL), 0);
	CHECK_EQ(install(SA_RESTART), 0);
	CHECK_EQ(arm(100), 0);
	CHECK_ERR(kevent(kq, NULL, 0, &ev, 1, NULL), EINTR);
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), 0);
	close(kq);
}

int main(void)
{
	kqt_watchdog(30);
	kqt_run("G7", "eintr", case_restart);
	kqt_run("G7", "eintr_timeout", case_timeout);
	kqt_run("G7", "eintr_changes_applied", case_changes);
	kqt_run("G7", "eintr_with_timer", case_with_timer);
	return kqt_done();
}
