/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel suite: live snapshots, held to oracles on every uffd backend this
 * kernel has (DESIGN.md sections 3.4 and 7).
 *
 * The snapshot oracle: writer threads store unique 8-byte counters at
 * random offsets, several per page, into a tracked range. For each snapshot
 * the writers park (a flag and a counted handshake: none is mid-write), the
 * test copies the range (the oracle), starts the snapshot, lets the writers
 * go and waits; the sink's image must equal the oracle byte for byte. A page
 * copied after a writer's store, or half before and half after, or never,
 * shows. Incremental snapshots are applied onto one image buffer of the
 * whole range, which must then equal the oracle too. Sizes run from one page
 * to 256 MiB, at random page offsets, through the memory sink (place path)
 * and user sinks that implement write() only (staging path), place() only,
 * or both; with the default copiers and with one copier and a staging area
 * of four pages (backpressure).
 *
 * Snapshots and collects: a collector thread keeps a shadow from collect
 * reports while snapshots run; each snapshot's image goes into the shadow
 * too (a snapshot consumes its range's dirty state). After the writers stop
 * and a final collect, shadow and memory must be byte-equal: no dirty page
 * lost across the moves of uffd_async.
 *
 * Sinks that fail, file images, address-space events and misuse, fork; and
 * a test hook that breaks copy-before-write on purpose, which the oracle
 * must catch.
 *
 * Tests that must hold a snapshot running use a gate: the sink's first
 * write() waits until the test opens it, so with one copier the sweep is
 * parked at its first run and nothing else copies unless a writer faults.
 */
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

#include "../common.h"
#include "image.h"
#include "testhooks.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MIB (1UL << 20)
#define POISON 0xa7 /* a sink buffer before a full snapshot */
#define MAX_WRITERS 8

static size_t ps;
static struct uffdwp_caps caps;

static const int backends[] = { UFFDWP_BACKEND_UFFD_ASYNC,
				UFFDWP_BACKEND_UFFD_SYNC };

#define NEED_BACKEND(b)                                                   \
	ck_assert_msg(caps.backend[b].usable, "%s ran but is not usable", \
		      uffdwp_backend_name(b))

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* UFFDWP_TEST_SEED reproduces a run; otherwise a fresh seed, printed. */
static uint64_t test_seed(const char *what)
{
	const char *env = getenv("UFFDWP_TEST_SEED");
	struct timespec ts;
	uint64_t seed;

	if (env) {
		seed = strtoull(env, NULL, 0);
	} else {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
		       (uint64_t)getpid() << 16;
	}
	if (!seed)
		seed = 1;
	printf("%s: UFFDWP_TEST_SEED=%#llx\n", what, (unsigned long long)seed);
	return seed;
}

static char *map(size_t pages)
{
	char *p = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

static struct uffdwp_ctx *new_ctx(int backend)
{
	struct uffdwp_ctx_opts opts = { .sz = sizeof(opts),
					.backend = backend };
	struct uffdwp_ctx *ctx = NULL;

	ck_assert_int_eq(uffdwp_ctx_new(&opts, &ctx), 0);
	ck_assert_int_eq(uffdwp_ctx_backend(ctx), backend);
	return ctx;
}

static int count_run(void *arg, void *addr, size_t len)
{
	(void)addr;
	*(size_t *)arg += len / ps;
	return 0;
}

/* The first page of @n where @a and @b differ, or -1. */
static long first_diff(const char *a, const char *b, size_t n)
{
	size_t i;

	if (!memcmp(a, b, n * ps))
		return -1;
	for (i = 0; i < n; i++)
		if (memcmp(a + i * ps, b + i * ps, ps))
			return (long)i;
	return -1;
}

/* What differs in page @page of @got against @want, in words. */
static void describe_diff(char *msg, size_t sz, const char *got,
			  const char *want, long page)
{
	const uint64_t *g = (const uint64_t *)(got + (size_t)page * ps);
	const uint64_t *w = (const uint64_t *)(want + (size_t)page * ps);
	size_t k, nbad = 0, first = ps;
	uint64_t poison;

	memset(&poison, POISON, sizeof(poison));
	for (k = 0; k < ps / 8; k++) {
		if (g[k] == w[k])
			continue;
		if (first == ps)
			first = k;
		nbad++;
	}
	snprintf(
		msg, sz,
		"page %ld: %zu of %zu words differ, first at byte %zu: image %#llx, oracle %#llx%s",
		page, nbad, ps / 8, first * 8, (unsigned long long)g[first],
		(unsigned long long)w[first],
		g[first] == poison ? " (never delivered)" :
				     " (copied late or torn)");
}

/* --- writers ------------------------------------------------------------ */

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

static struct writer writers[MAX_WRITERS];

static void park(struct rig *r)
{
	pthread_mutex_lock(&r->mu);
	r->parked++;
	pthread_cond_broadcast(&r->cv);
	while (atomic_load(&r->pause) && !atomic_load(&r->stop))
		pthread_cond_wait(&r->cv, &r->mu);
	r->parked--;
	pthread_mutex_unlock(&r->mu);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct rig *r = w->r;
	uint64_t seed = r->seed ^ (0x9e3779b97f4a7c15ULL * (w->id + 1));
	uint64_t n = 0, v, tag = (uint64_t)(w->id + 1) << 48;
	size_t page, off, k;

	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		if (atomic_load_explicit(&r->pause, memory_order_acquire)) {
			park(r);
			continue;
		}
		v = rnd(&seed);
		if (r->pattern == HOTSPOT && v % 10)
			page = r->hlo + (size_t)(v >> 8) % (r->hhi - r->hlo);
		else
			page = r->wlo + (size_t)(v >> 8) % (r->whi - r->wlo);
		__atomic_fetch_or(&r->written[page / 64], 1ULL << (page % 64),
				  __ATOMIC_RELAXED);
		/* Several unique values per page: a copy taken between two
		 * of them, or torn, differs from the oracle. */
		for (k = 0; k < 4; k++) {
			v = rnd(&seed);
			off = (size_t)(v % (ps / 8)) * 8;
			*(volatile uint64_t *)(r->mem + page * ps + off) = tag |
									   ++n;
		}
		atomic_fetch_add_explicit(&r->batches, 1, memory_order_relaxed);
	}
	return NULL;
}

/* Every writer parked, none mid-write: memory stands still. */
static void rig_pause(struct rig *r)
{
	pthread_mutex_lock(&r->mu);
	atomic_store(&r->pause, 1);
	while (r->parked < r->nwriters)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
}

static void rig_resume(struct rig *r)
{
	pthread_mutex_lock(&r->mu);
	atomic_store(&r->pause, 0);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Pace: let the writers make some progress (dirty pages) since @since. */
static void rig_settle(struct rig *r, unsigned long since)
{
	while (atomic_load(&r->batches) - since < 8 * r->nwriters)
		sched_yield();
}

/*
 * While paused: writers go to the snapshot's pages and around them, the
 * hot part inside the snapshot's range.
 */
static void rig_focus(struct rig *r, size_t first, size_t n, uint64_t *seed)
{
	size_t margin = n > 16 ? n : 16, hot;

	r->wlo = first > margin ? first - margin : 0;
	r->whi = first + n + margin < r->npages ? first + n + margin :
						  r->npages;
	hot = (r->whi - r->wlo) / 20;
	if (!hot)
		hot = 1;
	if (hot > n)
		hot = n;
	r->hlo = first + (size_t)(rnd(seed) % (n - hot + 1));
	r->hhi = r->hlo + hot;
}

/* While paused: the pages written in [first, first + n) since the last
 * call, cleared. */
static uint64_t rig_take_written(struct rig *r, size_t first, size_t n)
{
	uint64_t cnt = 0, bit;
	size_t i;

	for (i = first; i < first + n; i++) {
		bit = 1ULL << (i % 64);
		if (r->written[i / 64] & bit) {
			cnt++;
			r->written[i / 64] &= ~bit;
		}
	}
	return cnt;
}

static void rig_setup(struct rig *r, int backend, size_t npages,
		      enum pattern pattern, uint64_t seed)
{
	memset(r, 0, sizeof(*r));
	r->backend = backend;
	r->npages = npages;
	r->pattern = pattern;
	r->nwriters = 4;
	r->seed = seed;
	r->wlo = 0;
	r->whi = npages;
	r->hlo = 0;
	r->hhi = npages / 20 ? npages / 20 : 1;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->mem = map(npages);
	r->written = calloc((npages + 63) / 64, sizeof(uint64_t));
	ck_assert_ptr_nonnull(r->written);
	/* Some pages populated, some never touched before tracking. */
	memset(r->mem, 0x5a, npages / 2 * ps);
	r->ctx = new_ctx(backend);
	ck_assert_int_eq(uffdwp_track(r->ctx, r->mem, npages * ps, 0), 0);
}

static void rig_start(struct rig *r)
{
	unsigned int i;

	for (i = 0; i < r->nwriters; i++) {
		writers[i] = (struct writer){ r, i };
		ck_assert_int_eq(pthread_create(&r->tid[i], NULL, writer_main,
						&writers[i]),
				 0);
	}
}

static void rig_stop(struct rig *r)
{
	unsigned int i;

	pthread_mutex_lock(&r->mu);
	atomic_store(&r->stop, 1);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	for (i = 0; i < r->nwriters; i++)
		pthread_join(r->tid[i], NULL);
	r->nwriters = 0;
}

static void rig_teardown(struct rig *r)
{
	if (r->nwriters)
		rig_stop(r);
	r->ctx = uffdwp_ctx_free(r->ctx);
	munmap(r->mem, r->npages * ps);
	free(r->written);
}

/* --- sinks -------------------------------------------------------------- */

/* Holds sink calls until the test opens it. */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned int entered;
	bool open;
	void *addr; /* of the first call held */
	size_t len;
};

static void gate_init(struct gate *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
}

static void gate_enter(struct gate *g, void *addr, size_t len)
{
	pthread_mutex_lock(&g->mu);
	if (!g->entered++) {
		g->addr = addr;
		g->len = len;
	}
	pthread_cond_broadcast(&g->cv);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static void gate_wait_entered(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	while (!g->entered)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->open = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

enum sink_kind {
	SINK_MEMORY, /* uffdwp_sink_memory_new(): place() */
	SINK_WRITE, /* a user sink with write() only: the staging path */
	SINK_MIXED, /* place() for every other 64-page word, write() else */
	SINK_PLACE, /* a user sink with place() only */
	SINK_KINDS,
};

static const char *const sink_names[] = { "memory", "write", "mixed", "place" };

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
	atomic_ulong places, writes, bad, in_tracked;
	/* Failure injection: the fail_at-th write() (from 0) returns
	 * fail_err; begin() returns begin_err; end(0) returns end_err. */
	long fail_at;
	int fail_err, begin_err, end_err;
	/* SINK_MIXED: place() serves the 64-page words of this parity. */
	unsigned int mix_parity;
	/* write() calls after the first sleep this long. */
	unsigned int delay_us;
	struct gate *gate;
	/* end(0) waits here (a snapshot held while it commits). */
	struct gate *end_gate;
	/* Forward to this sink (the file sink) instead of copying. */
	const struct uffdwp_sink *inner;
};

static bool us_account(struct usink *u, void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;
	size_t i;

	if (a % ps || !len || len % ps || a < u->base ||
	    a - u->base + len > u->npages * ps) {
		atomic_fetch_add(&u->bad, 1);
		return false;
	}
	for (i = 0; i < len / ps; i++)
		__atomic_fetch_add(&u->hits[(a - u->base) / ps + i], 1,
				   __ATOMIC_RELAXED);
	return true;
}

static int us_begin(void *arg, const struct uffdwp_snapshot_info *info)
{
	struct usink *u = arg;
	int ret = 0;

	atomic_fetch_add(&u->inflight, 1);
	atomic_fetch_add(&u->begins, 1);
	memcpy(&u->info, info,
	       info->sz < sizeof(u->info) ? info->sz : sizeof(u->info));
	u->base = (uintptr_t)info->addr;
	if (u->begin_err)
		ret = u->begin_err;
	else if (info->len > u->len)
		ret = -ENOSPC;
	else if (u->inner && u->inner->begin)
		ret = u->inner->begin(u->inner->arg, info);
	atomic_fetch_sub(&u->inflight, 1);
	return ret;
}

static void *us_place(void *arg, void *addr, size_t len)
{
	struct usink *u = arg;
	void *dst = NULL;

	atomic_fetch_add(&u->inflight, 1);
	/* Mixed: pages of every other 64-page word go through write(), on
	 * the sweep and the fault path alike (so the write() calls a test
	 * counts on are certain to come). */
	atomic_fetch_add(&u->places, 1);
	if (u->kind == SINK_MIXED &&
	    ((uintptr_t)addr - u->base) / ps / 64 % 2 != u->mix_parity)
		dst = NULL;
	else if (us_account(u, addr, len))
		dst = u->buf + ((uintptr_t)addr - u->base);
	atomic_fetch_sub(&u->inflight, 1);
	return dst;
}

static int us_write(void *arg, void *addr, const void *data, size_t len)
{
	struct usink *u = arg;
	long nth = (long)atomic_fetch_add(&u->writes, 1);
	uintptr_t d = (uintptr_t)data;
	int ret = 0;

	atomic_fetch_add(&u->inflight, 1);
	if (u->gate)
		gate_enter(u->gate, addr, len);
	if (u->delay_us && nth > 0)
		usleep(u->delay_us);
	if (d < u->forbid_hi && d + len > u->forbid_lo)
		atomic_fetch_add(&u->in_tracked, 1);
	if (nth == u->fail_at)
		ret = u->fail_err;
	else if (!us_account(u, addr, len))
		ret = 0; /* counted as bad */
	else if (u->inner)
		ret = u->inner->write(u->inner->arg, addr, data, len);
	else
		memcpy(u->buf + ((uintptr_t)addr - u->base), data, len);
	atomic_fetch_sub(&u->inflight, 1);
	return ret;
}

static int us_end(void *arg, int status)
{
	struct usink *u = arg;
	int ret = 0;

	atomic_fetch_add(&u->inflight, 1);
	atomic_fetch_add(&u->ends, 1);
	atomic_store(&u->end_status, status);
	if (u->end_gate && !status)
		gate_enter(u->end_gate, NULL, 0);
	if (u->inner && u->inner->end)
		ret = u->inner->end(u->inner->arg, status);
	if (!status && !ret)
		ret = u->end_err;
	atomic_fetch_sub(&u->inflight, 1);
	return ret;
}

static void usink_init(struct usink *u, enum sink_kind kind, char *buf,
		       size_t len)
{
	memset(u, 0, sizeof(*u));
	u->kind = kind;
	u->buf = buf;
	u->len = len;
	u->npages = len / ps;
	u->hits = calloc(u->npages ? u->npages : 1, 1);
	ck_assert_ptr_nonnull(u->hits);
	u->fail_at = -1;
	u->sink.sz = sizeof(u->sink);
	u->sink.arg = u;
	u->sink.begin = us_begin;
	if (kind == SINK_MIXED || kind == SINK_PLACE)
		u->sink.place = us_place;
	if (kind != SINK_PLACE)
		u->sink.write = us_write;
	u->sink.end = us_end;
}

static void usink_fini(struct usink *u)
{
	free(u->hits);
	u->hits = NULL;
}

/* Pages delivered once, and a check that none came twice. */
static size_t usink_delivered(struct usink *u)
{
	size_t i, n = 0;

	for (i = 0; i < u->npages; i++) {
		ck_assert_msg(u->hits[i] <= 1,
			      "page %zu reached the sink %u times", i,
			      u->hits[i]);
		n += u->hits[i];
	}
	return n;
}

/* --- one snapshot against the oracle ------------------------------------ */

enum opt_kind {
	OPTS_DEFAULT, /* NULL options (unless incremental) */
	OPTS_NARROW, /* one copier, four staging pages: backpressure */
	OPTS_WIDE, /* four copiers, 16 staging pages */
	OPT_KINDS,
};

static const char *const opt_names[] = { "default", "copiers=1/staging=4",
					 "copiers=4/staging=16" };

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

static void fill_opts(struct uffdwp_snapshot_opts *o, enum opt_kind k,
		      unsigned int flags)
{
	memset(o, 0, sizeof(*o));
	o->sz = sizeof(*o);
	o->flags = flags;
	if (k == OPTS_NARROW) {
		o->copiers = 1;
		o->staging_pages = 4;
	} else if (k == OPTS_WIDE) {
		o->copiers = 4;
		o->staging_pages = 16;
	}
}

static void shot_print(const struct shot *s, const char *what)
{
	printf("%s: %s pages [%zu, +%zu) %s sink, %s: wait %d, state %s, cause %s, pages %llu/%llu (expected %llu), faulted %llu, waited %llu, staging full %llu\n",
	       what, s->flags ? "incremental" : "full", s->first, s->n,
	       sink_names[s->kind], opt_names[s->opt], s->ret,
	       uffdwp_snapshot_state_name(s->st.state),
	       uffdwp_snapshot_cause_name(s->st.cause),
	       (unsigned long long)s->st.pages_done,
	       (unsigned long long)s->st.pages, (unsigned long long)s->expected,
	       (unsigned long long)s->st.pages_faulted,
	       (unsigned long long)s->st.faults_waited,
	       (unsigned long long)s->st.staging_full);
}

/*
 * Pause the writers, copy the oracle, start, resume, wait. The image lands
 * in s->dst; a full snapshot's destination is poisoned first so a page
 * never delivered shows.
 */
static void shot_take(struct rig *r, struct shot *s, uint64_t *seed)
{
	struct uffdwp_snapshot_opts o;
	struct uffdwp_sink *msink = NULL;
	const struct uffdwp_sink *sink;
	struct uffdwp_snapshot *snap = NULL;
	char *addr = r->mem + s->first * ps;
	size_t len = s->n * ps;
	unsigned long since;
	int ret;

	fill_opts(&o, s->opt, s->flags);
	if (s->kind == SINK_MEMORY) {
		ck_assert_int_eq(uffdwp_sink_memory_new(s->dst, len, &msink),
				 0);
		sink = msink;
	} else {
		usink_init(&s->us, s->kind, s->dst, len);
		s->us.mix_parity = (unsigned int)(rnd(seed) % 2);
		s->us.forbid_lo = (uintptr_t)r->mem;
		s->us.forbid_hi = (uintptr_t)r->mem + r->npages * ps;
		sink = &s->us.sink;
	}
	if (!(s->flags & UFFDWP_SNAPSHOT_INCREMENTAL))
		memset(s->dst, POISON, len);

	rig_pause(r);
	rig_focus(r, s->first, s->n, seed);
	/* Every snapshot consumes its range's dirty state. */
	s->expected = rig_take_written(r, s->first, s->n);
	if (!(s->flags & UFFDWP_SNAPSHOT_INCREMENTAL))
		s->expected = s->n;
	memcpy(s->oracle, addr, len);
	ret = uffdwp_snapshot_start(
		r->ctx, addr, len, sink,
		s->opt == OPTS_DEFAULT && !s->flags ? NULL : &o, &snap);
	since = atomic_load(&r->batches);
	rig_resume(r);
	ck_assert_msg(ret == 0, "snapshot_start of [%zu, +%zu): %d (%s)",
		      s->first, s->n, ret, strerror(-ret));

	s->ret = uffdwp_snapshot_wait(snap, -1);
	memset(&s->st, 0, sizeof(s->st));
	s->st.sz = sizeof(s->st);
	ck_assert_int_eq(uffdwp_snapshot_status(snap, &s->st), 0);
	uffdwp_snapshot_free(snap);
	uffdwp_sink_free(msink);
	s->bad = first_diff(s->dst, s->oracle, s->n);
	rig_settle(r, since);
}

/* Everything a successful snapshot promises. */
static void shot_check(struct rig *r, struct shot *s, bool count_known)
{
	char msg[256];
	size_t delivered;

	if (s->ret || s->st.state != UFFDWP_SNAPSHOT_DONE || s->bad >= 0 ||
	    (count_known && s->st.pages != s->expected))
		shot_print(s, uffdwp_backend_name(r->backend));
	ck_assert_msg(s->ret == 0, "snapshot_wait: %d (%s), cause %s", s->ret,
		      strerror(-s->ret),
		      uffdwp_snapshot_cause_name(s->st.cause));
	ck_assert_int_eq(s->st.state, UFFDWP_SNAPSHOT_DONE);
	ck_assert_int_eq(s->st.error, 0);
	ck_assert_int_eq(s->st.cause, UFFDWP_CAUSE_NONE);
	ck_assert_int_eq(s->st.consistency, UFFDWP_CONSISTENCY_EXACT);
	ck_assert_uint_eq(s->st.pages_done, s->st.pages);
	if (count_known) {
		ck_assert_msg(
			s->st.pages >= s->expected,
			"incremental snapshot left out written pages: %llu delivered, %llu written",
			(unsigned long long)s->st.pages,
			(unsigned long long)s->expected);
		ck_assert_msg(
			s->st.pages == s->expected,
			"%s snapshot reports %llu pages, %llu were written",
			s->flags ? "incremental" : "full",
			(unsigned long long)s->st.pages,
			(unsigned long long)s->expected);
	}
	if (s->kind != SINK_MEMORY) {
		ck_assert_int_eq(atomic_load(&s->us.begins), 1);
		ck_assert_int_eq(atomic_load(&s->us.ends), 1);
		ck_assert_int_eq(atomic_load(&s->us.end_status), 0);
		ck_assert_uint_eq(atomic_load(&s->us.bad), 0);
		ck_assert_uint_eq(atomic_load(&s->us.in_tracked), 0);
		ck_assert_int_eq(atomic_load(&s->us.inflight), 0);
		ck_assert_ptr_eq(s->us.info.addr, r->mem + s->first * ps);
		ck_assert_uint_eq(s->us.info.len, s->n * ps);
		ck_assert_uint_eq(s->us.info.page_size, ps);
		ck_assert_uint_eq(s->us.info.pages, s->st.pages);
		ck_assert_uint_eq(s->us.info.flags, s->flags);
		delivered = usink_delivered(&s->us);
		ck_assert_uint_eq(delivered, s->st.pages);
		if (!s->flags)
			ck_assert_uint_eq(delivered, s->n);
		usink_fini(&s->us);
	}
	if (s->bad >= 0) {
		describe_diff(msg, sizeof(msg), s->dst, s->oracle, s->bad);
		ck_abort_msg(
			"%s: %s snapshot of pages [%zu, +%zu) (%s sink, %s) differs from the oracle at %s",
			uffdwp_backend_name(r->backend),
			s->flags ? "incremental" : "full", s->first, s->n,
			sink_names[s->kind], opt_names[s->opt], msg);
	}
}

/* --- 1. the snapshot oracle --------------------------------------------- */

struct tally {
	unsigned long shots, incremental, pages, faulted, waited, staging_full;
	unsigned long by_kind[SINK_KINDS];
};

static void tally_add(struct tally *t, const struct shot *s)
{
	t->shots++;
	t->incremental += s->flags != 0;
	t->pages += s->st.pages;
	t->faulted += s->st.pages_faulted;
	t->waited += s->st.faults_waited;
	t->staging_full += s->st.staging_full;
	t->by_kind[s->kind]++;
}

static void tally_print(const struct tally *t, const char *what, int backend)
{
	printf("%s %s: %lu snapshots (%lu incremental; memory/write/mixed/place %lu/%lu/%lu/%lu), %lu pages, %lu copied on faults, %lu faults waited, staging full %lu times\n",
	       uffdwp_backend_name(backend), what, t->shots, t->incremental,
	       t->by_kind[0], t->by_kind[1], t->by_kind[2], t->by_kind[3],
	       t->pages, t->faulted, t->waited, t->staging_full);
}

/*
 * @count snapshots of sizes from @sizes (0: random in [lo, hi] pages), at
 * random offsets, rotating sink kinds, options and full/incremental, onto
 * one image of the whole range.
 */
static void oracle_series(int backend, enum pattern pattern, size_t tracked,
			  const size_t *sizes, size_t nsizes, size_t lo,
			  size_t hi, unsigned int count, struct tally *t)
{
	uint64_t seed = test_seed(uffdwp_backend_name(backend));
	struct rig r;
	struct shot s;
	char *img, *oracle;
	unsigned int i;
	size_t n;

	rig_setup(&r, backend, tracked, pattern, seed);
	img = map(tracked);
	oracle = map(tracked);
	memcpy(img, r.mem, tracked * ps); /* the image at the track */
	rig_start(&r);
	for (i = 0; i < count; i++) {
		n = sizes ? sizes[rnd(&seed) % nsizes] : 0;
		if (!n)
			n = lo + (size_t)(rnd(&seed) % (hi - lo + 1));
		if (n > tracked)
			n = tracked;
		memset(&s, 0, sizeof(s));
		s.n = n;
		s.first = (size_t)(rnd(&seed) % (tracked - n + 1));
		s.kind = (enum sink_kind)(i % SINK_KINDS);
		s.opt = (enum opt_kind)(i / SINK_KINDS % OPT_KINDS);
		s.flags = (i + i / SINK_KINDS) % 2 ?
				  UFFDWP_SNAPSHOT_INCREMENTAL :
				  0;
		s.oracle = oracle;
		s.dst = img + s.first * ps;
		shot_take(&r, &s, &seed);
		shot_check(&r, &s, true);
		tally_add(t, &s);
	}
	rig_stop(&r);
	munmap(img, tracked * ps);
	munmap(oracle, tracked * ps);
	rig_teardown(&r);
}

static const size_t small_sizes[] = { 1, 2, 3, 64, 257, 1024, 1, 2, 3, 64 };

START_TEST(oracle_small_random)
{
	struct tally t = { 0 };

	NEED_BACKEND(backends[_i]);
	oracle_series(backends[_i], RANDOM, 1024, small_sizes,
		      ARRAY_LEN(small_sizes), 0, 0,
		      (unsigned int)test_scaled(240, 220), &t);
	tally_print(&t, "small, random", backends[_i]);
}
END_TEST

START_TEST(oracle_small_hotspot)
{
	struct tally t = { 0 };

	NEED_BACKEND(backends[_i]);
	oracle_series(backends[_i], HOTSPOT, 1024, small_sizes,
		      ARRAY_LEN(small_sizes), 0, 0,
		      (unsigned int)test_scaled(240, 220), &t);
	tally_print(&t, "small, hot spot", backends[_i]);
	/* Writers run into the snapshots' pages: the fault path must have
	 * copied some, or this oracle tested only the sweep. */
	ck_assert_uint_gt(t.faulted, 0);
}
END_TEST

/* 4 to 16 MiB. */
START_TEST(oracle_medium)
{
	struct tally t = { 0 };
	size_t pages = 16 * MIB / ps;
	unsigned int n = (unsigned int)test_scaled(24, 6);

	NEED_BACKEND(backends[_i]);
	oracle_series(backends[_i], RANDOM, pages, NULL, 0, pages / 4, pages, n,
		      &t);
	oracle_series(backends[_i], HOTSPOT, pages, NULL, 0, pages / 4, pages,
		      n, &t);
	tally_print(&t, "4-16 MiB", backends[_i]);
}
END_TEST

/*
 * 64 and 256 MiB, and small ones inside the big range, full and
 * incremental, each sink and option kind.
 */
START_TEST(oracle_large)
{
	int b = backends[_i];
	uint64_t seed = test_seed(uffdwp_backend_name(b));
	size_t tracked = 256 * MIB / ps, big = 64 * MIB / ps;
	const struct {
		size_t n; /* 0: the whole range */
		enum sink_kind kind;
		enum opt_kind opt;
		unsigned int flags;
		enum pattern pattern;
	} plan[] = {
		{ 0, SINK_MEMORY, OPTS_DEFAULT, 0, RANDOM },
		{ big, SINK_WRITE, OPTS_NARROW, 0, RANDOM },
		{ 1, SINK_MEMORY, OPTS_DEFAULT, UFFDWP_SNAPSHOT_INCREMENTAL,
		  HOTSPOT },
		{ 257, SINK_MIXED, OPTS_DEFAULT, UFFDWP_SNAPSHOT_INCREMENTAL,
		  HOTSPOT },
		{ 0, SINK_WRITE, OPTS_DEFAULT, UFFDWP_SNAPSHOT_INCREMENTAL,
		  RANDOM },
		{ big, SINK_MEMORY, OPTS_WIDE, UFFDWP_SNAPSHOT_INCREMENTAL,
		  HOTSPOT },
		{ 0, SINK_PLACE, OPTS_WIDE, 0, HOTSPOT },
		{ 0, SINK_WRITE, OPTS_NARROW, 0, RANDOM },
		{ 1024, SINK_MIXED, OPTS_NARROW, 0, HOTSPOT },
		{ 0, SINK_MEMORY, OPTS_DEFAULT, UFFDWP_SNAPSHOT_INCREMENTAL,
		  HOTSPOT },
	};
	struct tally t = { 0 };
	struct timespec t0, t1;
	struct rig r;
	struct shot s;
	char *img, *oracle;
	size_t i;

	NEED_BACKEND(b);
	rig_setup(&r, b, tracked, RANDOM, seed);
	img = map(tracked);
	oracle = map(tracked);
	memcpy(img, r.mem, tracked * ps);
	rig_start(&r);
	for (i = 0; i < ARRAY_LEN(plan); i++) {
		memset(&s, 0, sizeof(s));
		s.n = plan[i].n ? plan[i].n : tracked;
		s.first = (size_t)(rnd(&seed) % (tracked - s.n + 1));
		if (plan[i].n == 1 && i % 2 == 0)
			s.first = tracked - 1; /* the very last page */
		s.kind = plan[i].kind;
		s.opt = plan[i].opt;
		s.flags = plan[i].flags;
		s.oracle = oracle;
		s.dst = img + s.first * ps;
		rig_pause(&r);
		r.pattern = plan[i].pattern;
		rig_resume(&r);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		shot_take(&r, &s, &seed);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		shot_check(&r, &s, true);
		tally_add(&t, &s);
		if (s.n * ps >= 64 * MIB)
			printf("%s: %zu MiB %s (%s sink, %s): %.0f ms with oracle and check, start %.1f ms, %.1f ms from the instant\n",
			       uffdwp_backend_name(b), s.n * ps / MIB,
			       s.flags ? "incremental" : "full",
			       sink_names[s.kind], opt_names[s.opt],
			       (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
				       (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
			       (double)s.st.start_ns / 1e6,
			       (double)s.st.elapsed_ns / 1e6);
	}
	tally_print(&t, "large", b);
	rig_stop(&r);
	munmap(img, tracked * ps);
	munmap(oracle, tracked * ps);
	rig_teardown(&r);
}
END_TEST

/* --- 2. snapshots interleaved with collects ----------------------------- */

/*
 * The shadow is what a pre-copy consumer holds: collect reports copied from
 * memory, and each snapshot's image. A page's latest copy wins: a collect
 * callback stamps each page it copies (under mu); a snapshot's page goes
 * into the shadow only if no collect copied the page after the snapshot's
 * instant. That is decided with S1, the stamp taken right after start
 * returned, writers still parked: a copy stamped later was made after the
 * instant (newer); one stamped earlier was made before the writers resumed,
 * so holds the page as it was at the instant or before (older or equal).
 */
struct interleave {
	struct rig *r;
	char *shadow;
	uint64_t *stamp;
	uint64_t seq;
	pthread_mutex_t mu;
	atomic_int stop;
	long err;
	unsigned long collects, reported;
};

static int interleave_run(void *arg, void *addr, size_t len)
{
	struct interleave *in = arg;
	size_t off = (size_t)((char *)addr - in->r->mem), i;

	if ((uintptr_t)addr % ps || off + len > in->r->npages * ps) {
		in->err = -ERANGE;
		return -ERANGE;
	}
	pthread_mutex_lock(&in->mu);
	memcpy(in->shadow + off, addr, len);
	for (i = off / ps; i < (off + len) / ps; i++)
		in->stamp[i] = ++in->seq;
	in->reported += len / ps;
	pthread_mutex_unlock(&in->mu);
	return 0;
}

static void *collector_main(void *arg)
{
	struct interleave *in = arg;
	long n;

	while (!atomic_load(&in->stop)) {
		n = uffdwp_collect(in->r->ctx, interleave_run, in);
		if (n < 0) {
			in->err = n;
			break;
		}
		in->collects++;
		usleep(100);
	}
	return NULL;
}

static void interleaved(int backend, enum pattern pattern)
{
	uint64_t seed = test_seed(uffdwp_backend_name(backend));
	size_t tracked = 2048, i, n, first, applied = 0;
	const size_t sizes[] = { 1, 3, 64, 257, 2048, 0 };
	unsigned int k, count = (unsigned int)test_scaled(80, 24);
	struct uffdwp_snapshot_opts o;
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *msink;
	struct uffdwp_snapshot_status st;
	struct interleave in = { 0 };
	const struct uffdwp_sink *sink;
	struct usink us;
	enum sink_kind kind;
	char *buf, *oracle, msg[256];
	pthread_t coll;
	struct rig r;
	uint64_t s1;
	long bad;
	int ret;

	NEED_BACKEND(backend);
	rig_setup(&r, backend, tracked, pattern, seed);
	in.r = &r;
	in.shadow = map(tracked);
	in.stamp = calloc(tracked, sizeof(uint64_t));
	ck_assert_ptr_nonnull(in.stamp);
	pthread_mutex_init(&in.mu, NULL);
	memcpy(in.shadow, r.mem, tracked * ps);
	buf = map(tracked);
	oracle = map(tracked);
	rig_start(&r);
	ck_assert_int_eq(pthread_create(&coll, NULL, collector_main, &in), 0);
	for (k = 0; k < count; k++) {
		n = sizes[rnd(&seed) % ARRAY_LEN(sizes)];
		if (!n)
			n = 1 + (size_t)(rnd(&seed) % tracked);
		first = (size_t)(rnd(&seed) % (tracked - n + 1));
		/* Full: memory, write or mixed; incremental: user sinks only
		 * (which pages came must be known). */
		fill_opts(&o, (enum opt_kind)(k / 2 % OPT_KINDS),
			  k % 2 ? UFFDWP_SNAPSHOT_INCREMENTAL : 0);
		kind = (enum sink_kind)(k / 2 % 3);
		if (o.flags && kind == SINK_MEMORY)
			kind = SINK_PLACE;
		msink = NULL;
		if (kind == SINK_MEMORY) {
			ck_assert_int_eq(
				uffdwp_sink_memory_new(buf, n * ps, &msink), 0);
			sink = msink;
		} else {
			usink_init(&us, kind, buf, n * ps);
			sink = &us.sink;
		}
		memset(buf, POISON, n * ps);

		rig_pause(&r);
		rig_focus(&r, first, n, &seed);
		memcpy(oracle, r.mem + first * ps, n * ps);
		ret = uffdwp_snapshot_start(r.ctx, r.mem + first * ps, n * ps,
					    sink, &o, &snap);
		pthread_mutex_lock(&in.mu);
		s1 = in.seq;
		pthread_mutex_unlock(&in.mu);
		rig_resume(&r);
		ck_assert_msg(ret == 0, "snapshot_start: %d", ret);
		ret = uffdwp_snapshot_wait(snap, -1);
		st.sz = sizeof(st);
		ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
		uffdwp_snapshot_free(snap);
		ck_assert_msg(ret == 0, "snapshot %u: wait %d, cause %s", k,
			      ret, uffdwp_snapshot_cause_name(st.cause));
		ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_EXACT);
		ck_assert_uint_eq(st.pages_done, st.pages);

		/* The image against the oracle, then into the shadow. */
		pthread_mutex_lock(&in.mu);
		for (i = 0; i < n; i++) {
			if (kind != SINK_MEMORY && !us.hits[i])
				continue;
			if (memcmp(buf + i * ps, oracle + i * ps, ps)) {
				pthread_mutex_unlock(&in.mu);
				describe_diff(msg, sizeof(msg), buf, oracle,
					      (long)i);
				ck_abort_msg(
					"%s: snapshot %u of [%zu, +%zu) with collects running differs from the oracle at %s",
					uffdwp_backend_name(backend), k, first,
					n, msg);
			}
			if (in.stamp[first + i] <= s1) {
				memcpy(in.shadow + (first + i) * ps,
				       buf + i * ps, ps);
				applied++;
			}
		}
		pthread_mutex_unlock(&in.mu);
		if (kind == SINK_MEMORY) {
			ck_assert_uint_eq(st.pages, n);
		} else {
			ck_assert_uint_eq(usink_delivered(&us), st.pages);
			ck_assert_int_eq(atomic_load(&us.ends), 1);
			if (!o.flags)
				ck_assert_uint_eq(st.pages, n);
			usink_fini(&us);
		}
		uffdwp_sink_free(msink);
	}
	rig_stop(&r);
	atomic_store(&in.stop, 1);
	pthread_join(coll, NULL);
	ck_assert_msg(in.err == 0, "collect failed: %ld", in.err);
	ck_assert_int_ge(uffdwp_collect(r.ctx, interleave_run, &in), 0);
	ck_assert_int_eq(in.err, 0);
	bad = first_diff(in.shadow, r.mem, tracked);
	printf("%s pattern %d: %u snapshots, %lu collects reported %lu pages, %zu snapshot pages applied\n",
	       uffdwp_backend_name(backend), pattern, count, in.collects,
	       in.reported, applied);
	if (bad >= 0) {
		describe_diff(msg, sizeof(msg), in.shadow, r.mem, bad);
		ck_abort_msg(
			"%s: shadow differs from memory after the final collect (a dirty page was lost) at %s",
			uffdwp_backend_name(backend), msg);
	}
	ck_assert_uint_gt(in.collects, 0);
	munmap(buf, tracked * ps);
	munmap(oracle, tracked * ps);
	munmap(in.shadow, tracked * ps);
	free(in.stamp);
	rig_teardown(&r);
}

START_TEST(interleaved_random)
{
	interleaved(backends[_i], RANDOM);
}
END_TEST

START_TEST(interleaved_hotspot)
{
	interleaved(backends[_i], HOTSPOT);
}
END_TEST

/* --- 3. sinks that fail, and image files -------------------------------- */

static void expect_failed(struct uffdwp_snapshot *snap, int err, int cause)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };

	ck_assert_int_eq(uffdwp_snapshot_wait(snap, -1), err);
	ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_FAILED);
	ck_assert_int_eq(st.error, err);
	ck_assert_msg(st.cause == cause, "cause %s, expected %s",
		      uffdwp_snapshot_cause_name(st.cause),
		      uffdwp_snapshot_cause_name(cause));
	ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_NONE);
	/* Waiting again gives the same. */
	ck_assert_int_eq(uffdwp_snapshot_wait(snap, 0), err);
}

