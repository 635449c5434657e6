/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-track: what the library's dirty tracking costs on top of the kernel
 * mechanism it drives, measured side by side in one run.
 *
 * Absolute times on a shared VM drift by tens of percent between runs, so
 * every comparison is made inside one repetition (the raw mechanism and the
 * library on twin regions, in alternating order) and the median of those
 * per-repetition ratios is reported. Each "raw" side is written here against
 * the kernel ABI alone, doing exactly what the library's backend is meant to
 * do, so a ratio above 1 is the library's own overhead:
 *
 *   - first write to an armed page, uffd_async (the cost every tracked
 *     program pays per dirty page and epoch);
 *   - uffdwp_collect() against a bare PAGEMAP_SCAN loop, 0.1 % to 100 % dirty;
 *   - write-fault latency under uffd_sync against a minimal handler thread;
 *   - re-arming a sync-tracked region: batched collect against one
 *     UFFDIO_WRITEPROTECT per page;
 *   - mprotect against uffd_async first-write cost (why mprotect is only the
 *     fallback);
 *   - collect on a sparse range (16x the populated size) against a dense one;
 *   - the library's own memory per GiB tracked;
 *   - uffd_sync's self-service first write against the raw handler-thread
 *     round trip (same CPU, and other CPU busy), the raw SIGBUS floor,
 *     mprotect and uffd_async;
 *   - live snapshots: idle throughput against memcpy, a writer's fault
 *     latency during one against the raw sync round trip, and a snapshot's
 *     time with writers busy against an idle one's.
 *
 * It prints a human table, `RATIO name value` and `RESULT name value` lines,
 * and exits 0 whatever the numbers are: it is a benchmark, not a test.
 *
 *   bench-track [--size BYTES|NNNk|NNNm|NNNg] [--quick] [--plot FILE.png]
 *               [--only SECTION[,SECTION...]]
 *
 * SECTION: memory, async, mprotect, sync, self, snapshot, sparse, curve,
 * ranges; --only
 * runs just those (e.g. `--only snapshot` while working on snapshots).
 *
 * Sources: this file (main and the tracking sections), bench-self.c (the
 * self-service section), bench-snapshot.c (the live-snapshot section), raw.c (the raw kernel baseline), report.c
 * (medians, RATIO lines, the summary) and bench-common.c (what they share).
 */
#include "raw.h"
#include "report.h"

/* ---- section: library memory --------------------------------------- */

struct memsnap {
	long anon_kb; /* smaps_rollup Anonymous: exact page-table walk */
	long pte_kb; /* status VmPTE: kernel page tables, for context */
	size_t heap; /* mallinfo2 in-use plus mmapped chunks */
};

static long proc_field_kb(const char *path, const char *field)
{
	static char buf[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	char *s;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	s = strstr(buf, field);
	return s ? strtol(s + strlen(field), NULL, 10) : -1;
}

/*
 * Read with open()/read() into a static buffer: stdio would malloc, and
 * the heap is part of what is measured.
 */
static void mem_snap(struct memsnap *m)
{
	struct mallinfo2 mi = mallinfo2();

	m->anon_kb = proc_field_kb("/proc/self/smaps_rollup", "Anonymous:");
	m->pte_kb = proc_field_kb("/proc/self/status", "VmPTE:");
	m->heap = mi.uordblks + mi.hblkhd;
}

/*
 * The library's memory is measured as the growth of the process's
 * anonymous resident memory (smaps_rollup "Anonymous", which walks the page
 * tables and is exact, unlike status' per-CPU-batched RssAnon) across
 * ctx_new + track of an already fully populated range: the tracked pages
 * are resident in both readings, so only what the library allocated and
 * touched (heap, its own mmaps, handler-thread stacks) shows. It runs
 * before any other section so no freed heap is there to be reused. malloc
 * statistics and page-table growth are printed beside it as a cross-check.
 */
static void sec_memory(size_t len)
{
	static const int order[] = {
		UFFDWP_BACKEND_UFFD_ASYNC,
		UFFDWP_BACKEND_UFFD_SYNC,
		UFFDWP_BACKEND_SOFT_DIRTY,
		UFFDWP_BACKEND_MPROTECT,
	};
	double gib = (double)len / GiB;
	bool reported = false;
	char *p;

	printf("\n== library memory per GiB tracked (%zu MiB fully populated)\n",
	       len / MiB);
	p = region_map(len, 0);
	memset(p, 1, len);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		struct memsnap a, b, c, d;
		struct uffdwp_ctx *ctx;
		int be = order[i];
		double kib;

		if (!usable(be)) {
			printf("  skipped %s: %s\n", bname(be),
			       caps.backend[be].reason);
			continue;
		}
		mem_snap(&a);
		ctx = lib_new(be, "memory");
		if (!ctx)
			continue;
		if (!lib_track(ctx, p, len, "memory")) {
			uffdwp_ctx_free(ctx);
			continue;
		}
		mem_snap(&b);
		lib_collect(ctx);
		mem_snap(&c);
		/* Page bitmaps may be faulted in lazily: one dirty page in
		 * every 64 touches every word of them, the steady state of a
		 * program that writes all over its range. */
		for (size_t off = 0; off < len; off += 64 * page_sz)
			((volatile char *)p)[off] = 2;
		lib_collect(ctx);
		mem_snap(&d);
		uffdwp_ctx_free(ctx);
		kib = (double)(b.anon_kb - a.anon_kb);
		printf("  %-10s anon +%ld KiB (%.1f KiB/GiB); after a clean "
		       "collect +%ld KiB, after a 1/64-dirty collect +%ld KiB "
		       "(%.1f KiB/GiB); malloc +%.1f KiB; page tables +%ld "
		       "KiB\n",
		       bname(be), b.anon_kb - a.anon_kb, kib / gib,
		       c.anon_kb - a.anon_kb, d.anon_kb - a.anon_kb,
		       (double)(d.anon_kb - a.anon_kb) / gib,
		       ((double)b.heap - (double)a.heap) / KiB,
		       b.pte_kb - a.pte_kb);
		/* The first usable backend is the one AUTO prefers. */
		if (!reported) {
			printf("RESULT lib_kib_per_gib %.1f\n", kib / gib);
			reported = true;
		}
	}
	if (!reported)
		printf("  skipped: no backend could track here\n");
	if (len < GiB)
		printf("  (a small --size scales fixed per-context costs up)\n");
	munmap(p, len);
}

