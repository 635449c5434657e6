/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test-only switches that break an invariant on purpose, so a test can show
 * its oracle catches the break. They exist only in the test build (the
 * uffdwp-testing static library, compiled with UFFDWP_TESTING; its
 * testhooks.c defines them). In the shipped library every hook is a
 * constant zero, so the compiler drops each branch it guards: no hook, and
 * no test-only code, is in libuffdwp.so (tests/abi/test-no-test-code.sh
 * checks).
 */
#ifndef UFFDWP_TESTHOOKS_H
#define UFFDWP_TESTHOOKS_H

#include <stdbool.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The windows other threads wait on (segv.h), for testhook_hold(). */
enum hold_window {
	HOLD_NONE,
	HOLD_MPROTECT_HANDLER, /* mprotect handler, counted in flight */
	HOLD_MPROTECT_PAUSE, /* mprotect collect, handlers paused */
	HOLD_SELF_HANDLER, /* self-service SIGBUS handler, in flight */
	HOLD_SYNC_PAUSE, /* fault resolution paused (uffd_sync, moves) */
	HOLD_SYNC_EVENT, /* a handler thread between reading and marking an
			  * address-space event */
	HOLD_GATE_CLOSED, /* a gate closed, writers held */
	HOLD_RCU_READ, /* a program thread's read-side section (stats) */
	/* Not a window: snapshot_start() between starting its copiers and
	 * dropping its own count, so that the copiers finish first. */
	HOLD_SNAPSHOT_LAUNCH,
	/* Not windows either: the mprotect backend's track before it looks
	 * for threads that block SIGSEGV, and the forking thread inside the
	 * library's fork handler with urcu-bp's every-signal mask. */
	HOLD_TRACK_LOOK,
	HOLD_FORK,
};

struct uffdwp_test_hooks {
	/* uffd_sync collect takes and re-protects without pausing fault
	 * resolution, and handlers (threads, or self-service) linger
	 * between record and unprotect: the lost-write race of 3.3. */
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
	/* Broken on purpose: a handler's word copy marks the word done
	 * before copying it (snapshot.c fault_word()). */
	int snapshot_word_done_first;
	/* Snapshots ignore unmap events, as if every one came after the
	 * copies: only the check at the end can catch a replaced mapping. */
	int snapshot_late_unmap_events;
	/* uffd_async: arming a range on the asynchronous userfaultfd fails
	 * with -ENOMEM, and with 2 so does registering it on the synchronous
	 * one (a move back after a snapshot that fails both ways). */
	int async_arm_fails;
	/* uffd_async's ungated move to the synchronous userfaultfd waits
	 * this long between protecting the range there and counting its
	 * pages written: the window in which the handler resolves writes
	 * that must still be re-protected before the instant. */
	unsigned int async_ungated_linger_us;
	/* vmaid.c: do without PROCMAP_QUERY, as before 6.11. */
	int no_procmap_query;
	/* The file sink's call at file_fail_point (an enum img_fail_point,
	 * image.h) fails with -file_fail_errno; for IMG_FAIL_PWRITE only its
	 * file_fail_nth-th pwrite (from 1) since begin() does. Shows that no
	 * failure leaves a partial image, or a temporary file, behind. */
	int file_fail_point;
	int file_fail_errno;
	unsigned long file_fail_nth;
	/* The first thread to reach window @hold (an enum hold_window)
	 * stores it in @held and stays in the window for @hold_ms: time for
	 * a test to send it a signal whose handler parks it there. */
	int hold;
	int held;
	unsigned int hold_ms;
};

#ifdef UFFDWP_TESTING
extern struct uffdwp_test_hooks uffdwp_test_hooks;

/* The library's own setting of a hook (the race probe's broken variants). */
#define testhook_set(field, value) (uffdwp_test_hooks.field = (value))

/* Async-signal-safe: it may run in a SIGSEGV handler. */
static inline void testhook_hold(int window)
{
	int want = window;
	struct timespec ts;

	if (__atomic_load_n(&uffdwp_test_hooks.hold, __ATOMIC_RELAXED) !=
		    window ||
	    !__atomic_compare_exchange_n(&uffdwp_test_hooks.hold, &want,
					 HOLD_NONE, false, __ATOMIC_SEQ_CST,
					 __ATOMIC_SEQ_CST))
		return;
	__atomic_store_n(&uffdwp_test_hooks.held, window, __ATOMIC_SEQ_CST);
	ts.tv_sec = uffdwp_test_hooks.hold_ms / 1000;
	ts.tv_nsec = (long)(uffdwp_test_hooks.hold_ms % 1000) * 1000000;
	syscall(SYS_nanosleep, &ts, NULL);
}
#else
static const struct uffdwp_test_hooks uffdwp_test_hooks;

#define testhook_set(field, value) ((void)(value))

static inline void testhook_hold(int window)
{
	(void)window;
}
#endif

#endif /* UFFDWP_TESTHOOKS_H */
