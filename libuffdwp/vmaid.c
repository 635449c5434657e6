/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Mapping identities (see vmaid.h). Everything here may run in the
 * mprotect backend's SIGSEGV handler: raw system calls, a reader on the
 * stack, no stdio, no allocation.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "testhooks.h"
#include "uapi-compat.h"
#include "vmaid.h"

/* The PROCMAP_QUERY descriptor, and the process that opened it: a forked
 * child's copy still reads its parent's mappings. */
static int query_fd = -1;
static pid_t query_pid;

void vma_query_init(void)
{
	struct procmap_query q = { .size = sizeof(q) };
	int fd;

	if (uffdwp_test_hooks.no_procmap_query)
		return;
	if (__atomic_load_n(&query_fd, __ATOMIC_ACQUIRE) >= 0 &&
	    __atomic_load_n(&query_pid, __ATOMIC_ACQUIRE) == getpid())
		return;
	fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	q.query_addr = (uintptr_t)&query_fd;
	if (ioctl(fd, PROCMAP_QUERY, &q)) {
		close(fd); /* before 6.11: vma_query() walks the text */
		return;
	}
	__atomic_store_n(&query_pid, getpid(), __ATOMIC_RELEASE);
	fd = __atomic_exchange_n(&query_fd, fd, __ATOMIC_ACQ_REL);
	if (fd >= 0)
		close(fd);
}

/* --- /proc/self/maps as text, read with system calls only -------------- */

struct maps_reader {
	int fd;
	size_t len, pos;
	char buf[4096];
};

/* The next line into @line (a longer one is cut, and consumed): 1, 0 at
 * the end, or -errno. */
static int next_line(struct maps_reader *m, char *line, size_t cap)
{
	size_t n = 0;
	ssize_t got;
	char c;

	for (;;) {
		if (m->pos == m->len) {
			do
				got = read(m->fd, m->buf, sizeof(m->buf));
			while (got < 0 && errno == EINTR);
			if (got < 0)
				return neg_errno();
			if (got == 0) {
				line[n] = '\0';
				return n > 0;
			}
			m->len = (size_t)got;
			m->pos = 0;
		}
		c = m->buf[m->pos++];
		if (c == '\n') {
			line[n] = '\0';
			return 1;
		}
		if (n + 1 < cap)
			line[n++] = c;
	}
}

static const char *hex(const char *s, uint64_t *v)
{
	uint64_t x = 0;
	int d;

	for (;; s++) {
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else
			break;
		x = x << 4 | (uint64_t)d;
	}
	*v = x;
	return s;
}

static const char *dec(const char *s, uint64_t *v)
{
	uint64_t x = 0;

	for (; *s >= '0' && *s <= '9'; s++)
		x = x * 10 + (uint64_t)(*s - '0');
	*v = x;
	return s;
}

/* "lo-hi perms offset major:minor inode [path]" */
static bool parse_line(const char *s, struct vma_info *v)
{
	uint64_t lo, hi, off, maj, min, ino;

	s = hex(s, &lo);
	if (*s++ != '-')
		return false;
	s = hex(s, &hi);
	if (*s++ != ' ' || !s[0] || !s[1] || !s[2] || !s[3] || s[4] != ' ')
		return false;
	v->prot = (s[0] == 'r' ? PROT_READ : 0) |
		  (s[1] == 'w' ? PROT_WRITE : 0) |
		  (s[2] == 'x' ? PROT_EXEC : 0);
	v->id.shared = s[3] == 's';
	s = hex(s + 5, &off);
	if (*s++ != ' ')
		return false;
	s = hex(s, &maj);
	if (*s++ != ':')
		return false;
	s = hex(s, &min);
	if (*s++ != ' ')
		return false;
	dec(s, &ino);
	v->lo = (uintptr_t)lo;
	v->hi = (uintptr_t)hi;
	v->id.dev = maj << 32 | min;
	v->id.ino = ino;
	v->id.base = ino ? off - lo : 0;
	return true;
}