/* ---- section: uffd_async write and collect -------------------------- */

static void sec_async(size_t len, int reps_w, int reps_c)
{
	static const double pct[] = { 0.1, 1, 10, 100 };
	static const char *const names[] = {
		"async_collect_vs_raw_0.1",
		"async_collect_vs_raw_1",
		"async_collect_vs_raw_10",
		"async_collect_vs_raw_100",
	};
	size_t npages = len / page_sz;
	double *rt = xcalloc((size_t)reps_c, sizeof(double));
	double *lt = xcalloc((size_t)reps_c, sizeof(double));
	uint32_t *idx = xcalloc(npages, sizeof(*idx));
	struct uffdwp_ctx *ctx = NULL;
	char *rp, *lp;
	int uffd;

	printf("\n== uffd_async vs raw WP_ASYNC + PAGEMAP_SCAN (%zu MiB, %zu "
	       "pages)\n",
	       len / MiB, npages);
	if (!usable(UFFDWP_BACKEND_UFFD_ASYNC)) {
		printf("  skipped: uffd_async: %s\n",
		       caps.backend[UFFDWP_BACKEND_UFFD_ASYNC].reason);
		goto out_free;
	}
	rp = region_map(len, 0);
	lp = region_map(len, 0);
	memset(rp, 1, len);
	memset(lp, 1, len);
	uffd = raw_async_setup(rp, len);
	if (uffd < 0) {
		printf("  skipped: raw WP_ASYNC setup: %s\n", strerror(-uffd));
		goto out_unmap;
	}
	ctx = lib_new(UFFDWP_BACKEND_UFFD_ASYNC, "uffd_async");
	if (!ctx || !lib_track(ctx, lp, len, "uffd_async"))
		goto out_close;

	/* Each side re-arms after its pass (untimed), so every timed pass
	 * writes pages that are all armed, as in a steady epoch loop. */
	for (int r = 0; r < reps_w; r++) {
		for (int turn = 0; turn < 2; turn++) {
			bool lib = (turn ^ r) & 1;
			uint64_t t0 = now_ns();
			size_t got;

			write_seq(lib ? lp : rp, len, (char)(r + 2));
			(lib ? lt : rt)[r] = (double)(now_ns() - t0) / npages;
			if (lib) {
				got = lib_collect(ctx);
			} else if (raw_scan(rp, len, &got)) {
				die("PAGEMAP_SCAN: %s", strerror(errno));
			}
			check_pages(lib ? "library" : "raw scan", got, npages);
		}
	}
	printf("  first write per armed page: raw %.0f ns, library %.0f ns "
	       "(median of %d)\n",
	       med(rt, (size_t)reps_w), med(lt, (size_t)reps_w), reps_w);
	print_ratio("async_write_vs_raw", paired(lt, rt, (size_t)reps_w), 1.05,
		    false);

	printf("  collect of random dirty pages (raw PAGEMAP_SCAN loop vs "
	       "uffdwp_collect):\n");
	for (size_t f = 0; f < sizeof(pct) / sizeof(pct[0]); f++) {
		size_t k = frac_pages(npages, pct[f]);
		int reps = pct[f] >= 100 ? (reps_c + 1) / 2 : reps_c;

		for (int r = 0; r < reps; r++) {
			pick_random(idx, npages, k);
			write_idx(rp, &dense, idx, k, (char)r);
			write_idx(lp, &dense, idx, k, (char)r);
			for (int turn = 0; turn < 2; turn++) {
				bool lib = (turn ^ r) & 1;
				uint64_t t0 = now_ns();
				size_t got;

				if (lib) {
					got = lib_collect(ctx);
				} else if (raw_scan(rp, len, &got)) {
					die("PAGEMAP_SCAN: %s",
					    strerror(errno));
				}
				(lib ? lt : rt)[r] = (double)(now_ns() - t0);
				check_pages(lib ? "library" : "raw scan", got,
					    k);
			}
		}
		printf("    %5.1f %% (%7zu pages): raw %8.3f ms, library %8.3f "
		       "ms (median of %d)\n",
		       pct[f], k, med(rt, (size_t)reps) / 1e6,
		       med(lt, (size_t)reps) / 1e6, reps);
		print_ratio(names[f], paired(lt, rt, (size_t)reps), 1.15,
			    false);
	}
	print_stats("uffd_async", ctx);

out_close:
	uffdwp_ctx_free(ctx);
	close(uffd);
out_unmap:
	munmap(rp, len);
	munmap(lp, len);
out_free:
	free(rt);
	free(lt);
	free(idx);
}

