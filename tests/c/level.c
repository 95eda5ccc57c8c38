/*
 * Plain level EVFILT_READ knotes (no EV_CLEAR, EV_ONESHOT or EV_DISPATCH), whose
 * descriptors the library holds level-triggered in the kqueue's epoll once delivered,
 * through the C library, in both personalities (FreeBSD: the kqueue() default; NetBSD:
 * with KQUEUE_PERSONALITY=netbsd):
 *   - the kqueue descriptor's readability, by poll(2) and by an edge-triggered epoll
 *     watcher, through read-all, new data and end of file;
 *   - EV_DISABLE/EV_ENABLE; a WRITE knote joining and leaving;
 *   - sockets never connected and listening sockets: a blocking wait sleeps its timeout
 *     out and leaves the kqueue descriptor unreadable;
 *   - a number closed by a raw system call (the library not told) and taken by another
 *     socket: nothing reported for the new file, no wait spinning;
 *   - an outer kqueue's EV_CLEAR knote on the kqueue fires for new activations only;
 *   - two threads waiting on one level knote both get it, call after call.
 * A knote delivered again without being drained stays queued, as on the BSDs: the kqueue
 * descriptor is readable until a kevent() call finds it drained.  With KQ_NO_LEVEL set
 * (every registration edge-triggered) the same program passes: the only difference
 * allowed is that the kqueue descriptor is then readable after any read until a kevent()
 * call finds the knote drained.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>

static const char *pers;	/* "freebsd" or "netbsd" */
static int level_on;		/* KQ_NO_LEVEL unset */

static int new_kq(void)
{
	return kqt_kqueue(pers);
}

/* One record expected from a zero-timeout kevent(): READ on fd with data and EV_EOF. */
#define CHECK_READ(kq, fd, d, eof) do {					\
	struct kevent ev_;						\
	CHECK_EQ(kqt_poll(kq, &ev_, 1), 1);				\
	CHECK_EQ(ev_.ident, (uintptr_t)(fd));				\
	CHECK_EQ(ev_.filter, EVFILT_READ);				\
	CHECK_EQ(ev_.data, d);						\
	CHECK_EQ(!!(ev_.flags & EV_EOF), eof);				\
} while (0)

