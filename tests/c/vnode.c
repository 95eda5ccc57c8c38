/*
 * EVFILT_VNODE through the C API, in both personalities (every case runs twice, its name
 * suffixed with the personality): NetBSD t_vnode's cases V1-V6, FreeBSD vnode.c's V7, and
 * what the library adds on Linux: the knote follows its file through a rename, an unlinked
 * but open file, one inotify instance per kqueue released when the kqueue is closed, and
 * fork().  The program works in a directory of its own under /tmp, with t_vnode's names.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

static const char *pers;	/* the personality of the current round */

static int is_freebsd(void)
{
	return strcmp(pers, "freebsd") == 0;
}

#define CLASSIC (NOTE_DELETE | NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB | NOTE_LINK | \
		 NOTE_RENAME | NOTE_REVOKE)

static int create_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	if (fd < 0)
		return -1;
	return close(fd);
}

static void cleanup(void)
{
	const char *files[] = { "foo/baz1", "foo/baz2", "qux", "testfile", "f", "g",
				"d/g", "kqueue-test.tmp", "kqueue-test2.tmp", "fifo" };
	const char *dirs[] = { "foo/bar1", "foo/bar2", "bar", "foo", "d" };
	for (size_t i = 0; i < sizeof files / sizeof *files; i++)
		(void)unlink(files[i]);
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
		(void)rmdir(dirs[i]);
}

/* Polls for one EVFILT_VNODE record of fd; returns its fflags, or -1. */
static long one_vnode(int kq, int fd)
{
	struct kevent ev[2];
	int n = kqt_poll(kq, ev, 2);
	if (n != 1 || ev[0].ident != (uintptr_t)fd || ev[0].filter != EVFILT_VNODE)
		return -1;
	return (long)ev[0].fflags;
}

/*
 * V1-V3: the directory "foo" watched with EV_ADD|EV_ONESHOT and every classic note;
 * `setup` before the knote is added, `act` after.  Each returns 0 on success.
 */
struct dir_case {
	const char *id, *name;
	int (*setup)(void);
	int (*act)(void);
	unsigned expect;	/* exact fflags (FreeBSD adds `freebsd_extra`) */
	unsigned freebsd_extra;
	unsigned check;		/* the bit t_vnode checks */
	int link_expected;	/* whether that bit is expected set */
};

static int nothing(void) { return 0; }
static int mkdir_bar1(void) { return mkdir("foo/bar1", 0700); }
static int mkdir_bar(void) { return mkdir("bar", 0700); }
static int create_baz1(void) { return create_file("foo/baz1"); }
static int create_qux(void) { return create_file("qux"); }
static int unlink_baz1(void) { return unlink("foo/baz1"); }
static int rmdir_bar1(void) { return rmdir("foo/bar1"); }
static int mv_bar_in(void) { return rename("bar", "foo/bar1"); }
static int mv_bar1_out(void) { return rename("foo/bar1", "bar"); }
static int mv_bar1_within(void) { return rename("foo/bar1", "foo/bar2"); }
static int mv_qux_in(void) { return rename("qux", "foo/baz1"); }
static int mv_baz1_out(void) { return rename("foo/baz1", "qux"); }
static int mv_baz1_within(void) { return rename("foo/baz1", "foo/baz2"); }

