/*
 * Adversarial cases of EVFILT_VNODE and EVFILT_EMPTY through the C library, in both
 * personalities: the interposed close(), dup2() and close_range() of watched descriptors
 * (the other knotes on the file keep their events), descriptors closed behind the
 * library's back (raw system calls) and their numbers reused by a new file that got the
 * old one's inode number, an EV_ONESHOT vnode knote re-armed for every event, fork() with
 * the child closing everything it inherited, the kqueue closed while a thread sleeps in
 * it, and EVFILT_EMPTY on a TCP connection that the peer resets.  The program works in a
 * directory of its own under /tmp.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static const char *pers;	/* the personality of the current round */

/* Polls for exactly one record; returns its fflags (and the ident in *ident), or -1. */
static long one_record(int kq, uintptr_t *ident, short *filter)
{
	struct kevent ev[4];
	int n = kqt_poll(kq, ev, 4);
	if (n != 1)
		return -1;
	if (ident)
		*ident = ev[0].ident;
	if (filter)
		*filter = ev[0].filter;
	return (long)ev[0].fflags;
}

static void cleanup(void)
{
	(void)unlink("f");
	(void)unlink("g");
}

/* The process's inotify instances. */
static int count_inotify(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char path[300], target[64];
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		ssize_t len;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
		len = readlink(path, target, sizeof target - 1);
		if (len < 0)
			continue;
		target[len] = 0;
		if (strcmp(target, "anon_inode:inotify") == 0)
			n++;
	}
	closedir(d);
	return n;
}

/*
 * Three descriptors of one file, each with a vnode knote of its own interest: close() of
 * one, dup2() over another and close_range() of the last each drop only their knote; the
 * others keep reporting their notes.
 */
