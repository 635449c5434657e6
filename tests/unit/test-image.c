/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit suite: the image format, the file sink and the image reader.
 *
 * The tests play the snapshot engine: they drive the sink's callbacks
 * directly, from several threads and in random order as copier threads
 * would, then read the image back and compare it with what they wrote.
 * The reader must refuse every corrupted, truncated or foreign file with
 * its documented error, and the sink must never leave anything but a
 * complete image under the final name, whichever call fails (failures are
 * injected through uffdwp_test_hooks).
 *
 * Random choices are seeded from UFFDWP_TEST_SEED when set, otherwise from
 * the clock; each test prints its seed.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

#include "../common.h"
#include "image.h"
#include "testhooks.h"

#define NAME "img"
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* The snapshot's range, as the process it came from saw it: not where the
 * test keeps the contents, so a sink or reader that confused the two
 * would put pages in the wrong place. */
#define RANGE_ADDR ((uint64_t)0x40000000)

static size_t ps;
static char dir[PATH_MAX];
static char path[PATH_MAX + NAME_MAX + 2];

/* --- randomness ------------------------------------------------------ */

static uint64_t rng;

static uint64_t rnd(void)
{
	/* xorshift64*: fast, and good enough to pick offsets and fill. */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545F4914F6CDD1DULL;
}

static uint64_t rnd_below(uint64_t n)
{
	return rnd() % n;
}

static void seed_rng(void)
{
	const char *s = getenv("UFFDWP_TEST_SEED");
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	rng = s ? strtoull(s, NULL, 0) :
		  (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
			      (uint64_t)getpid();
	if (!rng)
		rng = 1;
	printf("seed %#llx\n", (unsigned long long)rng);
	fflush(stdout);
}

/* --- fixture --------------------------------------------------------- */

/* Every test's folder is made in this one, which main() removes after the
 * run: a failed test, which skips its teardown, leaves nothing either. */
static char root[PATH_MAX - 64];

static void setup(void)
{
	ps = (size_t)sysconf(_SC_PAGESIZE);
	memset(&uffdwp_test_hooks, 0, sizeof(uffdwp_test_hooks));
	snprintf(dir, sizeof(dir), "%s/t-XXXXXX", root);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, NAME);
	seed_rng();
}

static void remove_tree(const char *p)
{
	struct dirent *e;
	DIR *d = opendir(p);
	char sub[PATH_MAX + NAME_MAX + 2];

	if (!d) {
		unlink(p);
		return;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", p, e->d_name);
		remove_tree(sub);
	}
	closedir(d);
	rmdir(p);
}

static void teardown(void)
{
	memset(&uffdwp_test_hooks, 0, sizeof(uffdwp_test_hooks));
	remove_tree(dir);
}

/* The test folder holds exactly @only (a name), or nothing if NULL. */
static void assert_dir_holds(const char *only)
{
	struct dirent *e;
	bool found = false;
	DIR *d = opendir(dir);

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		ck_assert_msg(only && !strcmp(e->d_name, only),
			      "unexpected file left in the folder: %s",
			      e->d_name);
		found = true;
	}
	closedir(d);
	ck_assert_msg(found == !!only, "%s is missing", only);
}

/* --- files ----------------------------------------------------------- */

static unsigned char *read_whole(const char *p, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	int fd = open(p, O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void write_whole(const char *p, const void *buf, size_t len)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, buf, len, 0), (ssize_t)len);
	close(fd);
}

static int open_err(const char *p)
{
	struct uffdwp_image *img = NULL;
	int ret = uffdwp_image_open(p, &img);

	if (!ret) {
		uffdwp_image_close(img);
		return 0;
	}
	ck_assert_ptr_null(img);
	return ret;
}

/* --- a snapshot the test plays the engine for ------------------------- */

struct snap {
	size_t npages;
	size_t len;
	unsigned char *mem; /* the range's contents at the instant */
	bool *in; /* pages that reach the sink */
	uint64_t pages;
	unsigned int flags;
	uint64_t instant;
};

static void snap_fill(struct snap *s)
{
	size_t i;

	for (i = 0; i < s->len / 8; i++) {
		uint64_t v = rnd();

		memcpy(s->mem + i * 8, &v, 8);
	}
}

/* @npages of random contents; each page is in with @permille chance. */
static void snap_init(struct snap *s, size_t npages, unsigned int permille)
{
	size_t i;

	memset(s, 0, sizeof(*s));
	s->npages = npages;
	s->len = npages * ps;
	s->mem = malloc(s->len);
	s->in = calloc(npages, sizeof(*s->in));
	ck_assert(s->mem && s->in);
	snap_fill(s);
	for (i = 0; i < npages; i++) {
		s->in[i] = rnd_below(1000) < permille;
		s->pages += s->in[i];
	}
	s->flags = permille < 1000 ? UFFDWP_SNAPSHOT_INCREMENTAL : 0;
	s->instant = 1700000000123456789ULL + rnd_below(1000000);
}

static void snap_free(struct snap *s)
{
	free(s->mem);
	free(s->in);
}

static struct uffdwp_snapshot_info snap_info(const struct snap *s)
{
	struct uffdwp_snapshot_info info = {
		.sz = sizeof(info),
		.addr = (void *)(uintptr_t)RANGE_ADDR,
		.len = s->len,
		.page_size = ps,
		.pages = s->pages,
		.flags = s->flags,
		.instant_realtime_ns = s->instant,
	};

	return info;
}

struct op {
	size_t first, n;
};

struct writers {
	const struct uffdwp_sink *sink;
	const struct snap *s;
	struct op *ops;
	size_t nops;
	size_t next;
	int first_err;
	size_t failures;
};

/*
 * Cut the pages that are in into runs of at most @max_run contiguous pages
 * (one write call each, as the engine makes them) and shuffle the runs.
 */
static struct op *make_ops(const struct snap *s, size_t max_run, size_t *nops)
{
	struct op *ops = calloc(s->pages ? s->pages : 1, sizeof(*ops));
	size_t i = 0, n = 0, k;

