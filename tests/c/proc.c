/*
 * EVFILT_PROC through the C API (docs/semantics.md §5.11, cases P1-P5 of §7.9): exit
 * statuses of children (exited, killed) and of a process that is not a child, the child reapable with
 * the same status once NOTE_EXIT was read, ESRCH, zombies per personality, forks and execs,
 * NOTE_TRACK, descriptors released by close(), and a forked child of the program using
 * EVFILT_PROC without disturbing its parent's watches.
 *
 * Every case runs in both personalities (the default FreeBSD one and
 * KQUEUE_PERSONALITY=netbsd); proc_netbsd.c builds this file against the NetBSD-flavour
 * header, where kqueue() is NetBSD's.  kernel_fallbacks runs the program again with
 * KQ_NO_PIDFD, KQ_NO_PIDFD_INFO or KQ_NO_PROC_CONNECTOR set: the cases then expect what the
 * library does on such kernels.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#ifdef KQT_NETBSD_ABI
static const char *const personalities[] = { "netbsd" };
#else
static const char *const personalities[] = { "freebsd", "netbsd" };
#endif

static const char *personality;
static int marker;

static int is_netbsd(void)
{
	return strcmp(personality, "netbsd") == 0;
}

static int new_kq(void)
{
#ifdef KQT_NETBSD_ABI
	return kqueue();
#else
	return kqt_kqueue(is_netbsd() ? "netbsd" : NULL);
#endif
}

static int forced(const char *var)
{
	return getenv(var) != NULL;
}

/* The flags of an exit record: the stored ones (NetBSD keeps EV_ADD), EV_CLEAR forced,
 * EV_EOF|EV_ONESHOT added. */
static unsigned exit_flags(void)
{
	return (is_netbsd() ? EV_ADD : 0) | EV_CLEAR | EV_EOF | EV_ONESHOT;
}

static int add(int kq, pid_t pid, unsigned fflags)
{
	return kqt_change(kq, (uintptr_t)pid, EVFILT_PROC, EV_ADD, fflags, 0, &marker);
}

