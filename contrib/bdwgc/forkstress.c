// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * forkstress: fork again and again while other threads allocate, grow the
 * heap and collect, on bdwgc built with the uffdwp VDB (run-gctest builds
 * and runs it as the forkstress-BACKEND check).
 *
 * Why: gctest forks a few times, from threads that are mostly idle then.
 * Here a fork races a collection that is tracking new heap sections or
 * collecting dirty pages, which is where the order of the fork handlers
 * matters: bdwgc's prepare handler must take the allocation lock before
 * libuffdwp's locks the library's state and blocks every signal, or the
 * fork deadlocks against the collector, or bdwgc aborts with "Signals
 * delivery fails constantly" (the forking thread cannot be stopped). Every
 * child allocates and collects on a tracking context of its own and must
 * exit 0.
 *
 * usage: forkstress [FORKS]   (default 100); exit 0 when all went well.
 */
#define GC_THREADS
#include <gc.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define NTHREADS 2
#define NKEEP 1024

static volatile int stop;

/* Allocate objects of growing sizes and keep the last NKEEP alive. */
static void *allocate(void *arg)
{
	void **keep = GC_MALLOC(sizeof(void *) * NKEEP);
	unsigned long i;

	(void)arg;
	for (i = 0; !stop; i++) {
		keep[i % NKEEP] = GC_MALLOC(64 + (i % 7) * 4096);
		if (i % 50000 == 0)
			keep[0] = GC_MALLOC(sizeof(void *) * NKEEP *
					    (1 + (i / 50000) % 8));
	}
	return NULL;
}

/* The child: allocate a list, collect, and check the list survived. */
static int child(void)
{
	void **head = NULL, **p;
	int i, n = 0;

	for (i = 0; i < 1000; i++) {
		p = GC_MALLOC(2 * sizeof(void *));
		p[0] = head;
		head = p;
	}
	GC_gcollect();
	for (p = head; p; p = p[0])
		n++;
	return n == 1000 ? 0 : 1;
}

int main(int argc, char **argv)
{
	int forks = argc > 1 ? atoi(argv[1]) : 100;
	pthread_t t[NTHREADS];
	int i, status, failed = 0;
	pid_t pid;

	GC_set_handle_fork(1);
	GC_INIT();
	GC_enable_incremental();
	if (!GC_is_incremental_mode()) {
		fprintf(stderr, "forkstress: incremental mode is off\n");
		return 1;
	}
	for (i = 0; i < NTHREADS; i++)
		if (pthread_create(&t[i], NULL, allocate, NULL)) {
			fprintf(stderr, "forkstress: pthread_create failed\n");
			return 1;
		}
	for (i = 0; i < forks; i++) {
		pid = fork();
		if (pid < 0) {
			perror("forkstress: fork");
			return 1;
		}
		if (pid == 0)
			exit(child());
		if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0) {
			fprintf(stderr, "forkstress: child %d failed (0x%x)\n",
				(int)pid, status);
			failed++;
		}
	}
	stop = 1;
	for (i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	printf("forkstress: %d forks, %d failed children, heap %lu KiB\n",
	       forks, failed, (unsigned long)GC_get_heap_size() / 1024);
	return failed ? 1 : 0;
}