	ck_assert_ptr_nonnull(ops);
	while (i < s->npages) {
		size_t run = 0, want = 1 + rnd_below(max_run);

		if (!s->in[i]) {
			i++;
			continue;
		}
		while (i + run < s->npages && s->in[i + run] && run < want)
			run++;
		ops[n++] = (struct op){ i, run };
		i += run;
	}
	for (k = n; k > 1; k--) {
		size_t j = rnd_below(k);
		struct op t = ops[k - 1];

		ops[k - 1] = ops[j];
		ops[j] = t;
	}
	*nops = n;
	return ops;
}

static void *writer(void *arg)
{
	struct writers *w = arg;
	size_t i;

	/* Failures are counted, not asserted: check asserts in the main
	 * thread only. */
	while ((i = __atomic_fetch_add(&w->next, 1, __ATOMIC_RELAXED)) <
	       w->nops) {
		const struct op *o = &w->ops[i];
		int ret = w->sink->write(
			w->sink->arg,
			(void *)(uintptr_t)(RANGE_ADDR + o->first * ps),
			w->s->mem + o->first * ps, o->n * ps);

		if (ret) {
			int none = 0;

			__atomic_compare_exchange_n(&w->first_err, &none, ret,
						    false, __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED);
			__atomic_fetch_add(&w->failures, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

/* Deliver every page that is in, from @threads threads. */
static void write_pages(const struct uffdwp_sink *sink, const struct snap *s,
			unsigned int threads, size_t max_run, struct writers *w)
{
	pthread_t t[16];
	unsigned int i;

	ck_assert_uint_le(threads, 16);
	memset(w, 0, sizeof(*w));
	w->sink = sink;
	w->s = s;
	w->ops = make_ops(s, max_run, &w->nops);
	for (i = 0; i < threads; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, writer, w), 0);
	for (i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	free(w->ops);
}

/* A whole snapshot into @sink: returns end(0)'s result. */
static int take(const struct uffdwp_sink *sink, const struct snap *s,
		unsigned int threads, size_t max_run)
{
	struct uffdwp_snapshot_info info = snap_info(s);
	struct writers w;

	ck_assert_int_eq(sink->begin(sink->arg, &info), 0);
	write_pages(sink, s, threads, max_run, &w);
	ck_assert_int_eq(w.first_err, 0);
	return sink->end(sink->arg, 0);
}

static void take_new(const char *p, unsigned int flags, const struct snap *s)
{
	struct uffdwp_sink *sink;

	ck_assert_int_eq(uffdwp_sink_file_new(p, flags, &sink), 0);
	ck_assert_int_eq(take(sink, s, 4, 8), 0);
	uffdwp_sink_free(sink);
}

/* The image at @p holds exactly the pages of @s that are in. */
static void verify(const char *p, const struct snap *s)
{
	struct uffdwp_image_info info = { .sz = sizeof(info) };
	struct uffdwp_image *img;
	uint64_t i, prev = 0, a;
	const void *data;

	ck_assert_int_eq(uffdwp_image_open(p, &img), 0);
	ck_assert_int_eq(uffdwp_image_info(img, &info), 0);
	ck_assert_uint_eq(info.sz, sizeof(info));
	ck_assert_uint_eq(info.version, 1);
	ck_assert_uint_eq(info.flags, s->flags);
	ck_assert_uint_eq(info.addr, RANGE_ADDR);
	ck_assert_uint_eq(info.len, s->len);
	ck_assert_uint_eq(info.page_size, ps);
	ck_assert_uint_eq(info.pages, s->pages);
	ck_assert_uint_eq(info.instant_realtime_ns, s->instant);

	for (i = 0; i < info.pages; i++) {
		size_t pg;

		ck_assert_int_eq(uffdwp_image_page(img, i, &a, &data), 0);
		ck_assert_msg(i == 0 || a > prev, "page %llu out of order",
			      (unsigned long long)i);
		ck_assert_uint_eq(a % ps, 0);
		ck_assert_uint_ge(a, RANGE_ADDR);
		pg = (size_t)((a - RANGE_ADDR) / ps);
		ck_assert_uint_lt(pg, s->npages);
		ck_assert_msg(s->in[pg], "page %zu is not in the snapshot", pg);
		ck_assert_msg(!memcmp(data, s->mem + pg * ps, ps),
			      "page %zu differs", pg);
		prev = a;
	}
	ck_assert_int_eq(uffdwp_image_page(img, info.pages, &a, &data),
			 -ERANGE);
	uffdwp_image_close(img);
}

/* --- the checksum ---------------------------------------------------- */

START_TEST(xxh64_reference_vectors)
{
	/* xxHash's own sanity buffer and published string vectors: a wrong
	 * constant would still round-trip, but not match these. */
	static const char nobody[] = "Nobody inspects the spammish repetition";
	static const char ishmael[] =
		"Some years ago--never mind how long precisely-";
	const uint64_t prime = 2654435761U;
	unsigned char buf[101];
	uint32_t gen = 2654435761U;
	size_t i;

	for (i = 0; i < sizeof(buf); i++) {
		buf[i] = (unsigned char)(gen >> 24);
		gen *= gen;
	}
	ck_assert_uint_eq(img_xxh64(NULL, 0, 0), 0xEF46DB3751D8E999ULL);
	ck_assert_uint_eq(img_xxh64(NULL, 0, prime), 0xAC75FDA2929B17EFULL);
	ck_assert_uint_eq(img_xxh64(buf, 1, 0), 0x4FCE394CC88952D8ULL);
	ck_assert_uint_eq(img_xxh64(buf, 1, prime), 0x739840CB819FA723ULL);
	ck_assert_uint_eq(img_xxh64(buf, 14, 0), 0xCFFA8DB881BC3A3DULL);
	ck_assert_uint_eq(img_xxh64(buf, 14, prime), 0x5B9611585EFCC9CBULL);
	ck_assert_uint_eq(img_xxh64(buf, 101, 0), 0x0EAB543384F878ADULL);
	ck_assert_uint_eq(img_xxh64(buf, 101, prime), 0xCAA65939306F1E21ULL);
	ck_assert_uint_eq(img_xxh64("a", 1, 0), 0xD24EC4F1A98C6E5BULL);
	ck_assert_uint_eq(img_xxh64("abc", 3, 0), 0x44BC2CF5AD770999ULL);
	ck_assert_uint_eq(img_xxh64("asdf", 4, 0), 0x415872F599CEA71EULL);
	ck_assert_uint_eq(img_xxh64(nobody, strlen(nobody), 0),
			  0xFBCEA83C8A378BF1ULL);
	ck_assert_uint_eq(img_xxh64(ishmael, strlen(ishmael), 0),
			  0x8F26F2B986AFDC52ULL);
}
END_TEST

/* --- round trips ----------------------------------------------------- */

START_TEST(round_trip_full)
{
	struct uffdwp_image *img;
	struct snap s;
	struct stat st;
	unsigned char *buf;

	snap_init(&s, 300, 1000);
	take_new(path, 0, &s);
	assert_dir_holds(NAME);
	verify(path, &s);

	/* It holds process memory: only its owner may read it. */
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);

	buf = calloc(1, s.len);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(uffdwp_image_open(path, &img), 0);
	ck_assert_int_eq(uffdwp_image_apply(img, buf, s.len), 300);
	ck_assert(!memcmp(buf, s.mem, s.len));
	ck_assert_ptr_null(uffdwp_image_close(img));
	free(buf);
	snap_free(&s);
}
END_TEST

START_TEST(round_trip_incremental)
{
	struct uffdwp_image *img;
	struct snap base, inc;
	unsigned char *buf;
	size_t i, n = 200;

	/* A base image, then an incremental one of some pages changed. */
	snap_init(&base, n, 1000);
	take_new(path, 0, &base);
	verify(path, &base);

	snap_init(&inc, n, 150);
	ck_assert_uint_gt(inc.pages, 0);
	ck_assert_uint_lt(inc.pages, n);
	for (i = 0; i < n; i++)
		if (!inc.in[i])
			memcpy(inc.mem + i * ps, base.mem + i * ps, ps);
	take_new(path, 0, &inc);
	assert_dir_holds(NAME);
	verify(path, &inc);

	/* Applied over the base, it gives the range at its own instant. */
	buf = malloc(n * ps);
	ck_assert_ptr_nonnull(buf);
	memcpy(buf, base.mem, n * ps);
	ck_assert_int_eq(uffdwp_image_open(path, &img), 0);
	ck_assert_int_eq(uffdwp_image_apply(img, buf, n * ps), (long)inc.pages);
	uffdwp_image_close(img);
	ck_assert(!memcmp(buf, inc.mem, n * ps));
	free(buf);
	snap_free(&base);
	snap_free(&inc);
}
END_TEST

START_TEST(round_trip_empty_incremental)
{
	struct uffdwp_image *img;
	struct snap s;
	unsigned char *buf;
	size_t len;

	/* Nothing was written since the last snapshot: still an image. */
	snap_init(&s, 64, 0);
	ck_assert_uint_eq(s.pages, 0);
	take_new(path, 0, &s);
	verify(path, &s);
	free(read_whole(path, &len));
	ck_assert_uint_eq(len, ps);

	buf = malloc(s.len);
	ck_assert_ptr_nonnull(buf);
	memcpy(buf, s.mem, s.len);
	ck_assert_int_eq(uffdwp_image_open(path, &img), 0);
	ck_assert_int_eq(uffdwp_image_apply(img, buf, s.len), 0);
	uffdwp_image_close(img);
	ck_assert(!memcmp(buf, s.mem, s.len));
	free(buf);
	snap_free(&s);
}
END_TEST

START_TEST(round_trip_large)
{
	size_t npages = test_scaled(64UL << 20, 4UL << 20) / ps;
	struct uffdwp_sink *sink;
	struct uffdwp_image *img;
	struct snap s;
	unsigned char *buf;

	snap_init(&s, npages, 1000);
	ck_assert_int_eq(uffdwp_sink_file_new(path, 0, &sink), 0);
	ck_assert_int_eq(take(sink, &s, 4, 64), 0);
	uffdwp_sink_free(sink);

	buf = malloc(s.len);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(uffdwp_image_open(path, &img), 0);
	ck_assert_int_eq(uffdwp_image_apply(img, buf, s.len), (long)npages);
	uffdwp_image_close(img);
	ck_assert(!memcmp(buf, s.mem, s.len));
	free(buf);
	snap_free(&s);
}
END_TEST

START_TEST(sink_reused_and_replaces)
{
	struct uffdwp_sink *sink;
	struct snap a, b;

	/* One sink, two snapshots one after the other: the second image
	 * replaces the first, and nothing else is left. */
	snap_init(&a, 40, 1000);
	snap_init(&b, 40, 500);
	ck_assert_int_eq(uffdwp_sink_file_new(path, 0, &sink), 0);
	ck_assert_int_eq(take(sink, &a, 2, 4), 0);
	verify(path, &a);
	ck_assert_int_eq(take(sink, &b, 3, 1), 0);
	verify(path, &b);
	assert_dir_holds(NAME);
	uffdwp_sink_free(sink);
	snap_free(&a);
	snap_free(&b);
}
END_TEST

START_TEST(relative_and_long_names)
{
	char name[NAME_MAX + 1], cwd[PATH_MAX];
	struct snap s;

	snap_init(&s, 8, 1000);
	/* A bare name lives in the current folder. */
	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	ck_assert_int_eq(chdir(dir), 0);
	take_new(NAME, 0, &s);
	ck_assert_int_eq(chdir(cwd), 0);
	verify(path, &s);
	ck_assert_int_eq(unlink(path), 0);

	/* The longest name: its temporary name must still fit. */
	memset(name, 'n', NAME_MAX);
	name[NAME_MAX] = '\0';
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	take_new(path, 0, &s);
	assert_dir_holds(name);
	verify(path, &s);
	snap_free(&s);
}
END_TEST

/* --- the reader refuses what is not a valid image -------------------- */

/* A valid image of @npages pages at `path`, its bytes in @len. */
static unsigned char *good_image(struct snap *s, size_t npages, size_t *len)
{
	snap_init(s, npages, 1000);
	take_new(path, UFFDWP_FILE_SINK_NO_SYNC, s);
	verify(path, s);
	return read_whole(path, len);
}

/* Flip one bit of byte @off of the file behind @fd, open, flip it back. */
static int open_flipped(int fd, const char *p, size_t off)
{
	unsigned char b, f;
	int ret;

	ck_assert_int_eq(pread(fd, &b, 1, (off_t)off), 1);
	f = b ^ (unsigned char)(1u << rnd_below(8));
	ck_assert_int_eq(pwrite(fd, &f, 1, (off_t)off), 1);
	ret = open_err(p);
	ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)off), 1);
	return ret;
}

