/*
 * demo: a thread pool waking an event loop through EVFILT_USER, the way nginx's thread
 * pools do, plus an EVFILT_TIMER tick.
 *
 * The event loop owns a kqueue with two knotes:
 *   - EVFILT_USER ident 1, EV_CLEAR: "some jobs are done".  A worker that finishes a job
 *     appends it to the done list and triggers the event with NOTE_TRIGGER|NOTE_FFOR and
 *     its own bit, so the loop learns which workers signalled.  Triggers that arrive
 *     before the loop looks coalesce into one wakeup with the bits OR-ed together.
 *   - EVFILT_TIMER ident 2, every 100 ms: a progress tick.
 * The loop hands out jobs, collects the results, prints what happened and exits 0 once
 * every job is done.
 *
 * Build and run (examples/run-demo.sh does this):
 *   cargo build --release
 *   cc -Iinclude examples/demo.c -Ltarget/release -lkqueue -lpthread -o demo
 *   LD_LIBRARY_PATH=target/release ./demo
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/event.h>

#define NWORKERS	4
#define NJOBS		16
#define WAKE		1	/* EVFILT_USER ident */
#define TICK		2	/* EVFILT_TIMER ident */
#define TICK_MS		100

struct job {
	int id;
	int work_ms;		/* how long the job "works" */
	int worker;		/* who did it */
	unsigned long result;
	struct job *next;
};

static int kq;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t have_work = PTHREAD_COND_INITIALIZER;
static struct job *todo, **todo_tail = &todo;	/* FIFO of jobs to run */
static struct job *done;			/* jobs finished, not yet collected */
static int stopping;
static unsigned long triggers;			/* NOTE_TRIGGERs sent by workers */