/* Start a snapshot of the rig's pages [first, first + n) with writers
 * parked at the instant. */
static int rig_start_snapshot(struct rig *r, size_t first, size_t n,
			      const struct uffdwp_sink *sink,
			      const struct uffdwp_snapshot_opts *o,
			      struct uffdwp_snapshot **snap)
{
	int ret;

	rig_pause(r);
	rig_take_written(r, first, n);
	ret = uffdwp_snapshot_start(r->ctx, r->mem + first * ps, n * ps, sink,
				    o, snap);
	rig_resume(r);
	return ret;
}

/* A full snapshot of [first, +n) through the memory sink, checked. */
static void rig_good_shot(struct rig *r, size_t first, size_t n, uint64_t *seed)
{
	struct shot s = { .first = first, .n = n, .kind = SINK_MEMORY };

	s.oracle = malloc(n * ps);
	s.dst = malloc(n * ps);
	ck_assert_ptr_nonnull(s.oracle);
	ck_assert_ptr_nonnull(s.dst);
	shot_take(r, &s, seed);
	shot_check(r, &s, true);
	free(s.oracle);
	free(s.dst);
}

/* With writers parked: drain, write three pages, collect exactly them. */
static void rig_check_tracking(struct rig *r)
{
	const size_t pick[] = { 0, r->npages / 2 + 1, r->npages - 1 };
	size_t got = 0, i;

	rig_pause(r);
	ck_assert_int_ge(uffdwp_collect(r->ctx, count_run, &got), 0);
	got = 0;
	for (i = 0; i < ARRAY_LEN(pick); i++)
		r->mem[pick[i] * ps + 8] ^= 1;
	ck_assert_int_eq(uffdwp_collect(r->ctx, count_run, &got),
			 (long)ARRAY_LEN(pick));
	ck_assert_uint_eq(got, ARRAY_LEN(pick));
	rig_resume(r);
}

