/*
 * EVFILT_FS through the C library against the raw mechanism, interleaved: rounds of 100
 * mount+unmount pairs seen through a kqueue, then 100 seen through /proc/self/mountinfo
 * in an epoll (each wakeup: the table read again and its lines counted), 21 rounds; then
 * the same for registering (EV_ADD + EV_DELETE of a kqueue's only EVFILT_FS knote, which
 * opens the table and closes it again, against open + epoll_ctl + read + close).  Prints the medians and the median of the per-round ratios (raw/kqueue,
 * above 1 the kqueue is faster).
 *
 * Needs CAP_SYS_ADMIN: it mounts tmpfs in a mount namespace of its own.
 *   cargo build --release -p kqueue-capi
 *   cc -O2 -Iinclude benches/c/fs.c -Ltarget/release -lkqueue -o /tmp/bench-fs
 *   LD_LIBRARY_PATH=target/release /tmp/bench-fs
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/event.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { ROUNDS = 21, N = 100 };

static char buf[1 << 16];
static char dir[64];

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* Reads the whole table and counts its lines (what comparing the mounts needs first). */
static int read_table(int fd)
{
	ssize_t len = 0, n;
	int lines = 0;
	while ((n = pread(fd, buf + len, sizeof buf - (size_t)len, len)) > 0)
		len += n;
	for (ssize_t i = 0; i < len; i++)
		lines += buf[i] == '\n';
	return lines;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void die(const char *what)
{
	fprintf(stderr, "bench-fs: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void mount_dir(void)
{
	if (mount("kq-bench", dir, "tmpfs", 0, NULL) != 0)
		die("mount");
}

static void unmount_dir(void)
{
	if (umount2(dir, 0) != 0)
		die("umount");
}

static void report(const char *what, double *kq, double *raw)
{
	double ratio[ROUNDS];
	for (int i = 0; i < ROUNDS; i++)
		ratio[i] = raw[i] / kq[i];
	qsort(kq, ROUNDS, sizeof *kq, cmp);
	qsort(raw, ROUNDS, sizeof *raw, cmp);
	qsort(ratio, ROUNDS, sizeof *ratio, cmp);
	printf("%s: kqueue %.1f us, raw %.1f us, raw/kqueue %.2f (quartiles %.2f-%.2f)\n",
	       what, kq[ROUNDS / 2], raw[ROUNDS / 2], ratio[ROUNDS / 2], ratio[ROUNDS / 4],
	       ratio[3 * ROUNDS / 4]);
}

int main(void)
{
	double kq_t[ROUNDS], raw_t[ROUNDS];
	struct kevent c, ev;
	struct epoll_event ee = { .events = EPOLLIN | EPOLLET };

	if (unshare(CLONE_NEWNS) != 0)
		die("unshare(CLONE_NEWNS) (needs CAP_SYS_ADMIN)");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		die("making / private");
	snprintf(dir, sizeof dir, "/tmp/kq-bench-fs-%d", (int)getpid());
	if (mkdir(dir, 0700) != 0)
		die("mkdir");

	int table = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (table < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, table, &ee) != 0)
		die("mountinfo in epoll");
	epoll_wait(ep, &ee, 1, 0); /* the registration's own edge */
	read_table(table);
	int kq = kqueue();
	EV_SET(&c, 0, EVFILT_FS, EV_ADD, 0, 0, NULL);
	if (kq < 0 || kevent(kq, &c, 1, NULL, 0, NULL) != 0)
		die("EVFILT_FS");

	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now_ns();
		for (int i = 0; i < N; i++) {
			mount_dir();
			if (kevent(kq, NULL, 0, &ev, 1, NULL) != 1 || ev.fflags != VQ_MOUNT)
				die("VQ_MOUNT");
			unmount_dir();
			if (kevent(kq, NULL, 0, &ev, 1, NULL) != 1 || ev.fflags != VQ_UNMOUNT)
				die("VQ_UNMOUNT");
		}
		double t1 = now_ns();
		for (int i = 0; i < N; i++) {
			mount_dir();
			epoll_wait(ep, &ee, 1, -1);
			read_table(table);
			unmount_dir();
			epoll_wait(ep, &ee, 1, -1);
			read_table(table);
		}
		double t2 = now_ns();
		kq_t[r] = (t1 - t0) / N / 1e3;
		raw_t[r] = (t2 - t1) / N / 1e3;
	}
	report("mount + unmount, each seen", kq_t, raw_t);

	/* With no EVFILT_FS knote left, each EV_ADD opens the table and EV_DELETE closes it. */
	EV_SET(&c, 0, EVFILT_FS, EV_DELETE, 0, 0, NULL);
	if (kevent(kq, &c, 1, NULL, 0, NULL) != 0)
		die("EV_DELETE");
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now_ns();
		for (int i = 0; i < N; i++) {
			EV_SET(&c, 1, EVFILT_FS, EV_ADD, 0, 0, NULL);
			kevent(kq, &c, 1, NULL, 0, NULL);
			EV_SET(&c, 1, EVFILT_FS, EV_DELETE, 0, 0, NULL);
			kevent(kq, &c, 1, NULL, 0, NULL);
		}
		double t1 = now_ns();
		for (int i = 0; i < N; i++) {
			int t = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
			struct epoll_event x = { .events = EPOLLIN | EPOLLET };
			epoll_ctl(ep, EPOLL_CTL_ADD, t, &x);
			read_table(t);
			close(t);
		}
		double t2 = now_ns();
		kq_t[r] = (t1 - t0) / N / 1e3;
		raw_t[r] = (t2 - t1) / N / 1e3;
	}
	report("EV_ADD + EV_DELETE of the only knote", kq_t, raw_t);

	close(kq);
	rmdir(dir);
	return 0;
}
