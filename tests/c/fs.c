/*
 * EVFILT_FS from C in both personalities (docs/semantics.md §5.10, cases F1-F15 of §7):
 * every case runs once on a kqueue made with KQUEUE_PERSONALITY=freebsd (the C default)
 * and once with KQUEUE_PERSONALITY=netbsd.
 *
 * The program mounts and unmounts tmpfs instances, in a mount namespace of its own so that
 * nothing leaks to the rest of the system: main() first unshares its mount namespace and
 * makes every mount in it private.  That takes CAP_SYS_ADMIN: without it the program
 * fails, saying so.  With KQ_NO_LISTMOUNT set, the library looks at the mount table as on
 * kernels without listmount(2), and F14 expects what that path can see.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *pers;     /* "freebsd" or "netbsd" */
static int nb;               /* pers is netbsd */
static int mountinfo_only;   /* KQ_NO_LISTMOUNT is set */
static char dir_a[PATH_MAX + 8], dir_b[PATH_MAX + 8], base[PATH_MAX];

/* The delivered flags for a knote made with `flags`: EV_CLEAR is added at attach. */
static unsigned short delivered(unsigned short flags)
{
	unsigned short f = nb ? flags : (unsigned short)(flags & ~(EV_ADD | EV_DELETE |
						EV_ENABLE | EV_DISABLE | EV_FORCEONESHOT));
	return (unsigned short)(f | EV_CLEAR);
}

static int new_kq(void)
{
	return kqt_kqueue(pers);
}

static int fs_change(int kq, uintptr_t ident, unsigned short flags, unsigned int fflags,
		     intptr_t data)
{
	return kqt_change(kq, ident, EVFILT_FS, flags, fflags, data, NULL);
}

static int mount_tmpfs(const char *dir)
{
	return mount("kq-test", dir, "tmpfs", 0, NULL);
}

static int unmount(const char *dir)
{
	return umount2(dir, 0);
}

/* Unmounts whatever a failed case left on the two directories. */
static void reset_mounts(void)
{
	while (unmount(dir_a) == 0)
		;
	while (unmount(dir_b) == 0)
		;
}

/* Descriptors of this process that are a mount table. */
static int mount_tables(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		char path[300], target[PATH_MAX];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
		ssize_t len = readlink(path, target, sizeof target - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		size_t tl = strlen(target);
		if (tl >= 10 && strcmp(target + tl - 10, "/mountinfo") == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* The mount id (mountinfo's first field) of the last mount on `dir`, or -1. */
static long mount_id(const char *dir)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	long id = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		long mid;
		char point[PATH_MAX];
		if (sscanf(line, "%ld %*d %*s %*s %4095s", &mid, point) == 2 &&
		    strcmp(point, dir) == 0)
			id = mid;
	}
	fclose(f);
	return id;
}

/* Waits up to 5 s for exactly one EVFILT_FS record and checks it. */
#define CHECK_FS(q_, id_, fl_, ff_) do {				\
	struct kevent ev_[4];						\
	CHECK_EQ(kqt_wait((q_), ev_, 4, 5000), 1);			\
	CHECK_EQ(ev_[0].ident, (id_));					\
	CHECK_EQ(ev_[0].filter, EVFILT_FS);				\
	CHECK_EQ(ev_[0].flags, delivered(fl_));				\
	CHECK_EQ(ev_[0].fflags, (ff_));					\
	CHECK_EQ(ev_[0].data, 0);					\
} while (0)

/* Nothing is pending. */
#define CHECK_NONE(q_) do {						\
	struct kevent ev_[4];						\
	CHECK_EQ(kqt_poll((q_), ev_, 4), 0);				\
} while (0)

/* poll(2) of the kqueue descriptor. */
static int readable(int kq, int ms)
{
	struct pollfd p = { .fd = kq, .events = POLLIN };
	int n = poll(&p, 1, ms);
	return n == 1 && (p.revents & POLLIN);
}

/* F1 mount_unmount: nothing at registration; VQ_MOUNT, then VQ_UNMOUNT. */
static void case_f1(void)
{
	reset_mounts();
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(fs_change(kq, 0, EV_ADD, 0, 0), 0);
	CHECK_NONE(kq);
	CHECK_EQ(mount_tmpfs(dir_a), 0);
	CHECK_FS(kq, 0, EV_ADD, VQ_MOUNT);
	CHECK_NONE(kq);
	CHECK_EQ(unmount(dir_a), 0);
	CHECK_FS(kq, 0, EV_ADD, VQ_UNMOUNT);
	CHECK_NONE(kq);
	close(kq);
}

