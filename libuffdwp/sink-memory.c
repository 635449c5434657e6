/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The memory sink, and uffdwp_sink_free() for every library-made sink.
 *
 * It only implements place(): the snapshot engine copies each page straight
 * to its offset in the caller's buffer, so an idle snapshot costs one copy
 * per page, and the fault path needs no staging slot.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct memsink {
	char *buf;
	size_t len;
	uintptr_t base; /* the snapshot's start, from begin() */
};

static int mem_begin(void *arg, const struct uffdwp_snapshot_info *info)
{
	struct memsink *m = arg;

	if (info->len > m->len)
		return -ENOSPC;
	m->base = (uintptr_t)info->addr;
	return 0;
}

static void *mem_place(void *arg, void *addr, size_t len)
{
	struct memsink *m = arg;

	(void)len;
	return m->buf + ((uintptr_t)addr - m->base);
}

UFFDWP_EXPORT int uffdwp_sink_memory_new(void *buf, size_t len,
					 struct uffdwp_sink **out)
{
	struct uffdwp_sink *sink;
	struct memsink *m;

	if (!buf || !out)
		return -EINVAL;
	sink = calloc(1, sizeof(*sink));
	m = calloc(1, sizeof(*m));
	if (!sink || !m) {
		free(sink);
		free(m);
		return -ENOMEM;
	}
	m->buf = buf;
	m->len = len;
	sink->sz = sizeof(*sink);
	sink->arg = m;
	sink->begin = mem_begin;
	sink->place = mem_place;
	sink->destroy = free;
	*out = sink;
	return 0;
}

UFFDWP_EXPORT struct uffdwp_sink *uffdwp_sink_free(struct uffdwp_sink *sink)
{
	if (!sink)
		return NULL;
	if (sink->destroy)
		sink->destroy(sink->arg);
	free(sink);
	return NULL;
}
