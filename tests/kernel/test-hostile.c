/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel suite: what a program may do that the library's designed paths
 * did not expect, each found by trying to break it.
 *
 * - segv-blocked: a writer thread with every signal blocked (thread pools
 *   start that way). On uffd_async a snapshot moves its range behind a
 *   gate that relies on SIGSEGV; a write there from such a thread used to
 *   kill the process (the kernel forces a blocked SIGSEGV to its default
 *   action). The snapshots must be exact and the process must live. The
 *   mprotect backend cannot avoid the signal: tracking refuses with
 *   -EDEADLK while such a thread exists, unless the caller vouches for
 *   it. A thread inside fork() is not one, although urcu-bp's fork
 *   handler blocks all its signals for the fork's milliseconds. The
 *   ungated move stays point-in-time when the handler resolves writes
 *   between its protect and its count of every page (a hook widens that
 *   window).
 * - replaced: the program unmaps tracked memory and maps a guard page, a
 *   read-only file or shared memory there. The mprotect backend used to
 *   make them writable (its handler, collect and untrack all changed their
 *   protection) and to report their pages. Now it leaves them alone, and
 *   a write there reaches the program's own SIGSEGV handler. A private
 *   anonymous read-only replacement cannot be told from the tracked
 *   mapping (uffdwp.h says so); the test shows that documented limit.
 * - errors: the error each documented situation gives. A collect whose
 *   callback returns a positive value gives -ECANCELED and loses nothing;
 *   out of file descriptors, track and collect give -EMFILE and a
 *   snapshot fails with it (it used to end "cancelled: unmapped"); a
 *   snapshot over a range partly replaced by a PROT_NONE mapping ends
 *   -ECANCELED with cause "unmapped" (uffd_async gave -EFAULT).
 * - self-service (uffd_sync's SIGBUS mode): tracking refuses with
 *   -EDEADLK while a thread blocks SIGBUS; a thread that blocks it and
 *   writes a tracked page, or a program that resets SIGBUS to the default,
 *   dies of SIGBUS at that write (documented; never a silent loss); a
 *   program handler installed after the library's that chains to it keeps
 *   tracking exact.
 * - own-memory: a garbage collector tracks every writable anonymous
 *   mapping, the library's own among them. Tracking the handler thread's
 *   stack, or the library's .bss, hung uffd_sync (the library wrote the
 *   memory it had just protected, with fault resolution paused), and
 *   killed the process on mprotect. Now such ranges are refused with
 *   -EBUSY, and everything else can be tracked, written and collected.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

#include "../common.h"
#include "testhooks.h"
#include "uapi-compat.h"

#define NPAGES 256
#define SNAPSHOTS 20

static size_t ps;
static struct uffdwp_caps caps;

/* --- segv-blocked ------------------------------------------------------ */

/* The page write number @k goes to: spread over the range. */
static size_t page_of(uint64_t k)
{
	return (size_t)((k * 2654435761u) % NPAGES);
}

struct writer {
	pthread_t tid;
	char *mem;
	atomic_bool stop;
	atomic_bool blocked; /* set once its mask blocks everything */
	atomic_uint_fast64_t last; /* writes done */
};

/* Writes 1, 2, 3... each into page_of(k), with every signal blocked. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	sigset_t all;
	uint64_t k = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	atomic_store(&w->blocked, true);
	while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
		k++;
		*(volatile uint64_t *)(w->mem + page_of(k) * ps) = k;
		atomic_store_explicit(&w->last, k, memory_order_release);
	}
	return NULL;
}

static void writer_start(struct writer *w, char *mem)
{
	memset(w, 0, sizeof(*w));
	w->mem = mem;
	ck_assert_int_eq(pthread_create(&w->tid, NULL, writer_main, w), 0);
	while (!atomic_load(&w->blocked))
		usleep(100);
}

static void writer_stop(struct writer *w)
{
	atomic_store(&w->stop, true);
	pthread_join(w->tid, NULL);
}

/*
 * The point-in-time oracle for one writer: K, the largest number in the
 * image, is the last write before the instant (the writer's program
 * order), so every page must hold the last number <= K written to it.
 */
static void check_point_in_time(const char *img)
{
	static uint64_t expect[NPAGES];
	uint64_t k, max = 0, v;
	size_t p;

	for (p = 0; p < NPAGES; p++) {
		memcpy(&v, img + p * ps, sizeof(v));
		if (v > max)
			max = v;
	}
	memset(expect, 0, sizeof(expect));
	for (k = 1; k <= max; k++)
		expect[page_of(k)] = k;
	for (p = 0; p < NPAGES; p++) {
		memcpy(&v, img + p * ps, sizeof(v));
		ck_assert_msg(
			v == expect[p],
			"page %zu holds write %llu, not %llu (instant at write %llu)",
			p, (unsigned long long)v, (unsigned long long)expect[p],
			(unsigned long long)max);
	}
}