/* ---- section: mprotect vs async first write ------------------------- */

static void sec_mprotect(size_t len, int reps)
{
	size_t npages = len / page_sz;
	double *mt = xcalloc((size_t)reps, sizeof(double));
	double *at = xcalloc((size_t)reps, sizeof(double));
	struct uffdwp_ctx *mc = NULL, *ac = NULL;
	char *mp, *ap;

	printf("\n== mprotect vs uffd_async, first write per page (%zu MiB, "
	       "sequential)\n",
	       len / MiB);
	if (!usable(UFFDWP_BACKEND_MPROTECT) ||
	    !usable(UFFDWP_BACKEND_UFFD_ASYNC)) {
		printf("  skipped: needs mprotect and uffd_async (%s; %s)\n",
		       caps.backend[UFFDWP_BACKEND_MPROTECT].reason,
		       caps.backend[UFFDWP_BACKEND_UFFD_ASYNC].reason);
		goto out_free;
	}
	mp = region_map(len, 0);
	ap = region_map(len, 0);
	memset(mp, 1, len);
	memset(ap, 1, len);
	mc = lib_new(UFFDWP_BACKEND_MPROTECT, "mprotect");
	ac = lib_new(UFFDWP_BACKEND_UFFD_ASYNC, "mprotect");
	if (!mc || !ac || !lib_track(mc, mp, len, "mprotect") ||
	    !lib_track(ac, ap, len, "mprotect"))
		goto out;
	/* Sequential writes let mprotect's VMAs merge back behind the
	 * writer: its best case, so the ratio is a lower bound. */
	for (int r = 0; r < reps; r++) {
		for (int turn = 0; turn < 2; turn++) {
			bool m = (turn ^ r) & 1;
			uint64_t t0 = now_ns();

			write_seq(m ? mp : ap, len, (char)(r + 2));
			(m ? mt : at)[r] = (double)(now_ns() - t0) / npages;
			check_pages(m ? "mprotect" : "uffd_async",
				    lib_collect(m ? mc : ac), npages);
		}
	}
	printf("  first write per page: mprotect %.0f ns, uffd_async %.0f ns "
	       "(median of %d)\n",
	       med(mt, (size_t)reps), med(at, (size_t)reps), reps);
	print_ratio("mprotect_vs_async_write", paired(mt, at, (size_t)reps), 5,
		    true);
	print_stats("mprotect", mc);
out:
	uffdwp_ctx_free(mc);
	uffdwp_ctx_free(ac);
	munmap(mp, len);
	munmap(ap, len);
out_free:
	free(mt);
	free(at);
}

/* ---- section: uffd_sync --------------------------------------------- */

static void latency_pass(char *rp, int uffd, struct uffdwp_ctx *ctx, char *lp,
			 size_t len, size_t nsamp, int reps, const char *label,
			 const char *name, double target)
{
	size_t npages = len / page_sz, stride = npages / nsamp;
	uint32_t *idx = xcalloc(nsamp, sizeof(*idx));
	double *tmp = xcalloc(nsamp, sizeof(double));
	double *rt = xcalloc((size_t)reps, sizeof(double));
	double *lt = xcalloc((size_t)reps, sizeof(double));

	for (size_t i = 0; i < nsamp; i++)
		idx[i] = (uint32_t)(i * stride);
	for (int r = 0; r < reps; r++) {
		for (int turn = 0; turn < 2; turn++) {
			bool lib = (turn ^ r) & 1;

			if (lib) {
				lt[r] = fault_latency(lp, idx, nsamp,
						      (char)(r + 2), tmp);
				check_pages("uffd_sync", lib_collect(ctx),
					    nsamp);
			} else {
				rt[r] = fault_latency(rp, idx, nsamp,
						      (char)(r + 2), tmp);
				if (raw_wp(uffd, rp, len,
					   UFFDIO_WRITEPROTECT_MODE_WP))
					die("WP: %s", strerror(errno));
			}
		}
	}
	printf("  write-fault latency, %s: raw %.2f us, library %.2f us "
	       "(median of %zu faults, median of %d reps)\n",
	       label, med(rt, (size_t)reps) / 1e3, med(lt, (size_t)reps) / 1e3,
	       nsamp, reps);
	print_ratio(name, paired(lt, rt, (size_t)reps), target, false);
	free(idx);
	free(tmp);
	free(rt);
	free(lt);
}

