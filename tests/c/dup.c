/*
 * Duplicated kqueue descriptors (docs/semantics.md §3.2): a dup refers to the same
 * kqueue and keeps it alive; only closing the last descriptor destroys it.
 */
#include "kqtest.h"

#include <fcntl.h>

/* DUP same_kqueue: knotes added through one descriptor are seen through the other. */
static void case_same(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	int d = dup(kq);
	CHECK(d >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(d, 1, 0, NOTE_TRIGGER | NOTE_FFCOPY | 5, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.fflags, 5);
	CHECK_EQ(kqt_user(kq, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(d, &ev, 1), 1);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	close(d);
	close(kq);
}

/* DUP dup_keeps_alive: closing the original leaves the kqueue usable through the dup. */
static void case_keeps_alive(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	int d = dup2(kq, 200);
	CHECK_EQ(d, 200);
	int d2 = fcntl(kq, F_DUPFD_CLOEXEC, 300);
	CHECK(d2 >= 300);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(close(kq), 0);
	CHECK_ERR(kqt_poll(kq, &ev, 1), EBADF);
	CHECK_EQ(kqt_user(d, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(d2, &ev, 1), 1);
	CHECK_EQ(ev.ident, 1);
	CHECK_EQ(close(d), 0);
	CHECK_ERR(kqt_poll(d, &ev, 1), EBADF);
	CHECK_EQ(kqt_user(d2, 1, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_poll(d2, &ev, 1), 1);
	CHECK_EQ(close(d2), 0);
	CHECK_ERR(kqt_poll(d2, &ev, 1), EBADF);
}

/* DUP dup2_over_kqueue: a descriptor number taken over by another file is not a kqueue. */
static void case_dup2_over(void)
{
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	int p[2];
	CHECK_EQ(pipe(p), 0);
	CHECK_EQ(dup2(p[0], kq), kq);
	CHECK_ERR(kqt_poll(kq, &ev, 1), EBADF);
	close(kq);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	kqt_watchdog(30);
	kqt_run("DUP", "same_kqueue", case_same);
	kqt_run("DUP", "dup_keeps_alive", case_keeps_alive);
	kqt_run("DUP", "dup2_over_kqueue", case_dup2_over);
	return kqt_done();
}
