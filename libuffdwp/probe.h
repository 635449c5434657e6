/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The probe's internal result: the public caps plus the storage their strings
 * point into and the raw facts the defect table is computed from. One
 * instance lives for the process (probe.c caches it).
 */
#ifndef UFFDWP_PROBE_H
#define UFFDWP_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"

#define PROBE_TEXT 320

enum defect_id {
	DEFECT_STALE_TLB_UFFD_WP,
	DEFECT_STALE_TLB_SOFT_DIRTY,
	DEFECT_SCAN_NO_SOFT_DIRTY,
	DEFECT_SCAN_STALE_WALK_END,
	DEFECT_SCAN_ZAPPED_CLEAN,
	DEFECT_MREMAP_STALE_WP,
	DEFECT_ARM64_NO_UFFD_WP,
	DEFECT_READ_NO_ZERO_PAGE,
	DEFECT_COUNT
};

struct defect_state {
	int status; /* enum uffdwp_defect_status */
	char observed[PROBE_TEXT];
};

struct probe_result {
	struct uffdwp_caps caps;

	/* Raw facts beyond the caps, for the defect checks. */
	bool scan_ioctl; /* PAGEMAP_SCAN exists (not ENOTTY) */
	bool uffd_async; /* the async round trip worked */

	char release[65];
	char machine[65];
	char mode_limits[PROBE_TEXT];
	char blocked[2 * PROBE_TEXT];
	char auto_reason[2 * PROBE_TEXT];
	char reason[UFFDWP_BACKEND_SLOTS][3 * PROBE_TEXT];
	char sigbus_reason[2 * PROBE_TEXT];
	struct defect_state defect[DEFECT_COUNT];
};

/*
 * Each step fills its part of @r. A step returns 0, or -errno only for a
 * resource failure (ENOMEM, EMFILE...) that says nothing about the kernel:
 * the whole probe then fails and is retried by the next call instead of
 * caching a wrong answer. Capability failures are recorded, not returned.
 */
int probe_uffd(struct probe_result *r);
/* After probe_uffd(): the self-service round trip (probe-sigbus.c). */
int probe_sigbus(struct probe_result *r);
int probe_memory(struct probe_result *r);
int probe_defects(struct probe_result *r);

/* What never changes about a defect; its state is in struct defect_state. */
struct defect_desc {
	const char *id;
	const char *summary;
	const char *detection;
	const char *action;
};

/* The static description of defect @id; NULL past the end. */
const struct defect_desc *defect_desc(size_t id);

/*
 * The status (enum uffdwp_defect_status) of defect @id here, with what the
 * race probe last found for the stale-TLB entries; UFFDWP_DEFECT_UNKNOWN
 * if the probe cannot run. For the library's own decisions: by id, never by
 * the public string.
 */
int defect_status(enum defect_id id);

/* Record what race probe A found, for the stale-TLB defect entries. */
struct uffdwp_race_result;
void defects_note_race(const struct uffdwp_race_result *res);
/* Replace defect @idx's probed *@status and *@observed with race probe
 * A's latest verdict, if it has one for that entry. */
void defect_race_overlay(size_t idx, int *status, const char **observed);

/* True for errors that mean "out of resources", not "unsupported". */
static inline bool resource_error(int err)
{
	return err == -ENOMEM || err == -EMFILE || err == -ENFILE ||
	       err == -EAGAIN;
}

/* snprintf into a fixed buffer; truncation is acceptable for messages. */
#define textf(buf, ...) snprintf((buf), sizeof(buf), __VA_ARGS__)

#endif /* UFFDWP_PROBE_H */