/* F2 only_future_events: an earlier mount is not reported; the descriptor stays quiet. */
static void case_f2(void)
{
	reset_mounts();
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(mount_tmpfs(dir_a), 0);
	CHECK_EQ(fs_change(kq, 0, EV_ADD, 0, 0), 0);
	CHECK(!readable(kq, 0));
	CHECK_NONE(kq);
	close(kq);
	CHECK_EQ(unmount(dir_a), 0);
}

/* F3 two_kqueues: both see the mount. */
static void case_f3(void)
{
	reset_mounts();
	int k1 = new_kq(), k2 = new_kq();
	CHECK(k1 >= 0 && k2 >= 0);
	CHECK_EQ(fs_change(k1, 0, EV_ADD, 0, 0), 0);
	CHECK_EQ(fs_change(k2, 0, EV_ADD, 0, 0), 0);
	CHECK_EQ(mount_tmpfs(dir_a), 0);
	CHECK_FS(k1, 0, EV_ADD, VQ_MOUNT);
	CHECK_FS(k2, 0, EV_ADD, VQ_MOUNT);
	CHECK_EQ(unmount(dir_a), 0);
	CHECK_FS(k2, 0, EV_ADD, VQ_UNMOUNT);
	CHECK_FS(k1, 0, EV_ADD, VQ_UNMOUNT);
	close(k1);
	close(k2);
}

/* F4 delete: nothing after EV_DELETE; a second EV_DELETE gives ENOENT. */
static void case_f4(void)
{
	reset_mounts();
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(fs_change(kq, 0, EV_ADD, 0, 0), 0);
	CHECK_EQ(mount_tmpfs(dir_a), 0);
	CHECK_EQ(fs_change(kq, 0, EV_DELETE, 0, 0), 0);
	CHECK_NONE(kq);
	CHECK_EQ(mount_tmpfs(dir_b), 0);
	CHECK_NONE(kq);
	CHECK_ERR(fs_change(kq, 0, EV_DELETE, 0, 0), ENOENT);
	close(kq);
	CHECK_EQ(unmount(dir_b), 0);
	CHECK_EQ(unmount(dir_a), 0);
}

/*
 * F5 table_released: one mount table per kqueue, opened with the first EVFILT_FS knote,
 * closed with the last one and by close() of the kqueue.
 */
static void case_f5(void)
{
	reset_mounts();
	int before = kqt_count_fds();
	int kq = new_kq();
	CHECK(kq >= 0);
	int with_kq = kqt_count_fds();
	CHECK_EQ(mount_tables(), 0);
	CHECK_EQ(fs_change(kq, 0, EV_ADD, 0, 0), 0);
	CHECK_EQ(fs_change(kq, 9, EV_ADD, 0, 0), 0);
	CHECK_EQ(mount_tables(), 1);
	CHECK_EQ(kqt_count_fds(), with_kq + 1);
	CHECK_EQ(fs_change(kq, 0, EV_DELETE, 0, 0), 0);
	CHECK_EQ(mount_tables(), 1);
	CHECK_EQ(fs_change(kq, 9, EV_DELETE, 0, 0), 0);
	CHECK_EQ(mount_tables(), 0);
	CHECK_EQ(kqt_count_fds(), with_kq);
	CHECK_EQ(fs_change(kq, 0, EV_ADD, 0, 0), 0);
	CHECK_EQ(mount_tables(), 1);
	CHECK_EQ(close(kq), 0);
	CHECK_EQ(mount_tables(), 0);
	CHECK_EQ(kqt_count_fds(), before);
}

/*
 * F6 fork: in the child the inherited kqueue gives EBADF, and the child holds no copy of
 * its mount table; the parent's kqueue goes on.
 */
static void case_f6(void)
{
	reset_mounts();
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(fs_change(kq, 0, EV_ADD, 0, 0), 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct kevent ev;
		int bad = 0;
		if (kqt_poll(kq, &ev, 1) != -1 || errno != EBADF)
			bad |= 1;
		if (fs_change(kq, 0, EV_ADD, 0, 0) != -1 || errno != EBADF)
			bad |= 2;
		if (mount_tables() != 0)
			bad |= 4;
		_exit(bad);
	}
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK_EQ(mount_tmpfs(dir_a), 0);
	CHECK_FS(kq, 0, EV_ADD, VQ_MOUNT);
	close(kq);
	CHECK_EQ(unmount(dir_a), 0);
}

