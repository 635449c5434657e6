/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ABI suite: the public header is strict C99 (built -std=c99 -pedantic). */
#include <uffdwp/uffdwp.h>

int main(void)
{
	struct uffdwp_caps caps;

	caps.sz = sizeof(caps);
	return uffdwp_backend_name(UFFDWP_BACKEND_AUTO) && caps.sz ? 0 : 1;
}
