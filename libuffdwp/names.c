/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Names of the library's enumerations, and its version.
 */
#include <string.h>

#include "internal.h"

static const char *const backend_names[] = {
	[UFFDWP_BACKEND_AUTO] = "auto",
	[UFFDWP_BACKEND_UFFD_ASYNC] = "uffd_async",
	[UFFDWP_BACKEND_UFFD_SYNC] = "uffd_sync",
	[UFFDWP_BACKEND_SOFT_DIRTY] = "soft_dirty",
	[UFFDWP_BACKEND_MPROTECT] = "mprotect",
};

UFFDWP_EXPORT const char *uffdwp_backend_name(int backend)
{
	if (backend < 0 || (size_t)backend >= ARRAY_SIZE(backend_names))
		return NULL;
	return backend_names[backend];
}

/* Equal, counting '-' and '_' as the same character. */
static bool name_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		char x = *a == '-' ? '_' : *a, y = *b == '-' ? '_' : *b;

		if (x != y)
			return false;
	}
	return *a == *b;
}

UFFDWP_EXPORT int uffdwp_backend_from_name(const char *name)
{
	static const struct {
		const char *name;
		int backend;
	} aliases[] = {
		{ "async", UFFDWP_BACKEND_UFFD_ASYNC },
		{ "sync", UFFDWP_BACKEND_UFFD_SYNC },
	};
	size_t i;

	if (!name)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(backend_names); i++)
		if (name_eq(name, backend_names[i]))
			return (int)i;
	for (i = 0; i < ARRAY_SIZE(aliases); i++)
		if (name_eq(name, aliases[i].name))
			return aliases[i].backend;
	return -EINVAL;
}

UFFDWP_EXPORT const char *uffdwp_uffd_mode_name(int mode)
{
	static const char *const names[] = {
		[UFFDWP_UFFD_NONE] = "none",
		[UFFDWP_UFFD_DEV] = "dev_userfaultfd",
		[UFFDWP_UFFD_SYSCALL] = "syscall",
		[UFFDWP_UFFD_USER_MODE_ONLY] = "user_mode_only",
	};

	if (mode < 0 || (size_t)mode >= ARRAY_SIZE(names))
		return NULL;
	return names[mode];
}

UFFDWP_EXPORT const char *uffdwp_defect_status_name(int status)
{
	static const char *const names[] = {
		[UFFDWP_DEFECT_UNKNOWN] = "unknown",
		[UFFDWP_DEFECT_ABSENT] = "absent",
		[UFFDWP_DEFECT_PRESENT] = "present",
		[UFFDWP_DEFECT_NOT_APPLICABLE] = "not-applicable",
	};

	if (status < 0 || (size_t)status >= ARRAY_SIZE(names))
		return NULL;
	return names[status];
}

UFFDWP_EXPORT const char *uffdwp_version(void)
{
	return UFFDWP_VERSION_STRING;
}

UFFDWP_EXPORT const char *uffdwp_snapshot_cause_name(int cause)
{
	static const char *const names[] = {
		[UFFDWP_CAUSE_NONE] = "none",
		[UFFDWP_CAUSE_CALLER] = "caller",
		[UFFDWP_CAUSE_SINK] = "sink",
		[UFFDWP_CAUSE_ZAPPED] = "zapped",
		[UFFDWP_CAUSE_UNMAPPED] = "unmapped",
		[UFFDWP_CAUSE_KERNEL] = "kernel",
		[UFFDWP_CAUSE_CONTEXT] = "context",
	};

	if (cause < 0 || (size_t)cause >= ARRAY_SIZE(names))
		return NULL;
	return names[cause];
}

UFFDWP_EXPORT const char *uffdwp_snapshot_state_name(int state)
{
	static const char *const names[] = {
		[UFFDWP_SNAPSHOT_RUNNING] = "running",
		[UFFDWP_SNAPSHOT_DONE] = "done",
		[UFFDWP_SNAPSHOT_FAILED] = "failed",
	};

	if (state < 0 || (size_t)state >= ARRAY_SIZE(names))
		return NULL;
	return names[state];
}

UFFDWP_EXPORT const char *uffdwp_consistency_name(int consistency)
{
	static const char *const names[] = {
		[UFFDWP_CONSISTENCY_NONE] = "none",
		[UFFDWP_CONSISTENCY_EXACT] = "exact",
	};

	if (consistency < 0 || (size_t)consistency >= ARRAY_SIZE(names))
		return NULL;
	return names[consistency];
}

UFFDWP_EXPORT const char *uffdwp_race_probe_name(int probe)
{
	switch (probe) {
	case UFFDWP_RACE_PROBE_A:
		return "A";
	case UFFDWP_RACE_PROBE_B:
		return "B";
	case UFFDWP_RACE_PROBE_C:
		return "C";
	}
	return NULL;
}

UFFDWP_EXPORT const char *uffdwp_race_mechanism_name(int mechanism)
{
	static const char *const names[] = {
		[UFFDWP_RACE_ALL] = "all",
		[UFFDWP_RACE_UFFD_SYNC] = "uffd_sync",
		[UFFDWP_RACE_UFFD_ASYNC] = "uffd_async",
		[UFFDWP_RACE_SOFT_DIRTY] = "soft_dirty",
	};

	if (mechanism < 0 || (size_t)mechanism >= ARRAY_SIZE(names))
		return NULL;
	return names[mechanism];
}

UFFDWP_EXPORT const char *uffdwp_race_verdict_name(int verdict)
{
	static const char *const names[] = {
		[UFFDWP_RACE_INCONCLUSIVE] = "inconclusive",
		[UFFDWP_RACE_PASS_WEAK] = "pass-weak",
		[UFFDWP_RACE_PASS_STRONG] = "pass-strong",
		[UFFDWP_RACE_FAIL] = "fail",
	};

	if (verdict < 0 || (size_t)verdict >= ARRAY_SIZE(names))
		return NULL;
	return names[verdict];
}
