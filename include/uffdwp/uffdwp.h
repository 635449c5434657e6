/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * @file uffdwp.h
 * @brief libuffdwp: dirty-page tracking and live snapshots of a program's
 * own memory, over userfaultfd write-protect, soft-dirty and mprotect.
 *
 * Conventions, for every call in this header:
 * - A call returns a value >= 0 on success or a negative errno value on
 *   failure. errno itself is unspecified afterwards. Output arguments are
 *   left untouched on failure.
 * - Structures the caller fills or receives start with `size_t sz`, which the
 *   caller sets to `sizeof(struct ...)` as its header knows it. A library
 *   that knows a longer structure fills only the first @c sz bytes; a library
 *   that knows a shorter one accepts the call only when every byte past its
 *   own size is zero (otherwise -E2BIG), so programs and libraries of
 *   different versions work together.
 * - The library prints nothing and starts no thread unless a call says so.
 *
 * Build a program against it with
 * `cc prog.c $(pkg-config --cflags --libs libuffdwp)`.
 */
#ifndef UFFDWP_UFFDWP_H
#define UFFDWP_UFFDWP_H

#include <stddef.h>
#include <stdint.h>

#include <uffdwp/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief The dirty-tracking mechanisms the library can use.
 *
 * The numeric values are ABI: they never change, and new mechanisms get new
 * values below #UFFDWP_BACKEND_SLOTS.
 */
enum uffdwp_backend {
	/** Choose the best usable mechanism by functional probe. */
	UFFDWP_BACKEND_AUTO = 0,
	/** userfaultfd `UFFD_FEATURE_WP_ASYNC` with `PAGEMAP_SCAN` (6.7+). */
	UFFDWP_BACKEND_UFFD_ASYNC = 1,
	/** userfaultfd write-protect faults served by a library thread. */
	UFFDWP_BACKEND_UFFD_SYNC = 2,
	/** pagemap soft-dirty bit and `/proc/self/clear_refs`. */
	UFFDWP_BACKEND_SOFT_DIRTY = 3,
	/** `mprotect(PROT_READ)` and a `SIGSEGV` handler. */
	UFFDWP_BACKEND_MPROTECT = 4,
};

/** Size of the per-backend arrays in public structures (room to grow). */
#define UFFDWP_BACKEND_SLOTS 8

/** @brief How the library opens a userfaultfd. */
enum uffdwp_uffd_mode {
	/** No way to open a userfaultfd works here. */
	UFFDWP_UFFD_NONE = 0,
	/** `open("/dev/userfaultfd")` and `USERFAULTFD_IOC_NEW` (6.1+). */
	UFFDWP_UFFD_DEV = 1,
	/** `userfaultfd(2)` without flags: needs `CAP_SYS_PTRACE` or
	 *  `vm.unprivileged_userfaultfd=1`. */
	UFFDWP_UFFD_SYSCALL = 2,
	/** `userfaultfd(UFFD_USER_MODE_ONLY)` (5.11+): faults taken inside
	 *  system calls are not delivered (the system call fails instead). */
	UFFDWP_UFFD_USER_MODE_ONLY = 3,
};

/** @brief Transparent huge page mode of the system. */
enum uffdwp_thp {
	UFFDWP_THP_UNKNOWN = 0, /**< THP sysfs file missing or unreadable */
	UFFDWP_THP_ALWAYS = 1, /**< "always" */
	UFFDWP_THP_MADVISE = 2, /**< "madvise" */
	UFFDWP_THP_NEVER = 3, /**< "never" */
};

/** @brief What a probe found for one backend. */
struct uffdwp_backend_status {
	/** 1 if the backend passed its functional probe, 0 if not. */
	int usable;
	/** One line a person can act on: why it is usable or not. */
	const char *reason;
};

/**
 * @brief Capabilities of this kernel and process, as uffdwp_probe() found
 * them by trying each mechanism.
 *
 * Strings belong to the library and stay valid until the process exits.
 * Error fields hold 0 for success or the negative errno of the attempt.
 */
struct uffdwp_caps {
	/** Set by the caller to `sizeof(struct uffdwp_caps)`. */
	size_t sz;
	/** `uname -r`: reported, never used to decide anything. */
	const char *kernel_release;
	/** `uname -m`. */
	const char *machine;

	/** The #uffdwp_uffd_mode the library uses. */
	int uffd_mode;
	/** Result of opening through `/dev/userfaultfd`. */
	int uffd_dev_err;
	/** Result of `userfaultfd(2)` without flags. */
	int uffd_syscall_err;
	/** Result of `userfaultfd(UFFD_USER_MODE_ONLY)`. */
	int uffd_user_mode_only_err;
	/** What the chosen mode cannot do, in one line. */
	const char *uffd_mode_limits;
	/** NULL when a userfaultfd can be opened; otherwise what blocks it
	 *  (seccomp, sysctl, permission, kernel option) and what would fix it. */
	const char *uffd_blocked;
	/** Feature bits `UFFDIO_API` reported on a throw-away fd (0 if none). */
	uint64_t uffd_features;
	/** 1 if a synchronous write-protect fault round trip worked. */
	int uffd_wp;
	/** 1 if `UFFD_FEATURE_EVENT_FORK` may be requested (`CAP_SYS_PTRACE`). */
	int event_fork;
	/** 1 if `PAGEMAP_SCAN` accepts the masks the backends use. */
	int pagemap_scan;
	/** 1 if `PAGEMAP_SCAN` knows the `PAGE_IS_SOFT_DIRTY` category (6.8+). */
	int pagemap_scan_soft_dirty;
	/** 1 if the soft-dirty bit round trip worked (write, clear, write). */
	int soft_dirty;
	/** The #uffdwp_thp mode. */
	int thp;

