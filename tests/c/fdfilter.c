/*
 * EVFILT_READ and EVFILT_WRITE on descriptors, through the C API: what data reports for
 * sockets, pipes, listening sockets and regular files, EV_EOF, the pipe write filter with
 * its reader gone (the FreeBSD and NetBSD errnos differ), and EV_CLEAR, EV_ONESHOT,
 * EV_DISPATCH, EV_DISABLE/EV_ENABLE on a socket.
 */
#include "kqtest.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

static const char ones[8] = "11111111";

/* A socketpair and a kqueue (default personality). */
static int setup(int *kq, int s[2])
{
	*kq = kqueue();
	if (*kq < 0)
		return -1;
	return socketpair(AF_UNIX, SOCK_STREAM, 0, s);
}

static void teardown(int kq, int s[2])
{
	close(s[0]);
	close(s[1]);
	close(kq);
}

/* Reads and discards n bytes from fd. */
static int drain(int fd, size_t n)
{
	char buf[64];
	while (n > 0) {
		ssize_t r = read(fd, buf, n < sizeof buf ? n : sizeof buf);
		if (r <= 0)
			return -1;
		n -= (size_t)r;
	}
	return 0;
}

/* socket_data: data is the number of bytes readable; udata comes back. */
static void case_socket_data(void)
{
	int kq, s[2];
	struct kevent ev;
	CHECK_EQ(setup(&kq, s), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ADD, 0, 0, &s[0]), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(write(s[1], "hello", 5), 5);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(ev.ident, s[0]);
	CHECK_EQ(ev.filter, EVFILT_READ);
	CHECK_EQ(ev.data, 5);
	CHECK_EQ(ev.flags & (EV_EOF | EV_ERROR), 0);
	CHECK(ev.udata == &s[0]);
	/* Level-triggered: reported again, with the current count. */
	CHECK_EQ(drain(s[0], 2), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.data, 3);
	CHECK_EQ(drain(s[0], 3), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	teardown(kq, s);
}

/* R6 socket_eof: closing the peer sets EV_EOF; data still counts unread bytes. */
static void case_socket_eof(void)
{
	int kq, s[2];
	struct kevent ev;
	CHECK_EQ(setup(&kq, s), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(write(s[1], "abc", 3), 3);
	CHECK_EQ(close(s[1]), 0);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(ev.ident, s[0]);
	CHECK(ev.flags & EV_EOF);
	CHECK_EQ(ev.data, 3);
	CHECK_EQ(drain(s[0], 3), 0);
	/* Still at EOF with nothing left: reported, data 0. */
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK(ev.flags & EV_EOF);
	CHECK_EQ(ev.data, 0);
	close(s[0]);
	close(kq);
}

/* pipe_write_space: data is the free space of the pipe buffer (65536 when empty). */
static void case_pipe_write_space(void)
{
	int p[2];
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(pipe(p), 0);
	int size = fcntl(p[1], F_GETPIPE_SZ);
	CHECK_EQ(size, 65536);
	CHECK_EQ(kqt_change(kq, p[1], EVFILT_WRITE, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(ev.ident, p[1]);
	CHECK_EQ(ev.filter, EVFILT_WRITE);
	CHECK_EQ(ev.data, size);
	CHECK_EQ(ev.flags & EV_EOF, 0);
	char buf[1000];
	memset(buf, 'x', sizeof buf);
	CHECK_EQ(write(p[1], buf, sizeof buf), (ssize_t)sizeof buf);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.data, size - (long)sizeof buf);
	close(p[0]);
	close(p[1]);
	close(kq);
}

/*
 * W1 pipe_write_reader_closed: EVFILT_WRITE on a pipe whose reader is closed fails with
 * EPIPE (FreeBSD, the default) or EBADF (NetBSD), as a return value without an eventlist
 * and as an EV_ERROR entry with one.
 */
static void pipe_write_closed(const char *personality, int expect)
{
	int p[2];
	struct kevent c, ev;
	struct timespec zero = { 0, 0 };
	int kq = kqt_kqueue(personality);
	CHECK(kq >= 0);
	CHECK_EQ(pipe(p), 0);
	CHECK_EQ(close(p[0]), 0);
	CHECK_ERR(kqt_change(kq, p[1], EVFILT_WRITE, EV_ADD, 0, 0, NULL), expect);
	EV_SET(&c, p[1], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
	CHECK_EQ(kevent(kq, &c, 1, &ev, 1, &zero), 1);
	CHECK(ev.flags & EV_ERROR);
	CHECK_EQ(ev.data, expect);
	CHECK_EQ(ev.ident, p[1]);
	/* No knote was made. */
	CHECK_ERR(kqt_change(kq, p[1], EVFILT_WRITE, EV_DELETE, 0, 0, NULL), ENOENT);
	close(p[1]);
	close(kq);
}

static void case_w1_freebsd(void)
{
	pipe_write_closed(NULL, EPIPE);
}

static void case_w1_netbsd(void)
{
	pipe_write_closed("netbsd", EBADF);
}

/* A TCP socket listening on an ephemeral loopback port, whose address goes to *addr. */
static int tcp_listener(struct sockaddr_in *addr)
{
	socklen_t len = sizeof *addr;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0)
		return -1;
	memset(addr, 0, sizeof *addr);
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (struct sockaddr *)addr, sizeof *addr) != 0 || listen(l, 16) != 0 ||
	    getsockname(l, (struct sockaddr *)addr, &len) != 0) {
		close(l);
		return -1;
	}
	return l;
}

/* Waits (up to 1 s) for the event of kq to report data == want; returns the last data. */
static long wait_data(int kq, long want)
{
	struct kevent ev;
	long last = -1;
	double end = kqt_now_ms() + 1000.0;
	while (kqt_now_ms() < end) {
		int n = kqt_wait(kq, &ev, 1, 100);
		if (n < 0)
			return -1;
		if (n == 1) {
			last = ev.data;
			if (last == want)
				break;
			kqt_sleep_ms(10);
		}
	}
	return last;
}

/* listen_backlog: on a listening socket, data is the number of pending connections. */
static void case_listen_backlog(void)
{
	struct sockaddr_in addr;
	struct kevent ev;
	int c[3];
	int kq = kqueue();
	CHECK(kq >= 0);
	int l = tcp_listener(&addr);
	CHECK(l >= 0);
	CHECK_EQ(kqt_change(kq, l, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	for (int i = 0; i < 3; i++) {
		c[i] = socket(AF_INET, SOCK_STREAM, 0);
		CHECK(c[i] >= 0);
		CHECK_EQ(connect(c[i], (struct sockaddr *)&addr, sizeof addr), 0);
	}
	CHECK_EQ(wait_data(kq, 3), 3);
	int a = accept(l, NULL, NULL);
	CHECK(a >= 0);
	CHECK_EQ(wait_data(kq, 2), 2);
	close(a);
	for (int i = 0; i < 3; i++)
		close(c[i]);
	close(l);
	close(kq);
}

/* regular_file: data is the size minus the offset; nothing at EOF; growth fires again. */
static void case_regular_file(void)
{
	char path[] = "/tmp/kq-fdfilter-XXXXXX";
	char buf[1000];
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	unlink(path);
	memset(buf, 'f', sizeof buf);
	CHECK_EQ(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
	CHECK_EQ(lseek(fd, 300, SEEK_SET), 300);
	CHECK_EQ(kqt_change(kq, fd, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(ev.ident, fd);
	CHECK_EQ(ev.data, 700);
	CHECK_EQ(lseek(fd, 0, SEEK_END), 1000);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(pwrite(fd, buf, 10, 1000), 10);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(ev.data, 10);
	close(fd);
	close(kq);
}

/* R1 socket_add_del_get: 1 byte gives data 1, a drain gives nothing; deleted: silent. */
static void case_r1(void)
{
	int kq, s[2];
	struct kevent ev;
	CHECK_EQ(setup(&kq, s), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ADD, 0, 0, &s[0]), 0);
	CHECK_EQ(write(s[1], ones, 1), 1);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(ev.ident, s[0]);
	CHECK_EQ(ev.data, 1);
	CHECK(ev.udata == &s[0]);
	CHECK_EQ(drain(s[0], 1), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_DELETE, 0, 0, &s[0]), 0);
	CHECK_EQ(write(s[1], ones, 1), 1);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 100), 0);
	CHECK_ERR(kqt_change(kq, s[0], EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
	teardown(kq, s);
}

/* R2 socket_disable_and_enable: data before EV_ADD|EV_DISABLE: none until EV_ENABLE. */
static void case_r2(void)
{
	int kq, s[2];
	struct kevent ev;
	CHECK_EQ(setup(&kq, s), 0);
	CHECK_EQ(write(s[1], ones, 1), 1);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ADD | EV_DISABLE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 100), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ENABLE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.ident, s[0]);
	CHECK_EQ(ev.data, 1);
	teardown(kq, s);
}

/* R3 socket_oneshot: one event, then none (data is still there); then EV_DELETE: ENOENT. */
static void case_r3(void)
{
	int kq, s[2];
	struct kevent ev;
	CHECK_EQ(setup(&kq, s), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(write(s[1], ones, 1), 1);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(ev.ident, s[0]);
	CHECK_EQ(ev.data, 1);
	CHECK(ev.flags & EV_ONESHOT);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 100), 0);
	CHECK_ERR(kqt_change(kq, s[0], EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
	teardown(kq, s);
}

/* R4 socket_clear: 2 bytes give data 2; after delivery nothing until new data arrives. */
static void case_r4(void)
{
	int kq, s[2];
	struct kevent ev;
	CHECK_EQ(setup(&kq, s), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(write(s[1], ones, 2), 2);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(ev.data, 2);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(drain(s[0], 1), 0);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 100), 0);
	/* New data fires again; data counts everything readable. */
	CHECK_EQ(write(s[1], ones, 1), 1);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(ev.data, 2);
	teardown(kq, s);
}

/*
 * R5 socket_dispatch: exactly one event, then the knote is disabled (data still there);
 * EV_ENABLE reports it again; EV_DELETE of the disabled knote succeeds.
 */
static void case_r5(void)
{
	int kq, s[2];
	struct kevent ev;
	CHECK_EQ(setup(&kq, s), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ADD | EV_DISPATCH, 0, 0, NULL), 0);
	CHECK_EQ(write(s[1], ones, 1), 1);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(ev.data, 1);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 100), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ENABLE | EV_DISPATCH, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.data, 1);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(drain(s[0], 1), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_DELETE, 0, 0, NULL), 0);
	CHECK_ERR(kqt_change(kq, s[0], EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
	teardown(kq, s);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	kqt_watchdog(60);
	kqt_run("FD", "socket_data", case_socket_data);
	kqt_run("R6", "socket_eof", case_socket_eof);
	kqt_run("FD", "pipe_write_space", case_pipe_write_space);
	kqt_run("W1", "pipe_write_reader_closed_freebsd", case_w1_freebsd);
	kqt_run("W1", "pipe_write_reader_closed_netbsd", case_w1_netbsd);
	kqt_run("FD", "listen_backlog", case_listen_backlog);
	kqt_run("FD", "regular_file", case_regular_file);
	kqt_run("R1", "socket_add_del_get", case_r1);
	kqt_run("R2", "socket_disable_and_enable", case_r2);
	kqt_run("R3", "socket_oneshot", case_r3);
	kqt_run("R4", "socket_clear", case_r4);
	kqt_run("R5", "socket_dispatch", case_r5);
	return kqt_done();
}
