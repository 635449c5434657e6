/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Size-versioned structures (libbpf's OPTS idiom): the one place that decides
 * how a caller's `sz` is honoured, so every call treats it alike.
 */
#include <string.h>

#include "internal.h"

int sz_check(const void *dst, size_t known)
{
	const unsigned char *p = dst;
	size_t sz;

	if (!dst)
		return -EINVAL;
	memcpy(&sz, dst, sizeof(sz));
	if (sz < sizeof(size_t))
		return -EINVAL;
	/* A newer caller: its extra fields must be left at zero. */
	for (; sz > known; sz--)
		if (p[sz - 1])
			return -E2BIG;
	return 0;
}

void sz_copy_out(void *dst, const void *src, size_t known)
{
	size_t sz;

	memcpy(&sz, dst, sizeof(sz));
	if (sz > known)
		sz = known;
	memcpy((unsigned char *)dst + sizeof(size_t),
	       (const unsigned char *)src + sizeof(size_t),
	       sz - sizeof(size_t));
}

void sz_copy_in(void *dst, const void *src, size_t known)
{
	size_t sz;

	memcpy(&sz, src, sizeof(sz));
	memset(dst, 0, known);
	memcpy(dst, src, sz < known ? sz : known);
	memcpy(dst, &known, sizeof(known));
}
