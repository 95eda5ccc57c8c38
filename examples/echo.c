/*
 * echo: a TCP echo server on a kqueue event loop, serving a burst of short connections
 * from a client thread in the same program.
 *
 * The event loop owns one kqueue:
 *   - EVFILT_READ on the listening socket: data is the number of pending connections, and
 *     the loop accepts that many.
 *   - EVFILT_READ on each connection (level-triggered): data is the number of bytes
 *     waiting; the loop reads them and queues them for writing back. EV_EOF says the client
 *     finished sending.
 *   - EVFILT_WRITE on each connection, added disabled with the connection and enabled
 *     only while echoed bytes wait for room in the socket's send buffer.
 *   - EVFILT_USER ident 1: the client thread triggers it when it has checked every reply.
 * A connection whose client finished sending and whose bytes were all written back is
 * closed with close() alone, without EV_DELETE, the way nginx does it: closing a
 * descriptor drops its knotes, so the number can be given to the next connection
 * accepted and registered afresh.
 *
 * The client opens CONNS connections in bursts of BURST (so several wait in the listen
 * queue at once), sends a line on each, shuts down its sending side and reads until end
 * of file, expecting exactly the line back. Every LONG_EVERY-th line is LONG_BYTES long,
 * far more than the (deliberately small) socket buffers hold while the client is still
 * sending, so the server must wait for EVFILT_WRITE to finish echoing it.
 *
 * The program prints what it served and exits 0 only if every echo matched. It never
 * hangs: each kevent() wait and each client socket operation times out, and the whole run
 * is bounded by RUN_LIMIT_S.
 *
 * Build and run (examples/run-demo.sh does this):
 *   cargo build --release
 *   cc -Iinclude examples/echo.c -Ltarget/release -lkqueue -lpthread -o echo
 *   LD_LIBRARY_PATH=target/release ./echo
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <sys/event.h>

#define CONNS		200	/* connections the client makes */
#define BURST		10	/* connections open at once */
#define LONG_EVERY	25	/* every 25th line is long */
#define LONG_BYTES	(1 << 20)
#define DONE		1	/* EVFILT_USER ident: the client has finished */
#define WAIT_S		2	/* limit of one kevent() wait, and of one client socket call */
#define RUN_LIMIT_S	8	/* limit of the whole run */
#define EXIT_SKIP	77	/* the library cannot watch sockets */
#define SOCKBUF		16384	/* send buffer of a connection, receive buffer of a client */

static int kq;

