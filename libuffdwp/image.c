/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The image reader, and the parts of the format (image.h) its writer
 * shares: the checksum, the header codec and the layout rules.
 *
 * An image is verified whole at open, before the caller sees any of it:
 * a snapshot is only worth restoring if every page is the one written, so
 * a single bad byte anywhere fails the open rather than a later read.
 */
#include <endian.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "image.h"
#include "internal.h"

/* --- XXH64 ----------------------------------------------------------- */

/*
 * xxHash's 64-bit variant, written from its specification. It is fast
 * enough to check pages at memory bandwidth on one core, and its 64 bits
 * make an undetected corruption of a page vanishingly unlikely; it is not
 * meant to resist someone forging an image on purpose.
 */
#define XXH_P1 0x9E3779B185EBCA87ULL
#define XXH_P2 0xC2B2AE3D27D4EB4FULL
#define XXH_P3 0x165667B19E3779F9ULL
#define XXH_P4 0x85EBCA77C2B2AE63ULL
#define XXH_P5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t rd64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline uint32_t rd32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline void wr64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static inline void wr32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static inline uint64_t xxh_round(uint64_t acc, uint64_t input)
{
	acc += input * XXH_P2;
	acc = rotl64(acc, 31);
	return acc * XXH_P1;
}

static inline uint64_t xxh_merge(uint64_t acc, uint64_t val)
{
	acc ^= xxh_round(0, val);
	return acc * XXH_P1 + XXH_P4;
}

uint64_t img_xxh64(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data, *end = p + len;
	uint64_t h;

	if (len >= 32) {
		const unsigned char *limit = end - 32;
		uint64_t v1 = seed + XXH_P1 + XXH_P2;
		uint64_t v2 = seed + XXH_P2;
		uint64_t v3 = seed;
		uint64_t v4 = seed - XXH_P1;

		do {
			v1 = xxh_round(v1, rd64(p));
			v2 = xxh_round(v2, rd64(p + 8));
			v3 = xxh_round(v3, rd64(p + 16));
			v4 = xxh_round(v4, rd64(p + 24));
			p += 32;
		} while (p <= limit);
		h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) +
		    rotl64(v4, 18);
		h = xxh_merge(h, v1);
		h = xxh_merge(h, v2);
		h = xxh_merge(h, v3);
		h = xxh_merge(h, v4);
	} else {
		h = seed + XXH_P5;
	}
	h += (uint64_t)len;

	for (; end - p >= 8; p += 8) {
		h ^= xxh_round(0, rd64(p));
		h = rotl64(h, 27) * XXH_P1 + XXH_P4;
	}
	if (end - p >= 4) {
		h ^= (uint64_t)rd32(p) * XXH_P1;
		h = rotl64(h, 23) * XXH_P2 + XXH_P3;
		p += 4;
	}
	for (; p < end; p++) {
		h ^= *p * XXH_P5;
		h = rotl64(h, 11) * XXH_P1;
	}

	h ^= h >> 33;
	h *= XXH_P2;
	h ^= h >> 29;
	h *= XXH_P3;
	h ^= h >> 32;
	return h;
}

/* --- header and layout ----------------------------------------------- */

void img_header_encode(const struct img_header *h,
		       unsigned char buf[IMG_HEADER_SIZE])
{
	memset(buf, 0, IMG_HEADER_SIZE);
	memcpy(buf, IMG_MAGIC, IMG_MAGIC_LEN);
	wr32(buf + IMG_OFF_VERSION, h->version);
	wr32(buf + IMG_OFF_HEADER_SIZE, h->header_size);
	wr32(buf + IMG_OFF_FLAGS, h->flags);
	wr32(buf + IMG_OFF_CSUM_ALG, h->csum_alg);
	wr64(buf + IMG_OFF_ADDR, h->addr);
	wr64(buf + IMG_OFF_LEN, h->len);
	wr64(buf + IMG_OFF_PAGE_SIZE, h->page_size);
	wr64(buf + IMG_OFF_PAGE_COUNT, h->page_count);
	wr64(buf + IMG_OFF_INSTANT, h->instant_realtime_ns);
	wr64(buf + IMG_OFF_HEADER_CSUM, img_xxh64(buf, IMG_OFF_HEADER_CSUM, 0));
}