static void rearm_pass(char *rp, int uffd, struct uffdwp_ctx *ctx, char *lp,
		       size_t len, int reps, bool runs, const char *name,
		       double target)
{
	size_t npages = len / page_sz, want = frac_pages(npages, 1);
	uint32_t *idx = xcalloc(npages, sizeof(*idx));
	double *rt = xcalloc((size_t)reps, sizeof(double));
	double *lt = xcalloc((size_t)reps, sizeof(double));
	size_t k = 0;

	for (int r = 0; r < reps; r++) {
		k = runs ? pick_runs16(idx, npages, want) :
			   pick_random(idx, npages, want);
		/* Both regions fault through their handlers first. */
		write_idx(rp, &dense, idx, k, (char)(r + 2));
		write_idx(lp, &dense, idx, k, (char)(r + 2));
		for (int turn = 0; turn < 2; turn++) {
			bool lib = (turn ^ r) & 1;
			uint64_t t0 = now_ns();

			if (lib) {
				size_t got = lib_collect(ctx);

				lt[r] = (double)(now_ns() - t0);
				check_pages("uffd_sync", got, k);
				continue;
			}
			for (size_t i = 0; i < k; i++) {
				if (raw_wp(uffd, rp + (size_t)idx[i] * page_sz,
					   page_sz,
					   UFFDIO_WRITEPROTECT_MODE_WP))
					die("WP: %s", strerror(errno));
			}
			rt[r] = (double)(now_ns() - t0);
		}
	}
	printf("  re-arm 1 %% dirty as %s (%zu pages): raw per-page WP %.3f "
	       "ms, library collect %.3f ms (median of %d)\n",
	       runs ? "16-page runs" : "scattered pages", k,
	       med(rt, (size_t)reps) / 1e6, med(lt, (size_t)reps) / 1e6, reps);
	print_ratio(name, paired(rt, lt, (size_t)reps), target, true);
	free(idx);
	free(rt);
	free(lt);
}

static void sec_sync(size_t len, int reps_l, int reps_r)
{
	size_t npages = len / page_sz;
	size_t cap = quick ? 2048 : 16384;
	size_t nsamp = npages < cap ? npages : cap;
	struct raw_handler h = { .uffd = -1 };
	struct uffdwp_ctx *ctx = NULL;
	char *rp, *lp;
	int err;

	printf("\n== uffd_sync vs raw handler thread (%zu MiB)\n", len / MiB);
	if (!usable(UFFDWP_BACKEND_UFFD_SYNC)) {
		printf("  skipped: uffd_sync: %s\n",
		       caps.backend[UFFDWP_BACKEND_UFFD_SYNC].reason);
		return;
	}
	rp = region_map(len, 0);
	lp = region_map(len, 0);
	memset(rp, 1, len);
	memset(lp, 1, len);
	h.uffd = raw_uffd(UFFD_FEATURE_PAGEFAULT_FLAG_WP);
	if (h.uffd < 0) {
		printf("  skipped: raw userfaultfd: %s\n", strerror(-h.uffd));
		goto out_unmap;
	}
	err = raw_register_wp(h.uffd, rp, len);
	if (!err)
		err = raw_wp(h.uffd, rp, len, UFFDIO_WRITEPROTECT_MODE_WP);
	if (err) {
		printf("  skipped: raw WP registration: %s\n", strerror(-err));
		goto out_close;
	}

	pin_cpu0();
	raw_handler_start(&h);
	ctx = lib_new(UFFDWP_BACKEND_UFFD_SYNC, "uffd_sync");
	if (!ctx || !lib_track(ctx, lp, len, "uffd_sync")) {
		unpin();
		goto out;
	}
	latency_pass(rp, h.uffd, ctx, lp, len, nsamp, reps_l,
		     "writer and handlers on one CPU", "sync_fault_vs_raw",
		     1.15);
	rearm_pass(rp, h.uffd, ctx, lp, len, reps_r, true,
		   "sync_rearm_batched_speedup", 5);
	rearm_pass(rp, h.uffd, ctx, lp, len, reps_r, false,
		   "sync_rearm_scattered_speedup", 0);
	print_stats("uffd_sync", ctx);
	raw_handler_stop(&h);
	ctx = uffdwp_ctx_free(ctx);
	unpin();

	/* Left to the scheduler, as a program would run it: new threads now
	 * inherit the full CPU mask. Not a target: whether the handler lands
	 * on the writer's CPU or the other one moves both sides between
	 * ~6 and ~45 us here, from run to run. */
	raw_handler_start(&h);
	ctx = lib_new(UFFDWP_BACKEND_UFFD_SYNC, "uffd_sync unpinned");
	if (!ctx || !lib_track(ctx, lp, len, "uffd_sync unpinned"))
		goto out;
	latency_pass(rp, h.uffd, ctx, lp, len, nsamp / 4 ? nsamp / 4 : 1,
		     quick ? 3 : 5, "threads unpinned",
		     "sync_fault_vs_raw_unpinned", 0);
out:
	raw_handler_stop(&h);
	uffdwp_ctx_free(ctx);
out_close:
	close(h.uffd);
out_unmap:
	munmap(rp, len);
	munmap(lp, len);
}