static void die(const char *what)
{
	fprintf(stderr, "echo: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void on_alarm(int sig)
{
	static const char msg[] = "echo: still running after the time limit, giving up\n";
	(void)sig;
	if (write(2, msg, sizeof msg - 1) < 0) {
		/* nothing more to say */
	}
	_exit(1);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Applies one change; returns 0 or the errno it failed with. */
static int change(uintptr_t ident, short filter, unsigned short flags, void *udata)
{
	struct kevent c;
	EV_SET(&c, ident, filter, flags, 0, 0, udata);
	return kevent(kq, &c, 1, NULL, 0, NULL) == -1 ? errno : 0;
}

/* ---- the client --------------------------------------------------------------------- */

struct client_result {
	int done;		/* connections whose reply was read to end of file */
	int matched;		/* ... and was exactly the line sent */
	int failed;		/* connections that failed (connect, send, receive, timeout) */
	long sent, received;	/* bytes */
};

static struct sockaddr_in server_addr;
static struct client_result result;

/* Line `i`: short, or LONG_BYTES long for every LONG_EVERY-th, ending in a newline. */
static size_t make_line(int i, char *buf, size_t cap)
{
	size_t len;
	if (i % LONG_EVERY == LONG_EVERY - 1) {
		len = LONG_BYTES < cap ? LONG_BYTES : cap;
		for (size_t k = 0; k < len - 1; k++)
			buf[k] = (char)('a' + (k * 7 + (size_t)i) % 26);
		buf[len - 1] = '\n';
		return len;
	}
	int n = snprintf(buf, cap, "connection %d says hello %.*s\n", i, i % 40,
			 "........................................");
	return (size_t)n;
}

static int client_connect(void)
{
	struct timeval tv = { WAIT_S, 0 };
	int bufsize = SOCKBUF;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
	if (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Reads until end of file into buf (at most cap bytes); -1 on error or timeout. */
static long recv_all(int fd, char *buf, size_t cap)
{
	size_t got = 0;
	for (;;) {
		ssize_t r = recv(fd, buf + got, cap - got, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return (long)got;
		got += (size_t)r;
		if (got == cap) {	/* more than was sent: count it as a mismatch */
			char extra;
			return recv(fd, &extra, 1, 0) > 0 ? (long)cap + 1 : (long)got;
		}
	}
}

static void *client_main(void *arg)
{
	size_t cap = LONG_BYTES + 64;
	char *line = malloc(cap), *reply = malloc(cap + 1);
	(void)arg;
	if (!line || !reply)
		die("malloc");
	for (int first = 0; first < CONNS; first += BURST) {
		int fd[BURST], n = CONNS - first < BURST ? CONNS - first : BURST;
		/* Open the whole burst first: the server finds several pending connections. */
		for (int k = 0; k < n; k++)
			fd[k] = client_connect();
		/* Send each line and say that is all, */
		for (int k = 0; k < n; k++) {
			size_t len = make_line(first + k, line, cap);
			if (fd[k] == -1)
				continue;
			if (send_all(fd[k], line, len) == -1 || shutdown(fd[k], SHUT_WR) == -1) {
				close(fd[k]);
				fd[k] = -1;
				continue;
			}
			result.sent += (long)len;
		}
		/* then read each reply to end of file and compare. */
		for (int k = 0; k < n; k++) {
			size_t len = make_line(first + k, line, cap);
			if (fd[k] == -1) {
				result.failed++;
				continue;
			}
			long got = recv_all(fd[k], reply, cap);
			close(fd[k]);
			if (got < 0) {
				result.failed++;
				continue;
			}
			result.done++;
			result.received += got;
			if ((size_t)got == len && memcmp(reply, line, len) == 0)
				result.matched++;
			else
				fprintf(stderr, "echo: connection %d: sent %zu bytes, got %ld back%s\n",
					first + k, len, got,
					(size_t)got == len ? " that differ" : "");
		}
	}
	free(line);
	free(reply);
	/* Tell the event loop, through the kqueue. */
	struct kevent c;
	EV_SET(&c, DONE, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
	if (kevent(kq, &c, 1, NULL, 0, NULL) == -1)
		die("kevent(NOTE_TRIGGER)");
	return NULL;
}

/* ---- the server --------------------------------------------------------------------- */

struct conn {
	int fd;
	int eof;		/* the client shut down its sending side */
	int writing;		/* EVFILT_WRITE is enabled */
	char *out;		/* bytes read and not yet written back */
	size_t off, len, cap;
};

static struct {
	int accepted, closed, open, max_open, max_backlog, reused;
	long bytes_in, bytes_out;
	long read_events, write_events, accept_events;
} st;

static unsigned char *seen_fd;	/* descriptor numbers given to a connection before */
static size_t seen_cap;

static void conn_close(struct conn *c)
{
	/* No EV_DELETE: close() drops both knotes. */
	if (close(c->fd) == -1)
		die("close");
	free(c->out);
	free(c);
	st.closed++;
	st.open--;
}

/* Writes what is queued; enables EVFILT_WRITE while some is left. Returns -1 on error. */
static int conn_flush(struct conn *c)
{
	while (c->off < c->len) {
		ssize_t w = send(c->fd, c->out + c->off, c->len - c->off, MSG_NOSIGNAL);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && errno == EAGAIN)
			break;
		if (w == -1)
			return -1;
		c->off += (size_t)w;
		st.bytes_out += w;
	}
	if (c->off == c->len)
		c->off = c->len = 0;
	int want = c->len > 0;
	if (want != c->writing) {
		int err = change((uintptr_t)c->fd, EVFILT_WRITE, want ? EV_ENABLE : EV_DISABLE, c);
		if (err) {
			errno = err;
			die("kevent(EVFILT_WRITE enable/disable)");
		}
		c->writing = want;
	}
	return 0;
}

/* EVFILT_READ on a connection: read what is there (`avail` bytes said the kqueue). */
static int conn_read(struct conn *c, intptr_t avail)
{
	size_t need = c->len + (avail > 4096 ? (size_t)avail : 4096);
	if (need > c->cap) {
		size_t cap = c->cap ? c->cap : 8192;
		while (cap < need)
			cap *= 2;
		char *p = realloc(c->out, cap);
		if (!p)
			die("realloc");
		c->out = p;
		c->cap = cap;
	}
	ssize_t r = recv(c->fd, c->out + c->len, c->cap - c->len, 0);
	if (r == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (r == -1)
		return -1;
	if (r == 0) {
		c->eof = 1;
		/* Stop watching for input; the connection stays until its echo is written. */
		int err = change((uintptr_t)c->fd, EVFILT_READ, EV_DISABLE, c);
		if (err) {
			errno = err;
			die("kevent(EVFILT_READ disable)");
		}
		return 0;
	}
	c->len += (size_t)r;
	st.bytes_in += r;
	return 0;
}

static void accept_some(int lfd, intptr_t pending)
{
	int bufsize = SOCKBUF;
	if (pending > st.max_backlog)
		st.max_backlog = (int)pending;
	for (intptr_t i = 0; i < pending; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1 && (errno == EAGAIN || errno == ECONNABORTED))
			break;
		if (fd == -1)
			die("accept4");
		struct conn *c = calloc(1, sizeof *c);
		if (!c)
			die("calloc");
		c->fd = fd;
		/* Small buffers, as a server may set them: the long lines must wait for room. */
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
		if ((size_t)fd >= seen_cap) {
			size_t cap = seen_cap ? seen_cap : 1024;
			while (cap <= (size_t)fd)
				cap *= 2;
			unsigned char *p = realloc(seen_fd, cap);
			if (!p)
				die("realloc");
			memset(p + seen_cap, 0, cap - seen_cap);
			seen_fd = p;
			seen_cap = cap;
		}
		st.reused += seen_fd[fd];
		seen_fd[fd] = 1;
		struct kevent ch[2];
		EV_SET(&ch[0], fd, EVFILT_READ, EV_ADD, 0, 0, c);
		EV_SET(&ch[1], fd, EVFILT_WRITE, EV_ADD | EV_DISABLE, 0, 0, c);
		if (kevent(kq, ch, 2, NULL, 0, NULL) == -1)
			die("kevent(EV_ADD connection)");
		st.accepted++;
		if (++st.open > st.max_open)
			st.max_open = st.open;
	}
}

int main(void)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof a;
	pthread_t client;
	double start = now_ms();

	signal(SIGALRM, on_alarm);
	alarm(RUN_LIMIT_S);

	kq = kqueue();
	if (kq == -1)
		die("kqueue");
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd == -1)
		die("socket");
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&a, sizeof a) == -1 || listen(lfd, 64) == -1 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) == -1)
		die("bind/listen on 127.0.0.1");
	server_addr = a;

	int err = change((uintptr_t)lfd, EVFILT_READ, EV_ADD, NULL);
	if (err) {
		fprintf(stderr, "echo: EV_ADD of EVFILT_READ on a socket failed (%s): this build of "
			"the library does not watch sockets yet; skipped\n", strerror(err));
		return EXIT_SKIP;
	}
	if ((err = change(DONE, EVFILT_USER, EV_ADD | EV_CLEAR, NULL))) {
		errno = err;
		die("kevent(EV_ADD EVFILT_USER)");
	}
	printf("echo server on 127.0.0.1:%d, kqueue fd %d; client: %d connections in bursts of "
	       "%d, every %dth line %d bytes long\n", ntohs(a.sin_port), kq, CONNS, BURST,
	       LONG_EVERY, LONG_BYTES);
	fflush(stdout);

	if ((errno = pthread_create(&client, NULL, client_main, NULL)))
		die("pthread_create");

	int client_done = 0;
	while (!client_done || st.open > 0) {
		struct kevent ev[64];
		struct timespec limit = { WAIT_S, 0 };
		int n = kevent(kq, NULL, 0, ev, 64, &limit);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			die("kevent(wait)");
		if (n == 0) {
			fprintf(stderr, "echo: no event for %d s (%d connections open), giving up\n",
				WAIT_S, st.open);
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct kevent *e = &ev[i];
			struct conn *c = e->udata;
			if (e->flags & EV_ERROR) {
				errno = (int)e->data;
				die("kevent(event)");
			}
			if (e->filter == EVFILT_USER) {
				client_done = 1;
				continue;
			}
			if ((int)e->ident == lfd) {
				st.accept_events++;
				accept_some(lfd, e->data);
				continue;
			}
			if (c == NULL)	/* its connection was closed earlier in this batch */
				continue;
			if (e->filter == EVFILT_READ) {
				st.read_events++;
				if (!c->eof && conn_read(c, e->data) == -1)
					c->eof = -1;
			} else if (e->filter == EVFILT_WRITE) {
				st.write_events++;
			}
			if (c->eof >= 0 && conn_flush(c) == -1)
				c->eof = -1;
			/*
			 * Done (all echoed after the client's end of file) or broken: close. Any
			 * later record in ev[] for this connection would name a freed conn, so
			 * forget them first.
			 */
			if (c->eof == -1 || (c->eof && c->len == 0)) {
				for (int k = i + 1; k < n; k++)
					if (ev[k].udata == c)
						ev[k].udata = NULL;
				conn_close(c);
			}
		}
	}
	pthread_join(client, NULL);
	close(lfd);
	close(kq);
	free(seen_fd);

	double ms = now_ms() - start;
	printf("served %d connections (%d descriptor numbers reused after close without "
	       "EV_DELETE), at most %d open and %d waiting to be accepted at once\n",
	       st.accepted, st.reused, st.max_open, st.max_backlog);
	printf("server: %ld bytes in, %ld bytes out; %ld accept, %ld read and %ld write events\n",
	       st.bytes_in, st.bytes_out, st.accept_events, st.read_events, st.write_events);
	printf("client: %d/%d echoes matched, %d failed, %ld bytes sent, %ld received; %.0f ms\n",
	       result.matched, CONNS, result.failed, result.sent, result.received, ms);
	int ok = result.matched == CONNS && st.accepted == CONNS && st.closed == CONNS &&
		 st.bytes_in == result.sent && st.bytes_out == result.sent;
	printf("%s\n", ok ? "every echo matched" : "MISMATCH");
	return ok ? 0 : 1;
}