/* R1 kq_fd_tracks_level_knote, on a socket pair then on a pipe. */
static void tracks(int fd, int peer)
{
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	int ep = kqt_edge_watcher(kq);
	CHECK(ep >= 0);
	CHECK_EQ(kqt_change(kq, fd, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK(!kqt_readable(kq));
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	kqt_drain_edges(ep);

	/* Delivered, then read: not readable from the read on. */
	for (int n = 1; n <= 3; n++) {
		CHECK_EQ(write(peer, "abc", n), n);
		CHECK(kqt_edges(ep, 1000) >= 1);
		CHECK(kqt_readable(kq));
		CHECK_READ(kq, fd, n, 0);
		CHECK(kqt_readable(kq));
		CHECK_EQ(kqt_take(fd, n), n);
		if (level_on)
			CHECK(!kqt_readable(kq));
		CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
		CHECK(!kqt_readable(kq));
		kqt_drain_edges(ep);
	}

	/* Delivered again and again, then read: readable until a scan finds it drained. */
	CHECK_EQ(write(peer, "de", 2), 2);
	CHECK(kqt_edges(ep, 1000) >= 1);
	for (int i = 0; i < 3; i++) {
		CHECK_READ(kq, fd, 2, 0);
		CHECK(kqt_readable(kq));
	}
	CHECK_EQ(kqt_take(fd, 2), 2);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK(!kqt_readable(kq));
	kqt_drain_edges(ep);

	CHECK_EQ(close(peer), 0);
	CHECK(kqt_edges(ep, 1000) >= 1);
	CHECK(kqt_readable(kq));
	CHECK_READ(kq, fd, 0, 1);
	CHECK(kqt_readable(kq));
	CHECK_READ(kq, fd, 0, 1);
	close(ep);
	close(kq);
}

static void case_tracks(void)
{
	int s[2], p[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0);
	tracks(s[0], s[1]);
	close(s[0]);
	if (kqt_case_failed)
		return;
	CHECK_EQ(pipe2(p, O_NONBLOCK), 0);
	tracks(p[0], p[1]);
	close(p[0]);
}

/* R2 level_disable_enable */
static void case_disable_enable(void)
{
	int s[2];
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(write(s[1], "abcd", 4), 4);
	CHECK_READ(kq, s[0], 4, 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_DISABLE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK(!kqt_readable(kq));
	CHECK_EQ(write(s[1], "e", 1), 1);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ENABLE, 0, 0, NULL), 0);
	CHECK(kqt_readable(kq));
	CHECK_READ(kq, s[0], 5, 0);
	CHECK_READ(kq, s[0], 5, 0);
	CHECK_EQ(kqt_take(s[0], 5), 5);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK(!kqt_readable(kq));
	close(s[0]);
	close(s[1]);
	close(kq);
}

/* R1 level_write_knote_added_removed */
static void case_write_added_removed(void)
{
	int s[2];
	struct kevent ev[4];
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(write(s[1], "ab", 2), 2);
	CHECK_READ(kq, s[0], 2, 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_WRITE, EV_ADD, 0, 0, NULL), 0);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(kqt_poll(kq, ev, 4), 2);
		CHECK(ev[0].filter != ev[1].filter);
	}
	CHECK_EQ(kqt_take(s[0], 2), 2);
	CHECK_EQ(kqt_poll(kq, ev, 4), 1);
	CHECK_EQ(ev[0].filter, EVFILT_WRITE);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_WRITE, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, ev, 4), 0);
	CHECK(!kqt_readable(kq));
	CHECK_EQ(write(s[1], "c", 1), 1);
	CHECK(kqt_readable(kq));
	CHECK_READ(kq, s[0], 1, 0);
	CHECK_EQ(kqt_take(s[0], 1), 1);
	if (level_on)
		CHECK(!kqt_readable(kq));
	CHECK_EQ(kqt_poll(kq, ev, 4), 0);
	CHECK(!kqt_readable(kq));
	close(s[0]);
	close(s[1]);
	close(kq);
}

/* R1 unconnected_listening_no_spin */
static void case_unconnected_listening(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	int tcp = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int unx = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	CHECK(tcp >= 0 && unx >= 0 && udp >= 0 && l >= 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
	CHECK_EQ(listen(l, 4), 0);
	CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &len), 0);
	CHECK_EQ(kqt_change(kq, tcp, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, unx, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, udp, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, l, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_quiet_wait(kq), 0);
	CHECK_EQ(kqt_quiet_wait(kq), 0);

	int c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(c >= 0);
	CHECK_EQ(connect(c, (struct sockaddr *)&a, sizeof a), 0);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(ev.ident, l);
	CHECK_EQ(ev.data, 1);
	CHECK(kqt_readable(kq));
	int conn = accept(l, NULL, NULL);
	CHECK(conn >= 0);
	if (level_on)
		CHECK(!kqt_readable(kq));
	CHECK_EQ(kqt_quiet_wait(kq), 0);
	close(conn);
	close(c);
	close(l);
	close(udp);
	close(unx);
	close(tcp);
	close(kq);
}

/* G22 number_closed_unseen_and_reused */
static void case_closed_unseen(void)
{
	int s[2], t[2];
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(write(s[1], "a", 1), 1);
	CHECK_READ(kq, s[0], 1, 0);
	int keep = dup(s[0]);
	CHECK(keep >= 0);
	/* Closed and taken again by system calls the library does not see. */
	CHECK_EQ(syscall(SYS_close, s[0]), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, t), 0);
	if (t[0] != s[0]) {
		CHECK_EQ(syscall(SYS_dup3, t[0], s[0], O_CLOEXEC), s[0]);
		CHECK_EQ(syscall(SYS_close, t[0]), 0);
	}
	CHECK_EQ(write(t[1], "bc", 2), 2);
	CHECK_EQ(write(s[1], "def", 3), 3);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(kqt_quiet_wait(kq), 0);
	CHECK_EQ(write(s[1], "g", 1), 1);
	CHECK_EQ(write(t[1], "h", 1), 1);
	CHECK_EQ(kqt_quiet_wait(kq), 0);
	/* A knote made now watches the new file. */
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_READ(kq, s[0], 3, 0);
	close(s[0]);
	close(s[1]);
	close(t[1]);
	close(keep);
	close(kq);
}

