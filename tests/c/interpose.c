/*
 * close(), dup2(), dup3() and close_range() as the library defines them, in a program
 * linked with -lkqueue: closing a descriptor number drops every knote of that number,
 * silently, pending events included, as the BSD kernels do; a dup of the number keeps its
 * own; the calls still behave as the C library's (results, errno, cancellation).
 *
 * To tell the library's close() from the engine's own checks of file identity, most cases
 * keep the file open through another descriptor and put that same file back on the closed
 * number (fcntl F_DUPFD, which the library does not see): a knote that survived the close
 * would then still look valid.
 */
#include "kqtest.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
/* The library defines close_range() even where the C library does not declare it. */
int close_range(unsigned int first, unsigned int last, int flags);

/* Puts the file of descriptor keep back on number fd (which must be free). */
static int reopen_as(int keep, int fd)
{
	return fcntl(keep, F_DUPFD, fd);
}

/* Whether kqueue kq has an event pending (poll on its descriptor, up to 1 s). */
static int kq_pending(int kq)
{
	struct pollfd p = { kq, POLLIN, 0 };
	return poll(&p, 1, 1000) == 1;
}

static int read_change(int kq, int fd, unsigned short flags, void *udata)
{
	return kqt_change(kq, fd, EVFILT_READ, flags, 0, 0, udata);
}

/*
 * close_is_ours: close, dup2, dup3 and close_range of this program are the library's
 * (they live where kqueue() lives), not the C library's.
 */
static void case_symbols(void)
{
	static const char *const names[] = { "close", "dup2", "dup3", "close_range" };
	Dl_info kq_info, libc_info, info;
	CHECK(dladdr((void *)&kqueue, &kq_info));
	/* The C library: where read() lives. */
	CHECK(dladdr((void *)&read, &libc_info));
	void *libc = dlopen(libc_info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
	CHECK(libc != NULL);
	for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
		void *ours = dlsym(RTLD_DEFAULT, names[i]);
		void *theirs = dlsym(libc, names[i]);
		CHECK(ours != NULL);
		CHECK(dladdr(ours, &info));
		if (strcmp(info.dli_fname, kq_info.dli_fname) != 0) {
			fprintf(stderr, "%s is in %s, kqueue in %s\n", names[i], info.dli_fname,
				kq_info.dli_fname);
			CHECK(!"the library's");
		}
		CHECK(ours != theirs);
	}
	/* The program's own calls go to the library's functions. */
	CHECK((void *)&close == dlsym(RTLD_DEFAULT, "close"));
	CHECK((void *)&dup2 == dlsym(RTLD_DEFAULT, "dup2"));
	dlclose(libc);
}

/* close_removes_knote: close() without EV_DELETE removes the knote of that number. */
static void case_close_removes(void)
{
	int s[2];
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	int keep = dup(s[0]);
	CHECK(keep >= 0);
	CHECK_EQ(read_change(kq, s[0], EV_ADD, NULL), 0);
	CHECK_EQ(close(s[0]), 0);
	/* A closed number is no descriptor at all... */
	CHECK_ERR(read_change(kq, s[0], EV_DELETE, NULL), EBADF);
	/* ...and once the same file is back on it, it has no knote. */
	CHECK_EQ(reopen_as(keep, s[0]), s[0]);
	CHECK_ERR(read_change(kq, s[0], EV_DELETE, NULL), ENOENT);
	close(s[0]);
	close(s[1]);
	close(keep);
	close(kq);
}

/*
 * close_withdraws_pending: an event pending when its descriptor is closed is not
 * reported, whether the file stays open through a dup or goes away.
 */
static void case_close_withdraws(void)
{
	struct kevent ev[4];
	for (int keep_file = 0; keep_file < 2; keep_file++) {
		int s[2];
		int kq = kqueue();
		CHECK(kq >= 0);
		CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
		int keep = keep_file ? dup(s[0]) : -1;
		CHECK_EQ(read_change(kq, s[0], EV_ADD, NULL), 0);
		CHECK_EQ(write(s[1], "x", 1), 1);
		CHECK(kq_pending(kq));
		CHECK_EQ(close(s[0]), 0);
		CHECK_EQ(kqt_poll(kq, ev, 4), 0);
		CHECK_EQ(write(s[1], "y", 1), keep_file ? 1 : -1);
		CHECK_EQ(kqt_wait(kq, ev, 4, 100), 0);
		if (keep_file) {
			/* The same readable file back on the number: still nothing. */
			CHECK_EQ(reopen_as(keep, s[0]), s[0]);
			CHECK_EQ(kqt_wait(kq, ev, 4, 100), 0);
			close(s[0]);
			close(keep);
		}
		close(s[1]);
		close(kq);
	}
}

