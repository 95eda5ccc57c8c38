/*
 * A program built against a libkqueue-2.x-shaped <sys/event.h> (this directory), run
 * against this project's libkqueue.so.0: the struct layout, the constants and the two
 * exported functions must mean the same thing.  Exits 0 when every check passes.
 */
#define _GNU_SOURCE
#include <sys/event.h>

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failures;

#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: CHECK failed: %s (errno %d: %s)\n",	\
			__FILE__, __LINE__, #cond, errno, strerror(errno));	\
		failures++;						\
	}								\
} while (0)

static const struct timespec zero = { 0, 0 };

int main(void)
{
	struct kevent ch[4], ev[4];
	int p[2];

	/* The layout of libkqueue 2.x on LP64. */
	CHECK(sizeof(struct kevent) == 4 * sizeof(void *));
	CHECK(offsetof(struct kevent, filter) == sizeof(uintptr_t));
	CHECK(offsetof(struct kevent, flags) == sizeof(uintptr_t) + 2);
	CHECK(offsetof(struct kevent, fflags) == sizeof(uintptr_t) + 4);
	CHECK(offsetof(struct kevent, data) == 2 * sizeof(uintptr_t));
	CHECK(offsetof(struct kevent, udata) == 3 * sizeof(uintptr_t));

	int kq = kqueue();
	CHECK(kq >= 0);

	/* EVFILT_USER: add, trigger with fflags, collect; udata comes back. */
	EV_SET(&ch[0], 42, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, (void *)&p);
	/* As on the BSDs, every change (the trigger too) sets udata. */
	EV_SET(&ch[1], 42, EVFILT_USER, 0, NOTE_TRIGGER | NOTE_FFCOPY | 0x123, 0, (void *)&p);
	CHECK(kevent(kq, ch, 2, NULL, 0, NULL) == 0);
	CHECK(kevent(kq, NULL, 0, ev, 4, &zero) == 1);
	CHECK(ev[0].ident == 42 && ev[0].filter == EVFILT_USER);
	CHECK((ev[0].fflags & NOTE_FFLAGSMASK) == 0x123);
	CHECK(ev[0].udata == (void *)&p);
	CHECK(kevent(kq, NULL, 0, ev, 4, &zero) == 0); /* EV_CLEAR */

	/* EVFILT_READ and EVFILT_WRITE on a pipe; data is the byte count. */
	CHECK(pipe(p) == 0);
	CHECK(write(p[1], "hello", 5) == 5);
	EV_SET(&ch[0], p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
	EV_SET(&ch[1], p[1], EVFILT_WRITE, EV_ADD | EV_ONESHOT, 0, 0, NULL);
	CHECK(kevent(kq, ch, 2, NULL, 0, NULL) == 0);
	int n = kevent(kq, NULL, 0, ev, 4, &zero);
	CHECK(n == 2);
	for (int i = 0; i < n; i++) {
		if (ev[i].filter == EVFILT_READ)
			CHECK(ev[i].ident == (uintptr_t)p[0] && ev[i].data == 5);
		else
			CHECK(ev[i].filter == EVFILT_WRITE && ev[i].ident == (uintptr_t)p[1]);
	}
	EV_SET(&ch[0], p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);
	CHECK(kevent(kq, ch, 1, NULL, 0, NULL) == 0);

	/* EVFILT_TIMER, one shot, in milliseconds: a NULL timeout waits for it. */
	EV_SET(&ch[0], 7, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 20, NULL);
	CHECK(kevent(kq, ch, 1, ev, 1, NULL) == 1);
	CHECK(ev[0].ident == 7 && ev[0].filter == EVFILT_TIMER && ev[0].data >= 1);

	/* EV_RECEIPT and errors come back as EV_ERROR entries. */
	EV_SET(&ch[0], 43, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, NULL);
	EV_SET(&ch[1], 44, EVFILT_USER, EV_DELETE, 0, 0, NULL);
	EV_SET(&ch[2], 45, -14, EV_ADD, 0, 0, NULL); /* no such filter */
	n = kevent(kq, ch, 3, ev, 4, &zero);
	CHECK(n == 3);
	CHECK(n == 3 && (ev[0].flags & EV_ERROR) && ev[0].data == 0);
	CHECK(n == 3 && (ev[1].flags & EV_ERROR) && ev[1].data == ENOENT);
	CHECK(n == 3 && (ev[2].flags & EV_ERROR) && ev[2].data == EINVAL);

	/* Errors of the call itself. */
	errno = 0;
	CHECK(kevent(-1, NULL, 0, ev, 1, &zero) == -1 && errno == EBADF);
	errno = 0;
	CHECK(kevent(p[0], NULL, 0, ev, 1, &zero) == -1 && errno == EBADF);

	CHECK(close(p[0]) == 0 && close(p[1]) == 0);
	CHECK(close(kq) == 0);
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "ok", failures);
	return failures ? 1 : 0;
}
