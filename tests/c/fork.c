/*
 * fork() (docs/semantics.md §3.3, U35): a child gets EBADF on every use of an inherited
 * kqueue and cannot disturb the parent's; the parent's kqueue keeps working; the child can
 * make kqueues of its own. A kqueue descriptor passed to a child over a unix socket (G26)
 * is no kqueue there either.
 */
#include "kqtest.h"

#include <sys/socket.h>
#include <sys/wait.h>

/* Child exit codes: 0 ok, 10+n: check n failed. */
static int child_checks(int kq)
{
	struct kevent ev, c;
	struct timespec zero = { 0, 0 };

	errno = 0;
	if (kevent(kq, NULL, 0, &ev, 1, &zero) != -1 || errno != EBADF)
		return 11;
	errno = 0;
	if (kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL) != -1 || errno != EBADF)
		return 12;
	errno = 0;
	if (kqt_user(kq, 2, EV_ADD, 0, 0, NULL) != -1 || errno != EBADF)
		return 13;
	/* A NULL timeout must fail at once, not wait for the parent's events. */
	errno = 0;
	if (kevent(kq, NULL, 0, &ev, 1, NULL) != -1 || errno != EBADF)
		return 14;
	/* Deleting the parent's knote is refused too. */
	EV_SET(&c, 1, EVFILT_USER, EV_DELETE, 0, 0, NULL);
	errno = 0;
	if (kevent(kq, &c, 1, NULL, 0, NULL) != -1 || errno != EBADF)
		return 15;

	/* A kqueue of the child's own works. */
	int mine = kqueue();
	if (mine < 0)
		return 16;
	if (kqt_user(mine, 1, EV_ADD | EV_CLEAR, 0, 0, NULL) != 0)
		return 17;
	if (kqt_user(mine, 1, 0, NOTE_TRIGGER, 0, NULL) != 0)
		return 18;
	if (kqt_wait(mine, &ev, 1, 10000) != 1 || ev.ident != 1)
		return 19;
	if (kqt_change(mine, 2, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 1, NULL) != 0)
		return 20;
	if (kqt_wait(mine, &ev, 1, 10000) != 1 || ev.filter != EVFILT_TIMER)
		return 21;
	if (close(mine) != 0)
		return 22;
	/* The inherited kqueue is still dead (not revived by the child's own). */
	errno = 0;
	if (kevent(kq, NULL, 0, &ev, 1, &zero) != -1 || errno != EBADF)
		return 23;
	/* Closing the child's copy must not harm the parent (checked there). */
	close(kq);
	return 0;
}

static int run_child(int kq, int *status)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0)
		_exit(child_checks(kq));
	if (waitpid(pid, status, 0) != pid)
		return -1;
	return 0;
}

/* U35 fork_not_inherited */
static void case_u35(void)
{
	struct kevent ev[2];
	int status = -1;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0); /* pending at fork */
	CHECK_EQ(kqt_change(kq, 3, EVFILT_TIMER, EV_ADD, 0, 20, NULL), 0);

	CHECK_EQ(run_child(kq, &status), 0);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);

	/* The parent's kqueue is intact: the pending event, the knotes, the timer. */
	CHECK_EQ(kqt_poll(kq, ev, 1), 1);
	CHECK_EQ(ev[0].filter, EVFILT_USER);
	CHECK_EQ(ev[0].ident, 1);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	/* The 20 ms timer may have fired since (queued before the trigger). */
	int n = kqt_poll(kq, ev, 2);
	CHECK(n >= 1);
	CHECK(ev[0].ident == 1 || (n == 2 && ev[1].ident == 1));
	CHECK_EQ(kqt_user(kq, 1, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_wait(kq, ev, 1, 10000), 1);
	CHECK_EQ(ev[0].filter, EVFILT_TIMER);
	CHECK_EQ(kqt_change(kq, 3, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(close(kq), 0);
}

struct sleeper {
	int kq;
	int rc;
	int err;
	struct kevent ev;
};

static void *sleeper_main(void *arg)
{
	struct sleeper *s = (struct sleeper *)arg;
	s->rc = kevent(s->kq, NULL, 0, &s->ev, 1, NULL);
	s->err = errno;
	return NULL;
}

/* U35 parent_sleeper_unaffected: a child that exits does not wake the parent's sleeper. */
static void case_sleeper(void)
{
	pthread_t t;
	struct sleeper s;
	int status = -1;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	memset(&s, 0, sizeof s);
	s.kq = kq;
	CHECK_EQ(pthread_create(&t, NULL, sleeper_main, &s), 0);
	kqt_sleep_ms(50);
	CHECK_EQ(run_child(kq, &status), 0);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	kqt_sleep_ms(50);
	/* Still asleep: only the trigger ends the wait, with the event. */
	CHECK_EQ(pthread_tryjoin_np(t, NULL), EBUSY);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(s.rc, 1);
	CHECK_EQ(s.ev.ident, 1);
	CHECK_EQ(close(kq), 0);
}

/* Sends descriptor fd over the unix socket sock. */
static int send_fd(int sock, int fd)
{
	char byte = 'k';
	struct iovec iov = { &byte, 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr msg;
	memset(&msg, 0, sizeof msg);
	memset(&u, 0, sizeof u);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof u.buf;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

/* Receives a descriptor from sock, or -1. */
static int recv_fd(int sock)
{
	char byte;
	struct iovec iov = { &byte, 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr msg;
	int fd = -1;
	memset(&msg, 0, sizeof msg);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof u.buf;
	if (recvmsg(sock, &msg, 0) != 1)
		return -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/*
 * G26 kqueue_desc_passing (NB t_kevent): a kqueue with a timer is sent over a unix socket
 * to a child and closed in the parent. Nothing crashes; in the child the received
 * descriptor is not a kqueue of its own (EBADF), as after fork; the child exits 0.
 */
static void case_g26(void)
{
	int sv[2], status = -1;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD, 0, 5, NULL), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		int fd = recv_fd(sv[1]);
		if (fd < 0)
			_exit(31);
		struct kevent ev;
		struct timespec zero = { 0, 0 };
		errno = 0;
		if (kevent(fd, NULL, 0, &ev, 1, &zero) != -1 || errno != EBADF)
			_exit(32);
		kqt_sleep_ms(30); /* the parent's timer keeps firing meanwhile */
		close(fd);
		_exit(0);
	}
	close(sv[1]);
	CHECK_EQ(send_fd(sv[0], kq), 0);
	CHECK_EQ(close(kq), 0);
	close(sv[0]);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	/* The parent goes on making and using kqueues. */
	kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 1, NULL), 0);
	struct kevent ev;
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(close(kq), 0);
}

int main(void)
{
	kqt_watchdog(30);
	kqt_run("U35", "fork_not_inherited", case_u35);
	kqt_run("U35", "parent_sleeper_unaffected", case_sleeper);
	kqt_run("G26", "kqueue_desc_passing", case_g26);
	return kqt_done();
}