START_TEST(sink_error_at_random_page)
{
	int b = backends[_i];
	uint64_t seed = test_seed(uffdwp_backend_name(b));
	unsigned int it, count = (unsigned int)test_scaled(24, 8);
	struct uffdwp_snapshot_opts o;
	struct uffdwp_snapshot *snap;
	size_t npages = 1024;
	struct usink us;
	struct rig r;
	char *buf;

	NEED_BACKEND(b);
	rig_setup(&r, b, npages, HOTSPOT, seed);
	buf = map(npages);
	rig_start(&r);
	for (it = 0; it < count; it++) {
		/* Each of the 16 words of 64 pages gives at least one
		 * write() call (a sweep run, or a staged page) for the write
		 * sink; 8 of them for the mixed one: the failing call, among
		 * the first 8, always comes. */
		usink_init(&us, it % 2 ? SINK_WRITE : SINK_MIXED, buf,
			   npages * ps);
		us.fail_at = (long)(rnd(&seed) % 8);
		us.fail_err = it % 3 ? -EIO : -ENOSPC;
		fill_opts(&o, (enum opt_kind)(it % OPT_KINDS), 0);
		ck_assert_int_eq(rig_start_snapshot(&r, 0, npages, &us.sink, &o,
						    &snap),
				 0);
		expect_failed(snap, us.fail_err, UFFDWP_CAUSE_SINK);
		uffdwp_snapshot_free(snap);
		ck_assert_int_eq(atomic_load(&us.begins), 1);
		ck_assert_int_eq(atomic_load(&us.ends), 1);
		ck_assert_int_eq(atomic_load(&us.end_status), us.fail_err);
		ck_assert_int_eq(atomic_load(&us.inflight), 0);
		usink_delivered(&us); /* never twice, even failing */
		usink_fini(&us);
		/* The range can be snapshotted again, exactly. */
		rig_good_shot(&r, it % 2 ? 0 : (size_t)(rnd(&seed) % 512),
			      it % 2 ? npages : 257, &seed);
	}
	rig_check_tracking(&r);
	rig_stop(&r);
	munmap(buf, npages * ps);
	rig_teardown(&r);
}
END_TEST

