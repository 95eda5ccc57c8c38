/*
 * EVFILT_READ and EVFILT_WRITE on eventfds and timerfds, through the C API, in both
 * personalities (R7: data is what there is to read; W4: data is the room to write):
 *   eventfd READ: data the counter (both);
 *   eventfd WRITE: writable below 2^64 - 2, data the counter (NetBSD) or the room left,
 *     2^64 - 2 - counter as intptr_t (FreeBSD);
 *   timerfd READ: data the unread expirations (NetBSD), 0 (FreeBSD);
 *   timerfd WRITE: EINVAL (both).
 * The counters are read without being consumed.  With KQ_NO_PROC_FDINFO set (what a
 * system without /proc gets) data is 0 and the events follow readiness alone.
 */
#include "kqtest.h"

#include <sys/eventfd.h>
#include <sys/timerfd.h>

#define EVENTFD_MAX (UINT64_MAX - 1)

static int no_fdinfo(void)
{
	return getenv("KQ_NO_PROC_FDINFO") != NULL;
}

static int is_netbsd(const char *personality)
{
	return personality != NULL && strcmp(personality, "netbsd") == 0;
}

static int add(int fd, uint64_t n)
{
	return write(fd, &n, sizeof n) == (ssize_t)sizeof n ? 0 : -1;
}

/* Reads an eventfd's counter or a timerfd's expirations (0 when there are none). */
static uint64_t take(int fd)
{
	uint64_t n = 0;
	if (read(fd, &n, sizeof n) != (ssize_t)sizeof n)
		return 0;
	return n;
}

static intptr_t read_data(uint64_t count)
{
	return no_fdinfo() ? 0 : (intptr_t)count;
}

static intptr_t write_data(const char *personality, uint64_t count)
{
	if (no_fdinfo())
		return 0;
	return is_netbsd(personality) ? (intptr_t)count : (intptr_t)(EVENTFD_MAX - count);
}

/* R7: the counter, level (more writes raise it), not consumed; a read ends the event. */
static void check_eventfd_read(const char *personality)
{
	struct kevent ev;
	int kq = kqt_kqueue(personality);
	int e = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK(kq >= 0 && e >= 0);
	CHECK_EQ(kqt_change(kq, (uintptr_t)e, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(add(e, 3), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.ident, e);
	CHECK_EQ(ev.filter, EVFILT_READ);
	CHECK_EQ(ev.data, read_data(3));
	CHECK_EQ(add(e, 4), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.data, read_data(7));
	CHECK_EQ(take(e), 7);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	/* EV_CLEAR (a new knote: a modification keeps the flags): each write is news, with
	 * the whole counter. */
	CHECK_EQ(kqt_change(kq, (uintptr_t)e, EVFILT_READ, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, (uintptr_t)e, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(add(e, 2), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.data, read_data(2));
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(add(e, 5), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.data, read_data(7));
	close(e);
	close(kq);
}

/* W4: writable below the maximum, data by personality; at the maximum, nothing. */
static void check_eventfd_write(const char *personality)
{
	struct kevent ev;
	int kq = kqt_kqueue(personality);
	int e = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK(kq >= 0 && e >= 0);
	CHECK_EQ(kqt_change(kq, (uintptr_t)e, EVFILT_WRITE, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.filter, EVFILT_WRITE);
	CHECK_EQ(ev.data, write_data(personality, 0));
	CHECK_EQ(add(e, 5), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.data, write_data(personality, 5));
	CHECK_EQ(add(e, EVENTFD_MAX - 5), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK(take(e) == EVENTFD_MAX);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.data, write_data(personality, 0));
	close(e);
	close(kq);
}

/*
 * R7: a periodic timerfd (1 ms) left 30 ms: NetBSD reports the expirations (the missed
 * periods counted), FreeBSD 0; a read afterwards gets at least as many.  W4: EVFILT_WRITE
 * is refused.
 */
static void check_timerfd_read(const char *personality)
{
	struct kevent ev;
	struct itimerspec its = { { 0, 1000000 }, { 0, 1000000 } };
	int kq = kqt_kqueue(personality);
	int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	CHECK(kq >= 0 && t >= 0);
	CHECK_ERR(kqt_change(kq, (uintptr_t)t, EVFILT_WRITE, EV_ADD, 0, 0, NULL), EINVAL);
	CHECK_ERR(kqt_change(kq, (uintptr_t)t, EVFILT_WRITE, EV_DELETE, 0, 0, NULL), ENOENT);
	CHECK_EQ(kqt_change(kq, (uintptr_t)t, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(timerfd_settime(t, 0, &its, NULL), 0);
	kqt_sleep_ms(30);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 1000), 1);
	CHECK_EQ(ev.filter, EVFILT_READ);
	uint64_t got = take(t);
	CHECK(got >= 1);
	if (is_netbsd(personality) && !no_fdinfo()) {
		CHECK(ev.data >= 10);
		CHECK(got >= (uint64_t)ev.data);
	} else {
		CHECK_EQ(ev.data, 0);
	}
	memset(&its, 0, sizeof its);
	CHECK_EQ(timerfd_settime(t, 0, &its, NULL), 0);
	take(t);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	close(t);
	close(kq);
}

static void case_r7_eventfd_freebsd(void) { check_eventfd_read(NULL); }
static void case_r7_eventfd_netbsd(void) { check_eventfd_read("netbsd"); }
static void case_w4_eventfd_freebsd(void) { check_eventfd_write(NULL); }
static void case_w4_eventfd_netbsd(void) { check_eventfd_write("netbsd"); }
static void case_r7_timerfd_freebsd(void) { check_timerfd_read(NULL); }
static void case_r7_timerfd_netbsd(void) { check_timerfd_read("netbsd"); }

int main(void)
{
	kqt_watchdog(60);
	kqt_run("R7", "eventfd_counter_freebsd", case_r7_eventfd_freebsd);
	kqt_run("R7", "eventfd_counter_netbsd", case_r7_eventfd_netbsd);
	kqt_run("W4", "eventfd_write_freebsd", case_w4_eventfd_freebsd);
	kqt_run("W4", "eventfd_write_netbsd", case_w4_eventfd_netbsd);
	kqt_run("R7", "timerfd_expirations_freebsd", case_r7_timerfd_freebsd);
	kqt_run("R7", "timerfd_expirations_netbsd", case_r7_timerfd_netbsd);
	return kqt_done();
}
