/*
 * EVFILT_READ/EVFILT_WRITE registrations as the kqueue's epoll keeps them, through the C
 * library, in both personalities (FreeBSD: the kqueue() default; NetBSD: with
 * KQUEUE_PERSONALITY=netbsd):
 *   - an EV_ADD of EVFILT_READ on a readable socket reports it from the same kevent()
 *     call with its byte count; after a change list alone, poll(2) sees the kqueue
 *     readable;
 *   - EV_DELETE on a number closed behind the library's back (a raw system call) gives
 *     EBADF, on a number another file took since ENOENT;
 *   - a number that names an old file again, after another file registered in between
 *     was closed unseen with its event pending, reports nothing through the stale knote;
 *   - an outer kqueue watches a dup() of an inner kqueue's descriptor (a number the
 *     library has not seen), and EVFILT_WRITE on it is EINVAL.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>

static const char *pers;	/* "freebsd" or "netbsd" */
static int tag1, tag2, tag3;

static int new_kq(void)
{
	return kqt_kqueue(pers);
}

/* R1 add_ready_same_call */
static void case_add_ready(void)
{
	int s[2];
	struct kevent ch, ev[4];
	struct timespec zero = { 0, 0 };
	struct pollfd pfd;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	CHECK_EQ(write(s[1], "abc", 3), 3);
	EV_SET(&ch, s[0], EVFILT_READ, EV_ADD, 0, 0, &tag1);
	CHECK_EQ(kevent(kq, &ch, 1, ev, 4, &zero), 1);
	CHECK_EQ(ev[0].ident, s[0]);
	CHECK_EQ(ev[0].filter, EVFILT_READ);
	CHECK_EQ(ev[0].data, 3);
	CHECK(ev[0].udata == &tag1);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, ev, 4), 0);

	/* A change list alone: the kqueue descriptor is readable before any scan. */
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, &tag2), 0);
	pfd.fd = kq;
	pfd.events = POLLIN;
	pfd.revents = 0;
	CHECK_EQ(poll(&pfd, 1, 0), 1);
	CHECK_EQ(kqt_poll(kq, ev, 4), 1);
	CHECK_EQ(ev[0].data, 3);
	CHECK(ev[0].udata == &tag2);
	pfd.revents = 0;
	CHECK_EQ(poll(&pfd, 1, 0), 0);
	close(s[0]);
	close(s[1]);
	close(kq);
}

