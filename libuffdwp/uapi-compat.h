/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel ABI that older userspace headers lack.
 *
 * The library is built against whatever linux-libc-dev the build machine has
 * (Debian 12: 6.1) but must drive kernels up to the newest, so every
 * definition added after 6.1 is repeated here with the value from the
 * kernel's include/uapi/linux/{userfaultfd,fs}.h. Each is guarded so newer
 * headers win, and the layouts are pinned with _Static_assert: a wrong size
 * here would make the kernel reject (or worse, misread) the ioctl argument.
 *
 * Early WP_ASYNC patch versions used other bit numbers; these are the merged
 * ones.
 */
#ifndef UFFDWP_UAPI_COMPAT_H
#define UFFDWP_UAPI_COMPAT_H

#include <linux/fs.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

/* --- userfaultfd ------------------------------------------------------ */

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1 /* 5.11 */
#endif

#ifndef USERFAULTFD_IOC
#define USERFAULTFD_IOC 0xAA
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(USERFAULTFD_IOC, 0x00) /* 6.1 */
#endif

#ifndef UFFD_FEATURE_EXACT_ADDRESS
#define UFFD_FEATURE_EXACT_ADDRESS (1 << 11) /* 5.18 */
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12) /* 5.19 */
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13) /* 6.4 */
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14) /* 6.6 */
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15) /* 6.7 */
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16) /* 6.8 */
#endif

#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1) /* 6.4 */
#endif

#ifndef UFFDIO_POISON /* 6.6 */
#define _UFFDIO_POISON (0x08)
struct uffdio_poison {
	struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

#ifndef UFFDIO_MOVE /* 6.8 */
#define _UFFDIO_MOVE (0x05)
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

/* --- PAGEMAP_SCAN (6.7) ----------------------------------------------- */

#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)

struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

#ifndef PAGE_IS_SOFT_DIRTY
#define PAGE_IS_SOFT_DIRTY (1 << 7) /* 6.8 */
#endif
#ifndef PAGE_IS_GUARD
#define PAGE_IS_GUARD (1 << 8) /* 6.15 */
#endif

/* --- /proc/PID/pagemap entries (Documentation/admin-guide/mm/pagemap.rst) */

#define PM_PFN_MASK ((1ULL << 55) - 1)
#define PM_SOFT_DIRTY (1ULL << 55)
#define PM_EXCLUSIVE (1ULL << 56)
#define PM_UFFD_WP (1ULL << 57) /* 5.13 */
#define PM_GUARD (1ULL << 58) /* 6.15 */
#define PM_FILE (1ULL << 61)
#define PM_SWAP (1ULL << 62)
#define PM_PRESENT (1ULL << 63)

/* --- PROCMAP_QUERY (6.11): one mapping of /proc/PID/maps, by address -- */

#ifndef PROCMAP_QUERY
#define PROCFS_IOCTL_MAGIC 'f'
enum procmap_query_flags {
	PROCMAP_QUERY_VMA_READABLE = 0x01,
	PROCMAP_QUERY_VMA_WRITABLE = 0x02,
	PROCMAP_QUERY_VMA_EXECUTABLE = 0x04,
	PROCMAP_QUERY_VMA_SHARED = 0x08,
	PROCMAP_QUERY_COVERING_OR_NEXT_VMA = 0x10,
	PROCMAP_QUERY_FILE_BACKED_VMA = 0x20,
};
struct procmap_query {
	__u64 size;
	__u64 query_flags;
	__u64 query_addr;
	__u64 vma_start;
	__u64 vma_end;
	__u64 vma_flags;
	__u64 vma_page_size;
	__u64 vma_offset;
	__u64 inode;
	__u32 dev_major;
	__u32 dev_minor;
	__u32 vma_name_size;
	__u32 build_id_size;
	__u64 vma_name_addr;
	__u64 build_id_addr;
};
#define PROCMAP_QUERY _IOWR(PROCFS_IOCTL_MAGIC, 17, struct procmap_query)
#endif

/* --- layouts the kernel checks by size --------------------------------- */

_Static_assert(sizeof(struct uffd_msg) == 32, "uffd_msg");
_Static_assert(sizeof(struct uffdio_api) == 24, "uffdio_api");
_Static_assert(sizeof(struct uffdio_range) == 16, "uffdio_range");
_Static_assert(sizeof(struct uffdio_register) == 32, "uffdio_register");
_Static_assert(sizeof(struct uffdio_writeprotect) == 24, "uffdio_writeprotect");
_Static_assert(sizeof(struct uffdio_poison) == 32, "uffdio_poison");
_Static_assert(sizeof(struct uffdio_move) == 40, "uffdio_move");
_Static_assert(sizeof(struct page_region) == 24, "page_region");
_Static_assert(sizeof(struct pm_scan_arg) == 96, "pm_scan_arg");
_Static_assert(sizeof(struct procmap_query) == 104, "procmap_query");

#if defined(__x86_64__)
/* The ioctl numbers encode the sizes above; pin the ones we issue. */
_Static_assert(UFFDIO_API == 0xc018aa3f, "UFFDIO_API");
_Static_assert(UFFDIO_REGISTER == 0xc020aa00, "UFFDIO_REGISTER");
_Static_assert(UFFDIO_UNREGISTER == 0x8010aa01, "UFFDIO_UNREGISTER");
_Static_assert(UFFDIO_WAKE == 0x8010aa02, "UFFDIO_WAKE");
_Static_assert(UFFDIO_WRITEPROTECT == 0xc018aa06, "UFFDIO_WRITEPROTECT");
_Static_assert(UFFDIO_POISON == 0xc020aa08, "UFFDIO_POISON");
_Static_assert(UFFDIO_MOVE == 0xc028aa05, "UFFDIO_MOVE");
_Static_assert(USERFAULTFD_IOC_NEW == 0xaa00, "USERFAULTFD_IOC_NEW");
_Static_assert(PAGEMAP_SCAN == 0xc0606610, "PAGEMAP_SCAN");
_Static_assert(PROCMAP_QUERY == 0xc0686611, "PROCMAP_QUERY");
#endif

#endif /* UFFDWP_UAPI_COMPAT_H */