START_TEST(sink_begin_fails)
{
	int b = backends[_i];
	uint64_t seed = test_seed(uffdwp_backend_name(b));
	struct uffdwp_snapshot *snap = (struct uffdwp_snapshot *)&seed;
	struct usink us;
	struct rig r;
	char *buf;

	NEED_BACKEND(b);
	rig_setup(&r, b, 256, HOTSPOT, seed);
	buf = map(256);
	rig_start(&r);
	usink_init(&us, SINK_WRITE, buf, 256 * ps);
	us.begin_err = -EIO;
	ck_assert_int_eq(rig_start_snapshot(&r, 0, 256, &us.sink, NULL, &snap),
			 -EIO);
	ck_assert_ptr_eq(snap, (struct uffdwp_snapshot *)&seed);
	ck_assert_int_eq(atomic_load(&us.begins), 1);
	ck_assert_int_eq(atomic_load(&us.ends), 0);
	ck_assert_uint_eq(atomic_load(&us.writes), 0);
	usink_fini(&us);
	/* Not left busy, and nothing lost. */
	rig_good_shot(&r, 0, 256, &seed);
	rig_good_shot(&r, 17, 3, &seed);
	rig_check_tracking(&r);
	rig_stop(&r);
	munmap(buf, 256 * ps);
	rig_teardown(&r);
}
END_TEST

START_TEST(sink_end_fails)
{
	int b = backends[_i];
	uint64_t seed = test_seed(uffdwp_backend_name(b));
	struct uffdwp_snapshot *snap;
	struct usink us;
	struct rig r;
	char *buf;

	NEED_BACKEND(b);
	rig_setup(&r, b, 256, HOTSPOT, seed);
	buf = map(256);
	rig_start(&r);
	usink_init(&us, SINK_MIXED, buf, 256 * ps);
	us.end_err = -ENOSPC;
	ck_assert_int_eq(rig_start_snapshot(&r, 0, 256, &us.sink, NULL, &snap),
			 0);
	expect_failed(snap, -ENOSPC, UFFDWP_CAUSE_SINK);
	uffdwp_snapshot_free(snap);
	ck_assert_int_eq(atomic_load(&us.ends), 1);
	ck_assert_int_eq(atomic_load(&us.end_status), 0);
	ck_assert_uint_eq(usink_delivered(&us), 256);
	usink_fini(&us);
	rig_good_shot(&r, 0, 256, &seed);
	rig_check_tracking(&r);
	rig_stop(&r);
	munmap(buf, 256 * ps);
	rig_teardown(&r);
}
END_TEST

/*
 * A failed snapshot gives the dirty state it took back: an incremental
 * chain with failures in between stays exact, and a collect right after a
 * failure reports every page written since the last good consumption.
 */
START_TEST(failed_snapshot_keeps_chain)
{
	int b = backends[_i];
	uint64_t seed = test_seed(uffdwp_backend_name(b));
	unsigned int it, count = (unsigned int)test_scaled(16, 6);
	size_t npages = 1024, words = npages / 64, i, first, n, got;
	struct uffdwp_snapshot_opts o;
	struct uffdwp_snapshot *snap;
	uint64_t *saved, written;
	char *img, *oracle, *scratch;
	struct usink us;
	struct rig r;
	struct shot s;

	NEED_BACKEND(b);
	rig_setup(&r, b, npages, HOTSPOT, seed);
	img = map(npages);
	oracle = map(npages);
	scratch = map(npages);
	saved = calloc(words, sizeof(uint64_t));
	ck_assert_ptr_nonnull(saved);
	memcpy(img, r.mem, npages * ps);
	rig_start(&r);
	for (it = 0; it < count; it++) {
		/* A failing snapshot, full or incremental, of a random part:
		 * its first write() fails (an incremental one has pages, so
		 * that call comes). */
		n = 1 + (size_t)(rnd(&seed) % npages);
		first = (size_t)(rnd(&seed) % (npages - n + 1));
		usink_init(&us, SINK_WRITE, scratch, npages * ps);
		us.fail_at = 0;
		us.fail_err = -EIO;
		rig_pause(&r);
		memcpy(saved, r.written, words * sizeof(uint64_t));
		written = rig_take_written(&r, first, n);
		fill_opts(&o, (enum opt_kind)(it % OPT_KINDS),
			  it % 2 && written ? UFFDWP_SNAPSHOT_INCREMENTAL : 0);
		ck_assert_int_eq(
			uffdwp_snapshot_start(r.ctx, r.mem + first * ps, n * ps,
					      &us.sink, &o, &snap),
			0);
		rig_resume(&r);
		expect_failed(snap, -EIO, UFFDWP_CAUSE_SINK);
		uffdwp_snapshot_free(snap);
		usink_fini(&us);
		/* What it took is dirty again: so for the test too. */
		for (i = 0; i < words; i++)
			__atomic_fetch_or(&r.written[i], saved[i],
					  __ATOMIC_RELAXED);

		/* The chain goes on, exact, with the pages given back. */
		memset(&s, 0, sizeof(s));
		s.n = it % 3 ? npages : 1 + (size_t)(rnd(&seed) % npages);
		s.first = (size_t)(rnd(&seed) % (npages - s.n + 1));
		s.kind = (enum sink_kind)(it % SINK_KINDS);
		s.opt = (enum opt_kind)(it / 2 % OPT_KINDS);
		s.flags = UFFDWP_SNAPSHOT_INCREMENTAL;
		s.oracle = oracle;
		s.dst = img + s.first * ps;
		shot_take(&r, &s, &seed);
		shot_check(&r, &s, true);
	}

	/* Writers parked: a failed snapshot, then a collect, which must
	 * report exactly the pages written since the last consumption. */
	rig_pause(&r);
	written = rig_take_written(&r, 0, npages);
	usink_init(&us, SINK_WRITE, scratch, npages * ps);
	us.fail_at = 0;
	us.fail_err = -ENOSPC;
	ck_assert_int_eq(uffdwp_snapshot_start(r.ctx, r.mem, npages * ps,
					       &us.sink, NULL, &snap),
			 0);
	expect_failed(snap, -ENOSPC, UFFDWP_CAUSE_SINK);
	uffdwp_snapshot_free(snap);
	usink_fini(&us);
	got = 0;
	ck_assert_int_eq(uffdwp_collect(r.ctx, count_run, &got), (long)written);
	ck_assert_uint_eq(got, written);
	rig_resume(&r);
	rig_stop(&r);
	free(saved);
	munmap(img, npages * ps);
	munmap(oracle, npages * ps);
	munmap(scratch, npages * ps);
	rig_teardown(&r);
}
END_TEST

/* The names in @dir, sorted, space-separated (dot files included). */
static void dir_list(const char *dir, char *out, size_t sz)
{
	struct dirent **ents;
	int n, i;

	out[0] = '\0';
	n = scandir(dir, &ents, NULL, alphasort);
	ck_assert_int_ge(n, 0);
	for (i = 0; i < n; i++) {
		if (strcmp(ents[i]->d_name, ".") &&
		    strcmp(ents[i]->d_name, ".."))
			snprintf(out + strlen(out), sz - strlen(out), "%s%s",
				 out[0] ? " " : "", ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
}

static void dir_remove(const char *dir)
{
	struct dirent **ents;
	char path[512];
	int n, i;

	n = scandir(dir, &ents, NULL, alphasort);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		if (strcmp(ents[i]->d_name, ".") &&
		    strcmp(ents[i]->d_name, ".."))
			unlink(path);
		free(ents[i]);
	}
	if (n >= 0)
		free(ents);
	rmdir(dir);
}

/* Open @path, check its header, apply it onto @buf (its range's image). */
static void image_check_apply(const char *path, const void *addr, size_t len,
			      unsigned int flags, uint64_t pages, char *buf)
{
	struct uffdwp_image_info info = { .sz = sizeof(info) };
	struct uffdwp_image *img = NULL;
	const void *data;
	uint64_t a;
	int ret;

	ret = uffdwp_image_open(path, &img);
	ck_assert_msg(ret == 0, "uffdwp_image_open(%s): %d (%s)", path, ret,
		      strerror(-ret));
	ck_assert_int_eq(uffdwp_image_info(img, &info), 0);
	ck_assert_uint_eq(info.version, 1);
	ck_assert_uint_eq(info.flags, flags);
	ck_assert_uint_eq(info.addr, (uintptr_t)addr);
	ck_assert_uint_eq(info.len, len);
	ck_assert_uint_eq(info.page_size, ps);
	ck_assert_uint_eq(info.pages, pages);
	ck_assert_uint_gt(info.instant_realtime_ns, 0);
	if (pages) {
		ck_assert_int_eq(uffdwp_image_page(img, pages - 1, &a, &data),
				 0);
		ck_assert_uint_ge(a, (uintptr_t)addr);
		ck_assert_uint_lt(a, (uintptr_t)addr + len);
		ck_assert_uint_eq(a % ps, 0);
	}
	ck_assert_int_eq(uffdwp_image_page(img, pages, &a, &data), -ERANGE);
	ck_assert_int_eq(uffdwp_image_apply(img, buf, len), (long)pages);
	uffdwp_image_close(img);
}

/* Copies of the image at @path, truncated and corrupted, are refused. */
static void image_damaged(const char *path, const char *dir)
{
	struct uffdwp_image *img = NULL;
	char copy[160];
	struct stat sb;
	char *data;
	int fd, ret;

	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	data = malloc((size_t)sb.st_size);
	ck_assert_ptr_nonnull(data);
	ck_assert_int_eq(read(fd, data, (size_t)sb.st_size), sb.st_size);
	close(fd);
	snprintf(copy, sizeof(copy), "%s/damaged", dir);

	/* Cut in the middle of the data. */
	fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, (size_t)sb.st_size / 2),
			 sb.st_size / 2);
	close(fd);
	ret = uffdwp_image_open(copy, &img);
	ck_assert_msg(ret == -ENODATA, "truncated image: %d", ret);
	ck_assert_ptr_null(img);

	/* One bit of the last page flipped. */
	data[sb.st_size - 100] ^= 0x10;
	fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, (size_t)sb.st_size), sb.st_size);
	close(fd);
	ret = uffdwp_image_open(copy, &img);
	ck_assert_msg(ret == -EBADMSG, "corrupted image: %d", ret);
	ck_assert_ptr_null(img);
	unlink(copy);
	free(data);
}

