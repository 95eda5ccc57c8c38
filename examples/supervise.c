/*
 * supervise: a process supervisor on one kqueue, as a BSD program writes it.
 *
 * It starts N children running a command, watches each with EVFILT_PROC/NOTE_EXIT,
 * restarts those that exit (up to a limit per child), and watches SIGTERM and SIGINT with
 * EVFILT_SIGNAL, the signals being set to SIG_IGN first (the BSD idiom: their default
 * action does not run, and the kqueue still reports them), to stop every child and exit
 * cleanly: SIGTERM to each child, then SIGKILL to those still there when a second signal
 * comes or a grace period (EVFILT_TIMER, 3 s) ends.  One line per event on standard
 * output:
 *
 *   started child 0: pid 4242
 *   child 0 (pid 4242) exited with status 3
 *   restarted child 0 (restart 1 of 2): pid 4250
 *   child 0 (pid 4262) exited with status 3; no restarts left
 *   SIGTERM: stopping 2 children
 *   child 1 (pid 4251) killed by signal 15
 *   all children stopped
 *
 * Usage: supervise [-n CHILDREN] [-r RESTARTS] [COMMAND [ARG...]]
 * Defaults: 3 children, 2 restarts each, the command sh -c 'sleep 1; exit 3'.  Exits 0 when
 * a signal stopped it or every child used up its restarts, 1 on an error (such as a
 * library without EVFILT_PROC or EVFILT_SIGNAL: EINVAL), 2 on a usage error.
 *
 * Build and run:
 *   cargo build --release
 *   cc -Iinclude examples/supervise.c -Ltarget/release -lkqueue -o supervise
 *   LD_LIBRARY_PATH=target/release ./supervise -n 2 -r 1 sh -c 'exit 5'
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/event.h>

#define MAX_CHILDREN	64
#define GRACE		1	/* EVFILT_TIMER ident */
#define GRACE_MS	3000

struct slot {
	pid_t pid;		/* 0: not running */
	int restarts;
};

static int kq;
static int nchildren = 3, max_restarts = 2;
static char **command;
static char *default_command[] = { "sh", "-c", "sleep 1; exit 3", NULL };
static struct slot slots[MAX_CHILDREN];
static int stopping;