/* ---- section: sparse vs dense collect ------------------------------- */

/*
 * A sparse heap: @pop bytes populated as 2 MiB chunks, one every 16
 * chunks, over a 16x larger MAP_NORESERVE range. The dense twin holds the
 * same pages back to back, and both get the same dirty pages, so the ratio
 * is what the unpopulated 15/16 of the range costs a collect.
 */
static void sec_sparse(size_t len, int reps)
{
	size_t chunk = 2 * MiB, nchunks, pop, span, npages, k;
	struct layout sparse;
	uint32_t *idx;
	double *st, *dt, *sc, *dc;

	if (len < 2 * chunk)
		chunk = len / 2 / page_sz * page_sz;
	nchunks = len / chunk;
	pop = nchunks * chunk;
	span = 16 * pop;
	npages = pop / page_sz;
	k = frac_pages(npages, 1);
	sparse.chunk = chunk / page_sz;
	sparse.stride = 16 * sparse.chunk;
	printf("\n== async collect: %zu MiB sparse range (%zu MiB populated "
	       "in %zu KiB chunks) vs %zu MiB dense, 1 %% dirty\n",
	       span / MiB, pop / MiB, chunk / KiB, pop / MiB);
	if (!usable(UFFDWP_BACKEND_UFFD_ASYNC)) {
		printf("  skipped: uffd_async: %s\n",
		       caps.backend[UFFDWP_BACKEND_UFFD_ASYNC].reason);
		return;
	}
	idx = xcalloc(npages, sizeof(*idx));
	st = xcalloc((size_t)reps, sizeof(double));
	dt = xcalloc((size_t)reps, sizeof(double));
	sc = xcalloc((size_t)reps, sizeof(double));
	dc = xcalloc((size_t)reps, sizeof(double));

	/* Library first, then the raw mechanism on fresh regions, so at most
	 * two populated copies exist at a time. */
	for (int raw = 0; raw < 2; raw++) {
		char *sp = region_map(span, MAP_NORESERVE);
		char *dp = region_map(pop, 0);
		struct uffdwp_ctx *sctx = NULL, *dctx = NULL;
		int sfd = -1, dfd = -1;
		long pte0, pte_s, pte_d;
		double ts, td;
		uint64_t t0;

		for (size_t c = 0; c < nchunks; c++)
			memset(sp + c * 16 * chunk, 1, chunk);
		memset(dp, 1, pop);
		pte0 = proc_field_kb("/proc/self/status", "VmPTE:");
		t0 = now_ns();
		if (raw) {
			sfd = raw_async_setup(sp, span);
		} else {
			sctx = lib_new(UFFDWP_BACKEND_UFFD_ASYNC, "sparse");
			if (sctx && !lib_track(sctx, sp, span, "sparse"))
				sctx = uffdwp_ctx_free(sctx);
		}
		ts = (double)(now_ns() - t0);
		/* Page tables the arming allocated show what every later
		 * collect has to walk. */
		pte_s = proc_field_kb("/proc/self/status", "VmPTE:");
		t0 = now_ns();
		if (raw) {
			dfd = raw_async_setup(dp, pop);
		} else {
			dctx = lib_new(UFFDWP_BACKEND_UFFD_ASYNC, "sparse");
			if (dctx && !lib_track(dctx, dp, pop, "sparse"))
				dctx = uffdwp_ctx_free(dctx);
		}
		td = (double)(now_ns() - t0);
		pte_d = proc_field_kb("/proc/self/status", "VmPTE:");
		if (raw ? (sfd < 0 || dfd < 0) : (!sctx || !dctx)) {
			if (raw)
				printf("  skipped raw: WP_ASYNC setup: %s\n",
				       strerror(-(sfd < 0 ? sfd : dfd)));
			goto next;
		}
		for (int r = 0; r < reps; r++) {
			pick_random(idx, npages, k);
			write_idx(sp, &sparse, idx, k, (char)(r + 2));
			write_idx(dp, &dense, idx, k, (char)(r + 2));
			for (int turn = 0; turn < 2; turn++) {
				bool s = (turn ^ r) & 1;
				size_t got = 0;

				/* Second collect: the clean walk alone. */
				for (int pass = 0; pass < 2; pass++) {
					double *out = pass ? (s ? sc : dc) :
							     (s ? st : dt);

					t0 = now_ns();
					if (!raw)
						got = lib_collect(s ? sctx :
								      dctx);
					else if (raw_scan(s ? sp : dp,
							  s ? span : pop, &got))
						die("PAGEMAP_SCAN: %s",
						    strerror(errno));
					out[r] = (double)(now_ns() - t0);
					check_pages(s ? "sparse" : "dense", got,
						    pass ? 0 : k);
				}
			}
		}
		printf("  %s: arm sparse %.2f ms (page tables +%ld KiB) / dense "
		       "%.2f ms (+%ld KiB); collect 1 %% sparse %.3f ms / dense "
		       "%.3f ms; clean collect %.3f / %.3f ms\n",
		       raw ? "raw    " : "library", ts / 1e6, pte_s - pte0,
		       td / 1e6, pte_d - pte_s, med(st, (size_t)reps) / 1e6,
		       med(dt, (size_t)reps) / 1e6, med(sc, (size_t)reps) / 1e6,
		       med(dc, (size_t)reps) / 1e6);
		if (raw)
			printf("  raw sparse/dense: %.3f (for reference)\n",
			       paired(st, dt, (size_t)reps));
		else
			print_ratio("sparse16g_vs_dense1g_collect",
				    paired(st, dt, (size_t)reps), 1.5, false);
next:
		uffdwp_ctx_free(sctx);
		uffdwp_ctx_free(dctx);
		if (sfd >= 0)
			close(sfd);
		if (dfd >= 0)
			close(dfd);
		munmap(sp, span);
		munmap(dp, pop);
	}
	free(idx);
	free(st);
	free(dt);
	free(sc);
	free(dc);
}

