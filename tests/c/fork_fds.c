/*
 * fork() and the library's own descriptors (docs/semantics.md §3.3, U35): a kqueue is not
 * inherited, and neither is anything the library opened for it.  After the program used
 * every kind of knote (timers on both clocks, EVFILT_VNODE and EVFILT_READ on regular
 * files, EVFILT_SIGNAL, EVFILT_PROC with and without the process events connector,
 * EVFILT_FS, a kqueue watching another), a forked child holds only the program's own
 * descriptors: no epoll, eventfd, timerfd, inotify instance, process descriptor, netlink
 * socket or mount table of the library.  This holds too for a kqueue the program closed
 * while another thread was still inside kevent() on it (the library's state of the kqueue
 * is then still alive at the fork).
 *
 * Every case runs in both personalities.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *const personalities[] = { "freebsd", "netbsd" };
static const char *personality;

/* The descriptors the program itself holds: those it had at start and those it opened. */
static int own[256];
static int nown;

static void note_own(int fd)
{
	if (nown < (int)(sizeof own / sizeof own[0]))
		own[nown++] = fd;
}

static void forget_own(int fd)
{
	for (int i = 0; i < nown; i++)
		if (own[i] == fd)
			own[i] = own[--nown];
}

static int is_own(int fd)
{
	for (int i = 0; i < nown; i++)
		if (own[i] == fd)
			return 1;
	return 0;
}

static void note_baseline(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	if (!d) {
		perror("opendir /proc/self/fd");
		exit(2);
	}
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
			note_own(atoi(e->d_name));
	closedir(d);
}

/*
 * In a child: prints every open descriptor that is not the program's own, with what it
 * is, and returns how many there are (-1 if /proc cannot be read).
 */
static int foreign_fds(const char *where)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		if (fd == dirfd(d) || is_own(fd))
			continue;
		char path[64], target[256];
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		ssize_t len = readlink(path, target, sizeof target - 1);
		target[len < 0 ? 0 : len] = '\0';
		fprintf(stderr, "%s (%s): the child holds descriptor %d: %s\n", where,
			personality, fd, target);
		n++;
	}
	closedir(d);
	return n;
}

static int new_kq(void)
{
	return kqt_kqueue(strcmp(personality, "netbsd") == 0 ? "netbsd" : NULL);
}

/* A temporary regular file, unlinked at once (the program keeps the descriptor). */
static int temp_file(void)
{
	char name[] = "/tmp/kq-fork-fds-XXXXXX";
	int fd = mkstemp(name);
	if (fd >= 0) {
		unlink(name);
		note_own(fd);
	}
	return fd;
}

static void close_own(int fd)
{
	forget_own(fd);
	close(fd);
}

/* Forks; the child exits with the number of foreign descriptors it holds (capped). */
static pid_t fork_and_count(const char *where)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		int n = foreign_fds(where);
		_exit(n < 0 ? 99 : n > 90 ? 90 : n);
	}
	return pid;
}