/* close_of_dup_keeps_original: closing a dup removes only the dup's knote. */
static void case_close_dup(void)
{
	int s[2];
	struct kevent ev[4];
	int marker;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	int d = dup(s[0]);
	CHECK(d >= 0);
	CHECK_EQ(read_change(kq, s[0], EV_ADD, &marker), 0);
	CHECK_EQ(read_change(kq, d, EV_ADD, NULL), 0);
	CHECK_EQ(close(d), 0);
	CHECK_EQ(write(s[1], "ab", 2), 2);
	CHECK_EQ(kqt_wait(kq, ev, 4, 30000), 1);
	CHECK_EQ(ev[0].ident, s[0]);
	CHECK(ev[0].udata == &marker);
	CHECK_EQ(ev[0].data, 2);
	CHECK_EQ(read_change(kq, s[0], EV_DELETE, NULL), 0);
	close(s[0]);
	close(s[1]);
	close(kq);
}

/*
 * dup2_over_registered: dup2() onto a number with a knote removes it (and its pending
 * event) before the number refers to the other file.
 */
static void case_dup2_over(void)
{
	int a[2], b[2];
	struct kevent ev[4];
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	int keep = dup(a[0]);
	CHECK(keep >= 0);
	CHECK_EQ(read_change(kq, a[0], EV_ADD, NULL), 0);
	CHECK_EQ(write(a[1], "x", 1), 1);
	CHECK(kq_pending(kq));
	CHECK_EQ(dup2(b[0], a[0]), a[0]);
	CHECK_EQ(kqt_poll(kq, ev, 4), 0);
	/* The number now holds b's socket, which nobody registered. */
	CHECK_EQ(write(b[1], "y", 1), 1);
	CHECK_EQ(kqt_wait(kq, ev, 4, 100), 0);
	/* The old file back on the number (behind the library's back): no knote. */
	CHECK_EQ(syscall(SYS_close, a[0]), 0);
	CHECK_EQ(reopen_as(keep, a[0]), a[0]);
	CHECK_EQ(kqt_poll(kq, ev, 4), 0);
	CHECK_ERR(read_change(kq, a[0], EV_DELETE, NULL), ENOENT);
	close(keep);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
	close(kq);
}

/* dup3_over_registered: the same with dup3(..., O_CLOEXEC). */
static void case_dup3_over(void)
{
	int a[2], b[2];
	struct kevent ev[4];
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	int keep = dup(a[0]);
	CHECK(keep >= 0);
	CHECK_EQ(read_change(kq, a[0], EV_ADD, NULL), 0);
	CHECK_EQ(write(a[1], "x", 1), 1);
	CHECK(kq_pending(kq));
	CHECK_EQ(dup3(b[0], a[0], O_CLOEXEC), a[0]);
	CHECK_EQ(fcntl(a[0], F_GETFD), FD_CLOEXEC);
	CHECK_EQ(kqt_poll(kq, ev, 4), 0);
	CHECK_EQ(syscall(SYS_close, a[0]), 0);
	CHECK_EQ(reopen_as(keep, a[0]), a[0]);
	CHECK_ERR(read_change(kq, a[0], EV_DELETE, NULL), ENOENT);
	close(keep);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
	close(kq);
}

/*
 * dup_that_fails_keeps: dup2(fd, fd), and calls that fail without replacing the number
 * (a closed oldfd: EBADF; dup3 onto itself or with bad flags: EINVAL) keep its knote.
 */