/* A file snapshot of [first, +n) with writers running; its oracle. */
static void file_shot(struct rig *r, const char *path, unsigned int sflags,
		      size_t first, size_t n, unsigned int flags, char *oracle,
		      uint64_t *pages)
{
	struct uffdwp_snapshot_opts o;
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *sink;
	uint64_t written;
	int ret;

	fill_opts(&o, OPTS_DEFAULT, flags);
	ck_assert_int_eq(uffdwp_sink_file_new(path, sflags, &sink), 0);
	rig_pause(r);
	written = rig_take_written(r, first, n);
	memcpy(oracle, r->mem + first * ps, n * ps);
	ret = uffdwp_snapshot_start(r->ctx, r->mem + first * ps, n * ps, sink,
				    &o, &snap);
	rig_resume(r);
	ck_assert_int_eq(ret, 0);
	ret = uffdwp_snapshot_wait(snap, -1);
	ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
	ck_assert_msg(ret == 0, "file snapshot to %s: %d (%s), cause %s", path,
		      ret, strerror(-ret),
		      uffdwp_snapshot_cause_name(st.cause));
	ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_EXACT);
	ck_assert_uint_eq(st.pages,
			  flags & UFFDWP_SNAPSHOT_INCREMENTAL ? written : n);
	*pages = st.pages;
	uffdwp_snapshot_free(snap);
	uffdwp_sink_free(sink);
}

static void expect_equal(const char *what, const char *got, const char *want,
			 size_t n)
{
	long bad = first_diff(got, want, n);
	char msg[256];

	if (bad < 0)
		return;
	describe_diff(msg, sizeof(msg), got, want, bad);
	ck_abort_msg("%s differs from the oracle at %s", what, msg);
}

/* Base image, incremental delta, sub-range: each equals its oracle. */
START_TEST(file_roundtrip)
{
	int b = backends[_i];
	uint64_t seed = test_seed(uffdwp_backend_name(b)), pages;
	char dir[] = "/tmp/uffdwp-snap-XXXXXX", path[128], names[256];
	size_t npages = 2048, first = 700, n = 300;
	char *oracle, *buf;
	struct rig r;

	NEED_BACKEND(b);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	rig_setup(&r, b, npages, HOTSPOT, seed);
	oracle = map(npages);
	buf = map(npages);
	rig_start(&r);

	/* Durable (fsync'ed) base image. */
	snprintf(path, sizeof(path), "%s/base.img", dir);
	file_shot(&r, path, 0, 0, npages, 0, oracle, &pages);
	image_check_apply(path, r.mem, npages * ps, 0, npages, buf);
	expect_equal("base image", buf, oracle, npages);

	/* A delta applied onto the base gives the range at its instant. */
	snprintf(path, sizeof(path), "%s/delta.img", dir);
	file_shot(&r, path, UFFDWP_FILE_SINK_NO_SYNC, 0, npages,
		  UFFDWP_SNAPSHOT_INCREMENTAL, oracle, &pages);
	ck_assert_uint_gt(pages, 0);
	image_check_apply(path, r.mem, npages * ps, UFFDWP_SNAPSHOT_INCREMENTAL,
			  pages, buf);
	expect_equal("base + delta image", buf, oracle, npages);

	snprintf(path, sizeof(path), "%s/sub.img", dir);
	file_shot(&r, path, UFFDWP_FILE_SINK_NO_SYNC, first, n, 0, oracle,
		  &pages);
	memset(buf, POISON, n * ps);
	image_check_apply(path, r.mem + first * ps, n * ps, 0, n, buf);
	expect_equal("sub-range image", buf, oracle, n);

	/* A real image cut short, or with one data byte flipped, is
	 * refused. */
	snprintf(path, sizeof(path), "%s/base.img", dir);
	image_damaged(path, dir);

	dir_list(dir, names, sizeof(names));
	ck_assert_str_eq(names, "base.img delta.img sub.img");
	rig_stop(&r);
	munmap(oracle, npages * ps);
	munmap(buf, npages * ps);
	rig_teardown(&r);
	dir_remove(dir);
}
END_TEST

/*
 * Every failure point of the file sink, and a cancel: no file under the
 * final name, no temporary file, and an image already there kept as it was.
 */
START_TEST(file_failures_leave_nothing)
{
	int b = backends[_i];
	uint64_t seed = test_seed(uffdwp_backend_name(b)), pages;
	const struct {
		int point, err;
		unsigned int sflags;
	} fails[] = {
		{ IMG_FAIL_ALLOCATE, ENOSPC, UFFDWP_FILE_SINK_NO_SYNC },
		{ IMG_FAIL_PWRITE, EIO, UFFDWP_FILE_SINK_NO_SYNC },
		{ IMG_FAIL_PWRITE, ENOSPC, 0 },
		{ IMG_FAIL_FSYNC, EIO, 0 },
		{ IMG_FAIL_CLOSE, EIO, UFFDWP_FILE_SINK_NO_SYNC },
		{ IMG_FAIL_RENAME, EIO, UFFDWP_FILE_SINK_NO_SYNC },
		{ IMG_FAIL_DIR_FSYNC, EIO, 0 },
	};
	char dir[] = "/tmp/uffdwp-snap-XXXXXX", keep[128], path[128];
	char names[256];
	size_t npages = 512, i, t;
	struct uffdwp_snapshot_opts o;
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *sink;
	char *oracle, *buf;
	struct gate gate;
	struct usink us;
	struct rig r;
	int ret;

	NEED_BACKEND(b);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	rig_setup(&r, b, npages, HOTSPOT, seed);
	oracle = map(npages);
	buf = map(npages);
	rig_start(&r);
	snprintf(keep, sizeof(keep), "%s/keep.img", dir);
	file_shot(&r, keep, UFFDWP_FILE_SINK_NO_SYNC, 0, npages, 0, oracle,
		  &pages);

	for (i = 0; i < ARRAY_LEN(fails); i++) {
		/* t = 0: a new name; t = 1: over the existing image. */
		for (t = 0; t < 2; t++) {
			snprintf(path, sizeof(path), "%s/%s", dir,
				 t ? "keep.img" : "new.img");
			uffdwp_test_hooks.file_fail_point = fails[i].point;
			uffdwp_test_hooks.file_fail_errno = fails[i].err;
			uffdwp_test_hooks.file_fail_nth =
				1 + (unsigned long)(rnd(&seed) % 8);
			ck_assert_int_eq(uffdwp_sink_file_new(
						 path, fails[i].sflags, &sink),
					 0);
			ret = rig_start_snapshot(&r, 0, npages, sink, NULL,
						 &snap);
			if (fails[i].point == IMG_FAIL_ALLOCATE) {
				/* begin() failed: the start did. */
				ck_assert_int_eq(ret, -fails[i].err);
			} else {
				ck_assert_int_eq(ret, 0);
				expect_failed(snap, -fails[i].err,
					      UFFDWP_CAUSE_SINK);
				uffdwp_snapshot_free(snap);
			}
			memset(&uffdwp_test_hooks, 0,
			       sizeof(uffdwp_test_hooks));
			uffdwp_sink_free(sink);
			dir_list(dir, names, sizeof(names));
			ck_assert_msg(
				!strcmp(names, "keep.img"),
				"failure point %d (%s): the folder holds \"%s\"",
				fails[i].point, t ? "replacing" : "new", names);
			memset(buf, 0, npages * ps);
			image_check_apply(keep, r.mem, npages * ps, 0, npages,
					  buf);
			expect_equal("the kept image", buf, oracle, npages);
		}
	}

	/* Cancelled while a write() is held: the file sink's own write
	 * waits behind the gate. */
	for (t = 0; t < 2; t++) {
		snprintf(path, sizeof(path), "%s/%s", dir,
			 t ? "keep.img" : "new.img");
		ck_assert_int_eq(uffdwp_sink_file_new(path, 0, &sink), 0);
		gate_init(&gate);
		usink_init(&us, SINK_WRITE, buf, npages * ps);
		us.inner = sink;
		us.gate = &gate;
		fill_opts(&o, OPTS_NARROW, 0);
		ck_assert_int_eq(rig_start_snapshot(&r, 0, npages, &us.sink, &o,
						    &snap),
				 0);
		gate_wait_entered(&gate);
		ck_assert_int_eq(uffdwp_snapshot_cancel(snap), 0);
		gate_open(&gate);
		expect_failed(snap, -ECANCELED, UFFDWP_CAUSE_CALLER);
		uffdwp_snapshot_free(snap);
		ck_assert_int_eq(atomic_load(&us.ends), 1);
		ck_assert_int_eq(atomic_load(&us.end_status), -ECANCELED);
		usink_fini(&us);
		uffdwp_sink_free(sink);
		dir_list(dir, names, sizeof(names));
		ck_assert_msg(!strcmp(names, "keep.img"),
			      "cancelled: the folder holds \"%s\"", names);
	}
	memset(buf, 0, npages * ps);
	image_check_apply(keep, r.mem, npages * ps, 0, npages, buf);
	expect_equal("the kept image", buf, oracle, npages);

	rig_stop(&r);
	munmap(oracle, npages * ps);
	munmap(buf, npages * ps);
	rig_teardown(&r);
	dir_remove(dir);
}
END_TEST

/* --- 4. events and misuse ----------------------------------------------- */

/*
 * A range of distinct pages, tracked, and a snapshot of it whose one copier
 * is held in its first write() (pages 0..63 at most): nothing else is
 * copied unless a writer faults.
 */
struct held {
	struct uffdwp_ctx *ctx;
	char *mem, *oracle, *buf;
	size_t npages;
	struct gate gate;
	struct usink us;
	struct uffdwp_snapshot *snap;
};

static void fill_pages(char *mem, size_t npages, unsigned int salt)
{
	size_t i;

	for (i = 0; i < npages; i++) {
		memset(mem + i * ps, (int)((i * 7 + salt) & 0xff), ps);
		*(uint64_t *)(mem + i * ps) = i | (uint64_t)salt << 32;
	}
}

static void held_start(struct held *h, int backend, size_t npages,
		       unsigned int staging)
{
	struct uffdwp_snapshot_opts o = { .sz = sizeof(o),
					  .copiers = 1,
					  .staging_pages = staging };

	NEED_BACKEND(backend);
	memset(h, 0, sizeof(*h));
	h->npages = npages;
	h->ctx = new_ctx(backend);
	h->mem = map(npages);
	h->oracle = map(npages);
	h->buf = map(npages);
	fill_pages(h->mem, npages, 1);
	ck_assert_int_eq(uffdwp_track(h->ctx, h->mem, npages * ps, 0), 0);
	memcpy(h->oracle, h->mem, npages * ps);
	memset(h->buf, POISON, npages * ps);
	gate_init(&h->gate);
	usink_init(&h->us, SINK_WRITE, h->buf, npages * ps);
	h->us.gate = &h->gate;
	h->us.forbid_lo = (uintptr_t)h->mem;
	h->us.forbid_hi = (uintptr_t)h->mem + npages * ps;
	ck_assert_int_eq(uffdwp_snapshot_start(h->ctx, h->mem, npages * ps,
					       &h->us.sink, &o, &h->snap),
			 0);
	gate_wait_entered(&h->gate);
}

static void held_expect_exact(struct held *h)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };

	ck_assert_int_eq(uffdwp_snapshot_wait(h->snap, -1), 0);
	ck_assert_int_eq(uffdwp_snapshot_status(h->snap, &st), 0);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_DONE);
	ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_EXACT);
	ck_assert_uint_eq(st.pages, h->npages);
	ck_assert_uint_eq(st.pages_done, h->npages);
	ck_assert_uint_eq(usink_delivered(&h->us), h->npages);
	ck_assert_int_eq(atomic_load(&h->us.ends), 1);
	ck_assert_int_eq(atomic_load(&h->us.end_status), 0);
	expect_equal("the held snapshot", h->buf, h->oracle, h->npages);
}

static void held_end(struct held *h, bool unmapped_tail)
{
	h->snap = uffdwp_snapshot_free(h->snap);
	usink_fini(&h->us);
	h->ctx = uffdwp_ctx_free(h->ctx);
	munmap(h->mem, (h->npages - (unmapped_tail ? 64 : 0)) * ps);
	munmap(h->oracle, h->npages * ps);
	munmap(h->buf, h->npages * ps);
}

/* After a failed snapshot the context still snapshots, exactly. */
static void snapshot_now(struct uffdwp_ctx *ctx, char *addr, size_t n)
{
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *sink;
	char *want = malloc(n * ps), *got = malloc(n * ps);

	ck_assert_ptr_nonnull(want);
	ck_assert_ptr_nonnull(got);
	memcpy(want, addr, n * ps);
	memset(got, POISON, n * ps);
	ck_assert_int_eq(uffdwp_sink_memory_new(got, n * ps, &sink), 0);
	ck_assert_int_eq(
		uffdwp_snapshot_start(ctx, addr, n * ps, sink, NULL, &snap), 0);
	ck_assert_int_eq(uffdwp_snapshot_wait(snap, -1), 0);
	uffdwp_snapshot_free(snap);
	uffdwp_sink_free(sink);
	expect_equal("a snapshot after the event", got, want, n);
	free(want);
	free(got);
}

START_TEST(zap_uncopied_cancels)
{
	struct held h;

	held_start(&h, backends[_i], 4096, 0);
	/* The last page is far from the held run, and nobody wrote it. */
	ck_assert_int_eq(
		madvise(h.mem + (h.npages - 1) * ps, ps, MADV_DONTNEED), 0);
	gate_open(&h.gate);
	expect_failed(h.snap, -ECANCELED, UFFDWP_CAUSE_ZAPPED);
	ck_assert_int_eq(atomic_load(&h.us.ends), 1);
	ck_assert_int_eq(atomic_load(&h.us.end_status), -ECANCELED);
	usink_delivered(&h.us);
	ck_assert_int_eq(*(volatile char *)(h.mem + (h.npages - 1) * ps), 0);
	snapshot_now(h.ctx, h.mem, h.npages);
	held_end(&h, false);
}
END_TEST

