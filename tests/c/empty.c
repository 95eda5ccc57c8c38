/*
 * EVFILT_EMPTY through the C API, in both personalities: NetBSD t_empty's sock_tcp (E1:
 * active, not active once the send buffer is full, active again once the peer drains), a
 * thread asleep in kevent() woken by the drain, an AF_UNIX stream socket, and the errno for
 * the descriptors the BSDs refuse (pipes, regular files: EINVAL).
 */
#include "kqtest.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static const char *pers;

/* A connected loopback TCP pair, non-blocking: *w the writer, *r the accepted reader. */
static int tcp_pair(int *w, int *r)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	int l, one = 1;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, IPPROTO_TCP)) < 0)
		return -1;
	if (bind(l, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(l, 1) != 0 ||
	    getsockname(l, (struct sockaddr *)&sin, &slen) != 0)
		return -1;
	if ((*w = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, IPPROTO_TCP)) < 0)
		return -1;
	if (connect(*w, (struct sockaddr *)&sin, sizeof sin) != 0 && errno != EINPROGRESS)
		return -1;
	for (int i = 0; i < 1000; i++) {
		*r = accept4(l, NULL, NULL, SOCK_NONBLOCK);
		if (*r >= 0)
			break;
		kqt_sleep_ms(1);
	}
	close(l);
	setsockopt(*w, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return *r >= 0 ? 0 : -1;
}

/*
 * Writes until the socket would block.  t_empty slams the receive window shut with
 * SO_RCVBUF = 1 first; Linux keeps that window clamp for the life of the connection, so
 * here a 64 KiB send buffer fills while the reader does not read.
 */
static int fill(int w)
{
	char buf[1024] = { 0 };
	int sb = 65536;
	ssize_t rv;
	setsockopt(w, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
	do
		rv = write(w, buf, sizeof buf);
	while (rv > 0);
	return rv == -1 && errno == EAGAIN ? 0 : -1;
}

static void drain(int r)
{
	char buf[65536];
	while (read(r, buf, sizeof buf) > 0)
		;
}

/* E1 sock_tcp. */
static void case_e1(void)
{
	struct kevent ev;
	int kq, w, r, got = 0;
	CHECK_EQ(tcp_pair(&w, &r), 0);
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(kqt_change(kq, w, EVFILT_EMPTY, EV_ADD, 0, 0, NULL), 0);
	memset(&ev, 0, sizeof ev);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.ident, w);
	CHECK_EQ(ev.filter, EVFILT_EMPTY);
	CHECK_EQ(ev.data, 0);
	CHECK_EQ(fill(w), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	/* Drain, checking for up to a few seconds (t_empty retries, then waits 1 s). */
	for (int i = 0; i < 500 && !got; i++) {
		drain(r);
		got = kqt_wait(kq, &ev, 1, 10);
	}
	CHECK_EQ(got, 1);
	CHECK_EQ(ev.ident, w);
	CHECK_EQ(ev.filter, EVFILT_EMPTY);
	CHECK_EQ(ev.data, 0);
	close(kq);
	close(w);
	close(r);
}

/* A thread asleep in kevent() is woken when the peer drains the connection. */
static int sleeper_kq, sleeper_got;
static struct kevent sleeper_ev;

static void *sleeper(void *arg)
{
	(void)arg;
	sleeper_got = kqt_wait(sleeper_kq, &sleeper_ev, 1, 20000);
	return NULL;
}

static void case_e1_wakeup(void)
{
	pthread_t t;
	int w, r, done = 0;
	CHECK_EQ(tcp_pair(&w, &r), 0);
	CHECK((sleeper_kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(fill(w), 0);
	CHECK_EQ(kqt_change(sleeper_kq, w, EVFILT_EMPTY, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	sleeper_got = -2;
	CHECK_EQ(pthread_create(&t, NULL, sleeper, NULL), 0);
	kqt_sleep_ms(20);
	for (int i = 0; i < 20000 && !done; i++) {
		drain(r);
		kqt_sleep_ms(1);
		done = __atomic_load_n(&sleeper_got, __ATOMIC_SEQ_CST) != -2;
	}
	pthread_join(t, NULL);
	CHECK_EQ(sleeper_got, 1);
	CHECK_EQ(sleeper_ev.ident, w);
	CHECK_EQ(sleeper_ev.filter, EVFILT_EMPTY);
	close(sleeper_kq);
	close(w);
	close(r);
}

/* AF_UNIX stream: not empty until the peer has read everything. */
static void case_unix(void)
{
	struct kevent ev;
	char buf[16];
	int kq, s[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0);
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_EMPTY, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(write(s[0], "0123456789", 10), 10);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(read(s[1], buf, 10), 10);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 5000), 1);
	CHECK_EQ(ev.ident, s[0]);
	CHECK_EQ(ev.data, 0);
	close(kq);
	close(s[0]);
	close(s[1]);
}

/* Pipes, regular files and kqueues: EINVAL in both personalities; a closed number EBADF. */
static void case_einval(void)
{
	int kq, p[2], f;
	char path[] = "/tmp/kq-empty-XXXXXX";
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(pipe(p), 0);
	CHECK((f = mkstemp(path)) >= 0);
	unlink(path);
	CHECK_ERR(kqt_change(kq, p[0], EVFILT_EMPTY, EV_ADD, 0, 0, NULL), EINVAL);
	CHECK_ERR(kqt_change(kq, p[1], EVFILT_EMPTY, EV_ADD, 0, 0, NULL), EINVAL);
	CHECK_ERR(kqt_change(kq, f, EVFILT_EMPTY, EV_ADD, 0, 0, NULL), EINVAL);
	CHECK_ERR(kqt_change(kq, kq, EVFILT_EMPTY, EV_ADD, 0, 0, NULL), EINVAL);
	close(p[0]);
	close(p[1]);
	close(f);
	CHECK_ERR(kqt_change(kq, f, EVFILT_EMPTY, EV_ADD, 0, 0, NULL), EBADF);
	close(kq);
}

static void round_of(const char *personality)
{
	char name[64];
	pers = personality;
	snprintf(name, sizeof name, "sock_tcp/%s", pers);
	kqt_run("E1", name, case_e1);
	snprintf(name, sizeof name, "sock_tcp_drain_wakes_sleeper/%s", pers);
	kqt_run("E1", name, case_e1_wakeup);
	snprintf(name, sizeof name, "unix_stream/%s", pers);
	kqt_run("EM", name, case_unix);
	snprintf(name, sizeof name, "pipe_file_kqueue_einval/%s", pers);
	kqt_run("EM", name, case_einval);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	kqt_watchdog(90);
	round_of("netbsd");
	round_of("freebsd");
	return kqt_done();
}