#define W NOTE_WRITE
#define L NOTE_LINK
#define E NOTE_EXTEND
static const struct dir_case dir_cases[] = {
	{ "V1", "dir_no_note_link_create_file_in", nothing, create_baz1, W, 0, L, 0 },
	{ "V1", "dir_no_note_link_delete_file_in", create_baz1, unlink_baz1, W, 0, L, 0 },
	{ "V1", "dir_no_note_link_mv_dir_within", mkdir_bar1, mv_bar1_within, W, 0, L, 0 },
	{ "V1", "dir_no_note_link_mv_file_within", create_baz1, mv_baz1_within, W, 0, L, 0 },
	{ "V2", "dir_note_link_create_dir_in", nothing, mkdir_bar1, W | L, 0, L, 1 },
	{ "V2", "dir_note_link_delete_dir_in", mkdir_bar1, rmdir_bar1, W | L, 0, L, 1 },
	{ "V2", "dir_note_link_mv_dir_in", mkdir_bar, mv_bar_in, W | E | L, 0, L, 1 },
	{ "V2", "dir_note_link_mv_dir_out", mkdir_bar1, mv_bar1_out, W | L, E, L, 1 },
	{ "V3", "dir_note_write_create_dir_in", nothing, mkdir_bar1, W | L, 0, W, 1 },
	{ "V3", "dir_note_write_create_file_in", nothing, create_baz1, W, 0, W, 1 },
	{ "V3", "dir_note_write_delete_dir_in", mkdir_bar1, rmdir_bar1, W | L, 0, W, 1 },
	{ "V3", "dir_note_write_delete_file_in", create_baz1, unlink_baz1, W, 0, W, 1 },
	{ "V3", "dir_note_write_mv_dir_in", mkdir_bar, mv_bar_in, W | E | L, 0, W, 1 },
	{ "V3", "dir_note_write_mv_dir_out", mkdir_bar1, mv_bar1_out, W | L, E, W, 1 },
	{ "V3", "dir_note_write_mv_dir_within", mkdir_bar1, mv_bar1_within, W, 0, W, 1 },
	{ "V3", "dir_note_write_mv_file_in", create_qux, mv_qux_in, W | E, 0, W, 1 },
	{ "V3", "dir_note_write_mv_file_out", create_baz1, mv_baz1_out, W, E, W, 1 },
	{ "V3", "dir_note_write_mv_file_within", create_baz1, mv_baz1_within, W, 0, W, 1 },
};
#undef W
#undef L
#undef E

static const struct dir_case *current_dir_case;

static void case_dir(void)
{
	const struct dir_case *c = current_dir_case;
	struct kevent ev;
	int kq, target;
	cleanup();
	CHECK_EQ(mkdir("foo", 0700), 0);
	CHECK_EQ(c->setup(), 0);
	CHECK((target = open("foo", O_RDONLY)) >= 0);
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(kqt_change(kq, target, EVFILT_VNODE, EV_ADD | EV_ONESHOT, CLASSIC, 0, NULL), 0);
	CHECK_EQ(c->act(), 0);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
	CHECK_EQ(ev.ident, target);
	CHECK_EQ(ev.filter, EVFILT_VNODE);
	CHECK_EQ(ev.fflags & c->check, c->link_expected ? c->check : 0);
	CHECK_EQ(ev.fflags, c->expect | (is_freebsd() ? c->freebsd_extra : 0));
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	close(kq);
	close(target);
	cleanup();
}

/*
 * V4 rename_over_self_hardlink: Linux's rename(a, b) of two links of one file does
 * nothing (POSIX), so no event; the BSDs remove a.  Unlinking a gives what they report.
 */
static void case_v4(void)
{
	struct kevent ev[2];
	int kq, dir_fd, file_fd;
	cleanup();
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(mkdir("foo", 0700), 0);
	CHECK((dir_fd = open("foo", O_RDONLY)) >= 0);
	CHECK((file_fd = open("foo/baz1", O_RDONLY | O_CREAT, 0600)) >= 0);
	CHECK_EQ(link("foo/baz1", "foo/baz2"), 0);
	CHECK_EQ(kqt_change(kq, dir_fd, EVFILT_VNODE, EV_ADD,
			    NOTE_WRITE | NOTE_EXTEND | NOTE_LINK, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, file_fd, EVFILT_VNODE, EV_ADD, NOTE_LINK | NOTE_DELETE, 0, NULL), 0);
	CHECK_EQ(rename("foo/baz1", "foo/baz2"), 0);
	CHECK_EQ(access("foo/baz1", F_OK), 0);
	CHECK_EQ(kqt_poll(kq, ev, 2), 0);
	CHECK_EQ(unlink("foo/baz1"), 0);
	CHECK_EQ(kqt_poll(kq, ev, 2), 2);
	for (int i = 0; i < 2; i++) {
		if (ev[i].ident == (uintptr_t)dir_fd)
			CHECK_EQ(ev[i].fflags, NOTE_WRITE);
		else
			CHECK_EQ(ev[i].fflags, is_freebsd() ? NOTE_DELETE : NOTE_LINK);
	}
	close(kq);
	close(dir_fd);
	close(file_fd);
	cleanup();
}

