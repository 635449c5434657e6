/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Snapshot suite, section 3: sinks that fail, and image files.
 */
#include <sys/mount.h>

#include "snapshot-common.h"

/* --- 3. sinks that fail, and image files -------------------------------- */

/* Start a snapshot of the rig's pages [first, first + n) with writers
 * parked at the instant. */
static int rig_start_snapshot(struct rig *r, size_t first, size_t n,
			      const struct uffdwp_sink *sink,
			      const struct uffdwp_snapshot_opts *o,
			      struct uffdwp_snapshot **snap)
{
	int ret;

	rig_pause(r);
	rig_take_written(r, first, n);
	ret = uffdwp_snapshot_start(r->ctx, r->mem + first * ps, n * ps, sink,
				    o, snap);
	rig_resume(r);
	return ret;
}

/* A full snapshot of [first, +n) through the memory sink, checked. */
static void rig_good_shot(struct rig *r, size_t first, size_t n, uint64_t *seed)
{
	struct shot s = { .first = first, .n = n, .kind = SINK_MEMORY };

	s.oracle = malloc(n * ps);
	s.dst = malloc(n * ps);
	ck_assert_ptr_nonnull(s.oracle);
	ck_assert_ptr_nonnull(s.dst);
	shot_take(r, &s, seed);
	shot_check(r, &s, true);
	free(s.oracle);
	free(s.dst);
}

/* With writers parked: drain, write three pages, collect exactly them. */
static void rig_check_tracking(struct rig *r)
{
	const size_t pick[] = { 0, r->npages / 2 + 1, r->npages - 1 };
	size_t got = 0, i;

	rig_pause(r);
	ck_assert_int_ge(uffdwp_collect(r->ctx, count_run, &got), 0);
	got = 0;
	for (i = 0; i < ARRAY_LEN(pick); i++)
		r->mem[pick[i] * ps + 8] ^= 1;
	ck_assert_int_eq(uffdwp_collect(r->ctx, count_run, &got),
			 (long)ARRAY_LEN(pick));
	ck_assert_uint_eq(got, ARRAY_LEN(pick));
	rig_resume(r);
}

START_TEST(sink_error_at_random_page)
{
	int b = backends[_i];
	uint64_t seed = test_seed(uffdwp_backend_name(b));
	unsigned int it, count = (unsigned int)test_scaled(24, 8);
	struct uffdwp_snapshot_opts o;
	struct uffdwp_snapshot *snap;
	size_t npages = 1024;
	struct usink us;
	struct rig r;
	char *buf;

	NEED_BACKEND(b);
	rig_setup(&r, b, npages, HOTSPOT, seed);
	buf = map(npages);
	rig_start(&r);
	for (it = 0; it < count; it++) {
		/* Each of the 16 words of 64 pages gives at least one
		 * write() call (a sweep run, or a staged page) for the write
		 * sink; 8 of them for the mixed one: the failing call, among
		 * the first 8, always comes. */
		usink_init(&us, it % 2 ? SINK_WRITE : SINK_MIXED, buf,
			   npages * ps);
		us.fail_at = (long)(rnd(&seed) % 8);
		us.fail_err = it % 3 ? -EIO : -ENOSPC;
		fill_opts(&o, (enum opt_kind)(it % OPT_KINDS), 0);
		ck_assert_int_eq(rig_start_snapshot(&r, 0, npages, &us.sink, &o,
						    &snap),
				 0);
		expect_failed(snap, us.fail_err, UFFDWP_CAUSE_SINK);
		uffdwp_snapshot_free(snap);
		ck_assert_int_eq(atomic_load(&us.begins), 1);
		ck_assert_int_eq(atomic_load(&us.ends), 1);
		ck_assert_int_eq(atomic_load(&us.end_status), us.fail_err);
		ck_assert_int_eq(atomic_load(&us.inflight), 0);
		usink_delivered(&us); /* never twice, even failing */
		usink_fini(&us);
		/* The range can be snapshotted again, exactly. */
		rig_good_shot(&r, it % 2 ? 0 : (size_t)(rnd(&seed) % 512),
			      it % 2 ? npages : 257, &seed);
	}
	rig_check_tracking(&r);
	rig_stop(&r);
	munmap(buf, npages * ps);
	rig_teardown(&r);
}
END_TEST

