/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Results: see report.h. */
#include "report.h"

/* ---- results -------------------------------------------------------- */

struct ratio ratios[64];
size_t n_ratios;

void print_ratio(const char *name, double v, double target, bool at_least)
{
	printf("RATIO %s %.3f\n", name, v);
	fflush(stdout);
	if (n_ratios < sizeof(ratios) / sizeof(ratios[0])) {
		ratios[n_ratios] = (struct ratio){ .value = v,
						   .target = target,
						   .at_least = at_least };
		/* Copied: callers may build names in a buffer. */
		snprintf(ratios[n_ratios].name, sizeof(ratios[0].name), "%s",
			 name);
		n_ratios++;
	}
}

/* Ratio of paired samples a[r] / b[r], median over repetitions. */
double paired(const double *a, const double *b, size_t reps)
{
	double *r = xcalloc(reps, sizeof(*r)), m;

	for (size_t i = 0; i < reps; i++)
		r[i] = b[i] > 0 ? a[i] / b[i] : 0;
	m = median(r, reps);
	free(r);
	return m;
}

/* Medians of copies, so the paired arrays keep their order. */
double med(const double *v, size_t n)
{
	double *c = xcalloc(n, sizeof(*c)), m;

	memcpy(c, v, n * sizeof(*c));
	m = median(c, n);
	free(c);
	return m;
}

void summary(void)
{
	printf("\n== summary (median of per-repetition ratios; targets "
	       "inform, they never fail the run)\n");
	for (size_t i = 0; i < n_ratios; i++) {
		const struct ratio *r = &ratios[i];
		char t[32] = "-";
		const char *verdict = "";

		if (r->target > 0) {
			bool ok = r->at_least ? r->value >= r->target :
						r->value <= r->target;

			snprintf(t, sizeof(t), "%s %.2f",
				 r->at_least ? ">=" : "<=", r->target);
			verdict = ok ? "met" : "MISSED";
		}
		printf("  %-48s %8.3f   %-8s %s\n", r->name, r->value, t,
		       verdict);
	}
}