/* In a child: dies with the parent; reads one byte (or EOF) from fd. */
static void child_setup(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static void child_wait(int fd)
{
	char b;
	while (read(fd, &b, 1) < 0 && errno == EINTR)
		;
}

static void send_byte(int fd)
{
	(void)!write(fd, "x", 1);
}

/* A child that waits for a byte on gate, then exits with code. */
static pid_t gated_child(int gate, int code)
{
	pid_t pid = fork();
	if (pid == 0) {
		child_setup();
		child_wait(gate);
		_exit(code);
	}
	return pid;
}

/* Waits up to ms for events; -1 on error. */
static int wait_events(int kq, struct kevent *ev, int n, long ms)
{
	return kqt_wait(kq, ev, n, ms);
}

/* Collects events until one has NOTE_EXIT in fflags for ident want (or 10 s pass). */
static int collect_exit(int kq, struct kevent *all, int max, pid_t want)
{
	int n = 0;
	double end = kqt_now_ms() + 10000.0;
	while (n < max && kqt_now_ms() < end) {
		int r = wait_events(kq, all + n, max - n, 100);
		if (r < 0)
			return -1;
		for (int i = n; i < n + r; i++)
			if ((all[i].fflags & NOTE_EXIT) && all[i].ident == (uintptr_t)want)
				return n + r;
		n += r;
	}
	return -2;
}

/* P5 exit_status: status in data, EV_EOF|EV_ONESHOT, udata; reapable at once with the same
 * status; the knote is gone. */
static void case_exit_status(void)
{
	int kq = new_kq(), p[2];
	struct kevent ev;
	CHECK(kq >= 0);
	CHECK_EQ(pipe(p), 0);
	pid_t pid = gated_child(p[0], 7);
	CHECK(pid > 0);
	CHECK_EQ(add(kq, pid, NOTE_EXIT), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	send_byte(p[1]);
	CHECK_EQ(wait_events(kq, &ev, 1, 5000), 1);
	CHECK_EQ(ev.ident, pid);
	CHECK_EQ(ev.filter, EVFILT_PROC);
	CHECK_EQ(ev.fflags, NOTE_EXIT);
	CHECK_EQ(ev.flags, exit_flags());
	CHECK(ev.udata == &marker);
	int st = (int)ev.data;
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
	int st2 = -1;
	CHECK_EQ(waitpid(pid, &st2, WNOHANG), pid);
	CHECK_EQ(st2, st);
	CHECK_ERR(kqt_change(kq, pid, EVFILT_PROC, EV_DELETE, 0, 0, NULL), ENOENT);
	close(p[0]);
	close(p[1]);
	close(kq);
}

/* P5 exit_killed: a child killed by a signal; the program's own wait gets the same status. */
static void case_exit_killed(void)
{
	int kq = new_kq(), p[2];
	struct kevent ev;
	CHECK(kq >= 0);
	CHECK_EQ(pipe(p), 0);
	pid_t pid = gated_child(p[0], 0);
	CHECK_EQ(add(kq, pid, NOTE_EXIT), 0);
	CHECK_EQ(kill(pid, SIGTERM), 0);
	CHECK_EQ(wait_events(kq, &ev, 1, 5000), 1);
	int st = (int)ev.data;
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
	int st2 = -1;
	CHECK_EQ(waitpid(pid, &st2, 0), pid);
	CHECK_EQ(st2, st);
	close(p[0]);
	close(p[1]);
	close(kq);
}

/* P5 no_such_process: ESRCH, as a return value and as an EV_ERROR entry. */
static void case_esrch(void)
{
	int kq = new_kq();
	struct kevent c, ev;
	struct timespec zero = { 0, 0 };
	CHECK(kq >= 0);
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	CHECK_EQ(waitpid(pid, NULL, 0), pid);
	CHECK_ERR(add(kq, pid, NOTE_EXIT), ESRCH);
	EV_SET(&c, (uintptr_t)pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
	CHECK_EQ(kevent(kq, &c, 1, &ev, 1, &zero), 1);
	CHECK_EQ(ev.flags, EV_ERROR);
	CHECK_EQ(ev.data, ESRCH);
	close(kq);
}

/* P5 zombie: NetBSD says ESRCH; FreeBSD registers it with NOTE_EXIT and fires at once. */
static void case_zombie(void)
{
	int kq = new_kq();
	struct kevent ev;
	siginfo_t si;
	CHECK(kq >= 0);
	pid_t pid = fork();
	if (pid == 0)
		_exit(3);
	CHECK_EQ(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	if (is_netbsd()) {
		CHECK_ERR(add(kq, pid, NOTE_EXIT), ESRCH);
	} else {
		CHECK_EQ(add(kq, pid, NOTE_EXIT), 0);
		CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
		CHECK_EQ(ev.fflags, NOTE_EXIT);
		CHECK_EQ(ev.data, 3 << 8);
	}
	CHECK_EQ(waitpid(pid, NULL, 0), pid);
	close(kq);
}

/* P5 exit_not_asked_for: NetBSD reports the exit anyway (fflags 0); FreeBSD drops it. */
static void case_exit_not_asked(void)
{
	int kq = new_kq(), p[2];
	struct kevent ev;
	siginfo_t si;
	CHECK(kq >= 0);
	CHECK_EQ(pipe(p), 0);
	pid_t pid = gated_child(p[0], 9);
	CHECK_EQ(add(kq, pid, 0), 0);
	send_byte(p[1]);
	if (is_netbsd()) {
		CHECK_EQ(wait_events(kq, &ev, 1, 5000), 1);
		CHECK_EQ(ev.fflags, 0);
		CHECK_EQ(ev.data, 9 << 8);
		CHECK_EQ(ev.flags, exit_flags());
	} else {
		CHECK_EQ(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
		CHECK_EQ(wait_events(kq, &ev, 1, 200), 0);
		CHECK_ERR(kqt_change(kq, pid, EVFILT_PROC, EV_DELETE, 0, 0, NULL), ENOENT);
	}
	CHECK_EQ(waitpid(pid, NULL, 0), pid);
	close(p[0]);
	close(p[1]);
	close(kq);
}

/* P5 non_child: a grandchild's exit status, while it is a zombie and once reaped by its
 * parent; without process descriptors, EOPNOTSUPP. */
static void case_non_child(void)
{
	for (int reaped = 0; reaped < 2; reaped++) {
		int kq = new_kq(), r[2], g[2], c[2];
		struct kevent ev;
		CHECK(kq >= 0);
		CHECK_EQ(pipe(r), 0);
		CHECK_EQ(pipe(g), 0);
		CHECK_EQ(pipe(c), 0);
		pid_t child = fork();
		if (child == 0) {
			child_setup();
			pid_t gc = gated_child(g[0], 21);
			(void)!write(r[1], &gc, sizeof gc);
			if (!reaped)
				child_wait(c[0]);
			waitpid(gc, NULL, 0);
			child_wait(c[0]);
			_exit(0);
		}
		pid_t gc;
		CHECK_EQ(read(r[0], &gc, sizeof gc), (ssize_t)sizeof gc);
		if (forced("KQ_NO_PIDFD")) {
			CHECK_ERR(add(kq, gc, NOTE_EXIT), EOPNOTSUPP);
		} else {
			CHECK_EQ(add(kq, gc, NOTE_EXIT), 0);
			send_byte(g[1]);
			CHECK_EQ(wait_events(kq, &ev, 1, 5000), 1);
			CHECK_EQ(ev.ident, gc);
			CHECK_EQ(ev.fflags, NOTE_EXIT);
			/* Reaped before we looked, with PIDFD_GET_INFO off: the status is lost. */
			if (!(forced("KQ_NO_PIDFD_INFO") && reaped && ev.data == 0))
				CHECK_EQ(ev.data, 21 << 8);
		}
		send_byte(g[1]);
		send_byte(c[1]);
		send_byte(c[1]);
		CHECK_EQ(waitpid(child, NULL, 0), child);
		close(r[0]);
		close(r[1]);
		close(g[0]);
		close(g[1]);
		close(c[0]);
		close(c[1]);
		close(kq);
	}
}

/* P1 fork_exec_exit: a child's fork, exec and exit, with the bits asked for. */
static void case_p1(void)
{
	int kq = new_kq(), a[2], b[2];
	struct kevent ev[16];
	CHECK(kq >= 0);
	CHECK_EQ(pipe(a), 0);
	CHECK_EQ(pipe(b), 0);
	pid_t pid = fork();
	if (pid == 0) {
		child_setup();
		child_wait(a[0]);
		pid_t g = fork();
		if (g == 0)
			_exit(0);
		waitpid(g, NULL, 0);
		child_wait(b[0]);
		execl("/bin/sh", "sh", "-c", "exit 5", (char *)NULL);
		_exit(99);
	}
	if (forced("KQ_NO_PROC_CONNECTOR")) {
		CHECK_ERR(add(kq, pid, NOTE_FORK | NOTE_EXEC | NOTE_EXIT), EOPNOTSUPP);
		CHECK_EQ(add(kq, pid, NOTE_EXIT), 0);
		send_byte(a[1]);
		send_byte(b[1]);
		CHECK_EQ(wait_events(kq, ev, 1, 5000), 1);
		CHECK_EQ(ev[0].fflags, NOTE_EXIT);
		CHECK_EQ(ev[0].data, 5 << 8);
	} else {
		CHECK_EQ(add(kq, pid, NOTE_FORK | NOTE_EXEC | NOTE_EXIT), 0);
		send_byte(a[1]);
		CHECK_EQ(wait_events(kq, ev, 1, 5000), 1);
		CHECK_EQ(ev[0].fflags, NOTE_FORK);
		CHECK_EQ(ev[0].flags & (EV_EOF | EV_ONESHOT), 0);
		send_byte(b[1]);
		int n = collect_exit(kq, ev, 16, pid);
		CHECK(n > 0);
		unsigned all = 0;
		for (int i = 0; i < n; i++)
			all |= ev[i].fflags;
		CHECK_EQ(all, NOTE_EXEC | NOTE_EXIT);
		CHECK_EQ(ev[n - 1].data, 5 << 8);
		CHECK_EQ(ev[n - 1].flags, exit_flags());
	}
	CHECK_EQ(waitpid(pid, NULL, 0), pid);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
	close(kq);
}

/* P2 track_child: NOTE_CHILD record for the grandchild (data: the child), then both exits;
 * never NOTE_FORK (not asked for). */
static void case_p2(void)
{
	int kq = new_kq(), a[2], r[2];
	struct kevent ev[16];
	CHECK(kq >= 0);
	CHECK_EQ(pipe(a), 0);
	CHECK_EQ(pipe(r), 0);
	pid_t pid = fork();
	if (pid == 0) {
		child_setup();
		child_wait(a[0]);
		pid_t g = fork();
		if (g == 0)
			_exit(12);
		(void)!write(r[1], &g, sizeof g);
		waitpid(g, NULL, 0);
		_exit(11);
	}
	if (forced("KQ_NO_PROC_CONNECTOR")) {
		CHECK_ERR(add(kq, pid, NOTE_TRACK | NOTE_EXIT), EOPNOTSUPP);
		send_byte(a[1]);
		CHECK_EQ(waitpid(pid, NULL, 0), pid);
		close(kq);
		return;
	}
	CHECK_EQ(add(kq, pid, NOTE_TRACK | NOTE_EXIT), 0);
	send_byte(a[1]);
	pid_t g;
	CHECK_EQ(read(r[0], &g, sizeof g), (ssize_t)sizeof g);
	int records = 0, gexit = -1, cexit = -1;
	unsigned cflags = 0;
	intptr_t cdata = -1;
	double end = kqt_now_ms() + 10000.0;
	/* Until the child's exit, and on NetBSD the grandchild's too: they come from different
	 * sources (the child's process descriptor; the connector, for a grandchild reaped
	 * before its tracking knote could open one), so the grandchild's may be reported
	 * after the child's although it happened first. */
	while ((cexit == -1 || (is_netbsd() && gexit == -1)) && kqt_now_ms() < end) {
		int k = wait_events(kq, ev, 16, 100);
		CHECK(k >= 0);
		for (int i = 0; i < k; i++) {
			CHECK_EQ(ev[i].fflags & (NOTE_FORK | NOTE_TRACKERR), 0);
			if (ev[i].fflags & NOTE_CHILD) {
				records++;
				CHECK_EQ(gexit, -1); /* the record comes before the grandchild's exit */
				CHECK_EQ(ev[i].ident, g);
				CHECK(ev[i].udata == &marker);
				cflags = ev[i].fflags;
				cdata = (intptr_t)ev[i].data;
			} else if (ev[i].fflags & NOTE_EXIT) {
				if (ev[i].ident == (uintptr_t)g)
					gexit = (int)ev[i].data;
				if (ev[i].ident == (uintptr_t)pid)
					cexit = (int)ev[i].data;
			}
		}
	}
	CHECK_EQ(records, 1);
	CHECK_EQ(cexit, 11 << 8);
	if (is_netbsd()) {
		/* A record of its own (data: the parent), then the tracking event's exit. */
		CHECK_EQ(cflags, NOTE_CHILD);
		CHECK_EQ(cdata, pid);
		CHECK_EQ(gexit, 12 << 8);
	} else if (cflags & NOTE_EXIT) {
		/* FreeBSD: the grandchild's exit merged into its NOTE_CHILD event. */
		CHECK_EQ(cdata, 12 << 8);
		CHECK_EQ(gexit, -1);
	} else {
		/* FreeBSD: the NOTE_CHILD event was read first, which ended the tracking. */
		CHECK_EQ(cdata, pid);
		CHECK_EQ(gexit, -1);
	}
	CHECK_EQ(waitpid(pid, NULL, 0), pid);
	CHECK_EQ(kqt_poll(kq, ev, 1), 0);
	close(a[0]);
	close(a[1]);
	close(r[0]);
	close(r[1]);
	close(kq);
}

/* P3 track_self: a fork of this process gives NOTE_CHILD (ident: the child), no
 * NOTE_TRACKERR, then the child's exit. */
static void case_p3(void)
{
	int kq = new_kq();
	struct kevent ev[8];
	CHECK(kq >= 0);
	if (forced("KQ_NO_PROC_CONNECTOR")) {
		CHECK_ERR(add(kq, getpid(), NOTE_TRACK | NOTE_EXIT), EOPNOTSUPP);
		close(kq);
		return;
	}
	CHECK_EQ(add(kq, getpid(), NOTE_TRACK | NOTE_EXIT), 0);
	pid_t pid = fork();
	if (pid == 0)
		_exit(4);
	/* NetBSD: the record, then the tracking event's exit.  FreeBSD: one event, the exit
	 * merged into it unless it was read first. */
	int n = 0, seen = 0, exited = 0;
	double end = kqt_now_ms() + 10000.0;
	while (!exited && !(seen && !is_netbsd()) && n < 8 && kqt_now_ms() < end) {
		int k = wait_events(kq, ev + n, 8 - n, 100);
		CHECK(k >= 0);
		for (int i = n; i < n + k; i++) {
			CHECK_EQ(ev[i].fflags & NOTE_TRACKERR, 0);
			CHECK_EQ(ev[i].ident, pid);
			if (ev[i].fflags & NOTE_CHILD) {
				seen = 1;
				if (!(ev[i].fflags & NOTE_EXIT))
					CHECK_EQ(ev[i].data, getpid());
			}
			if (ev[i].fflags & NOTE_EXIT) {
				exited = 1;
				CHECK_EQ(ev[i].data, 4 << 8);
			}
		}
		n += k;
	}
	CHECK(seen);
	CHECK_EQ(waitpid(pid, NULL, 0), pid);
	close(kq);
}

/* P4 track_descendants (NetBSD t_proc4): 10 children x 10 grandchildren. */
static void case_p4(void)
{
	enum { N = 10 };
	int kq = new_kq();
	struct kevent ev;
	CHECK(kq >= 0);
	if (forced("KQ_NO_PROC_CONNECTOR")) {
		close(kq);
		kqt_skip("no process events connector");
		return;
	}
	CHECK_EQ(add(kq, getpid(), NOTE_TRACK | NOTE_EXIT), 0);
	pid_t kids[N];
	for (int i = 0; i < N; i++) {
		pid_t pid = kids[i] = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			pid_t g[N];
			for (int j = 0; j < N; j++) {
				g[j] = fork();
				if (g[j] == 0)
					_exit(76);
			}
			for (int j = 0; j < N; j++)
				waitpid(g[j], NULL, 0);
			_exit(66);
		}
	}
	int tracks = 0, child_exits = 0, grandchild_exits = 0;
	double end = kqt_now_ms() + 20000.0;
	if (!is_netbsd()) {
		/* FreeBSD: an event read before its process forked ends the tracking of that
		 * branch, so the counts depend on timing: collect until every child has
		 * exited and nothing more comes. */
		siginfo_t si;
		for (int i = 0; i < N; i++)
			CHECK_EQ(waitid(P_PID, (id_t)kids[i], &si, WEXITED | WNOWAIT), 0);
	}
	for (;;) {
		if (is_netbsd() && tracks == N + N * N && child_exits == N &&
		    grandchild_exits == N * N)
			break;
		CHECK(kqt_now_ms() < end);
		int r = wait_events(kq, &ev, 1, is_netbsd() ? 200 : 300);
		CHECK(r >= 0);
		if (r == 0) {
			if (!is_netbsd() && tracks >= N)
				break;
			continue;
		}
		CHECK_EQ(ev.fflags & (NOTE_FORK | NOTE_TRACKERR), 0);
		if (ev.fflags & NOTE_CHILD)
			tracks++;
		if (ev.fflags & NOTE_EXIT) {
			/* FreeBSD reports an exit only merged into the NOTE_CHILD event. */
			CHECK(is_netbsd() || (ev.fflags & NOTE_CHILD));
			CHECK(ev.flags & EV_EOF);
			int st = (int)ev.data;
			CHECK(WIFEXITED(st));
			if (WEXITSTATUS(st) == 66) {
				int st2 = -1;
				child_exits++;
				CHECK_EQ(waitpid((pid_t)ev.ident, &st2, WNOHANG), ev.ident);
				CHECK_EQ(st2, st);
			} else {
				CHECK_EQ(WEXITSTATUS(st), 76);
				grandchild_exits++;
			}
		} else {
			CHECK(ev.fflags & NOTE_CHILD);
		}
	}
	if (is_netbsd()) {
		CHECK_EQ(tracks, N + N * N);
		CHECK_EQ(child_exits, N);
		CHECK_EQ(grandchild_exits, N * N);
		CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	} else {
		CHECK(tracks <= N + N * N);
	}
	/* The children whose exit was not reported. */
	while (waitpid(-1, NULL, 0) > 0)
		;
	close(kq);
}

/* The number of process descriptors this process has open. */
static int count_pidfds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		char path[300], target[64];
		snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
		ssize_t len = readlink(path, target, sizeof target - 1);
		if (len > 0) {
			target[len] = 0;
			n += strcmp(target, "anon_inode:[pidfd]") == 0;
		}
	}
	closedir(d);
	return n;
}

/* P5 close_releases: close() of the kqueue closes its process descriptors at once. */
static void case_close_releases(void)
{
	enum { N = 8 };
	int p[2];
	pid_t pids[N];
	CHECK_EQ(pipe(p), 0);
	for (int i = 0; i < N; i++)
		pids[i] = gated_child(p[0], 0);
	int before = count_pidfds();
	int kq = new_kq();
	CHECK(kq >= 0);
	for (int i = 0; i < N; i++)
		CHECK_EQ(add(kq, pids[i], NOTE_EXIT), 0);
	CHECK_EQ(count_pidfds(), before + (forced("KQ_NO_PIDFD") ? 0 : N));
	CHECK_EQ(close(kq), 0);
	CHECK_EQ(count_pidfds(), before);
	for (int i = 0; i < N; i++)
		send_byte(p[1]);
	for (int i = 0; i < N; i++)
		CHECK_EQ(waitpid(pids[i], NULL, 0), pids[i]);
	close(p[0]);
	close(p[1]);
}

/* P5 fork_leaves_parent_alone: a child of the program watches a process of its own and
 * closes its kqueue; the parent's watches (descriptor, connector) are undisturbed. */
static void case_fork_child_uses_proc(void)
{
	int kq = new_kq(), a[2];
	struct kevent ev[8];
	CHECK(kq >= 0);
	CHECK_EQ(pipe(a), 0);
	pid_t watched = fork();
	if (watched == 0) {
		child_setup();
		child_wait(a[0]);
		pid_t g = fork();
		if (g == 0)
			_exit(0);
		waitpid(g, NULL, 0);
		_exit(8);
	}
	unsigned want = forced("KQ_NO_PROC_CONNECTOR") ? NOTE_EXIT : NOTE_EXIT | NOTE_FORK;
	CHECK_EQ(add(kq, watched, want), 0);
	pid_t user = fork();
	if (user == 0) {
		/* The inherited kqueue is dead here; a new one works. */
		struct kevent e;
		if (kqt_poll(kq, &e, 1) != -1 || errno != EBADF)
			_exit(10);
		int k = new_kq(), m[2];
		if (k < 0 || pipe(m) != 0)
			_exit(11);
		pid_t mine = gated_child(m[0], 2);
		if (add(k, mine, want) != 0)
			_exit(12);
		send_byte(m[1]);
		if (wait_events(k, &e, 1, 5000) != 1 || e.data != 2 << 8)
			_exit(13);
		waitpid(mine, NULL, 0);
		close(k);
		_exit(0);
	}
	int st;
	CHECK_EQ(waitpid(user, &st, 0), user);
	CHECK_EQ(st, 0);
	send_byte(a[1]);
	int n = collect_exit(kq, ev, 8, watched);
	CHECK(n > 0);
	unsigned all = 0;
	for (int i = 0; i < n; i++)
		all |= ev[i].fflags;
	CHECK_EQ(all, want);
	CHECK_EQ(ev[n - 1].data, 8 << 8);
	CHECK_EQ(waitpid(watched, NULL, 0), watched);
	close(a[0]);
	close(a[1]);
	close(kq);
}

#define RUN(id, name, fn)                                                              \
	do {                                                                           \
		for (size_t i_ = 0; i_ < sizeof personalities / sizeof personalities[0]; \
		     i_++) {                                                           \
			char n_[64];                                                   \
			personality = personalities[i_];                               \
			snprintf(n_, sizeof n_, "%s_%s", name, personality);          \
			kqt_run(id, n_, fn);                                          \
		}                                                                      \
	} while (0)

int main(void)
{
	kqt_watchdog(110);
	RUN("P5", "exit_status", case_exit_status);
	RUN("P5", "exit_killed", case_exit_killed);
	RUN("P5", "no_such_process", case_esrch);
	RUN("P5", "zombie", case_zombie);
	RUN("P5", "exit_not_asked_for", case_exit_not_asked);
	RUN("P5", "non_child", case_non_child);
	RUN("P1", "fork_exec_exit", case_p1);
	RUN("P2", "track_child", case_p2);
	RUN("P3", "track_self", case_p3);
	RUN("P4", "track_descendants", case_p4);
	RUN("P5", "close_releases", case_close_releases);
	RUN("P5", "fork_child_uses_proc", case_fork_child_uses_proc);
	return kqt_done();
}
