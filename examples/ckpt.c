/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Build: cc ckpt.c helpers.c $(pkg-config --cflags --libs libuffdwp) -pthread \
 *        -o ckpt
 *
 * Incremental checkpoints of a running workload's memory, the way a
 * checkpoint/restore tool or a VM's background snapshot keeps a history:
 * checkpoint 0 is a full image of the region, each later one a delta that
 * holds only the pages written since the one before. Every checkpoint is a
 * live snapshot: uffdwp_snapshot_start() write-protects the region at one
 * instant, and the library copies each page before the first write after
 * that instant may change it. So each image holds the memory exactly as it
 * was at its instant, while the writers run on and are held only for the
 * protect and, on a page they write, for that page's copy.
 *
 * To check that claim, this example pauses the workload at each instant
 * (only so that it knows what the memory was: a real tool would not), saves
 * a digest of every page to ckpt-NNN.expect, and starts the snapshot before
 * the writers resume. --restore rebuilds the memory from the base image and
 * the deltas, the library verifying every checksum, and compares it with
 * the digests.
 *
 * The folder, every file of it written durably (fsync, rename, fsync of
 * the folder):
 *   chain            the checkpoints in order; rewritten after each one,
 *                    so it never names a checkpoint whose files are missing
 *   ckpt-NNN.img     image N, written by the library's file sink
 *   ckpt-NNN.expect  the digest of each page at checkpoint N's instant
 *
 * usage: ckpt [--dir DIR] [--size MiB] [--threads N] [--checkpoints K]
 *             [--interval-ms M] [--backend auto|async|sync]
 *        ckpt --restore [--dir DIR] [--upto N]
 *        ckpt --quick [--backend NAME]
 * --quick checkpoints into a fresh temporary folder, restores every
 * checkpoint, and removes the folder. (That a damaged, truncated or
 * misplaced image is refused is the test tests/tools/test-ckpt-damaged.py,
 * which runs this program.)
 * Exit status: 0 every checkpoint (or the restore) verified; 1 a checkpoint
 * was not exact, or the restore failed or differs; 2 usage or another
 * error; 77 the backend cannot take snapshots here.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

#include "helpers.h"

/*
 * Writers write in bursts and then sleep, and most writes go to a hot
 * sixteenth of the region, so each delta is a fraction of the region, as
 * in most programs worth checkpointing incrementally.
 */
#define BURST 64
#define PACE_NS 1000000
#define HOT_SHARE 16

/*
 * No snapshot runs while the writers are paused or stopped, so nothing may
 * hold a writer for long then: one that does not answer within this time
 * is stuck in a write fault that was never resolved.
 */
#define STUCK_S 20

/* Checkpoint numbers have three digits in file names. */
#define MAX_CHECKPOINTS 1000

#define CHAIN_NAME "chain"
#define CHAIN_MAGIC "uffdwp-ckpt-chain 1"
#define EXPECT_MAGIC "CKPTEXP1"

/* Exit statuses. */
enum { EXIT_OK = 0, EXIT_MISMATCH = 1, EXIT_ERROR = 2, EXIT_SKIP = 77 };

struct options {
	const char *dir;
	size_t size;
	unsigned int threads;
	unsigned int checkpoints;
	unsigned int interval_ms;
	int backend;
	int restore;
	long upto; /* -1: the last checkpoint */
	int quick;
};

/* The counter is the writers' per-page write count, to explain a mismatch. */
struct page_sum {
	uint64_t hash;
	uint64_t counter;
};

/*
 * ckpt-NNN.expect: this header, then one struct page_sum per page. Written
 * and read on the same machine, so host byte order is fine. The window is
 * CLOCK_REALTIME just before and just after uffdwp_snapshot_start(): the
 * image's own instant must lie within it.
 */
struct expect_header {
	char magic[8];
	uint32_t index;
	uint32_t reserved;
	uint64_t page_size;
	uint64_t npages;
	uint64_t window_lo;
	uint64_t window_hi;
	/* hash_words() of this header (with sum 0), then of the sums. */
	uint64_t sum;
};

/* One checkpoint of the chain. */
struct link {
	unsigned int index;
	int incremental;
	char image[32];
	char expect[32];
	uint64_t window_lo, window_hi;
};