/* A collect that only resets what is reported. */
static int mark_run(void *arg, void *addr, size_t len)
{
	(void)arg;
	(void)addr;
	(void)len;
	return 0;
}

struct seen {
	char *base;
	unsigned char page[NPAGES];
};

static int note_run(void *arg, void *addr, size_t len)
{
	struct seen *s = arg;
	size_t p = (size_t)((char *)addr - s->base) / ps, n = len / ps;

	while (n--)
		s->page[p++] = 1;
	return 0;
}

/* A uffd_async context tracking NPAGES populated pages, and a buffer of
 * the same size for images. */
static struct uffdwp_ctx *async_tracking(char **mem, char **img)
{
	struct uffdwp_ctx_opts o = { .sz = sizeof(o),
				     .backend = UFFDWP_BACKEND_UFFD_ASYNC };
	struct uffdwp_ctx *ctx;

	*mem = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	*img = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ck_assert_ptr_ne(*mem, MAP_FAILED);
	ck_assert_ptr_ne(*img, MAP_FAILED);
	ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), 0);
	ck_assert_int_eq(uffdwp_track(ctx, *mem, NPAGES * ps, 0), 0);
	return ctx;
}

static void async_tracking_free(struct uffdwp_ctx *ctx, char *mem, char *img)
{
	uffdwp_ctx_free(ctx);
	munmap(mem, NPAGES * ps);
	munmap(img, NPAGES * ps);
}

/* A whole snapshot of @mem into @img, exact and point in time. */
static void snapshot_checked(struct uffdwp_ctx *ctx, char *mem, char *img)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *sink;

	ck_assert_int_eq(uffdwp_sink_memory_new(img, NPAGES * ps, &sink), 0);
	ck_assert_int_eq(uffdwp_snapshot_start(ctx, mem, NPAGES * ps, sink,
					       NULL, &snap),
			 0);
	ck_assert_int_eq(uffdwp_snapshot_wait(snap, 30000), 0);
	ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
	ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_EXACT);
	uffdwp_snapshot_free(snap);
	uffdwp_sink_free(sink);
	check_point_in_time(img);
}

START_TEST(segv_blocked_writer_survives_snapshots)
{
	struct uffdwp_ctx *ctx;
	struct writer w;
	struct seen seen;
	uint64_t from, to, k;
	char *mem, *img;
	int i;

	ctx = async_tracking(&mem, &img);
	writer_start(&w, mem);
	for (i = 0; i < SNAPSHOTS; i++) {
		snapshot_checked(ctx, mem, img);
		ck_assert_int_ge(uffdwp_collect(ctx, mark_run, NULL), 0);
	}
	/* Nothing written since a collect goes unreported, moves or not. */
	ck_assert_int_ge(uffdwp_collect(ctx, mark_run, NULL), 0);
	from = atomic_load(&w.last);
	usleep(20000);
	to = atomic_load(&w.last);
	writer_stop(&w);
	memset(&seen, 0, sizeof(seen));
	seen.base = mem;
	ck_assert_int_ge(uffdwp_collect(ctx, note_run, &seen), 0);
	for (k = from + 1; k <= to && k <= from + 4 * NPAGES; k++)
		ck_assert_msg(seen.page[page_of(k)],
			      "page %zu written (write %llu) not reported",
			      page_of(k), (unsigned long long)k);
	async_tracking_free(ctx, mem, img);
}
END_TEST

/*
 * The ungated move's count of every page as written must go through the
 * harvest's re-protect: a write the handler resolved between the protect
 * and the count left a writable page that, counted straight into the
 * pending set, stayed writable across the instant (a write after it then
 * skipped copy-before-write). The hook holds that window open.
 */
START_TEST(ungated_move_is_point_in_time)
{
	struct uffdwp_ctx *ctx;
	struct writer w;
	char *mem, *img;
	int i;

	ctx = async_tracking(&mem, &img);
	uffdwp_test_hooks.async_ungated_linger_us = 20000;
	writer_start(&w, mem);
	for (i = 0; i < 5; i++)
		snapshot_checked(ctx, mem, img);
	writer_stop(&w);
	uffdwp_test_hooks.async_ungated_linger_us = 0;
	async_tracking_free(ctx, mem, img);
}
END_TEST

