/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Build: cc caps.c $(pkg-config --cflags --libs libuffdwp) -o caps
 *
 * The smallest use of the probe: ask which dirty-tracking backend AUTO would
 * use here and why, and refuse to go on if a kernel defect the library
 * cannot work around is present. A program that tracks memory would make
 * this decision once, at start-up.
 */
#include <stdio.h>
#include <string.h>

#include <uffdwp/uffdwp.h>

int main(int argc, char **argv)
{
	struct uffdwp_caps caps = { .sz = sizeof(caps) };
	struct uffdwp_defect d = { .sz = sizeof(d) };
	size_t i, present = 0;
	int err;

	if (argc > 1) {
		int help = argc == 2 && (!strcmp(argv[1], "--help") ||
					 !strcmp(argv[1], "-h"));

		fprintf(help ? stdout : stderr,
			"usage: %s [--help]\n"
			"Prints the backend AUTO would track with here and why, and\n"
			"each kernel defect found; exits 1 if none is usable.\n",
			argv[0]);
		return help ? 0 : 2;
	}
	err = uffdwp_probe(&caps);
	if (err) {
		fprintf(stderr, "uffdwp_probe: %s\n", strerror(-err));
		return 1;
	}
	printf("AUTO would track with %s: %s\n",
	       uffdwp_backend_name(caps.auto_backend), caps.auto_reason);
	if (caps.uffd_blocked)
		printf("userfaultfd is blocked: %s\n", caps.uffd_blocked);

	for (i = 0; i < caps.n_defects; i++) {
		if (uffdwp_defect_get(i, &d))
			return 1;
		if (d.status != UFFDWP_DEFECT_PRESENT)
			continue;
		present++;
		printf("kernel defect %s: %s\n  the library: %s\n", d.id,
		       d.observed, d.action);
	}
	printf("%zu of %zu known kernel defects present; all are handled\n",
	       present, caps.n_defects);
	return caps.auto_backend == UFFDWP_BACKEND_AUTO ? 1 : 0;
}