/* V5 open_write_read_close: each record exactly. */
static void case_v5(void)
{
	char buf[sizeof "testfile"];
	int kq, watched, fd;
	cleanup();
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK((watched = open("testfile", O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
	CHECK_EQ(kqt_change(kq, watched, EVFILT_VNODE, EV_ADD | EV_CLEAR,
			    NOTE_OPEN | NOTE_READ | NOTE_WRITE | NOTE_CLOSE | NOTE_CLOSE_WRITE,
			    0, NULL), 0);
	CHECK((fd = open("testfile", O_RDWR)) >= 0);
	CHECK_EQ(one_vnode(kq, watched), NOTE_OPEN);
	CHECK_EQ(pwrite(fd, "testfile", sizeof "testfile", 0), sizeof "testfile");
	CHECK_EQ(one_vnode(kq, watched), NOTE_WRITE | NOTE_EXTEND);
	CHECK_EQ(pwrite(fd, "testfile", sizeof "testfile", 0), sizeof "testfile");
	CHECK_EQ(one_vnode(kq, watched), NOTE_WRITE);
	CHECK_EQ(pwrite(fd, "t", 1, sizeof "testfile"), 1);
	CHECK_EQ(one_vnode(kq, watched), NOTE_WRITE | NOTE_EXTEND);
	CHECK_EQ(close(fd), 0);
	CHECK_EQ(one_vnode(kq, watched), NOTE_CLOSE_WRITE);
	CHECK((fd = open("testfile", O_RDONLY)) >= 0);
	CHECK_EQ(one_vnode(kq, watched), NOTE_OPEN);
	CHECK_EQ(read(fd, buf, sizeof buf), sizeof buf);
	CHECK_EQ(one_vnode(kq, watched), NOTE_READ);
	CHECK_EQ(close(fd), 0);
	CHECK_EQ(one_vnode(kq, watched), NOTE_CLOSE);
	CHECK_EQ(kqt_poll(kq, (struct kevent[1]){ { 0 } }, 1), 0);
	close(kq);
	close(watched);
	cleanup();
}

/* V6 interest: three knotes through three dups; closing one removes only its knote. */
static void case_v6(void)
{
	struct kevent ev[3];
	int kq, open_ev_fd, write_ev_fd, close_ev_fd, fd;
	cleanup();
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK((open_ev_fd = open("testfile", O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
	CHECK((write_ev_fd = dup(open_ev_fd)) >= 0);
	CHECK((close_ev_fd = dup(open_ev_fd)) >= 0);
	EV_SET(&ev[0], open_ev_fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_OPEN, 0, NULL);
	EV_SET(&ev[1], write_ev_fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0, NULL);
	EV_SET(&ev[2], close_ev_fd, EVFILT_VNODE, EV_ADD | EV_CLEAR,
	       NOTE_CLOSE | NOTE_CLOSE_WRITE, 0, NULL);
	CHECK_EQ(kevent(kq, ev, 3, NULL, 0, NULL), 0);
	CHECK_EQ(close(write_ev_fd), 0);
	CHECK((fd = open("testfile", O_RDWR)) >= 0);
	CHECK_EQ(kqt_poll(kq, ev, 1), 1);
	CHECK(ev[0].fflags & NOTE_OPEN);
	CHECK_EQ(pwrite(fd, "testfile", sizeof "testfile", 0), sizeof "testfile");
	CHECK_EQ(kqt_poll(kq, ev, 1), 0);
	CHECK_EQ(close(fd), 0);
	CHECK_EQ(kqt_poll(kq, ev, 1), 1);
	CHECK(ev[0].fflags & NOTE_CLOSE_WRITE);
	CHECK_EQ(ev[0].fflags & NOTE_CLOSE, 0);
	close(kq);
	close(open_ev_fd);
	close(close_ev_fd);
	cleanup();
}

/* V7 (FreeBSD vnode.c) on a file opened read-only; `kind` selects the sub-case. */
static int v7_kind;

static void case_v7(void)
{
	struct kevent ev;
	int kq, fd;
	cleanup();
	CHECK_EQ(create_file("kqueue-test.tmp"), 0);
	CHECK((fd = open("kqueue-test.tmp", O_RDONLY)) >= 0);
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	switch (v7_kind) {
	case 0:	/* add, delete */
		CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD,
				    NOTE_WRITE | NOTE_ATTRIB | NOTE_RENAME | NOTE_DELETE, 0, NULL), 0);
		CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_DELETE, 0, 0, NULL), 0);
		CHECK_ERR(kqt_change(kq, fd, EVFILT_VNODE, EV_DELETE, 0, 0, NULL), ENOENT);
		break;
	case 1: {	/* NOTE_WRITE (NOTE_EXTEND comes with it) */
		int w;
		CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD | EV_ONESHOT, NOTE_WRITE, 0, NULL), 0);
		CHECK((w = open("kqueue-test.tmp", O_WRONLY | O_APPEND)) >= 0);
		CHECK_EQ(write(w, "hello\n", 6), 6);
		close(w);
		CHECK_EQ(kqt_poll(kq, &ev, 1), 1);
		CHECK_EQ(ev.fflags, NOTE_WRITE | NOTE_EXTEND);
		CHECK_EQ(ev.flags & EV_ONESHOT, EV_ONESHOT);
		CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
		break;
	}
	case 2:	/* NOTE_ATTRIB */
		CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD | EV_ONESHOT, NOTE_ATTRIB, 0, NULL), 0);
		CHECK_EQ(utimes("kqueue-test.tmp", NULL), 0);
		CHECK_EQ(one_vnode(kq, fd), NOTE_ATTRIB);
		break;
	case 3:	/* NOTE_RENAME */
		CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD | EV_ONESHOT, NOTE_RENAME, 0, NULL), 0);
		CHECK_EQ(rename("kqueue-test.tmp", "kqueue-test2.tmp"), 0);
		CHECK_EQ(one_vnode(kq, fd), NOTE_RENAME);
		CHECK_EQ(rename("kqueue-test2.tmp", "kqueue-test.tmp"), 0);
		CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
		break;
	case 4:	/* NOTE_DELETE */
		CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD | EV_ONESHOT, NOTE_DELETE, 0, NULL), 0);
		CHECK_EQ(unlink("kqueue-test.tmp"), 0);
		CHECK_EQ(one_vnode(kq, fd), NOTE_DELETE);
		break;
	case 5:	/* EV_DISABLE, EV_ENABLE */
		CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD | EV_ONESHOT, NOTE_ATTRIB, 0, NULL), 0);
		CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_DISABLE, NOTE_ATTRIB, 0, NULL), 0);
		CHECK_EQ(utimes("kqueue-test.tmp", NULL), 0);
		CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
		CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ENABLE, NOTE_ATTRIB, 0, NULL), 0);
		CHECK_EQ(utimes("kqueue-test.tmp", NULL), 0);
		CHECK_EQ(one_vnode(kq, fd), NOTE_ATTRIB);
		CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
		break;
	case 6:	/* EV_DISPATCH */
		CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD | EV_DISPATCH, NOTE_ATTRIB, 0, NULL), 0);
		CHECK_EQ(utimes("kqueue-test.tmp", NULL), 0);
		CHECK_EQ(one_vnode(kq, fd), NOTE_ATTRIB);
		CHECK_EQ(utimes("kqueue-test.tmp", NULL), 0);
		CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
		CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_DELETE, NOTE_ATTRIB, 0, NULL), 0);
		break;
	}
	close(kq);
	close(fd);
	cleanup();
}