START_TEST(header_corruption)
{
	unsigned char *good;
	struct snap s;
	size_t len, off;
	int fd;

	good = good_image(&s, 16, &len);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	for (off = 0; off < IMG_HEADER_SIZE; off++) {
		int want = -EBADMSG, got = open_flipped(fd, path, off);

		if (off < IMG_OFF_VERSION)
			want = -ENOEXEC;
		else if (off < IMG_OFF_HEADER_SIZE ||
			 (off >= IMG_OFF_CSUM_ALG && off < IMG_OFF_ADDR))
			want = -EPROTONOSUPPORT;
		ck_assert_msg(got == want, "header byte %zu: %d, expected %d",
			      off, got, want);
	}
	close(fd);
	/* The flips were undone: the image is whole again. */
	verify(path, &s);
	free(good);
	snap_free(&s);
}
END_TEST

/* Rewrite the header of `path` from @h (checksum recomputed), then open. */
static int open_with_header(const unsigned char *good, size_t len,
			    const struct img_header *h, size_t reserved_byte)
{
	unsigned char *buf = malloc(len);
	uint64_t csum;
	int ret;

	ck_assert_ptr_nonnull(buf);
	memcpy(buf, good, len);
	img_header_encode(h, buf);
	if (reserved_byte) {
		buf[reserved_byte] = 1;
		csum = htole64(img_xxh64(buf, IMG_OFF_HEADER_CSUM, 0));
		memcpy(buf + IMG_OFF_HEADER_CSUM, &csum, 8);
	}
	write_whole(path, buf, len);
	ret = open_err(path);
	free(buf);
	return ret;
}

