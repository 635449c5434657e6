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
 *   different versions work together. That check reads the caller's
 *   object up to @c sz: an @c sz larger than the object the caller really
 *   passes reads past it (as libbpf's structures do). Set it with sizeof,
 *   or declare the structure with #UFFDWP_OPTS, which does.
 * - The library prints nothing and starts no thread unless a call says so.
 *
 * Threads that block `SIGSEGV` (thread pools often start with every signal
 * blocked): the kernel forces a fault's `SIGSEGV` on such a thread, to its
 * default action, and the process dies. So:
 * - mprotect tracks through that signal: uffdwp_track() refuses with
 *   -EDEADLK while a thread of the process blocks `SIGSEGV`, unless the
 *   caller says with #UFFDWP_TRACK_SIGSEGV_BLOCKERS that those threads
 *   never write the range. A thread that blocks it and writes a tracked
 *   range kills the process:
 *   keep `SIGSEGV` unblocked in every thread that may write, or use another
 *   backend (`uffdwp-check --threads PID` lists the threads that block it).
 * - uffd_async's snapshot moves, which would hold writers in a `SIGSEGV`
 *   handler, are made without that hold while such a thread exists: every
 *   page of the range then counts as written before the instant (the next
 *   incremental snapshot of it is whole), and after the snapshot the range
 *   stays on the synchronous userfaultfd (exact, each first write a handler
 *   round trip) until a later snapshot ends with no such thread.
 * - uffd_sync and soft_dirty raise no signal, except uffd_sync in the
 *   self-service mode (#UFFDWP_CTX_SELF_SERVICE), which tracks through
 *   `SIGBUS` exactly as mprotect does through `SIGSEGV`: uffdwp_track()
 *   refuses with -EDEADLK while a thread blocks `SIGBUS`, unless the caller
 *   passes #UFFDWP_TRACK_SIGNAL_BLOCKERS (the same flag as
 *   #UFFDWP_TRACK_SIGSEGV_BLOCKERS), and such a thread that writes a
 *   tracked range kills the process.
 *
 * Signals, and programs that stop the world with them (garbage collectors,
 * runtimes, profilers):
 * - No program handler is ever run where other threads wait on the
 *   thread inside the library (a collect that pauses fault handling, a
 *   snapshot holding writers, the library's `SIGSEGV` handler at work), so
 *   a program may park threads in its signal handlers and then call
 *   uffdwp_collect() from another thread.
 * - And the signal is not kept waiting for long, whatever the size of the
 *   memory tracked: work that holds other threads runs on a library thread
 *   when it covers 1024 pages or more, while the calling thread waits with
 *   its own mask; a writer held by that work waits with its own mask too.
 *   What is left blocks a thread's asynchronous signals for at most a few
 *   milliseconds (libuffdwp(7), SIGNALS, lists it). Synchronous signals
 *   (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`, `SIGTRAP`, `SIGSYS`) are
 *   never blocked by the library.
 * - A program's own handlers may write tracked memory (it is tracked as
 *   any write), but must not call this library: no call is
 *   async-signal-safe unless it says so. A call on a context holds that
 *   context's lock: a thread parked inside one blocks the next call on the
 *   same context, so under a stopped world only the thread that stopped it
 *   should make calls (as a collector does, under its own lock).
 * - A `SIGSEGV` handler the program installed before the library's gets
 *   the faults that are not the library's, run under the mask it asked
 *   for (the interrupted thread's mask plus its `sa_mask`). One installed
 *   after must pass on the faults it does not own to the one it replaced.
 *
 * fork(): the child's copies of the parent's contexts answer -ECHILD and
 * may only be freed. The child may then make its own contexts and track any
 * range again, the parent's included. The library registers its fork
 * handlers (pthread_atfork()) when it is loaded, so a child handler that a
 * program or another library registers later (a collector's, say) runs
 * after the library's and may call it. They also run urcu-bp's fork hooks,
 * so a program must not call urcu_bp_before_fork() and its two companions
 * itself. A fork waits while a snapshot holds writers.
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
 * @brief Declare @p NAME, a `struct TYPE` of this header, with its @c sz
 * set, the fields given as designated initialisers, and every other field
 * zero (libbpf's LIBBPF_OPTS):
 * `UFFDWP_OPTS(uffdwp_ctx_opts, o, .backend = UFFDWP_BACKEND_UFFD_SYNC);`.
 * C99 wants at least one field after @p NAME; C++ needs C++20 designated
 * initialisers, in declaration order.
 */
#define UFFDWP_OPTS(TYPE, NAME, ...) \
	struct TYPE NAME = { .sz = sizeof(struct TYPE), __VA_ARGS__ }

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
	/** 1 if the self-service round trip worked (#UFFDWP_CTX_SELF_SERVICE):
	 *  a write to a write-protected page raised `SIGBUS` in the writer, a
	 *  handler's unprotect let it land, and a kernel write there failed
	 *  with `EFAULT`. Tried in a throw-away child process, so the probe
	 *  installs no signal handler in the program. */
	int uffd_sigbus;
	/** Why uffd_sigbus is what it is, in one line. */
	const char *uffd_sigbus_reason;
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

/* --- dirty tracking -------------------------------------------------- */

/** @brief A dirty-tracking context: a backend and the ranges it tracks. */
struct uffdwp_ctx;

/** @brief Options for uffdwp_ctx_new(); NULL means all defaults. */
struct uffdwp_ctx_opts {
	/** Set by the caller to `sizeof(struct uffdwp_ctx_opts)`. */
	size_t sz;
	/**
	 * A #uffdwp_backend; #UFFDWP_BACKEND_AUTO (0) picks the best usable
	 * one, after consulting the `UFFDWP_BACKEND` environment variable.
	 *
	 * AUTO's policy: uffd_async where `WP_ASYNC` and `PAGEMAP_SCAN`
	 * work (no signal, no thread, kernel writes work); else uffd_sync,
	 * in the self-service mode (#UFFDWP_CTX_SELF_SERVICE) when its
	 * round trip works and no thread blocks `SIGBUS` at the call, and
	 * in the handler-thread mode otherwise; else soft_dirty; else
	 * mprotect. Self-service is AUTO's choice because each first write
	 * then costs the writer a signal, not a wake-up of a handler thread
	 * that may be behind a busy thread on another CPU; its price is that
	 * a kernel write into a protected page fails with `EFAULT`, which a
	 * user-mode-only userfaultfd already imposes on the handler-thread
	 * mode too. A program that needs kernel writes into tracked memory
	 * passes #UFFDWP_CTX_KERNEL_WRITES. uffdwp_ctx_backend_reason() says
	 * which mode AUTO took, and why. A backend forced by `UFFDWP_BACKEND`
	 * is taken as it is (uffd_sync: the handler-thread mode).
	 */
	int backend;
	/** uffd_sync: fault-handler threads (0 means 1). */
	unsigned int handler_threads;
	/** #uffdwp_ctx_flags. */
	unsigned int flags;
};

/** @brief Flags of struct uffdwp_ctx_opts. */
enum uffdwp_ctx_flags {
	/**
	 * uffd_sync's self-service mode (`UFFD_FEATURE_SIGBUS`, 4.14): a
	 * first write raises `SIGBUS` in the writing thread, whose handler
	 * (the library's) records the page and unprotects it; no handler
	 * thread, no thread switch. With #UFFDWP_BACKEND_AUTO it selects
	 * uffd_sync; with another backend it is -EINVAL.
	 *
	 * Its contract differs from the handler-thread mode in two ways:
	 * - A write the kernel makes on the program's behalf into a tracked
	 *   page that is write-protected (`read(2)` into it, `O_DIRECT`,
	 *   io_uring, `process_vm_writev`) fails with `EFAULT` instead of
	 *   waiting, as under a user-mode-only userfaultfd.
	 * - Writes fault through `SIGBUS`: a thread that blocks it is killed
	 *   by its first write (the kernel forces the default action), so
	 *   uffdwp_track() refuses with -EDEADLK while one exists, as the
	 *   mprotect backend does for `SIGSEGV`. The library's handler is
	 *   installed at the first track and chains every `SIGBUS` that is
	 *   not its own to the handler installed before it. A program that
	 *   installs its own `SIGBUS` handler afterwards takes the library's
	 *   faults itself: it must chain to the library's (the handler
	 *   sigaction() returned), or tracked writes fault forever;
	 *   `SA_RESETHAND` on it makes the next one kill the process.
	 * uffdwp_ctx_backend_reason() says "self-service". Snapshots work:
	 * during one, the first write to a page not yet copied copies its
	 * pre-image, inside the writer's SIGBUS handler, to the snapshot's
	 * staging area (never to the sink, whose callbacks are the
	 * program's code), and the copier threads hand it to the sink.
	 */
	UFFDWP_CTX_SELF_SERVICE = 1u << 0,
	/**
	 * The program needs writes the kernel makes on its behalf into
	 * tracked memory (`read(2)` into it, `O_DIRECT`, io_uring,
	 * `process_vm_writev`) to work, not to fail with `EFAULT` at a
	 * write-protected page. With #UFFDWP_BACKEND_AUTO the context gets
	 * the first usable backend that honours them: uffd_async; uffd_sync
	 * in the handler-thread mode, when the library's userfaultfd is not
	 * user-mode-only; soft_dirty. -EOPNOTSUPP when none is usable, and
	 * also for an explicit backend that cannot honour them (mprotect,
	 * and uffd_sync on a user-mode-only userfaultfd). With
	 * #UFFDWP_CTX_SELF_SERVICE it is -EINVAL.
	 */
	UFFDWP_CTX_KERNEL_WRITES = 1u << 1,
};

/** @brief Flags for uffdwp_track(). */
enum uffdwp_track_flags {
	/**
	 * Leave transparent huge pages alone. By default the library calls
	 * `MADV_NOHUGEPAGE` on a tracked range so every backend accounts in
	 * base pages; with this flag the soft_dirty backend may report whole
	 * 2 MiB pages (uffdwp_stats::granularity says which).
	 */
	UFFDWP_TRACK_HUGE = 1u << 0,
	/**
	 * mprotect: track even while threads of the process block `SIGSEGV`
	 * (by default -EDEADLK): the caller knows those threads never write
	 * this range, which would kill the process. The same for `SIGBUS` on
	 * uffd_sync's self-service mode (#UFFDWP_CTX_SELF_SERVICE). A
	 * garbage collector's marker threads (bdwgc's start with every signal
	 * blocked) or a timer's helper thread are such threads. Other
	 * backends ignore it.
	 */
	UFFDWP_TRACK_SIGSEGV_BLOCKERS = 1u << 1,
	/**
	 * #UFFDWP_TRACK_SIGSEGV_BLOCKERS under a name that covers both
	 * signals it is about: `SIGSEGV` on mprotect, `SIGBUS` on the
	 * self-service mode. The same bit; either name may be used.
	 */
	UFFDWP_TRACK_SIGNAL_BLOCKERS = UFFDWP_TRACK_SIGSEGV_BLOCKERS,
};

/**
 * @brief Receives one run of dirty pages from uffdwp_collect().
 *
 * @param arg The @p arg given to uffdwp_collect().
 * @param addr Start of the run (page aligned).
 * @param len Length of the run in bytes (a multiple of the page size).
 * @return 0 to go on; a negative errno stops the collect, which returns it,
 *         and a positive value stops it too, which then returns -ECANCELED.
 *         The runs not yet delivered stay pending and are reported by the
 *         next collect: nothing is lost.
 */
typedef int (*uffdwp_run_fn)(void *arg, void *addr, size_t len);

/** @brief Counters of a context (uffdwp_ctx_stats()). */
struct uffdwp_stats {
	/** Set by the caller to `sizeof(struct uffdwp_stats)`. */
	size_t sz;
	/** Write faults the library resolved (uffd_sync, mprotect). */
	uint64_t faults;
	/** Protection system calls issued (UFFDIO_WRITEPROTECT, PAGEMAP_SCAN
	 *  with WP_MATCHING, mprotect, clear_refs). */
	uint64_t wp_calls;
	/** Ranges queued to the wp batch. */
	uint64_t wp_queued;
	/** Queued ranges the batch folded into a neighbour (one call saved
	 *  each). */
	uint64_t wp_merged;
	/** Pages re-armed (write-protected again) by collects. */
	uint64_t pages_rearmed;
	/** Collects run, and the time spent in them. */
	uint64_t collects;
	uint64_t collect_ns;
	/** Dirty pages reported by collects. */
	uint64_t pages_reported;
	/** Kernel calls retried after EAGAIN (address-space changes). */
	uint64_t retries;
	/** Address-space events handled (zap, unmap, remap). */
	uint64_t events;
	/** Pages tracked now. */
	uint64_t pages_tracked;
	/** Bytes per reported unit: the page size, or 2 MiB with
	 *  #UFFDWP_TRACK_HUGE on soft_dirty. */
	uint64_t granularity;
};

/**
 * @brief Create a dirty-tracking context.
 *
 * With #UFFDWP_BACKEND_AUTO the best backend that passed uffdwp_probe() is
 * used, unless `UFFDWP_BACKEND=async|sync|soft-dirty|mprotect` names one.
 * A named backend (in @p opts or the environment) that cannot work here is
 * an error, never a silent fallback; uffdwp_ctx_backend_reason() says why a
 * backend was chosen. uffd_sync starts its handler thread(s) here; mprotect
 * installs its `SIGSEGV` handler on first use (it chains to any previous
 * handler for faults outside tracked ranges).
 *
 * @param[in] opts Options, or NULL for defaults.
 * @param[out] ctx The new context.
 * @return 0; -EINVAL bad options or an unknown `UFFDWP_BACKEND`
 *         (#UFFDWP_CTX_SELF_SERVICE with a backend other than uffd_sync);
 *         -E2BIG a longer @p opts with a non-zero tail; -EOPNOTSUPP the
 *         requested backend is not usable here (or none is; or
 *         #UFFDWP_CTX_SELF_SERVICE where uffdwp_caps::uffd_sigbus is 0);
 *         -EMFILE or -ENFILE out of file descriptors (a userfaultfd, /proc
 *         files); -ENOMEM.
 * @note Thread-safe.
 */
int uffdwp_ctx_new(const struct uffdwp_ctx_opts *opts, struct uffdwp_ctx **ctx);

/**
 * @brief Stop tracking everything and free the context.
 *
 * Ranges are unprotected (writers blocked on them are released), handler
 * threads are joined. In a forked child it closes the context's file
 * descriptors and gives the child's copy of its ranges their write access
 * back (mprotect), so the child can track them again with a context of its
 * own; its memory is left to the child (a snapshot of it may still refer
 * to it), and no other kernel call is made on the parent's behalf.
 *
 * @param[in] ctx The context, or NULL.
 * @return NULL.
 * @note Must not run concurrently with other calls on @p ctx.
 */
struct uffdwp_ctx *uffdwp_ctx_free(struct uffdwp_ctx *ctx);

/**
 * @brief The backend a context uses.
 * @return A #uffdwp_backend; -EINVAL if @p ctx is NULL; -ECHILD after fork.
 * @note Thread-safe.
 */
int uffdwp_ctx_backend(const struct uffdwp_ctx *ctx);

/**
 * @brief Why the context uses its backend (AUTO's reasons, or "requested").
 * @return A string owned by the context, or NULL if @p ctx is NULL.
 * @note Thread-safe.
 */
const char *uffdwp_ctx_backend_reason(const struct uffdwp_ctx *ctx);

/**
 * @brief Start tracking writes to [@p addr, @p addr + @p len).
 *
 * The range must be mapped, readable and writable, page aligned, and not
 * overlap a range this or another context tracks. Pages written after
 * this call returns are reported by the next uffdwp_collect(). On
 * soft_dirty, tracking clears the soft-dirty bits of the whole process
 * after reading every tracked range: writers of soft-dirty ranges must be
 * quiescent during a track too.
 *
 * Memory types: anonymous private memory on every backend; shmem and memfd
 * on uffd_async, uffd_sync (5.19+) and mprotect; file-backed shared
 * mappings on uffd_async only. Other combinations fail with -EOPNOTSUPP:
 * a range is never silently left untracked.
 *
 * The library's own memory cannot be tracked: the state its fault handlers
 * write, its threads' stacks, the writable segments of this library and of
 * liburcu-bp, and the urcu-bp registry its threads use. Each is a mapping
 * of its own (a line of its own in /proc/self/maps), so a program that
 * tracks mapping by mapping (every writable anonymous mapping, as a
 * collector may) skips those that fail with -EBUSY. On mprotect, and on
 * uffd_sync with a user-mode-only userfaultfd, a live thread's stack and
 * its thread control block (the main thread's is in an anonymous mapping
 * next to the libraries) must not be tracked either: the kernel writes
 * there on signal delivery and for rseq, and kills the thread when it
 * cannot.
 *
 * Unmapping tracked memory and mapping something else there (a guard page,
 * a file) ends the tracking of those pages: they are not reported, and on
 * mprotect the library never changes their protection again, at collect,
 * untrack or in its handler, which passes their faults to the program's.
 * mprotect tells a replacement from the tracked mapping by what the kernel
 * shows: its protection (the library sets only read-only and read-write),
 * its file, inode and offset, shared or private. Two limits follow. A
 * private anonymous mapping with the protection the library set there
 * (read-only over a page not written since the last collect) cannot be
 * told apart: its first write is let through and reported like the
 * tracked memory's. And before 6.11 (no PROCMAP_QUERY) the handler sees
 * only what the last collect found, plus whether the page is readable: a
 * readable replacement made since then is recognised at the next collect.
 *
 * @param[in] ctx The context.
 * @param[in] addr Start, page aligned.
 * @param[in] len Length, a non-zero multiple of the page size.
 * @param[in] flags #uffdwp_track_flags.
 * @return 0; -EINVAL misaligned, zero length, overflow or unknown flags;
 *         -EEXIST overlaps a tracked range; -EFAULT part of the range is not
 *         mapped; -EACCES the range is not readable and writable;
 *         -EOPNOTSUPP this backend cannot track this kind of memory;
 *         -EBUSY part of the range is the library's own memory (see
 *         below); -EMFILE or -ENFILE out of file descriptors (the library
 *         reads /proc/self/maps); -EDEADLK on mprotect a thread of the
 *         process blocks `SIGSEGV` (on uffd_sync's self-service mode,
 *         `SIGBUS`) and @p flags lack #UFFDWP_TRACK_SIGNAL_BLOCKERS (see
 *         the top of this header); -ECHILD after fork; -ENOMEM.
 * @note Thread-safe; serialised with the other calls on @p ctx.
 */
int uffdwp_track(struct uffdwp_ctx *ctx, void *addr, size_t len,
		 unsigned int flags);

/**
 * @brief Stop tracking a range given to uffdwp_track().
 *
 * @p addr and @p len must be those of one uffdwp_track() call. Its pages
 * become writable without faults; dirty pages not yet collected are
 * dropped. A range that was unmapped or moved away meanwhile may still be
 * untracked.
 *
 * @return 0; -EINVAL misaligned or zero length; -EBUSY a snapshot of the
 *         range is running; -ENOENT no range tracked at
 *         exactly [@p addr, @p addr + @p len); -ECHILD after fork.
 * @note Thread-safe; serialised with the other calls on @p ctx.
 */
int uffdwp_untrack(struct uffdwp_ctx *ctx, void *addr, size_t len);

/**
 * @brief Report the pages written since the previous collect (or track),
 * and re-arm them in the same step.
 *
 * Runs are coalesced, in address order, and delivered after they were
 * re-protected, so a consumer that copies a run in @p fn copies every write
 * made before the re-protect; later writes are reported next time.
 * A page whose contents were zapped (`MADV_DONTNEED`) counts as written.
 *
 * Guarantees: exact on uffd_async, uffd_sync and mprotect with writers
 * running. On soft_dirty the clear of `/proc/self/clear_refs` is
 * process-wide and not atomic with the read: writes made *during* a
 * collect may be lost, so writers of soft-dirty ranges must be quiescent
 * while it runs (it may report extra pages, never fewer, when they are).
 *
 * @param[in] ctx The context.
 * @param[in] fn Called once per run, from the calling thread; it must not
 *            call uffdwp_* on @p ctx.
 * @param[in] arg Passed to @p fn.
 * @return The number of dirty pages reported; -EINVAL if @p fn is NULL;
 *         @p fn's negative value if it stopped the collect, -ECANCELED
 *         if it stopped it with a positive one; -EMFILE or -ENFILE out of
 *         file descriptors (the library reads /proc); -ECHILD after
 *         fork; -EAGAIN if an address-space change (munmap, mremap,
 *         MADV_DONTNEED) kept the kernel from re-arming for 2 s: call it
 *         again; other -errno from the kernel. In every error case nothing
 *         is lost: unreported pages stay pending for the next collect.
 * @note Thread-safe; serialised with the other calls on @p ctx. Writers may
 *       keep writing tracked memory from any thread (see soft_dirty above).
 */
long uffdwp_collect(struct uffdwp_ctx *ctx, uffdwp_run_fn fn, void *arg);

/**
 * @brief Read a context's counters.
 * @return 0; -EINVAL/-E2BIG as for uffdwp_probe(); -ECHILD after fork.
 * @note Thread-safe; counters are read without stopping writers.
 */
int uffdwp_ctx_stats(const struct uffdwp_ctx *ctx, struct uffdwp_stats *stats);

/* --- live snapshots --------------------------------------------------- */

/**
 * @brief A running or finished live snapshot (opaque).
 *
 * A snapshot is a copy of a tracked range as it was at one instant (the
 * *instant*: when uffdwp_snapshot_start() protected the range), taken while
 * the program keeps writing. Each page is copied before the first write
 * after the instant may proceed (copy-before-write on the fault path),
 * and copier threads sweep the pages nobody writes.
 */
struct uffdwp_snapshot;

/** @brief uffdwp_snapshot_opts::flags. */
enum uffdwp_snapshot_flags {
	/**
	 * Only the pages written since the last uffdwp_collect() or snapshot
	 * of the range reach the sink. Applied to the previous image, they
	 * give the range as it was at this snapshot's instant.
	 */
	UFFDWP_SNAPSHOT_INCREMENTAL = 1u << 0,
};

/** @brief What a finished snapshot guarantees. */
enum uffdwp_consistency {
	/** Not finished, or failed: nothing is guaranteed. */
	UFFDWP_CONSISTENCY_NONE = 0,
	/** Every page the sink got is the page's contents at the instant. */
	UFFDWP_CONSISTENCY_EXACT = 1,
};

/** @brief Why a snapshot did not finish. */
enum uffdwp_snapshot_cause {
	UFFDWP_CAUSE_NONE = 0, /**< it did finish, or still runs */
	/** uffdwp_snapshot_cancel() or uffdwp_snapshot_free() while running. */
	UFFDWP_CAUSE_CALLER = 1,
	/** A sink callback returned the error the snapshot failed with. */
	UFFDWP_CAUSE_SINK = 2,
	/** `MADV_DONTNEED` (or another zap) over a page not yet copied. */
	UFFDWP_CAUSE_ZAPPED = 3,
	/** `munmap`, `mremap` or `mmap(MAP_FIXED)` over any part of the
	 *  range before every page reached the sink (the kernel reports an
	 *  unmap after the fact: no copy made near it can be trusted). */
	UFFDWP_CAUSE_UNMAPPED = 4,
	/** A kernel call failed; the error is its errno. */
	UFFDWP_CAUSE_KERNEL = 5,
	/** The context was freed while the snapshot ran. */
	UFFDWP_CAUSE_CONTEXT = 6,
};

/** @brief uffdwp_snapshot_status::state. */
enum uffdwp_snapshot_state {
	UFFDWP_SNAPSHOT_RUNNING = 0, /**< pages are still being copied */
	UFFDWP_SNAPSHOT_DONE = 1, /**< every page reached the sink */
	UFFDWP_SNAPSHOT_FAILED = 2, /**< cancelled; the sink was told */
};

/** @brief What a sink is told before the first page. */
struct uffdwp_snapshot_info {
	/** Size of this structure as the library knows it. */
	size_t sz;
	/** The snapshot's range. */
	void *addr;
	size_t len;
	size_t page_size;
	/** Pages that will reach the sink: every page of the range, or for
	 *  an incremental snapshot the pages written since the last one. */
	uint64_t pages;
	/** The snapshot's #uffdwp_snapshot_flags. */
	unsigned int flags;
	/** CLOCK_REALTIME nanoseconds at the instant. */
	uint64_t instant_realtime_ns;
};

/**
 * @brief Where a snapshot's pages go.
 *
 * The contract, for every callback:
 * - It is called from library threads (copier or fault-handler threads),
 *   and @ref write and @ref place may be called concurrently from several
 *   of them. Each page reaches the sink exactly once, in no set order.
 * - It must not touch (read or write) memory tracked by any context, must
 *   not call uffdwp_* on the snapshot's context, and must not wait for a
 *   thread that may be writing tracked memory: such a writer may be
 *   waiting for this very callback.
 * - @p data is valid only during the call.
 * - A negative return value cancels the snapshot with that error
 *   (#UFFDWP_CAUSE_SINK); @ref end is still called.
 */
struct uffdwp_sink {
	/** Set by the caller to `sizeof(struct uffdwp_sink)`. */
	size_t sz;
	/** Passed to every callback. */
	void *arg;
	/** Optional. Called once, by uffdwp_snapshot_start() in the calling
	 *  thread, after the instant and before any page. It may write
	 *  tracked memory (that page is copied to staging first). An error
	 *  fails the start, and @ref end is not called. */
	int (*begin)(void *arg, const struct uffdwp_snapshot_info *info);
	/** Optional. Where the @p len bytes of the pages at @p addr go: the
	 *  library copies them there itself, with no intermediate copy, and
	 *  does not call @ref write for them. NULL means "use write". */
	void *(*place)(void *arg, void *addr, size_t len);
	/** Required unless @ref place never returns NULL. The pre-image of
	 *  the @p len bytes (whole pages) at @p addr. */
	int (*write)(void *arg, void *addr, const void *data, size_t len);
	/** Optional. Called once from a library thread when the snapshot
	 *  ends: @p status 0 when every page was written (an error returned
	 *  now fails the snapshot, e.g. a failed fsync), or the snapshot's
	 *  negative error. */
	int (*end)(void *arg, int status);
	/** Optional. Frees @ref arg; called by uffdwp_sink_free() only. */
	void (*destroy)(void *arg);
};

/** @brief Options for uffdwp_snapshot_start(); NULL means defaults. */
struct uffdwp_snapshot_opts {
	/** Set by the caller to `sizeof(struct uffdwp_snapshot_opts)`. */
	size_t sz;
	/** #uffdwp_snapshot_flags. */
	unsigned int flags;
	/** Copier threads of the background sweep (0: the number of online
	 *  CPUs, at most 4; at most 64). */
	unsigned int copiers;
	/** Pages of the staging area the fault path copies pre-images into
	 *  when the sink has no @ref uffdwp_sink::place (0: 512). When it is
	 *  full, faulting writers wait for the sink (backpressure). */
	unsigned int staging_pages;
};

/** @brief A snapshot's progress and outcome. */
struct uffdwp_snapshot_status {
	/** Set by the caller to `sizeof(struct uffdwp_snapshot_status)`. */
	size_t sz;
	/** A #uffdwp_snapshot_state. */
	int state;
	/** 0, or the negative error the snapshot failed with. */
	int error;
	/** A #uffdwp_snapshot_cause. */
	int cause;
	/** A #uffdwp_consistency: EXACT only once DONE. */
	int consistency;
	/** Pages that will reach the sink, and those that did. */
	uint64_t pages;
	uint64_t pages_done;
	/** Pages copied on the fault path, before a writer's first write. */
	uint64_t pages_faulted;
	/** Writer faults that waited for a copier holding their page. */
	uint64_t faults_waited;
	/** Times a faulting writer waited because the staging area was full. */
	uint64_t staging_full;
	/** How long uffdwp_snapshot_start() held writers off (the protect). */
	uint64_t start_ns;
	/** From the instant to the end (so far, while running). */
	uint64_t elapsed_ns;
	/** CLOCK_REALTIME nanoseconds at the instant (as in the image). */
	uint64_t instant_realtime_ns;
	/** 1 once every page reached the sink, while its end() (a file
	 *  sink's fsync and rename) still runs. */
	int committing;
};

/**
 * @brief Take a live snapshot of [@p addr, @p addr + @p len).
 *
 * The range must lie within one range tracked by @p ctx. Its pages are
 * write-protected (this is the instant); then copier threads sweep them into
 * @p sink while faulting writers copy their page first (copy-before-write).
 * Writers are held off only during the protect, and on a page only while
 * its pre-image is copied. uffdwp_snapshot_wait() gives the outcome.
 *
 * A snapshot also counts as a collect of its range: pages written before
 * the instant are not reported by the next uffdwp_collect(), and pages
 * written after it are (nothing is lost). Collects of the context may run
 * while the snapshot does.
 *
 * On uffd_sync the context's handler threads serve both. On uffd_async the
 * tracked range moves to a synchronous userfaultfd for the snapshot window
 * and back afterwards: during each move (a few system calls) the range is
 * read-only and a writer's `SIGSEGV` is held by a library handler until
 * the move is done, and system calls writing into the range fail with
 * EFAULT meanwhile (while a thread blocks `SIGSEGV`, there is no hold:
 * see the top of this header). soft_dirty and mprotect cannot hold a writer before
 * its first write and give -EOPNOTSUPP, as do file-backed ranges (no
 * synchronous write-protect for regular files).
 *
 * Faults taken inside system calls need a userfaultfd that is not
 * user-mode-only: where only that mode is allowed (see uffdwp_probe()), a
 * system call writing into a range under snapshot fails with EFAULT.
 *
 * @param[in] ctx A uffd_sync or uffd_async context.
 * @param[in] addr Start, page aligned.
 * @param[in] len Length, a non-zero multiple of the page size.
 * @param[in] sink Where the pages go; copied, but its @ref uffdwp_sink::arg
 *            must live until the snapshot ended.
 * @param[in] opts Options, or NULL.
 * @param[out] snap The snapshot, to be freed with uffdwp_snapshot_free().
 * @return 0; -EINVAL misaligned, zero length, overflow, a NULL argument,
 *         bad options or a sink without @ref uffdwp_sink::write or
 *         @ref uffdwp_sink::place; -E2BIG as for uffdwp_probe();
 *         -ENOENT the range is not within one tracked range; -EBUSY a
 *         snapshot of that tracked range is running (or, on uffd_async,
 *         an earlier one could not move the range back to any
 *         userfaultfd: then until a collect arms it again; tracking goes
 *         on either way); -EOPNOTSUPP the
 *         context's backend cannot snapshot (uffd_sync in the
 *         self-service mode cannot yet); -ECHILD after fork;
 *         the sink's begin() error; -ENOMEM; other -errno from the kernel.
 * @note Thread-safe; serialised with the other calls on @p ctx.
 */
int uffdwp_snapshot_start(struct uffdwp_ctx *ctx, void *addr, size_t len,
			  const struct uffdwp_sink *sink,
			  const struct uffdwp_snapshot_opts *opts,
			  struct uffdwp_snapshot **snap);

/**
 * @brief Wait for a snapshot to end.
 *
 * It ends when every page reached the sink and the sink's end() returned
 * (or when it failed). The write-protect window may still be closing then
 * (on uffd_async, the range's move back): the next call on the context,
 * and uffdwp_snapshot_free(), wait for that; the outcome does not change.
 *
 * @param[in] snap The snapshot.
 * @param[in] timeout_ms Milliseconds to wait at most; negative: forever.
 * @return 0 when it finished and is exact; -ETIMEDOUT still running;
 *         -ECANCELED cancelled (by the caller, a zap, an unmap or the
 *         context's end: uffdwp_snapshot_status() gives the cause);
 *         the sink's error; -errno of a failed kernel call; -EINVAL if
 *         @p snap is NULL; -ECHILD after fork.
 * @note Thread-safe: several threads may wait.
 */
int uffdwp_snapshot_wait(struct uffdwp_snapshot *snap, long timeout_ms);

/**
 * @brief Cancel a running snapshot (no-op once it ended).
 *
 * Returns at once; the snapshot ends with -ECANCELED and
 * #UFFDWP_CAUSE_CALLER shortly after (wait for it), and its sink's end()
 * is called with -ECANCELED.
 *
 * @return 0; -EINVAL if @p snap is NULL; -ECHILD after fork.
 * @note Thread-safe, from any thread except a sink callback.
 */
int uffdwp_snapshot_cancel(struct uffdwp_snapshot *snap);

/**
 * @brief A snapshot's progress and outcome.
 * @return 0; -EINVAL/-E2BIG as for uffdwp_probe(); -ECHILD after fork.
 * @note Thread-safe.
 */
int uffdwp_snapshot_status(const struct uffdwp_snapshot *snap,
			   struct uffdwp_snapshot_status *status);

/**
 * @brief Free a snapshot; a running one is cancelled and waited for first.
 *
 * In a forked child it frees nothing (the parent's copier threads do not
 * exist there) and makes no call on the parent's behalf.
 *
 * @param[in] snap The snapshot, or NULL.
 * @return NULL.
 * @note Must not run concurrently with other calls on @p snap.
 */
struct uffdwp_snapshot *uffdwp_snapshot_free(struct uffdwp_snapshot *snap);

/**
 * @brief "caller", "sink", "zapped", "unmapped", "kernel", "context", "none";
 * "running", "done", "failed"; "none", "exact". NULL if unknown.
 * @note Thread-safe and async-signal-safe.
 */
const char *uffdwp_snapshot_cause_name(int cause);
const char *uffdwp_snapshot_state_name(int state);
const char *uffdwp_consistency_name(int consistency);

/* --- sinks and images -------------------------------------------------- */

/**
 * @brief A sink that copies the pages into @p buf, at their offset in the
 * snapshot's range (pages an incremental snapshot leaves out are not
 * touched, so a buffer holding the previous image is brought up to date).
 *
 * @param[in] buf At least the snapshot's length; not tracked memory.
 * @param[in] len Its size: a longer snapshot fails to start with -ENOSPC.
 * @param[out] sink The sink, to be freed with uffdwp_sink_free().
 * @return 0; -EINVAL a NULL argument; -ENOMEM.
 * @note Thread-safe. Use one sink for one snapshot at a time.
 */
int uffdwp_sink_memory_new(void *buf, size_t len, struct uffdwp_sink **sink);

/** @brief uffdwp_sink_file_new() flags. */
enum uffdwp_file_sink_flags {
	/** Skip the fsync calls (tests, scratch images): not durable. */
	UFFDWP_FILE_SINK_NO_SYNC = 1u << 0,
};

/**
 * @brief A sink that writes a self-checking image file to @p path.
 *
 * The image (format version 1, described in README.md) holds the range,
 * the page size, the page count, and each page with its checksum. It is
 * written to a temporary file in @p path's folder, fsync'ed, renamed to
 * @p path, and the folder is fsync'ed: after a successful snapshot the
 * image is durable, and a failed or cancelled one leaves no new file
 * under @p path (an older one survives untouched) and no temporary file.
 * (On file systems without renameat2(RENAME_EXCHANGE), a failure of the
 * final folder fsync leaves the new, complete image in place.)
 *
 * @param[in] path The image's final name; an existing file is replaced
 *            only when the new image is complete.
 * @param[in] flags #uffdwp_file_sink_flags.
 * @param[out] sink The sink, to be freed with uffdwp_sink_free().
 * @return 0; -EINVAL a NULL argument, empty path or unknown flags;
 *         -ENAMETOOLONG; -ENOMEM.
 * @note Thread-safe. Use one sink for one snapshot at a time. Errors of
 *       the file system (-ENOSPC, -EIO...) surface as the snapshot's error.
 */
int uffdwp_sink_file_new(const char *path, unsigned int flags,
			 struct uffdwp_sink **sink);

/**
 * @brief Free a sink made by uffdwp_sink_*_new() (after its snapshot ended).
 * @return NULL.
 */
struct uffdwp_sink *uffdwp_sink_free(struct uffdwp_sink *sink);

/** @brief An image file opened and verified (opaque). */
struct uffdwp_image;

/** @brief What an image holds. */
struct uffdwp_image_info {
	/** Set by the caller to `sizeof(struct uffdwp_image_info)`. */
	size_t sz;
	/** The image format version. */
	unsigned int version;
	/** The snapshot's #uffdwp_snapshot_flags. */
	unsigned int flags;
	/** The snapshot's range, as an address in the process it came from. */
	uint64_t addr;
	uint64_t len;
	uint64_t page_size;
	/** Pages in the image. */
	uint64_t pages;
	/** CLOCK_REALTIME nanoseconds at the snapshot's instant. */
	uint64_t instant_realtime_ns;
};

/**
 * @brief Open an image and verify it whole: header, index and the checksum
 * of every page.
 *
 * @param[in] path The image file.
 * @param[out] img The image, to be closed with uffdwp_image_close().
 * @return 0; -ENOEXEC not an image (bad magic); -EPROTONOSUPPORT a format
 *         version this library does not read; -ENODATA truncated (shorter
 *         than its header says); -EBADMSG corrupted (a header, index or
 *         page checksum does not match, or the header contradicts itself);
 *         -EINVAL a NULL argument; -errno of open/read; -ENOMEM.
 * @note Thread-safe.
 */
int uffdwp_image_open(const char *path, struct uffdwp_image **img);

/**
 * @brief An image's header.
 * @return 0; -EINVAL/-E2BIG as for uffdwp_probe().
 */
int uffdwp_image_info(const struct uffdwp_image *img,
		      struct uffdwp_image_info *info);

/**
 * @brief The @p idx-th page of an image, in address order.
 *
 * @param[in] img An open image.
 * @param[in] idx The page's position, below the image's page count.
 * @param[out] addr The page's address in the snapshot's range.
 * @param[out] data Its contents (page_size bytes), valid until close.
 * @return 0; -ERANGE @p idx >= the page count; -EINVAL a NULL argument.
 */
int uffdwp_image_page(const struct uffdwp_image *img, uint64_t idx,
		      uint64_t *addr, const void **data);

/**
 * @brief Copy every page of an image into @p buf, which stands for the
 * image's range (page at address A goes to `buf + (A - info.addr)`).
 *
 * @return The number of pages copied; -ENOSPC if @p len is shorter than
 *         the range; -EINVAL a NULL argument.
 */
long uffdwp_image_apply(const struct uffdwp_image *img, void *buf, size_t len);

/** @brief Close an image. @return NULL. */
struct uffdwp_image *uffdwp_image_close(struct uffdwp_image *img);

/* --- stale-TLB race probe -------------------------------------------- */

/** @brief The protect mechanisms the race probe exercises. */
enum uffdwp_race_mechanism {
	/** Every mechanism usable here. */
	UFFDWP_RACE_ALL = 0,
	/** UFFDIO_WRITEPROTECT with faults resolved by a handler thread. */
	UFFDWP_RACE_UFFD_SYNC = 1,
	/** WP_ASYNC with PAGEMAP_SCAN(PM_SCAN_WP_MATCHING). */
	UFFDWP_RACE_UFFD_ASYNC = 2,
	/** clear_refs "4" and the soft-dirty bit. */
	UFFDWP_RACE_SOFT_DIRTY = 3,
};

/** @brief The three probes (a bit mask in uffdwp_race_opts::probes). */
enum uffdwp_race_probe_id {
	/** A: lost updates of the kernel's copy-on-write under protection. */
	UFFDWP_RACE_PROBE_A = 1u << 0,
	/** B: the library's collect against an incremental dump. */
	UFFDWP_RACE_PROBE_B = 1u << 1,
	/** C: copy-then-unprotect snapshots against a paused-writer copy. */
	UFFDWP_RACE_PROBE_C = 1u << 2,
};

/** @brief A race probe verdict. */
enum uffdwp_race_verdict {
	/** The mechanism is missing, or nothing that could race happened. */
	UFFDWP_RACE_INCONCLUSIVE = 0,
	/** No loss, but a threshold of a strong pass was not met (named). */
	UFFDWP_RACE_PASS_WEAK = 1,
	/** No loss, and every threshold met. */
	UFFDWP_RACE_PASS_STRONG = 2,
	/** Lost writes: the result says where. */
	UFFDWP_RACE_FAIL = 3,
};

/** @brief Options for uffdwp_race_probe(); NULL means the quick run. */
struct uffdwp_race_opts {
	/** Set by the caller to `sizeof(struct uffdwp_race_opts)`. */
	size_t sz;
	/** Wall time for the whole run (0: 10 s), shared by every probe. */
	double seconds;
	/** #uffdwp_race_probe_id bits (0: all three). */
	unsigned int probes;
	/** A #uffdwp_race_mechanism (0: every usable one). */
	int mechanism;
};

/** @brief What one probe found on one mechanism. */
struct uffdwp_race_result {
	int probe; /**< one #uffdwp_race_probe_id bit */
	int mechanism; /**< a #uffdwp_race_mechanism */
	int verdict; /**< a #uffdwp_race_verdict */
	uint64_t cycles; /**< protect cycles (A), rounds (B), snapshots (C) */
	uint64_t faults; /**< write faults taken */
	uint64_t copy_events; /**< A: copies of the hot page (PFN changes, or
			       *   minor faults where PFNs are hidden) */
	uint64_t checked; /**< B, C: pages compared */
	uint64_t lost; /**< A: lost increments; B, C: pages that differ */
	uint64_t fail_offset; /**< first bad page, as an offset in the region */
	uint64_t expected,
		actual; /**< the bad page's expected and seen value */
	uint64_t fail_cycle; /**< the cycle it went wrong in */
	double seconds; /**< how long this probe ran */
	unsigned int cpus; /**< CPUs it could use */
	char why[200]; /**< the verdict's reason, or a failure's detail */
};

#define UFFDWP_RACE_MAX_RESULTS 9

/** @brief Every result of one uffdwp_race_probe() run. */
struct uffdwp_race_report {
	/** Set by the caller to `sizeof(struct uffdwp_race_report)`. */
	size_t sz;
	/** FAIL if a probe failed; else PASS_WEAK if one passed weakly;
	 *  PASS_STRONG if every probe that could tell passed strongly;
	 *  INCONCLUSIVE if none could tell (each result says why). */
	int verdict;
	/** Entries used in @ref results. */
	unsigned int n;
	struct uffdwp_race_result results[UFFDWP_RACE_MAX_RESULTS];
};

/**
 * @brief Check this kernel for lost writes under write-protection (the
 * 2020 stale-TLB copy-on-write race), by running the probes.
 *
 * A fails if the kernel loses increments of a hot page while it is
 * write-protected and copied on write; B if the library's collect misses a
 * write; C if a copy-then-unprotect snapshot differs from a paused-writer
 * copy. A pass is evidence, not proof: a race that did not happen in the
 * run is not shown absent. Runs threads pinned to CPUs, maps up to 64 MiB,
 * forks short-lived children (A forces copy-on-write by sharing pages with
 * one), and writes `/proc/self/clear_refs` (soft-dirty: whole process).
 *
 * The result updates the stale-TLB entries of the defect table
 * (uffdwp_defect_get()) for the mechanisms it ran.
 *
 * @param[in] opts Options, or NULL for the quick run (10 s, all).
 * @param[in,out] report Filled up to report->sz bytes.
 * @return 0 (the verdicts are in @p report); -EINVAL bad options or
 *         @p report; -E2BIG as for uffdwp_probe(); -ENOMEM.
 * @note Thread-safe, but it loads every CPU for its duration; one run at
 *       a time per process.
 */
int uffdwp_race_probe(const struct uffdwp_race_opts *opts,
		      struct uffdwp_race_report *report);

/**
 * @brief Names: "A"/"B"/"C", "uffd_sync"/"uffd_async"/"soft_dirty",
 * "inconclusive"/"pass-weak"/"pass-strong"/"fail". NULL if unknown.
 * @note Thread-safe and async-signal-safe.
 */
const char *uffdwp_race_probe_name(int probe);
const char *uffdwp_race_mechanism_name(int mechanism);
const char *uffdwp_race_verdict_name(int verdict);

#ifdef __cplusplus
}
#endif

#endif /* UFFDWP_UFFDWP_H */