START_TEST(mprotect_refuses_while_a_thread_blocks_segv)
{
	struct uffdwp_ctx_opts o = { .sz = sizeof(o),
				     .backend = UFFDWP_BACKEND_MPROTECT };
	struct uffdwp_ctx *ctx;
	struct writer w;
	char *mem, *other;

	mem = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	other = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ck_assert_ptr_ne(mem, MAP_FAILED);
	ck_assert_ptr_ne(other, MAP_FAILED);
	ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), 0);
	/* The writer writes @other, not the range: refused all the same,
	 * since nothing tells which memory a thread will write. */
	writer_start(&w, other);
	ck_assert_int_eq(uffdwp_track(ctx, mem, NPAGES * ps, 0), -EDEADLK);
	/* Unless the caller vouches for that thread. */
	ck_assert_int_eq(uffdwp_track(ctx, mem, NPAGES * ps,
				      UFFDWP_TRACK_SIGSEGV_BLOCKERS),
			 0);
	mem[2 * ps] = 1;
	ck_assert_int_eq(uffdwp_collect(ctx, mark_run, NULL), 1);
	ck_assert_int_eq(uffdwp_untrack(ctx, mem, NPAGES * ps), 0);
	writer_stop(&w);
	/* Refused cleanly: nothing protected, and it tracks once the
	 * thread is gone. */
	mem[0] = 1;
	ck_assert_int_eq(uffdwp_track(ctx, mem, NPAGES * ps, 0), 0);
	mem[ps] = 1;
	ck_assert_int_eq(uffdwp_collect(ctx, mark_run, NULL), 1);
	uffdwp_ctx_free(ctx);
	munmap(mem, NPAGES * ps);
	munmap(other, NPAGES * ps);
}
END_TEST

/*
 * A thread inside fork() is no SIGSEGV blocker. liburcu-bp's fork handler
 * blocks every signal in the forking thread until the fork returns; with a
 * large address space that takes milliseconds, long enough for the
 * mprotect backend's three looks, and a track in another thread failed
 * with -EDEADLK (the kernel matrix caught it in a 6.12 guest). Here the
 * hooks make the overlap certain: the tracker waits just before its look
 * for HOLD_MS, and the forking thread, from HOLD_MS / 2 on, waits as long
 * inside the library's fork handler, after urcu-bp blocked its signals.
 */
struct fork_track {
	pthread_t tid;
	struct uffdwp_ctx *ctx;
	char *mem;
	int ret;
};

static void *fork_tracker_main(void *arg)
{
	struct fork_track *ft = arg;

	ft->ret = uffdwp_track(ft->ctx, ft->mem, NPAGES * ps, 0);
	return NULL;
}

START_TEST(a_forking_thread_blocks_no_segv)
{
	const unsigned int hold_ms = 200;
	struct uffdwp_ctx_opts o = { .sz = sizeof(o),
				     .backend = UFFDWP_BACKEND_MPROTECT };
	struct fork_track ft = { 0 };
	struct timespec t0, t1;
	int status, waited;
	double ms;
	pid_t pid;

	ft.mem = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ck_assert_ptr_ne(ft.mem, MAP_FAILED);
	ck_assert_int_eq(uffdwp_ctx_new(&o, &ft.ctx), 0);
	uffdwp_test_hooks.hold_ms = hold_ms;
	uffdwp_test_hooks.held = HOLD_NONE;
	uffdwp_test_hooks.hold = HOLD_TRACK_LOOK;
	ck_assert_int_eq(pthread_create(&ft.tid, NULL, fork_tracker_main, &ft),
			 0);
	for (waited = 0; uffdwp_test_hooks.held != HOLD_TRACK_LOOK; waited++) {
		ck_assert_msg(waited < 5000,
			      "the tracker never reached its look");
		usleep(1000);
	}
	usleep(hold_ms / 2 * 1000);
	uffdwp_test_hooks.hold = HOLD_FORK;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid == 0)
		_exit(0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	pthread_join(ft.tid, NULL);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	     (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("fork: held %.0f ms in the fork handler, the track meanwhile gave %d\n",
	       ms, ft.ret);
	/* Else the fork did not overlap the look. */
	ck_assert_int_eq(uffdwp_test_hooks.held, HOLD_FORK);
	ck_assert_int_eq(ft.ret, 0);
	ft.mem[0] = 1;
	ck_assert_int_eq(uffdwp_collect(ft.ctx, mark_run, NULL), 1);
	uffdwp_ctx_free(ft.ctx);
	munmap(ft.mem, NPAGES * ps);
}
END_TEST

/* --- self-service: SIGBUS ---------------------------------------------- */

static struct uffdwp_ctx *self_ctx(void)
{
	struct uffdwp_ctx_opts o = { .sz = sizeof(o),
				     .backend = UFFDWP_BACKEND_UFFD_SYNC,
				     .flags = UFFDWP_CTX_SELF_SERVICE };
	struct uffdwp_ctx *ctx;

	ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), 0);
	return ctx;
}