/* U37 outer_clear_new_activations */
static void case_outer_clear(void)
{
	int s[2];
	struct kevent ev;
	int inner = new_kq(), outer = new_kq();
	CHECK(inner >= 0 && outer >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0);
	CHECK_EQ(kqt_change(inner, s[0], EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(outer, inner, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(outer, &ev, 1), 0);
	CHECK_EQ(write(s[1], "a", 1), 1);
	CHECK_EQ(kqt_wait(outer, &ev, 1, 30000), 1);
	CHECK_EQ(ev.ident, inner);
	CHECK_EQ(ev.data, 1);
	for (int i = 0; i < 3; i++) {
		CHECK_READ(inner, s[0], 1, 0);
		CHECK_EQ(kqt_poll(outer, &ev, 1), 0);
	}
	CHECK_EQ(kqt_take(s[0], 1), 1);
	CHECK_EQ(kqt_poll(inner, &ev, 1), 0);
	CHECK_EQ(kqt_poll(outer, &ev, 1), 0);
	CHECK_EQ(write(s[1], "bc", 2), 2);
	CHECK_EQ(kqt_wait(outer, &ev, 1, 30000), 1);
	CHECK_EQ(ev.data, 1);
	CHECK_READ(inner, s[0], 2, 0);
	close(s[0]);
	close(s[1]);
	close(outer);
	close(inner);
}

/* G25 level_threads_wait: two threads, 2,000 blocking one-event calls each. */
static int waiter_kq, waiter_fd;

static void *waiter(void *arg)
{
	struct kevent ev;
	(void)arg;
	for (int i = 0; i < 2000; i++)
		if (kqt_wait(waiter_kq, &ev, 1, 5000) != 1 || ev.ident != (uintptr_t)waiter_fd ||
		    ev.data != 1)
			return (void *)1;
	return NULL;
}

static void case_threads_wait(void)
{
	int p[2];
	pthread_t t[2];
	void *r[2];
	waiter_kq = new_kq();
	CHECK(waiter_kq >= 0);
	CHECK_EQ(pipe2(p, O_NONBLOCK), 0);
	waiter_fd = p[0];
	CHECK_EQ(kqt_change(waiter_kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(write(p[1], "x", 1), 1);
	for (int i = 0; i < 2; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, waiter, NULL), 0);
	for (int i = 0; i < 2; i++)
		CHECK_EQ(pthread_join(t[i], &r[i]), 0);
	CHECK(r[0] == NULL && r[1] == NULL);
	close(p[0]);
	close(p[1]);
	close(waiter_kq);
}

static void run_all(const char *p)
{
	pers = p;
	kqt_run_as(pers, "R1", "kq_fd_tracks_level_knote", case_tracks);
	kqt_run_as(pers, "R2", "level_disable_enable", case_disable_enable);
	kqt_run_as(pers, "R1", "level_write_knote_added_removed", case_write_added_removed);
	kqt_run_as(pers, "R1", "unconnected_listening_no_spin", case_unconnected_listening);
	kqt_run_as(pers, "G22", "number_closed_unseen_reused", case_closed_unseen);
	kqt_run_as(pers, "U37", "outer_clear_new_activations", case_outer_clear);
	kqt_run_as(pers, "G25", "level_threads_wait", case_threads_wait);
}

int main(void)
{
	kqt_watchdog(60);
	level_on = getenv("KQ_NO_LEVEL") == NULL;
	run_all("freebsd");
	run_all("netbsd");
	return kqt_done();
}