/* ---- section: cost per dirty page, every backend -------------------- */

#define N_PCT 4
#define N_SERIES 5

static const double curve_pct[N_PCT] = { 0.1, 1, 10, 100 };

struct series {
	const char *name;
	int backend; /* -1: raw async */
	bool done;
	double write_ns[N_PCT]; /* per dirty page */
	double collect_ns[N_PCT];
};

static void run_series(struct series *s, size_t len, int reps)
{
	size_t npages = len / page_sz;
	uint32_t *idx = xcalloc(npages, sizeof(*idx));
	double *w = xcalloc((size_t)reps, sizeof(double));
	double *c = xcalloc((size_t)reps, sizeof(double));
	struct uffdwp_ctx *ctx = NULL;
	char *p = region_map(len, 0);
	int fd = -1;

	memset(p, 1, len);
	if (s->backend < 0) {
		fd = raw_async_setup(p, len);
		if (fd < 0) {
			printf("  skipped %s: %s\n", s->name, strerror(-fd));
			goto out;
		}
	} else {
		ctx = lib_new(s->backend, s->name);
		if (!ctx || !lib_track(ctx, p, len, s->name))
			goto out;
	}
	for (int f = 0; f < N_PCT; f++) {
		size_t k = frac_pages(npages, curve_pct[f]);

		for (int r = 0; r < reps; r++) {
			uint64_t t0, t1;
			size_t got;

			pick_random(idx, npages, k);
			t0 = now_ns();
			write_idx(p, &dense, idx, k, (char)(r + 2));
			t1 = now_ns();
			if (ctx)
				got = lib_collect(ctx);
			else if (raw_scan(p, len, &got))
				die("PAGEMAP_SCAN: %s", strerror(errno));
			w[r] = (double)(t1 - t0) / (double)k;
			c[r] = (double)(now_ns() - t1) / (double)k;
			check_pages(s->name, got, k);
		}
		s->write_ns[f] = median(w, (size_t)reps);
		s->collect_ns[f] = median(c, (size_t)reps);
	}
	s->done = true;
out:
	uffdwp_ctx_free(ctx);
	if (fd >= 0)
		close(fd);
	munmap(p, len);
	free(idx);
	free(w);
	free(c);
}

static void plot(const char *png, const struct series *ser, int n)
{
	char dat[] = "/tmp/bench-track-XXXXXX";
	FILE *d, *g;
	int fd, idx = 0;

	if (system("command -v gnuplot >/dev/null 2>&1")) {
		printf("  --plot: gnuplot is not installed, %s not drawn\n",
		       png);
		return;
	}
	fd = mkstemp(dat);
	if (fd < 0 || !(d = fdopen(fd, "w")))
		die("mkstemp: %s", strerror(errno));
	for (int i = 0; i < n; i++) {
		if (!ser[i].done)
			continue;
		fprintf(d, "# %s\n", ser[i].name);
		for (int f = 0; f < N_PCT; f++)
			fprintf(d, "%g %g\n", curve_pct[f],
				ser[i].write_ns[f] + ser[i].collect_ns[f]);
		fprintf(d, "\n\n");
	}
	fclose(d);
	g = popen("gnuplot", "w");
	if (!g)
		die("popen gnuplot: %s", strerror(errno));
	fprintf(g,
		"set terminal png size 900,600\n"
		"set output '%s'\n"
		"set logscale xy\n"
		"set grid\n"
		"set key top right\n"
		"set title 'libuffdwp: tracking cost per dirty page "
		"(first write + collect)'\n"
		"set xlabel 'dirty pages (%% of region)'\n"
		"set ylabel 'ns per dirty page'\n"
		"plot ",
		png);
	for (int i = 0; i < n; i++) {
		if (!ser[i].done)
			continue;
		fprintf(g, "%s'%s' index %d with linespoints lw 2 title '%s'",
			idx ? ", " : "", dat, idx, ser[i].name);
		idx++;
	}
	fprintf(g, "\n");
	if (pclose(g))
		printf("  --plot: gnuplot failed, %s may be incomplete\n", png);
	else
		printf("  plot written to %s\n", png);
	unlink(dat);
}