static void case_dup_keeps(void)
{
	int s[2], t[2];
	struct kevent ev[4];
	int marker;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, t), 0);
	CHECK_EQ(read_change(kq, s[0], EV_ADD, &marker), 0);
	CHECK_EQ(dup2(s[0], s[0]), s[0]);
	int closed = dup(t[0]);
	CHECK(closed >= 0);
	CHECK_EQ(close(closed), 0);
	CHECK_ERR(dup2(closed, s[0]), EBADF);
	CHECK_ERR(dup3(closed, s[0], 0), EBADF);
	CHECK_ERR(dup3(s[0], s[0], 0), EINVAL);
	CHECK_ERR(dup3(t[0], s[0], 0x4000), EINVAL);
	CHECK_EQ(write(s[1], "x", 1), 1);
	CHECK_EQ(kqt_wait(kq, ev, 4, 30000), 1);
	CHECK_EQ(ev[0].ident, s[0]);
	CHECK(ev[0].udata == &marker);
	CHECK_EQ(read_change(kq, s[0], EV_DELETE, NULL), 0);
	close(s[0]);
	close(s[1]);
	close(t[0]);
	close(t[1]);
	close(kq);
}

/*
 * close_range_drops: close_range() over registered numbers removes their knotes (pending
 * events too); numbers outside the range keep theirs; CLOSE_RANGE_CLOEXEC removes none.
 */
static void case_close_range(void)
{
	enum { N = 4, BASE = 600 };
	int s[N][2], keep[N];
	struct kevent ev[8];
	struct rlimit rl;
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < BASE + 2 * N) {
		kqt_skip("RLIMIT_NOFILE too low");
		return;
	}
	int kq = kqueue();
	CHECK(kq >= 0);
	for (int i = 0; i < N; i++) {
		CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s[i]), 0);
		keep[i] = s[i][0];
		CHECK_ERR(fcntl(BASE + i, F_GETFD), EBADF);
		CHECK_EQ(reopen_as(keep[i], BASE + i), BASE + i);
		CHECK_EQ(read_change(kq, BASE + i, EV_ADD, NULL), 0);
		CHECK_EQ(write(s[i][1], "x", 1), 1);
	}
	CHECK(kq_pending(kq));
	CHECK_EQ(close_range(BASE, BASE + N - 2, 0), 0);
	CHECK_EQ(kqt_poll(kq, ev, 8), 1);
	CHECK_EQ(ev[0].ident, BASE + N - 1);
	for (int i = 0; i < N - 1; i++) {
		CHECK_ERR(fcntl(BASE + i, F_GETFD), EBADF);
		CHECK_EQ(reopen_as(keep[i], BASE + i), BASE + i);
		CHECK_ERR(read_change(kq, BASE + i, EV_DELETE, NULL), ENOENT);
	}
	/* CLOSE_RANGE_CLOEXEC closes nothing now: the knote stays. */
	CHECK_EQ(close_range(BASE + N - 1, BASE + N - 1, CLOSE_RANGE_CLOEXEC), 0);
	CHECK_EQ(fcntl(BASE + N - 1, F_GETFD), FD_CLOEXEC);
	CHECK_EQ(kqt_poll(kq, ev, 8), 1);
	CHECK_EQ(ev[0].ident, BASE + N - 1);
	/* An open-ended range: everything from BASE up. */
	CHECK_EQ(read_change(kq, BASE, EV_ADD, NULL), 0);
	CHECK_EQ(close_range(BASE, ~0U, 0), 0);
	CHECK_EQ(kqt_poll(kq, ev, 8), 0);
	CHECK_EQ(reopen_as(keep[0], BASE), BASE);
	CHECK_EQ(reopen_as(keep[N - 1], BASE + N - 1), BASE + N - 1);
	CHECK_ERR(read_change(kq, BASE, EV_DELETE, NULL), ENOENT);
	CHECK_ERR(read_change(kq, BASE + N - 1, EV_DELETE, NULL), ENOENT);
	/* Invalid calls fail as the kernel's. */
	CHECK_ERR(close_range(BASE + 1, BASE, 0), EINVAL);
	close_range(BASE, BASE + N, 0);
	for (int i = 0; i < N; i++) {
		close(s[i][0]);
		close(s[i][1]);
	}
	close(kq);
}