START_TEST(unmap_uncopied_cancels)
{
	struct held h;

	held_start(&h, backends[_i], 4096, 0);
	ck_assert_int_eq(munmap(h.mem + (h.npages - 64) * ps, 64 * ps), 0);
	gate_open(&h.gate);
	expect_failed(h.snap, -ECANCELED, UFFDWP_CAUSE_UNMAPPED);
	ck_assert_int_eq(atomic_load(&h.us.ends), 1);
	ck_assert_int_eq(atomic_load(&h.us.end_status), -ECANCELED);
	usink_delivered(&h.us);
	/* What is still mapped still snapshots; the range still untracks. */
	snapshot_now(h.ctx, h.mem, 1024);
	ck_assert_int_eq(uffdwp_untrack(h.ctx, h.mem, h.npages * ps), 0);
	held_end(&h, true);
}
END_TEST

/*
 * Zaps of pages already copied cancel nothing: one in the run the copier
 * holds (its data is in the sink's hands), one a writer's fault copied.
 */
START_TEST(zap_copied_keeps_snapshot)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	size_t held_page, last;
	struct held h;

	held_start(&h, backends[_i], 4096, 0);
	held_page = (size_t)((char *)h.gate.addr - h.mem) / ps;
	last = h.npages - 1;
	ck_assert_uint_lt(held_page, h.npages);
	ck_assert_int_eq(madvise(h.mem + held_page * ps, ps, MADV_DONTNEED), 0);
	/* A write after the instant: copied first on the fault path. */
	*(volatile uint64_t *)(h.mem + last * ps + 64) = 0xdeadbeef;
	ck_assert_int_eq(madvise(h.mem + last * ps, ps, MADV_DONTNEED), 0);
	ck_assert_int_eq(uffdwp_snapshot_wait(h.snap, 0), -ETIMEDOUT);
	gate_open(&h.gate);
	held_expect_exact(&h);
	ck_assert_int_eq(uffdwp_snapshot_status(h.snap, &st), 0);
	ck_assert_uint_ge(st.pages_faulted, 1);
	held_end(&h, false);
}
END_TEST

/*
 * An unmap's event comes after the fact: even pages already copied give
 * no exact image once part of the range is unmapped before the end.
 */
START_TEST(unmap_copied_cancels)
{
	struct held h;
	size_t i;

	held_start(&h, backends[_i], 4096, 0);
	/* Writes after the instant: the last 64 pages are copied first, on
	 * the fault path. */
	for (i = h.npages - 64; i < h.npages; i++)
		*(volatile uint64_t *)(h.mem + i * ps + 8) = 0xfeed;
	ck_assert_int_eq(munmap(h.mem + (h.npages - 64) * ps, 64 * ps), 0);
	gate_open(&h.gate);
	expect_failed(h.snap, -ECANCELED, UFFDWP_CAUSE_UNMAPPED);
	usink_delivered(&h.us);
	snapshot_now(h.ctx, h.mem, 1024);
	held_end(&h, true);
}
END_TEST

/*
 * mmap(MAP_FIXED) puts new pages where uncopied ones were, and (by a test
 * hook) the snapshot never sees the unmap event, as when a copier reads
 * the new pages before a handler reads the event: the check at the end
 * must still refuse to call the image exact.
 */
START_TEST(replaced_mapping_caught_at_end)
{
	char *tail;
	struct held h;

	held_start(&h, backends[_i], 4096, 0);
	uffdwp_test_hooks.snapshot_late_unmap_events = 1;
	tail = mmap(h.mem + (h.npages - 64) * ps, 64 * ps,
		    PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert_ptr_eq(tail, h.mem + (h.npages - 64) * ps);
	memset(tail, 0x5a, 64 * ps);
	gate_open(&h.gate);
	expect_failed(h.snap, -ECANCELED, UFFDWP_CAUSE_UNMAPPED);
	uffdwp_test_hooks.snapshot_late_unmap_events = 0;
	/* The copier did read the new pages: without the check this would
	 * have been an "exact" image holding them. */
	ck_assert_uint_eq(usink_delivered(&h.us), h.npages);
	munmap(tail, 64 * ps);
	held_end(&h, true);
}
END_TEST

/*
 * The sink's begin() (like malloc, or start itself, when the heap is
 * tracked) writes a page of the range after the instant: the write is
 * served from staging and start returns; the image has the pre-image.
 */
struct begin_writer {
	struct usink us; /* first: the us_* callbacks take the arg as it */
	volatile uint64_t *target;
};

static int begin_writes(void *arg, const struct uffdwp_snapshot_info *info)
{
	struct begin_writer *bw = arg;

	*bw->target = 0x1234567890abcdefULL;
	return us_begin(&bw->us, info);
}

START_TEST(begin_writes_the_range)
{
	const enum sink_kind kinds[] = { SINK_WRITE, SINK_PLACE };
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct uffdwp_ctx *ctx = new_ctx(backends[_i]);
	size_t npages = 256, k;
	char *mem = map(npages), *oracle = map(npages), *buf = map(npages);
	struct uffdwp_snapshot *snap;
	struct begin_writer bw;

	fill_pages(mem, npages, 3);
	ck_assert_int_eq(uffdwp_track(ctx, mem, npages * ps, 0), 0);
	for (k = 0; k < ARRAY_LEN(kinds); k++) {
		memcpy(oracle, mem, npages * ps);
		memset(buf, POISON, npages * ps);
		usink_init(&bw.us, kinds[k], buf, npages * ps);
		bw.us.sink.arg = &bw;
		bw.us.sink.begin = begin_writes;
		bw.target = (volatile uint64_t *)(mem + (100 + k) * ps + 16);
		ck_assert_int_eq(uffdwp_snapshot_start(ctx, mem, npages * ps,
						       &bw.us.sink, NULL,
						       &snap),
				 0);
		ck_assert_int_eq(uffdwp_snapshot_wait(snap, -1), 0);
		ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
		ck_assert_uint_ge(st.pages_faulted, 1);
		ck_assert_uint_eq(usink_delivered(&bw.us), npages);
		expect_equal("begin() wrote the range", buf, oracle, npages);
		ck_assert(*bw.target == 0x1234567890abcdefULL);
		uffdwp_snapshot_free(snap);
		usink_fini(&bw.us);
	}
	uffdwp_ctx_free(ctx);
	munmap(mem, npages * ps);
	munmap(oracle, npages * ps);
	munmap(buf, npages * ps);
}
END_TEST

/* Once the sink commits (a file sink: fsync, rename), the outcome is the
 * sink's: a cancel then changes nothing. */
START_TEST(cancel_while_committing)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct uffdwp_ctx *ctx = new_ctx(backends[_i]);
	size_t npages = 64;
	char *mem = map(npages), *buf = map(npages);
	struct uffdwp_snapshot *snap;
	struct gate end_gate;
	struct usink us;

	fill_pages(mem, npages, 4);
	ck_assert_int_eq(uffdwp_track(ctx, mem, npages * ps, 0), 0);
	gate_init(&end_gate);
	usink_init(&us, SINK_WRITE, buf, npages * ps);
	us.end_gate = &end_gate;
	ck_assert_int_eq(uffdwp_snapshot_start(ctx, mem, npages * ps, &us.sink,
					       NULL, &snap),
			 0);
	gate_wait_entered(&end_gate);
	ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_RUNNING);
	ck_assert_int_eq(st.committing, 1);
	ck_assert_int_eq(uffdwp_snapshot_cancel(snap), 0);
	gate_open(&end_gate);
	ck_assert_int_eq(uffdwp_snapshot_wait(snap, -1), 0);
	ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_DONE);
	ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_EXACT);
	ck_assert_int_eq(atomic_load(&us.end_status), 0);
	ck_assert_int_eq(atomic_load(&us.ends), 1);
	expect_equal("the committed snapshot", buf, mem, npages);
	uffdwp_snapshot_free(snap);
	usink_fini(&us);
	uffdwp_ctx_free(ctx);
	munmap(mem, npages * ps);
	munmap(buf, npages * ps);
}
END_TEST

struct page_writer {
	char *mem;
	size_t first, n;
	pthread_t tid;
};

static void *page_writer_main(void *arg)
{
	struct page_writer *w = arg;
	size_t i;

	for (i = 0; i < w->n; i++)
		*(volatile uint64_t *)(w->mem + (w->first + i) * ps + 128) =
			0xabcd0000 + i;
	return NULL;
}

/* Staging full: the faulting writer waits (the copier is held), then goes
 * on; the image is still the instant's. */
START_TEST(staging_backpressure)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct page_writer w;
	struct held h;

	held_start(&h, backends[_i], 1024, 4);
	w = (struct page_writer){ h.mem, 512, 16, 0 };
	ck_assert_int_eq(pthread_create(&w.tid, NULL, page_writer_main, &w), 0);
	do {
		usleep(1000);
		ck_assert_int_eq(uffdwp_snapshot_status(h.snap, &st), 0);
	} while (!st.staging_full);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_RUNNING);
	ck_assert_uint_eq(st.pages_faulted, 4);
	gate_open(&h.gate);
	pthread_join(w.tid, NULL);
	held_expect_exact(&h);
	ck_assert_int_eq(uffdwp_snapshot_status(h.snap, &st), 0);
	ck_assert_uint_ge(st.staging_full, 1);
	ck_assert_uint_ge(st.pages_faulted, 4);
	printf("%s: staging full %llu times, %llu pages copied on faults\n",
	       uffdwp_backend_name(backends[_i]),
	       (unsigned long long)st.staging_full,
	       (unsigned long long)st.pages_faulted);
	held_end(&h, false);
}
END_TEST

static int nop_write(void *arg, void *addr, const void *data, size_t len)
{
	(void)arg;
	(void)addr;
	(void)data;
	(void)len;
	return 0;
}