/* @n populated pages. */
static char *map_pages(size_t n)
{
	char *p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

/* While a thread blocks SIGBUS, a self-service track is refused (its first
 * tracked write would kill the process), unless the caller vouches. */
START_TEST(self_refuses_while_a_thread_blocks_sigbus)
{
	struct uffdwp_ctx *ctx = self_ctx();
	char *mem = map_pages(NPAGES), *other = map_pages(NPAGES);
	struct writer w;

	writer_start(&w, other);
	ck_assert_int_eq(uffdwp_track(ctx, mem, NPAGES * ps, 0), -EDEADLK);
	/* The flag's name for both signals. */
	ck_assert_int_eq(uffdwp_track(ctx, mem, NPAGES * ps,
				      UFFDWP_TRACK_SIGNAL_BLOCKERS),
			 0);
	*(volatile char *)(mem + ps) = 1;
	ck_assert_int_eq(uffdwp_collect(ctx, mark_run, NULL), 1);
	ck_assert_int_eq(uffdwp_untrack(ctx, mem, NPAGES * ps), 0);
	writer_stop(&w);
	ck_assert_int_eq(uffdwp_track(ctx, mem, NPAGES * ps, 0), 0);
	*(volatile char *)(mem + 2 * ps) = 1;
	ck_assert_int_eq(uffdwp_collect(ctx, mark_run, NULL), 1);
	uffdwp_ctx_free(ctx);
	munmap(mem, NPAGES * ps);
	munmap(other, NPAGES * ps);
}
END_TEST

static void *blocked_write_main(void *arg)
{
	sigset_t bus;

	sigemptyset(&bus);
	sigaddset(&bus, SIGBUS);
	pthread_sigmask(SIG_BLOCK, &bus, NULL);
	*(volatile char *)arg = 1;
	return NULL;
}

/* How a child that tracked @mem and then did @what ended: its wait
 * status. @what 0: a thread that blocks SIGBUS writes a tracked page;
 * 1: the program resets SIGBUS to the default, then writes one. */
static int self_child(int what)
{
	int status;
	pid_t pid;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct uffdwp_ctx_opts o = { .sz = sizeof(o),
					     .backend =
						     UFFDWP_BACKEND_UFFD_SYNC,
					     .flags = UFFDWP_CTX_SELF_SERVICE };
		struct uffdwp_ctx *ctx;
		char *mem = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1,
				 0);
		pthread_t tid;

		alarm(20);
		if (mem == MAP_FAILED || uffdwp_ctx_new(&o, &ctx) ||
		    uffdwp_track(ctx, mem, NPAGES * ps, 0))
			_exit(2);
		if (what == 0) {
			if (pthread_create(&tid, NULL, blocked_write_main,
					   mem + 3 * ps))
				_exit(3);
			pthread_join(tid, NULL);
		} else {
			signal(SIGBUS, SIG_DFL);
			*(volatile char *)(mem + 3 * ps) = 1;
		}
		_exit(0); /* the write went through: not what is documented */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

/* Documented outcomes, each in a child: a thread that blocks SIGBUS and
 * writes a tracked page dies, and so does the process (the kernel forces
 * the signal to its default action); a program that resets SIGBUS to the
 * default while tracking dies at its next tracked write. Neither write is
 * lost silently. */
START_TEST(self_sigbus_blocked_or_reset_kills)
{
	int status;

	status = self_child(0);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
		      "blocked: status %#x", status);
	status = self_child(1);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
		      "reset: status %#x", status);
}
END_TEST

static struct sigaction lib_bus;
static volatile sig_atomic_t own_bus;

/* A program's SIGBUS handler installed after the library's: it chains to
 * the one it replaced, as uffdwp.h asks. */
static void chaining_bus(int sig, siginfo_t *info, void *uctx)
{
	own_bus++;
	if (lib_bus.sa_flags & SA_SIGINFO)
		lib_bus.sa_sigaction(sig, info, uctx);
}

START_TEST(self_handler_installed_after_chains)
{
	struct sigaction sa = { .sa_sigaction = chaining_bus,
				.sa_flags = SA_SIGINFO | SA_NODEFER };
	struct uffdwp_ctx *ctx = self_ctx();
	char *mem = map_pages(NPAGES);

	ck_assert_int_eq(uffdwp_track(ctx, mem, NPAGES * ps, 0), 0);
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGBUS, &sa, &lib_bus), 0);
	*(volatile char *)mem = 1;
	*(volatile char *)(mem + 5 * ps) = 1;
	ck_assert_int_eq(own_bus, 2);
	ck_assert_int_eq(uffdwp_collect(ctx, mark_run, NULL), 2);
	ck_assert_int_eq(sigaction(SIGBUS, &lib_bus, NULL), 0);
	uffdwp_ctx_free(ctx);
	munmap(mem, NPAGES * ps);
}
END_TEST

/* --- replaced ----------------------------------------------------------- */

static sigjmp_buf segv_jmp;
static volatile sig_atomic_t segv_seen;

/* The program's own handler, installed before the library's. */
static void program_segv(int sig)
{
	(void)sig;
	segv_seen++;
	siglongjmp(segv_jmp, 1);
}

/* Whether a write of one byte at @p faults into the program's handler. */
static bool write_faults(volatile char *p)
{
	int before = segv_seen;

	if (!sigsetjmp(segv_jmp, 1))
		*p = 7;
	return segv_seen != before;
}