/* close_keeps_errno: errno is close()'s own: EBADF on failure, untouched on success. */
static void case_errno(void)
{
	int s[2];
	CHECK_ERR(close(-1), EBADF);
	CHECK_ERR(close(1000000), EBADF);
	int closed = dup(0);
	CHECK(closed >= 0);
	CHECK_EQ(close(closed), 0);
	CHECK_ERR(close(closed), EBADF);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	errno = 4242;
	CHECK_EQ(close(s[0]), 0);
	CHECK_EQ(errno, 4242);
	errno = 4243;
	CHECK_EQ(dup2(s[1], 1000), 1000);
	CHECK_EQ(errno, 4243);
	CHECK_EQ(close(1000), 0);
	CHECK_EQ(errno, 4243);
	/* A kqueue descriptor, with a knote of its own. */
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	errno = 4244;
	CHECK_EQ(close(kq), 0);
	CHECK_EQ(errno, 4244);
	CHECK_ERR(close(kq), EBADF);
	close(s[1]);
}

/* close_keeps_errno_knote: the same for numbers with knotes (close, dup2 over one). */
static void case_errno_knote(void)
{
	int s[2];
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	CHECK_EQ(read_change(kq, s[0], EV_ADD, NULL), 0);
	errno = 4245;
	CHECK_EQ(close(s[0]), 0);
	CHECK_EQ(errno, 4245);
	CHECK_ERR(close(s[0]), EBADF);
	int d = dup(s[1]);
	CHECK(d >= 0);
	CHECK_EQ(read_change(kq, d, EV_ADD, NULL), 0);
	errno = 4246;
	CHECK_EQ(dup2(s[1], d), d);
	CHECK_EQ(errno, 4246);
	CHECK_EQ(close(d), 0);
	CHECK_EQ(errno, 4246);
	close(s[1]);
	close(kq);
}

struct sleeper {
	int kq;
	int rc;
	int err;
	double woke_at;
};

static void *sleeper_main(void *arg)
{
	struct sleeper *s = (struct sleeper *)arg;
	struct kevent ev;
	s->rc = kqt_wait(s->kq, &ev, 1, 60000);
	s->err = errno;
	s->woke_at = kqt_now_ms();
	return NULL;
}

/* Joins t, failing the case if it takes more than 2 s. */
#define JOIN_30S(t) do {							\
	struct timespec dl_;						\
	clock_gettime(CLOCK_REALTIME, &dl_);				\
	dl_.tv_sec += 30;						\
	CHECK_EQ(pthread_timedjoin_np((t), NULL, &dl_), 0);		\
} while (0)

/*
 * kq_close_wakes: close() of a kqueue descriptor, or dup2() over it, while another thread
 * waits in kevent() on it: that kevent() returns -1/EBADF at once, not at its timeout.
 */
static void case_kq_close_wakes(void)
{
	for (int how = 0; how < 2; how++) {
		pthread_t t;
		struct sleeper s;
		int p[2];
		CHECK_EQ(pipe(p), 0);
		int kq = kqueue();
		CHECK(kq >= 0);
		CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
		memset(&s, 0, sizeof s);
		s.kq = kq;
		CHECK_EQ(pthread_create(&t, NULL, sleeper_main, &s), 0);
		kqt_sleep_ms(100);
		double t0 = kqt_now_ms();
		if (how == 0)
			CHECK_EQ(close(kq), 0);
		else
			CHECK_EQ(dup2(p[0], kq), kq);
		JOIN_30S(t);
		CHECK_EQ(s.rc, -1);
		CHECK_EQ(s.err, EBADF);
		CHECK(s.woke_at - t0 < 30000.0); /* at the close, not at the timeout */
		if (how == 1)
			close(kq);
		close(p[0]);
		close(p[1]);
	}
}

/*
 * kq_close_cycles: 20,000 kqueue()/close() cycles leave the descriptor count as it was:
 * close() tells the library at once that a kqueue descriptor is gone.
 */
static void case_kq_cycles(void)
{
	/* Warm up what the library sets up once per process (the timer thread too). */
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD, 0, 1000, NULL), 0);
	CHECK_EQ(close(kq), 0);
	int before = kqt_count_fds();
	CHECK(before > 0);
	for (int i = 0; i < 20000; i++) {
		kq = kqueue();
		CHECK(kq >= 0);
		if (i % 2 == 0)
			CHECK_EQ(kqt_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
		CHECK_EQ(close(kq), 0);
	}
	CHECK_EQ(kqt_count_fds(), before);
}

struct canceled {
	int fd;
	int reached;
};

