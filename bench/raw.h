/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The raw kernel mechanism each library figure is set against (raw.c):
 * userfaultfd write-protect, its PAGEMAP_SCAN, and a minimal fault handler,
 * with nothing of the library. It needs the uapi the build machine's
 * headers may lack: the one place a benchmark sees a library header.
 */
#ifndef UFFDWP_BENCH_RAW_H
#define UFFDWP_BENCH_RAW_H

#include "bench.h"
#include "uapi-compat.h"

#define VEC_LEN 1024

#define ASYNC_FEATURES (UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED)
#define SCAN_FLAGS (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC)

/*
 * The least a synchronous handler can do: one blocking read() per message
 * and an unprotect of that page, which also wakes the writer.
 */
struct raw_handler {
	int uffd;
	pthread_t tid;
	bool running;
};

/* The fd the library would open too: the device first, then the syscall. */
int raw_uffd(uint64_t features);

int raw_register_wp(int fd, char *p, size_t len);

int raw_wp(int fd, char *p, size_t len, uint64_t mode);

/*
 * Report and re-protect the written pages of [p, p + len), with the flags
 * and masks of the library's async backend. A short vector ends the walk:
 * 6.18 can return a stale walk_end once a result outgrows the kernel's
 * internal buffer, so a full vector resumes past whichever of walk_end and
 * the last region reaches further.
 */
int raw_scan(char *p, size_t len, size_t *pages);

/* WP_ASYNC registration, armed by the same get-and-protect scan a collect
 * runs, so raw pages start in the state the library's do. */
int raw_async_setup(char *p, size_t len);

void *raw_handler_main(void *arg);

void raw_handler_start(struct raw_handler *h);

void raw_handler_stop(struct raw_handler *h);

#endif /* UFFDWP_BENCH_RAW_H */