static int wait_status(pid_t pid)
{
	int status = -1;
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

/* A child of the program that waits for a byte on pipe q (or its EOF: the program closes
 * q[1]), then exits with 7. */
static pid_t sleeper_child(const int q[2])
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		close(q[1]);
		while (read(q[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(7);
	}
	return pid;
}

/*
 * Registers one knote of every kind that makes the library open descriptors in kq:
 * EVFILT_TIMER on both clocks, EVFILT_VNODE and EVFILT_READ on regular files, EVFILT_READ
 * on a pipe, EVFILT_SIGNAL, EVFILT_PROC (NOTE_EXIT: a process descriptor; NOTE_FORK and
 * NOTE_EXEC: the connector, where Linux gives it), EVFILT_FS, EVFILT_USER.  Returns 0.
 */
static int use_everything(int kq, int file1, int file2, int piperd, pid_t child)
{
	struct kevent c[10];
	int n = 0;
	EV_SET(&c[n++], 1, EVFILT_TIMER, EV_ADD, 0, 60000, NULL);
	EV_SET(&c[n++], 2, EVFILT_TIMER, EV_ADD, NOTE_ABSOLUTE | NOTE_SECONDS,
	       (intptr_t)time(NULL) + 3600, NULL);
	EV_SET(&c[n++], (uintptr_t)file1, EVFILT_VNODE, EV_ADD | EV_CLEAR,
	       NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB, 0, NULL);
	EV_SET(&c[n++], (uintptr_t)file2, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
	EV_SET(&c[n++], (uintptr_t)piperd, EVFILT_READ, EV_ADD, 0, 0, NULL);
	EV_SET(&c[n++], SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0, NULL);
	EV_SET(&c[n++], (uintptr_t)child, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
	EV_SET(&c[n++], 0, EVFILT_FS, EV_ADD, 0, 0, NULL);
	EV_SET(&c[n++], 3, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
	if (kevent(kq, c, n, NULL, 0, NULL) != 0)
		return -1;
	/* Forks and execs need the connector, which Linux may refuse (EOPNOTSUPP). */
	int r = kqt_change(kq, (uintptr_t)child, EVFILT_PROC, EV_ADD,
			   NOTE_EXIT | NOTE_FORK | NOTE_EXEC, 0, NULL);
	if (r != 0 && errno != EOPNOTSUPP)
		return -1;
	/* A regular file is always readable: one event, and a write makes the vnode note. */
	if (write(file1, "x", 1) != 1)
		return -1;
	struct kevent ev[8];
	if (kqt_wait(kq, ev, 8, 30000) < 1)
		return -1;
	return 0;
}

/* U35 fork_closes_library_descriptors */
static void case_everything(void)
{
	int file1 = temp_file(), file2 = temp_file();
	int p[2], q[2];
	CHECK(file1 >= 0 && file2 >= 0);
	CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
	CHECK_EQ(pipe2(q, O_CLOEXEC), 0);
	note_own(p[0]);
	note_own(p[1]);
	note_own(q[0]);
	note_own(q[1]);
	pid_t child = sleeper_child(q);
	CHECK(child > 0);

	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(use_everything(kq, file1, file2, p[0], child), 0);
	/* A second kqueue watching the first, with a timer of its own. */
	int outer = new_kq();
	CHECK(outer >= 0);
	CHECK_EQ(kqt_change(outer, (uintptr_t)kq, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(outer, 1, EVFILT_TIMER, EV_ADD, 0, 60000, NULL), 0);

	pid_t pid = fork_and_count("after using every filter");
	CHECK(pid > 0);
	CHECK_EQ(wait_status(pid), 0);

	/* The parent's kqueues are intact. */
	struct kevent ev;
	CHECK_EQ(kqt_user(kq, 3, 0, NOTE_TRIGGER, 0, NULL), 0);
	CHECK_EQ(kqt_wait(outer, &ev, 1, 30000), 1);
	CHECK_EQ(ev.ident, (uintptr_t)kq);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 30000), 1);
	CHECK_EQ(ev.filter, EVFILT_USER);
	CHECK_EQ(close(q[1]), 0); /* the watched child exits */
	forget_own(q[1]);
	CHECK_EQ(kqt_change(kq, 3, EVFILT_USER, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, 1, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, 2, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, (uintptr_t)file1, EVFILT_VNODE, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, (uintptr_t)file2, EVFILT_READ, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, (uintptr_t)p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, SIGUSR1, EVFILT_SIGNAL, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, 0, EVFILT_FS, EV_DELETE, 0, 0, NULL), 0);
	int got_exit = 0;
	for (int i = 0; i < 4 && !got_exit; i++) {
		int n = kqt_wait(kq, &ev, 1, 30000);
		CHECK(n >= 0);
		if (n == 1 && ev.filter == EVFILT_PROC && (ev.fflags & NOTE_EXIT))
			got_exit = 1;
	}
	CHECK(got_exit);
	CHECK_EQ(wait_status(child), 7);
	CHECK_EQ(close(outer), 0);
	CHECK_EQ(close(kq), 0);
	close_own(p[0]);
	close_own(p[1]);
	close_own(q[0]);
	close_own(file1);
	close_own(file2);
}

/* The thread that sleeps in kevent() on a kqueue the main thread closes. */
struct sleeper {
	int kq;
	int rc;
	int err;
};

static int hold[2];       /* the signal handler waits for a byte on hold[0] */
static int entered[2];    /* it writes one to entered[1] first */

static void hold_handler(int sig)
{
	char c = 'e';
	int saved = errno;
	(void)sig;
	if (write(entered[1], &c, 1) != 1)
		_exit(97);
	while (read(hold[0], &c, 1) < 0 && errno == EINTR)
		;
	errno = saved;
}

static void *sleeper_main(void *arg)
{
	struct sleeper *s = (struct sleeper *)arg;
	struct kevent ev;
	struct timespec ts = { 30, 0 };
	s->rc = kevent(s->kq, NULL, 0, &ev, 1, &ts);
	s->err = errno;
	return NULL;
}

/*
 * U35 fork_closes_mid_close_kqueue: a thread sleeps in kevent() on a kqueue with knotes
 * of every kind; a signal handler stops it there (still inside the call) while the main
 * thread closes the kqueue and forks.  The library's state of the kqueue is alive at the
 * fork (the sleeping call holds it), but the child holds none of its descriptors.
 */
static void case_mid_close(void)
{
	int file1 = temp_file(), file2 = temp_file();
	int p[2], q[2];
	CHECK(file1 >= 0 && file2 >= 0);
	CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
	CHECK_EQ(pipe2(q, O_CLOEXEC), 0);
	CHECK_EQ(pipe2(hold, O_CLOEXEC), 0);
	CHECK_EQ(pipe2(entered, O_CLOEXEC), 0);
	int mine[] = { p[0], p[1], q[0], q[1], hold[0], hold[1], entered[0], entered[1] };
	for (unsigned i = 0; i < sizeof mine / sizeof mine[0]; i++)
		note_own(mine[i]);
	pid_t child = sleeper_child(q);
	CHECK(child > 0);

	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = hold_handler;
	sigemptyset(&sa.sa_mask);
	CHECK_EQ(sigaction(SIGUSR2, &sa, &old), 0);

	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(use_everything(kq, file1, file2, p[0], child), 0);
	struct kevent drain[8];
	while (kqt_poll(kq, drain, 8) > 0)
		;
	struct sleeper s = { kq, 0, 0 };
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, sleeper_main, &s), 0);
	kqt_sleep_ms(50); /* asleep in kevent() */
	CHECK_EQ(pthread_kill(t, SIGUSR2), 0);
	char c;
	CHECK_EQ(read(entered[0], &c, 1), 1);
	CHECK_EQ(close(kq), 0);

	pid_t pid = fork_and_count("a kqueue closed while a thread is in kevent() on it");
	CHECK(pid > 0);
	int st = wait_status(pid);

	CHECK_EQ(write(hold[1], "g", 1), 1);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(sigaction(SIGUSR2, &old, NULL), 0);
	CHECK_EQ(st, 0);
	/* The closed kqueue's call ends: interrupted, or told that the kqueue went. */
	CHECK_EQ(s.rc, -1);
	CHECK(s.err == EBADF || s.err == EINTR);

	close_own(q[1]);
	CHECK_EQ(wait_status(child), 7);
	for (unsigned i = 0; i < sizeof mine / sizeof mine[0]; i++)
		if (mine[i] != q[1])
			close_own(mine[i]);
	close_own(file1);
	close_own(file2);
}

int main(void)
{
	kqt_watchdog(60);
	note_baseline();
	for (unsigned i = 0; i < sizeof personalities / sizeof personalities[0]; i++) {
		personality = personalities[i];
		kqt_run("U35", personality[0] == 'f' ? "fork_closes_library_descriptors_freebsd"
						     : "fork_closes_library_descriptors_netbsd",
			case_everything);
		kqt_run("U35", personality[0] == 'f' ? "fork_closes_mid_close_kqueue_freebsd"
						     : "fork_closes_mid_close_kqueue_netbsd",
			case_mid_close);
	}
	return kqt_done();
}
