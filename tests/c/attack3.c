/*
 * Attacks on the eventfd/timerfd counters and on fork(), through the C API, the way
 * programs get them wrong by accident:
 *   G23: a watched eventfd closed with the raw system call (the library hears nothing),
 *        its number reused by a socket, a pipe, another eventfd: the old knotes report
 *        nothing, a new EV_ADD gets the new file's own semantics;
 *   R7:  EFD_SEMAPHORE eventfds report the whole counter; with no descriptor to spare
 *        (EMFILE) the event still comes, and the count is back once one is free;
 *   U35: fork() in a loop while threads make, use and close kqueues with timers, READ
 *        on files, vnode, signal and process knotes: no child inherits one of the
 *        library's descriptors or hangs, and each can use a kqueue of its own; a vfork()
 *        child that closes a watched descriptor does not take the parent's knote.
 * Every case runs in both personalities.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static const char *pers;

static int add(int fd, uint64_t n)
{
	return write(fd, &n, sizeof n) == (ssize_t)sizeof n ? 0 : -1;
}

/* close(2) and dup3(2) the library does not see. */
static int raw_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}

static int raw_move(int from, int to)
{
	int r = (int)syscall(SYS_dup3, from, to, O_CLOEXEC);
	raw_close(from);
	return r;
}

/* A number far above the ones in use, free. */
#define SLOT 700

/* A kqueue watching an eventfd at SLOT with READ and WRITE, counter 5, both active. */
static int watched_counter(int *kq)
{
	*kq = kqt_kqueue(pers);
	int e = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (*kq < 0 || e < 0 || raw_move(e, SLOT) != SLOT)
		return -1;
	if (kqt_change(*kq, SLOT, EVFILT_READ, EV_ADD, 0, 0, NULL) != 0 ||
	    kqt_change(*kq, SLOT, EVFILT_WRITE, EV_ADD, 0, 0, NULL) != 0)
		return -1;
	return add(SLOT, 5);
}