/* V7 note_delete_fifo: FreeBSD's FIFOs take the filter; NetBSD says EINVAL. */
static void case_v7_fifo(void)
{
	int kq, r, w;
	cleanup();
	CHECK_EQ(mkfifo("fifo", 0600), 0);
	CHECK((r = open("fifo", O_RDONLY | O_NONBLOCK)) >= 0);
	CHECK((w = open("fifo", O_WRONLY | O_NONBLOCK)) >= 0);
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	if (!is_freebsd()) {
		CHECK_ERR(kqt_change(kq, w, EVFILT_VNODE, EV_ADD | EV_ONESHOT, NOTE_DELETE, 0, NULL),
			  EINVAL);
	} else {
		CHECK_EQ(kqt_change(kq, w, EVFILT_VNODE, EV_ADD | EV_ONESHOT, NOTE_DELETE, 0, NULL), 0);
		CHECK_EQ(unlink("fifo"), 0);
		CHECK_EQ(one_vnode(kq, w), NOTE_DELETE);
	}
	close(kq);
	close(r);
	close(w);
	cleanup();
}

/* Not a vnode: sockets and pipes (both personalities) give EINVAL. */
static void case_not_a_vnode(void)
{
	int kq, s[2], p[2];
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	CHECK_EQ(pipe(p), 0);
	CHECK_ERR(kqt_change(kq, s[0], EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, NULL), EINVAL);
	CHECK_ERR(kqt_change(kq, p[0], EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, NULL), EINVAL);
	CHECK_ERR(kqt_change(kq, p[1], EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, NULL), EINVAL);
	CHECK_ERR(kqt_change(kq, kq, EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, NULL), EINVAL);
	close(s[0]);
	close(s[1]);
	close(p[0]);
	close(p[1]);
	CHECK_ERR(kqt_change(kq, p[0], EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, NULL), EBADF);
	close(kq);
}