/* The "rwxp" of the mapping at @p in /proc/self/maps. */
static void perms_at(const void *p, char perms[5])
{
	unsigned long lo, hi, a = (unsigned long)p;
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");

	strcpy(perms, "none");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 &&
		    a >= lo && a < hi)
			break;
		else
			strcpy(perms, "none");
	fclose(f);
}

static void expect_perms(const void *p, const char *want, const char *when)
{
	char perms[5];

	perms_at(p, perms);
	ck_assert_msg(!strcmp(perms, want), "%s: %s, not %s", when, perms,
		      want);
}

struct seen_any {
	char *base;
	size_t n;
	unsigned char page[16];
};

static int note_any(void *arg, void *addr, size_t len)
{
	struct seen_any *s = arg;
	size_t p = (size_t)((char *)addr - s->base) / ps, n = len / ps;

	while (n--) {
		ck_assert_uint_lt(p, s->n);
		s->page[p++] = 1;
	}
	return 0;
}

/* Whether this kernel answers PROCMAP_QUERY (6.11). */
static bool have_procmap_query(void)
{
	struct procmap_query q = { .size = sizeof(q),
				   .query_addr = (uintptr_t)&ps };
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	bool ok;

	ck_assert_int_ge(fd, 0);
	ok = !ioctl(fd, PROCMAP_QUERY, &q);
	close(fd);
	return ok;
}

/*
 * _i = 0: the handler checks a faulting page's whole identity where the
 * kernel has PROCMAP_QUERY; _i = 1: as before 6.11, only what the last
 * collect found and whether the page is readable.
 */
START_TEST(replaced_mappings_are_left_alone)
{
	const bool full = _i == 0 && have_procmap_query();
	struct uffdwp_ctx_opts o = { .sz = sizeof(o),
				     .backend = UFFDWP_BACKEND_MPROTECT };
	struct sigaction sa = { .sa_handler = program_segv };
	struct seen_any seen = { .n = 16 };
	struct uffdwp_ctx *ctx;
	char *mem, *p;
	int fd;

	uffdwp_test_hooks.no_procmap_query = _i;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	ck_assert_int_eq(sigaction(SIGSEGV, &sa, NULL), 0);
	mem = mmap(NULL, 16 * ps, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ck_assert_ptr_ne(mem, MAP_FAILED);
	seen.base = mem;
	fd = (int)syscall(SYS_memfd_create, "replacement", 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)ps), 0);
	ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), 0);
	ck_assert_int_eq(uffdwp_track(ctx, mem, 16 * ps, 0), 0);
	mem[0] = 1; /* dirty, writable again */
	mem[5 * ps] = 1;

	/* Guard pages over a clean page and over a dirty one. */
	ck_assert_int_eq(munmap(mem + 2 * ps, ps), 0);
	p = mmap(mem + 2 * ps, ps, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert_ptr_eq(p, mem + 2 * ps);
	p = mmap(mem, ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0);
	ck_assert_ptr_eq(p, mem);
	/* A read-only file, shared, over a clean page. */
	p = mmap(mem + 4 * ps, ps, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
	ck_assert_ptr_eq(p, mem + 4 * ps);
	/* Read-only private anonymous memory: the documented limit. */
	p = mmap(mem + 6 * ps, ps, PROT_READ,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert_ptr_eq(p, mem + 6 * ps);

	ck_assert(write_faults(mem + 2 * ps));
	ck_assert(write_faults(mem));
	expect_perms(mem + 2 * ps, "---p", "guard after a write");
	/* A readable replacement is told apart at once only through
	 * PROCMAP_QUERY; otherwise from the next collect on (uffdwp.h). */
	ck_assert(write_faults(mem + 4 * ps) == full);
	expect_perms(mem + 4 * ps, full ? "r--s" : "rw-s",
		     "file after a write");
	if (!full)
		ck_assert_int_eq(mprotect(mem + 4 * ps, ps, PROT_READ), 0);
	mem[8 * ps] = 1; /* tracked still */

	ck_assert_int_ge(uffdwp_collect(ctx, note_any, &seen), 0);
	ck_assert_msg(!seen.page[0] && !seen.page[2] && !seen.page[4],
		      "a replacement's page was reported");
	ck_assert(seen.page[5] && seen.page[8]);
	expect_perms(mem, "---p", "guard after a collect");
	expect_perms(mem + 2 * ps, "---p", "guard after a collect");
	expect_perms(mem + 4 * ps, "r--s", "file after a collect");
	ck_assert(write_faults(mem + 2 * ps));
	ck_assert(write_faults(mem + 4 * ps));

	/* The limit: the kernel shows nothing that tells this mapping from
	 * the tracked one, so its first write goes through as tracked. */
	ck_assert(!write_faults(mem + 6 * ps));
	memset(&seen.page, 0, sizeof(seen.page));
	ck_assert_int_ge(uffdwp_collect(ctx, note_any, &seen), 0);
	ck_assert(seen.page[6]);

	ck_assert_int_eq(uffdwp_untrack(ctx, mem, 16 * ps), 0);
	expect_perms(mem, "---p", "guard after untrack");
	expect_perms(mem + 2 * ps, "---p", "guard after untrack");
	expect_perms(mem + 4 * ps, "r--s", "file after untrack");
	ck_assert(write_faults(mem + 2 * ps));
	ck_assert(!write_faults(mem + 9 * ps)); /* writable again */
	uffdwp_ctx_free(ctx);
	close(fd);
	munmap(mem, 16 * ps);
}
END_TEST

/* --- errors -------------------------------------------------------------- */

static int stop_run(void *arg, void *addr, size_t len)
{
	(void)arg;
	(void)addr;
	(void)len;
	return 1;
}

static int count_pages(void *arg, void *addr, size_t len)
{
	(void)addr;
	*(size_t *)arg += len / ps;
	return 0;
}

START_TEST(positive_callback_cancels_and_loses_nothing)
{
	struct uffdwp_ctx_opts o = { .sz = sizeof(o), .backend = _i };
	struct uffdwp_ctx *ctx;
	char *mem = map_pages(8);
	size_t n = 0;

	ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), 0);
	ck_assert_int_eq(uffdwp_track(ctx, mem, 8 * ps, 0), 0);
	mem[ps] = 1;
	mem[5 * ps] = 1;
	ck_assert_int_eq(uffdwp_collect(ctx, stop_run, NULL), -ECANCELED);
	ck_assert_int_eq(uffdwp_collect(ctx, count_pages, &n), (int)n);
	ck_assert_uint_ge(n, 1); /* the run not delivered, at least */
	uffdwp_ctx_free(ctx);
	munmap(mem, 8 * ps);
}
END_TEST

