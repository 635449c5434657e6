/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The image file format, shared by its writer (sink-file.c) and its reader
 * (image.c). Nothing here is exported.
 *
 * Image format, version 1
 * =======================
 *
 * An image holds the pages one snapshot delivered, and checks itself: a
 * reader tells a complete image from a truncated, corrupted or foreign file
 * without trusting a byte it has not verified. Every integer is unsigned and
 * little-endian; offsets count from the start of the file. "XXH64(bytes)"
 * is the 64-bit xxHash of those bytes with seed 0 (checksum algorithm 1).
 *
 * Header, 128 bytes at offset 0:
 *
 *   offset size  field
 *        0    8  magic: the ASCII bytes "UFFDWPIM"
 *        8    4  version: 1
 *       12    4  header_size: 128
 *       16    4  flags: the snapshot's flags (bit 0: incremental); a reader
 *                reports them and ignores bits it does not know
 *       20    4  checksum algorithm: 1 (XXH64, seed 0)
 *       24    8  addr: start of the snapshot's range, in the process it
 *                came from
 *       32    8  len: length of the range in bytes
 *       40    8  page_size
 *       48    8  page_count: pages in the image
 *       56    8  instant_realtime_ns: CLOCK_REALTIME at the snapshot's
 *                instant, in nanoseconds
 *       64   56  reserved: zero
 *      120    8  header checksum: XXH64 of bytes 0 to 119
 *
 * Index, at offset header_size: page_count entries of 16 bytes, in slot
 * order (the order the pages reached the writer, not address order):
 *
 *   offset size  field
 *        0    8  page address, within [addr, addr + len)
 *        8    8  page checksum: XXH64 of the page's page_size data bytes
 *
 * then the index checksum, 8 bytes: XXH64 of the page_count * 16 entry
 * bytes (XXH64 of nothing when page_count is 0).
 *
 * Padding: zero bytes up to data_off, the first multiple of page_size at
 * or after the end of the index checksum:
 *
 *   data_off = round_up(128 + 16 * page_count + 8, page_size)
 *
 * Data: the page of slot i, page_size bytes, at data_off + i * page_size.
 * The file ends right after the last page: its size is exactly
 * data_off + page_count * page_size (data_off when page_count is 0).
 *
 * An image is valid when, checked in this order (a reader's error in
 * brackets):
 *   1. its first min(8, file size) bytes match the magic [-ENOEXEC];
 *   2. when the version field is present, it is 1 [-EPROTONOSUPPORT];
 *   3. the file holds the whole header [-ENODATA];
 *   4. the checksum algorithm is 1 [-EPROTONOSUPPORT];
 *   5. the header checksum matches [-EBADMSG];
 *   6. the header is self-consistent [-EBADMSG]: header_size is 128, the
 *      reserved bytes are zero, page_size is a power of two from 4 KiB to
 *      1 GiB, len is a non-zero multiple of page_size, addr is a multiple
 *      of page_size, addr + len does not overflow 64 bits, page_count is
 *      at most len / page_size, and the file size this implies is below
 *      2^63;
 *   7. the file size is the one the header implies: shorter is
 *      [-ENODATA], longer is [-EBADMSG];
 *   8. the index checksum matches, the padding is zero, every page
 *      address is a multiple of page_size within [addr, addr + len), no
 *      address appears twice, and every page checksum matches [-EBADMSG].
 * So every byte of a valid image is checked, and every proper prefix of a
 * valid image (a file cut short) fails with -ENODATA.
 *
 * An incremental image holds the pages written since the previous
 * snapshot; applied in order over the image before it, it gives the range
 * at its own instant. Readers must not accept a version they do not know:
 * a future format that old readers could misread gets a new version.
 */
#ifndef UFFDWP_IMAGE_H
#define UFFDWP_IMAGE_H

#include <stdint.h>
#include <stddef.h>

#define IMG_MAGIC "UFFDWPIM"
#define IMG_MAGIC_LEN 8
#define IMG_VERSION 1
#define IMG_HEADER_SIZE 128
#define IMG_CSUM_XXH64 1
#define IMG_ENTRY_SIZE 16
#define IMG_MIN_PAGE_SIZE 4096ULL
#define IMG_MAX_PAGE_SIZE (1ULL << 30)

/* Byte offsets of the header fields (see above). */
#define IMG_OFF_VERSION 8
#define IMG_OFF_HEADER_SIZE 12
#define IMG_OFF_FLAGS 16
#define IMG_OFF_CSUM_ALG 20
#define IMG_OFF_ADDR 24
#define IMG_OFF_LEN 32
#define IMG_OFF_PAGE_SIZE 40
#define IMG_OFF_PAGE_COUNT 48
#define IMG_OFF_INSTANT 56
#define IMG_OFF_RESERVED 64
#define IMG_OFF_HEADER_CSUM 120

/* The header's fields, in host byte order. */
struct img_header {
	uint32_t version;
	uint32_t header_size;
	uint32_t flags;
	uint32_t csum_alg;
	uint64_t addr;
	uint64_t len;
	uint64_t page_size;
	uint64_t page_count;
	uint64_t instant_realtime_ns;
};

/* An index entry exactly as it is on disk (little-endian), so the writer
 * builds the index in place and writes and checksums it as it is. */
struct img_entry {
	uint64_t addr_le;
	uint64_t csum_le;
};

_Static_assert(sizeof(struct img_entry) == IMG_ENTRY_SIZE,
	       "index entries are 16 bytes on disk");

/* Where the parts of an image lie, from its header. */
struct img_layout {
	uint64_t index_off;
	uint64_t index_csum_off;
	uint64_t data_off;
	uint64_t file_size;
};

/* XXH64 of @len bytes at @p with @seed (the format uses seed 0). */
uint64_t img_xxh64(const void *p, size_t len, uint64_t seed);

/*
 * Encode @h into the 128 on-disk header bytes at @buf, reserved bytes
 * zeroed and the header checksum computed.
 */
void img_header_encode(const struct img_header *h,
		       unsigned char buf[IMG_HEADER_SIZE]);

/* Decode the fields of the 128 header bytes at @buf (nothing checked). */
void img_header_decode(const unsigned char buf[IMG_HEADER_SIZE],
		       struct img_header *h);

/*
 * Rule 6 of the format on the geometry of @h (header_size included), and
 * where the parts lie: 0, or -EBADMSG. The writer calls it too, so it can
 * never produce an image its reader rejects.
 */
int img_layout(const struct img_header *h, struct img_layout *lay);

/*
 * File sink failure injection, for tests: uffdwp_test_hooks.file_fail_point
 * names the call that fails with -file_fail_errno as if the kernel had
 * returned it (the call itself is skipped, except close, which still
 * closes). 0 means none.
 */
enum img_fail_point {
	IMG_FAIL_NONE = 0,
	/* Sizing the temporary file in begin() (fallocate, or a tmpfs's free
	 * space check and ftruncate). */
	IMG_FAIL_ALLOCATE = 1,
	/* The file_fail_nth-th pwrite (from 1) since begin(): data pwrites
	 * in the order they are issued, then the index, then the header. */
	IMG_FAIL_PWRITE = 2,
	/* fsync of the image at end(0) (not made with NO_SYNC). */
	IMG_FAIL_FSYNC = 3,
	/* close of the image at end(0). */
	IMG_FAIL_CLOSE = 4,
	/* Moving the image to its final name. */
	IMG_FAIL_RENAME = 5,
	/* fsync of the folder after the move (not made with NO_SYNC). */
	IMG_FAIL_DIR_FSYNC = 6,
};

#endif /* UFFDWP_IMAGE_H */
