/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel suite: live snapshots, held to oracles on every uffd backend this
 * kernel has (DESIGN.md sections 3.4 and 7).
 *
 * The snapshot oracle: writer threads store unique 8-byte counters at
 * random offsets, several per page, into a tracked range. For each snapshot
 * the writers park (a flag and a counted handshake: none is mid-write), the
 * test copies the range (the oracle), starts the snapshot, lets the writers
 * go and waits; the sink's image must equal the oracle byte for byte. A page
 * copied after a writer's store, or half before and half after, or never,
 * shows. Incremental snapshots are applied onto one image buffer of the
 * whole range, which must then equal the oracle too. Sizes run from one page
 * to 256 MiB, at random page offsets, through the memory sink (place path)
 * and user sinks that implement write() only (staging path), place() only,
 * or both; with the default copiers and with one copier and a staging area
 * of four pages (backpressure).
 *
 * Snapshots and collects: a collector thread keeps a shadow from collect
 * reports while snapshots run; each snapshot's image goes into the shadow
 * too (a snapshot consumes its range's dirty state). After the writers stop
 * and a final collect, shadow and memory must be byte-equal: no dirty page
 * lost across the moves of uffd_async.
 *
 * Sinks that fail, file images, address-space events and misuse, fork; and
 * a test hook that breaks copy-before-write on purpose, which the oracle
 * must catch.
 *
 * Sources: snapshot-common.c (rig, sinks, the one-snapshot oracle),
 * snapshot-oracle.c (sections 1 and 2), snapshot-sinks.c (3),
 * snapshot-events.c (4), snapshot-broken.c (5), and this suite; main()
 * is tests/lib/test-main.c.
 *
 * Tests that must hold a snapshot running use a gate: the sink's first
 * write() waits until the test opens it, so with one copier the sweep is
 * parked at its first run and nothing else copies unless a writer faults.
 */
#include "snapshot-common.h"

const struct test_needs test_needs = {
	(1u << UFFDWP_BACKEND_UFFD_ASYNC) | (1u << UFFDWP_BACKEND_UFFD_SYNC),
	"no userfaultfd backend: snapshots need uffd_sync or uffd_async",
};

Suite *test_suite(void)
{
	Suite *s = suite_create("snapshot");
	const char *name;
	size_t i;

	for (i = 0; i < ARRAY_LEN(backends); i++) {
		name = uffdwp_backend_name(backends[i]);
		snapshot_oracle_cases(s, name, (int)i);
		snapshot_sinks_cases(s, name, (int)i);
		snapshot_events_cases(s, name, (int)i);
	}
	snapshot_unsupported_cases(s);
	snapshot_broken_cases(s);
	return s;
}