START_TEST(sink_begin_fails)
{
	int b = backends[_i];
	uint64_t seed = test_seed(uffdwp_backend_name(b));
	struct uffdwp_snapshot *snap = (struct uffdwp_snapshot *)&seed;
	struct usink us;
	struct rig r;
	char *buf;

	NEED_BACKEND(b);
	rig_setup(&r, b, 256, HOTSPOT, seed);
	buf = map(256);
	rig_start(&r);
	usink_init(&us, SINK_WRITE, buf, 256 * ps);
	us.begin_err = -EIO;
	ck_assert_int_eq(rig_start_snapshot(&r, 0, 256, &us.sink, NULL, &snap),
			 -EIO);
	ck_assert_ptr_eq(snap, (struct uffdwp_snapshot *)&seed);
	ck_assert_int_eq(atomic_load(&us.begins), 1);
	ck_assert_int_eq(atomic_load(&us.ends), 0);
	ck_assert_uint_eq(atomic_load(&us.writes), 0);
	usink_fini(&us);
	/* Not left busy, and nothing lost. */
	rig_good_shot(&r, 0, 256, &seed);
	rig_good_shot(&r, 17, 3, &seed);
	rig_check_tracking(&r);
	rig_stop(&r);
	munmap(buf, 256 * ps);
	rig_teardown(&r);
}
END_TEST

START_TEST(sink_end_fails)
{
	int b = backends[_i];
	uint64_t seed = test_seed(uffdwp_backend_name(b));
	struct uffdwp_snapshot *snap;
	struct usink us;
	struct rig r;
	char *buf;

	NEED_BACKEND(b);
	rig_setup(&r, b, 256, HOTSPOT, seed);
	buf = map(256);
	rig_start(&r);
	usink_init(&us, SINK_MIXED, buf, 256 * ps);
	us.end_err = -ENOSPC;
	ck_assert_int_eq(rig_start_snapshot(&r, 0, 256, &us.sink, NULL, &snap),
			 0);
	expect_failed(snap, -ENOSPC, UFFDWP_CAUSE_SINK);
	uffdwp_snapshot_free(snap);
	ck_assert_int_eq(atomic_load(&us.ends), 1);
	ck_assert_int_eq(atomic_load(&us.end_status), 0);
	ck_assert_uint_eq(usink_delivered(&us), 256);
	usink_fini(&us);
	rig_good_shot(&r, 0, 256, &seed);
	rig_check_tracking(&r);
	rig_stop(&r);
	munmap(buf, 256 * ps);
	rig_teardown(&r);
}
END_TEST

/*
 * A failed snapshot gives the dirty state it took back: an incremental
 * chain with failures in between stays exact, and a collect right after a
 * failure reports every page written since the last good consumption.
 */