START_TEST(header_contradictions)
{
	struct img_header good_h, h;
	struct uffdwp_image_info info = { .sz = sizeof(info) };
	struct uffdwp_image *img;
	unsigned char *good;
	struct snap s;
	size_t len;

	/* Each header has a valid checksum, but says what cannot be. */
	good = good_image(&s, 16, &len);
	img_header_decode(good, &good_h);

#define EXPECT_BAD(field, value)                                              \
	do {                                                                  \
		h = good_h;                                                   \
		h.field = (value);                                            \
		ck_assert_msg(open_with_header(good, len, &h, 0) == -EBADMSG, \
			      "%s = %#llx accepted", #field,                  \
			      (unsigned long long)(value));                   \
	} while (0)

	EXPECT_BAD(header_size, 64);
	EXPECT_BAD(header_size, 256);
	EXPECT_BAD(page_size, 0);
	EXPECT_BAD(page_size, 2048);
	EXPECT_BAD(page_size, 3 * ps);
	EXPECT_BAD(page_size, 1ULL << 31);
	EXPECT_BAD(len, 0);
	EXPECT_BAD(len, good_h.len + 1);
	EXPECT_BAD(len, 15 * (uint64_t)ps);
	EXPECT_BAD(addr, RANGE_ADDR + 8);
	EXPECT_BAD(addr, UINT64_MAX - ps + 1);
	EXPECT_BAD(page_count, 17);
	EXPECT_BAD(page_count, UINT64_MAX);
#undef EXPECT_BAD
	ck_assert_int_eq(open_with_header(good, len, &good_h,
					  IMG_OFF_RESERVED + 7),
			 -EBADMSG);
	ck_assert_int_eq(open_with_header(good, len, &good_h,
					  IMG_OFF_HEADER_CSUM - 1),
			 -EBADMSG);

	/* A version this reader does not know, checksum valid or not. */
	h = good_h;
	h.version = 2;
	ck_assert_int_eq(open_with_header(good, len, &h, 0), -EPROTONOSUPPORT);
	h.version = 0;
	ck_assert_int_eq(open_with_header(good, len, &h, 0), -EPROTONOSUPPORT);
	h = good_h;
	h.csum_alg = 2;
	ck_assert_int_eq(open_with_header(good, len, &h, 0), -EPROTONOSUPPORT);

	/* Flags only describe the snapshot: unknown bits are reported. */
	h = good_h;
	h.flags = 0x80000001u;
	ck_assert_int_eq(open_with_header(good, len, &h, 0), 0);
	ck_assert_int_eq(uffdwp_image_open(path, &img), 0);
	ck_assert_int_eq(uffdwp_image_info(img, &info), 0);
	ck_assert_uint_eq(info.flags, 0x80000001u);
	uffdwp_image_close(img);

	/* And the untouched header still opens (the harness is sound). */
	ck_assert_int_eq(open_with_header(good, len, &good_h, 0), 0);
	free(good);
	snap_free(&s);
}
END_TEST

START_TEST(index_corruption)
{
	uint64_t n = 16, end = IMG_HEADER_SIZE + n * IMG_ENTRY_SIZE + 8;
	unsigned char *good;
	struct snap s;
	size_t len, off;
	int fd;

	good = good_image(&s, n, &len);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	/* Every byte of the index and its checksum, and of the padding. */
	for (off = IMG_HEADER_SIZE; off < ps; off++) {
		int got = open_flipped(fd, path, off);

		ck_assert_msg(got == -EBADMSG, "%s byte %zu: %d",
			      off < end ? "index" : "padding", off, got);
	}
	close(fd);
	verify(path, &s);
	free(good);
	snap_free(&s);
}
END_TEST

/* Set entry @i of the index of @buf, and recompute the index checksum. */
static void set_entry(unsigned char *buf, uint64_t n, uint64_t i, uint64_t a,
		      uint64_t csum)
{
	struct img_entry *e = (struct img_entry *)(buf + IMG_HEADER_SIZE);
	uint64_t c;

	if (a != UINT64_MAX)
		e[i].addr_le = htole64(a);
	if (csum != UINT64_MAX)
		e[i].csum_le = htole64(csum);
	c = htole64(img_xxh64(e, n * IMG_ENTRY_SIZE, 0));
	memcpy(buf + IMG_HEADER_SIZE + n * IMG_ENTRY_SIZE, &c, 8);
}

