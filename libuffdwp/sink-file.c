/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The file sink: writes a snapshot as an image file (format in image.h).
 *
 * Copier threads deliver pages in any order and at once, so each write()
 * takes consecutive slots with one atomic add, writes the pages to their
 * slots with one pwrite() and fills their index entries; nothing is
 * serialised between writers. The header and the index go last, at end(),
 * once every page is known.
 *
 * Durability: the image is built under a temporary name in the final
 * name's folder, fsync'ed, moved over the final name and the folder is
 * fsync'ed. Whatever fails, nothing but a complete image is ever found
 * under the final name, and a file already there is left as it was (but
 * for one case: on a file system that cannot swap two names, a failed
 * folder fsync cannot take the rename back, and the new, complete image
 * stays).
 */
#include <endian.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "image.h"
#include "sink-file.h"
#include "internal.h"
#include "testhooks.h"

#define LONG_BITS (8 * sizeof(unsigned long))

/* The temporary name: "." + the final name (cut to fit) + ".XXXXXX". */
#define TMP_SUFFIX ".XXXXXX"
#define TMP_BASE_MAX (NAME_MAX - 1 - (sizeof(TMP_SUFFIX) - 1))

struct filesink {
	char *dir; /* the final name's folder */
	char *base; /* the final name within it */
	unsigned int flags;

	/* From begin() to end(): one snapshot. */
	bool active;
	int dirfd;
	int fd; /* the temporary file, -1 once closed */
	char tmp[NAME_MAX + 1]; /* its name in dirfd, "" once gone */
	struct img_header hdr;
	struct img_layout lay;
	/* page_count entries in slot order, then 8 bytes for the index
	 * checksum: written to the file as they are. */
	struct img_entry *index;
	/* One bit per page of the range: the engine promises each page once,
	 * and an image with a page twice would not open, so a second one is
	 * refused when it arrives rather than found at the end. */
	unsigned long *seen;
	uint64_t next_slot;
	/* pwrites issued, counted only while a test injects a failure. */
	uint64_t pwrites;
	/* The first write() error: end(0) must not publish after one. */
	int error;
};

/* The error a test asked the call at @point to fail with, or 0. */
static int injected(int point)
{
	if (likely(uffdwp_test_hooks.file_fail_point != point))
		return 0;
	return uffdwp_test_hooks.file_fail_errno > 0 ?
		       -uffdwp_test_hooks.file_fail_errno :
		       -EIO;
}

