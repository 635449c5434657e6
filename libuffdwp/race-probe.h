/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The stale-TLB race probes, internal interface. race-probe.c runs them
 * for uffdwp_race_probe(); tests call race_run() directly to select the
 * deliberately broken variants, which the public API cannot reach.
 */
#ifndef UFFDWP_RACE_PROBE_H
#define UFFDWP_RACE_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Orderings broken on purpose, to prove each probe would see a loss. */
enum race_variant {
	RACE_CORRECT = 0,
	/* A: a software model of the stale-TLB race (no kernel involved):
	 * writers keep a cached pointer to the hot page, refreshed only when
	 * they acknowledge an epoch; the "COW" copies the page and swaps the
	 * pointer. MODEL waits for every acknowledgement before copying;
	 * MODEL_BROKEN copies first. Checks A's arithmetic end to end. */
	RACE_MODEL,
	RACE_MODEL_BROKEN,
	/* B: scan without protecting, copy, then protect (non-atomic
	 * get-and-reset). */
	RACE_GET_THEN_PROTECT,
	/* B: a writer stores through a second mapping of the same memory,
	 * a stand-in for a stale writable TLB entry. */
	RACE_ALIAS_WRITER,
	/* C: unprotect a faulting page before copying it. */
	RACE_UNPROTECT_BEFORE_COPY,
	/* C: start copying before the protect ioctl has returned. */
	RACE_COPY_BEFORE_PROTECT,
};

/*
 * Whether a run is the broken variant @v. The shipped library runs only
 * RACE_CORRECT (race-probe.c), so outside the test build this is false and
 * the broken orderings are compiled out of it.
 */
#ifdef UFFDWP_TESTING
#define race_variant(variant, v) ((variant) == (v))
#else
#define race_variant(variant, v) ((void)(variant), false)
#endif

struct race_run {
	int mechanism; /* enum uffdwp_race_mechanism, never ALL */
	int variant; /* enum race_variant */
	double seconds; /* wall-time budget */
	size_t region_bytes; /* 0: the probe's default */
	unsigned int cpus; /* online CPUs */
	struct uffdwp_race_result *out;
};

/* Each returns 0 with run->out filled (verdict included), or -errno if it
 * could not run at all for lack of resources. A missing mechanism is an
 * INCONCLUSIVE result with the reason, not an error. */
int race_probe_a(struct race_run *run);
int race_probe_b(struct race_run *run);
int race_probe_c(struct race_run *run);

/* Dispatch one probe (an enum uffdwp_race_probe_id bit). */
int race_run(int probe, struct race_run *run);

/* Thresholds of a strong pass (reference/kernel.md 2.5). */
#define RACE_STRONG_CPUS 3
#define RACE_STRONG_CYCLES 2000
#define RACE_STRONG_COPIES 10000

/* xorshift64: the writers' cheap, per-thread page and value picker. */
static inline uint64_t race_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Fill out->why with a printf format. */
void race_why(struct uffdwp_race_result *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Pin the calling thread to @cpu modulo the CPUs online; best effort. */
void race_pin(unsigned int cpu);

#endif /* UFFDWP_RACE_PROBE_H */