static void from_query(const struct procmap_query *q, struct vma_info *v)
{
	v->lo = (uintptr_t)q->vma_start;
	v->hi = (uintptr_t)q->vma_end;
	v->prot = (q->vma_flags & PROCMAP_QUERY_VMA_READABLE ? PROT_READ : 0) |
		  (q->vma_flags & PROCMAP_QUERY_VMA_WRITABLE ? PROT_WRITE : 0) |
		  (q->vma_flags & PROCMAP_QUERY_VMA_EXECUTABLE ? PROT_EXEC : 0);
	v->id.shared = q->vma_flags & PROCMAP_QUERY_VMA_SHARED;
	v->id.dev = (uint64_t)q->dev_major << 32 | q->dev_minor;
	v->id.ino = q->inode;
	v->id.base = q->inode ? q->vma_offset - q->vma_start : 0;
}

/* The PROCMAP_QUERY descriptor if it is this process's, or -1. */
static int own_query_fd(void)
{
	int fd = __atomic_load_n(&query_fd, __ATOMIC_ACQUIRE);

	if (fd >= 0 &&
	    __atomic_load_n(&query_pid, __ATOMIC_ACQUIRE) != getpid())
		return -1;
	return fd;
}

/* The mapping covering @addr, or the next one (@next): 0, -ENOENT, -errno. */
static int query(int fd, uintptr_t addr, bool next, struct vma_info *v)
{
	struct procmap_query q = { .size = sizeof(q), .query_addr = addr };

	if (next)
		q.query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA;
	if (ioctl(fd, PROCMAP_QUERY, &q))
		return neg_errno();
	from_query(&q, v);
	return 0;
}

int vma_walk(uintptr_t start, uintptr_t end,
	     int (*fn)(void *arg, const struct vma_info *v), void *arg)
{
	struct maps_reader m = { .fd = -1 };
	struct vma_info v;
	char line[128]; /* the fields before the path */
	int fd = own_query_fd(), ret = 0;
	uintptr_t a;

	for (a = start; fd >= 0 && a < end; a = v.hi) {
		ret = query(fd, a, true, &v);
		if (ret == -ENOENT || (!ret && v.lo >= end))
			return 0;
		if (ret)
			return ret;
		if (v.lo < start)
			v.lo = start;
		if (v.hi > end)
			v.hi = end;
		ret = fn(arg, &v);
		if (ret)
			return ret;
	}
	if (fd >= 0)
		return 0;
	m.fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (m.fd < 0)
		return neg_errno();
	for (;;) {
		ret = next_line(&m, line, sizeof(line));
		if (ret <= 0)
			break; /* the end (0), or -errno */
		ret = 0;
		if (!parse_line(line, &v) || v.hi <= start)
			continue;
		if (v.lo >= end)
			break;
		if (v.lo < start)
			v.lo = start;
		if (v.hi > end)
			v.hi = end;
		ret = fn(arg, &v);
		if (ret)
			break;
	}
	close(m.fd);
	return ret;
}

static int take_first(void *arg, const struct vma_info *v)
{
	*(struct vma_info *)arg = *v;
	return 1;
}

bool vma_query_cheap(void)
{
	return own_query_fd() >= 0;
}

int vma_query(uintptr_t addr, struct vma_info *v)
{
	int fd = own_query_fd(), ret;

	if (fd >= 0)
		return query(fd, addr, false, v);
	ret = vma_walk(addr, addr + 1, take_first, v);
	if (ret < 0)
		return ret;
	return ret ? 0 : -ENOENT;
}

int vma_query_named(uintptr_t addr, struct vma_info *v, char *name,
		    size_t namelen, uint64_t *page_size)
{
	struct procmap_query q = { .size = sizeof(q), .query_addr = addr };
	int fd = own_query_fd();

	if (fd < 0)
		return -ENOSYS;
	q.vma_name_addr = (uintptr_t)name;
	q.vma_name_size = (uint32_t)namelen;
	if (ioctl(fd, PROCMAP_QUERY, &q))
		return neg_errno();
	if (!q.vma_name_size)
		name[0] = '\0';
	from_query(&q, v);
	*page_size = q.vma_page_size;
	return 0;
}
