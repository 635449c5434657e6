/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The main() of the kernel test binaries built on tests/lib: the probe
 * runs once, here, before check forks (it opens no descriptor that stays
 * open and leaves no thread behind); the cases of each backend the kernel
 * lacks are excluded by their tag and listed; the binary skips (exit 77,
 * one line) when none of the backends it needs is usable.
 */
#include <unistd.h>

#include "test-lib.h"

size_t ps;
struct uffdwp_caps caps;

int main(void)
{
	struct test_exclusions ex = { 0 };
	unsigned int any = 0;
	int b;

	test_check_sanitizer_setup();
	ps = (size_t)sysconf(_SC_PAGESIZE);
	caps.sz = sizeof(caps);
	if (uffdwp_probe(&caps))
		test_skip("uffdwp_probe failed");
	for (b = UFFDWP_BACKEND_UFFD_ASYNC; b <= UFFDWP_BACKEND_MPROTECT; b++) {
		if (caps.backend[b].usable)
			any |= 1u << b;
		else
			test_exclude(&ex, uffdwp_backend_name(b),
				     caps.backend[b].reason);
	}
	if (!(any & test_needs.backends))
		test_skip("%s (%s)", test_needs.why,
			  caps.uffd_blocked ? caps.uffd_blocked :
					      "see uffdwp-check");
	/* Every case names its backend; the variable would override AUTO
	 * in the cases that test it. */
	unsetenv("UFFDWP_BACKEND");
	return test_run(test_suite(), &ex);
}