static void die(const char *what)
{
	fprintf(stderr, "demo: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The "work": sleep for a while (an I/O wait), then compute something. */
static unsigned long run_job(const struct job *j)
{
	struct timespec ts = { 0, (long)j->work_ms * 1000000L };
	unsigned long x = (unsigned long)j->id;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
	for (int i = 0; i < 100000; i++)
		x = x * 6364136223846793005UL + 1442695040888963407UL;
	return x >> 48;
}

static void *worker_main(void *arg)
{
	int me = (int)(intptr_t)arg;
	for (;;) {
		pthread_mutex_lock(&lock);
		while (todo == NULL && !stopping)
			pthread_cond_wait(&have_work, &lock);
		struct job *j = todo;
		if (j == NULL) {		/* stopping, nothing left */
			pthread_mutex_unlock(&lock);
			return NULL;
		}
		todo = j->next;
		if (todo == NULL)
			todo_tail = &todo;
		pthread_mutex_unlock(&lock);

		j->result = run_job(j);
		j->worker = me;

		pthread_mutex_lock(&lock);
		j->next = done;
		done = j;
		triggers++;
		pthread_mutex_unlock(&lock);

		/* Wake the event loop, saying who we are. */
		struct kevent kev;
		EV_SET(&kev, WAKE, EVFILT_USER, 0, NOTE_TRIGGER | NOTE_FFOR | (1u << me), 0, NULL);
		if (kevent(kq, &kev, 1, NULL, 0, NULL) == -1)
			die("kevent(NOTE_TRIGGER)");
	}
}

int main(void)
{
	pthread_t workers[NWORKERS];
	struct job jobs[NJOBS];
	struct kevent changes[2], events[8];
	double start = now_ms();

	kq = kqueue();
	if (kq == -1)
		die("kqueue");
	EV_SET(&changes[0], WAKE, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
	EV_SET(&changes[1], TICK, EVFILT_TIMER, EV_ADD, 0, TICK_MS, NULL);
	if (kevent(kq, changes, 2, NULL, 0, NULL) == -1)
		die("kevent(EV_ADD)");
	printf("event loop: kqueue fd %d, EVFILT_USER ident %d (EV_CLEAR), "
	       "EVFILT_TIMER ident %d every %d ms, %d workers\n",
	       kq, WAKE, TICK, TICK_MS, NWORKERS);

	for (int i = 0; i < NWORKERS; i++)
		if ((errno = pthread_create(&workers[i], NULL, worker_main, (void *)(intptr_t)i)))
			die("pthread_create");

	/* Queue the jobs: 20..125 ms each, in a fixed pseudo-random order. */
	unsigned seed = 7;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < NJOBS; i++) {
		seed = seed * 1103515245u + 12345u;
		jobs[i].id = i;
		jobs[i].work_ms = 20 + (int)((seed >> 16) % 106);
		jobs[i].worker = -1;
		jobs[i].next = NULL;
		*todo_tail = &jobs[i];
		todo_tail = &jobs[i].next;
	}
	pthread_cond_broadcast(&have_work);
	pthread_mutex_unlock(&lock);
	printf("queued %d jobs\n", NJOBS);

	int completed = 0, wakeups = 0, ticks = 0;
	unsigned reported = 0;	/* worker bits seen in the last wakeup, to clear */
	while (completed < NJOBS) {
		int nchanges = 0;
		if (reported) {
			/*
			 * Clear the bits already reported, in the same call that waits:
			 * NOTE_FFAND keeps only the others, so a bit set by a worker after
			 * the last delivery is not lost.
			 */
			EV_SET(&changes[0], WAKE, EVFILT_USER, 0,
			       NOTE_FFAND | (~reported & NOTE_FFLAGSMASK), 0, NULL);
			nchanges = 1;
			reported = 0;
		}
		struct timespec limit = { 5, 0 };
		int n = kevent(kq, changes, nchanges, events, 8, &limit);
		if (n == -1)
			die("kevent(wait)");
		if (n == 0) {
			fprintf(stderr, "demo: no event for 5 s, giving up\n");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			const struct kevent *ev = &events[i];
			double t = now_ms() - start;
			if (ev->flags & EV_ERROR) {
				errno = (int)ev->data;
				die("kevent(change)");
			}
			if (ev->filter == EVFILT_TIMER) {
				ticks++;
				pthread_mutex_lock(&lock);
				int pending = 0;
				for (struct job *j = todo; j; j = j->next)
					pending++;
				pthread_mutex_unlock(&lock);
				printf("%6.1f ms  tick %d (%ld expiration%s): %d/%d done, %d queued\n",
				       t, ticks, (long)ev->data, ev->data == 1 ? "" : "s",
				       completed, NJOBS, pending);
				continue;
			}
			/* EVFILT_USER: take every finished job. */
			unsigned bits = ev->fflags & NOTE_FFLAGSMASK;
			reported |= bits;
			wakeups++;
			pthread_mutex_lock(&lock);
			struct job *list = done;
			done = NULL;
			pthread_mutex_unlock(&lock);
			int got = 0;
			char who[64] = "";
			for (int w = 0; w < NWORKERS; w++)
				if (bits & (1u << w)) {
					size_t len = strlen(who);
					snprintf(who + len, sizeof who - len, "%s%d", len ? "," : "", w);
				}
			printf("%6.1f ms  wakeup %d: fflags 0x%x (workers %s)\n",
			       t, wakeups, bits, who[0] ? who : "-");
			for (struct job *j = list; j; j = j->next) {
				printf("            job %2d (%3d ms) done by worker %d, result %05lu\n",
				       j->id, j->work_ms, j->worker, j->result);
				got++;
			}
			completed += got;
		}
	}

	pthread_mutex_lock(&lock);
	stopping = 1;
	pthread_cond_broadcast(&have_work);
	unsigned long sent = triggers;
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(workers[i], NULL);
	close(kq);

	printf("done: %d jobs by %d workers in %.0f ms; %lu triggers woke the loop %d times "
	       "(%lu coalesced), %d timer ticks\n",
	       NJOBS, NWORKERS, now_ms() - start, sent, wakeups,
	       sent > (unsigned long)wakeups ? sent - (unsigned long)wakeups : 0UL, ticks);
	return 0;
}
