/*
 * Regression cases from an adversarial review : each case reproduces one
 * defect and FAILS on the engine as it is. Descriptors are closed where the library cannot
 * see it (glibc's internal close in fclose()), which
 * README.md and docs/personality.md promise is harmless: nothing is reported for a closed
 * or reused number, and EV_ADD of the new file makes a fresh, working knote.
 */
#include "kqtest.h"

#include <fcntl.h>
#include <sys/stat.h>

static int old_udata, new_udata;

/*
 * AT1 fifo_reopened_after_fclose: a FIFO registered through fileno(fopen()), closed by
 * fclose() (not interposed) and opened again on the same number is the same inode, so the
 * engine keeps the old knote (`Inner::check_descriptor`: not stale) instead of making a
 * fresh one, and never adds the new open file to its epoll: a writer's data never wakes
 * a sleeping kevent(), and the old knote's udata and EV_ONESHOT stay.
 */
static void case_fifo_reopen(void)
{
	char path[64];
	struct kevent ev[4];
	snprintf(path, sizeof path, "/tmp/kq-attack-fifo-%d", (int)getpid());
	unlink(path);
	CHECK_EQ(mkfifo(path, 0600), 0);
	int kq = kqueue();
	CHECK(kq >= 0);
	int rd = open(path, O_RDONLY | O_NONBLOCK);
	CHECK(rd >= 0);
	int wr = open(path, O_WRONLY | O_NONBLOCK);
	CHECK(wr >= 0);
	FILE *f = fopen(path, "r");
	CHECK(f != NULL);
	int num = fileno(f);
	CHECK_EQ(kqt_change(kq, num, EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, &old_udata), 0);
	CHECK_EQ(kqt_poll(kq, ev, 4), 0);
	fclose(f); /* glibc closes internally: the library does not hear of it */
	int again = open(path, O_RDONLY | O_NONBLOCK);
	CHECK_EQ(again, num);
	CHECK_EQ(kqt_change(kq, num, EVFILT_READ, EV_ADD, 0, 0, &new_udata), 0);
	CHECK_EQ(kqt_poll(kq, ev, 4), 0);
	CHECK_EQ(write(wr, "abc", 3), 3);
	CHECK_EQ(kqt_wait(kq, ev, 4, 30000), 1);
	CHECK_EQ(ev[0].ident, num);
	CHECK(ev[0].udata == &new_udata);
	CHECK_EQ(ev[0].data, 3);
	CHECK_EQ(ev[0].flags & EV_ONESHOT, 0);
	close(again);
	close(wr);
	close(rd);
	close(kq);
	unlink(path);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	kqt_watchdog(30);
	kqt_run("AT1", "fifo_reopened_after_fclose", case_fifo_reopen);
	return kqt_done();
}