static void case_g23_reused_by_socket(void)
{
	struct kevent ev[4];
	int kq, sv[2];
	CHECK_EQ(watched_counter(&kq), 0);
	CHECK_EQ(raw_close(SLOT), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	CHECK_EQ(raw_move(sv[0], SLOT), SLOT);
	CHECK_EQ(write(sv[1], "abc", 3), 3);
	CHECK_EQ(kqt_poll(kq, ev, 4), 0);
	CHECK_EQ(kqt_change(kq, SLOT, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, ev, 4), 1);
	CHECK_EQ(ev[0].filter, EVFILT_READ);
	CHECK_EQ(ev[0].data, 3);
	close(SLOT);
	close(sv[1]);
	close(kq);
}

static void case_g23_reused_by_pipe(void)
{
	struct kevent ev[4];
	int kq, p[2];
	CHECK_EQ(watched_counter(&kq), 0);
	CHECK_EQ(raw_close(SLOT), 0);
	CHECK_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	CHECK_EQ(raw_move(p[0], SLOT), SLOT);
	CHECK_EQ(write(p[1], "ab", 2), 2);
	CHECK_EQ(kqt_poll(kq, ev, 4), 0);
	CHECK_EQ(kqt_change(kq, SLOT, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, ev, 4), 1);
	CHECK_EQ(ev[0].data, 2);
	/* The write end of a pipe: room, not a counter. */
	CHECK_EQ(kqt_change(kq, p[1], EVFILT_WRITE, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, ev, 4), 2);
	close(SLOT);
	close(p[1]);
	close(kq);
}

static void case_g23_reused_by_eventfd(void)
{
	struct kevent ev[4];
	int kq;
	CHECK_EQ(watched_counter(&kq), 0);
	CHECK_EQ(raw_close(SLOT), 0);
	int e = eventfd(2, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK_EQ(raw_move(e, SLOT), SLOT);
	CHECK_EQ(add(SLOT, 1), 0);
	CHECK_EQ(kqt_poll(kq, ev, 4), 0);
	CHECK_EQ(kqt_change(kq, SLOT, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, ev, 4), 1);
	CHECK_EQ(ev[0].data, 3);
	close(SLOT);
	close(kq);
}

static void case_r7_semaphore(void)
{
	struct kevent ev;
	uint64_t one;
	int kq = kqt_kqueue(pers);
	int e = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC | EFD_SEMAPHORE);
	CHECK_EQ(kqt_change(kq, e, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(add(e, 3), 0);
	for (int left = 3; left > 0; left--) {
		CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
		CHECK_EQ(ev.data, left);
		CHECK_EQ(read(e, &one, sizeof one), (ssize_t)sizeof one);
		CHECK_EQ(one, 1);
	}
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	close(e);
	close(kq);
}

static void case_r7_emfile(void)
{
	struct kevent ev;
	struct rlimit old, low;
	int held[160], n = 0;
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
	low.rlim_cur = 128;
	low.rlim_max = old.rlim_max;
	int kq = kqt_kqueue(pers);
	int e = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK_EQ(kqt_change(kq, e, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < 160) {
		int d = fcntl(0, F_DUPFD_CLOEXEC, 0);
		if (d < 0)
			break;
		held[n++] = d;
	}
	CHECK_EQ(errno, EMFILE);
	CHECK_EQ(add(e, 4), 0);
	int got = kqt_wait(kq, &ev, 1, 30000);
	for (int i = 0; i < n; i++)
		close(held[i]);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
	CHECK_EQ(got, 1);
	CHECK_EQ(ev.ident, (uintptr_t)e);
	CHECK_EQ(add(e, 1), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.data, 5);
	close(e);
	close(kq);
}

#define WORKERS 3
static volatile int stop;
static pid_t sleeper;
static char dir[] = "/tmp/kq-attack3-XXXXXX";

static void *churn(void *arg)
{
	int me = (int)(intptr_t)arg;
	char path[128];
	struct kevent ch[6], out[8];
	snprintf(path, sizeof path, "%s/f%d", dir, me);
	int f = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	if (f < 0 || write(f, "abc", 3) != 3)
		return NULL;
	close(f);
	while (!stop) {
		int kq = kqueue();
		if (kq < 0)
			continue;
		int file = open(path, O_RDONLY | O_CLOEXEC);
		int p[2];
		if (pipe2(p, O_CLOEXEC) != 0)
			break;
		EV_SET(&ch[0], 1, EVFILT_TIMER, EV_ADD, 0, 1, NULL);
		EV_SET(&ch[1], file, EVFILT_READ, EV_ADD, 0, 0, NULL);
		EV_SET(&ch[2], p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
		EV_SET(&ch[3], file, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE | NOTE_ATTRIB, 0,
		       NULL);
		EV_SET(&ch[4], SIGURG, EVFILT_SIGNAL, EV_ADD, 0, 0, NULL);
		EV_SET(&ch[5], sleeper, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
		kevent(kq, ch, 6, NULL, 0, NULL);
		if (write(p[1], "x", 1) != 1)
			break;
		for (int i = 0; i < 4; i++)
			kqt_wait(kq, out, 8, 1);
		close(file);
		close(p[0]);
		close(p[1]);
		close(kq);
	}
	return NULL;
}

/* In a forked child: 0 when no library descriptor was inherited and a kqueue of its own
 * works. */
static int child_checks(void)
{
	char link[256], path[64];
	struct dirent *d;
	struct kevent ev;
	DIR *fds = opendir("/proc/self/fd");
	if (!fds)
		return 2;
	while ((d = readdir(fds)) != NULL) {
		int n = atoi(d->d_name);
		if (d->d_name[0] == '.' || n == dirfd(fds))
			continue;
		snprintf(path, sizeof path, "/proc/self/fd/%d", n);
		ssize_t len = readlink(path, link, sizeof link - 1);
		if (len < 0)
			continue;
		link[len] = 0;
		if (strncmp(link, "anon_inode:", 11) == 0 || strncmp(link, "socket:", 7) == 0) {
			fprintf(stderr, "child inherited %d -> %s\n", n, link);
			return 1;
		}
	}
	closedir(fds);
	int kq = kqueue();
	if (kq < 0 || kqt_change(kq, 1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 1, NULL) != 0)
		return 3;
	if (kqt_wait(kq, &ev, 1, 10000) != 1 || ev.ident != 1)
		return 4;
	close(kq);
	return 0;
}

static void case_u35_fork_while_threads_churn(void)
{
	pthread_t t[WORKERS];
	CHECK(mkdtemp(dir) != NULL);
	sleeper = fork();
	if (sleeper == 0) {
		pause();
		_exit(0);
	}
	stop = 0;
	/* The personality is set once, before the threads: setenv() in threads racing fork()
	 * can leave the C library's environment lock held in the child, and racing
	 * kqueue()'s getenv() is a data race. The workers and the children call kqueue(). */
	if (pers)
		setenv("KQUEUE_PERSONALITY", pers, 1);
	else
		unsetenv("KQUEUE_PERSONALITY");
	for (int i = 0; i < WORKERS; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, churn, (void *)(intptr_t)i), 0);
	kqt_sleep_ms(30);
	int failures = 0, last = 0;
	for (int i = 0; i < 30; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			alarm(30);
			_exit(child_checks());
		}
		int status = 0;
		waitpid(pid, &status, 0);
		if (status != 0) {
			failures++;
			last = status;
		}
		kqt_sleep_ms(2);
	}
	stop = 1;
	for (int i = 0; i < WORKERS; i++)
		pthread_join(t[i], NULL);
	unsetenv("KQUEUE_PERSONALITY");
	kill(sleeper, SIGKILL);
	waitpid(sleeper, NULL, 0);
	for (int i = 0; i < WORKERS; i++) {
		char path[128];
		snprintf(path, sizeof path, "%s/f%d", dir, i);
		unlink(path);
	}
	rmdir(dir);
	strcpy(dir, "/tmp/kq-attack3-XXXXXX");
	if (failures)
		fprintf(stderr, "%d children failed, last wait status %#x\n", failures, last);
	CHECK_EQ(failures, 0);
}

/* A vfork() child shares the memory but not the descriptor table: its close() of a
 * watched number is not the parent's, whose knote stays. */
static void case_u35_vfork_child_closes(void)
{
	struct kevent ev;
	int p[2];
	int kq = kqt_kqueue(pers);
	CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
	CHECK_EQ(kqt_change(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	pid_t pid = vfork();
	if (pid == 0) {
		close(p[0]);
		close(kq);
		_exit(0);
	}
	CHECK(pid > 0);
	waitpid(pid, NULL, 0);
	CHECK_EQ(write(p[1], "xy", 2), 2);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 5000), 1);
	CHECK_EQ(ev.ident, (uintptr_t)p[0]);
	CHECK_EQ(ev.data, 2);
	close(p[0]);
	close(p[1]);
	close(kq);
}

static void run_all(const char *personality)
{
	pers = personality;
	const char *name = personality ? personality : "freebsd";
	kqt_run_as(name, "G23", "counter_reused_by_socket", case_g23_reused_by_socket);
	kqt_run_as(name, "G23", "counter_reused_by_pipe", case_g23_reused_by_pipe);
	kqt_run_as(name, "G23", "counter_reused_by_eventfd", case_g23_reused_by_eventfd);
	kqt_run_as(name, "R7", "eventfd_semaphore", case_r7_semaphore);
	kqt_run_as(name, "R7", "eventfd_emfile", case_r7_emfile);
	kqt_run_as(name, "U35", "fork_while_threads_churn", case_u35_fork_while_threads_churn);
	kqt_run_as(name, "U35", "vfork_child_closes", case_u35_vfork_child_closes);
}

int main(void)
{
	kqt_watchdog(120);
	run_all(NULL);
	run_all("netbsd");
	return kqt_done();
}
