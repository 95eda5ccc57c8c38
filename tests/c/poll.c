/*
 * The kqueue descriptor is pollable (docs/semantics.md §3.4, U37): poll(), select()
 * and epoll report it readable while an event is pending, user events and timers
 * included.  After a zero-timeout kevent() that finds nothing it is not readable (the
 * exception is in docs/personality.md).  An outer kqueue can watch it with EVFILT_READ.
 */
#include "kqtest.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>

/* poll() on one descriptor: revents, or -1. */
static int poll_fd(int fd, int timeout_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	int rc = poll(&p, 1, timeout_ms);
	if (rc < 0)
		return -1;
	return rc == 0 ? 0 : p.revents;
}

/* U37 poll_user_event: POLLIN while a user event is pending, none after an empty poll. */
static void case_user(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(poll_fd(kq, 0), 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(poll_fd(kq, 0), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	int re = poll_fd(kq, 0);
	CHECK(re > 0);
	CHECK(re & POLLIN);
	CHECK_EQ(re & (POLLERR | POLLHUP | POLLNVAL | POLLOUT), 0);
	/* Polling does not consume it. */
	CHECK(poll_fd(kq, 0) & POLLIN);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(poll_fd(kq, 0), 0);
	/* Again, with a level-triggered event: readable until EV_CLEAR cancels it. */
	CHECK_EQ(kqt_user(kq, 2, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 2, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK(poll_fd(kq, 0) & POLLIN);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK(poll_fd(kq, 0) & POLLIN);
	CHECK_EQ(kqt_user(kq, 2, EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(poll_fd(kq, 0), 0);
	close(kq);
}

/* U37 poll_timer: a blocking poll() wakes when a timer expires. */
static void case_timer(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	double t0 = kqt_now_ms();
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 30, NULL), 0);
	CHECK_EQ(poll_fd(kq, 0), 0);
	int re = poll_fd(kq, 60000);
	double dt = kqt_now_ms() - t0;
	CHECK(re & POLLIN);
	CHECK(dt >= 25.0 && dt < 30000.0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.filter, EVFILT_TIMER);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(poll_fd(kq, 0), 0);
	close(kq);
}

struct trigger_later {
	int kq;
	long delay_ms;
};

static void *trigger_main(void *arg)
{
	struct trigger_later *t = (struct trigger_later *)arg;
	kqt_sleep_ms(t->delay_ms);
	kqt_user(t->kq, 1, 0, NOTE_TRIGGER, 0, NULL);
	return NULL;
}

/* U37 poll_cross_thread: a trigger from another thread wakes a blocked poll(). */
static void case_cross_thread(void)
{
	pthread_t t;
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	struct trigger_later tl = { kq, 50 };
	CHECK_EQ(pthread_create(&t, NULL, trigger_main, &tl), 0);
	int re = poll_fd(kq, 2000);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK(re & POLLIN);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	close(kq);
}

/* U37 select_and_epoll: select() and epoll see the same readiness. */
static void case_select_epoll(void)
{
	struct kevent ev;
	struct epoll_event ee, out;
	fd_set rd;
	struct timeval tv = { 0, 0 };
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK(kq < FD_SETSIZE);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	CHECK(ep >= 0);
	memset(&ee, 0, sizeof ee);
	ee.events = EPOLLIN;
	ee.data.fd = kq;
	CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, kq, &ee), 0);
	CHECK_EQ(epoll_wait(ep, &out, 1, 0), 0);
	FD_ZERO(&rd);
	FD_SET(kq, &rd);
	CHECK_EQ(select(kq + 1, &rd, NULL, NULL, &tv), 0);

	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 20, NULL), 0);
	CHECK_EQ(epoll_wait(ep, &out, 1, 2000), 1);
	CHECK_EQ(out.data.fd, kq);
	CHECK(out.events & EPOLLIN);
	FD_ZERO(&rd);
	FD_SET(kq, &rd);
	tv.tv_sec = 0;
	tv.tv_usec = 0;
	CHECK_EQ(select(kq + 1, &rd, NULL, NULL, &tv), 1);
	CHECK(FD_ISSET(kq, &rd));
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(epoll_wait(ep, &out, 1, 0), 0);
	close(ep);
	close(kq);
}

/* U37 kq_readable_on_trigger: an outer kqueue watches the inner one with EVFILT_READ. */
static void case_u37(void)
{
	struct kevent ev;
	int inner = kqueue();
	int outer = kqueue();
	CHECK(inner >= 0 && outer >= 0);
	CHECK_EQ(kqt_user(inner, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(outer, (uintptr_t)inner, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(outer, &ev, 1), 0);
	CHECK_EQ(kqt_user(inner, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_wait(outer, &ev, 1, 30000), 1);
	CHECK_EQ(ev.ident, (uintptr_t)inner);
	CHECK_EQ(ev.filter, EVFILT_READ);
	CHECK_EQ(ev.data, 1);
	CHECK(poll_fd(inner, 0) & POLLIN);
	CHECK_EQ(kqt_poll(inner, &ev, 1), 1);
	CHECK_EQ(kqt_poll(outer, &ev, 1), 0);
	close(outer);
	close(inner);
}

/*
 * G32 readable_throughout_timer_expiry: a oneshot 1 ms timer fires with no thread in
 * kevent(); once an epoll watching the kqueue reports it readable, poll() finds it readable
 * too (the library's thread, taking in the expiry, must not leave it idle for a moment),
 * and the event is there; 1,000 times in a row, the moment being short.
 */
static void case_timer_expiry(void)
{
	struct kevent ev;
	struct epoll_event ee, out;
	int idle = 0, missing = 0;
	int kq = kqueue();
	CHECK(kq >= 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	CHECK(ep >= 0);
	memset(&ee, 0, sizeof ee);
	ee.events = EPOLLIN;
	ee.data.fd = kq;
	CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, kq, &ee), 0);
	for (int i = 0; i < 1000; i++) {
		CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 1, NULL), 0);
		CHECK_EQ(epoll_wait(ep, &out, 1, 60000), 1);
		if (!(poll_fd(kq, 0) & POLLIN))
			idle++;
		if (kqt_wait(kq, &ev, 1, 30000) != 1 || ev.filter != EVFILT_TIMER)
			missing++;
	}
	CHECK_EQ(idle, 0);
	CHECK_EQ(missing, 0);
	close(ep);
	close(kq);
}

int main(void)
{
	kqt_watchdog(30);
	kqt_run("U37", "poll_user_event", case_user);
	kqt_run("U37", "poll_timer", case_timer);
	kqt_run("U37", "poll_cross_thread", case_cross_thread);
	kqt_run("U37", "select_and_epoll", case_select_epoll);
	kqt_run("U37", "kq_readable_on_trigger", case_u37);
	kqt_run("G32", "readable_throughout_timer_expiry", case_timer_expiry);
	return kqt_done();
}