/*
 * G27 unsupported_fd (NetBSD t_kevent): a descriptor of a kind with no kqueue support at
 * all (an inotify instance here; NetBSD's test uses /dev/drvctl): NetBSD EOPNOTSUPP,
 * FreeBSD EINVAL.
 */
static void case_g27(void)
{
	int kq, fd;
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK((fd = inotify_init1(IN_CLOEXEC)) >= 0);
	CHECK_ERR(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD | EV_ENABLE | EV_CLEAR, CLASSIC, 0, NULL),
		  is_freebsd() ? EINVAL : EOPNOTSUPP);
	close(fd);
	close(kq);
}

/* G31 modify_resets_sfflags: EV_DISABLE then EV_ENABLE with fflags 0 clear the interest. */
static void case_g31(void)
{
	struct kevent ev;
	int kq, fd;
	cleanup();
	CHECK((fd = open("f", O_RDWR | O_CREAT, 0600)) >= 0);
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_DISABLE, 0, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ENABLE, 0, 0, NULL), 0);
	CHECK_EQ(write(fd, "abc", 3), 3);
	CHECK_EQ(kqt_poll(kq, &ev, 1), 0);
	close(kq);
	close(fd);
	cleanup();
}

/* The knote follows the open file through a rename into another directory. */
static void case_rename_follows(void)
{
	int kq, fd;
	cleanup();
	CHECK_EQ(mkdir("d", 0700), 0);
	CHECK((fd = open("f", O_RDWR | O_CREAT, 0600)) >= 0);
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_RENAME | NOTE_WRITE,
			    0, NULL), 0);
	CHECK_EQ(rename("f", "d/g"), 0);
	CHECK_EQ(one_vnode(kq, fd), NOTE_RENAME);
	CHECK_EQ(create_file("f"), 0);
	CHECK_EQ(truncate("f", 10), 0);
	CHECK_EQ(kqt_poll(kq, (struct kevent[1]){ { 0 } }, 1), 0);
	CHECK_EQ(pwrite(fd, "ab", 2, 0), 2);
	CHECK_EQ(one_vnode(kq, fd), NOTE_WRITE | NOTE_EXTEND);
	close(kq);
	close(fd);
	cleanup();
}

/* An unlinked file that is still open: NOTE_DELETE, then its changes. */
static void case_unlinked_open(void)
{
	int kq, fd;
	cleanup();
	CHECK((fd = open("f", O_RDWR | O_CREAT, 0600)) >= 0);
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR,
			    NOTE_DELETE | NOTE_LINK | NOTE_ATTRIB | NOTE_WRITE, 0, NULL), 0);
	CHECK_EQ(unlink("f"), 0);
	CHECK_EQ(one_vnode(kq, fd), NOTE_DELETE);
	CHECK_EQ(fchmod(fd, 0644), 0);
	CHECK_EQ(one_vnode(kq, fd), NOTE_ATTRIB);
	CHECK_EQ(pwrite(fd, "abc", 3, 0), 3);
	CHECK_EQ(one_vnode(kq, fd), NOTE_WRITE | NOTE_EXTEND);
	close(kq);
	close(fd);
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
		target[len] = '\0';
		if (strcmp(target, "anon_inode:inotify") == 0)
			n++;
	}
	closedir(d);
	return n;
}

/*
 * One inotify instance per kqueue, none without vnode knotes; once the last knote goes,
 * kept for reuse, then released by the first kevent() 100 ms later; released when the
 * kqueue is closed.
 */