/*
 * Not a target: the whole cost of a dirty page per backend (its first
 * write plus its share of the collect), which is what a program choosing
 * a backend pays. The region is capped because mprotect splits a VMA per
 * scattered dirty page and would hit vm.max_map_count on large ones.
 */
static void sec_curve(size_t len, int reps, const char *png)
{
	struct series ser[N_SERIES] = {
		{ .name = "raw async", .backend = -1 },
		{ .name = "uffd_async", .backend = UFFDWP_BACKEND_UFFD_ASYNC },
		{ .name = "uffd_sync", .backend = UFFDWP_BACKEND_UFFD_SYNC },
		{ .name = "soft_dirty", .backend = UFFDWP_BACKEND_SOFT_DIRTY },
		{ .name = "mprotect", .backend = UFFDWP_BACKEND_MPROTECT },
	};

	printf("\n== cost per dirty page by backend (%zu MiB, random pages, "
	       "median of %d)\n",
	       len / MiB, reps);
	for (int i = 0; i < N_SERIES; i++) {
		int be = ser[i].backend < 0 ? UFFDWP_BACKEND_UFFD_ASYNC :
					      ser[i].backend;

		if (!usable(be)) {
			printf("  skipped %s: %s\n", ser[i].name,
			       caps.backend[be].reason);
			continue;
		}
		run_series(&ser[i], len, reps);
	}
	printf("  %-11s %8s %14s %14s %14s\n", "backend", "dirty %",
	       "write ns/pg", "collect ns/pg", "total ns/pg");
	for (int i = 0; i < N_SERIES; i++) {
		if (!ser[i].done)
			continue;
		for (int f = 0; f < N_PCT; f++)
			printf("  %-11s %8.1f %14.0f %14.0f %14.0f\n",
			       ser[i].name, curve_pct[f], ser[i].write_ns[f],
			       ser[i].collect_ns[f],
			       ser[i].write_ns[f] + ser[i].collect_ns[f]);
	}
	if (png)
		plot(png, ser, N_SERIES);
}

/* ---- main ----------------------------------------------------------- */

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'k':
	case 'K':
		v *= KiB;
		end++;
		break;
	case 'm':
	case 'M':
		v *= MiB;
		end++;
		break;
	case 'g':
	case 'G':
		v *= GiB;
		end++;
		break;
	}
	if (end == s || *end)
		return 0;
	return (size_t)v;
}

/* ---- many ranges ------------------------------------------------------ */

/*
 * Track @n one-page ranges, each its own mapping (every other page of a
 * reservation is made writable), with @backend: the seconds it takes.
 * Garbage collectors track many heap sections; a track that re-read all
 * of /proc/self/maps made n tracks cost O(n^2).
 */
static double track_ranges(int backend, size_t n)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), i;
	struct uffdwp_ctx *ctx;
	uint64_t t0, t1;
	char *base;
	int err;

	base = mmap(NULL, 2 * n * ps, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return -1;
	for (i = 0; i < n; i++)
		if (mprotect(base + 2 * i * ps, ps, PROT_READ | PROT_WRITE)) {
			munmap(base, 2 * n * ps);
			return -1;
		}
	ctx = lib_new(backend, "ranges");
	if (!ctx) {
		munmap(base, 2 * n * ps);
		return -1;
	}
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		err = uffdwp_track(ctx, base + 2 * i * ps, ps, 0);
		if (err < 0) {
			printf("  skipped ranges: uffdwp_track(%s) #%zu: %s\n",
			       bname(backend), i, strerror(-err));
			break;
		}
	}
	t1 = now_ns();
	uffdwp_ctx_free(ctx);
	munmap(base, 2 * n * ps);
	return i == n ? (double)(t1 - t0) / 1e9 : -1;
}

/* A 1 TiB MAP_NORESERVE range, almost all of it never touched. */
static void track_sparse_tib(void)
{
	size_t len = 1ULL << 40;
	struct uffdwp_ctx *ctx;
	uint64_t t0, t1;
	char *p;
	int err;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		printf("  skipped 1 TiB: mmap: %s\n", strerror(errno));
		return;
	}
	p[0] = 1;
	p[len / 2] = 1;
	ctx = lib_new(UFFDWP_BACKEND_UFFD_ASYNC, "ranges");
	if (ctx) {
		t0 = now_ns();
		err = uffdwp_track(ctx, p, len, 0);
		t1 = now_ns();
		if (err)
			printf("  skipped 1 TiB: uffdwp_track: %s\n",
			       strerror(-err));
		else
			printf("  track of a 1 TiB sparse range (uffd_async): %.3f s\n",
			       (double)(t1 - t0) / 1e9);
		uffdwp_ctx_free(ctx);
	}
	munmap(p, len);
}

