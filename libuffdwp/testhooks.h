/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test-only switches that break an invariant on purpose, so a test can show
 * its oracle catches the break. Hidden symbols: the shared library does not
 * export them, only tests linked against the internal static library can
 * set them.
 */
#ifndef UFFDWP_TESTHOOKS_H
#define UFFDWP_TESTHOOKS_H

struct uffdwp_test_hooks {
	/* uffd_sync collect takes and re-protects without pausing fault
	 * resolution, and handlers linger between record and unprotect:
	 * the lost-write race of invariant 3.3. */
	int break_sync_collect;
	/* uffd_async looks for zaps itself, as it does on kernels with the
	 * pagemap-scan-zapped-reported-clean defect (none in the matrix). */
	int async_check_zaps;
	/* uffd_async reports with a get-only scan, then protects with a
	 * second one: the non-atomic get-and-reset invariant 3.5 forbids. */
	int async_get_then_protect;
};

extern struct uffdwp_test_hooks uffdwp_test_hooks;

#endif /* UFFDWP_TESTHOOKS_H */
