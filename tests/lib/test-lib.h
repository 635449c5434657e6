/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the kernel test binaries built from several sources share
 * (libevdev's pattern): test-main.c is their main(), which probes the
 * kernel once, excludes the cases of backends it lacks and runs the
 * binary's suite; test-lib.c holds the helpers every suite uses. A binary
 * built on them defines test_suite() and test_needs.
 */
#ifndef UFFDWP_TEST_LIB_H
#define UFFDWP_TEST_LIB_H

#include <stdint.h>
#include <stdlib.h>

#include <uffdwp/uffdwp.h>

#include "../common.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MIB (1UL << 20)

/* The page size and the probe's result, set by main() before any case. */
extern size_t ps;
extern struct uffdwp_caps caps;

/* The binary's suite (test-main.c runs it). */
Suite *test_suite(void);

/* What the binary needs: cases run only if one of these backends (a mask
 * of 1 << enum uffdwp_backend) is usable, else it skips saying @why. */
struct test_needs {
	unsigned int backends;
	const char *why;
};
extern const struct test_needs test_needs;

#define NEED_BACKEND(b)                                                   \
	ck_assert_msg(caps.backend[b].usable, "%s ran but is not usable", \
		      uffdwp_backend_name(b))

/* xorshift64: cheap, per-thread pseudo-random numbers. */
uint64_t rnd(uint64_t *s);

/* A context on @backend, asserted. With UFFDWP_TEST_SELF_SERVICE=1 in the
 * environment, uffd_sync contexts are in the self-service mode (the suite
 * runs again that way: tests/meson.build). */
struct uffdwp_ctx *new_ctx(int backend);
/* Whether new_ctx() makes self-service uffd_sync contexts. */
bool test_self_service(void);
/* The struct uffdwp_ctx_opts flags new_ctx() uses for @backend: suites
 * that fill their own options use them too. */
unsigned int test_ctx_flags(int backend);

/* uffdwp_ctx_opts::handler_threads of new_ctx()'s contexts (0: the
 * default). */
extern unsigned int test_handler_threads;

/* A collect callback that adds the pages of each run to *(size_t *)@arg. */
int count_run(void *arg, void *addr, size_t len);

#endif /* UFFDWP_TEST_LIB_H */
