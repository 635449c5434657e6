/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Zaps the kernel does not report: MADV_DONTNEED drops a page's PTE (its
 * contents become zeros) without a fault, and some mechanisms cannot see
 * it (mprotect; PAGEMAP_SCAN on kernels with the "zapped reported clean"
 * defect). A page present at the previous look and absent now, while its
 * address is still mapped, was zapped: it counts as written.
 */
#ifndef UFFDWP_ZAPS_H
#define UFFDWP_ZAPS_H

#include <stdbool.h>

#include "region.h"

struct zap_state {
	int pagemap;
	bool scan; /* PAGEMAP_SCAN reads presence */
	struct dirtymap now; /* scratch */
};

int zaps_init(struct zap_state *z, bool scan);
void zaps_fini(struct zap_state *z);

/*
 * Look at @r's pages: set the zapped ones in @r->recorded (unless @first,
 * the look that starts tracking) and remember which are present.
 */
int zaps_note(struct zap_state *z, struct region *r, bool first);

#endif /* UFFDWP_ZAPS_H */