static void case_one_inotify(void)
{
	int kq, kq2, a, b, base;
	cleanup();
	base = count_inotify();
	CHECK((a = open("f", O_RDWR | O_CREAT, 0600)) >= 0);
	CHECK((b = open("g", O_RDWR | O_CREAT, 0600)) >= 0);
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(count_inotify(), base);
	CHECK_EQ(kqt_change(kq, a, EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, b, EVFILT_VNODE, EV_ADD, NOTE_ATTRIB, 0, NULL), 0);
	CHECK_EQ(kqt_change(kq, a, EVFILT_READ, EV_ADD, 0, 0, NULL), 0);
	CHECK_EQ(count_inotify(), base + 1);
	CHECK((kq2 = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(kqt_change(kq2, a, EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, NULL), 0);
	CHECK_EQ(count_inotify(), base + 2);
	CHECK_EQ(kqt_change(kq2, a, EVFILT_VNODE, EV_DELETE, 0, 0, NULL), 0);
	CHECK_EQ(count_inotify(), base + 2);
	CHECK_EQ(kqt_change(kq2, b, EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, NULL), 0);
	CHECK_EQ(count_inotify(), base + 2);
	CHECK_EQ(kqt_change(kq2, b, EVFILT_VNODE, EV_DELETE, 0, 0, NULL), 0);
	kqt_sleep_ms(150);
	{
		struct kevent ev;
		CHECK_EQ(kqt_poll(kq2, &ev, 1), 0);
	}
	CHECK_EQ(count_inotify(), base + 1);
	CHECK_EQ(close(kq), 0);
	CHECK_EQ(count_inotify(), base);
	close(kq2);
	close(a);
	close(b);
	cleanup();
}

/* fork(): the child's copy of the kqueue is dead; the parent's knote goes on. */
static void case_fork(void)
{
	int kq, fd, status;
	pid_t pid;
	cleanup();
	CHECK((fd = open("f", O_RDWR | O_CREAT, 0600)) >= 0);
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_ATTRIB, 0, NULL), 0);
	CHECK_EQ(fchmod(fd, 0644), 0);
	CHECK((pid = fork()) >= 0);
	if (pid == 0) {
		struct kevent ev;
		struct timespec zero = { 0, 0 };
		int r = kevent(kq, NULL, 0, &ev, 1, &zero);
		_exit(r == -1 && errno == EBADF ? 0 : 1);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(one_vnode(kq, fd), NOTE_ATTRIB);
	CHECK_EQ(fchmod(fd, 0600), 0);
	CHECK_EQ(one_vnode(kq, fd), NOTE_ATTRIB);
	close(kq);
	close(fd);
	cleanup();
}

/* A thread asleep in kevent() wakes for a vnode event. */
static void *toucher(void *arg)
{
	(void)arg;
	kqt_sleep_ms(50);
	utimes("f", NULL);
	return NULL;
}

static void case_wakeup(void)
{
	struct kevent ev;
	pthread_t t;
	int kq, fd;
	cleanup();
	CHECK((fd = open("f", O_RDWR | O_CREAT, 0600)) >= 0);
	CHECK((kq = kqt_kqueue(pers)) >= 0);
	CHECK_EQ(kqt_change(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_ATTRIB, 0, NULL), 0);
	CHECK_EQ(pthread_create(&t, NULL, toucher, NULL), 0);
	CHECK_EQ(kqt_wait(kq, &ev, 1, 10000), 1);
	CHECK_EQ(ev.fflags, NOTE_ATTRIB);
	pthread_join(t, NULL);
	close(kq);
	close(fd);
	cleanup();
}

static void run_round(const char *personality)
{
	char id[16], name[96];
	pers = personality;
	for (size_t i = 0; i < sizeof dir_cases / sizeof *dir_cases; i++) {
		current_dir_case = &dir_cases[i];
		snprintf(name, sizeof name, "%s/%s", dir_cases[i].name, pers);
		kqt_run(dir_cases[i].id, name, case_dir);
	}
#define RUN(i, n, f) do {						\
		snprintf(id, sizeof id, "%s", i);			\
		snprintf(name, sizeof name, "%s/%s", n, pers);		\
		kqt_run(id, name, f);					\
	} while (0)
	RUN("V4", "rename_over_self_hardlink", case_v4);
	RUN("V5", "open_write_read_close", case_v5);
	RUN("V6", "interest", case_v6);
	const char *v7[] = { "add_del", "note_write", "note_attrib", "note_rename",
			     "note_delete", "disable_and_enable", "dispatch" };
	for (int k = 0; k < 7; k++) {
		v7_kind = k;
		RUN("V7", v7[k], case_v7);
	}
	RUN("V7", "note_delete_fifo", case_v7_fifo);
	RUN("VN", "not_a_vnode", case_not_a_vnode);
	RUN("G27", "unsupported_fd", case_g27);
	RUN("G31", "modify_resets_sfflags", case_g31);
	RUN("VN", "rename_follows_file", case_rename_follows);
	RUN("VN", "unlinked_but_open", case_unlinked_open);
	RUN("VN", "one_inotify_per_kqueue", case_one_inotify);
	RUN("VN", "fork", case_fork);
	RUN("VN", "wakeup", case_wakeup);
#undef RUN
}

int main(void)
{
	char dir[] = "/tmp/kq-vnode-c-XXXXXX";
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
