/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ABI suite: a program that sees nothing but the installed public header and
 * the shared library must compile, link and run, calling every export.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <uffdwp/uffdwp.h>

#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, \
				#cond);                                    \
			return 1;                                          \
		}                                                          \
	} while (0)

int main(void)
{
	struct uffdwp_caps caps = { .sz = sizeof(caps) };
	struct uffdwp_defect d = { .sz = sizeof(d) };

	CHECK(!strcmp(uffdwp_version(), UFFDWP_VERSION_STRING));
	CHECK(uffdwp_probe(&caps) == 0);
	CHECK(uffdwp_backend_name(caps.auto_backend) != NULL);
	CHECK(uffdwp_backend_from_name("sync") == UFFDWP_BACKEND_UFFD_SYNC);
	CHECK(uffdwp_uffd_mode_name(caps.uffd_mode) != NULL);
	CHECK(uffdwp_defect_get(0, &d) == 0);
	CHECK(uffdwp_defect_status_name(d.status) != NULL);
	CHECK(uffdwp_defect_get(caps.n_defects, &d) == -ENOENT);
	printf("linked against libuffdwp %s: auto = %s\n", uffdwp_version(),
	       uffdwp_backend_name(caps.auto_backend));
	return 0;
}
