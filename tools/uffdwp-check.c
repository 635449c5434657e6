/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffdwp-check: what this kernel and process can do for dirty tracking, which
 * backend AUTO would choose and why, and the known kernel defects. A thin
 * front-end over the public probe API, so it says exactly what a program
 * linked against the library would be told.
 *
 *   uffdwp-check                  readable report
 *   uffdwp-check --json           the same, as JSON with stable keys
 *   uffdwp-check --feature NAME   exit 0 if present, 1 if absent
 *   uffdwp-check --threads PID    the threads of PID that block SIGSEGV
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uffdwp/uffdwp.h>

#define EXIT_USAGE 2
#define EXIT_PROBE_FAILED 3

/* UFFDIO_API feature bits by number (kernel ABI, include/uapi). */
static const char *const uffd_feature_names[] = {
	"pagefault_flag_wp",
	"event_fork",
	"event_remap",
	"event_remove",
	"missing_hugetlbfs",
	"missing_shmem",
	"event_unmap",
	"sigbus",
	"thread_id",
	"minor_hugetlbfs",
	"minor_shmem",
	"exact_address",
	"wp_hugetlbfs_shmem",
	"wp_unpopulated",
	"poison",
	"wp_async",
	"move",
};

#define FEATURE_BIT(name) (1ULL << feature_bit(name))

static int feature_bit(const char *name)
{
	size_t i;

	for (i = 0;
	     i < sizeof(uffd_feature_names) / sizeof(*uffd_feature_names); i++)
		if (!strcmp(uffd_feature_names[i], name))
			return (int)i;
	abort();
}

struct feature {
	const char *name;
	const char *help;
	int (*present)(const struct uffdwp_caps *c);
};

static int f_uffd(const struct uffdwp_caps *c)
{
	return c->uffd_mode != UFFDWP_UFFD_NONE;
}

static int f_dev(const struct uffdwp_caps *c)
{
	return c->uffd_dev_err == 0;
}

static int f_syscall(const struct uffdwp_caps *c)
{
	return c->uffd_syscall_err == 0;
}

static int f_umo(const struct uffdwp_caps *c)
{
	return c->uffd_user_mode_only_err == 0;
}

static int f_uffd_wp(const struct uffdwp_caps *c)
{
	return c->uffd_wp;
}

static int f_self_service(const struct uffdwp_caps *c)
{
	return c->uffd_sigbus;
}

static int f_wp_async(const struct uffdwp_caps *c)
{
	return !!(c->uffd_features & FEATURE_BIT("wp_async"));
}

static int f_wp_unpopulated(const struct uffdwp_caps *c)
{
	return !!(c->uffd_features & FEATURE_BIT("wp_unpopulated"));
}

static int f_event_fork(const struct uffdwp_caps *c)
{
	return c->event_fork;
}

static int f_scan(const struct uffdwp_caps *c)
{
	return c->pagemap_scan;
}

static int f_scan_sd(const struct uffdwp_caps *c)
{
	return c->pagemap_scan_soft_dirty;
}

static int f_soft_dirty(const struct uffdwp_caps *c)
{
	return c->soft_dirty;
}

static int f_thp(const struct uffdwp_caps *c)
{
	return c->thp == UFFDWP_THP_ALWAYS || c->thp == UFFDWP_THP_MADVISE;
}

static int f_async(const struct uffdwp_caps *c)
{
	return c->backend[UFFDWP_BACKEND_UFFD_ASYNC].usable;
}

static int f_sync(const struct uffdwp_caps *c)
{
	return c->backend[UFFDWP_BACKEND_UFFD_SYNC].usable;
}

static int f_mprotect(const struct uffdwp_caps *c)
{
	return c->backend[UFFDWP_BACKEND_MPROTECT].usable;
}