	/** The backend #UFFDWP_BACKEND_AUTO chooses (a #uffdwp_backend). */
	int auto_backend;
	/** Why AUTO chose it: each better backend it passed over, and why. */
	const char *auto_reason;
	/** Indexed by #uffdwp_backend; slot 0 (AUTO) and unused slots are 0. */
	struct uffdwp_backend_status backend[UFFDWP_BACKEND_SLOTS];
	/** Number of entries in the kernel-defect table (uffdwp_defect_get()). */
	size_t n_defects;
};

/** @brief State of a known kernel defect on this system. */
enum uffdwp_defect_status {
	/** Not determined (e.g. a probe too costly to run implicitly). */
	UFFDWP_DEFECT_UNKNOWN = 0,
	/** A behavioural check ran and did not show the defect. */
	UFFDWP_DEFECT_ABSENT = 1,
	/** A behavioural check showed the defect. */
	UFFDWP_DEFECT_PRESENT = 2,
	/** The mechanism it concerns is not usable here. */
	UFFDWP_DEFECT_NOT_APPLICABLE = 3,
};

/** @brief One entry of the known-kernel-defect table. */
struct uffdwp_defect {
	/** Set by the caller to `sizeof(struct uffdwp_defect)`. */
	size_t sz;
	/** Stable identifier, e.g. "pagemap-scan-stale-walk-end". */
	const char *id;
	/** What goes wrong, and on which kernels. */
	const char *summary;
	/** A #uffdwp_defect_status. */
	int status;
	/** How the library detects it. */
	const char *detection;
	/** What the check observed on this system. */
	const char *observed;
	/** What the library does about it. */
	const char *action;
};

/**
 * @brief Find out which mechanisms work here, by trying them.
 *
 * The first call runs every functional probe: it opens throw-away
 * userfaultfds, maps and writes a few private pages, starts and joins one
 * short-lived thread (the synchronous fault round trip), and, only when a
 * freshly written page shows the soft-dirty bit, writes "4" to
 * `/proc/self/clear_refs` once. Later calls return the cached result.
 *
 * @param[in,out] caps Filled up to caps->sz bytes.
 * @return 0 on success; -EINVAL if @p caps is NULL or caps->sz is smaller
 *         than a `size_t`; -E2BIG if caps->sz is larger than the library's
 *         structure and the extra bytes are not zero; -ENOMEM if the first
 *         probe could not allocate.
 * @note Thread-safe; concurrent first calls run the probe once. The
 *       `clear_refs` write resets soft-dirty bits of the whole process: a
 *       program that uses soft-dirty itself should probe before it starts.
 * @note Never decides from the kernel version string.
 */
int uffdwp_probe(struct uffdwp_caps *caps);

/**
 * @brief Read entry @p idx of the known-kernel-defect table.
 *
 * Runs uffdwp_probe() first if it has not run. Entry order is stable within
 * a release; identify entries by uffdwp_defect::id.
 *
 * @param[in] idx Index, from 0 to uffdwp_caps::n_defects - 1.
 * @param[in,out] defect Filled up to defect->sz bytes.
 * @return 0 on success; -EINVAL if @p defect is NULL or its sz too small;
 *         -E2BIG as for uffdwp_probe(); -ENOENT if @p idx is past the end.
 * @note Thread-safe.
 */
int uffdwp_defect_get(size_t idx, struct uffdwp_defect *defect);

/**
 * @brief The canonical name of a backend.
 *
 * @param[in] backend A #uffdwp_backend.
 * @return "auto", "uffd_async", "uffd_sync", "soft_dirty" or "mprotect";
 *         NULL for an unknown value.
 * @note Thread-safe and async-signal-safe.
 */
const char *uffdwp_backend_name(int backend);

/**
 * @brief Parse a backend name, as `UFFDWP_BACKEND` accepts it.
 *
 * Accepts the canonical names of uffdwp_backend_name() and the short forms
 * "async", "sync", "soft-dirty" (any of '-' or '_').
 *
 * @param[in] name The name.
 * @return A #uffdwp_backend (>= 0); -EINVAL if @p name is NULL or unknown.
 * @note Thread-safe.
 */
int uffdwp_backend_from_name(const char *name);

/**
 * @brief The name of a userfaultfd open mode.
 *
 * @param[in] mode A #uffdwp_uffd_mode.
 * @return "none", "dev_userfaultfd", "syscall" or "user_mode_only"; NULL for
 *         an unknown value.
 * @note Thread-safe and async-signal-safe.
 */
const char *uffdwp_uffd_mode_name(int mode);

/**
 * @brief The name of a defect status.
 *
 * @param[in] status A #uffdwp_defect_status.
 * @return "unknown", "absent", "present" or "not-applicable"; NULL for an
 *         unknown value.
 * @note Thread-safe and async-signal-safe.
 */
const char *uffdwp_defect_status_name(int status);

/**
 * @brief The version of the library the program runs with.
 *
 * Compare with #UFFDWP_VERSION_STRING, the version it was built against.
 *
 * @return A string such as "0.1.0".
 * @note Thread-safe and async-signal-safe.
 */
const char *uffdwp_version(void);

#ifdef __cplusplus
}
#endif

#endif /* UFFDWP_UFFDWP_H */
