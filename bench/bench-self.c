/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-track's self-service section: the first write to a tracked page on
 * uffd_sync's self-service mode (the writer resolves its own SIGBUS) set
 * against what else a program could pay for it, in one run, interleaved:
 *
 * - the raw handler-thread round trip, handler on the writer's CPU (the
 *   handler path's best case) and on the other CPU while a busy thread
 *   runs there (what a multi-threaded program pays);
 * - the raw floor: a bare SIGBUS round trip plus one single-page
 *   unprotect, with a handler of the benchmark's own;
 * - the mprotect backend's first write, and uffd_async's.
 *
 * Latencies do not grow with the memory tracked, so each side gets the
 * same sample of pages spread over a region of up to 256 MiB.
 */
#include <signal.h>

#include "raw.h"
#include "report.h"

#define SELF_MAX (256 * MiB)

/* The raw floor's descriptor, for its SIGBUS handler. */
static int floor_uffd = -1;

static void floor_bus(int sig, siginfo_t *info, void *uctx)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)info->si_addr & ~(page_sz - 1),
			   .len = page_sz },
		.mode = UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
	};

	(void)sig;
	(void)uctx;
	if (ioctl(floor_uffd, UFFDIO_WRITEPROTECT, &wp))
		abort();
}

/* Mappings that overlap [p, p + len): 1 unless something split it. */
static int vmas_over(const char *p, size_t len)
{
	unsigned long lo, hi, a = (uintptr_t)p, b = a + len;
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo < b && hi > a)
			n++;
	fclose(f);
	return n;
}

struct side {
	const char *name;
	char *p;
	double *t; /* per repetition: the median first write */
	struct uffdwp_ctx *ctx; /* a library side, or NULL */
	int uffd; /* a raw side's, re-protected after each pass */
};

static void side_pass(struct side *s, const uint32_t *idx, size_t n, size_t len,
		      int r, double *tmp)
{
	struct sigaction raw = { .sa_sigaction = floor_bus,
				 .sa_flags = SA_SIGINFO | SA_NODEFER },
			 lib;
	bool floor = s->uffd == floor_uffd && floor_uffd >= 0;

	/* The floor runs with its own handler in place of the library's
	 * (which would look the page up first, then chain): swapped in and
	 * out around the pass, so the passes can interleave. */
	if (floor && sigaction(SIGBUS, &raw, &lib))
		die("sigaction: %s", strerror(errno));
	s->t[r] = fault_latency(s->p, idx, n, (char)(r + 2), tmp);
	if (floor && sigaction(SIGBUS, &lib, NULL))
		die("sigaction: %s", strerror(errno));
	if (s->ctx)
		check_pages(s->name, lib_collect(s->ctx), n);
	else if (raw_wp(s->uffd, s->p, len, UFFDIO_WRITEPROTECT_MODE_WP))
		die("WP: %s", strerror(errno));
}

static char *raw_side(struct side *s, size_t len, uint64_t features)
{
	s->p = region_map(len, 0);
	memset(s->p, 1, len);
	s->uffd = raw_uffd(features);
	if (s->uffd < 0 || raw_register_wp(s->uffd, s->p, len) ||
	    raw_wp(s->uffd, s->p, len, UFFDIO_WRITEPROTECT_MODE_WP))
		die("raw userfaultfd for %s: %s", s->name,
		    strerror(s->uffd < 0 ? -s->uffd : errno));
	return s->p;
}

static bool lib_side(struct side *s, size_t len, int backend,
		     unsigned int flags)
{
	struct uffdwp_ctx_opts o = { .sz = sizeof(o),
				     .backend = backend,
				     .flags = flags };
	int err;

	s->p = region_map(len, 0);
	memset(s->p, 1, len);
	s->uffd = -1;
	err = uffdwp_ctx_new(&o, &s->ctx);
	if (err) {
		printf("  skipped %s: uffdwp_ctx_new: %s\n", s->name,
		       strerror(-err));
		s->ctx = NULL;
		return false;
	}
	return lib_track(s->ctx, s->p, len, s->name);
}

enum { SELF, FLOOR, SAME, XCPU, MPROT, ASYNC, NSIDES };