static const struct feature features[] = {
	{ "userfaultfd", "a userfaultfd can be opened, in any mode", f_uffd },
	{ "dev_userfaultfd", "/dev/userfaultfd opens (6.1+, file permissions)",
	  f_dev },
	{ "syscall",
	  "userfaultfd(2) without flags works (CAP_SYS_PTRACE or the sysctl)",
	  f_syscall },
	{ "user_mode_only", "userfaultfd(UFFD_USER_MODE_ONLY) works (5.11+)",
	  f_umo },
	{ "uffd_wp", "a synchronous write-protect fault round trip works",
	  f_uffd_wp },
	{ "self_service",
	  "a SIGBUS write-protect round trip works (UFFDWP_CTX_SELF_SERVICE)",
	  f_self_service },
	{ "wp_async", "UFFDIO_API reports UFFD_FEATURE_WP_ASYNC (6.7+)",
	  f_wp_async },
	{ "wp_unpopulated",
	  "UFFDIO_API reports UFFD_FEATURE_WP_UNPOPULATED (6.4+)",
	  f_wp_unpopulated },
	{ "event_fork", "UFFD_FEATURE_EVENT_FORK is permitted (CAP_SYS_PTRACE)",
	  f_event_fork },
	{ "pagemap_scan", "PAGEMAP_SCAN accepts the backends' masks (6.7+)",
	  f_scan },
	{ "pagemap_scan_soft_dirty",
	  "PAGEMAP_SCAN knows PAGE_IS_SOFT_DIRTY (6.8+)", f_scan_sd },
	{ "soft_dirty",
	  "the soft-dirty bit round trip works (CONFIG_MEM_SOFT_DIRTY)",
	  f_soft_dirty },
	{ "thp", "transparent huge pages are enabled (always or madvise)",
	  f_thp },
	{ "uffd_async", "the uffd_async backend is usable", f_async },
	{ "uffd_sync", "the uffd_sync backend is usable", f_sync },
	{ "mprotect", "the mprotect backend is usable", f_mprotect },
};

#define N_FEATURES (sizeof(features) / sizeof(*features))

static const struct feature *find_feature(const char *name)
{
	char norm[64];
	size_t i;

	if (strlen(name) >= sizeof(norm))
		return NULL;
	for (i = 0; name[i]; i++)
		norm[i] = name[i] == '-' ? '_' : name[i];
	norm[i] = 0;
	for (i = 0; i < N_FEATURES; i++)
		if (!strcmp(features[i].name, norm))
			return &features[i];
	return NULL;
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"Usage: uffdwp-check [--json] [--feature NAME]\n"
		"       uffdwp-check --race-probe [--seconds N] [--mechanism M] [--json]\n"
		"       uffdwp-check --threads PID\n"
		"\n"
		"Reports what this kernel and process offer for dirty-page tracking,\n"
		"which backend AUTO chooses and why, and the known kernel defects.\n"
		"\n"
		"  -j, --json           print JSON with stable keys\n"
		"  -f, --feature NAME   exit 0 if NAME is present, 1 if absent\n"
		"  -r, --race-probe     run the stale-TLB lost-write probes (default 10 s):\n"
		"                       exit 0 pass, 1 fail, 77 inconclusive\n"
		"  -s, --seconds N      the race probe's time budget\n"
		"  -m, --mechanism M    uffd_sync, uffd_async or soft_dirty (default: all)\n"
		"  -t, --threads PID    list PID's threads that block SIGSEGV (the mprotect\n"
		"                       backend refuses to track while one exists):\n"
		"                       exit 0 none, 1 some\n"
		"  -V, --version        print the library version\n"
		"  -h, --help           print this help\n"
		"\n"
		"Features:\n");
	for (i = 0; i < N_FEATURES; i++)
		fprintf(f, "  %-24s %s\n", features[i].name, features[i].help);
	fprintf(f,
		"\nExit status: 0 ok or present, 1 absent (or a race fail, or threads that\n"
		"block SIGSEGV), 2 usage error, 3 probe failed (or PID unreadable),\n"
		"77 race probe inconclusive.\n");
}

static const char *thp_name(int thp)
{
	switch (thp) {
	case UFFDWP_THP_ALWAYS:
		return "always";
	case UFFDWP_THP_MADVISE:
		return "madvise";
	case UFFDWP_THP_NEVER:
		return "never";
	default:
		return "unknown";
	}
}

static const char *err_text(int err)
{
	return err ? strerror(-err) : "ok";
}

/* uffd_sync's mode under AUTO (uffdwp.h, struct uffdwp_ctx_opts), when
 * AUTO picks uffd_sync: self-service where its round trip works (a thread
 * blocking SIGBUS when a context is made still turns it down then). */
static const char *auto_mode(const struct uffdwp_caps *c)
{
	if (c->auto_backend != UFFDWP_BACKEND_UFFD_SYNC)
		return NULL;
	return c->uffd_sigbus ? "self_service" : "handler_thread";
}