START_TEST(misuse)
{
	int b = backends[_i];
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct uffdwp_snapshot *snap, *const unset = (void *)&st, *other;
	struct uffdwp_sink nosink = { .sz = sizeof(nosink) };
	struct uffdwp_sink wsink = { .sz = sizeof(wsink), .write = nop_write };
	struct uffdwp_snapshot_opts o = { .sz = sizeof(o) };
	struct {
		struct uffdwp_snapshot_opts o;
		uint64_t future;
	} bigo = { { .sz = sizeof(bigo) }, 1 };
	struct {
		struct uffdwp_sink s;
		uint64_t future;
	} bigs = { { .sz = sizeof(bigs), .write = nop_write }, 1 };
	struct uffdwp_sink *msink;
	struct uffdwp_ctx *ctx;
	char *p, *buf, *small;
	struct held h;
	size_t n = 0;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	/* A: pages [0, 64), B: [64, 80), both tracked; [80, 96) not. */
	p = map(96);
	fill_pages(p, 96, 3);
	ck_assert_int_eq(uffdwp_track(ctx, p, 64 * ps, 0), 0);
	ck_assert_int_eq(uffdwp_track(ctx, p + 64 * ps, 16 * ps, 0), 0);
	buf = map(96);
	snap = unset;

#define START(c, a, l, s, op) uffdwp_snapshot_start(c, a, l, s, op, &snap)
	ck_assert_int_eq(START(NULL, p, ps, &wsink, NULL), -EINVAL);
	ck_assert_int_eq(START(ctx, p, ps, NULL, NULL), -EINVAL);
	ck_assert_int_eq(uffdwp_snapshot_start(ctx, p, ps, &wsink, NULL, NULL),
			 -EINVAL);
	ck_assert_int_eq(START(ctx, p + 1, ps, &wsink, NULL), -EINVAL);
	ck_assert_int_eq(START(ctx, p, ps + 1, &wsink, NULL), -EINVAL);
	ck_assert_int_eq(START(ctx, p, 0, &wsink, NULL), -EINVAL);
	ck_assert_int_eq(START(ctx, (void *)-ps, 2 * ps, &wsink, NULL),
			 -EINVAL);
	ck_assert_int_eq(START(ctx, p, ps, &nosink, NULL), -EINVAL);
	o.flags = 1u << 7;
	ck_assert_int_eq(START(ctx, p, ps, &wsink, &o), -EINVAL);
	o.flags = 0;
	o.copiers = 65;
	ck_assert_int_eq(START(ctx, p, ps, &wsink, &o), -EINVAL);
	ck_assert_int_eq(START(ctx, p, ps, &wsink, &bigo.o), -E2BIG);
	ck_assert_int_eq(START(ctx, p, ps, &bigs.s, NULL), -E2BIG);
	/* Not within one tracked range. */
	ck_assert_int_eq(START(ctx, p + 80 * ps, ps, &wsink, NULL), -ENOENT);
	ck_assert_int_eq(START(ctx, p + 60 * ps, 8 * ps, &wsink, NULL),
			 -ENOENT);
	ck_assert_int_eq(START(ctx, p + 78 * ps, 4 * ps, &wsink, NULL),
			 -ENOENT);
	ck_assert_int_eq(START(ctx, buf, ps, &wsink, NULL), -ENOENT);
	ck_assert_int_eq(START(ctx, p - 1024 * ps, ps, &wsink, NULL), -ENOENT);
	/* A memory sink too small: its begin() refuses. */
	small = malloc(2 * ps);
	ck_assert_int_eq(uffdwp_sink_memory_new(small, 2 * ps, &msink), 0);
	ck_assert_int_eq(START(ctx, p, 4 * ps, msink, NULL), -ENOSPC);
	uffdwp_sink_free(msink);
	free(small);
	ck_assert_ptr_eq(snap, unset);
#undef START

	ck_assert_int_eq(uffdwp_snapshot_wait(NULL, 0), -EINVAL);
	ck_assert_int_eq(uffdwp_snapshot_cancel(NULL), -EINVAL);
	ck_assert_int_eq(uffdwp_snapshot_status(NULL, &st), -EINVAL);
	ck_assert_ptr_null(uffdwp_snapshot_free(NULL));
	ck_assert_ptr_null(uffdwp_sink_free(NULL));
	ck_assert_int_eq(uffdwp_sink_memory_new(NULL, ps, &msink), -EINVAL);
	ck_assert_int_eq(uffdwp_sink_memory_new(buf, ps, NULL), -EINVAL);
	ck_assert_int_eq(uffdwp_sink_file_new(NULL, 0, &msink), -EINVAL);
	ck_assert_int_eq(uffdwp_sink_file_new("", 0, &msink), -EINVAL);
	ck_assert_int_eq(uffdwp_sink_file_new("/tmp/x.img", 1u << 9, &msink),
			 -EINVAL);
	ck_assert_str_eq(uffdwp_snapshot_cause_name(UFFDWP_CAUSE_ZAPPED),
			 "zapped");
	ck_assert_str_eq(uffdwp_snapshot_state_name(UFFDWP_SNAPSHOT_DONE),
			 "done");
	ck_assert_str_eq(uffdwp_consistency_name(UFFDWP_CONSISTENCY_EXACT),
			 "exact");
	ck_assert_ptr_null(uffdwp_snapshot_cause_name(99));
	ctx = uffdwp_ctx_free(ctx);
	munmap(p, 96 * ps);
	munmap(buf, 96 * ps);

	/* One snapshot per tracked range at a time. */
	held_start(&h, b, 256, 0);
	buf = map(16);
	fill_pages(buf, 16, 5);
	ck_assert_int_eq(uffdwp_track(h.ctx, buf, 16 * ps, 0), 0);
	snap = unset;
	ck_assert_int_eq(uffdwp_snapshot_start(h.ctx, h.mem, h.npages * ps,
					       &wsink, NULL, &snap),
			 -EBUSY);
	ck_assert_int_eq(uffdwp_snapshot_start(h.ctx, h.mem + 200 * ps, ps,
					       &wsink, NULL, &snap),
			 -EBUSY);
	ck_assert_ptr_eq(snap, unset);
	/* Another tracked range of the context is free. */
	snapshot_now(h.ctx, buf, 16);
	ck_assert_int_eq(uffdwp_untrack(h.ctx, buf, 16 * ps), 0);
	munmap(buf, 16 * ps);
	/* Running: no untrack, a wait times out, the status says so. */
	ck_assert_int_eq(uffdwp_untrack(h.ctx, h.mem, h.npages * ps), -EBUSY);
	ck_assert_int_eq(uffdwp_snapshot_wait(h.snap, 0), -ETIMEDOUT);
	ck_assert_int_eq(uffdwp_snapshot_wait(h.snap, 20), -ETIMEDOUT);
	ck_assert_int_eq(uffdwp_snapshot_status(h.snap, &st), 0);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_RUNNING);
	ck_assert_int_eq(st.error, 0);
	ck_assert_int_eq(st.cause, UFFDWP_CAUSE_NONE);
	ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_NONE);
	ck_assert_uint_eq(st.pages, h.npages);
	ck_assert_uint_lt(st.pages_done, h.npages);
	ck_assert_int_eq(uffdwp_snapshot_status(h.snap, NULL), -EINVAL);
	/* Collects run alongside. */
	ck_assert_int_ge(uffdwp_collect(h.ctx, count_run, &n), 0);
	gate_open(&h.gate);
	held_expect_exact(&h);
	/* Ended: untrack, and a new snapshot, are allowed again. */
	other = NULL;
	ck_assert_int_eq(uffdwp_snapshot_start(h.ctx, h.mem, ps, &wsink, NULL,
					       &other),
			 0);
	ck_assert_int_eq(uffdwp_snapshot_wait(other, -1), 0);
	uffdwp_snapshot_free(other);
	ck_assert_int_eq(uffdwp_untrack(h.ctx, h.mem, h.npages * ps), 0);
	/* Cancelling an ended snapshot changes nothing. */
	ck_assert_int_eq(uffdwp_snapshot_cancel(h.snap), 0);
	ck_assert_int_eq(uffdwp_snapshot_status(h.snap, &st), 0);
	ck_assert_msg(
		st.state == UFFDWP_SNAPSHOT_DONE && st.error == 0 &&
			st.cause == UFFDWP_CAUSE_NONE &&
			st.consistency == UFFDWP_CONSISTENCY_EXACT,
		"cancel after the end changed the outcome: state %s, error %d, cause %s, consistency %s",
		uffdwp_snapshot_state_name(st.state), st.error,
		uffdwp_snapshot_cause_name(st.cause),
		uffdwp_consistency_name(st.consistency));
	ck_assert_int_eq(uffdwp_snapshot_wait(h.snap, 0), 0);
	held_end(&h, false);
}
END_TEST

struct waiter {
	struct uffdwp_snapshot *snap;
	int ret;
	pthread_t tid;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->ret = uffdwp_snapshot_wait(w->snap, -1);
	return NULL;
}

static void *canceller_main(void *arg)
{
	struct waiter *w = arg;

	w->ret = uffdwp_snapshot_cancel(w->snap);
	return NULL;
}

START_TEST(cancel_from_thread)
{
	struct waiter wa, ca;
	struct held h;

	held_start(&h, backends[_i], 1024, 0);
	wa = (struct waiter){ h.snap, 1, 0 };
	ca = (struct waiter){ h.snap, 1, 0 };
	ck_assert_int_eq(pthread_create(&wa.tid, NULL, waiter_main, &wa), 0);
	ck_assert_int_eq(pthread_create(&ca.tid, NULL, canceller_main, &ca), 0);
	pthread_join(ca.tid, NULL);
	ck_assert_int_eq(ca.ret, 0);
	gate_open(&h.gate);
	expect_failed(h.snap, -ECANCELED, UFFDWP_CAUSE_CALLER);
	pthread_join(wa.tid, NULL);
	ck_assert_int_eq(wa.ret, -ECANCELED);
	ck_assert_int_eq(atomic_load(&h.us.ends), 1);
	ck_assert_int_eq(atomic_load(&h.us.end_status), -ECANCELED);
	usink_delivered(&h.us);
	ck_assert_int_eq(uffdwp_snapshot_cancel(h.snap), 0);
	expect_failed(h.snap, -ECANCELED, UFFDWP_CAUSE_CALLER);
	snapshot_now(h.ctx, h.mem, h.npages);
	held_end(&h, false);
}
END_TEST

/*
 * Free and ctx_free while running. The copier is held at its first write()
 * until the main thread announced the free; each later write() sleeps, so
 * the sweep of 256 runs would need over half a second: far longer than the
 * free takes to cancel.
 */
struct releaser {
	struct gate *gate;
	atomic_int go;
	pthread_t tid;
};

static void *releaser_main(void *arg)
{
	struct releaser *rl = arg;

	while (!atomic_load(&rl->go))
		sched_yield();
	usleep(20000);
	gate_open(rl->gate);
	return NULL;
}

static void held_start_slow(struct held *h, int backend, struct releaser *rl)
{
	held_start(h, backend, 16384, 0);
	h->us.delay_us = 2000;
	rl->gate = &h->gate;
	atomic_store(&rl->go, 0);
	ck_assert_int_eq(pthread_create(&rl->tid, NULL, releaser_main, rl), 0);
}

START_TEST(free_while_running)
{
	struct releaser rl;
	struct held h;

	held_start_slow(&h, backends[_i], &rl);
	atomic_store(&rl.go, 1);
	h.snap = uffdwp_snapshot_free(h.snap);
	/* Returned: the sink was told, and no callback is in flight. */
	ck_assert_int_eq(atomic_load(&h.us.ends), 1);
	ck_assert_int_eq(atomic_load(&h.us.end_status), -ECANCELED);
	ck_assert_int_eq(atomic_load(&h.us.inflight), 0);
	pthread_join(rl.tid, NULL);
	usink_delivered(&h.us);
	snapshot_now(h.ctx, h.mem, 64);
	held_end(&h, false);
}
END_TEST

START_TEST(ctx_free_while_running)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct releaser rl;
	struct held h;

	held_start_slow(&h, backends[_i], &rl);
	atomic_store(&rl.go, 1);
	h.ctx = uffdwp_ctx_free(h.ctx);
	pthread_join(rl.tid, NULL);
	/* The snapshot outlives its context until freed. */
	ck_assert_int_eq(uffdwp_snapshot_wait(h.snap, -1), -ECANCELED);
	ck_assert_int_eq(uffdwp_snapshot_status(h.snap, &st), 0);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_FAILED);
	ck_assert_msg(st.cause == UFFDWP_CAUSE_CONTEXT, "cause %s",
		      uffdwp_snapshot_cause_name(st.cause));
	ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_NONE);
	ck_assert_int_eq(atomic_load(&h.us.ends), 1);
	ck_assert_int_eq(atomic_load(&h.us.end_status), -ECANCELED);
	/* Untracked now: writable without faults. */
	memset(h.mem, 7, h.npages * ps);
	held_end(&h, false);
}
END_TEST

/*
 * fork() while a snapshot runs: in the child every call on the parent's
 * context and snapshot gives -ECHILD, and writing the range works; the
 * parent's snapshot completes and is exact.
 */
START_TEST(fork_during_snapshot)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct uffdwp_sink wsink = { .sz = sizeof(wsink), .write = nop_write };
	int status;
	struct held h;
	pid_t pid;

	held_start(&h, backends[_i], 1024, 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct uffdwp_snapshot *snap2 = NULL;
		size_t n = 0;
		int bad = 0;

		bad |= (uffdwp_snapshot_wait(h.snap, 0) != -ECHILD) << 0;
		bad |= (uffdwp_snapshot_status(h.snap, &st) != -ECHILD) << 1;
		bad |= (uffdwp_snapshot_cancel(h.snap) != -ECHILD) << 2;
		bad |= (uffdwp_snapshot_start(h.ctx, h.mem, ps, &wsink, NULL,
					      &snap2) != -ECHILD)
		       << 3;
		bad |= (uffdwp_collect(h.ctx, count_run, &n) != -ECHILD) << 4;
		/* The child's copy: written where the parent's snapshot has
		 * not copied yet, and where it has. */
		*(volatile uint64_t *)(h.mem + (h.npages - 1) * ps) = 1;
		*(volatile uint64_t *)(h.mem + 8) = 1;
		uffdwp_snapshot_free(h.snap);
		uffdwp_ctx_free(h.ctx);
		*(volatile uint64_t *)(h.mem + (h.npages - 2) * ps) = 1;
		_exit(bad);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(
		WIFEXITED(status) && WEXITSTATUS(status) == 0,
		"child: status %#x (exit bits: wait 1, status 2, cancel 4, start 8, collect 16)",
		status);
	/* The parent writes too (copy-on-write after the fork). */
	*(volatile uint64_t *)(h.mem + (h.npages - 3) * ps + 16) = 2;
	ck_assert_int_eq(uffdwp_snapshot_status(h.snap, &st), 0);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_RUNNING);
	gate_open(&h.gate);
	held_expect_exact(&h);
	held_end(&h, false);
}
END_TEST

/*
 * wait() returns while the window may still be closing (uffd_async's move
 * back holds the range read-only behind a gate): a fork right after it
 * must give a child whose writes go through, every time.
 */
START_TEST(fork_right_after_wait)
{
	const size_t npages = 64 * MIB / ps;
	struct uffdwp_ctx *ctx = new_ctx(backends[_i]);
	char *mem = map(npages), *buf = map(npages);
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *sink;
	int k, status;
	pid_t pid;

	fill_pages(mem, npages, 7);
	ck_assert_int_eq(uffdwp_track(ctx, mem, npages * ps, 0), 0);
	ck_assert_int_eq(uffdwp_sink_memory_new(buf, npages * ps, &sink), 0);
	for (k = 0; k < 8; k++) {
		ck_assert_int_eq(uffdwp_snapshot_start(ctx, mem, npages * ps,
						       sink, NULL, &snap),
				 0);
		ck_assert_int_eq(uffdwp_snapshot_wait(snap, -1), 0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			size_t i;

			alarm(20); /* a write held forever: killed, not hung */
			for (i = 0; i < npages; i += 64)
				*(volatile uint64_t *)(mem + i * ps) = i;
			_exit(0);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "child after wait(): status %#x", status);
		snap = uffdwp_snapshot_free(snap);
	}
	uffdwp_sink_free(sink);
	uffdwp_ctx_free(ctx);
	munmap(mem, npages * ps);
	munmap(buf, npages * ps);
}
END_TEST

/* soft_dirty and mprotect cannot hold a writer before its first write. */
START_TEST(unsupported_backend)
{
	static const int others[] = { UFFDWP_BACKEND_SOFT_DIRTY,
				      UFFDWP_BACKEND_MPROTECT };
	int b = others[_i];
	struct uffdwp_snapshot *snap = NULL;
	struct usink us;
	struct uffdwp_ctx *ctx;
	char *p, *buf;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	p = map(4);
	buf = map(4);
	memset(p, 1, 4 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 4 * ps, 0), 0);
	usink_init(&us, SINK_WRITE, buf, 4 * ps);
	ck_assert_int_eq(uffdwp_snapshot_start(ctx, p, 4 * ps, &us.sink, NULL,
					       &snap),
			 -EOPNOTSUPP);
	ck_assert_ptr_null(snap);
	ck_assert_int_eq(atomic_load(&us.begins), 0);
	ck_assert_int_eq(atomic_load(&us.ends), 0);
	usink_fini(&us);
	uffdwp_ctx_free(ctx);
	munmap(p, 4 * ps);
	munmap(buf, 4 * ps);
}
END_TEST