START_TEST(failed_snapshot_keeps_chain)
{
	int b = backends[_i];
	uint64_t seed = test_seed(uffdwp_backend_name(b));
	unsigned int it, count = (unsigned int)test_scaled(16, 6);
	size_t npages = 1024, words = npages / 64, i, first, n, got;
	struct uffdwp_snapshot_opts o;
	struct uffdwp_snapshot *snap;
	uint64_t *saved, written;
	char *img, *oracle, *scratch;
	struct usink us;
	struct rig r;
	struct shot s;

	NEED_BACKEND(b);
	rig_setup(&r, b, npages, HOTSPOT, seed);
	img = map(npages);
	oracle = map(npages);
	scratch = map(npages);
	saved = calloc(words, sizeof(uint64_t));
	ck_assert_ptr_nonnull(saved);
	memcpy(img, r.mem, npages * ps);
	rig_start(&r);
	for (it = 0; it < count; it++) {
		/* A failing snapshot, full or incremental, of a random part:
		 * its first write() fails (an incremental one has pages, so
		 * that call comes). */
		n = 1 + (size_t)(rnd(&seed) % npages);
		first = (size_t)(rnd(&seed) % (npages - n + 1));
		usink_init(&us, SINK_WRITE, scratch, npages * ps);
		us.fail_at = 0;
		us.fail_err = -EIO;
		rig_pause(&r);
		memcpy(saved, r.written, words * sizeof(uint64_t));
		written = rig_take_written(&r, first, n);
		fill_opts(&o, (enum opt_kind)(it % OPT_KINDS),
			  it % 2 && written ? UFFDWP_SNAPSHOT_INCREMENTAL : 0);
		ck_assert_int_eq(
			uffdwp_snapshot_start(r.ctx, r.mem + first * ps, n * ps,
					      &us.sink, &o, &snap),
			0);
		rig_resume(&r);
		expect_failed(snap, -EIO, UFFDWP_CAUSE_SINK);
		uffdwp_snapshot_free(snap);
		usink_fini(&us);
		/* What it took is dirty again: so for the test too. */
		for (i = 0; i < words; i++)
			__atomic_fetch_or(&r.written[i], saved[i],
					  __ATOMIC_RELAXED);

		/* The chain goes on, exact, with the pages given back. */
		memset(&s, 0, sizeof(s));
		s.n = it % 3 ? npages : 1 + (size_t)(rnd(&seed) % npages);
		s.first = (size_t)(rnd(&seed) % (npages - s.n + 1));
		s.kind = (enum sink_kind)(it % SINK_KINDS);
		s.opt = (enum opt_kind)(it / 2 % OPT_KINDS);
		s.flags = UFFDWP_SNAPSHOT_INCREMENTAL;
		s.oracle = oracle;
		s.dst = img + s.first * ps;
		shot_take(&r, &s, &seed);
		shot_check(&r, &s, true);
	}

	/* Writers parked: a failed snapshot, then a collect, which must
	 * report exactly the pages written since the last consumption. */
	rig_pause(&r);
	written = rig_take_written(&r, 0, npages);
	usink_init(&us, SINK_WRITE, scratch, npages * ps);
	us.fail_at = 0;
	us.fail_err = -ENOSPC;
	ck_assert_int_eq(uffdwp_snapshot_start(r.ctx, r.mem, npages * ps,
					       &us.sink, NULL, &snap),
			 0);
	expect_failed(snap, -ENOSPC, UFFDWP_CAUSE_SINK);
	uffdwp_snapshot_free(snap);
	usink_fini(&us);
	got = 0;
	ck_assert_int_eq(uffdwp_collect(r.ctx, count_run, &got), (long)written);
	ck_assert_uint_eq(got, written);
	rig_resume(&r);
	rig_stop(&r);
	free(saved);
	munmap(img, npages * ps);
	munmap(oracle, npages * ps);
	munmap(scratch, npages * ps);
	rig_teardown(&r);
}
END_TEST