/* F7 accumulate: a mount and an unmount before one collection: one record, both hints. */
static void case_f7(void)
{
	reset_mounts();
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(mount_tmpfs(dir_a), 0);
	CHECK_EQ(fs_change(kq, 0, EV_ADD, 0, 0), 0);
	CHECK_EQ(mount_tmpfs(dir_b), 0);
	CHECK_EQ(unmount(dir_a), 0);
	CHECK_FS(kq, 0, EV_ADD, VQ_MOUNT | VQ_UNMOUNT);
	CHECK_NONE(kq);
	close(kq);
	CHECK_EQ(unmount(dir_b), 0);
}

/* F8 interest_mask_ignored: VQ_UNMOUNT asked for, a mount still recorded; EV_CLEAR. */
static void case_f8(void)
{
	reset_mounts();
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(fs_change(kq, 0, EV_ADD, VQ_UNMOUNT, 123), 0);
	CHECK_EQ(mount_tmpfs(dir_a), 0);
	CHECK_FS(kq, 0, EV_ADD, VQ_MOUNT);
	CHECK_NONE(kq);
	close(kq);
	CHECK_EQ(unmount(dir_a), 0);
}

/* F9 disable_enable: recorded while disabled, delivered by EV_ENABLE. */
static void case_f9(void)
{
	reset_mounts();
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(fs_change(kq, 0, EV_ADD | EV_DISABLE, 0, 0), 0);
	CHECK_EQ(mount_tmpfs(dir_a), 0);
	CHECK_NONE(kq);
	CHECK_EQ(fs_change(kq, 0, EV_ENABLE, 0, 0), 0);
	CHECK_FS(kq, 0, EV_ADD | EV_DISABLE, VQ_MOUNT);
	CHECK_NONE(kq);
	close(kq);
	CHECK_EQ(unmount(dir_a), 0);
}

/* F10 oneshot: one record, then the knote (and its mount table) is gone. */
static void case_f10(void)
{
	reset_mounts();
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(fs_change(kq, 0, EV_ADD | EV_ONESHOT, 0, 0), 0);
	CHECK_EQ(mount_tmpfs(dir_a), 0);
	CHECK_FS(kq, 0, EV_ADD | EV_ONESHOT, VQ_MOUNT);
	CHECK_ERR(fs_change(kq, 0, EV_DELETE, 0, 0), ENOENT);
	CHECK_EQ(mount_tables(), 0);
	close(kq);
	CHECK_EQ(unmount(dir_a), 0);
}

/* F11 descriptor_readable: readable after a mount, with no kevent() call; not after. */
static void case_f11(void)
{
	reset_mounts();
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(fs_change(kq, 0, EV_ADD, 0, 0), 0);
	CHECK(!readable(kq, 0));
	CHECK_EQ(mount_tmpfs(dir_a), 0);
	CHECK(readable(kq, 1000));
	CHECK_FS(kq, 0, EV_ADD, VQ_MOUNT);
	CHECK(!readable(kq, 0));
	close(kq);
	CHECK_EQ(unmount(dir_a), 0);
}

struct waiter {
	int kq;
	int rc;
	struct kevent ev;
};

static void *wait_main(void *arg)
{
	struct waiter *w = arg;
	w->rc = kevent(w->kq, NULL, 0, &w->ev, 1, NULL);
	return NULL;
}