START_TEST(index_contradictions)
{
	const uint64_t n = 16;
	unsigned char *good, *buf;
	struct img_entry *e;
	struct snap s;
	size_t len;
	uint64_t a0, a1, c0, c1;

	/* Each index has a valid checksum, but says what cannot be. */
	good = good_image(&s, n, &len);
	buf = malloc(len);
	ck_assert_ptr_nonnull(buf);
	e = (struct img_entry *)(good + IMG_HEADER_SIZE);
	a0 = le64toh(e[0].addr_le);
	a1 = le64toh(e[1].addr_le);
	c0 = le64toh(e[0].csum_le);
	c1 = le64toh(e[1].csum_le);

#define EXPECT_BAD(i, a, c, what)                                        \
	do {                                                             \
		memcpy(buf, good, len);                                  \
		set_entry(buf, n, (i), (a), (c));                        \
		write_whole(path, buf, len);                             \
		ck_assert_msg(open_err(path) == -EBADMSG, "%s accepted", \
			      what);                                     \
	} while (0)

	EXPECT_BAD(1, a0, UINT64_MAX, "a page twice");
	EXPECT_BAD(0, RANGE_ADDR - ps, UINT64_MAX, "a page below the range");
	EXPECT_BAD(0, RANGE_ADDR + n * ps, UINT64_MAX, "a page past the range");
	EXPECT_BAD(0, a0 + 8, UINT64_MAX, "a misaligned page");
	EXPECT_BAD(0, UINT64_MAX - ps + 1, UINT64_MAX, "a page far away");
	EXPECT_BAD(0, UINT64_MAX, c1, "a page with another's checksum");
#undef EXPECT_BAD

	/* Two entries swapped without their data: the page checksums see
	 * it. */
	memcpy(buf, good, len);
	set_entry(buf, n, 0, a1, c1);
	set_entry(buf, n, 1, a0, c0);
	write_whole(path, buf, len);
	ck_assert_int_eq(open_err(path), -EBADMSG);
	{
		/* With their data too, it is a valid image: pages follow
		 * their addresses, not their slots. */
		uint64_t doff =
			(IMG_HEADER_SIZE + n * IMG_ENTRY_SIZE + 8 + ps - 1) &
			~((uint64_t)ps - 1);
		unsigned char *t = malloc(ps);

		ck_assert_ptr_nonnull(t);
		memcpy(t, buf + doff, ps);
		memcpy(buf + doff, buf + doff + ps, ps);
		memcpy(buf + doff + ps, t, ps);
		free(t);
		write_whole(path, buf, len);
		verify(path, &s);
	}
	free(buf);
	free(good);
	snap_free(&s);
}
END_TEST

START_TEST(data_corruption)
{
	uint64_t n = 32, doff;
	unsigned char *good, extra = 0;
	struct snap s;
	size_t len, i;
	int fd;

	good = good_image(&s, n, &len);
	doff = len - n * ps;
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	/* The first and last byte of every page, and random ones. */
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(open_flipped(fd, path, doff + i * ps),
				 -EBADMSG);
		ck_assert_int_eq(open_flipped(fd, path, doff + i * ps + ps - 1),
				 -EBADMSG);
	}
	for (i = 0; i < 200; i++) {
		size_t off = doff + rnd_below(n * ps);

		ck_assert_msg(open_flipped(fd, path, off) == -EBADMSG,
			      "data byte %zu", off);
	}
	/* One byte too many is not a longer image. */
	ck_assert_int_eq(pwrite(fd, &extra, 1, (off_t)len), 1);
	ck_assert_int_eq(open_err(path), -EBADMSG);
	ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
	close(fd);
	verify(path, &s);
	free(good);
	snap_free(&s);
}
END_TEST

START_TEST(truncation)
{
	unsigned char *good;
	struct snap s;
	size_t len, cut, tried = 0, doff;
	int fd;

	/* Every cut inside the header, index and padding and the first
	 * page, and around every page boundary and at random strides in
	 * the data: all of them are proper prefixes, so -ENODATA. */
	good = good_image(&s, 24, &len);
	doff = len - 24 * ps;
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	for (cut = len; cut-- > 0;) {
		int got;

		if (cut > doff + ps && cut % ps > 1 && cut % ps != ps - 1 &&
		    rnd_below(64))
			continue;
		ck_assert_int_eq(ftruncate(fd, (off_t)cut), 0);
		got = open_err(path);
		ck_assert_msg(got == -ENODATA, "cut at %zu of %zu: %d", cut,
			      len, got);
		tried++;
	}
	close(fd);
	ck_assert_uint_gt(tried, doff + ps);
	write_whole(path, good, len);
	verify(path, &s);
	free(good);
	snap_free(&s);
}
END_TEST

START_TEST(not_an_image)
{
	unsigned char hdr[12];
	char p[PATH_MAX + 8];
	uint32_t v = htole32(1);

	write_whole(path, "hello, world\n", 13);
	ck_assert_int_eq(open_err(path), -ENOEXEC);
	write_whole(path, "UFFDWPIX", 8);
	ck_assert_int_eq(open_err(path), -ENOEXEC);
	write_whole(path, "U", 1);
	ck_assert_int_eq(open_err(path), -ENODATA);
	write_whole(path, "", 0);
	ck_assert_int_eq(open_err(path), -ENODATA);
	memcpy(hdr, IMG_MAGIC, 8);
	memcpy(hdr + 8, &v, 4);
	write_whole(path, hdr, sizeof(hdr));
	ck_assert_int_eq(open_err(path), -ENODATA);
	v = htole32(2);
	memcpy(hdr + 8, &v, 4);
	write_whole(path, hdr, sizeof(hdr));
	ck_assert_int_eq(open_err(path), -EPROTONOSUPPORT);

	ck_assert_int_eq(open_err(dir), -EISDIR);
	snprintf(p, sizeof(p), "%s/missing", dir);
	ck_assert_int_eq(open_err(p), -ENOENT);
	/* A FIFO must be refused, not waited on. */
	snprintf(p, sizeof(p), "%s/fifo", dir);
	ck_assert_int_eq(mkfifo(p, 0600), 0);
	ck_assert_int_eq(open_err(p), -ENOEXEC);
}
END_TEST