/* --- 5. the oracle catches a broken copy-before-write ------------------- */

START_TEST(unprotect_first_is_caught)
{
	uint64_t seed = test_seed("unprotect-first");
	unsigned int i, max = (unsigned int)test_scaled(3000, 1000);
	size_t npages = 64;
	struct rig r;
	struct shot s;
	char *img, *oracle;
	long bad = -1;

	NEED_BACKEND(UFFDWP_BACKEND_UFFD_SYNC);
	rig_setup(&r, UFFDWP_BACKEND_UFFD_SYNC, npages, HOTSPOT, seed);
	img = map(npages);
	oracle = map(npages);
	rig_start(&r);
	uffdwp_test_hooks.snapshot_unprotect_first = 1;
	for (i = 0; i < max && bad < 0; i++) {
		memset(&s, 0, sizeof(s));
		s.n = npages;
		s.kind = i % 2 ? SINK_MEMORY : SINK_WRITE;
		s.opt = OPTS_NARROW;
		s.oracle = oracle;
		s.dst = img;
		shot_take(&r, &s, &seed);
		if (s.kind != SINK_MEMORY)
			usink_fini(&s.us);
		if (s.ret)
			break;
		bad = s.bad;
	}
	uffdwp_test_hooks.snapshot_unprotect_first = 0;
	ck_assert_msg(s.ret == 0, "snapshot %u with the hook: wait %d", i,
		      s.ret);
	rig_stop(&r);
	printf("unprotect-first: %s after %u snapshots\n",
	       bad >= 0 ? "caught" : "NOT caught", i);
	ck_assert_msg(
		bad >= 0,
		"the oracle did not catch copy-after-unprotect in %u snapshots",
		i);
	munmap(img, npages * ps);
	munmap(oracle, npages * ps);
	rig_teardown(&r);
}
END_TEST

/*
 * uffd_async's move back after a snapshot fails (a test hook makes the
 * kernel calls fail with -ENOMEM): with mode 1 the range stays on the
 * synchronous userfaultfd, with mode 2 it lands on neither. Either way no
 * write may go unreported: the first collects report a superset, and
 * tracking is exact again once the range is back on a userfaultfd.
 */
struct seen {
	char *base;
	size_t n, count;
	uint8_t hit[256];
};

static int seen_run(void *arg, void *addr, size_t len)
{
	struct seen *sn = arg;
	size_t i, first = (size_t)((char *)addr - sn->base) / ps;

	for (i = 0; i < len / ps; i++) {
		ck_assert_uint_lt(first + i, sn->n);
		sn->hit[first + i] = 1;
		sn->count++;
	}
	return 0;
}

static struct seen *collect_seen(struct uffdwp_ctx *ctx, char *base, size_t n,
				 struct seen *sn)
{
	memset(sn, 0, sizeof(*sn));
	sn->base = base;
	sn->n = n;
	ck_assert_int_ge(uffdwp_collect(ctx, seen_run, sn), 0);
	return sn;
}

static void write_pages(char *mem, const size_t *pages, size_t n, uint64_t v)
{
	size_t i;

	for (i = 0; i < n; i++)
		*(volatile uint64_t *)(mem + pages[i] * ps + 24) = v + i;
}

START_TEST(move_back_fails)
{
	const int mode = _i;
	const size_t npages = 256, a[] = { 3, 77, 200 }, b[] = { 5, 100 },
		     c[] = { 7, 9, 255 };
	struct uffdwp_snapshot_opts o = { .sz = sizeof(o), .copiers = 1 };
	struct uffdwp_ctx *ctx = new_ctx(UFFDWP_BACKEND_UFFD_ASYNC);
	char *mem = map(npages), *buf = map(npages), *oracle = map(npages);
	struct uffdwp_snapshot *snap;
	struct gate gate;
	struct usink us;
	struct seen sn;
	size_t i;

	fill_pages(mem, npages, 5);
	ck_assert_int_eq(uffdwp_track(ctx, mem, npages * ps, 0), 0);
	collect_seen(ctx, mem, npages, &sn);
	memcpy(oracle, mem, npages * ps);
	gate_init(&gate);
	usink_init(&us, SINK_WRITE, buf, npages * ps);
	us.gate = &gate;
	ck_assert_int_eq(uffdwp_snapshot_start(ctx, mem, npages * ps, &us.sink,
					       &o, &snap),
			 0);
	gate_wait_entered(&gate);
	uffdwp_test_hooks.async_arm_fails = mode;
	gate_open(&gate);
	/* The move back comes after the image: the snapshot is exact. */
	ck_assert_int_eq(uffdwp_snapshot_wait(snap, -1), 0);
	expect_equal("the snapshot before the failed move", buf, oracle,
		     npages);
	uffdwp_snapshot_free(snap);
	usink_fini(&us);

	write_pages(mem, a, ARRAY_LEN(a), 0x1000);
	collect_seen(ctx, mem, npages, &sn);
	ck_assert_uint_eq(sn.count, npages); /* all of it, once */
	if (mode == 2) /* on no userfaultfd: no snapshot until armed */
		ck_assert_int_eq(uffdwp_snapshot_start(ctx, mem, npages * ps,
						       &us.sink, &o, &snap),
				 -EBUSY);

	write_pages(mem, b, ARRAY_LEN(b), 0x2000);
	collect_seen(ctx, mem, npages, &sn);
	if (mode == 1) {
		/* Synchronous now, and exact. */
		ck_assert_uint_eq(sn.count, ARRAY_LEN(b));
		for (i = 0; i < ARRAY_LEN(b); i++)
			ck_assert(sn.hit[b[i]]);
	} else {
		/* On neither, and still unable to arm: all of it again. */
		ck_assert_uint_eq(sn.count, npages);
	}

	uffdwp_test_hooks.async_arm_fails = 0;
	if (mode == 1) /* from the synchronous userfaultfd, and back */
		snapshot_now(ctx, mem, npages);
	if (mode == 2) {
		/* This collect arms it, and reports it whole a last time. */
		collect_seen(ctx, mem, npages, &sn);
		ck_assert_uint_eq(sn.count, npages);
	}
	write_pages(mem, c, ARRAY_LEN(c), 0x3000);
	collect_seen(ctx, mem, npages, &sn);
	ck_assert_uint_eq(sn.count, ARRAY_LEN(c));
	for (i = 0; i < ARRAY_LEN(c); i++)
		ck_assert(sn.hit[c[i]]);
	if (mode == 2)
		snapshot_now(ctx, mem, npages); /* back on uffd_async */
	ck_assert_int_eq(uffdwp_untrack(ctx, mem, npages * ps), 0);
	uffdwp_ctx_free(ctx);
	munmap(mem, npages * ps);
	munmap(buf, npages * ps);
	munmap(oracle, npages * ps);
}
END_TEST

/*
 * uffd_async learns of no unmap while the range is on its asynchronous
 * userfaultfd. A mapping placed in a hole the program punched (here by
 * the test; it may be the library's own memory) is not the range's: the
 * moves of a snapshot must neither register it nor hold its writers, or a
 * library thread writing it behind the gate would wait for itself.
 */
static bool vma_has_uffd_wp(const void *addr)
{
	char line[512];
	unsigned long lo, hi, a = (unsigned long)(uintptr_t)addr;
	bool in = false, wp = false;
	FILE *f = fopen("/proc/self/smaps", "re");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = lo <= a && a < hi;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			wp = strstr(line, " uw") != NULL;
			break;
		}
	}
	fclose(f);
	return wp;
}

START_TEST(foreign_mapping_in_hole)
{
	const size_t npages = 256, hole = 128, nhole = 16;
	struct uffdwp_ctx *ctx = new_ctx(UFFDWP_BACKEND_UFFD_ASYNC);
	char *mem = map(npages), *foreign, *buf;
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *sink;
	int k;

	fill_pages(mem, npages, 6);
	ck_assert_int_eq(uffdwp_track(ctx, mem, npages * ps, 0), 0);
	ck_assert(vma_has_uffd_wp(mem));
	ck_assert_int_eq(munmap(mem + hole * ps, nhole * ps), 0);
	foreign = mmap(mem + hole * ps, nhole * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert_ptr_eq(foreign, mem + hole * ps);
	memset(foreign, 0x33, nhole * ps);
	ck_assert(!vma_has_uffd_wp(foreign));
	for (k = 0; k < 3; k++) {
		/* Both moves, each time; the range's own parts snapshot. */
		snapshot_now(ctx, mem, 64);
		snapshot_now(ctx, mem + (hole + nhole) * ps,
			     npages - hole - nhole);
		ck_assert_msg(!vma_has_uffd_wp(foreign),
			      "a snapshot registered the foreign mapping");
		ck_assert(vma_has_uffd_wp(mem));
		ck_assert(vma_has_uffd_wp(mem + (npages - 1) * ps));
		memset(foreign, 0x44 + k, nhole * ps);
	}
	/* Over the hole: not the range's pages, no exact image. */
	buf = map(npages);
	ck_assert_int_eq(uffdwp_sink_memory_new(buf, npages * ps, &sink), 0);
	ck_assert_int_eq(uffdwp_snapshot_start(ctx, mem, npages * ps, sink,
					       NULL, &snap),
			 0);
	expect_failed(snap, -ECANCELED, UFFDWP_CAUSE_UNMAPPED);
	uffdwp_snapshot_free(snap);
	uffdwp_sink_free(sink);
	ck_assert(!vma_has_uffd_wp(foreign));
	snapshot_now(ctx, mem, 64);
	uffdwp_ctx_free(ctx);
	munmap(mem, npages * ps);
	munmap(buf, npages * ps);
}
END_TEST

/* --- suite -------------------------------------------------------------- */

static void add_backend_cases(Suite *s, int i)
{
	const char *name = uffdwp_backend_name(backends[i]);
	const struct test_group groups[] = {
		{ "oracle",
		  900,
		  { oracle_small_random, oracle_small_hotspot, oracle_medium,
		    oracle_large } },
		{ "collects", 600, { interleaved_random, interleaved_hotspot } },
		{ "sinks",
		  600,
		  { sink_error_at_random_page, sink_begin_fails, sink_end_fails,
		    failed_snapshot_keeps_chain, file_roundtrip,
		    file_failures_leave_nothing } },
		{ "events",
		  120,
		  { zap_uncopied_cancels, unmap_uncopied_cancels,
		    zap_copied_keeps_snapshot, unmap_copied_cancels,
		    replaced_mapping_caught_at_end, begin_writes_the_range,
		    cancel_while_committing, staging_backpressure, misuse,
		    cancel_from_thread, free_while_running,
		    ctx_free_while_running, fork_during_snapshot,
		    fork_right_after_wait } },
	};
	test_add_groups(s, name, i, groups, ARRAY_LEN(groups));
}

static Suite *snapshot_suite(void)
{
	Suite *s = suite_create("snapshot");
	TCase *sd = tcase_create("unsupported-soft_dirty");
	TCase *mp = tcase_create("unsupported-mprotect");
	TCase *hook = tcase_create("unprotect-first");
	TCase *moveback = tcase_create("move-back-fails");
	TCase *foreign = tcase_create("foreign-in-hole");
	size_t i;

	for (i = 0; i < ARRAY_LEN(backends); i++)
		add_backend_cases(s, (int)i);

	tcase_set_tags(sd, "soft_dirty");
	tcase_add_loop_test(sd, unsupported_backend, 0, 1);
	suite_add_tcase(s, sd);
	tcase_set_tags(mp, "mprotect");
	tcase_add_loop_test(mp, unsupported_backend, 1, 2);
	suite_add_tcase(s, mp);

	tcase_set_tags(hook, "uffd_sync");
	tcase_set_timeout(hook, 300);
	tcase_add_test(hook, unprotect_first_is_caught);
	suite_add_tcase(s, hook);

	tcase_set_tags(foreign, "uffd_async");
	tcase_add_test(foreign, foreign_mapping_in_hole);
	suite_add_tcase(s, foreign);

	tcase_set_tags(moveback, "uffd_async");
	tcase_add_loop_test(moveback, move_back_fails, 1, 3);
	suite_add_tcase(s, moveback);
	return s;
}

int main(void)
{
	struct test_exclusions ex = { 0 };
	int b, any = 0;

	test_check_sanitizer_setup();
	ps = (size_t)sysconf(_SC_PAGESIZE);
	caps.sz = sizeof(caps);
	if (uffdwp_probe(&caps))
		test_skip("uffdwp_probe failed");
	for (b = UFFDWP_BACKEND_UFFD_ASYNC; b <= UFFDWP_BACKEND_MPROTECT; b++) {
		if (caps.backend[b].usable) {
			any |= b == UFFDWP_BACKEND_UFFD_ASYNC ||
			       b == UFFDWP_BACKEND_UFFD_SYNC;
		} else {
			test_exclude(&ex, uffdwp_backend_name(b),
				     caps.backend[b].reason);
		}
	}
	if (!any)
		test_skip(
			"no userfaultfd backend: snapshots need uffd_sync or uffd_async (%s)",
			caps.uffd_blocked ? caps.uffd_blocked :
					    "see uffdwp-check");
	unsetenv("UFFDWP_BACKEND");
	return test_run(snapshot_suite(), &ex);
}
