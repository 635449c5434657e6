/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Zap detection through pagemap presence: see zaps.h.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sys-pagemap.h"
#include "zaps.h"

int zaps_init(struct zap_state *z, bool scan)
{
	memset(z, 0, sizeof(*z));
	z->scan = scan;
	z->pagemap = pagemap_open();
	return z->pagemap < 0 ? z->pagemap : 0;
}

void zaps_fini(struct zap_state *z)
{
	if (z->pagemap >= 0)
		close(z->pagemap);
	z->pagemap = -1;
	dirtymap_free(&z->now);
}

static bool mapped(uintptr_t page)
{
	/* msync(2) fails with ENOMEM on an unmapped page, and does no I/O
	 * with MS_ASYNC on anonymous memory. */
	return msync((void *)page, page_size(), MS_ASYNC) == 0 ||
	       errno != ENOMEM;
}

static void mark_present(void *arg, size_t first, size_t n)
{
	dirtymap_set_range(arg, first, n);
}

int zaps_note(struct zap_state *z, struct region *r, bool first)
{
	uint64_t gone;
	size_t i, bit;
	int ret;

	if (z->now.nbits < r->npages) {
		dirtymap_free(&z->now);
		ret = dirtymap_init(&z->now, r->npages);
		if (ret)
			return ret;
	}
	dirtymap_clear_range(&z->now, 0, r->npages);
	ret = pagemap_presence(z->pagemap, r->start, r->npages, z->scan,
			       mark_present, &z->now);
	if (ret)
		return ret;
	for (i = 0; !first && i < DIRTYMAP_WORDS(r->npages); i++) {
		gone = r->present.w[i] & ~z->now.w[i];
		/* Absent because unmapped is not a zap: nothing to report. */
		while (gone) {
			bit = (size_t)__builtin_ctzll(gone);
			gone &= gone - 1;
			if (mapped(r->start + (i * 64 + bit) * page_size()))
				dirtymap_set(&r->recorded, i * 64 + bit);
		}
	}
	memcpy(r->present.w, z->now.w,
	       DIRTYMAP_WORDS(r->npages) * sizeof(uint64_t));
	return 0;
}
