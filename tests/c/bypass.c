/*
 * Descriptors closed or replaced where the library cannot see it (raw system calls, as a
 * program reaching libkqueue through another library, or glibc's internal closes, would
 * do): the knote of the old file lingers, but it is never reported, neither for the closed
 * descriptor nor for a new file that gets the same number; registering the new file with
 * EV_ADD makes a fresh knote, with the new udata and none of the old one's flags.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

static int old_udata, new_udata;

/* How the registered number loses its file behind the library's back. */
enum how {
	RAW_CLOSE,		/* syscall(SYS_close): the file goes away */
	RAW_CLOSE_KEEP_FILE,	/* syscall(SYS_close), the file stays open through a dup */
	RAW_DUP3,		/* syscall(SYS_dup3) of another socket over the number, the
				 * old file staying open through a dup */
};

static void bypass(enum how how)
{
	int s[2], t[2];
	struct kevent ev[4];
	int keep = -1;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, t), 0);
	int num = s[0];
	/* EV_ONESHOT marks the old knote: a fresh one must not have it. */
	CHECK_EQ(kqt_change(kq, num, EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, &old_udata), 0);
	CHECK_EQ(kqt_poll(kq, ev, 4), 0);

	if (how != RAW_CLOSE) {
		keep = dup(num);
		CHECK(keep >= 0);
	}
	if (how == RAW_DUP3) {
		CHECK_EQ(syscall(SYS_dup3, t[0], num, 0), num);
	} else {
		CHECK_EQ(syscall(SYS_close, num), 0);
		/* The old file becomes readable (if it is still open): nothing is reported. */
		CHECK_EQ(send(s[1], "old", 3, MSG_NOSIGNAL), how == RAW_CLOSE ? -1 : 3);
		CHECK_EQ(kqt_wait(kq, ev, 4, 200), 0);
		/* A new socket on the same number. */
		CHECK_EQ(fcntl(t[0], F_DUPFD, num), num);
	}
	/* The new file on the number is readable, but it was never registered. */
	CHECK_EQ(write(t[1], "ne", 2), 2);
	CHECK_EQ(kqt_wait(kq, ev, 4, 200), 0);
	if (how != RAW_CLOSE) {
		/* More data for the old file changes nothing either. */
		CHECK_EQ(send(s[1], "more", 4, MSG_NOSIGNAL), 4);
		CHECK_EQ(kqt_wait(kq, ev, 4, 200), 0);
	}

	/* Registering the new file: a fresh knote, about the new file only. */
	CHECK_EQ(kqt_change(kq, num, EVFILT_READ, EV_ADD, 0, 0, &new_udata), 0);
	CHECK_EQ(kqt_wait(kq, ev, 4, 30000), 1);
	CHECK_EQ(ev[0].ident, num);
	CHECK_EQ(ev[0].filter, EVFILT_READ);
	CHECK(ev[0].udata == &new_udata);
	CHECK_EQ(ev[0].data, 2);
	CHECK_EQ(ev[0].flags & (EV_ONESHOT | EV_EOF | EV_ERROR), 0);
	/* Not a oneshot: still there, level-triggered. */
	CHECK_EQ(kqt_poll(kq, ev, 4), 1);
	CHECK(ev[0].udata == &new_udata);
	CHECK_EQ(ev[0].data, 2);
	/* It follows the new file. */
	CHECK_EQ(write(t[1], "w", 1), 1);
	CHECK_EQ(kqt_poll(kq, ev, 4), 1);
	CHECK_EQ(ev[0].data, 3);
	/* Exactly one knote on the number. */
	CHECK_EQ(kqt_change(kq, num, EVFILT_READ, EV_DELETE, 0, 0, NULL), 0);
	CHECK_ERR(kqt_change(kq, num, EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
	CHECK_EQ(kqt_wait(kq, ev, 4, 100), 0);

	close(num);
	if (keep >= 0)
		close(keep);
	close(t[0]);
	close(t[1]);
	close(s[1]);
	close(kq);
}

/* raw_close: the knote of a number closed with syscall(SYS_close) never fires. */
static void case_raw_close(void)
{
	bypass(RAW_CLOSE);
}

/* raw_close_file_open: the same while the file stays open (and readable) through a dup. */
static void case_raw_close_keep(void)
{
	bypass(RAW_CLOSE_KEEP_FILE);
}

/* raw_dup3: another socket put on the number with syscall(SYS_dup3). */
static void case_raw_dup3(void)
{
	bypass(RAW_DUP3);
}

/*
 * raw_close_pending: an event already pending when the number is closed behind the
 * library's back is not reported (the file stays open: it is still readable).
 */
static void case_raw_close_pending(void)
{
	int s[2];
	struct kevent ev[4];
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	int keep = dup(s[0]);
	CHECK(keep >= 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ADD, 0, 0, &old_udata), 0);
	CHECK_EQ(write(s[1], "x", 1), 1);
	CHECK_EQ(kqt_wait(kq, ev, 4, 30000), 1);
	CHECK_EQ(syscall(SYS_close, s[0]), 0);
	CHECK_EQ(kqt_poll(kq, ev, 4), 0);
	CHECK_EQ(kqt_wait(kq, ev, 4, 100), 0);
	close(keep);
	close(s[1]);
	close(kq);
}