/* --- the sink: failures leave nothing behind ------------------------- */

static const struct {
	int point;
	const char *name;
	int nth; /* for pwrite: 0 random page, 1 the index, 2 the header */
} fail_cases[] = {
	{ IMG_FAIL_ALLOCATE, "allocate", 0 },
	{ IMG_FAIL_PWRITE, "pwrite of a page", 0 },
	{ IMG_FAIL_PWRITE, "pwrite of the index", 1 },
	{ IMG_FAIL_PWRITE, "pwrite of the header", 2 },
	{ IMG_FAIL_FSYNC, "fsync", 0 },
	{ IMG_FAIL_CLOSE, "close", 0 },
	{ IMG_FAIL_RENAME, "rename", 0 },
	{ IMG_FAIL_DIR_FSYNC, "folder fsync", 0 },
};

START_TEST(injected_failure)
{
	int c = _i / 4, err = _i % 2 ? ENOSPC : EIO;
	bool old = (_i / 2) % 2, strict_engine = rnd_below(2);
	struct uffdwp_snapshot_info info;
	unsigned char *before = NULL, *after;
	size_t before_len = 0, after_len;
	struct uffdwp_sink *sink;
	struct snap prev, s;
	struct writers w;
	int ret;

	printf("%s, errno %d, %s\n", fail_cases[c].name, err,
	       old ? "over an older image" : "no older image");
	if (old) {
		snap_init(&prev, 20, 1000);
		take_new(path, 0, &prev);
		before = read_whole(path, &before_len);
		snap_free(&prev);
	}

	snap_init(&s, 50, 1000);
	info = snap_info(&s);
	uffdwp_test_hooks.file_fail_point = fail_cases[c].point;
	uffdwp_test_hooks.file_fail_errno = err;
	uffdwp_test_hooks.file_fail_nth = fail_cases[c].nth ?
						  s.pages + fail_cases[c].nth :
						  1 + rnd_below(s.pages);
	ck_assert_int_eq(uffdwp_sink_file_new(path, 0, &sink), 0);

	ret = sink->begin(sink->arg, &info);
	if (fail_cases[c].point == IMG_FAIL_ALLOCATE) {
		ck_assert_int_eq(ret, -err);
	} else {
		ck_assert_int_eq(ret, 0);
		/* One page per write call: the nth pwrite is a page's. */
		write_pages(sink, &s, 4, 1, &w);
		if (fail_cases[c].point == IMG_FAIL_PWRITE &&
		    !fail_cases[c].nth) {
			ck_assert_int_eq(w.first_err, -err);
			ck_assert_uint_ge(w.failures, 1);
			/* The engine cancels and tells end(); one that said
			 * 0 anyway must still not get an image. */
			if (strict_engine)
				ck_assert_int_eq(sink->end(sink->arg, -err), 0);
			else
				ck_assert_int_eq(sink->end(sink->arg, 0), -err);
		} else {
			ck_assert_int_eq(w.first_err, 0);
			ck_assert_int_eq(sink->end(sink->arg, 0), -err);
		}
	}

	/* Nothing new under the final name, and no temporary file. */
	if (old) {
		assert_dir_holds(NAME);
		after = read_whole(path, &after_len);
		ck_assert_uint_eq(after_len, before_len);
		ck_assert_msg(!memcmp(after, before, before_len),
			      "the older image changed");
		free(after);
		free(before);
	} else {
		assert_dir_holds(NULL);
	}

	/* The same sink works once the failure is gone. */
	memset(&uffdwp_test_hooks, 0, sizeof(uffdwp_test_hooks));
	ck_assert_int_eq(take(sink, &s, 2, 3), 0);
	assert_dir_holds(NAME);
	verify(path, &s);
	uffdwp_sink_free(sink);
	snap_free(&s);
}
END_TEST

START_TEST(no_sync_skips_fsync)
{
	struct snap s;
	struct uffdwp_sink *sink;

	/* With NO_SYNC neither fsync is made, so failing them is moot;
	 * without it, each is (see injected_failure). */
	snap_init(&s, 10, 1000);
	uffdwp_test_hooks.file_fail_point = IMG_FAIL_FSYNC;
	uffdwp_test_hooks.file_fail_errno = EIO;
	ck_assert_int_eq(
		uffdwp_sink_file_new(path, UFFDWP_FILE_SINK_NO_SYNC, &sink), 0);
	ck_assert_int_eq(take(sink, &s, 1, 4), 0);
	uffdwp_test_hooks.file_fail_point = IMG_FAIL_DIR_FSYNC;
	ck_assert_int_eq(take(sink, &s, 1, 4), 0);
	uffdwp_sink_free(sink);
	verify(path, &s);
	snap_free(&s);
}
END_TEST

START_TEST(cancelled_leaves_nothing)
{
	struct uffdwp_snapshot_info info;
	struct uffdwp_sink *sink;
	struct snap s;
	uint64_t i;

	snap_init(&s, 30, 1000);
	info = snap_info(&s);
	ck_assert_int_eq(uffdwp_sink_file_new(path, 0, &sink), 0);
	ck_assert_int_eq(sink->begin(sink->arg, &info), 0);
	for (i = 0; i < 10; i++)
		ck_assert_int_eq(
			sink->write(sink->arg,
				    (void *)(uintptr_t)(RANGE_ADDR + i * ps),
				    s.mem + i * ps, ps),
			0);
	ck_assert_int_eq(sink->end(sink->arg, -ECANCELED), 0);
	assert_dir_holds(NULL);

	/* Over an older image: it stays as it was. */
	ck_assert_int_eq(take(sink, &s, 2, 2), 0);
	ck_assert_int_eq(sink->begin(sink->arg, &info), 0);
	ck_assert_int_eq(sink->write(sink->arg, (void *)(uintptr_t)RANGE_ADDR,
				     s.mem + ps, ps),
			 0);
	ck_assert_int_eq(sink->end(sink->arg, -ECANCELED), 0);
	assert_dir_holds(NAME);
	verify(path, &s);

	/* Freed between begin and end (never, by the contract): the
	 * temporary file goes too. */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(sink->begin(sink->arg, &info), 0);
	uffdwp_sink_free(sink);
	assert_dir_holds(NULL);
	snap_free(&s);
}
END_TEST

