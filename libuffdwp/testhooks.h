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
	/* Snapshots unprotect a faulting page before copying its pre-image
	 * (the order invariant 3.4 forbids): the snapshot oracle must fail. */
	int snapshot_unprotect_first;
	/* Snapshots ignore unmap events, as if every one came after the
	 * copies: only the check at the end can catch a replaced mapping. */
	int snapshot_late_unmap_events;
	/* uffd_async: arming a range on the asynchronous userfaultfd fails
	 * with -ENOMEM, and with 2 so does registering it on the synchronous
	 * one (a move back after a snapshot that fails both ways). */
	int async_arm_fails;
	/* The file sink's call at file_fail_point (an enum img_fail_point,
	 * image.h) fails with -file_fail_errno; for IMG_FAIL_PWRITE only its
	 * file_fail_nth-th pwrite (from 1) since begin() does. Shows that no
	 * failure leaves a partial image, or a temporary file, behind. */
	int file_fail_point;
	int file_fail_errno;
	unsigned long file_fail_nth;
};

extern struct uffdwp_test_hooks uffdwp_test_hooks;

#endif /* UFFDWP_TESTHOOKS_H */