/* Open /dev/null until the limit: returns how many, their first fd. */
static int exhaust_fds(int *first)
{
	int fd, n = 0;

	*first = -1;
	while ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) {
		if (*first < 0)
			*first = fd;
		n++;
	}
	ck_assert_int_eq(errno, EMFILE);
	return n;
}

START_TEST(out_of_fds_is_emfile)
{
	struct uffdwp_ctx_opts o = { .sz = sizeof(o), .backend = _i };
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct rlimit lim = { 64, 64 }, old;
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *sink;
	struct uffdwp_ctx *ctx;
	char *mem = map_pages(8), *other = map_pages(8), *img = map_pages(8);
	int first, n, ret, i, tracked;
	size_t got = 0;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), 0);
	ck_assert_int_eq(uffdwp_track(ctx, mem, 8 * ps, 0), 0);
	ck_assert_int_eq(uffdwp_sink_memory_new(img, 8 * ps, &sink), 0);
	lim.rlim_max = old.rlim_max; /* only the soft limit: it comes back */
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
	n = exhaust_fds(&first);

	/* With PROCMAP_QUERY (6.11) a track needs no new descriptor. */
	tracked = uffdwp_track(ctx, other, 8 * ps, 0);
	ck_assert_msg(tracked == 0 || tracked == -EMFILE, "track: %d", tracked);
	mem[2 * ps] = 1;
	ret = uffdwp_collect(ctx, count_pages, &got);
	ck_assert_msg(ret >= 0 || ret == -EMFILE, "collect: %d", ret);
	if (_i != UFFDWP_BACKEND_MPROTECT) {
		ret = uffdwp_snapshot_start(ctx, mem, 8 * ps, sink, NULL,
					    &snap);
		if (!ret) {
			ret = uffdwp_snapshot_wait(snap, 30000);
			ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
			ck_assert_msg(ret == 0 ||
					      (ret == -EMFILE &&
					       st.cause == UFFDWP_CAUSE_KERNEL),
				      "snapshot: %d, cause %s", ret,
				      uffdwp_snapshot_cause_name(st.cause));
			uffdwp_snapshot_free(snap);
		} else {
			ck_assert_int_eq(ret, -EMFILE);
		}
	}

	/* Nothing lost: with descriptors again, everything works, and the
	 * write above is reported (by now, or now). */
	for (i = 0; i < n; i++)
		close(first + i);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	mem[3 * ps] = 1;
	ck_assert_int_ge(uffdwp_collect(ctx, count_pages, &got), 1);
	ck_assert_uint_ge(got, 2);
	if (tracked)
		ck_assert_int_eq(uffdwp_track(ctx, other, 8 * ps, 0), 0);
	uffdwp_sink_free(sink);
	uffdwp_ctx_free(ctx);
	munmap(mem, 8 * ps);
	munmap(other, 8 * ps);
	munmap(img, 8 * ps);
}
END_TEST

