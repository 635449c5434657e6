/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The benchmark's results (report.c): medians, paired ratios, the RATIO
 * lines with their targets, and the summary at the end. A target informs;
 * it never fails a run.
 */
#ifndef UFFDWP_BENCH_REPORT_H
#define UFFDWP_BENCH_REPORT_H

#include "bench.h"

struct ratio {
	char name[64];
	double value;
	double target; /* 0: no target */
	bool at_least; /* target is a lower bound */
};

extern struct ratio ratios[64];
extern size_t n_ratios;
void print_ratio(const char *name, double v, double target, bool at_least);

/* Ratio of paired samples a[r] / b[r], median over repetitions. */
double paired(const double *a, const double *b, size_t reps);

/* Medians of copies, so the paired arrays keep their order. */
double med(const double *v, size_t n);

void summary(void);

#endif /* UFFDWP_BENCH_REPORT_H */