/* begin() a 3-page snapshot of an 8-page range, run @bad, expect end(0)
 * to refuse to publish, and nothing left behind. */
static void expect_refused(struct uffdwp_sink *sink, const struct snap *s,
			   uint64_t addr, size_t len, int already)
{
	struct uffdwp_snapshot_info info = snap_info(s);
	uint64_t i;

	info.pages = 3;
	ck_assert_int_eq(sink->begin(sink->arg, &info), 0);
	for (i = 0; i < (uint64_t)already; i++)
		ck_assert_int_eq(
			sink->write(sink->arg,
				    (void *)(uintptr_t)(RANGE_ADDR + i * ps),
				    s->mem + i * ps, ps),
			0);
	ck_assert_msg(sink->write(sink->arg, (void *)(uintptr_t)addr, s->mem,
				  len) == -EINVAL,
		      "write of %#llx+%zu accepted", (unsigned long long)addr,
		      len);
	ck_assert_int_eq(sink->end(sink->arg, 0), -EINVAL);
	assert_dir_holds(NULL);
}

START_TEST(contract_violations)
{
	struct uffdwp_snapshot_info info;
	struct uffdwp_sink *sink;
	struct snap s;
	uint64_t end;

	snap_init(&s, 8, 1000);
	end = RANGE_ADDR + 8 * ps;
	ck_assert_int_eq(uffdwp_sink_file_new(path, 0, &sink), 0);

	/* Before any begin(). */
	ck_assert_int_eq(sink->write(sink->arg, (void *)(uintptr_t)RANGE_ADDR,
				     s.mem, ps),
			 -EINVAL);
	ck_assert_int_eq(sink->end(sink->arg, 0), -EINVAL);
	ck_assert_int_eq(sink->end(sink->arg, -ECANCELED), 0);

	expect_refused(sink, &s, RANGE_ADDR, ps, 1); /* a page twice */
	expect_refused(sink, &s, RANGE_ADDR + ps, 2 * ps, 2); /* overlap */
	expect_refused(sink, &s, RANGE_ADDR - ps, ps, 0);
	expect_refused(sink, &s, end, ps, 0);
	expect_refused(sink, &s, end - ps, 2 * ps, 0);
	expect_refused(sink, &s, RANGE_ADDR + 8, ps, 0);
	expect_refused(sink, &s, RANGE_ADDR, ps + 1, 0);
	expect_refused(sink, &s, RANGE_ADDR, 0, 0);
	expect_refused(sink, &s, RANGE_ADDR + 3 * ps, ps, 3); /* a 4th page */
	expect_refused(sink, &s, RANGE_ADDR + 4 * ps, 4 * ps, 0);

	/* Fewer pages than announced: no image. */
	info = snap_info(&s);
	info.pages = 3;
	ck_assert_int_eq(sink->begin(sink->arg, &info), 0);
	ck_assert_int_eq(sink->write(sink->arg, (void *)(uintptr_t)(end - ps),
				     s.mem, ps),
			 0);
	ck_assert_int_eq(sink->begin(sink->arg, &info), -EBUSY);
	ck_assert_int_eq(sink->end(sink->arg, 0), -EIO);
	assert_dir_holds(NULL);

	/* A snapshot the format cannot hold never starts. */
#define EXPECT_BEGIN(field, value, want)                                 \
	do {                                                             \
		info = snap_info(&s);                                    \
		info.field = (value);                                    \
		ck_assert_int_eq(sink->begin(sink->arg, &info), (want)); \
		assert_dir_holds(NULL);                                  \
	} while (0)
	EXPECT_BEGIN(sz, 0, -EINVAL);
	EXPECT_BEGIN(sz, offsetof(struct uffdwp_snapshot_info, pages), -EINVAL);
	EXPECT_BEGIN(page_size, 0, -EINVAL);
	EXPECT_BEGIN(page_size, 1000, -EINVAL);
	EXPECT_BEGIN(len, 0, -EINVAL);
	EXPECT_BEGIN(len, 8 * ps + 1, -EINVAL);
	EXPECT_BEGIN(addr, (void *)(uintptr_t)(RANGE_ADDR + 8), -EINVAL);
	EXPECT_BEGIN(pages, 9, -EINVAL);
#undef EXPECT_BEGIN
	ck_assert_int_eq(sink->begin(sink->arg, NULL), -EINVAL);

	/* And after all that, the sink still works. */
	ck_assert_int_eq(take(sink, &s, 2, 3), 0);
	verify(path, &s);
	uffdwp_sink_free(sink);
	snap_free(&s);
}
END_TEST

START_TEST(sink_places)
{
	struct uffdwp_snapshot_info info;
	struct uffdwp_sink *sink;
	char p[PATH_MAX + 16];
	struct snap s;

	snap_init(&s, 4, 1000);
	info = snap_info(&s);

	/* A folder that does not exist: begin() says so. */
	snprintf(p, sizeof(p), "%s/no/" NAME, dir);
	ck_assert_int_eq(uffdwp_sink_file_new(p, 0, &sink), 0);
	ck_assert_int_eq(sink->begin(sink->arg, &info), -ENOENT);
	uffdwp_sink_free(sink);

	/* A folder under the final name is not replaced. */
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_eq(uffdwp_sink_file_new(path, 0, &sink), 0);
	ck_assert_int_eq(take(sink, &s, 1, 1), -EISDIR);
	uffdwp_sink_free(sink);
	assert_dir_holds(NAME);
	ck_assert_int_eq(rmdir(path), 0);
	snap_free(&s);
}
END_TEST

/* --- arguments ------------------------------------------------------- */