static int fs_pwrite(struct filesink *fs, const void *buf, size_t len,
		     uint64_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t n;

		if (unlikely(uffdwp_test_hooks.file_fail_point ==
			     IMG_FAIL_PWRITE) &&
		    __atomic_add_fetch(&fs->pwrites, 1, __ATOMIC_RELAXED) ==
			    uffdwp_test_hooks.file_fail_nth)
			return injected(IMG_FAIL_PWRITE);
		n = pwrite(fs->fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return neg_errno();
		/* No progress on a regular file: nothing sensible to retry. */
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Forget the snapshot: the temporary file goes, the final name is left. */
static void fs_discard(struct filesink *fs)
{
	if (fs->fd >= 0)
		close(fs->fd);
	fs->fd = -1;
	if (fs->tmp[0])
		unlinkat(fs->dirfd, fs->tmp, 0);
	fs->tmp[0] = '\0';
	if (fs->dirfd >= 0)
		close(fs->dirfd);
	fs->dirfd = -1;
	free(fs->index);
	fs->index = NULL;
	free(fs->seen);
	fs->seen = NULL;
	fs->active = false;
}

/*
 * Room for the whole image on a tmpfs: fallocate() there allocates and
 * clears every page of the file at once (~200 ms per GiB on the test VM),
 * on the start path while writers wait for the sink, only for pwrite() to
 * fill the same pages again. The free space is checked instead and the
 * file sized sparse: a tmpfs filled meanwhile fails a pwrite(), which
 * fails the snapshot as any write error does.
 */
static int fs_room_on_tmpfs(struct filesink *fs, const struct statfs *sfs,
			    off_t size)
{
	/* f_blocks == 0: a tmpfs without a size limit. */
	if (sfs->f_blocks &&
	    (uint64_t)sfs->f_bavail * (uint64_t)sfs->f_bsize < (uint64_t)size)
		return -ENOSPC;
	return ftruncate(fs->fd, size) ? neg_errno() : 0;
}

/* Size the file up front, so a full disk fails the start, not a write. */
static int fs_allocate(struct filesink *fs)
{
	off_t size = (off_t)fs->lay.file_size;
	struct statfs sfs;
	int ret = injected(IMG_FAIL_ALLOCATE);

	if (ret)
		return ret;
	if (!fstatfs(fs->fd, &sfs) && sfs.f_type == TMPFS_MAGIC)
		return fs_room_on_tmpfs(fs, &sfs, size);
	do {
		ret = fallocate(fs->fd, 0, 0, size);
	} while (ret && errno == EINTR);
	if (!ret)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return neg_errno();
	/* A file system without fallocate: the size alone, sparse. */
	return ftruncate(fs->fd, size) ? neg_errno() : 0;
}

static int fs_begin(void *arg, const struct uffdwp_snapshot_info *info)
{
	struct filesink *fs = arg;
	struct uffdwp_snapshot_info in = { 0 };
	char path[PATH_MAX];
	uint64_t range_pages;
	int ret;

	if (!info || info->sz < offsetof(struct uffdwp_snapshot_info, flags))
		return -EINVAL;
	if (fs->active)
		return -EBUSY;
	sz_copy_in(&in, info, sizeof(in));

	fs->hdr = (struct img_header){
		.version = IMG_VERSION,
		.header_size = IMG_HEADER_SIZE,
		.flags = in.flags,
		.csum_alg = IMG_CSUM_XXH64,
		.addr = (uintptr_t)in.addr,
		.len = in.len,
		.page_size = in.page_size,
		.page_count = in.pages,
		.instant_realtime_ns = in.instant_realtime_ns,
	};
	/* Never start an image the reader would reject. */
	if (img_layout(&fs->hdr, &fs->lay))
		return -EINVAL;
	range_pages = in.len / in.page_size;

	fs->fd = -1;
	fs->tmp[0] = '\0';
	fs->next_slot = 0;
	fs->pwrites = 0;
	fs->error = 0;
	fs->index = calloc(in.pages + 1, sizeof(*fs->index));
	fs->seen = calloc((range_pages + LONG_BITS - 1) / LONG_BITS,
			  sizeof(*fs->seen));
	fs->dirfd = open(fs->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fs->active = true;
	if (!fs->index || !fs->seen) {
		ret = -ENOMEM;
		goto fail;
	}
	if (fs->dirfd < 0) {
		ret = neg_errno();
		goto fail;
	}

	/* Same folder as the final name, so the rename cannot cross file
	 * systems; mode 0600, because the image holds process memory. */
	snprintf(path, sizeof(path), "%s/.%.*s%s", fs->dir, (int)TMP_BASE_MAX,
		 fs->base, TMP_SUFFIX);
	fs->fd = mkostemp(path, O_CLOEXEC);
	if (fs->fd < 0) {
		ret = neg_errno();
		goto fail;
	}
	snprintf(fs->tmp, sizeof(fs->tmp), "%s", strrchr(path, '/') + 1);
	ret = fs_allocate(fs);
	if (ret)
		goto fail;
	return 0;

fail:
	fs_discard(fs);
	return ret;
}

static int fs_fail(struct filesink *fs, int err)
{
	int none = 0;

	__atomic_compare_exchange_n(&fs->error, &none, err, false,
				    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	return err;
}

static int fs_write(void *arg, void *addr, const void *data, size_t len)
{
	struct filesink *fs = arg;
	uint64_t ps = fs->hdr.page_size, a = (uintptr_t)addr, first, n, slot;
	const unsigned char *src = data;
	uint64_t i;
	int ret;

	if (!fs->active)
		return -EINVAL;
	/* The image is lost already: spend no more I/O on it. */
	ret = __atomic_load_n(&fs->error, __ATOMIC_RELAXED);
	if (ret)
		return ret;
	if (!data || !len || len % ps || a % ps || a < fs->hdr.addr ||
	    a - fs->hdr.addr >= fs->hdr.len ||
	    len > fs->hdr.len - (a - fs->hdr.addr))
		return fs_fail(fs, -EINVAL);
	first = (a - fs->hdr.addr) / ps;
	n = len / ps;

	for (i = first; i < first + n; i++) {
		unsigned long bit = 1UL << (i % LONG_BITS);

		if (__atomic_fetch_or(&fs->seen[i / LONG_BITS], bit,
				      __ATOMIC_RELAXED) &
		    bit)
			return fs_fail(fs, -EINVAL);
	}
	slot = __atomic_fetch_add(&fs->next_slot, n, __ATOMIC_RELAXED);
	if (slot > fs->hdr.page_count || n > fs->hdr.page_count - slot)
		return fs_fail(fs, -EINVAL);

	for (i = 0; i < n; i++) {
		fs->index[slot + i].addr_le = htole64(a + i * ps);
		fs->index[slot + i].csum_le =
			htole64(img_xxh64(src + i * ps, ps, 0));
	}
	ret = fs_pwrite(fs, src, len, fs->lay.data_off + slot * ps);
	return ret ? fs_fail(fs, ret) : 0;
}

/* The index with its checksum, then the header: the file is complete. */
static int fs_finish_file(struct filesink *fs)
{
	unsigned char hdr[IMG_HEADER_SIZE];
	uint64_t ilen = fs->hdr.page_count * IMG_ENTRY_SIZE, csum;
	int ret, r;

	csum = htole64(img_xxh64(fs->index, ilen, 0));
	memcpy((unsigned char *)fs->index + ilen, &csum, sizeof(csum));
	ret = fs_pwrite(fs, fs->index, ilen + sizeof(csum), fs->lay.index_off);
	if (ret)
		return ret;
	img_header_encode(&fs->hdr, hdr);
	ret = fs_pwrite(fs, hdr, sizeof(hdr), 0);
	if (ret)
		return ret;
	if (!(fs->flags & UFFDWP_FILE_SINK_NO_SYNC)) {
		ret = injected(IMG_FAIL_FSYNC);
		if (!ret && fsync(fs->fd))
			ret = neg_errno();
		if (ret)
			return ret;
	}
	/* Some file systems (NFS) report a failed write only at close. */
	r = close(fs->fd);
	ret = r ? neg_errno() : injected(IMG_FAIL_CLOSE);
	fs->fd = -1;
	return ret;
}

enum publish_how {
	PUB_CREATED, /* nothing was under the final name */
	PUB_EXCHANGED, /* the old file is under the temporary name now */
	PUB_REPLACED, /* the old file is gone (no RENAME_EXCHANGE here) */
};

/*
 * Move the complete image to its final name. An existing file is swapped
 * with it rather than overwritten, so that if the folder's fsync fails the
 * swap can be undone and the caller, told the snapshot failed, finds the
 * file it had. Two tries absorb another process creating or removing the
 * final name meanwhile.
 */
static int fs_move(struct filesink *fs, enum publish_how *how)
{
	int ret = injected(IMG_FAIL_RENAME), tries;

	if (ret)
		return ret;
	for (tries = 0; tries < 3; tries++) {
		struct stat st;
		bool exists;

		exists =
			!fstatat(fs->dirfd, fs->base, &st, AT_SYMLINK_NOFOLLOW);
		/* RENAME_EXCHANGE would move a folder away: refuse, as
		 * rename() would. */
		if (exists && S_ISDIR(st.st_mode))
			return -EISDIR;
		if (!renameat2(fs->dirfd, fs->tmp, fs->dirfd, fs->base,
			       exists ? RENAME_EXCHANGE : RENAME_NOREPLACE)) {
			*how = exists ? PUB_EXCHANGED : PUB_CREATED;
			return 0;
		}
		if ((exists && errno == ENOENT) || (!exists && errno == EEXIST))
			continue;
		if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			return neg_errno();
		/* The file system cannot swap: a plain rename, which a
		 * failed folder fsync cannot take back. */
		if (renameat(fs->dirfd, fs->tmp, fs->dirfd, fs->base))
			return neg_errno();
		*how = PUB_REPLACED;
		return 0;
	}
	return -EAGAIN;
}

static int fs_publish(struct filesink *fs)
{
	enum publish_how how;
	int ret;

	ret = fs_move(fs, &how);
	if (ret)
		return ret;
	if (how == PUB_CREATED || how == PUB_REPLACED)
		fs->tmp[0] = '\0';

	if (!(fs->flags & UFFDWP_FILE_SINK_NO_SYNC)) {
		ret = injected(IMG_FAIL_DIR_FSYNC);
		if (!ret && fsync(fs->dirfd))
			ret = neg_errno();
	}
	if (ret) {
		/* The new name may not be durable: put the old state back
		 * (the new image, under the temporary name, then goes in
		 * fs_discard()). Should that fail too, the name still holds
		 * a complete image. */
		if (how == PUB_EXCHANGED)
			renameat2(fs->dirfd, fs->tmp, fs->dirfd, fs->base,
				  RENAME_EXCHANGE);
		else if (how == PUB_CREATED)
			unlinkat(fs->dirfd, fs->base, 0);
		return ret;
	}
	/* Success: the old file, now under the temporary name, goes with
	 * it in fs_discard(). A crash before that unlink is on disk leaves
	 * it there, as a crash during any snapshot leaves its temporary
	 * file. */
	return 0;
}

static int fs_end(void *arg, int status)
{
	struct filesink *fs = arg;
	int ret;

	if (!fs->active)
		return status < 0 ? 0 : -EINVAL;
	ret = status < 0 ? 0 : __atomic_load_n(&fs->error, __ATOMIC_RELAXED);
	if (status < 0 || ret)
		goto out;
	/* Fewer pages than begin() announced: the image would be short. */
	if (__atomic_load_n(&fs->next_slot, __ATOMIC_RELAXED) !=
	    fs->hdr.page_count) {
		ret = -EIO;
		goto out;
	}
	ret = fs_finish_file(fs);
	if (!ret)
		ret = fs_publish(fs);
out:
	fs_discard(fs);
	return ret;
}

static void fs_destroy(void *arg)
{
	struct filesink *fs = arg;

	if (fs->active)
		fs_discard(fs);
	free(fs->dir);
	free(fs->base);
	free(fs);
}

bool sink_is_file(const struct uffdwp_sink *sink)
{
	return sink->write == fs_write;
}

UFFDWP_EXPORT int uffdwp_sink_file_new(const char *path, unsigned int flags,
				       struct uffdwp_sink **out)
{
	struct uffdwp_sink *sink;
	struct filesink *fs;
	const char *slash, *base;
	size_t dirlen;

	if (!path || !*path || !out || (flags & ~UFFDWP_FILE_SINK_NO_SYNC))
		return -EINVAL;
	slash = strrchr(path, '/');
	base = slash ? slash + 1 : path;
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return -EINVAL;
	if (strlen(base) > NAME_MAX)
		return -ENAMETOOLONG;
	dirlen = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
	/* The longest name begin() builds: folder, '/', temporary name. */
	if (dirlen + 1 + NAME_MAX >= PATH_MAX)
		return -ENAMETOOLONG;

	sink = calloc(1, sizeof(*sink));
	fs = calloc(1, sizeof(*fs));
	if (!sink || !fs)
		goto nomem;
	fs->dir = !slash ? strdup(".") : strndup(path, dirlen);
	fs->base = strdup(base);
	if (!fs->dir || !fs->base)
		goto nomem;
	fs->flags = flags;
	fs->dirfd = -1;
	fs->fd = -1;

	sink->sz = sizeof(*sink);
	sink->arg = fs;
	sink->begin = fs_begin;
	sink->write = fs_write;
	sink->end = fs_end;
	sink->destroy = fs_destroy;
	*out = sink;
	return 0;

nomem:
	if (fs) {
		free(fs->dir);
		free(fs->base);
	}
	free(fs);
	free(sink);
	return -ENOMEM;
}