static void json_str(const char *s)
{
	if (!s) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static const char *jbool(int v)
{
	return v ? "true" : "false";
}

static void json_err(const char *key, int err, bool last)
{
	printf("      \"%s\": { \"ok\": %s, \"error\": ", key, jbool(!err));
	json_str(err ? strerror(-err) : NULL);
	printf(" }%s\n", last ? "" : ",");
}

static const int backends[] = {
	UFFDWP_BACKEND_UFFD_ASYNC,
	UFFDWP_BACKEND_UFFD_SYNC,
	UFFDWP_BACKEND_SOFT_DIRTY,
	UFFDWP_BACKEND_MPROTECT,
};

#define N_BACKENDS (sizeof(backends) / sizeof(*backends))

/* UFFDWP_BACKEND, as a context would honour it. */
static const char *forced_name(int *backend)
{
	const char *env = getenv("UFFDWP_BACKEND");

	*backend = env && *env ? uffdwp_backend_from_name(env) : -ENOENT;
	return env && *env ? env : NULL;
}

static void print_json(const struct uffdwp_caps *c)
{
	struct uffdwp_defect d = { .sz = sizeof(d) };
	const char *forced;
	size_t i;
	int fb;

	printf("{\n  \"library\": ");
	json_str(uffdwp_version());
	printf(",\n  \"kernel\": ");
	json_str(c->kernel_release);
	printf(",\n  \"machine\": ");
	json_str(c->machine);
	printf(",\n  \"uffd\": {\n    \"open_mode\": ");
	json_str(uffdwp_uffd_mode_name(c->uffd_mode));
	printf(",\n    \"features\": \"0x%llx\",\n    \"feature_names\": [",
	       (unsigned long long)c->uffd_features);
	for (i = 0;
	     i < sizeof(uffd_feature_names) / sizeof(*uffd_feature_names); i++)
		if (c->uffd_features & (1ULL << i))
			printf("%s\"%s\"",
			       (c->uffd_features & ((1ULL << i) - 1)) ? ", " :
									"",
			       uffd_feature_names[i]);
	printf("],\n    \"modes\": {\n");
	json_err("dev_userfaultfd", c->uffd_dev_err, false);
	json_err("syscall", c->uffd_syscall_err, false);
	json_err("user_mode_only", c->uffd_user_mode_only_err, true);
	printf("    },\n    \"limits\": ");
	json_str(c->uffd_mode_limits);
	printf(",\n    \"blocked\": ");
	json_str(c->uffd_blocked);
	printf(",\n    \"uffd_wp\": %s,\n    \"event_fork\": %s,\n",
	       jbool(c->uffd_wp), jbool(c->event_fork));
	printf("    \"self_service\": %s,\n    \"self_service_reason\": ",
	       jbool(c->uffd_sigbus));
	json_str(c->uffd_sigbus_reason);
	printf("\n  },\n");
	printf("  \"pagemap_scan\": %s,\n  \"pagemap_scan_soft_dirty\": %s,\n",
	       jbool(c->pagemap_scan), jbool(c->pagemap_scan_soft_dirty));
	printf("  \"soft_dirty\": %s,\n  \"thp\": \"%s\",\n",
	       jbool(c->soft_dirty), thp_name(c->thp));
	printf("  \"backends\": {\n");
	for (i = 0; i < N_BACKENDS; i++) {
		printf("    \"%s\": { \"usable\": %s, \"reason\": ",
		       uffdwp_backend_name(backends[i]),
		       jbool(c->backend[backends[i]].usable));
		json_str(c->backend[backends[i]].reason);
		printf(" }%s\n", i + 1 < N_BACKENDS ? "," : "");
	}
	printf("  },\n  \"auto\": ");
	json_str(c->auto_backend ? uffdwp_backend_name(c->auto_backend) : NULL);
	printf(",\n  \"auto_mode\": ");
	json_str(auto_mode(c));
	printf(",\n  \"auto_reason\": ");
	json_str(c->auto_reason);
	forced = forced_name(&fb);
	printf(",\n  \"forced\": ");
	if (!forced) {
		printf("null");
	} else {
		printf("{ \"env\": ");
		json_str(forced);
		printf(", \"backend\": ");
		json_str(fb > 0 ? uffdwp_backend_name(fb) : NULL);
		printf(", \"usable\": %s }",
		       jbool(fb > 0 && c->backend[fb].usable));
	}
	printf(",\n  \"defects\": [\n");
	for (i = 0; i < c->n_defects; i++) {
		if (uffdwp_defect_get(i, &d))
			break;
		printf("    { \"id\": ");
		json_str(d.id);
		printf(", \"status\": ");
		json_str(uffdwp_defect_status_name(d.status));
		printf(",\n      \"summary\": ");
		json_str(d.summary);
		printf(",\n      \"detection\": ");
		json_str(d.detection);
		printf(",\n      \"observed\": ");
		json_str(d.observed);
		printf(",\n      \"action\": ");
		json_str(d.action);
		printf(" }%s\n", i + 1 < c->n_defects ? "," : "");
	}
	printf("  ]\n}\n");
}

static const char *yes(int v)
{
	return v ? "yes" : "no";
}

static void print_table(const struct uffdwp_caps *c)
{
	struct uffdwp_defect d = { .sz = sizeof(d) };
	const char *forced;
	size_t i;
	int fb;

	printf("libuffdwp %s on Linux %s (%s)\n\n", uffdwp_version(),
	       c->kernel_release, c->machine);
	printf("userfaultfd\n");
	printf("  open mode            %s\n",
	       uffdwp_uffd_mode_name(c->uffd_mode));
	printf("  /dev/userfaultfd     %s\n", err_text(c->uffd_dev_err));
	printf("  userfaultfd(2)       %s\n", err_text(c->uffd_syscall_err));
	printf("  user-mode-only       %s\n",
	       err_text(c->uffd_user_mode_only_err));
	if (c->uffd_blocked)
		printf("  BLOCKED              %s\n", c->uffd_blocked);
	printf("  limits               %s\n", c->uffd_mode_limits);
	printf("  features             0x%llx",
	       (unsigned long long)c->uffd_features);
	for (i = 0;
	     i < sizeof(uffd_feature_names) / sizeof(*uffd_feature_names); i++)
		if (c->uffd_features & (1ULL << i))
			printf(" %s", uffd_feature_names[i]);
	printf("\n  write-protect        %s\n", yes(c->uffd_wp));
	printf("  EVENT_FORK allowed   %s\n", yes(c->event_fork));
	printf("  self-service         %s: %s\n", yes(c->uffd_sigbus),
	       c->uffd_sigbus_reason);
	printf("memory\n");
	printf("  PAGEMAP_SCAN         %s\n", yes(c->pagemap_scan));
	printf("  PAGE_IS_SOFT_DIRTY   %s\n", yes(c->pagemap_scan_soft_dirty));
	printf("  soft-dirty           %s\n", yes(c->soft_dirty));
	printf("  THP                  %s\n\n", thp_name(c->thp));

	printf("%-11s %-6s %s\n", "backend", "usable", "reason");
	for (i = 0; i < N_BACKENDS; i++)
		printf("%-11s %-6s %s\n", uffdwp_backend_name(backends[i]),
		       yes(c->backend[backends[i]].usable),
		       c->backend[backends[i]].reason);
	printf("\nmprotect, and uffd_async's snapshot moves, raise SIGSEGV in writers:\n"
	       "a thread that blocks it would die (see uffdwp.h; --threads PID lists them)\n");
	printf("\nauto: %s (%s)\n",
	       c->auto_backend ? uffdwp_backend_name(c->auto_backend) : "none",
	       c->auto_reason);
	if (auto_mode(c))
		printf("auto mode: %s\n",
		       c->uffd_sigbus ?
			       "self-service (a kernel write into tracked memory fails with EFAULT; UFFDWP_CTX_KERNEL_WRITES gets the handler thread)" :
			       "handler thread (self-service does not work here)");
	forced = forced_name(&fb);
	if (forced)
		printf("forced: UFFDWP_BACKEND=%s -> %s\n", forced,
		       fb <= 0 ? "not a backend name" :
		       c->backend[fb].usable ?
				 uffdwp_backend_name(fb) :
				 "unusable here: contexts will fail");

	printf("\nknown kernel defects\n");
	for (i = 0; i < c->n_defects; i++) {
		if (uffdwp_defect_get(i, &d))
			break;
		printf("  %-36s %s\n", d.id,
		       uffdwp_defect_status_name(d.status));
		printf("      observed: %s\n", d.observed);
		printf("      detected: %s\n", d.detection);
		printf("      action:   %s\n", d.action);
	}
}

/*
 * A thread whose mask blocks SIGSEGV dies on a fault the library would
 * have handled (the kernel forces the signal to its default action):
 * the mprotect backend refuses to track while one exists, and uffd_async
 * snapshots move their ranges without holding writers (uffdwp.h).
 */
static int threads_main(const char *pid)
{
	char path[320], buf[4096], comm[64], *line;
	unsigned long long mask;
	int nblocking = 0;
	struct dirent *e;
	FILE *f;
	DIR *d;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%s/task", pid);
	d = opendir(path);
	if (!d) {
		fprintf(stderr, "uffdwp-check: %s: %s\n", path,
			strerror(errno));
		return EXIT_PROBE_FAILED;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/task/%s/status", pid,
			 e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue; /* exited meanwhile */
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		line = strstr(buf, "\nSigBlk:");
		/* Signal 32 blocked: glibc creating a thread, not the
		 * program's mask (see libuffdwp/segv.c). */
		if (!line || sscanf(line + 8, "%llx", &mask) != 1 ||
		    !(mask & (1ULL << (SIGSEGV - 1))) ||
		    (mask & (1ULL << (32 - 1))))
			continue;
		comm[0] = '\0';
		if (sscanf(buf, "Name:\t%63[^\n]", comm) != 1)
			strcpy(comm, "?");
		printf("thread %s (%s) blocks SIGSEGV\n", e->d_name, comm);
		nblocking++;
	}
	closedir(d);
	if (!nblocking)
		printf("no thread of %s blocks SIGSEGV\n", pid);
	return nblocking ? 1 : 0;
}

static int race_mechanism(const char *s)
{
	int m;

	for (m = UFFDWP_RACE_UFFD_SYNC; m <= UFFDWP_RACE_SOFT_DIRTY; m++)
		if (!strcmp(s, uffdwp_race_mechanism_name(m)))
			return m;
	if (!strcmp(s, "sync"))
		return UFFDWP_RACE_UFFD_SYNC;
	if (!strcmp(s, "async"))
		return UFFDWP_RACE_UFFD_ASYNC;
	if (!strcmp(s, "soft-dirty"))
		return UFFDWP_RACE_SOFT_DIRTY;
	return -1;
}

static void print_race_json(const struct uffdwp_race_report *r)
{
	struct uffdwp_defect d = { .sz = sizeof(d) };
	struct uffdwp_caps c = { .sz = sizeof(c) };
	unsigned int i;
	size_t k;

	printf("{\n  \"verdict\": \"%s\",\n",
	       uffdwp_race_verdict_name(r->verdict));
	printf("  \"thresholds\": { \"cpus\": 3, \"cycles\": 2000, \"copy_events\": 10000 },\n");
	printf("  \"results\": [\n");
	for (i = 0; i < r->n; i++) {
		const struct uffdwp_race_result *x = &r->results[i];

		printf("    { \"probe\": \"%s\", \"mechanism\": \"%s\", \"verdict\": \"%s\", \"cpus\": %u,\n",
		       uffdwp_race_probe_name(x->probe),
		       uffdwp_race_mechanism_name(x->mechanism),
		       uffdwp_race_verdict_name(x->verdict), x->cpus);
		printf("      \"cycles\": %llu, \"faults\": %llu, \"copy_events\": %llu, \"checked\": %llu, \"lost\": %llu, \"seconds\": %.3f,\n",
		       (unsigned long long)x->cycles,
		       (unsigned long long)x->faults,
		       (unsigned long long)x->copy_events,
		       (unsigned long long)x->checked,
		       (unsigned long long)x->lost, x->seconds);
		if (x->verdict == UFFDWP_RACE_FAIL)
			printf("      \"fail\": { \"offset\": %llu, \"expected\": %llu, \"actual\": %llu, \"cycle\": %llu },\n",
			       (unsigned long long)x->fail_offset,
			       (unsigned long long)x->expected,
			       (unsigned long long)x->actual,
			       (unsigned long long)x->fail_cycle);
		printf("      \"why\": ");
		json_str(x->why);
		printf(" }%s\n", i + 1 < r->n ? "," : "");
	}
	printf("  ],\n  \"defects\": [\n");
	uffdwp_probe(&c);
	for (k = 0; k < c.n_defects; k++) {
		if (uffdwp_defect_get(k, &d))
			break;
		printf("    { \"id\": ");
		json_str(d.id);
		printf(", \"status\": ");
		json_str(uffdwp_defect_status_name(d.status));
		printf(", \"observed\": ");
		json_str(d.observed);
		printf(" }%s\n", k + 1 < c.n_defects ? "," : "");
	}
	printf("  ]\n}\n");
}

static void print_race_table(const struct uffdwp_race_report *r)
{
	unsigned int i;

	printf("%-5s %-10s %-12s %8s %8s %8s %8s %5s\n", "probe", "mechanism",
	       "verdict", "cycles", "faults", "copies", "checked", "lost");
	for (i = 0; i < r->n; i++) {
		const struct uffdwp_race_result *x = &r->results[i];

		printf("%-5s %-10s %-12s %8llu %8llu %8llu %8llu %5llu\n",
		       uffdwp_race_probe_name(x->probe),
		       uffdwp_race_mechanism_name(x->mechanism),
		       uffdwp_race_verdict_name(x->verdict),
		       (unsigned long long)x->cycles,
		       (unsigned long long)x->faults,
		       (unsigned long long)x->copy_events,
		       (unsigned long long)x->checked,
		       (unsigned long long)x->lost);
		printf("      %s\n", x->why);
	}
	printf("\nverdict: %s (a pass is evidence, not proof)\n",
	       uffdwp_race_verdict_name(r->verdict));
}

static int race_main(double seconds, int mechanism, bool json)
{
	struct uffdwp_race_opts o = { .sz = sizeof(o) };
	struct uffdwp_race_report r = { .sz = sizeof(r) };
	int err;

	o.seconds = seconds;
	o.mechanism = mechanism;
	err = uffdwp_race_probe(&o, &r);
	if (err) {
		fprintf(stderr, "uffdwp-check: race probe failed: %s\n",
			strerror(-err));
		return EXIT_PROBE_FAILED;
	}
	if (json)
		print_race_json(&r);
	else
		print_race_table(&r);
	switch (r.verdict) {
	case UFFDWP_RACE_FAIL:
		return 1;
	case UFFDWP_RACE_INCONCLUSIVE:
		return 77;
	default:
		return 0;
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "feature", required_argument, NULL, 'f' },
		{ "version", no_argument, NULL, 'V' },
		{ "race-probe", no_argument, NULL, 'r' },
		{ "seconds", required_argument, NULL, 's' },
		{ "mechanism", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct uffdwp_caps caps = { .sz = sizeof(caps) };
	const struct feature *feat = NULL;
	const char *threads = NULL;
	bool json = false, race = false;
	double seconds = 0;
	int opt, err, mechanism = 0;
	char *end;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "jf:Vhrs:m:t:", opts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'r':
			race = true;
			break;
		case 's':
			seconds = strtod(optarg, &end);
			if (*end || !(seconds > 0) || seconds > 3600) {
				fprintf(stderr,
					"uffdwp-check: --seconds wants a number of seconds in (0, 3600], not '%s'\n\n",
					optarg);
				usage(stderr);
				return EXIT_USAGE;
			}
			break;
		case 'm':
			mechanism = race_mechanism(optarg);
			if (mechanism < 0) {
				fprintf(stderr,
					"uffdwp-check: unknown mechanism '%s'\n\n",
					optarg);
				usage(stderr);
				return EXIT_USAGE;
			}
			break;
		case 't':
			if (!*optarg ||
			    strspn(optarg, "0123456789") != strlen(optarg)) {
				fprintf(stderr,
					"uffdwp-check: --threads wants a process id, not '%s'\n\n",
					optarg);
				usage(stderr);
				return EXIT_USAGE;
			}
			threads = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'f':
			feat = find_feature(optarg);
			if (!feat) {
				fprintf(stderr,
					"uffdwp-check: unknown feature '%s'\n\n",
					optarg);
				usage(stderr);
				return EXIT_USAGE;
			}
			break;
		case 'V':
			printf("uffdwp-check %s\n", uffdwp_version());
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr,
				"uffdwp-check: unknown or incomplete option '%s'\n\n",
				argv[optind - 1]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "uffdwp-check: unexpected argument '%s'\n\n",
			argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}

	if ((seconds || mechanism) && !race) {
		fprintf(stderr,
			"uffdwp-check: --seconds and --mechanism go with --race-probe\n\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (race && feat) {
		fprintf(stderr,
			"uffdwp-check: --race-probe and --feature do not mix\n\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (threads && (race || feat || json)) {
		fprintf(stderr, "uffdwp-check: --threads goes alone\n\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (threads)
		return threads_main(threads);
	if (race)
		return race_main(seconds, mechanism, json);

	err = uffdwp_probe(&caps);
	if (err) {
		fprintf(stderr, "uffdwp-check: probe failed: %s\n",
			strerror(-err));
		return EXIT_PROBE_FAILED;
	}
	if (feat) {
		int present = feat->present(&caps);

		if (json)
			printf("{ \"feature\": \"%s\", \"present\": %s }\n",
			       feat->name, jbool(present));
		return present ? 0 : 1;
	}
	if (json)
		print_json(&caps);
	else
		print_table(&caps);
	return 0;
}
