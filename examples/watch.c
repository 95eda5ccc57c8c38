/*
 * A file watcher on EVFILT_VNODE, the C twin of crates/kq/examples/watch.rs:
 *
 *	cc -o watch examples/watch.c -Iinclude -Ltarget/release -lkqueue
 *	./watch PATH
 *
 * PATH is a file or a directory.  A directory is watched together with the regular files
 * in it: a file created (or moved) into it is watched from then on, a renamed file is
 * followed to its new name, a deleted one dropped.  Each event prints one line,
 * "NAME: NOTES", the notes in a fixed order (delete write extend attrib link rename
 * revoke); then what the watcher made of it ("new NAME", "OLD renamed to NEW",
 * "NAME moved away").  The watcher stops when PATH itself is deleted, or when its
 * standard input (a pipe or a terminal) reaches end of file.
 *
 * Closing a watched file is all it takes to drop its knote: the library sees the close.
 */
#include <sys/event.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOTES (NOTE_DELETE | NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB | NOTE_LINK | \
	       NOTE_RENAME | NOTE_REVOKE)
#define MAX_FILES 1024

struct entry {
	int fd;			/* -1: free slot */
	ino_t ino;
	char name[NAME_MAX + 1];
};

static struct entry files[MAX_FILES];
static const char *root;
static int kq, root_fd;

static void print_notes(const char *name, unsigned fflags)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ NOTE_DELETE, "delete" }, { NOTE_WRITE, "write" }, { NOTE_EXTEND, "extend" },
		{ NOTE_ATTRIB, "attrib" }, { NOTE_LINK, "link" }, { NOTE_RENAME, "rename" },
		{ NOTE_REVOKE, "revoke" }, { NOTE_OPEN, "open" }, { NOTE_CLOSE, "close" },
		{ NOTE_CLOSE_WRITE, "close_write" }, { NOTE_READ, "read" },
	};
	const char *sep = "";
	printf("%s: ", name);
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		if (fflags & names[i].bit) {
			printf("%s%s", sep, names[i].name);
			sep = " ";
		}
	}
	printf("\n");
}

static int watch_fd(int fd)
{
	struct kevent c;
	EV_SET(&c, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTES, 0, NULL);
	return kevent(kq, &c, 1, NULL, 0, NULL);
}

static struct entry *find_fd(int fd)
{
	for (int i = 0; i < MAX_FILES; i++)
		if (files[i].fd == fd)
			return &files[i];
	return NULL;
}

static struct entry *find_ino(ino_t ino)
{
	for (int i = 0; i < MAX_FILES; i++)
		if (files[i].fd >= 0 && files[i].ino == ino)
			return &files[i];
	return NULL;
}

/* Closing the descriptor drops its knote. */
static void forget(struct entry *e)
{
	close(e->fd);
	e->fd = -1;
}

/*
 * The name of the directory's regular file with inode `ino` (NULL if none), and, if
 * `add`, watches every regular file not watched yet.
 */
static const char *scan(ino_t ino, int add, int quiet)
{
	static char found[NAME_MAX + 1];
	const char *result = NULL;
	DIR *d = opendir(root);
	struct dirent *de;
	if (!d)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX];
		struct stat st;
		int fd;
		snprintf(path, sizeof path, "%s/%s", root, de->d_name);
		if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (st.st_ino == ino) {
			snprintf(found, sizeof found, "%s", de->d_name);
			result = found;
		}
		if (!add || find_ino(st.st_ino))
			continue;
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			continue;
		struct entry *e = find_fd(-1);
		if (!e || fstat(fd, &st) != 0 || watch_fd(fd) != 0) {
			close(fd);
			continue;
		}
		e->fd = fd;
		e->ino = st.st_ino;
		snprintf(e->name, sizeof e->name, "%s", de->d_name);
		if (!quiet)
			printf("new %s\n", e->name);
	}
	closedir(d);
	return result;
}

int main(int argc, char **argv)
{
	struct kevent ev[16];
	struct stat st;
	int dir, n;
	if (argc != 2) {
		fprintf(stderr, "usage: watch PATH\n");
		return 2;
	}
	root = argv[1];
	for (int i = 0; i < MAX_FILES; i++)
		files[i].fd = -1;
	if ((kq = kqueue()) < 0 || (root_fd = open(root, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(root_fd, &st) != 0 || watch_fd(root_fd) != 0) {
		perror(root);
		return 1;
	}
	dir = S_ISDIR(st.st_mode);
	if (dir)
		scan(0, 1, 1);
	/* Stop at the end of the standard input if it is a pipe or a terminal. */
	if (fstat(0, &st) == 0 && (S_ISFIFO(st.st_mode) || isatty(0))) {
		struct kevent c;
		EV_SET(&c, 0, EVFILT_READ, EV_ADD, 0, 0, NULL);
		kevent(kq, &c, 1, NULL, 0, NULL);
	}
	printf("watching %s\n", root);
	fflush(stdout);
	for (;;) {
		n = kevent(kq, NULL, 0, ev, 16, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("kevent");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			int fd = (int)ev[i].ident;
			struct entry *e;
			if (ev[i].filter == EVFILT_READ) {
				char buf[512];
				if (read(0, buf, sizeof buf) <= 0)
					return 0;
				continue;
			}
			if (fd == root_fd) {
				print_notes(root, ev[i].fflags);
				if (ev[i].fflags & (NOTE_DELETE | NOTE_REVOKE))
					return 0;
				if (dir && (ev[i].fflags & NOTE_WRITE))
					scan(0, 1, 0);
				continue;
			}
			if ((e = find_fd(fd)) == NULL)
				continue;
			print_notes(e->name, ev[i].fflags);
			if (ev[i].fflags & NOTE_DELETE) {
				forget(e);
			} else if (ev[i].fflags & NOTE_RENAME) {
				const char *now = scan(e->ino, 0, 1);
				if (now) {
					printf("%s renamed to %s\n", e->name, now);
					snprintf(e->name, sizeof e->name, "%s", now);
				} else {
					printf("%s moved away\n", e->name);
					forget(e);
				}
			}
		}
		fflush(stdout);
	}
}