static void die(const char *what)
{
	fprintf(stderr, "supervise: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int running(void)
{
	int n = 0;
	for (int i = 0; i < nchildren; i++)
		n += slots[i].pid != 0;
	return n;
}

/* How a wait(2) status reads. */
static void describe(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, len, "ended with wait status %#x", status);
}

static void exited(int i, pid_t pid, int status);

/* Starts the command for slot i and watches its exit; returns the child's pid. */
static pid_t start(int i)
{
	struct kevent ev;
	sigset_t stop, old;

	/*
	 * Ignored signals stay ignored across exec: the child gets the default actions back.
	 * SIGTERM and SIGINT are blocked across the fork, so that one sent to the child
	 * before it has reset them waits, and then ends it.
	 */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigprocmask(SIG_BLOCK, &stop, &old);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(command[0], command);
		fprintf(stderr, "supervise: %s: %s\n", command[0], strerror(errno));
		_exit(127);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	slots[i].pid = pid;
	/*
	 * NOTE_EXIT: the event comes with the wait status in data, EV_EOF and EV_ONESHOT.  The
	 * child may be gone already: EV_ADD then fails with ESRCH, and the exit is handled
	 * here as if the event had come.
	 */
	EV_SET(&ev, pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, (void *)(intptr_t)i);
	if (kevent(kq, &ev, 1, NULL, 0, NULL) == -1) {
		int status = 0;
		if (errno != ESRCH) {
			int e = errno;
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			errno = e;
			die("EV_ADD EVFILT_PROC NOTE_EXIT");
		}
		waitpid(pid, &status, 0);
		exited(i, pid, status);
	}
	return pid;
}

/* Child i, pid pid, exited: restart it unless it has no restarts left or we stop. */
static void exited(int i, pid_t pid, int status)
{
	char what[64];
	describe(status, what, sizeof what);
	slots[i].pid = 0;
	if (stopping) {
		printf("child %d (pid %d) %s\n", i, (int)pid, what);
	} else if (slots[i].restarts >= max_restarts) {
		printf("child %d (pid %d) %s; no restarts left\n", i, (int)pid, what);
	} else {
		int n = ++slots[i].restarts;
		printf("child %d (pid %d) %s\n", i, (int)pid, what);
		fflush(stdout);
		pid_t again = start(i);
		printf("restarted child %d (restart %d of %d): pid %d\n", i, n, max_restarts,
		       (int)again);
	}
	fflush(stdout);
}

static void kill_all(int sig)
{
	for (int i = 0; i < nchildren; i++)
		if (slots[i].pid != 0)
			kill(slots[i].pid, sig);
}

static const char *signal_name(int sig)
{
	return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal";
}

static int usage(void)
{
	fprintf(stderr, "usage: supervise [-n CHILDREN] [-r RESTARTS] [COMMAND [ARG...]]\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct kevent ch[2], ev[16];
	int opt;

	while ((opt = getopt(argc, argv, "+n:r:")) != -1) {
		switch (opt) {
		case 'n':
			nchildren = atoi(optarg);
			if (nchildren < 1 || nchildren > MAX_CHILDREN)
				return usage();
			break;
		case 'r':
			max_restarts = atoi(optarg);
			if (max_restarts < 0)
				return usage();
			break;
		default:
			return usage();
		}
	}
	command = optind < argc ? argv + optind : default_command;

	/* The BSD idiom: ignore the signals, then have the kqueue report them. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	if ((kq = kqueue()) == -1)
		die("kqueue");
	EV_SET(&ch[0], SIGTERM, EVFILT_SIGNAL, EV_ADD | EV_CLEAR, 0, 0, NULL);
	EV_SET(&ch[1], SIGINT, EVFILT_SIGNAL, EV_ADD | EV_CLEAR, 0, 0, NULL);
	if (kevent(kq, ch, 2, NULL, 0, NULL) == -1)
		die("EV_ADD EVFILT_SIGNAL");

	for (int i = 0; i < nchildren; i++) {
		pid_t pid = start(i);
		printf("started child %d: pid %d\n", i, (int)pid);
		fflush(stdout);
	}

	while (running() > 0) {
		int n = kevent(kq, NULL, 0, ev, 16, NULL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			die("kevent");
		}
		for (int k = 0; k < n; k++) {
			if (ev[k].filter == EVFILT_PROC && (ev[k].fflags & NOTE_EXIT)) {
				int i = (int)(intptr_t)ev[k].udata;
				pid_t pid = (pid_t)ev[k].ident;
				/* The status is in the event; the zombie is still ours to reap. */
				if (i >= 0 && i < nchildren && slots[i].pid == pid) {
					waitpid(pid, NULL, 0);
					exited(i, pid, (int)ev[k].data);
				}
			} else if (ev[k].filter == EVFILT_SIGNAL) {
				int sig = (int)ev[k].ident;
				if (stopping) {
					printf("%s again: killing %d children\n", signal_name(sig),
					       running());
					kill_all(SIGKILL);
				} else {
					struct kevent t;
					stopping = 1;
					printf("%s: stopping %d children\n", signal_name(sig),
					       running());
					kill_all(SIGTERM);
					EV_SET(&t, GRACE, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0,
					       GRACE_MS, NULL);
					if (kevent(kq, &t, 1, NULL, 0, NULL) == -1)
						die("EV_ADD EVFILT_TIMER");
				}
				fflush(stdout);
			} else if (ev[k].filter == EVFILT_TIMER && ev[k].ident == GRACE) {
				printf("grace period over: killing %d children\n", running());
				fflush(stdout);
				kill_all(SIGKILL);
			}
		}
	}
	printf(stopping ? "all children stopped\n" : "no child left to run\n");
	close(kq);
	return 0;
}