START_TEST(snapshot_over_a_guard_is_cancelled_unmapped)
{
	struct uffdwp_ctx_opts o = { .sz = sizeof(o), .backend = _i };
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *sink;
	struct uffdwp_ctx *ctx;
	char *mem = map_pages(16), *img = map_pages(16), *p;
	int ret;

	ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), 0);
	ck_assert_int_eq(uffdwp_track(ctx, mem, 16 * ps, 0), 0);
	p = mmap(mem + 3 * ps, ps, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert_ptr_eq(p, mem + 3 * ps);
	ck_assert_int_eq(uffdwp_sink_memory_new(img, 16 * ps, &sink), 0);
	ret = uffdwp_snapshot_start(ctx, mem, 16 * ps, sink, NULL, &snap);
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(uffdwp_snapshot_wait(snap, 30000), -ECANCELED);
	ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
	ck_assert_str_eq(uffdwp_snapshot_cause_name(st.cause), "unmapped");
	uffdwp_snapshot_free(snap);
	uffdwp_sink_free(sink);
	uffdwp_ctx_free(ctx);
	munmap(mem, 16 * ps);
	munmap(img, 16 * ps);
}
END_TEST

/* --- own-memory ---------------------------------------------------------- */

/* Added to a backend in _i: uffd_sync in the self-service mode. */
#define SELF_CASE 0x100

START_TEST(track_every_writable_anonymous_mapping)
{
#if defined(__SANITIZE_ADDRESS__)
	const bool sanitized = true;
#else
	const bool sanitized = false;
#endif
	/* _i is a backend, with SELF_CASE for uffd_sync's self-service. */
	const int backend = _i & ~SELF_CASE;
	const bool self = _i & SELF_CASE;
	/* Tracked through a signal in the writing thread. */
	const bool signal_path = backend == UFFDWP_BACKEND_MPROTECT || self;
	const bool kernel_writes_fail =
		signal_path || (backend == UFFDWP_BACKEND_UFFD_SYNC &&
				caps.uffd_mode == UFFDWP_UFFD_USER_MODE_ONLY);
	struct uffdwp_ctx_opts o = { .sz = sizeof(o),
				     .backend = backend,
				     .flags = self ? UFFDWP_CTX_SELF_SERVICE :
						     0 };
	uintptr_t lo[512], hi[512], tcb = (uintptr_t)pthread_self();
	char line[512], perms[8], path[256];
	struct uffdwp_ctx *ctx;
	size_t n = 0, i, tracked = 0, refused = 0;
	unsigned long a, b;
	char *p, *mine;
	FILE *f;
	int ret;

	mine = map_pages(4);
	ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), 0);
	/* The page holding the context itself. */
	ck_assert_int_eq(uffdwp_track(ctx, (void *)((uintptr_t)ctx & ~(ps - 1)),
				      ps, 0),
			 -EBUSY);
	f = fopen("/proc/self/maps", "re");
	ck_assert_ptr_nonnull(f);
	while (n < 512 && fgets(line, sizeof(line), f)) {
		path[0] = '\0';
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255[^\n]", &a, &b,
			   perms, path) < 3 ||
		    strcmp(perms, "rw-p"))
			continue;
		if (path[0] && strcmp(path, "[heap]"))
			continue; /* files, and the main stack */
#if defined(__SANITIZE_ADDRESS__)
		/* ASan's shadow and allocator space (terabytes, reserved):
		 * its instrumentation writes the shadow inside the library's
		 * own handlers, which no program without it does. */
		if (b - a > (1UL << 30))
			continue;
#endif
		/* Where the kernel's own writes to tracked memory fail
		 * (mprotect; uffd_sync on a user-mode-only userfaultfd), a
		 * live thread's control block is not to be tracked: the
		 * kernel writes it (rseq) and kills the thread when it
		 * cannot (uffdwp.h). */
		if (kernel_writes_fail && tcb >= a && tcb < b)
			continue;
#if defined(__SANITIZE_ADDRESS__)
		/* On mprotect, ASan's runtime writes its own anonymous
		 * mappings (allocator caches, stack depot) from inside the
		 * library's SIGSEGV handler, which it instruments: 1 run in
		 * 6 died so. The self-service mode has the same SIGBUS
		 * handler and the same EFAULT for kernel writes (into ASan's
		 * internal buffers too): one CI run died of SIGSEGV while
		 * tracking them. No program without ASan does that; the plain
		 * build and the kernel matrix track every mapping; here the
		 * heap and the context's page (above) are tried. */
		if (signal_path && !path[0])
			continue;