/* The names in @dir, sorted, space-separated (dot files included). */
static void dir_list(const char *dir, char *out, size_t sz)
{
	struct dirent **ents;
	int n, i;

	out[0] = '\0';
	n = scandir(dir, &ents, NULL, alphasort);
	ck_assert_int_ge(n, 0);
	for (i = 0; i < n; i++) {
		if (strcmp(ents[i]->d_name, ".") &&
		    strcmp(ents[i]->d_name, ".."))
			snprintf(out + strlen(out), sz - strlen(out), "%s%s",
				 out[0] ? " " : "", ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
}

static void dir_remove(const char *dir)
{
	struct dirent **ents;
	char path[512];
	int n, i;

	n = scandir(dir, &ents, NULL, alphasort);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		if (strcmp(ents[i]->d_name, ".") &&
		    strcmp(ents[i]->d_name, ".."))
			unlink(path);
		free(ents[i]);
	}
	if (n >= 0)
		free(ents);
	rmdir(dir);
}

/* Open @path, check its header, apply it onto @buf (its range's image). */
static void image_check_apply(const char *path, const void *addr, size_t len,
			      unsigned int flags, uint64_t pages, char *buf)
{
	struct uffdwp_image_info info = { .sz = sizeof(info) };
	struct uffdwp_image *img = NULL;
	const void *data;
	uint64_t a;
	int ret;

	ret = uffdwp_image_open(path, &img);
	ck_assert_msg(ret == 0, "uffdwp_image_open(%s): %d (%s)", path, ret,
		      strerror(-ret));
	ck_assert_int_eq(uffdwp_image_info(img, &info), 0);
	ck_assert_uint_eq(info.version, 1);
	ck_assert_uint_eq(info.flags, flags);
	ck_assert_uint_eq(info.addr, (uintptr_t)addr);
	ck_assert_uint_eq(info.len, len);
	ck_assert_uint_eq(info.page_size, ps);
	ck_assert_uint_eq(info.pages, pages);
	ck_assert_uint_gt(info.instant_realtime_ns, 0);
	if (pages) {
		ck_assert_int_eq(uffdwp_image_page(img, pages - 1, &a, &data),
				 0);
		ck_assert_uint_ge(a, (uintptr_t)addr);
		ck_assert_uint_lt(a, (uintptr_t)addr + len);
		ck_assert_uint_eq(a % ps, 0);
	}
	ck_assert_int_eq(uffdwp_image_page(img, pages, &a, &data), -ERANGE);
	ck_assert_int_eq(uffdwp_image_apply(img, buf, len), (long)pages);
	uffdwp_image_close(img);
}

/* Copies of the image at @path, truncated and corrupted, are refused. */
static void image_damaged(const char *path, const char *dir)
{
	struct uffdwp_image *img = NULL;
	char copy[160];
	struct stat sb;
	char *data;
	int fd, ret;

	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	data = malloc((size_t)sb.st_size);
	ck_assert_ptr_nonnull(data);
	ck_assert_int_eq(read(fd, data, (size_t)sb.st_size), sb.st_size);
	close(fd);
	snprintf(copy, sizeof(copy), "%s/damaged", dir);

	/* Cut in the middle of the data. */
	fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, (size_t)sb.st_size / 2),
			 sb.st_size / 2);
	close(fd);
	ret = uffdwp_image_open(copy, &img);
	ck_assert_msg(ret == -ENODATA, "truncated image: %d", ret);
	ck_assert_ptr_null(img);

	/* One bit of the last page flipped. */
	data[sb.st_size - 100] ^= 0x10;
	fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, (size_t)sb.st_size), sb.st_size);
	close(fd);
	ret = uffdwp_image_open(copy, &img);
	ck_assert_msg(ret == -EBADMSG, "corrupted image: %d", ret);
	ck_assert_ptr_null(img);
	unlink(copy);
	free(data);
}

/* A file snapshot of [first, +n) with writers running; its oracle. */
static void file_shot(struct rig *r, const char *path, unsigned int sflags,
		      size_t first, size_t n, unsigned int flags, char *oracle,
		      uint64_t *pages)
{
	struct uffdwp_snapshot_opts o;
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *sink;
	uint64_t written;
	int ret;

	fill_opts(&o, OPTS_DEFAULT, flags);
	ck_assert_int_eq(uffdwp_sink_file_new(path, sflags, &sink), 0);
	rig_pause(r);
	written = rig_take_written(r, first, n);
	memcpy(oracle, r->mem + first * ps, n * ps);
	ret = uffdwp_snapshot_start(r->ctx, r->mem + first * ps, n * ps, sink,
				    &o, &snap);
	rig_resume(r);
	ck_assert_int_eq(ret, 0);
	ret = uffdwp_snapshot_wait(snap, -1);
	ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
	ck_assert_msg(ret == 0, "file snapshot to %s: %d (%s), cause %s", path,
		      ret, strerror(-ret),
		      uffdwp_snapshot_cause_name(st.cause));
	ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_EXACT);
	ck_assert_uint_eq(st.pages,
			  flags & UFFDWP_SNAPSHOT_INCREMENTAL ? written : n);
	*pages = st.pages;
	uffdwp_snapshot_free(snap);
	uffdwp_sink_free(sink);
}