/* R1 delete_closed_and_reused: a number closed unseen, then reused. */
static void case_delete_checks(void)
{
	int s[2], t[2];
	struct kevent ev[4];
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, t), 0);
	int num = s[0];
	CHECK_EQ(kqt_change(kq, num, EVFILT_READ, EV_ADD, 0, 0, &tag1), 0);
	CHECK_EQ(kqt_change(kq, num, EVFILT_WRITE, EV_ADD, 0, 0, &tag2), 0);
	CHECK_EQ(kqt_poll(kq, ev, 4), 1); /* writable */
	CHECK_EQ(syscall(SYS_close, num), 0);
	CHECK_ERR(kqt_change(kq, num, EVFILT_READ, EV_DELETE, 0, 0, NULL), EBADF);
	/* Another socket on the number: no knote of the old file there. */
	CHECK_EQ(fcntl(t[0], F_DUPFD, num), num);
	CHECK_ERR(kqt_change(kq, num, EVFILT_WRITE, EV_DELETE, 0, 0, NULL), ENOENT);
	CHECK_ERR(kqt_change(kq, num, EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
	CHECK_EQ(write(t[1], "x", 1), 1);
	CHECK_EQ(kqt_wait(kq, ev, 4, 100), 0);

	/* Registered on the new file, then reused once more behind the library's back. */
	CHECK_EQ(kqt_change(kq, num, EVFILT_READ, EV_ADD, 0, 0, &tag3), 0);
	CHECK_EQ(kqt_poll(kq, ev, 4), 1);
	CHECK(ev[0].udata == &tag3);
	CHECK_EQ(syscall(SYS_dup3, s[1], num, 0), num);
	CHECK_ERR(kqt_change(kq, num, EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
	close(num);
	close(s[1]);
	close(t[0]);
	close(t[1]);
	close(kq);
}

/* G23 number_back_on_old_file: see the comment at the top. */
static void case_back_on_old_file(void)
{
	int a[2], b[2];
	struct kevent ev[4];
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	int num = a[0];
	int keep = dup(num);
	CHECK(keep >= 0);
	CHECK_EQ(kqt_change(kq, num, EVFILT_READ, EV_ADD, 0, 0, &tag1), 0);
	/* Closed unseen: A's registration stays in the epoll under num. */
	CHECK_EQ(syscall(SYS_close, num), 0);
	CHECK_EQ(syscall(SYS_dup3, b[0], num, 0), num);
	CHECK_EQ(syscall(SYS_close, b[0]), 0);
	CHECK_EQ(kqt_change(kq, num, EVFILT_READ, EV_ADD, 0, 0, &tag2), 0);
	CHECK_EQ(write(b[1], "x", 1), 1);
	CHECK_EQ(kqt_poll(kq, ev, 4), 1);
	CHECK(ev[0].udata == &tag2);
	CHECK_EQ(ev[0].data, 1);
	/* B closed unseen with its record queued; num is A again. */
	CHECK_EQ(syscall(SYS_dup3, keep, num, 0), num);
	CHECK_EQ(write(a[1], "four", 4), 4);
	CHECK_EQ(kqt_poll(kq, ev, 4), 0);
	CHECK_EQ(kqt_wait(kq, ev, 4, 100), 0);
	CHECK_ERR(kqt_change(kq, num, EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
	CHECK_EQ(kqt_change(kq, num, EVFILT_READ, EV_ADD, 0, 0, &tag3), 0);
	CHECK_EQ(kqt_poll(kq, ev, 4), 1);
	CHECK(ev[0].udata == &tag3);
	CHECK_EQ(ev[0].data, 4);
	close(num);
	close(keep);
	close(a[1]);
	close(b[1]);
	close(kq);
}

/* U37 outer_watches_dup_of_inner */
static void case_watch_dup(void)
{
	struct kevent ev[4];
	int inner = new_kq(), outer = new_kq();
	CHECK(inner >= 0 && outer >= 0);
	int d = dup(inner);
	CHECK(d >= 0);
	CHECK_EQ(kqt_change(outer, d, EVFILT_READ, EV_ADD, 0, 0, &tag1), 0);
	CHECK_ERR(kqt_change(outer, d, EVFILT_WRITE, EV_ADD, 0, 0, NULL), EINVAL);
	CHECK_EQ(kqt_poll(outer, ev, 4), 0);
	CHECK_EQ(kqt_user(inner, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(inner, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(outer, ev, 4), 1);
	CHECK_EQ(ev[0].ident, d);
	CHECK_EQ(ev[0].data, 1);
	CHECK(ev[0].udata == &tag1);
	int self = dup(outer);
	CHECK(self >= 0);
	CHECK_ERR(kqt_change(outer, self, EVFILT_READ, EV_ADD, 0, 0, NULL), EINVAL);
	close(self);
	close(d);
	close(inner);
	close(outer);
}

static void run_all(const char *p)
{
	pers = p;
	kqt_run_as(pers, "R1", "add_ready_same_call", case_add_ready);
	kqt_run_as(pers, "R1", "delete_closed_and_reused", case_delete_checks);
	kqt_run_as(pers, "G23", "number_back_on_old_file", case_back_on_old_file);
	kqt_run_as(pers, "U37", "outer_watches_dup_of_inner", case_watch_dup);
}

int main(void)
{
	kqt_watchdog(60);
	run_all("freebsd");
	run_all("netbsd");
	return kqt_done();
}