static void case_close_dup2_close_range(void)
{
	int kq, a, b, c, other;
	uintptr_t ident;
	cleanup();
	CHECK((a = open("f", O_RDWR | O_CREAT, 0600)) >= 0);
	CHECK((b = dup(a)) >= 0);
	CHECK((c = open("f", O_RDONLY)) >= 0);
	CHECK((other = open("g", O_RDWR | O_CREAT, 0600)) >= 0);
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(kqt_change(kq, a, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, b, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_ATTRIB, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, c, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_RENAME, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, c, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);

	CHECK_EQ(close(a), 0);
	CHECK_EQ(pwrite(b, "abc", 3, 0), 3);
	/* Only c's read knote: the write knote went with a. */
	{
		short filter;
		CHECK_EQ(one_record(kq, &ident, &filter), 0);
		CHECK_EQ(ident, c);
		CHECK_EQ(filter, EVFILT_READ);
	}
	CHECK_EQ(fchmod(b, 0640), 0);
	CHECK_EQ(one_record(kq, &ident, NULL), NOTE_ATTRIB);
	CHECK_EQ(ident, b);

	/* dup2 of another file over b: b's knote goes, no note of g's is reported for it. */
	CHECK_EQ(dup2(other, b), b);
	CHECK_EQ(fchmod(c, 0600), 0);
	CHECK_EQ(fchmod(other, 0600), 0);
	CHECK_EQ(kqt_poll(kq, NULL, 0), 0);
	{
		struct kevent ev[4];
		CHECK_EQ(kqt_poll(kq, ev, 4), 0);
	}
	CHECK_ERR(kqt_change(kq, b, EVFILT_VNODE, EV_DELETE, 0, 0, NULL), ENOENT);
	CHECK_EQ(rename("f", "f2"), 0);
	CHECK_EQ(one_record(kq, &ident, NULL), NOTE_RENAME);
	CHECK_EQ(ident, c);
	CHECK_EQ(rename("f2", "f"), 0);
	CHECK_EQ(one_record(kq, &ident, NULL), NOTE_RENAME);

	/* close_range over c: its knotes go, the kqueue is left with none. */
	CHECK_EQ(syscall(SYS_close_range, c, c, 0), 0);
	CHECK_ERR(kqt_change(kq, c, EVFILT_VNODE, EV_DELETE, 0, 0, NULL), EBADF);
	CHECK_EQ(rename("f", "f2"), 0);
	CHECK_EQ(rename("f2", "f"), 0);
	{
		struct kevent ev[4];
		CHECK_EQ(kqt_poll(kq, ev, 4), 0);
	}
	close(kq);
	close(b);
	close(other);
	cleanup();
}

/*
 * A watched file unlinked and its descriptor closed behind the library's back (a raw
 * close), then a new file opened under the same number (ext4 gives it the freed inode's
 * number too): EV_ADD makes a fresh knote, which reports the new file's writes.
 */
static void case_raw_close_reused_inode(void)
{
	int kq, fd, n;
	struct stat st1, st2;
	uintptr_t ident;
	cleanup();
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK((fd = open("f", O_RDWR | O_CREAT, 0600)) >= 0);
	CHECK_EQ(fstat(fd, &st1), 0);
	CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, fd, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(unlink("f"), 0);
	CHECK_EQ(syscall(SYS_close, fd), 0);
	CHECK((n = open("g", O_RDWR | O_CREAT, 0600)) >= 0);
	CHECK_EQ(n, fd);
	CHECK_EQ(fstat(n, &st2), 0);
	if (st1.st_ino != st2.st_ino)
		printf("note: the new file got another inode number\n");
	CHECK_EQ(kqt_change(kq, n, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, n, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	{
		struct kevent ev[4];
		(void)kqt_poll(kq, ev, 4);
	}
	CHECK_EQ(pwrite(n, "new", 3, 0), 3);
	{
		struct kevent ev[4];
		int got = kqt_poll(kq, ev, 4), vnode = 0, read = 0;
		CHECK_EQ(got, 2);
		for (int i = 0; i < got; i++) {
			CHECK_EQ(ev[i].ident, n);
			vnode += ev[i].filter == EVFILT_VNODE;
			read += ev[i].filter == EVFILT_READ;
		}
		CHECK_EQ(vnode, 1);
		CHECK_EQ(read, 1);
	}
	(void)ident;
	close(kq);
	close(n);
	cleanup();
}

/*
 * An EV_ONESHOT vnode knote, the kqueue's only one, re-armed after every event: the
 * kqueue's inotify instance is kept and reused (closing it right away would stall each
 * call in the kernel), and the kqueue descriptor is not readable between two events.
 */
static void case_oneshot_rearm(void)
{
	int kq, fd, base;
	cleanup();
	CHECK((fd = open("f", O_RDWR | O_CREAT, 0600)) >= 0);
	base = count_inotify();
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	for (int i = 0; i < 50; i++) {
		CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD | EV_ONESHOT, NOTE_WRITE, 0,
				    NULL), 0);
		CHECK_EQ(count_inotify(), base + 1);
		CHECK_EQ(pwrite(fd, "x", 1, i), 1);
		CHECK_EQ(one_record(kq, NULL, NULL), NOTE_WRITE | NOTE_EXTEND);
		CHECK_EQ(count_inotify(), base + 1);
		{
			struct kevent ev;
			CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
		}
	}
	kqt_sleep_ms(150);
	{
		struct kevent ev;
		CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	}
	CHECK_EQ(count_inotify(), base);
	CHECK_EQ(close(kq), 0);
	close(fd);
	cleanup();
}

/*
 * fork(): the child closes its copy of the kqueue and the watched descriptors (through
 * the interposed close()), and makes a kqueue of its own on the file; the parent's knotes
 * go on.
 */
static void case_fork_child_closes(void)
{
	int kq, fd, dupfd, status;
	pid_t pid;
	uintptr_t ident;
	cleanup();
	CHECK((fd = open("f", O_RDWR | O_CREAT, 0600)) >= 0);
	CHECK((dupfd = dup(fd)) >= 0);
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, dupfd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_ATTRIB, 0, NULL),
		 0);
	CHECK((pid = fork()) >= 0);
	if (pid == 0) {
		/* The inherited kqueue is not the child's (its number is closed there, as
		 * on the BSDs, which do not inherit kqueues). */
		int mine;
		struct kevent ev;
		if (kqt_change(kq, fd, EVFILT_VNODE, EV_DELETE, 0, 0, NULL) != -1 ||
		    errno != EBADF)
			_exit(13);
		if ((mine = kqt_kqueue(pers)) < 0)
			_exit(10);
		if (kqt_change(mine, fd, EVFILT_VNODE, EV_ADD | EV_ONESHOT, NOTE_WRITE, 0,
			       NULL) != 0)
			_exit(11);
		if (pwrite(fd, "child", 5, 0) != 5 || kqt_poll(mine, &ev, 1) != 1)
			_exit(12);
		if (close(dupfd) != 0 || close(fd) != 0 || close(mine) != 0)
			_exit(14);
		_exit(0);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK_EQ(one_record(kq, &ident, NULL), NOTE_WRITE | NOTE_EXTEND);
	CHECK_EQ(ident, fd);
	CHECK_EQ(fchmod(fd, 0640), 0);
	CHECK_EQ(one_record(kq, &ident, NULL), NOTE_ATTRIB);
	CHECK_EQ(ident, dupfd);
	close(kq);
	close(fd);
	close(dupfd);
	cleanup();
}