struct chain {
	uint64_t len, page_size;
	unsigned int n;
	struct link *links;
};

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* @dir/@name into @path, or -ENAMETOOLONG (said). */
static int join(char *path, const char *dir, const char *name)
{
	if ((size_t)snprintf(path, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
		fprintf(stderr, "ckpt: %s/%s: path too long\n", dir, name);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* --- digests ------------------------------------------------------------ */

/*
 * Each step is a bijection of the state, so two pages that differ in one
 * word always hash differently; differing in several, they collide with a
 * chance of about 2^-64.
 */
static uint64_t hash_words(uint64_t h, const uint64_t *w, size_t words)
{
	size_t i;

	for (i = 0; i < words; i++) {
		h = (h ^ w[i]) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	return h;
}

#define HASH_SEED 0x9e3779b97f4a7c15ULL

static void page_sums(const char *base, size_t page, size_t npages,
		      struct page_sum *sums)
{
	size_t i;

	for (i = 0; i < npages; i++) {
		const uint64_t *p = (const uint64_t *)(base + i * page);

		sums[i].hash = hash_words(HASH_SEED, p, page / sizeof(*p));
		sums[i].counter = p[0];
	}
}

static uint64_t expect_sum(const struct expect_header *h,
			   const struct page_sum *sums)
{
	struct expect_header tmp = *h;

	tmp.sum = 0;
	return hash_words(hash_words(HASH_SEED, (const uint64_t *)&tmp,
				     sizeof(tmp) / sizeof(uint64_t)),
			  (const uint64_t *)sums,
			  h->npages * sizeof(*sums) / sizeof(uint64_t));
}

/* --- files -------------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Replace @name in the folder @dirfd by @a followed by @b, durably: after
 * a crash the folder holds the old file or the new one, never a mix.
 */
static int write_durably(int dirfd, const char *name, const void *a,
			 size_t alen, const void *b, size_t blen)
{
	char tmp[NAME_MAX + 1];
	int fd, err;

	if ((size_t)snprintf(tmp, sizeof(tmp), ".%s.tmp", name) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	err = write_all(fd, a, alen);
	if (!err)
		err = write_all(fd, b, blen);
	if (!err && fsync(fd))
		err = -errno;
	if (close(fd) && !err)
		err = -errno;
	if (!err && renameat(dirfd, tmp, dirfd, name))
		err = -errno;
	if (err) {
		unlinkat(dirfd, tmp, 0);
		return err;
	}
	/* The rename is durable once the folder is. */
	return fsync(dirfd) ? -errno : 0;
}

/* Read all of @name into a malloc'ed buffer, NUL-terminated for text. */
static int read_whole(int dirfd, const char *name, char **buf, size_t *len)
{
	struct stat st;
	size_t got = 0;
	ssize_t n;
	char *p;
	int fd, err = 0;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		err = -errno;
		close(fd);
		return err;
	}
	p = malloc((size_t)st.st_size + 1);
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, p + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -ENODATA;
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	if (err) {
		free(p);
		return err;
	}
	p[got] = '\0';
	*buf = p;
	*len = got;
	return 0;
}

/* --- the chain file ----------------------------------------------------- */

/*
 * Text, one checkpoint a line, in order:
 *   uffdwp-ckpt-chain 1
 *   region LEN PAGE_SIZE
 *   ckpt INDEX full|incremental IMAGE EXPECT WINDOW_LO WINDOW_HI
 */
static int chain_write(int dirfd, const struct chain *c)
{
	char *text = NULL;
	size_t len = 0;
	unsigned int i;
	FILE *f;
	int err;

	f = open_memstream(&text, &len);
	if (!f)
		return -errno;
	fprintf(f, "%s\nregion %" PRIu64 " %" PRIu64 "\n", CHAIN_MAGIC, c->len,
		c->page_size);
	for (i = 0; i < c->n; i++) {
		const struct link *l = &c->links[i];

		fprintf(f, "ckpt %u %s %s %s %" PRIu64 " %" PRIu64 "\n",
			l->index, l->incremental ? "incremental" : "full",
			l->image, l->expect, l->window_lo, l->window_hi);
	}
	if (fclose(f)) {
		free(text);
		return -ENOMEM;
	}
	err = write_durably(dirfd, CHAIN_NAME, text, len, NULL, 0);
	free(text);
	return err;
}

/* A file name of the folder: no path, no hidden or temporary file. */
static int plain_name(const char *s)
{
	return s[0] && s[0] != '.' && !strchr(s, '/');
}

/* Reads the chain of @dir; on error says why, naming the file. */
static int chain_read(int dirfd, const char *dir, struct chain *c)
{
	char *text, *line, *save = NULL, kind[16];
	unsigned int lineno = 0;
	struct link l, *links;
	size_t len;
	int err, n;

	*c = (struct chain){ 0 };
	err = read_whole(dirfd, CHAIN_NAME, &text, &len);
	if (err) {
		fprintf(stderr, "ckpt: %s/%s: %s\n", dir, CHAIN_NAME,
			strerror(-err));
		return err;
	}
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		if (lineno == 1) {
			if (strcmp(line, CHAIN_MAGIC))
				goto bad;
			continue;
		}
		if (lineno == 2) {
			if (sscanf(line, "region %" SCNu64 " %" SCNu64 "%n",
				   &c->len, &c->page_size, &n) != 2 ||
			    line[n] || !c->page_size || !c->len ||
			    c->len % c->page_size)
				goto bad;
			continue;
		}
		l = (struct link){ 0 };
		if (sscanf(line,
			   "ckpt %u %15s %31s %31s %" SCNu64 " %" SCNu64 "%n",
			   &l.index, kind, l.image, l.expect, &l.window_lo,
			   &l.window_hi, &n) != 6 ||
		    line[n] || l.index != c->n || !plain_name(l.image) ||
		    !plain_name(l.expect) || l.window_lo > l.window_hi)
			goto bad;
		if (!strcmp(kind, "incremental"))
			l.incremental = 1;
		else if (strcmp(kind, "full"))
			goto bad;
		links = realloc(c->links, (c->n + 1) * sizeof(*links));
		if (!links) {
			err = -ENOMEM;
			fprintf(stderr, "ckpt: %s\n", strerror(-err));
			goto out;
		}
		c->links = links;
		c->links[c->n++] = l;
	}
	if (lineno >= 2 && c->n)
		goto out;
	fprintf(stderr, "ckpt: %s/%s: no checkpoint in it\n", dir, CHAIN_NAME);
	err = -EPROTO;
	goto out;
bad:
	fprintf(stderr, "ckpt: %s/%s: line %u is malformed\n", dir, CHAIN_NAME,
		lineno);
	err = -EPROTO;
out:
	free(text);
	if (err) {
		free(c->links);
		*c = (struct chain){ 0 };
	}
	return err;
}

/* --- the workload ------------------------------------------------------- */

static void *writer_main(void *arg)
{
	struct writer *me = arg;
	struct workload *w = me->w;
	/* Each page has one writer, so a page is never half-written when
	 * its writer is parked. */
	size_t owned = (w->npages - me->id + w->nwriters - 1) / w->nwriters;
	size_t hot = owned / HOT_SHARE ? owned / HOT_SHARE : 1;
	size_t lines = w->page / 64, k, pg, j;
	struct timespec pace = { .tv_nsec = PACE_NS };
	uint64_t rnd = HASH_SEED * (me->id + 1), *p, c, *line;
	unsigned long n = 0;

	for (;;) {
		if (atomic_load_explicit(&w->hold, memory_order_acquire) &&
		    workload_park(w))
			break;
		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		/* Seven writes in eight go to the hot set. */
		k = (rnd >> 8) % (rnd % 8 ? hot : owned);
		pg = me->id + k * w->nwriters;
		p = (uint64_t *)(w->base + pg * w->page);
		/*
		 * The page's write count in its first word, and one of its
		 * other 64-byte lines rewritten from it: two versions of a
		 * page differ in many words, and a copy that missed a write
		 * shows an older count.
		 */
		c = ++p[0];
		line = p + 8 * (1 + c % (lines - 1));
		for (j = 0; j < 8; j++)
			line[j] = (c * 0x9e3779b97f4a7c15ULL) ^ (pg << 20) ^ j;
		if (++n % BURST == 0)
			nanosleep(&pace, NULL);
	}
	atomic_fetch_add(&w->writes, n);
	workload_exit(w);
	return NULL;
}

/* The folder --quick removes, even when it cannot return. */
static const char *quick_dir;

static int rm_entry(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	if (remove(path))
		fprintf(stderr, "ckpt: removing %s: %s\n", path,
			strerror(errno));
	return 0;
}

static void remove_quick_dir(void)
{
	/* Depth first, without following links. */
	if (quick_dir && nftw(quick_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS))
		fprintf(stderr, "ckpt: cleaning %s up: %s\n", quick_dir,
			strerror(errno));
}

/*
 * A writer that never parks is blocked for good, and so would this program
 * be: rather than hang, say so and leave (exit() could wait for the stuck
 * thread).
 */
static void writers_stuck(struct workload *w, unsigned int missing,
			  const char *what)
{
	printf("FAIL: %u of %u writer threads did not %s within %d s, with no snapshot running: blocked in a write fault that was never resolved (see /proc/%d/task/*/wchan)\n",
	       missing, w->nwriters, what, w->stuck_s, (int)getpid());
	remove_quick_dir();
	fflush(NULL);
	_exit(EXIT_MISMATCH);
}

/* --- checkpoints -------------------------------------------------------- */

/*
 * Wait for the snapshot, showing its progress on a terminal. The wait
 * returns every 100 ms while the snapshot runs, which is when the progress
 * line is redrawn.
 */
static int wait_with_progress(struct uffdwp_snapshot *snap, unsigned int k,
			      size_t page)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	int tty = isatty(STDERR_FILENO), shown = 0, err;

	while ((err = uffdwp_snapshot_wait(snap, 100)) == -ETIMEDOUT) {
		if (!tty || uffdwp_snapshot_status(snap, &st))
			continue;
		fprintf(stderr,
			"\r ckpt %03u: %.0f%% (%" PRIu64 "/%" PRIu64
			" pages), %.0f MiB/s\033[K",
			k, st.pages ? 100.0 * st.pages_done / st.pages : 100.0,
			st.pages_done, st.pages,
			st.elapsed_ns ? st.pages_done * page / 1048576.0 /
						(st.elapsed_ns / 1e9) :
					0.0);
		shown = 1;
	}
	if (shown)
		fputs("\r\033[K", stderr);
	return err;
}

struct ckpt_run {
	const struct options *o;
	struct uffdwp_ctx *ctx;
	struct workload *w;
	int dirfd;
	struct chain chain;
	struct page_sum *sums;
	uint64_t bytes; /* written to images, in all */
	uint64_t faulted; /* of which copied on the fault path */
};

/* Takes checkpoint @k. Returns an exit status. */
static int checkpoint(struct ckpt_run *r, unsigned int k)
{
	const struct options *o = r->o;
	struct workload *w = r->w;
	struct uffdwp_snapshot_opts sopts = {
		.sz = sizeof(sopts),
		/* Checkpoint 0 is the base; each later one holds only the
		 * pages written since the one before. */
		.flags = k ? UFFDWP_SNAPSHOT_INCREMENTAL : 0,
	};
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct expect_header eh = { .index = k,
				    .page_size = w->page,
				    .npages = w->npages };
	struct link l = { .index = k, .incremental = k > 0 };
	struct uffdwp_snapshot *snap = NULL;
	struct uffdwp_sink *sink = NULL;
	char path[PATH_MAX];
	double t_pause, t_resume;
	int err, ret = EXIT_ERROR;

	snprintf(l.image, sizeof(l.image), "ckpt-%03u.img", k);
	snprintf(l.expect, sizeof(l.expect), "ckpt-%03u.expect", k);
	if (join(path, o->dir, l.image))
		return EXIT_ERROR;
	/* Durable by default: the sink fsyncs the image and the folder. */
	err = uffdwp_sink_file_new(path, 0, &sink);
	if (err) {
		fprintf(stderr, "ckpt: uffdwp_sink_file_new(%s): %s\n", path,
			strerror(-err));
		return EXIT_ERROR;
	}

	/*
	 * The instant. Only for the check does the workload stop here, while
	 * every page's digest is recorded; the snapshot itself holds the
	 * writers only for the protect inside uffdwp_snapshot_start(), which
	 * the "start ms" column shows.
	 */
	t_pause = now();
	workload_pause(w);
	page_sums(w->base, w->page, w->npages, r->sums);
	l.window_lo = realtime_ns();
	err = uffdwp_snapshot_start(r->ctx, w->base, o->size, sink, &sopts,
				    &snap);
	l.window_hi = realtime_ns();
	workload_resume(w);
	t_resume = now();
	if (err == -EOPNOTSUPP) {
		printf("SKIP: the %s backend cannot take live snapshots: it cannot hold a writer before its first write (uffd_sync and uffd_async can)\n",
		       uffdwp_backend_name(uffdwp_ctx_backend(r->ctx)));
		ret = EXIT_SKIP;
		goto out;
	}
	if (err) {
		fprintf(stderr, "ckpt %03u: uffdwp_snapshot_start: %s\n", k,
			strerror(-err));
		goto out;
	}

	/* Save what the memory was while the library copies it. */
	memcpy(eh.magic, EXPECT_MAGIC, sizeof(eh.magic));
	eh.window_lo = l.window_lo;
	eh.window_hi = l.window_hi;
	eh.sum = expect_sum(&eh, r->sums);
	err = write_durably(r->dirfd, l.expect, &eh, sizeof(eh), r->sums,
			    w->npages * sizeof(*r->sums));
	if (err) {
		fprintf(stderr, "ckpt %03u: writing %s/%s: %s\n", k, o->dir,
			l.expect, strerror(-err));
		goto out; /* freeing the snapshot cancels it */
	}

	err = wait_with_progress(snap, k, w->page);
	if (uffdwp_snapshot_status(snap, &st)) {
		fprintf(stderr, "ckpt %03u: uffdwp_snapshot_status failed\n",
			k);
		goto out;
	}
	if (err) {
		/* The chain ends at the last good checkpoint. A delta taken
		 * after this failure would have to hold this one's pages too:
		 * rather than rely on that, this example stops here. */
		fprintf(stderr,
			"ckpt %03u: the snapshot failed: %s (cause: %s)\n", k,
			strerror(-err), uffdwp_snapshot_cause_name(st.cause));
		goto out;
	}
	if (k == 0)
		printf("ckpt  kind           pages       MiB  time ms    MiB/s  faulted  start ms paused ms  consistency\n");
	printf(" %03u  %-11s %8" PRIu64 " %9.1f %8.1f %8.0f %8" PRIu64
	       " %8.3f %9.2f  %s\n",
	       k, k ? "incremental" : "full", st.pages,
	       st.pages * w->page / 1048576.0, st.elapsed_ns / 1e6,
	       st.elapsed_ns ?
		       st.pages * w->page / 1048576.0 / (st.elapsed_ns / 1e9) :
		       0.0,
	       st.pages_faulted, st.start_ns / 1e6, (t_resume - t_pause) * 1e3,
	       uffdwp_consistency_name(st.consistency));
	/* Nothing less than a point-in-time copy is a checkpoint. */
	if (st.state != UFFDWP_SNAPSHOT_DONE ||
	    st.consistency != UFFDWP_CONSISTENCY_EXACT ||
	    st.pages_done != st.pages) {
		fprintf(stderr,
			"ckpt %03u: the snapshot ended %s with consistency %s (%" PRIu64
			" of %" PRIu64 " pages): not a checkpoint\n",
			k, uffdwp_snapshot_state_name(st.state),
			uffdwp_consistency_name(st.consistency), st.pages_done,
			st.pages);
		ret = EXIT_MISMATCH;
		goto out;
	}
	r->bytes += st.pages * w->page;
	r->faulted += st.pages_faulted;

	/* The image and its digests are durable: the chain may name them. */
	r->chain.links[r->chain.n++] = l;
	err = chain_write(r->dirfd, &r->chain);
	if (err) {
		fprintf(stderr, "ckpt %03u: writing %s/%s: %s\n", k, o->dir,
			CHAIN_NAME, strerror(-err));
		goto out;
	}
	ret = EXIT_OK;
out:
	uffdwp_snapshot_free(snap);
	/* Only once the snapshot ended: it uses the sink until then. */
	uffdwp_sink_free(sink);
	return ret;
}

static void sleep_until(double t)
{
	double d = t - now();
	struct timespec ts;

	if (d <= 0)
		return;
	ts.tv_sec = (time_t)d;
	ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int open_dir(const char *dir, int create)
{
	int fd;

	if (create && mkdir(dir, 0777) && errno != EEXIST) {
		fprintf(stderr, "ckpt: mkdir %s: %s\n", dir, strerror(errno));
		return -1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		fprintf(stderr, "ckpt: %s: %s\n", dir, strerror(errno));
	return fd;
}

/* Checkpoint mode. Returns an exit status. */
static int run_checkpoints(const struct options *o)
{
	struct uffdwp_ctx_opts copts = { .sz = sizeof(copts),
					 .backend = o->backend };
	struct uffdwp_caps caps = { .sz = sizeof(caps) };
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct workload w = { .page = page,
			      .npages = o->size / page,
			      .nwriters = o->threads,
			      .lock = PTHREAD_MUTEX_INITIALIZER,
			      .cond = PTHREAD_COND_INITIALIZER,
			      .stuck_s = STUCK_S,
			      .stuck = writers_stuck };
	struct ckpt_run r = { .o = o, .w = &w, .dirfd = -1 };
	struct writer *wr = NULL;
	unsigned int k, started = 0;
	double t0, t_next;
	size_t i;
	int err, ret = EXIT_ERROR;

	err = uffdwp_ctx_new(&copts, &r.ctx);
	if (err == -EOPNOTSUPP && uffdwp_probe(&caps) == 0) {
		printf("SKIP: %s cannot track here: %s\n",
		       uffdwp_backend_name(o->backend),
		       o->backend ? caps.backend[o->backend].reason :
				    caps.auto_reason);
		return EXIT_SKIP;
	}
	if (err) {
		fprintf(stderr, "ckpt: uffdwp_ctx_new: %s\n", strerror(-err));
		return EXIT_ERROR;
	}
	printf("backend %s: %s\n",
	       uffdwp_backend_name(uffdwp_ctx_backend(r.ctx)),
	       uffdwp_ctx_backend_reason(r.ctx));

	r.dirfd = open_dir(o->dir, 1);
	if (r.dirfd < 0)
		goto out;
	/*
	 * A chain left by an earlier run goes first, durably: its images are
	 * about to be replaced one by one, and a chain naming old and new
	 * ones together must never be found.
	 */
	if (unlinkat(r.dirfd, CHAIN_NAME, 0) && errno != ENOENT) {
		fprintf(stderr, "ckpt: removing %s/%s: %s\n", o->dir,
			CHAIN_NAME, strerror(errno));
		goto out;
	}
	if (fsync(r.dirfd)) {
		fprintf(stderr, "ckpt: fsync %s: %s\n", o->dir,
			strerror(errno));
		goto out;
	}
	r.chain = (struct chain){ .len = o->size, .page_size = page };
	r.chain.links = calloc(o->checkpoints, sizeof(*r.chain.links));
	/* The digests are kept out of tracked memory, like any sink data. */
	r.sums = calloc(w.npages, sizeof(*r.sums));
	wr = calloc(o->threads, sizeof(*wr));
	w.base = mmap(NULL, o->size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w.base == MAP_FAILED || !r.chain.links || !r.sums || !wr) {
		fprintf(stderr, "ckpt: out of memory\n");
		if (w.base == MAP_FAILED)
			w.base = NULL;
		goto out;
	}
	/* Every page is populated, and different from the start. */
	for (i = 0; i < w.npages; i++)
		((uint64_t *)(w.base + i * page))[1] = i;

	printf("checkpointing %.1f MiB (%zu pages) written by %u threads, %u checkpoints %u ms apart, into %s\n",
	       o->size / 1048576.0, w.npages, o->threads, o->checkpoints,
	       o->interval_ms, o->dir);

	/* The workload runs before the first checkpoint, as it would. */
	for (; started < o->threads; started++) {
		wr[started] = (struct writer){ .w = &w, .id = started };
		err = pthread_create(&wr[started].thread, NULL, writer_main,
				     &wr[started]);
		if (err) {
			fprintf(stderr, "ckpt: pthread_create: %s\n",
				strerror(err));
			goto out;
		}
	}
	err = uffdwp_track(r.ctx, w.base, o->size, 0);
	if (err) {
		fprintf(stderr, "ckpt: uffdwp_track: %s\n", strerror(-err));
		goto out;
	}

	t0 = now();
	for (k = 0; k < o->checkpoints; k++) {
		t_next = now() + o->interval_ms / 1e3;
		ret = checkpoint(&r, k);
		if (ret != EXIT_OK)
			goto out;
		if (k + 1 < o->checkpoints)
			sleep_until(t_next);
	}
	workload_stop(&w, wr, started);
	started = 0;
	printf("%u checkpoints in %s: a base image and %u deltas, %.1f MiB of pages for a %.1f MiB region, in %.2f s; %lu writes meanwhile, %" PRIu64
	       " pages copied before a write (the fault path)\n",
	       o->checkpoints, o->dir, o->checkpoints - 1, r.bytes / 1048576.0,
	       o->size / 1048576.0, now() - t0, atomic_load(&w.writes),
	       r.faulted);
	printf("columns: start ms = writers held by uffdwp_snapshot_start (the protect); paused ms = the whole pause of this example, digests included\n");
	ret = EXIT_OK;
out:
	workload_stop(&w, wr, started);
	if (w.base) {
		err = uffdwp_untrack(r.ctx, w.base, o->size);
		if (err && err != -ENOENT)
			fprintf(stderr, "ckpt: uffdwp_untrack: %s\n",
				strerror(-err));
		munmap(w.base, o->size);
	}
	uffdwp_ctx_free(r.ctx);
	if (r.dirfd >= 0)
		close(r.dirfd);
	free(r.chain.links);
	free(r.sums);
	free(wr);
	return ret;
}

/* --- restore ------------------------------------------------------------ */

/* What an image error means, beyond strerror(). */
static const char *image_error(int err)
{
	switch (err) {
	case -ENOEXEC:
		return "not an image file";
	case -EPROTONOSUPPORT:
		return "an image format this library does not read";
	case -ENODATA:
		return "truncated: shorter than its header says";
	case -EBADMSG:
		return "corrupted: a checksum does not match";
	default:
		return "cannot be read";
	}
}

/* Applies image @l over @buf. Returns 0 or a negative errno (printed). */
static int apply_image(const char *dir, const struct chain *c,
		       const struct link *l, char *buf, uint64_t *pages)
{
	struct uffdwp_image_info info = { .sz = sizeof(info) };
	struct uffdwp_image *img;
	char path[PATH_MAX];
	long n;
	int err;

	err = join(path, dir, l->image);
	if (err)
		return err;
	/* Reads the whole image and verifies every checksum. */
	err = uffdwp_image_open(path, &img);
	if (err) {
		fprintf(stderr, "ckpt: restore: %s: %s (%s)\n", path,
			strerror(-err), image_error(err));
		return err;
	}
	err = uffdwp_image_info(img, &info);
	if (err) {
		fprintf(stderr, "ckpt: restore: %s: uffdwp_image_info: %s\n",
			path, strerror(-err));
		goto out;
	}
	/*
	 * Each image is sound on its own; whether it belongs here is for the
	 * chain to say. It must cover the same range, be the base first and
	 * a delta after, and have been taken within the window the chain
	 * recorded around its start: that ties it to this very checkpoint,
	 * so a stale, swapped or foreign image is refused too.
	 */
	err = -EPROTO;
	if (info.len != c->len || info.page_size != c->page_size)
		fprintf(stderr,
			"ckpt: restore: %s: it covers %" PRIu64
			" bytes in pages of %" PRIu64 ", the chain %" PRIu64
			" in pages of %" PRIu64 "\n",
			path, info.len, info.page_size, c->len, c->page_size);
	else if (!!(info.flags & UFFDWP_SNAPSHOT_INCREMENTAL) != l->incremental)
		fprintf(stderr,
			"ckpt: restore: %s: a %s image where the chain has a %s one\n",
			path,
			info.flags & UFFDWP_SNAPSHOT_INCREMENTAL ? "delta" :
								   "full",
			l->incremental ? "delta" : "full");
	else if (info.instant_realtime_ns < l->window_lo ||
		 info.instant_realtime_ns > l->window_hi)
		fprintf(stderr,
			"ckpt: restore: %s: taken at %" PRIu64
			" ns, not at checkpoint %u's instant (%" PRIu64
			"..%" PRIu64 "): not this chain's image\n",
			path, info.instant_realtime_ns, l->index, l->window_lo,
			l->window_hi);
	else
		err = 0;
	if (err)
		goto out;

	n = uffdwp_image_apply(img, buf, c->len);
	if (n < 0 || (uint64_t)n != info.pages) {
		err = n < 0 ? (int)n : -EIO;
		fprintf(stderr, "ckpt: restore: %s: uffdwp_image_apply: %s\n",
			path,
			n < 0 ? strerror(-err) : "fewer pages than the image");
		goto out;
	}
	*pages += info.pages;
out:
	uffdwp_image_close(img);
	return err;
}

/* Reads the digests of link @l, checking they are its own. */
static int read_expect(int dirfd, const char *dir, const struct chain *c,
		       const struct link *l, struct page_sum **sums)
{
	uint64_t npages = c->len / c->page_size;
	size_t len, body = npages * sizeof(**sums);
	struct expect_header h;
	char *buf;
	int err;

	err = read_whole(dirfd, l->expect, &buf, &len);
	if (err) {
		fprintf(stderr, "ckpt: restore: %s/%s: %s\n", dir, l->expect,
			strerror(-err));
		return err;
	}
	*sums = malloc(body);
	if (!*sums) {
		free(buf);
		fprintf(stderr, "ckpt: restore: out of memory\n");
		return -ENOMEM;
	}
	err = -EBADMSG;
	if (len == sizeof(h) + body) {
		memcpy(&h, buf, sizeof(h));
		memcpy(*sums, buf + sizeof(h), body);
		if (!memcmp(h.magic, EXPECT_MAGIC, sizeof(h.magic)) &&
		    h.index == l->index && h.page_size == c->page_size &&
		    h.npages == npages && h.window_lo == l->window_lo &&
		    h.window_hi == l->window_hi &&
		    h.sum == expect_sum(&h, *sums))
			err = 0;
	}
	free(buf);
	if (err) {
		fprintf(stderr,
			"ckpt: restore: %s/%s: not the digests of checkpoint %u (damaged or foreign)\n",
			dir, l->expect, l->index);
		free(*sums);
		*sums = NULL;
	}
	return err;
}

/*
 * Rebuilds the memory of checkpoint @upto (-1: the last) of @dir and
 * compares it with the digests recorded at its instant. Returns the number
 * of pages that differ, or a negative errno (the reason printed).
 */
static long restore(const char *dir, long upto)
{
	struct page_sum *want = NULL, *got = NULL;
	uint64_t pages = 0;
	struct chain c;
	char *buf = NULL;
	size_t npages = 0, i;
	long bad = 0, first_bad = -1;
	unsigned int k, last;
	double t0 = now();
	int dirfd, err;

	dirfd = open_dir(dir, 0);
	if (dirfd < 0)
		return -ENOENT;
	err = chain_read(dirfd, dir, &c);
	if (err)
		goto out;
	if (upto >= (long)c.n) {
		fprintf(stderr,
			"ckpt: restore: %s has checkpoints 0 to %u, not %ld\n",
			dir, c.n - 1, upto);
		err = -ERANGE;
		goto out;
	}
	last = upto < 0 ? c.n - 1 : (unsigned int)upto;
	npages = c.len / c.page_size;

	/* Zeros to start with: what a page no image holds was. */
	buf = mmap(NULL, c.len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	got = calloc(npages, sizeof(*got));
	if (buf == MAP_FAILED || !got) {
		fprintf(stderr, "ckpt: restore: out of memory\n");
		if (buf == MAP_FAILED)
			buf = NULL;
		err = -ENOMEM;
		goto out;
	}
	/* The base, then each delta over it, in order. */
	for (k = 0; k <= last; k++) {
		err = apply_image(dir, &c, &c.links[k], buf, &pages);
		if (err)
			goto out;
	}
	err = read_expect(dirfd, dir, &c, &c.links[last], &want);
	if (err)
		goto out;

	page_sums(buf, c.page_size, npages, got);
	for (i = 0; i < npages; i++) {
		if (got[i].hash == want[i].hash &&
		    got[i].counter == want[i].counter)
			continue;
		if (!bad++)
			first_bad = (long)i;
		if (bad <= 5)
			fprintf(stderr,
				"ckpt: restore: checkpoint %u page %zu differs: written %" PRIu64
				" times at the instant, %" PRIu64
				" in the rebuilt memory\n",
				last, i, want[i].counter, got[i].counter);
	}
	if (bad)
		printf("restore %03u: MISMATCH: %ld of %zu pages differ from the memory at the instant (first: page %ld)\n",
		       last, bad, npages, first_bad);
	else
		printf("restore %03u: %u image%s (%" PRIu64
		       " pages) applied in %.1f ms, every checksum verified: all %zu pages equal the memory at the instant\n",
		       last, last + 1, last ? "s" : "", pages,
		       (now() - t0) * 1e3, npages);
out:
	if (buf)
		munmap(buf, c.len);
	free(got);
	free(want);
	free(c.links);
	close(dirfd);
	return err ? err : bad;
}

/* --- --quick: the whole cycle ------------------------------------------- */

static int run_quick(struct options *o)
{
	const char *tmpdir = getenv("TMPDIR");
	char dir[PATH_MAX];
	unsigned int k, good = 0, failed = 0;
	double t0 = now();
	int ret;

	if (join(dir, tmpdir && *tmpdir ? tmpdir : "/tmp", "ckpt-XXXXXX"))
		return EXIT_ERROR;
	if (!mkdtemp(dir)) {
		fprintf(stderr, "ckpt: mkdtemp %s: %s\n", dir, strerror(errno));
		return EXIT_ERROR;
	}
	o->dir = quick_dir = dir;
	ret = run_checkpoints(o);
	if (ret != EXIT_OK)
		goto out;

	/* Every checkpoint restores to the memory at its instant. */
	for (k = 0; k < o->checkpoints; k++) {
		if (restore(dir, k) == 0)
			good++;
		else
			failed++;
	}
	printf("summary: %u of %u checkpoints restored and verified, in %.1f s\n",
	       good, o->checkpoints, now() - t0);
	ret = failed ? EXIT_MISMATCH : EXIT_OK;
out:
	remove_quick_dir();
	quick_dir = NULL;
	return ret;
}

/* --- setup -------------------------------------------------------------- */

static void print_usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [--dir DIR] [--size MiB] [--threads N] [--checkpoints K]\n"
		"          [--interval-ms M] [--backend auto|async|sync]\n"
		"       %s --restore [--dir DIR] [--upto N]\n"
		"       %s --quick [--backend NAME]\n"
		"       %s --help\n",
		prog, prog, prog, prog);
}

/* --help asked for it: on stdout, and a success. */
static void help(const char *prog)
{
	print_usage(stdout, prog);
	printf("\n"
	       "Live incremental checkpoints of N writer threads' memory into DIR\n"
	       "(default ckpt.d): a base image, then deltas; --restore rebuilds the\n"
	       "memory from the chain and compares it with each instant's digests.\n"
	       "\n"
	       "  --dir DIR          checkpoint folder (default ckpt.d)\n"
	       "  --size MiB         memory the writers write (default 256)\n"
	       "  --threads N        writer threads (default 4)\n"
	       "  --checkpoints K    checkpoints to take (default 8)\n"
	       "  --interval-ms M    time between checkpoints (default 1000)\n"
	       "  --backend NAME     auto, async or sync (default auto)\n"
	       "  --restore          rebuild and verify the chain in DIR\n"
	       "  --upto N           restore up to checkpoint N only\n"
	       "  --quick            a short run in a temporary folder, as a test\n"
	       "  --help             print this help\n"
	       "\n"
	       "Exit status: 0 verified, 1 a checkpoint or the restore differs,\n"
	       "2 usage or another error, 77 no snapshots on this backend here.\n");
	exit(EXIT_OK);
}

static void usage(const char *prog)
{
	print_usage(stderr, prog);
	exit(EXIT_ERROR);
}

/* A decimal number in [min, max], or a usage error. */
static unsigned long number(const char *prog, const char *arg,
			    unsigned long min, unsigned long max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < min || v > max)
		usage(prog);
	return v;
}

static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "checkpoints", required_argument, NULL, 'k' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "backend", required_argument, NULL, 'b' },
		{ "restore", no_argument, NULL, 'r' },
		{ "upto", required_argument, NULL, 'u' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	unsigned long mib = 0;
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o->dir = optarg;
			break;
		case 's':
			mib = number(argv[0], optarg, 1, 1UL << 20);
			break;
		case 't':
			o->threads =
				(unsigned int)number(argv[0], optarg, 1, 1024);
			break;
		case 'k':
			o->checkpoints = (unsigned int)number(
				argv[0], optarg, 1, MAX_CHECKPOINTS);
			break;
		case 'i':
			o->interval_ms = (unsigned int)number(argv[0], optarg,
							      0, 3600000);
			break;
		case 'b':
			o->backend = uffdwp_backend_from_name(optarg);
			if (o->backend < 0) {
				fprintf(stderr, "ckpt: unknown backend %s\n",
					optarg);
				exit(EXIT_ERROR);
			}
			break;
		case 'r':
			o->restore = 1;
			break;
		case 'u':
			o->upto = (long)number(argv[0], optarg, 0,
					       MAX_CHECKPOINTS - 1);
			break;
		case 'q':
			o->quick = 1;
			break;
		case 'h':
			help(argv[0]);
			break;
		default:
			usage(argv[0]);
		}
	}
	if (optind < argc || (o->restore && o->quick) ||
	    (o->upto >= 0 && !o->restore))
		usage(argv[0]);
	if (o->quick && o->dir) {
		fprintf(stderr, "ckpt: --quick makes its own folder\n");
		usage(argv[0]);
	}
	if (!o->dir)
		o->dir = "ckpt.d";
	/* --quick: small enough for a test under a sanitizer. */
	if (!mib)
		mib = o->quick ? 32 : 256;
	o->size = (size_t)mib << 20;
	if (!o->checkpoints)
		o->checkpoints = o->quick ? 5 : 8;
	if (o->interval_ms == UINT_MAX)
		o->interval_ms = o->quick ? 100 : 1000;
	if (o->size / page < o->threads * 2)
		usage(argv[0]);
}

int main(int argc, char **argv)
{
	struct options o = { .threads = 4,
			     .interval_ms = UINT_MAX,
			     .upto = -1 };
	long r;

	parse_options(argc, argv, &o);
	/* Line-buffered, so a killed run still shows how far it got. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (o.quick)
		return run_quick(&o);
	if (o.restore) {
		/* Damaged, missing or different: the memory is not back. */
		r = restore(o.dir, o.upto);
		if (r == -ERANGE)
			return EXIT_ERROR; /* --upto past the end */
		return r ? EXIT_MISMATCH : EXIT_OK;
	}
	return run_checkpoints(&o);
}
