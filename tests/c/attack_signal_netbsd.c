/*
 * Attacks on EVFILT_SIGNAL through the NetBSD-flavour ABI (include/netbsd/sys/event.h: the
 * library's __kqueue_netbsd_* entry points, 32-bit filter and flags, 64-bit data), beside a
 * libkqueue-ABI kqueue of the same process.  Cases of docs/semantics.md §7.7.
 */
#include "kqtest.h"

#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* The libkqueue-ABI entry points of the same library (FreeBSD personality): the
 * libkqueue struct kevent (16-bit filter and flags). */
struct fb_kevent {
	uintptr_t ident;
	short filter;
	unsigned short flags;
	unsigned int fflags;
	intptr_t data;
	void *udata;
};
int fb_kqueue(void) __asm__("kqueue");
int fb_kevent(int kq, const struct fb_kevent *changes, int nchanges, struct fb_kevent *events,
	      int nevents, const struct timespec *timeout) __asm__("kevent");

static const struct timespec zero = { 0, 0 };
static int marker;

static int nb_change(int kq, uintptr_t ident, uint32_t flags, uint32_t fflags, int64_t data,
		     void *udata)
{
	struct kevent c;
	EV_SET(&c, ident, EVFILT_SIGNAL, flags, fflags, data, udata);
	return kevent(kq, &c, 1, NULL, 0, NULL);
}

static void *kernel_handler(int sig)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		unsigned long mask;
	} k;
	if (syscall(SYS_rt_sigaction, sig, NULL, &k, sizeof k.mask) != 0)
		return (void *)-2;
	return k.handler;
}

/* S9 odd_idents: idents that are no signal, or that only look like one in their low 32
 * bits, are accepted and never fire; deleting them works; the real signal's action is
 * left alone. */
static void case_odd_idents(void)
{
	static const uintptr_t idents[] = {
		0, 65, 128, UINTPTR_MAX, UINTPTR_MAX - 1,
#if UINTPTR_MAX > 0xffffffffu
		((uintptr_t)1 << 32) | SIGURG, ((uintptr_t)1 << 63) | SIGURG,
#endif
		32, 33, SIGKILL, SIGSTOP,
	};
	struct kevent ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	for (size_t i = 0; i < sizeof idents / sizeof idents[0]; i++)
		CHECK_EQ(nb_change(kq, idents[i], EV_ADD, 0, 0, NULL), 0);
	CHECK(kernel_handler(SIGURG) == SIG_DFL);
	CHECK_EQ(raise(SIGURG), 0);
	CHECK_EQ(kevent(kq, NULL, 0, &ev, 1, &zero), 0);
	for (size_t i = 0; i < sizeof idents / sizeof idents[0]; i++)
		CHECK_EQ(nb_change(kq, idents[i], EV_DELETE, 0, 0, NULL), 0);
	close(kq);
}

/* S2 odd_input_and_receipt: fflags and data of the change are not the event's (fflags 0,
 * data the count), the udata pointer comes back whole, EV_RECEIPT reports success as an
 * EV_ERROR entry with data 0 and the knote is added. */
static void case_odd_input(void)
{
	struct kevent c, ev;
	int kq = kqueue();
	CHECK(kq >= 0);
	CHECK(signal(SIGUSR1, SIG_IGN) != SIG_ERR);
	EV_SET(&c, SIGUSR1, EVFILT_SIGNAL, EV_ADD | EV_RECEIPT, 0xffffffffu, INT64_MIN,
	       &marker);
	CHECK_EQ(kevent(kq, &c, 1, &ev, 1, &zero), 1);
	CHECK_EQ(ev.flags & EV_ERROR, EV_ERROR);
	CHECK_EQ(ev.data, 0);
	CHECK_EQ(raise(SIGUSR1), 0);
	CHECK_EQ(raise(SIGUSR1), 0);
	memset(&ev, 0, sizeof ev);
	CHECK_EQ(kevent(kq, NULL, 0, &ev, 1, &zero), 1);
	CHECK_EQ(ev.ident, SIGUSR1);
	CHECK_EQ(ev.filter, EVFILT_SIGNAL);
	CHECK_EQ(ev.fflags, 0);
	CHECK_EQ(ev.data, 2);
	CHECK(ev.udata == &marker);
	CHECK_EQ(ev.flags & EV_CLEAR, EV_CLEAR);
	close(kq);
	CHECK(kernel_handler(SIGUSR1) == SIG_IGN);
}

/* S6 both_abis: a NetBSD-ABI kqueue and a libkqueue-ABI one watch the same signal: each
 * counts every post on its own, and the action is back when both are closed. */
static void case_both_abis(void)
{
	struct kevent ev;
	struct fb_kevent fc, fev;
	int nb = kqueue(), fb = fb_kqueue();
	CHECK(nb >= 0 && fb >= 0);
	CHECK(signal(SIGUSR2, SIG_IGN) != SIG_ERR);
	CHECK_EQ(nb_change(nb, SIGUSR2, EV_ADD, 0, 0, NULL), 0);
	memset(&fc, 0, sizeof fc);
	fc.ident = SIGUSR2;
	fc.filter = -6; /* libkqueue's EVFILT_SIGNAL */
	fc.flags = 0x1; /* EV_ADD */
	CHECK_EQ(fb_kevent(fb, &fc, 1, NULL, 0, NULL), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(raise(SIGUSR2), 0);
	CHECK_EQ(kevent(nb, NULL, 0, &ev, 1, &zero), 1);
	CHECK_EQ(ev.data, 3);
	CHECK_EQ(raise(SIGUSR2), 0);
	CHECK_EQ(fb_kevent(fb, NULL, 0, &fev, 1, &zero), 1);
	CHECK_EQ(fev.filter, -6);
	CHECK_EQ(fev.data, 4);
	CHECK_EQ(kevent(nb, NULL, 0, &ev, 1, &zero), 1);
	CHECK_EQ(ev.data, 1);
	close(nb);
	CHECK(kernel_handler(SIGUSR2) != SIG_IGN);
	close(fb);
	CHECK(kernel_handler(SIGUSR2) == SIG_IGN);
}

static void isolated_case(void (*fn)(void))
{
	int status;
	fflush(stdout);
	fflush(stderr);
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		fn();
		fflush(stderr);
		_exit(kqt_case_failed ? 1 : 0);
	}
	CHECK_EQ(waitpid(child, &status, 0), child);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
}

static void run_odd_idents(void)
{
	isolated_case(case_odd_idents);
}

static void run_odd_input(void)
{
	isolated_case(case_odd_input);
}

static void run_both_abis(void)
{
	isolated_case(case_both_abis);
}

int main(void)
{
	kqt_watchdog(60);
	kqt_run("S9", "odd_idents", run_odd_idents);
	kqt_run("S2", "odd_input_and_receipt", run_odd_input);
	kqt_run("S6", "both_abis", run_both_abis);
	return kqt_done();
}