/* The kqueue closed while a thread sleeps in it with vnode and EVFILT_EMPTY knotes. */
static int sleeping_kq;
static int sleeper_result, sleeper_errno;

static void *sleeper(void *arg)
{
	struct kevent ev;
	(void)arg;
	sleeper_result = kqt_wait(sleeping_kq, &ev, 1, 20000);
	sleeper_errno = errno;
	return NULL;
}

static void case_close_while_sleeping(void)
{
	int fd, s[2], base;
	pthread_t t;
	cleanup();
	CHECK((fd = open("f", O_RDWR | O_CREAT, 0600)) >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	CHECK_EQ(send(s[0], "unread", 6, 0), 6);
	base = count_inotify();
	CHECK((sleeping_kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(kqt_change(sleeping_kq, fd, EVFILT_VNODE, EV_ADD, NOTE_DELETE, 0, NULL), 0);
	CHECK_EQ(kqt_change(sleeping_kq, s[0], EVFILT_EMPTY, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(pthread_create(&t, NULL, sleeper, NULL), 0);
	kqt_sleep_ms(100);
	CHECK_EQ(close(sleeping_kq), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(sleeper_result, -1);
	CHECK_EQ(sleeper_errno, EBADF);
	CHECK_EQ(count_inotify(), base);
	close(fd);
	close(s[0]);
	close(s[1]);
	cleanup();
}

/* A loopback TCP pair: *c the connecting side, *a the accepted one. */
static int tcp_pair(int *c, int *a)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0)
		return -1;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(l, 1) != 0 ||
	    getsockname(l, (struct sockaddr *)&sin, &len) != 0)
		return -1;
	*c = socket(AF_INET, SOCK_STREAM, 0);
	if (*c < 0 || connect(*c, (struct sockaddr *)&sin, sizeof sin) != 0)
		return -1;
	*a = accept(l, NULL, NULL);
	close(l);
	return *a < 0 ? -1 : 0;
}

/*
 * EVFILT_EMPTY on a TCP connection whose send buffer holds data the peer never
 * acknowledged, when the peer resets the connection: the buffer is flushed, the knote
 * fires with data 0.
 */
static void case_empty_after_reset(void)
{
	int w, r, kq, n;
	struct linger lg = { 1, 0 };
	struct kevent ev[2];
	char buf[4096];
	CHECK_EQ(tcp_pair(&w, &r), 0);
	CHECK_EQ(fcntl(w, F_SETFL, O_NONBLOCK), 0);
	memset(buf, 'x', sizeof buf);
	while (write(w, buf, sizeof buf) > 0)
		;
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(kqt_change(kq, w, EVFILT_EMPTY, EV_ADD | EV_CLEAR, 0, 0, NULL), 0);
	CHECK_EQ(kqt_poll(kq, ev, 2), 0);
	CHECK_EQ(setsockopt(r, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	CHECK_EQ(close(r), 0);
	n = kqt_wait(kq, ev, 2, 5000);
	CHECK_EQ(n, 1);
	CHECK_EQ(ev[0].filter, EVFILT_EMPTY);
	CHECK_EQ(ev[0].data, 0);
	close(kq);
	close(w);
}

static void run_round(const char *personality)
{
	char name[96];
	pers = personality;
#define RUN(i, n, f) do {						\
		snprintf(name, sizeof name, "%s/%s", n, pers);		\
		kqt_run(i, name, f);					\
	} while (0)
	RUN("V6", "close_dup2_close_range", case_close_dup2_close_range);
	RUN("V7", "raw_close_reused_inode", case_raw_close_reused_inode);
	RUN("V7", "oneshot_rearm", case_oneshot_rearm);
	RUN("VN", "fork_child_closes", case_fork_child_closes);
	RUN("G29", "close_while_sleeping", case_close_while_sleeping);
	RUN("E1", "empty_after_reset", case_empty_after_reset);
#undef RUN
}

int main(void)
{
	char dir[] = "/tmp/kq-attackv-c-XXXXXX";
	int rc;
	kqt_watchdog(60);
	if (!mkdtemp(dir) || chdir(dir) != 0) {
		perror("mkdtemp");
		return 2;
	}
	run_round("netbsd");
	run_round("freebsd");
	cleanup();
	rc = kqt_done();
	if (chdir("/") == 0)
		rmdir(dir);
	return rc;
}
