/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The snapshot suite's shared parts (snapshot-common.c): the writer rig,
 * the test sinks, one snapshot taken and checked against the oracle, and
 * the helpers several sections use. See snapshot-main.c for what the suite
 * proves.
 */
#ifndef UFFDWP_TEST_SNAPSHOT_COMMON_H
#define UFFDWP_TEST_SNAPSHOT_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

#include "../lib/test-lib.h"
#include "image.h"
#include "testhooks.h"

#define POISON 0xa7 /* a sink buffer before a full snapshot */
#define MAX_WRITERS 8
extern const int backends[2];

/* UFFDWP_TEST_SEED reproduces a run; otherwise a fresh seed, printed. */
uint64_t test_seed(const char *what);

char *map(size_t pages);

/* The first page of @n where @a and @b differ, or -1. */
long first_diff(const char *a, const char *b, size_t n);

/* What differs in page @page of @got against @want, in words. */
void describe_diff(char *msg, size_t sz, const char *got, const char *want,
		   long page);

enum pattern { RANDOM, HOTSPOT };

struct rig {
	struct uffdwp_ctx *ctx;
	int backend;
	char *mem;
	size_t npages;
	enum pattern pattern;
	unsigned int nwriters;
	uint64_t seed;
	pthread_t tid[MAX_WRITERS];
	/* Writers write pages [wlo, whi); HOTSPOT sends 90% of the writes
	 * into [hlo, hhi). Changed only while every writer is parked. */
	size_t wlo, whi, hlo, hhi;
	/* One bit per page, set before a writer's stores to it. */
	uint64_t *written;
	atomic_int stop, pause;
	atomic_ulong batches;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned int parked;
};

struct writer {
	struct rig *r;
	unsigned int id;
};

void park(struct rig *r);

void *writer_main(void *arg);

/* Every writer parked, none mid-write: memory stands still. */
void rig_pause(struct rig *r);

void rig_resume(struct rig *r);

/* Pace: let the writers make some progress (dirty pages) since @since. */
void rig_settle(struct rig *r, unsigned long since);

/*
 * While paused: writers go to the snapshot's pages and around them, the
 * hot part inside the snapshot's range.
 */
void rig_focus(struct rig *r, size_t first, size_t n, uint64_t *seed);

/* While paused: the pages written in [first, first + n) since the last
 * call, cleared. */
uint64_t rig_take_written(struct rig *r, size_t first, size_t n);

void rig_setup(struct rig *r, int backend, size_t npages, enum pattern pattern,
	       uint64_t seed);

void rig_start(struct rig *r);

void rig_stop(struct rig *r);

void rig_teardown(struct rig *r);

/* Holds sink calls until the test opens it. */
struct sgate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned int entered;
	bool open;
	void *addr; /* of the first call held */
	size_t len;
};

void sgate_init(struct sgate *g);

void sgate_enter(struct sgate *g, void *addr, size_t len);

void sgate_wait_entered(struct sgate *g);

void sgate_open(struct sgate *g);

enum sink_kind {
	SINK_MEMORY, /* uffdwp_sink_memory_new(): place() */
	SINK_WRITE, /* a user sink with write() only: the staging path */
	SINK_MIXED, /* place() for every other 64-page word, write() else */
	SINK_PLACE, /* a user sink with place() only */
	SINK_KINDS,
};

extern const char *const sink_names[];
/*
 * A user sink: copies into @buf at the page's offset in the snapshot, and
 * checks the contract on the way: every page exactly once, aligned, inside
 * the range, data never pointing into tracked memory.
 */
struct usink {
	struct uffdwp_sink sink;
	enum sink_kind kind;
	char *buf;
	size_t len, npages;
	uintptr_t base; /* the snapshot's start, from begin() */
	uint8_t *hits; /* deliveries per page */
	struct uffdwp_snapshot_info info;
	/* Tracked memory the data of write() must not point into. */
	uintptr_t forbid_lo, forbid_hi;
	atomic_int begins, ends, end_status, inflight;
	pthread_t end_thread; /* the thread end() last ran on */
	atomic_ulong places, writes, bad, in_tracked;
	/* Failure injection: the fail_at-th write() (from 0) returns
	 * fail_err; begin() returns begin_err; end(0) returns end_err. */
	long fail_at;
	int fail_err, begin_err, end_err;
	/* SINK_MIXED: place() serves the 64-page words of this parity. */
	unsigned int mix_parity;
	/* write() calls after the first sleep this long. */
	unsigned int delay_us;
	struct sgate *gate;
	/* end(0) waits here (a snapshot held while it commits). */
	struct sgate *end_gate;
	/* Forward to this sink (the file sink) instead of copying. */
	const struct uffdwp_sink *inner;
};

bool us_account(struct usink *u, void *addr, size_t len);

int us_begin(void *arg, const struct uffdwp_snapshot_info *info);

void *us_place(void *arg, void *addr, size_t len);

int us_write(void *arg, void *addr, const void *data, size_t len);

int us_end(void *arg, int status);

void usink_init(struct usink *u, enum sink_kind kind, char *buf, size_t len);

void usink_fini(struct usink *u);

/* Pages delivered once, and a check that none came twice. */
size_t usink_delivered(struct usink *u);

enum opt_kind {
	OPTS_DEFAULT, /* NULL options (unless incremental) */
	OPTS_NARROW, /* one copier, four staging pages: backpressure */
	OPTS_WIDE, /* four copiers, 16 staging pages */
	OPT_KINDS,
};

extern const char *const opt_names[];
struct shot {
	/* In: pages [first, first + n) of the rig. */
	size_t first, n;
	unsigned int flags;
	enum sink_kind kind;
	enum opt_kind opt;
	char *oracle; /* n pages */
	char *dst; /* where the image goes: n pages */
	/* Out. */
	uint64_t expected; /* pages the snapshot must deliver */
	int ret; /* of uffdwp_snapshot_wait() */
	struct uffdwp_snapshot_status st;
	struct usink us;
	long bad; /* first page differing from the oracle, or -1 */
};

void fill_opts(struct uffdwp_snapshot_opts *o, enum opt_kind k,
	       unsigned int flags);

void shot_print(const struct shot *s, const char *what);

/*
 * Pause the writers, copy the oracle, start, resume, wait. The image lands
 * in s->dst; a full snapshot's destination is poisoned first so a page
 * never delivered shows.
 */
void shot_take(struct rig *r, struct shot *s, uint64_t *seed);

/* Everything a successful snapshot promises. */
void shot_check(struct rig *r, struct shot *s, bool count_known);

void expect_failed(struct uffdwp_snapshot *snap, int err, int cause);

void expect_equal(const char *what, const char *got, const char *want,
		  size_t n);

void fill_pages(char *mem, size_t npages, unsigned int salt);

/* After a failed snapshot the context still snapshots, exactly. */
void snapshot_now(struct uffdwp_ctx *ctx, char *addr, size_t n);

/* The sections' cases, added in the suite's order (snapshot-main.c). */
void snapshot_oracle_cases(Suite *s, const char *tag, int i);
void snapshot_sinks_cases(Suite *s, const char *tag, int i);
void snapshot_events_cases(Suite *s, const char *tag, int i);
void snapshot_unsupported_cases(Suite *s);
void snapshot_broken_cases(Suite *s);

#endif /* UFFDWP_TEST_SNAPSHOT_COMMON_H */
