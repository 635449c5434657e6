/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers every suite built on tests/lib uses: see test-lib.h. */
#include "test-lib.h"

uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

bool test_self_service(void)
{
	const char *v = getenv("UFFDWP_TEST_SELF_SERVICE");

	return v && !strcmp(v, "1");
}

unsigned int test_ctx_flags(int backend)
{
	if (backend == UFFDWP_BACKEND_UFFD_SYNC && test_self_service())
		return UFFDWP_CTX_SELF_SERVICE;
	return 0;
}

unsigned int test_handler_threads;

struct uffdwp_ctx *new_ctx(int backend)
{
	struct uffdwp_ctx_opts opts = { .sz = sizeof(opts),
					.backend = backend,
					.handler_threads = test_handler_threads,
					.flags = test_ctx_flags(backend) };
	struct uffdwp_ctx *ctx = NULL;

	ck_assert_int_eq(uffdwp_ctx_new(&opts, &ctx), 0);
	ck_assert_int_eq(uffdwp_ctx_backend(ctx), backend);
	if (opts.flags & UFFDWP_CTX_SELF_SERVICE)
		ck_assert_ptr_nonnull(
			strstr(uffdwp_ctx_backend_reason(ctx), "self-service"));
	return ctx;
}

int count_run(void *arg, void *addr, size_t len)
{
	(void)addr;
	*(size_t *)arg += len / ps;
	return 0;
}
