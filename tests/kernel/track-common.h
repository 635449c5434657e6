/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The tracking suite's shared parts. See track-main.c for what the suite
 * proves and how its sources divide it.
 */
#ifndef UFFDWP_TEST_TRACK_COMMON_H
#define UFFDWP_TEST_TRACK_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

#include "../lib/test-lib.h"
#include "testhooks.h"

/* _i of a loop test indexes backends[]; each backend's cases sit in test
 * cases tagged with its name, and main() excludes (and names) the tags of
 * backends this kernel lacks. Reaching one anyway is a harness bug
 * (NEED_BACKEND). */
extern const int backends[4];

enum pattern { RANDOM, SEQUENTIAL, HOTSPOT, COUNTERS };

struct oracle {
	struct uffdwp_ctx *ctx;
	int backend;
	char *mem, *shadow;
	size_t npages;
	enum pattern pattern;
	bool zap;
	bool quiesce; /* soft_dirty: writers pause around each collect */
	unsigned int nwriters;
	atomic_int stop, pause, paused;
	atomic_int started; /* writers past their first write */
	uint64_t *incs; /* COUNTERS: increments per writer per page */
	size_t reported;
};

struct writer {
	struct oracle *o;
	unsigned int id;
	pthread_t tid;
};

/* The pre-copy oracle (track-common.c): writers write while collects copy
 * into a shadow; oracle_run() returns how many pages the shadow got wrong. */
void oracle_setup(struct oracle *o, int backend, size_t npages);
void oracle_teardown(struct oracle *o);
size_t oracle_run(struct oracle *o, unsigned int epochs);

/* @pages of anonymous memory with @prot, asserted. */
char *map(size_t pages, int prot);

/* The sections' cases, added in the suite's order (track-main.c). */
void track_oracle_cases(Suite *s, const char *tag, int i);
void track_input_cases(Suite *s, const char *tag, int i);
void track_events_cases(Suite *s, const char *tag, int i);
void track_fork_cases(Suite *s, const char *tag, int i);
void track_kinds_cases(Suite *s, const char *tag, int i);
void track_ctx_cases(Suite *s);
void track_broken_cases(Suite *s);

#endif /* UFFDWP_TEST_TRACK_COMMON_H */