static void *cancel_main(void *arg)
{
	struct canceled *c = (struct canceled *)arg;
	int old;
	/* A cancellation request is pending when close() is called: close() acts on it. */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	pthread_cancel(pthread_self());
	pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
	close(c->fd);
	c->reached = 1;
	return NULL;
}

/* Runs close(fd) in a thread with a cancellation request pending; 0 if it was cancelled. */
static int close_cancelled(int fd)
{
	pthread_t t;
	void *result = NULL;
	struct canceled c = { fd, 0 };
	if (pthread_create(&t, NULL, cancel_main, &c) != 0 || pthread_join(t, &result) != 0)
		return -1;
	if (result != PTHREAD_CANCELED || c.reached)
		return -1;
	/* Cancelled on entry, the descriptor may still be open. */
	syscall(SYS_close, fd);
	return 0;
}

/*
 * close_is_cancellation_point: close() still acts on a pending cancellation request, for
 * a number without knotes and for a kqueue descriptor; the thread ends cancelled, the
 * process lives on.
 */
static void case_cancel(void)
{
	int s[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	CHECK_EQ(close_cancelled(s[0]), 0);
	close(s[1]);
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(close_cancelled(kq), 0);
}

/* close_is_cancellation_point_knote: the same for a number with a knote. */
static void case_cancel_knote(void)
{
	int s[2];
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	CHECK_EQ(read_change(kq, s[0], EV_ADD, NULL), 0);
	CHECK_EQ(close_cancelled(s[0]), 0);
	close(s[1]);
	close(kq);
}

/*
 * The nginx pattern: a server accepts connections one after another and close()s each
 * accepted socket without EV_DELETE, so accept() hands out the same numbers again; every
 * event must carry the udata of the connection that holds the number now.
 */
enum { NGINX_CONNS = 1000, NGINX_FDS = 4096 };

struct nginx {
	struct sockaddr_in addr;
	int listener;
	int stop;
	int client_done;
	int client_err;
	int server_err;
	int accepted;
	int reused;
	char why[256];
};

static void nginx_fail(struct nginx *n, const char *why, long a, long b)
{
	if (!n->server_err) {
		snprintf(n->why, sizeof n->why, "%s (%ld, %ld, errno %d)", why, a, b, errno);
		n->server_err = 1;
	}
	__atomic_store_n(&n->stop, 1, __ATOMIC_SEQ_CST);
}

static void *nginx_client(void *arg)
{
	struct nginx *n = (struct nginx *)arg;
	struct timeval tv = { 1, 0 };
	for (uint32_t i = 0; i < NGINX_CONNS; i++) {
		if (__atomic_load_n(&n->stop, __ATOMIC_SEQ_CST))
			break;
		errno = 0;
		int c = socket(AF_INET, SOCK_STREAM, 0);
		char b;
		if (c < 0 || setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
		    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
		    connect(c, (struct sockaddr *)&n->addr, sizeof n->addr) != 0 ||
		    write(c, &i, sizeof i) != (ssize_t)sizeof i ||
		    read(c, &b, 1) != 0) {
			/* The server closes its end after reading: read() gives 0. */
			n->client_err = errno ? errno : -1;
			if (c >= 0)
				close(c);
			break;
		}
		close(c);
	}
	__atomic_store_n(&n->client_done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void *nginx_server(void *arg)
{
	struct nginx *n = (struct nginx *)arg;
	static long live[NGINX_FDS];	/* serial of the connection on each number, or -1 */
	static char seen[NGINX_FDS];
	static int listener_tag;
	struct kevent ev[8];
	long next_serial = 0;
	int done = 0;
	for (int i = 0; i < NGINX_FDS; i++)
		live[i] = -1;
	int kq = kqueue();
	if (kq < 0) {
		nginx_fail(n, "kqueue", kq, 0);
		return NULL;
	}
	if (read_change(kq, n->listener, EV_ADD, &listener_tag) != 0) {
		nginx_fail(n, "EV_ADD of the listening socket", n->listener, 0);
		close(kq);
		return NULL;
	}
	while (done < NGINX_CONNS && !n->server_err) {
		int got = kqt_wait(kq, ev, 8, 30000);
		if (got <= 0) {
			nginx_fail(n, "kevent gave no event within 30 s (done, got)", done, got);
			break;
		}
		for (int i = 0; i < got && !n->server_err; i++) {
			if (ev[i].udata == &listener_tag) {
				int fd = accept(n->listener, NULL, NULL);
				if (fd < 0 || fd >= NGINX_FDS) {
					nginx_fail(n, "accept", fd, 0);
					break;
				}
				if (seen[fd])
					n->reused++;
				seen[fd] = 1;
				live[fd] = next_serial++;
				n->accepted++;
				if (read_change(kq, fd, EV_ADD, (void *)(uintptr_t)(live[fd] + 1)) != 0)
					nginx_fail(n, "EV_ADD of an accepted socket (fd, serial)",
						   fd, live[fd]);
				continue;
			}
			long fd = (long)ev[i].ident;
			long serial = (long)(uintptr_t)ev[i].udata - 1;
			if (ev[i].filter != EVFILT_READ || fd < 0 || fd >= NGINX_FDS) {
				nginx_fail(n, "unexpected event (ident, filter)", fd, ev[i].filter);
				break;
			}
			if (live[fd] != serial) {
				nginx_fail(n, "event with the udata of another connection "
					   "(serial in udata, serial live on the number)",
					   serial, live[fd]);
				break;
			}
			uint32_t v;
			if (recv((int)fd, &v, sizeof v, MSG_WAITALL) != (ssize_t)sizeof v ||
			    (long)v != serial) {
				nginx_fail(n, "connection data (fd, serial)", fd, serial);
				break;
			}
			live[fd] = -1;
			/* No EV_DELETE: the close takes the knote with it. */
			close((int)fd);
			done++;
		}
	}
	__atomic_store_n(&n->stop, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < NGINX_FDS; i++)
		if (live[i] >= 0)
			close(i);
	close(kq);
	return NULL;
}

static void case_nginx(void)
{
	static struct nginx n;
	socklen_t len = sizeof n.addr;
	pthread_t server, client;
	memset(&n, 0, sizeof n);
	n.listener = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(n.listener >= 0);
	n.addr.sin_family = AF_INET;
	n.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_EQ(bind(n.listener, (struct sockaddr *)&n.addr, sizeof n.addr), 0);
	CHECK_EQ(listen(n.listener, 64), 0);
	CHECK_EQ(getsockname(n.listener, (struct sockaddr *)&n.addr, &len), 0);
	CHECK_EQ(pthread_create(&server, NULL, nginx_server, &n), 0);
	CHECK_EQ(pthread_create(&client, NULL, nginx_client, &n), 0);
	CHECK_EQ(pthread_join(client, NULL), 0);
	CHECK_EQ(pthread_join(server, NULL), 0);
	close(n.listener);
	if (n.server_err)
		fprintf(stderr, "server: %s\n", n.why);
	CHECK_EQ(n.server_err, 0);
	CHECK_EQ(n.client_err, 0);
	CHECK_EQ(n.accepted, NGINX_CONNS);
	/* The test means something only if the numbers were handed out again. */
	CHECK(n.reused >= NGINX_CONNS / 2);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	kqt_watchdog(90);
	kqt_run("IP", "close_is_ours", case_symbols);
	kqt_run("IP", "close_removes_knote", case_close_removes);
	kqt_run("IP", "close_withdraws_pending", case_close_withdraws);
	kqt_run("IP", "close_of_dup_keeps_original", case_close_dup);
	kqt_run("IP", "dup2_over_registered", case_dup2_over);
	kqt_run("IP", "dup3_over_registered", case_dup3_over);
	kqt_run("IP", "dup_that_fails_keeps", case_dup_keeps);
	kqt_run("IP", "close_range_drops", case_close_range);
	kqt_run("IP", "close_keeps_errno", case_errno);
	kqt_run("IP", "close_keeps_errno_knote", case_errno_knote);
	kqt_run("IP", "kq_close_wakes", case_kq_close_wakes);
	kqt_run("IP", "kq_close_cycles", case_kq_cycles);
	kqt_run("IP", "close_is_cancellation_point", case_cancel);
	kqt_run("IP", "close_is_cancellation_point_knote", case_cancel_knote);
	kqt_run("IP", "nginx_reuse", case_nginx);
	return kqt_done();
}