/* Base image, incremental delta, sub-range: each equals its oracle. */
START_TEST(file_roundtrip)
{
	int b = backends[_i];
	uint64_t seed = test_seed(uffdwp_backend_name(b)), pages;
	char dir[] = "/tmp/uffdwp-snap-XXXXXX", path[128], names[256];
	size_t npages = 2048, first = 700, n = 300;
	char *oracle, *buf;
	struct rig r;

	NEED_BACKEND(b);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	rig_setup(&r, b, npages, HOTSPOT, seed);
	oracle = map(npages);
	buf = map(npages);
	rig_start(&r);

	/* Durable (fsync'ed) base image. */
	snprintf(path, sizeof(path), "%s/base.img", dir);
	file_shot(&r, path, 0, 0, npages, 0, oracle, &pages);
	image_check_apply(path, r.mem, npages * ps, 0, npages, buf);
	expect_equal("base image", buf, oracle, npages);

	/* A delta applied onto the base gives the range at its instant. */
	snprintf(path, sizeof(path), "%s/delta.img", dir);
	file_shot(&r, path, UFFDWP_FILE_SINK_NO_SYNC, 0, npages,
		  UFFDWP_SNAPSHOT_INCREMENTAL, oracle, &pages);
	ck_assert_uint_gt(pages, 0);
	image_check_apply(path, r.mem, npages * ps, UFFDWP_SNAPSHOT_INCREMENTAL,
			  pages, buf);
	expect_equal("base + delta image", buf, oracle, npages);

	snprintf(path, sizeof(path), "%s/sub.img", dir);
	file_shot(&r, path, UFFDWP_FILE_SINK_NO_SYNC, first, n, 0, oracle,
		  &pages);
	memset(buf, POISON, n * ps);
	image_check_apply(path, r.mem + first * ps, n * ps, 0, n, buf);
	expect_equal("sub-range image", buf, oracle, n);

	/* A real image cut short, or with one data byte flipped, is
	 * refused. */
	snprintf(path, sizeof(path), "%s/base.img", dir);
	image_damaged(path, dir);

	dir_list(dir, names, sizeof(names));
	ck_assert_str_eq(names, "base.img delta.img sub.img");
	rig_stop(&r);
	munmap(oracle, npages * ps);
	munmap(buf, npages * ps);
	rig_teardown(&r);
	dir_remove(dir);
}
END_TEST

/*
 * Every failure point of the file sink, and a cancel: no file under the
 * final name, no temporary file, and an image already there kept as it was.
 */