void img_header_decode(const unsigned char buf[IMG_HEADER_SIZE],
		       struct img_header *h)
{
	h->version = rd32(buf + IMG_OFF_VERSION);
	h->header_size = rd32(buf + IMG_OFF_HEADER_SIZE);
	h->flags = rd32(buf + IMG_OFF_FLAGS);
	h->csum_alg = rd32(buf + IMG_OFF_CSUM_ALG);
	h->addr = rd64(buf + IMG_OFF_ADDR);
	h->len = rd64(buf + IMG_OFF_LEN);
	h->page_size = rd64(buf + IMG_OFF_PAGE_SIZE);
	h->page_count = rd64(buf + IMG_OFF_PAGE_COUNT);
	h->instant_realtime_ns = rd64(buf + IMG_OFF_INSTANT);
}

int img_layout(const struct img_header *h, struct img_layout *lay)
{
	uint64_t ps = h->page_size, data, size;

	if (h->header_size != IMG_HEADER_SIZE)
		return -EBADMSG;
	if (ps < IMG_MIN_PAGE_SIZE || ps > IMG_MAX_PAGE_SIZE || (ps & (ps - 1)))
		return -EBADMSG;
	if (!h->len || h->len % ps || h->addr % ps ||
	    h->addr > UINT64_MAX - h->len)
		return -EBADMSG;
	if (h->page_count > h->len / ps)
		return -EBADMSG;

	/* page_count <= 2^52 here, so the index arithmetic cannot wrap. */
	lay->index_off = IMG_HEADER_SIZE;
	lay->index_csum_off = lay->index_off + h->page_count * IMG_ENTRY_SIZE;
	lay->data_off = (lay->index_csum_off + 8 + ps - 1) & ~(ps - 1);
	data = h->page_count * ps;
	if (__builtin_add_overflow(lay->data_off, data, &size) ||
	    size > (uint64_t)INT64_MAX)
		return -EBADMSG;
	lay->file_size = size;
	return 0;
}

/* --- the reader ------------------------------------------------------ */

struct img_slot {
	uint64_t addr;
	uint64_t slot;
};

struct uffdwp_image {
	const unsigned char *map;
	size_t map_len;
	uint64_t data_off;
	struct uffdwp_image_info info;
	/* Every page, sorted by address: what uffdwp_image_page() walks. */
	struct img_slot *by_addr;
};

