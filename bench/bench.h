/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the sources of bench-track share (bench-common.c): the size and
 * random helpers, memory regions and dirty patterns, the library side
 * (contexts, tracking, collects), CPU pinning, and each section's entry.
 * raw.h is the raw kernel baseline, report.h the medians and RATIO lines.
 */
#ifndef UFFDWP_BENCH_H
#define UFFDWP_BENCH_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

#define KiB (1024UL)
#define MiB (1024UL * KiB)
#define GiB (1024UL * MiB)

extern size_t page_sz;
extern int pmfd;
extern bool quick;
extern uint64_t rng_state;
extern uint32_t *scratch; /* page-index permutation for pattern picking */
extern size_t scratch_n;
__attribute__((format(printf, 1, 2), noreturn)) void die(const char *fmt, ...);

uint64_t now_ns(void);

int cmp_double(const void *a, const void *b);

/* Sorts @v in place. */
double median(double *v, size_t n);

uint64_t rnd(void);

void *xcalloc(size_t n, size_t sz);

/*
 * 2 MiB aligned so a sparse layout's chunks fill whole page tables, and
 * MADV_NOHUGEPAGE before the first touch so raw and library sides account
 * in the same 4 KiB pages (the library asks for it on track too).
 */
char *region_map(size_t len, int extra_flags);

void write_seq(char *p, size_t len, char v);

/* Median latency of single-byte writes to pages @idx of @p, each its own
 * fault; @tmp holds @n samples. */
double fault_latency(char *p, const uint32_t *idx, size_t n, char v,
		     double *tmp);

extern const struct layout dense;
char *page_addr(char *base, const struct layout *l, uint32_t i);

void write_idx(char *base, const struct layout *l, const uint32_t *idx,
	       size_t n, char v);

void scratch_fill(size_t n);

/* @k distinct random pages of @n, in random order (partial Fisher-Yates). */
size_t pick_random(uint32_t *out, size_t n, size_t k);

/*
 * About @k pages as runs of 16 consecutive pages at random positions, as
 * objects spanning several pages get written. Each run starts at a random
 * offset 0..14 of its own 32-page block, so two runs never touch and a
 * batching re-arm cannot gain from merging neighbours.
 */
size_t pick_runs16(uint32_t *out, size_t n, size_t k);

size_t frac_pages(size_t n, double pct);

/*
 * Where page index i of a pattern lives: chunks of @chunk pages placed every
 * @stride pages, so one pattern can dirty the same pages of a dense and a
 * sparse region. Dense is chunk == stride.
 */
struct layout {
	size_t chunk;
	size_t stride;
};

extern struct uffdwp_caps caps;
bool usable(int backend);

const char *bname(int backend);

struct uffdwp_ctx *lib_new(int backend, const char *section);

bool lib_track(struct uffdwp_ctx *ctx, char *p, size_t len,
	       const char *section);

/* The cheapest consumer there is, so a collect's time is the library's. */
int count_run(void *arg, void *addr, size_t len);

size_t lib_collect(struct uffdwp_ctx *ctx);

void check_pages(const char *who, size_t got, size_t want);

void print_stats(const char *who, const struct uffdwp_ctx *ctx);

extern cpu_set_t saved_cpus;
/*
 * A fault round trip costs ~6 us with the handler on the writer's CPU and
 * 20-50 us across vCPUs on this VM, depending on where the scheduler puts
 * the handler: pinning the writer, and with it every thread it creates, to
 * one CPU makes raw and library meet the same placement.
 */
void pin_cpu0(void);

void unpin(void);

/* A thread that keeps a CPU busy, as the other threads of a program do. */
struct spinner {
	pthread_t tid;
	volatile bool stop;
};

void *spin_main(void *arg);
/* @attr for a thread on @cpu alone; false if @cpu < 0 or it fails. */
bool on_cpu(pthread_attr_t *attr, int cpu);
/* The second CPU this process may run on (after pin_cpu0()), or -1. */
int other_cpu(void);

/* The self-service section (bench-self.c). */
void sec_self(size_t len, int reps);

/* The live-snapshot section (bench-snapshot.c). */
void sec_snapshot(size_t len, int reps);

#endif /* UFFDWP_BENCH_H */