START_TEST(file_failures_leave_nothing)
{
	int b = backends[_i];
	uint64_t seed = test_seed(uffdwp_backend_name(b)), pages;
	const struct {
		int point, err;
		unsigned int sflags;
	} fails[] = {
		{ IMG_FAIL_ALLOCATE, ENOSPC, UFFDWP_FILE_SINK_NO_SYNC },
		{ IMG_FAIL_PWRITE, EIO, UFFDWP_FILE_SINK_NO_SYNC },
		{ IMG_FAIL_PWRITE, ENOSPC, 0 },
		{ IMG_FAIL_FSYNC, EIO, 0 },
		{ IMG_FAIL_CLOSE, EIO, UFFDWP_FILE_SINK_NO_SYNC },
		{ IMG_FAIL_RENAME, EIO, UFFDWP_FILE_SINK_NO_SYNC },
		{ IMG_FAIL_DIR_FSYNC, EIO, 0 },
	};
	char dir[] = "/tmp/uffdwp-snap-XXXXXX", keep[128], path[128];
	char names[256];
	size_t npages = 512, i, t;
	struct uffdwp_snapshot_opts o;
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *sink;
	char *oracle, *buf;
	struct sgate gate;
	struct usink us;
	struct rig r;
	int ret;

	NEED_BACKEND(b);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	rig_setup(&r, b, npages, HOTSPOT, seed);
	oracle = map(npages);
	buf = map(npages);
	rig_start(&r);
	snprintf(keep, sizeof(keep), "%s/keep.img", dir);
	file_shot(&r, keep, UFFDWP_FILE_SINK_NO_SYNC, 0, npages, 0, oracle,
		  &pages);

	for (i = 0; i < ARRAY_LEN(fails); i++) {
		/* t = 0: a new name; t = 1: over the existing image. */
		for (t = 0; t < 2; t++) {
			snprintf(path, sizeof(path), "%s/%s", dir,
				 t ? "keep.img" : "new.img");
			uffdwp_test_hooks.file_fail_point = fails[i].point;
			uffdwp_test_hooks.file_fail_errno = fails[i].err;
			uffdwp_test_hooks.file_fail_nth =
				1 + (unsigned long)(rnd(&seed) % 8);
			ck_assert_int_eq(uffdwp_sink_file_new(
						 path, fails[i].sflags, &sink),
					 0);
			ret = rig_start_snapshot(&r, 0, npages, sink, NULL,
						 &snap);
			if (fails[i].point == IMG_FAIL_ALLOCATE) {
				/* begin() failed: the start did. */
				ck_assert_int_eq(ret, -fails[i].err);
			} else {
				ck_assert_int_eq(ret, 0);
				expect_failed(snap, -fails[i].err,
					      UFFDWP_CAUSE_SINK);
				uffdwp_snapshot_free(snap);
			}
			memset(&uffdwp_test_hooks, 0,
			       sizeof(uffdwp_test_hooks));
			uffdwp_sink_free(sink);
			dir_list(dir, names, sizeof(names));
			ck_assert_msg(
				!strcmp(names, "keep.img"),
				"failure point %d (%s): the folder holds \"%s\"",
				fails[i].point, t ? "replacing" : "new", names);
			memset(buf, 0, npages * ps);
			image_check_apply(keep, r.mem, npages * ps, 0, npages,
					  buf);
			expect_equal("the kept image", buf, oracle, npages);
		}
	}

	/* Cancelled while a write() is held: the file sink's own write
	 * waits behind the gate. */
	for (t = 0; t < 2; t++) {
		snprintf(path, sizeof(path), "%s/%s", dir,
			 t ? "keep.img" : "new.img");
		ck_assert_int_eq(uffdwp_sink_file_new(path, 0, &sink), 0);
		sgate_init(&gate);
		usink_init(&us, SINK_WRITE, buf, npages * ps);
		us.inner = sink;
		us.gate = &gate;
		fill_opts(&o, OPTS_NARROW, 0);
		ck_assert_int_eq(rig_start_snapshot(&r, 0, npages, &us.sink, &o,
						    &snap),
				 0);
		sgate_wait_entered(&gate);
		ck_assert_int_eq(uffdwp_snapshot_cancel(snap), 0);
		sgate_open(&gate);
		expect_failed(snap, -ECANCELED, UFFDWP_CAUSE_CALLER);
		uffdwp_snapshot_free(snap);
		ck_assert_int_eq(atomic_load(&us.ends), 1);
		ck_assert_int_eq(atomic_load(&us.end_status), -ECANCELED);
		usink_fini(&us);
		uffdwp_sink_free(sink);
		dir_list(dir, names, sizeof(names));
		ck_assert_msg(!strcmp(names, "keep.img"),
			      "cancelled: the folder holds \"%s\"", names);
	}
	memset(buf, 0, npages * ps);
	image_check_apply(keep, r.mem, npages * ps, 0, npages, buf);
	expect_equal("the kept image", buf, oracle, npages);

	rig_stop(&r);
	munmap(oracle, npages * ps);
	munmap(buf, npages * ps);
	rig_teardown(&r);
	dir_remove(dir);
}
END_TEST

/*
 * The file sink on a tmpfs checks the free space at the start instead of
 * allocating the image there (sink-file.c): an image that cannot fit
 * fails the start with -ENOSPC, one that fits is exact, and a tmpfs that
 * fills up during the snapshot fails it with -ENOSPC and leaves nothing.
 * Mounting the tmpfs needs CAP_SYS_ADMIN: without it this case says so
 * and checks nothing (the root runs of CI have it).
 */