void sec_self(size_t len, int reps)
{
	struct side sd[NSIDES] = {
		[SELF] = { .name = "uffd_sync self-service" },
		[FLOOR] = { .name = "raw SIGBUS + unprotect" },
		[SAME] = { .name = "raw handler, same CPU" },
		[XCPU] = { .name = "raw handler, other CPU busy" },
		[MPROT] = { .name = "mprotect" },
		[ASYNC] = { .name = "uffd_async" },
	};
	struct raw_handler same = { .uffd = -1 }, xcpu = { .uffd = -1 };
	struct spinner spin = { 0 };
	size_t npages, nsamp, nx, stride;
	uint32_t *idx, *idx_x;
	pthread_attr_t attr;
	bool have_x = false, have_async;
	int cpu1, vmas;
	double *tmp;

	len = len < SELF_MAX ? len : SELF_MAX;
	npages = len / page_sz;
	nsamp = npages < (quick ? 2048 : 16384) ? npages :
						  (quick ? 2048 : 16384);
	printf("\n== self-service first writes (%zu MiB, %zu pages sampled)\n",
	       len / MiB, nsamp);
	if (!usable(UFFDWP_BACKEND_UFFD_SYNC) ||
	    !(caps.uffd_features & UFFD_FEATURE_SIGBUS)) {
		printf("  skipped: uffd_sync with UFFD_FEATURE_SIGBUS: %s\n",
		       caps.backend[UFFDWP_BACKEND_UFFD_SYNC].reason);
		return;
	}
	stride = npages / nsamp;
	idx = xcalloc(nsamp, sizeof(*idx));
	for (size_t i = 0; i < nsamp; i++)
		idx[i] = (uint32_t)(i * stride);
	/* A cross-CPU wake-up behind a busy thread costs up to a
	 * millisecond: fewer samples there. */
	nx = nsamp / 16 ? nsamp / 16 : 1;
	idx_x = xcalloc(nx, sizeof(*idx_x));
	for (size_t i = 0; i < nx; i++)
		idx_x[i] = (uint32_t)(i * (npages / nx));
	tmp = xcalloc(nsamp, sizeof(double));
	for (int s = 0; s < NSIDES; s++)
		sd[s].t = xcalloc((size_t)reps, sizeof(double));

	pin_cpu0();
	cpu1 = other_cpu();
	if (!lib_side(&sd[SELF], len, UFFDWP_BACKEND_UFFD_SYNC,
		      UFFDWP_CTX_SELF_SERVICE) ||
	    !lib_side(&sd[MPROT], len, UFFDWP_BACKEND_MPROTECT, 0))
		goto out;
	have_async = usable(UFFDWP_BACKEND_UFFD_ASYNC) &&
		     lib_side(&sd[ASYNC], len, UFFDWP_BACKEND_UFFD_ASYNC, 0);
	raw_side(&sd[FLOOR], len, UFFD_FEATURE_SIGBUS);
	floor_uffd = sd[FLOOR].uffd;
	raw_side(&sd[SAME], len, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
	same.uffd = sd[SAME].uffd;
	raw_handler_start(&same);
	have_x = on_cpu(&attr, cpu1);
	if (have_x) {
		raw_side(&sd[XCPU], len, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
		xcpu.uffd = sd[XCPU].uffd;
		if (pthread_create(&xcpu.tid, &attr, raw_handler_main, &xcpu))
			die("pthread_create");
		xcpu.running = true;
	}

	/* Each repetition runs every side once, in a rotating order. */
	for (int r = 0; r < reps; r++) {
		for (int k = 0; k < NSIDES; k++) {
			int s = (k + r) % NSIDES;

			if ((s == XCPU && !have_x) ||
			    (s == ASYNC && !have_async))
				continue;
			if (s != XCPU) {
				side_pass(&sd[s], idx, nsamp, len, r, tmp);
				continue;
			}
			/* The busy thread runs for this pass only: on the
			 * others, a thread of this process on the other CPU
			 * would add a TLB-flush IPI to every protection
			 * change. */
			spin.stop = false;
			if (pthread_create(&spin.tid, &attr, spin_main, &spin))
				die("pthread_create");
			side_pass(&sd[s], idx_x, nx, len, r, tmp);
			spin.stop = true;
			pthread_join(spin.tid, NULL);
		}
	}
	vmas = vmas_over(sd[SELF].p, len);
	printf("  first write, median of %d reps: self-service %.2f us, "
	       "raw floor %.2f us, raw handler %.2f us (same CPU)",
	       reps, med(sd[SELF].t, (size_t)reps) / 1e3,
	       med(sd[FLOOR].t, (size_t)reps) / 1e3,
	       med(sd[SAME].t, (size_t)reps) / 1e3);
	if (have_x)
		printf(", %.2f us (other CPU, busy)",
		       med(sd[XCPU].t, (size_t)reps) / 1e3);
	printf(", mprotect %.2f us", med(sd[MPROT].t, (size_t)reps) / 1e3);
	if (have_async)
		printf(", uffd_async %.2f us",
		       med(sd[ASYNC].t, (size_t)reps) / 1e3);
	printf("\n  self-service region: %d mapping(s) after %d passes "
	       "(no VMA split)\n",
	       vmas, reps);
	print_ratio("selfservice_write_vs_raw_sync",
		    paired(sd[SELF].t, sd[SAME].t, (size_t)reps), 0.9, false);
	if (have_x)
		print_ratio("selfservice_write_vs_raw_sync_xcpu",
			    paired(sd[SELF].t, sd[XCPU].t, (size_t)reps), 0.05,
			    false);
	print_ratio("selfservice_write_vs_raw_floor",
		    paired(sd[SELF].t, sd[FLOOR].t, (size_t)reps), 1.15, false);
	print_ratio("selfservice_write_vs_mprotect",
		    paired(sd[SELF].t, sd[MPROT].t, (size_t)reps), 1.0, false);
	if (have_async)
		print_ratio("selfservice_write_vs_async",
			    paired(sd[SELF].t, sd[ASYNC].t, (size_t)reps), 0,
			    false);
	print_stats("uffd_sync self-service", sd[SELF].ctx);
	if (vmas != 1)
		die("self-service: the region is %d mappings, not 1", vmas);

out:
	if (have_x)
		pthread_attr_destroy(&attr);
	raw_handler_stop(&xcpu);
	raw_handler_stop(&same);
	unpin();
	for (int s = 0; s < NSIDES; s++) {
		uffdwp_ctx_free(sd[s].ctx);
		if (sd[s].uffd >= 0)
			close(sd[s].uffd);
		if (sd[s].p)
			munmap(sd[s].p, len);
		free(sd[s].t);
	}
	floor_uffd = -1;
	free(tmp);
	free(idx);
	free(idx_x);
}