static int slot_cmp(const void *a, const void *b)
{
	const struct img_slot *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Read up to @len bytes at @off; fewer only at the end of the file. */
static ssize_t pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  off + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return neg_errno();
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* Rules 1 to 6 of the format, on the first @n bytes of a file. */
static int check_header(const unsigned char *buf, size_t n,
			struct img_header *h, struct img_layout *lay)
{
	size_t i;

	if (memcmp(buf, IMG_MAGIC, n < IMG_MAGIC_LEN ? n : IMG_MAGIC_LEN))
		return -ENOEXEC;
	if (n >= IMG_OFF_VERSION + 4 && rd32(buf + IMG_OFF_VERSION) != 1)
		return -EPROTONOSUPPORT;
	if (n < IMG_HEADER_SIZE)
		return -ENODATA;
	img_header_decode(buf, h);
	if (h->csum_alg != IMG_CSUM_XXH64)
		return -EPROTONOSUPPORT;
	if (img_xxh64(buf, IMG_OFF_HEADER_CSUM, 0) !=
	    rd64(buf + IMG_OFF_HEADER_CSUM))
		return -EBADMSG;
	for (i = IMG_OFF_RESERVED; i < IMG_OFF_HEADER_CSUM; i++)
		if (buf[i])
			return -EBADMSG;
	return img_layout(h, lay);
}

/* Rule 8: the index, the padding and every page, then the address order. */
static int check_body(struct uffdwp_image *img, const struct img_header *h,
		      const struct img_layout *lay)
{
	const unsigned char *map = img->map;
	const struct img_entry *idx;
	uint64_t i, n = h->page_count, ps = h->page_size;

	/* The index lies at offset 128 of a page-aligned mapping: aligned. */
	idx = (const struct img_entry *)(map + lay->index_off);
	if (img_xxh64(idx, n * IMG_ENTRY_SIZE, 0) !=
	    rd64(map + lay->index_csum_off))
		return -EBADMSG;
	for (i = lay->index_csum_off + 8; i < lay->data_off; i++)
		if (map[i])
			return -EBADMSG;

	for (i = 0; i < n; i++) {
		uint64_t a = le64toh(idx[i].addr_le);
		const unsigned char *page = map + lay->data_off + i * ps;

		if (a % ps || a < h->addr || a - h->addr >= h->len)
			return -EBADMSG;
		if (img_xxh64(page, ps, 0) != le64toh(idx[i].csum_le))
			return -EBADMSG;
		img->by_addr[i].addr = a;
		img->by_addr[i].slot = i;
	}
	if (n > 1)
		qsort(img->by_addr, n, sizeof(*img->by_addr), slot_cmp);
	for (i = 1; i < n; i++)
		if (img->by_addr[i].addr == img->by_addr[i - 1].addr)
			return -EBADMSG;
	return 0;
}

/*
 * The file must not change while it is open: pages are handed out from a
 * private read-only mapping of it, verified once. Images are written under
 * a temporary name and renamed into place, so a file sink replacing the
 * image never modifies an open one.
 */
UFFDWP_EXPORT int uffdwp_image_open(const char *path, struct uffdwp_image **out)
{
	unsigned char buf[IMG_HEADER_SIZE];
	struct uffdwp_image *img = NULL;
	struct img_layout lay;
	struct img_header h;
	struct stat st;
	ssize_t n;
	void *map;
	int fd, ret;

	if (!path || !out)
		return -EINVAL;
	/* O_NONBLOCK: a FIFO put in an image's place must not hang us. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return neg_errno();
	if (fstat(fd, &st)) {
		ret = neg_errno();
		goto out_close;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = -EISDIR;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -ENOEXEC;
		goto out_close;
	}

	/* The header is checked from a copy, before anything is mapped. */
	n = pread_full(fd, buf, sizeof(buf), 0);
	if (n < 0) {
		ret = (int)n;
		goto out_close;
	}
	ret = check_header(buf, (size_t)n, &h, &lay);
	if (ret)
		goto out_close;
	if ((uint64_t)st.st_size < lay.file_size) {
		ret = -ENODATA;
		goto out_close;
	}
	if ((uint64_t)st.st_size > lay.file_size) {
		ret = -EBADMSG;
		goto out_close;
	}
	if (lay.file_size > SIZE_MAX) {
		ret = -EFBIG;
		goto out_close;
	}

	img = calloc(1, sizeof(*img));
	if (!img) {
		ret = -ENOMEM;
		goto out_close;
	}
	if (h.page_count) {
		img->by_addr = malloc(h.page_count * sizeof(*img->by_addr));
		if (!img->by_addr) {
			ret = -ENOMEM;
			goto out_free;
		}
	}
	map = mmap(NULL, (size_t)lay.file_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		ret = neg_errno();
		goto out_free;
	}
	img->map = map;
	img->map_len = (size_t)lay.file_size;
	img->data_off = lay.data_off;
	ret = check_body(img, &h, &lay);
	if (ret)
		goto out_unmap;

	img->info.sz = sizeof(img->info);
	img->info.version = h.version;
	img->info.flags = h.flags;
	img->info.addr = h.addr;
	img->info.len = h.len;
	img->info.page_size = h.page_size;
	img->info.pages = h.page_count;
	img->info.instant_realtime_ns = h.instant_realtime_ns;
	close(fd);
	*out = img;
	return 0;

out_unmap:
	munmap(map, img->map_len);
out_free:
	free(img->by_addr);
	free(img);
out_close:
	close(fd);
	return ret;
}

UFFDWP_EXPORT int uffdwp_image_info(const struct uffdwp_image *img,
				    struct uffdwp_image_info *info)
{
	int ret;

	if (!img)
		return -EINVAL;
	ret = sz_check(info, sizeof(*info));
	if (ret)
		return ret;
	sz_copy_out(info, &img->info, sizeof(img->info));
	return 0;
}

UFFDWP_EXPORT int uffdwp_image_page(const struct uffdwp_image *img,
				    uint64_t idx, uint64_t *addr,
				    const void **data)
{
	const struct img_slot *s;

	if (!img || !addr || !data)
		return -EINVAL;
	if (idx >= img->info.pages)
		return -ERANGE;
	s = &img->by_addr[idx];
	*addr = s->addr;
	*data = img->map + img->data_off + s->slot * img->info.page_size;
	return 0;
}

UFFDWP_EXPORT long uffdwp_image_apply(const struct uffdwp_image *img, void *buf,
				      size_t len)
{
	uint64_t i, ps;

	if (!img || !buf)
		return -EINVAL;
	if (len < img->info.len)
		return -ENOSPC;
	ps = img->info.page_size;
	for (i = 0; i < img->info.pages; i++) {
		const struct img_slot *s = &img->by_addr[i];

		memcpy((char *)buf + (s->addr - img->info.addr),
		       img->map + img->data_off + s->slot * ps, ps);
	}
	return (long)img->info.pages;
}

UFFDWP_EXPORT struct uffdwp_image *uffdwp_image_close(struct uffdwp_image *img)
{
	if (!img)
		return NULL;
	munmap((void *)img->map, img->map_len);
	free(img->by_addr);
	free(img);
	return NULL;
}