START_TEST(file_on_small_tmpfs)
{
	int b = backends[_i];
	uint64_t seed = test_seed(uffdwp_backend_name(b)), pages;
	char dir[] = "/tmp/uffdwp-tmpfs-XXXXXX", path[128], names[256];
	size_t npages = 1024, fits = 128; /* a 2 MiB tmpfs: 4 MiB, 512 KiB */
	struct uffdwp_snapshot_opts o;
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *sink;
	char *oracle, *buf, *ballast;
	struct sgate gate;
	struct usink us;
	struct rig r;
	int fd;

	NEED_BACKEND(b);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	if (mount("uffdwp", dir, "tmpfs", 0, "size=2m,mode=0700")) {
		ck_assert_int_eq(errno, EPERM);
		rmdir(dir);
		printf("file_on_small_tmpfs: skipped, mounting a tmpfs needs "
		       "CAP_SYS_ADMIN\n");
		return;
	}
	rig_setup(&r, b, npages, HOTSPOT, seed);
	oracle = map(npages);
	buf = map(npages);
	rig_start(&r);
	snprintf(path, sizeof(path), "%s/x.img", dir);

	/* Too large: refused at the start, nothing left behind. */
	ck_assert_int_eq(uffdwp_sink_file_new(path, 0, &sink), 0);
	ck_assert_int_eq(rig_start_snapshot(&r, 0, npages, sink, NULL, &snap),
			 -ENOSPC);
	uffdwp_sink_free(sink);
	dir_list(dir, names, sizeof(names));
	ck_assert_str_eq(names, "");

	/* Fits: exact. */
	file_shot(&r, path, 0, 0, fits, 0, oracle, &pages);
	memset(buf, POISON, fits * ps);
	image_check_apply(path, r.mem, fits * ps, 0, fits, buf);
	expect_equal("tmpfs image", buf, oracle, fits);
	unlink(path);

	/* Fits at the start, not when written: the first write waits at
	 * the gate while a ballast file takes the room. */
	ck_assert_int_eq(uffdwp_sink_file_new(path, 0, &sink), 0);
	sgate_init(&gate);
	usink_init(&us, SINK_WRITE, buf, fits * ps);
	us.inner = sink;
	us.gate = &gate;
	fill_opts(&o, OPTS_NARROW, 0);
	ck_assert_int_eq(rig_start_snapshot(&r, 0, fits, &us.sink, &o, &snap),
			 0);
	sgate_wait_entered(&gate);
	snprintf(path, sizeof(path), "%s/ballast", dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ballast = map(npages);
	while (write(fd, ballast, npages * ps) > 0)
		;
	ck_assert_int_eq(errno, ENOSPC);
	close(fd);
	sgate_open(&gate);
	expect_failed(snap, -ENOSPC, UFFDWP_CAUSE_SINK);
	uffdwp_snapshot_free(snap);
	usink_fini(&us);
	uffdwp_sink_free(sink);
	dir_list(dir, names, sizeof(names));
	ck_assert_msg(!strcmp(names, "ballast"),
		      "a failed tmpfs image: the folder holds \"%s\"", names);
	unlink(path);

	rig_stop(&r);
	munmap(ballast, npages * ps);
	munmap(oracle, npages * ps);
	munmap(buf, npages * ps);
	rig_teardown(&r);
	ck_assert_int_eq(umount(dir), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

void snapshot_sinks_cases(Suite *s, const char *tag, int i)
{
	const struct test_group groups[] = {
		{ "sinks",
		  600,
		  { sink_error_at_random_page, sink_begin_fails, sink_end_fails,
		    failed_snapshot_keeps_chain, file_roundtrip,
		    file_failures_leave_nothing, file_on_small_tmpfs } },
	};

	test_add_groups(s, tag, i, groups, ARRAY_LEN(groups));
}