/* F12 blocked_waiter: a thread blocked with no timeout returns the mount's record. */
static void case_f12(void)
{
	reset_mounts();
	struct waiter w = { .kq = new_kq() };
	pthread_t t;
	CHECK(w.kq >= 0);
	CHECK_EQ(fs_change(w.kq, 0, EV_ADD, 0, 0), 0);
	CHECK_EQ(pthread_create(&t, NULL, wait_main, &w), 0);
	kqt_sleep_ms(100);
	CHECK_EQ(mount_tmpfs(dir_a), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(w.rc, 1);
	CHECK_EQ(w.ev.filter, EVFILT_FS);
	CHECK_EQ(w.ev.fflags, VQ_MOUNT);
	close(w.kq);
	CHECK_EQ(unmount(dir_a), 0);
}

/* F13 remount: no mount changes, nothing is reported. */
static void case_f13(void)
{
	reset_mounts();
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(mount_tmpfs(dir_a), 0);
	CHECK_EQ(fs_change(kq, 0, EV_ADD, 0, 0), 0);
	CHECK_EQ(mount(NULL, dir_a, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
	CHECK_NONE(kq);
	CHECK_EQ(unmount(dir_a), 0);
	CHECK_FS(kq, 0, EV_ADD, VQ_UNMOUNT);
	close(kq);
}

/*
 * F14 reused_mount_id: unmount and mount again on the same directory before one
 * collection.  With listmount(2) the two mounts are told apart; on the mountinfo-only
 * path a reused id hides both.
 */
static void case_f14(void)
{
	reset_mounts();
	int kq = new_kq();
	CHECK(kq >= 0);
	CHECK_EQ(mount_tmpfs(dir_a), 0);
	CHECK_EQ(fs_change(kq, 0, EV_ADD, 0, 0), 0);
	long old = mount_id(dir_a);
	CHECK_EQ(unmount(dir_a), 0);
	CHECK_EQ(mount_tmpfs(dir_a), 0);
	long now = mount_id(dir_a);
	CHECK(old >= 0 && now >= 0);
	if (mountinfo_only && old == now) {
		CHECK_NONE(kq);
	} else {
		CHECK_FS(kq, 0, EV_ADD, VQ_MOUNT | VQ_UNMOUNT);
	}
	close(kq);
	CHECK_EQ(unmount(dir_a), 0);
}

/* F15 idents_and_receipt: idents 0 and 5 are two knotes; EV_RECEIPT reports data 0. */
static void case_f15(void)
{
	reset_mounts();
	int kq = new_kq();
	struct kevent ch[2], out[4];
	CHECK(kq >= 0);
	EV_SET(&ch[0], 0, EVFILT_FS, EV_ADD, 0, 0, NULL);
	EV_SET(&ch[1], 5, EVFILT_FS, EV_ADD | EV_RECEIPT, 0, 0, NULL);
	CHECK_EQ(kevent(kq, ch, 2, out, 4, NULL), 1);
	CHECK_EQ(out[0].ident, 5);
	CHECK_EQ(out[0].flags, EV_ERROR);
	CHECK_EQ(out[0].data, 0);
	CHECK_EQ(mount_tmpfs(dir_a), 0);
	CHECK_EQ(kqt_wait(kq, out, 4, 5000), 2);
	CHECK_EQ(out[0].fflags, VQ_MOUNT);
	CHECK_EQ(out[1].fflags, VQ_MOUNT);
	CHECK_EQ(out[0].ident + out[1].ident, 5);
	close(kq);
	CHECK_EQ(unmount(dir_a), 0);
}

static void run_all(const char *p)
{
	pers = p;
	nb = strcmp(p, "netbsd") == 0;
	kqt_run_as(pers, "F1", "mount_unmount", case_f1);
	kqt_run_as(pers, "F2", "only_future_events", case_f2);
	kqt_run_as(pers, "F3", "two_kqueues", case_f3);
	kqt_run_as(pers, "F4", "delete", case_f4);
	kqt_run_as(pers, "F5", "table_released", case_f5);
	kqt_run_as(pers, "F6", "fork", case_f6);
	kqt_run_as(pers, "F7", "accumulate", case_f7);
	kqt_run_as(pers, "F8", "interest_mask_ignored", case_f8);
	kqt_run_as(pers, "F9", "disable_enable", case_f9);
	kqt_run_as(pers, "F10", "oneshot", case_f10);
	kqt_run_as(pers, "F11", "descriptor_readable", case_f11);
	kqt_run_as(pers, "F12", "blocked_waiter", case_f12);
	kqt_run_as(pers, "F13", "remount", case_f13);
	kqt_run_as(pers, "F14", "reused_mount_id", case_f14);
	kqt_run_as(pers, "F15", "idents_and_receipt", case_f15);
}

int main(void)
{
	/* A mount namespace of our own, before any thread: every mount below stays in it. */
	if (unshare(CLONE_NEWNS) != 0) {
		fprintf(stderr, "fs: the EVFILT_FS tests need CAP_SYS_ADMIN (run them as root) "
			"to unshare a mount namespace and mount tmpfs in it: unshare(CLONE_NEWNS): "
			"%s\n", strerror(errno));
		return 1;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		fprintf(stderr, "fs: mount(NULL, \"/\", NULL, MS_REC|MS_PRIVATE, NULL): %s\n",
			strerror(errno));
		return 1;
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(base, sizeof base, "%s/kq-fs-c-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
	snprintf(dir_a, sizeof dir_a, "%s/a", base);
	snprintf(dir_b, sizeof dir_b, "%s/b", base);
	if (mkdir(base, 0700) != 0 || mkdir(dir_a, 0700) != 0 || mkdir(dir_b, 0700) != 0) {
		fprintf(stderr, "fs: mkdir %s: %s\n", base, strerror(errno));
		return 1;
	}
	mountinfo_only = getenv("KQ_NO_LISTMOUNT") != NULL;
	kqt_watchdog(60);
	run_all("freebsd");
	run_all("netbsd");
	reset_mounts();
	rmdir(dir_a);
	rmdir(dir_b);
	rmdir(base);
	return kqt_done();
}