#endif
		lo[n] = a;
		hi[n++] = b;
	}
	fclose(f);
	if (sanitized && signal_path) {
		lo[n] = (uintptr_t)mine;
		hi[n++] = (uintptr_t)mine + 4 * ps;
	}
	for (i = 0; i < n; i++) {
		ret = uffdwp_track(ctx, (void *)lo[i], hi[i] - lo[i], 0);
		ck_assert_msg(ret == 0 || ret == -EBUSY, "track %#lx-%#lx: %d",
			      (unsigned long)lo[i], (unsigned long)hi[i], ret);
		if (ret)
			refused++;
		else
			lo[tracked] = lo[i], hi[tracked++] = hi[i];
	}
	/* The library's state and its handler's stack, at least. */
	if (!sanitized || !signal_path)
		ck_assert_uint_ge(refused, 1);
	ck_assert_uint_ge(tracked, 1);
	ck_assert_int_ge(uffdwp_collect(ctx, mark_run, NULL), 0);
	p = malloc(3 * ps);
	ck_assert_ptr_nonnull(p);
	memset(p, 1, 3 * ps);
	mine[ps] = 1; /* a mapping of the test's own, tracked among all */
	ck_assert_int_ge(uffdwp_collect(ctx, mark_run, NULL), 1);
	free(p);
	for (i = 0; i < tracked; i++)
		ck_assert_int_eq(
			uffdwp_untrack(ctx, (void *)lo[i], hi[i] - lo[i]), 0);
	uffdwp_ctx_free(ctx);
	munmap(mine, 4 * ps);
}
END_TEST

static Suite *hostile_suite(void)
{
	const struct test_group async_groups[] = {
		{ "segv-blocked",
		  120,
		  { segv_blocked_writer_survives_snapshots,
		    ungated_move_is_point_in_time, NULL } },
	};
	const struct test_group mp_groups[] = {
		{ "segv-blocked",
		  60,
		  { mprotect_refuses_while_a_thread_blocks_segv,
		    a_forking_thread_blocks_no_segv, NULL } },
	};
	const struct test_group replaced[] = {
		{ "replaced", 60, { replaced_mappings_are_left_alone, NULL } },
	};
	const struct test_group replaced_old[] = {
		{ "replaced-before-6.11",
		  60,
		  { replaced_mappings_are_left_alone, NULL } },
	};
	const struct test_group own[] = {
		{ "own-memory",
		  60,
		  { track_every_writable_anonymous_mapping, NULL } },
	};
	const struct test_group errors[] = {
		{ "errors",
		  60,
		  { positive_callback_cancels_and_loses_nothing,
		    out_of_fds_is_emfile, NULL } },
	};
	const struct test_group snap_errors[] = {
		{ "snapshot-errors",
		  60,
		  { snapshot_over_a_guard_is_cancelled_unmapped, NULL } },
	};
	Suite *s = suite_create("hostile");
	TCase *self = tcase_create("self-service-sigbus");
	int b;

	test_add_groups(s, "uffd_async", 0, async_groups, 1);
	test_add_groups(s, "mprotect", 0, mp_groups, 1);
	test_add_groups(s, "mprotect", 0, replaced, 1);
	test_add_groups(s, "mprotect", 1, replaced_old, 1);
	for (b = UFFDWP_BACKEND_UFFD_ASYNC; b <= UFFDWP_BACKEND_MPROTECT; b++)
		if (b != UFFDWP_BACKEND_SOFT_DIRTY) {
			test_add_groups(s, uffdwp_backend_name(b), b, own, 1);
			test_add_groups(s, uffdwp_backend_name(b), b, errors,
					1);
		}
	for (b = UFFDWP_BACKEND_UFFD_ASYNC; b <= UFFDWP_BACKEND_UFFD_SYNC; b++)
		test_add_groups(s, uffdwp_backend_name(b), b, snap_errors, 1);
	test_add_groups(s, "uffd_sync self_service",
			UFFDWP_BACKEND_UFFD_SYNC | SELF_CASE, own, 1);
	tcase_set_tags(self, "uffd_sync self_service");
	tcase_set_timeout(self, 60);
	tcase_add_test(self, self_refuses_while_a_thread_blocks_sigbus);
	tcase_add_test(self, self_sigbus_blocked_or_reset_kills);
	tcase_add_test(self, self_handler_installed_after_chains);
	suite_add_tcase(s, self);
	return s;
}

int main(void)
{
	struct test_exclusions ex = { 0 };
	int b;

	test_check_sanitizer_setup();
	ps = (size_t)sysconf(_SC_PAGESIZE);
	caps.sz = sizeof(caps);
	if (uffdwp_probe(&caps))
		test_skip("uffdwp_probe failed");
	for (b = UFFDWP_BACKEND_UFFD_ASYNC; b <= UFFDWP_BACKEND_MPROTECT; b++)
		if (!caps.backend[b].usable)
			test_exclude(&ex, uffdwp_backend_name(b),
				     caps.backend[b].reason);
	if (!caps.uffd_sigbus)
		test_exclude(&ex, "self_service", caps.uffd_sigbus_reason);
	unsetenv("UFFDWP_BACKEND");
	if (!test_forking())
		test_skip("each case needs its own process (CK_FORK=no)");
	return test_run(hostile_suite(), &ex);
}
