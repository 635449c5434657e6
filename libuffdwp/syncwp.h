/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The synchronous userfaultfd, a component: a write-protect userfaultfd
 * with events, its fault-handler threads (syncwp-handler.c), the pause of
 * fault resolution, zero-page population for kernels without
 * WP_UNPOPULATED, and the collect protocol of invariant 3.3. It serves
 * the uffd_sync backend, and uffd_async ranges while a snapshot moves
 * them here.
 *
 * It knows ranges and bitmaps, never a context or a snapshot: its owner
 * lends it what it needs (struct sync_env), and whoever must see a range's
 * faults before they are resolved (the snapshot engine) attaches a
 * struct wp_observer to the range.
 */
#ifndef UFFDWP_SYNCWP_H
#define UFFDWP_SYNCWP_H

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>

#include "region.h"
#include "wpbatch.h"

/* What the owner lends the component; it outlives the component. */
struct sync_env {
	/* The owner's ranges, published with rcu_assign_pointer(). */
	struct region_set **regions;
	/* The owner's batch: harvests re-protect through it, and no fault
	 * is resolved while it may cover the page (the flush barrier). */
	struct wpbatch *batch;
	struct wp_counters *wp;
	uint64_t *faults; /* write faults resolved */
	uint64_t *events; /* address-space events handled */
	uint64_t *retries; /* unprotects refused while an event was delivered */
};

/*
 * A range's observer (struct region::obs), attached and detached with
 * fault resolution paused. The fault loop calls it with the shared resolve
 * lock held, a self-service handler while it is counted in flight; neither
 * knows anything else of it.
 */
struct wp_observer {
	/* A write fault on @page: 0 to resolve it now, 1 to hold it (the
	 * observer kicks the handlers, syncwp_kick(), when it may go). It
	 * runs before the page is unprotected. @self: called from the
	 * writer's own SIGBUS handler, so async-signal-safe only (no lock a
	 * parked thread could hold, no allocation, no call into the
	 * program); a held writer retries by itself. */
	int (*fault)(struct wp_observer *o, uintptr_t page, bool self);
	/* [@lo, @hi) was zapped or unmapped (a #uffdwp_snapshot_cause),
	 * after the range's own marks were set. */
	void (*event)(struct wp_observer *o, uintptr_t lo, uintptr_t hi,
		      int cause);
};

struct sync_state {
	int uffd;
	int pagemap; /* for the zap watch */
	int stopfd; /* eventfd: handlers exit when it is readable */
	uint64_t features;
	bool unpopulated; /* UFFD_FEATURE_WP_UNPOPULATED */
	/* UFFD_FEATURE_SIGBUS: writers resolve their own faults
	 * (syncwp-self.c); the handler threads read events only. */
	bool self;
	int self_paused; /* a pause in progress: self-service waits */
	uint64_t epoch; /* bumped around each protect (syncwp-self.c) */
	/* Bumped by syncwp_unregistered(): fault messages read before it
	 * may be of a range since unregistered, whose writers were woken
	 * and write under whatever watches the range next. */
	uint64_t regen;
	struct sync_env env;
	/* Handlers hold it shared while they record and resolve; a collect
	 * holds it exclusive, which pauses resolution (invariant 3.3). */
	pthread_rwlock_t resolve;
	/* Handlers between reading messages and marking their events: a
	 * program's MADV_DONTNEED returns once its event was read, and a
	 * collect after it must see the mark (syncwp_quiesce_events()). */
	unsigned long reading;
	unsigned int nthreads;
	pthread_t tid[64];
	void *handlers[64];
	/* One eventfd per handler: a collect that paused resolution kicks
	 * them when it is done, so a faulting writer waits for the collect
	 * and not for a poll timeout. */
	int kickfd[64];
	/* The pausing thread's signal mask, kept while it holds resolve
	 * exclusively (segv.h: a paused collect is a signal window). */
	sigset_t pause_mask;
	/* Posted by each handler as it enters its loop. */
	sem_t started;
};

/*
 * Open a synchronous userfaultfd with events and start @n handlers.
 * @uffd_mode, @uffd_features: the probe's (struct uffdwp_caps). @self:
 * with UFFD_FEATURE_SIGBUS, writers resolve their own faults and one
 * handler thread reads events.
 */
int syncwp_open(const struct sync_env *env, int uffd_mode,
		uint64_t uffd_features, bool self, unsigned int n,
		struct sync_state **out);
/* Publish @r's faults to the self-service handler before arming it, and
 * withdraw them after disarming (no-ops unless @s->self). */
int syncwp_attach(struct sync_state *s, struct region *r);
void syncwp_detach(struct sync_state *s, struct region *r);
/* The component's process-wide state around fork() (internal.h). */
void syncwp_atfork(enum fork_phase phase);
/* @in_child: after fork, close descriptors only. */
void syncwp_close(struct sync_state *s, bool in_child);

/* Protect, unprotect and wake on @s's userfaultfd, every error reported. */
struct wp_target syncwp_target(struct sync_state *s);
/* The fault handlers' unprotect: a page whose range went away since its
 * fault (-ENOENT) is resolved by a wake alone. */
struct wp_target syncwp_resolve_target(struct sync_state *s);

/*
 * After unregistering [@lo, @lo + @len) from @s->uffd: wake its writers
 * (the kernel wakes only MISSING waiters on unregister), and make every
 * fault message read so far stale. A stale message's writer retries its
 * write under whatever watches the range next, so recording its page would
 * report a write that never happened in the next period; handlers wake such
 * writers instead (syncwp-handler.c).
 */
void syncwp_unregistered(struct sync_state *s, uintptr_t lo, size_t len);

/* Give PTE-less pages the zero page, so write-protect sticks to them. */
int syncwp_populate(struct sync_state *s, uintptr_t start, size_t len);

/*
 * Pause fault resolution (resolve held exclusively) with asynchronous
 * signals blocked, so no program's signal handler parks this thread while
 * faulting writers wait on it; resume releases, kicks and restores.
 */
void syncwp_pause(struct sync_state *s);
void syncwp_resume(struct sync_state *s);
/* Wait until every event read so far has been marked. */
void syncwp_quiesce_events(struct sync_state *s);
/* Held faults may go now: handlers retry at once. */
void syncwp_kick(struct sync_state *s);

/*
 * Move the recorded pages of @rv into their pending maps, re-protected
 * (the caller holds s->resolve exclusively and quiesced events).
 */
int syncwp_harvest_locked(struct sync_state *s, struct region *const *rv,
			  size_t n);

/*
 * The whole collect protocol: pause, quiesce events, harvest @rv and, if
 * that worked, call @instant(@arg) while resolution is still paused (the
 * snapshot instant: every page of @rv is protected), then resume.
 */
int syncwp_harvest(struct sync_state *s, struct region *const *rv, size_t n,
		   void (*instant)(void *arg, struct sync_state *s), void *arg);

/*
 * For each page of [@lo, @hi) in @r watched for a zap that may still come
 * and that holds data now, call @fn(@arg, page) until it returns non-zero
 * (returned). With resolution paused.
 */
int syncwp_each_zap_pending(struct sync_state *s, struct region *r,
			    uintptr_t lo, uintptr_t hi,
			    int (*fn)(void *arg, uintptr_t page), void *arg);

/* 0 if every mapping of [@lo, @hi) is still registered on @s (a protect
 * of its first page succeeds: at most one more fault); -ENOENT or
 * -EFAULT if a part is not, other -errno if it cannot tell. */
int syncwp_still_registered(struct sync_state *s, uintptr_t lo, uintptr_t hi);

#endif /* UFFDWP_SYNCWP_H */
