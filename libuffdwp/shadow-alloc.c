/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory that fault and signal handlers write (contexts, backend state,
 * handler buffers) comes from mmap, never from malloc: a program may track
 * its own heap (garbage collectors do), and a handler whose write faults on
 * a page it must itself resolve would wait forever.
 */
#include <sys/mman.h>

#include "internal.h"

static size_t round_up(size_t len)
{
	return (len + page_size() - 1) / page_size() * page_size();
}

void *handler_zalloc(size_t len)
{
	void *p = mmap(NULL, round_up(len), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void handler_free(void *p, size_t len)
{
	if (p)
		munmap(p, round_up(len));
}