/*
 * A kqueue descriptor closed with syscall(SYS_close), its number then taken by another
 * file: a kqueue watching the number watches that file, never the closed kqueue (which
 * lives on in the library: kevent() on the number itself still reaches it until the new
 * file is closed through close(), the documented limit of a lookup that makes no system
 * call).
 */
static const char *pers;	/* "freebsd" or "netbsd" */

/* bad_kq_fd: the number now names a socket: a watcher of the number watches the socket. */
static void case_kq_raw_close_socket(void)
{
	int s[2];
	struct kevent ev[4];
	char buf[4];
	int kq = kqt_kqueue(pers);
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, ev, 4), 1);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	CHECK_EQ(syscall(SYS_close, kq), 0);
	int num = fcntl(s[0], F_DUPFD_CLOEXEC, kq);
	CHECK_EQ(num, kq);
	int watcher = kqt_kqueue(pers);
	CHECK(watcher >= 0);
	CHECK_EQ(kqt_change(watcher, num, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(watcher, ev, 4), 0);
	CHECK_EQ(write(s[1], "abc", 3), 3);
	CHECK_EQ(kqt_wait(watcher, ev, 4, 30000), 1);
	CHECK_EQ(ev[0].ident, num);
	CHECK_EQ(ev[0].data, 3);
	CHECK_EQ(read(num, buf, 3), 3);
	close(watcher);
	close(num);
	/* The close through close() let the closed kqueue go with the number. */
	CHECK_ERR(kqt_poll(num, ev, 4), EBADF);
	close(s[0]);
	close(s[1]);
}

/* bad_kq_fd: the number now names a copy of another kqueue: a watcher of the number
 * watches that kqueue, with nothing of the closed one. */
static void case_kq_raw_close_other_kqueue(void)
{
	struct kevent ev[4];
	int kq = kqt_kqueue(pers);
	CHECK(kq >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	int other = kqt_kqueue(pers);
	CHECK(other >= 0);
	CHECK_EQ(kqt_user(other, 2, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(syscall(SYS_close, kq), 0);
	int num = fcntl(other, F_DUPFD_CLOEXEC, kq);
	CHECK_EQ(num, kq);
	int watcher = kqt_kqueue(pers);
	CHECK(watcher >= 0);
	CHECK_EQ(kqt_change(watcher, num, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	/* The closed kqueue's pending event is not the copy's. */
	CHECK_EQ(kqt_poll(watcher, ev, 4), 0);
	CHECK_EQ(kqt_user(other, 2, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(watcher, ev, 4), 1);
	CHECK_EQ(ev[0].ident, num);
	CHECK_EQ(ev[0].data, 1);
	CHECK_EQ(kqt_poll(other, ev, 4), 1);
	CHECK_EQ(ev[0].ident, 2);
	close(watcher);
	close(num);
	close(other);
}

static void run_kq_cases(const char *p)
{
	pers = p;
	kqt_run("G3", "kq_raw_close_number_now_a_socket", case_kq_raw_close_socket);
	kqt_run("G3", "kq_raw_close_number_now_another_kqueue", case_kq_raw_close_other_kqueue);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	kqt_watchdog(60);
	kqt_run("BY", "raw_close", case_raw_close);
	kqt_run("BY", "raw_close_file_open", case_raw_close_keep);
	kqt_run("BY", "raw_dup3", case_raw_dup3);
	kqt_run("BY", "raw_close_pending", case_raw_close_pending);
	run_kq_cases("freebsd");
	run_kq_cases("netbsd");
	return kqt_done();
}