static void sec_ranges(bool short_run)
{
	static const int backends[] = { UFFDWP_BACKEND_UFFD_ASYNC,
					UFFDWP_BACKEND_UFFD_SYNC,
					UFFDWP_BACKEND_MPROTECT };
	size_t small = short_run ? 200 : 1000, big = 10 * small;
	char name[64];
	double t1, t2;
	size_t b;

	printf("\n== tracking many ranges: %zu vs %zu one-page ranges\n", small,
	       big);
	for (b = 0; b < sizeof(backends) / sizeof(backends[0]); b++) {
		t1 = track_ranges(backends[b], small);
		t2 = track_ranges(backends[b], big);
		if (t1 <= 0 || t2 <= 0)
			continue;
		printf("  %-10s %zu ranges %.3f s (%.1f us each), %zu ranges %.3f s (%.1f us each)\n",
		       bname(backends[b]), small, t1, t1 * 1e6 / (double)small,
		       big, t2, t2 * 1e6 / (double)big);
		snprintf(name, sizeof(name), "track_10k_ranges_vs_1k_%s",
			 bname(backends[b]));
		print_ratio(name, t2 / t1, 12, false);
	}
	if (!short_run)
		track_sparse_tib();
}

static const char *const sections[] = {
	"memory", "async", "mprotect", "sync", "snapshot",
	"sparse", "curve", "ranges",   "self",
};

static const char *only; /* comma-separated sections, or NULL: all */

static bool want(const char *section)
{
	size_t n = strlen(section);

	for (const char *s = only; s; s = strchr(s, ',')) {
		if (*s == ',')
			s++;
		if (!strncmp(s, section, n) && (s[n] == ',' || !s[n]))
			return true;
	}
	return !only;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-track [--size BYTES|NNNk|NNNm|NNNg] "
			"[--quick] [--plot FILE.png] [--only SECTION[,...]]\n"
			"sections:");
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		fprintf(stderr, " %s", sections[i]);
	fprintf(stderr, "\n");
	exit(2);
}

/* Every name in @list must be a section. */
static bool only_valid(const char *list)
{
	for (const char *s = list; *s;) {
		size_t n = strcspn(s, ",");
		bool found = false;

		for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]);
		     i++)
			found |= strlen(sections[i]) == n &&
				 !strncmp(s, sections[i], n);
		if (!found)
			return false;
		s += n;
		if (*s)
			s++;
	}
	return true;
}

int main(int argc, char **argv)
{
	size_t len = 0;
	const char *png = NULL;
	int err;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--size") && i + 1 < argc)
			len = parse_size(argv[++i]);
		else if (!strcmp(argv[i], "--plot") && i + 1 < argc)
			png = argv[++i];
		else if (!strcmp(argv[i], "--only") && i + 1 < argc &&
			 only_valid(argv[i + 1]))
			only = argv[++i];
		else
			usage();
	}
	page_sz = (size_t)sysconf(_SC_PAGESIZE);
	if (!len)
		len = quick ? 64 * MiB : GiB;
	len = len / page_sz * page_sz;
	if (len < 4 * MiB) {
		fprintf(stderr, "bench-track: --size must be at least 4m\n");
		usage();
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	err = uffdwp_probe(&caps);
	if (err < 0)
		die("uffdwp_probe: %s", strerror(-err));
	pmfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pmfd < 0)
		die("open /proc/self/pagemap: %s", strerror(errno));
	printf("bench-track: libuffdwp %s, kernel %s, %zu MiB, %s, "
	       "%ld CPUs\n",
	       uffdwp_version(), caps.kernel_release, len / MiB,
	       quick ? "quick" : "full", sysconf(_SC_NPROCESSORS_ONLN));
	for (int b = 1; b <= UFFDWP_BACKEND_MPROTECT; b++)
		printf("  backend %-10s %s: %s\n", bname(b),
		       usable(b) ? "usable  " : "unusable",
		       caps.backend[b].reason ? caps.backend[b].reason : "");

	/* Memory first: later sections would leave freed heap behind. */
	if (want("memory"))
		sec_memory(len);
	if (want("async"))
		sec_async(len, quick ? 3 : 7, quick ? 5 : 11);
	if (want("mprotect"))
		sec_mprotect(len < 256 * MiB ? len : 256 * MiB, quick ? 3 : 5);
	if (want("sync"))
		sec_sync(len, quick ? 3 : 5, quick ? 5 : 9);
	if (want("self"))
		sec_self(len, quick ? 3 : 7);
	if (want("snapshot"))
		sec_snapshot(len, quick ? 3 : 7);
	if (want("sparse"))
		sec_sparse(len, quick ? 3 : 7);
	if (want("ranges"))
		sec_ranges(quick);
	if (want("curve"))
		sec_curve(len < (quick ? 16 : 64) * MiB ?
				  len :
				  (quick ? 16 : 64) * MiB,
			  3, png);
	summary();
	close(pmfd);
	free(scratch);
	return 0;
}