START_TEST(bad_arguments)
{
	struct uffdwp_sink *sink = (struct uffdwp_sink *)&sink;
	struct uffdwp_image *img = (struct uffdwp_image *)&img;
	char longname[NAME_MAX + 2];
	struct uffdwp_image_info info;
	struct {
		struct uffdwp_image_info i;
		uint64_t future;
	} newer;
	unsigned char buf[64];
	const void *data;
	struct snap s;
	uint64_t a;

	ck_assert_int_eq(uffdwp_sink_file_new(NULL, 0, &sink), -EINVAL);
	ck_assert_int_eq(uffdwp_sink_file_new("", 0, &sink), -EINVAL);
	ck_assert_int_eq(uffdwp_sink_file_new(path, 0, NULL), -EINVAL);
	ck_assert_int_eq(uffdwp_sink_file_new(path, 2, &sink), -EINVAL);
	ck_assert_int_eq(uffdwp_sink_file_new("a/", 0, &sink), -EINVAL);
	ck_assert_int_eq(uffdwp_sink_file_new("a/..", 0, &sink), -EINVAL);
	ck_assert_int_eq(uffdwp_sink_file_new(".", 0, &sink), -EINVAL);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert_int_eq(uffdwp_sink_file_new(longname, 0, &sink),
			 -ENAMETOOLONG);
	ck_assert_ptr_eq(sink, (struct uffdwp_sink *)&sink);
	ck_assert_ptr_null(uffdwp_sink_free(NULL));

	ck_assert_int_eq(uffdwp_image_open(NULL, &img), -EINVAL);
	ck_assert_int_eq(uffdwp_image_open(path, NULL), -EINVAL);
	ck_assert_ptr_eq(img, (struct uffdwp_image *)&img);
	ck_assert_ptr_null(uffdwp_image_close(NULL));

	snap_init(&s, 8, 500);
	take_new(path, UFFDWP_FILE_SINK_NO_SYNC, &s);
	ck_assert_int_eq(uffdwp_image_open(path, &img), 0);

	memset(&info, 0x5a, sizeof(info));
	info.sz = 0;
	ck_assert_int_eq(uffdwp_image_info(img, &info), -EINVAL);
	ck_assert_int_eq(uffdwp_image_info(img, NULL), -EINVAL);
	info.sz = sizeof(info);
	ck_assert_int_eq(uffdwp_image_info(NULL, &info), -EINVAL);
	ck_assert_uint_eq(info.version, 0x5a5a5a5a);
	/* An older caller's shorter structure: filled up to its size. */
	info.sz = offsetof(struct uffdwp_image_info, pages);
	ck_assert_int_eq(uffdwp_image_info(img, &info), 0);
	ck_assert_uint_eq(info.len, s.len);
	ck_assert_uint_eq(info.pages, 0x5a5a5a5a5a5a5a5aULL);
	/* A newer caller's longer one: its tail must be zero. */
	memset(&newer, 0, sizeof(newer));
	newer.i.sz = sizeof(newer);
	newer.future = 1;
	ck_assert_int_eq(uffdwp_image_info(img, &newer.i), -E2BIG);
	newer.future = 0;
	ck_assert_int_eq(uffdwp_image_info(img, &newer.i), 0);
	ck_assert_uint_eq(newer.i.pages, s.pages);

	ck_assert_int_eq(uffdwp_image_page(NULL, 0, &a, &data), -EINVAL);
	ck_assert_int_eq(uffdwp_image_page(img, 0, NULL, &data), -EINVAL);
	ck_assert_int_eq(uffdwp_image_page(img, 0, &a, NULL), -EINVAL);
	ck_assert_int_eq(uffdwp_image_page(img, s.pages, &a, &data), -ERANGE);
	ck_assert_int_eq(uffdwp_image_page(img, UINT64_MAX, &a, &data),
			 -ERANGE);

	ck_assert_int_eq(uffdwp_image_apply(NULL, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(uffdwp_image_apply(img, NULL, s.len), -EINVAL);
	ck_assert_int_eq(uffdwp_image_apply(img, buf, s.len - 1), -ENOSPC);
	ck_assert_int_eq(uffdwp_image_apply(img, buf, 0), -ENOSPC);
	uffdwp_image_close(img);
	snap_free(&s);
}
END_TEST

static Suite *image_suite(void)
{
	Suite *s = suite_create("image");
	TCase *f = tcase_create("format");
	TCase *r = tcase_create("reader");
	TCase *w = tcase_create("sink");

	tcase_add_checked_fixture(f, setup, teardown);
	tcase_add_test(f, xxh64_reference_vectors);
	tcase_add_test(f, round_trip_full);
	tcase_add_test(f, round_trip_incremental);
	tcase_add_test(f, round_trip_empty_incremental);
	tcase_add_test(f, round_trip_large);
	tcase_add_test(f, sink_reused_and_replaces);
	tcase_add_test(f, relative_and_long_names);
	suite_add_tcase(s, f);

	tcase_add_checked_fixture(r, setup, teardown);
	tcase_add_test(r, header_corruption);
	tcase_add_test(r, header_contradictions);
	tcase_add_test(r, index_corruption);
	tcase_add_test(r, index_contradictions);
	tcase_add_test(r, data_corruption);
	tcase_add_test(r, truncation);
	tcase_add_test(r, not_an_image);
	tcase_add_test(r, bad_arguments);
	suite_add_tcase(s, r);

	tcase_add_checked_fixture(w, setup, teardown);
	tcase_add_loop_test(w, injected_failure, 0,
			    (int)(4 * ARRAY_SIZE(fail_cases)));
	tcase_add_test(w, no_sync_skips_fsync);
	tcase_add_test(w, cancelled_leaves_nothing);
	tcase_add_test(w, contract_violations);
	tcase_add_test(w, sink_places);
	suite_add_tcase(s, w);
	return s;
}

int main(void)
{
	struct test_exclusions ex = { 0 };
	const char *tmp = getenv("TMPDIR");
	int ret;

	test_check_sanitizer_setup();
	snprintf(root, sizeof(root), "%s/uffdwp-image-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root)) {
		perror(root);
		return EXIT_FAILURE;
	}
	ret = test_run(image_suite(), &ex);
	remove_tree(root);
	return ret;
}
