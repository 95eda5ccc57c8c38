/*
 * Attacks on level EVFILT_READ registrations and on kevent() calls whose changes and
 * collection run under one hold of the kqueue lock, through the C library, in both
 * personalities (FreeBSD: the kqueue() default; NetBSD: KQUEUE_PERSONALITY=netbsd):
 *   - a number closed by a raw system call while its level registration is armed and
 *     taken by a pipe, the old file alive in a dup: nothing for the pipe, no spinning
 *     wait, a fresh EV_ADD watches the pipe;
 *   - the same through the interposed close() and dup2() over the number;
 *   - a fork child gets EBADF from the inherited kqueue; the parent's level knote works;
 *   - one call triggering two knotes with one slot: the other stays pending, the kqueue
 *     descriptor readable and an edge-triggered watcher given an edge; one triggered and
 *     collected by the same call gives nobody anything;
 *   - error entries in the changelist: the trigger stays pending and signalled.
 * With KQ_NO_LEVEL set the same program passes.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static const char *pers;

static int new_kq(void)
{
	return kqt_kqueue(pers);
}

#define CHECK_READ(kq, fd, d) do {					\
	struct kevent ev_;						\
	CHECK_EQ(kqt_poll(kq, &ev_, 1), 1);				\
	CHECK_EQ(ev_.ident, (uintptr_t)(fd));				\
	CHECK_EQ(ev_.filter, EVFILT_READ);				\
	CHECK_EQ(ev_.data, d);						\
} while (0)

/* A level knote on s[0], delivered and drained: its registration armed level. */
static int armed_level(int kq, int s[2])
{
	struct kevent ev;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s) != 0)
		return -1;
	if (kqt_change(kq, s[0], EVFILT_READ, EV_ADD, 0, 0, NULL) != 0)
		return -1;
	if (write(s[1], "a", 1) != 1 || kqt_poll(kq, &ev, 1) != 1 || kqt_take(s[0], 1) != 1)
		return -1;
	return kqt_poll(kq, &ev, 1) == 0 ? 0 : -1;
}

/* G22 raw close (library not told) while armed, number reused by a pipe. */
static void case_raw_close_reuse_pipe(void)
{
	int s[2], p[2];
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(armed_level(kq, s), 0);
	int keep = dup(s[0]);
	CHECK(keep >= 0);
	CHECK_EQ(syscall(SYS_close, s[0]), 0);
	CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	if (p[0] != s[0]) {
		CHECK_EQ(syscall(SYS_dup3, p[0], s[0], O_CLOEXEC), s[0]);
		CHECK_EQ(syscall(SYS_close, p[0]), 0);
	}
	CHECK_EQ(write(p[1], "xyz", 3), 3);
	CHECK_EQ(write(s[1], "bc", 2), 2);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(kqt_quiet_wait(kq), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_READ(kq, s[0], 3);
	close(s[0]);
	close(s[1]);
	close(p[1]);
	close(keep);
	close(kq);
}

/* G22 interposed close and dup2 over an armed number, the old file alive in a dup. */
static void case_interposed_close_dup2(void)
{
	int s[2], t[2];
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(armed_level(kq, s), 0);
	int keep = dup(s[0]);
	CHECK(keep >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, t), 0);
	CHECK_EQ(dup2(t[0], s[0]), s[0]);
	CHECK_EQ(write(t[1], "xyz", 3), 3);
	CHECK_EQ(write(s[1], "bc", 2), 2);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(kqt_quiet_wait(kq), 0);
	CHECK_EQ(kqt_change(kq, s[0], EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_READ(kq, s[0], 3);
	CHECK_EQ(kqt_take(s[0], 3), 3);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	/* Closed (told): the old file in keep gets data, nothing comes. */
	CHECK_EQ(close(s[0]), 0);
	CHECK_EQ(write(s[1], "d", 1), 1);
	CHECK_EQ(kqt_quiet_wait(kq), 0);
	close(t[0]);
	close(t[1]);
	close(s[1]);
	close(keep);
	close(kq);
}

/* U35 fork: the child's inherited kqueue is EBADF; the parent's level knote still works. */
static void case_fork(void)
{
	int s[2];
	struct kevent ev;
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(armed_level(kq, s), 0);
	CHECK_EQ(write(s[1], "a", 1), 1);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct timespec z = { 0, 0 };
		int r = kevent(kq, NULL, 0, &ev, 1, &z);
		_exit(r == -1 && errno == EBADF ? 0 : 1);
	}
	int st;
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_READ(kq, s[0], 1);
	CHECK_EQ(kqt_take(s[0], 1), 1);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	CHECK_EQ(kqt_quiet_wait(kq), 0);
	close(s[0]);
	close(s[1]);
	close(kq);
}

/* U37 one call, two triggers, one slot: the other stays pending and signalled. */
static void case_one_call_short_list(void)
{
	struct kevent ch[2], ev[2];
	struct timespec z = { 0, 0 };
	int kq = new_kq();
	CHECK(kq >= 0);
	int ep = kqt_edge_watcher(kq);
	CHECK(ep >= 0);
	CHECK_EQ(kqt_user(kq, 1, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_user(kq, 2, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	while (kqt_edges(ep, 0) > 0)
		;
	EV_SET(&ch[0], 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0);
	EV_SET(&ch[1], 2, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0);
	CHECK_EQ(kevent(kq, ch, 2, ev, 1, &z), 1);
	CHECK(kqt_readable(kq));
	CHECK(kqt_edges(ep, 0) >= 1);
	CHECK_EQ(kqt_poll(kq, ev, 2), 1);
	CHECK(!kqt_readable(kq));
	CHECK_EQ(kevent(kq, ch, 1, ev, 2, &z), 1);
	CHECK(!kqt_readable(kq));
	CHECK_EQ(kqt_edges(ep, 0), 0);
	/* An error entry takes the slot: the trigger stays pending and signalled. */
	EV_SET(&ch[1], 99, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0);
	CHECK_EQ(kevent(kq, ch, 2, ev, 2, &z), 1);
	CHECK(ev[0].flags & EV_ERROR);
	CHECK_EQ(ev[0].data, ENOENT);
	CHECK(kqt_readable(kq));
	CHECK(kqt_edges(ep, 0) >= 1);
	CHECK_EQ(kqt_poll(kq, ev, 2), 1);
	CHECK(!kqt_readable(kq));
	close(ep);
	close(kq);
}

static void run_all(const char *p)
{
	pers = p;
	kqt_run_as(pers, "G22", "level_raw_close_reuse_pipe", case_raw_close_reuse_pipe);
	kqt_run_as(pers, "G22", "level_interposed_close_dup2", case_interposed_close_dup2);
	kqt_run_as(pers, "U35", "level_fork_child_ebadf", case_fork);
	kqt_run_as(pers, "U37", "one_call_short_list", case_one_call_short_list);
}

int main(void)
{
	kqt_watchdog(60);
	run_all("freebsd");
	run_all("netbsd");
	return kqt_done();
}
