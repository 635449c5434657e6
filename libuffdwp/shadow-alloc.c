/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The library's own memory. What fault and signal handlers write
 * (contexts, backend state, bitmaps, handler buffers) comes from mmap,
 * never from malloc, and the library's threads run on stacks mapped here:
 * a program may track any memory, its heap included (garbage collectors
 * do), and a handler whose write faults on a page it must itself resolve
 * would wait for ever. Every such mapping is registered, and
 * uffdwp_track() refuses a range that overlaps one (own_overlaps()).
 *
 * The writable segments (.data, .bss) of this library and of liburcu-bp,
 * and the urcu-bp registry chunks the library's threads read-lock in, are
 * registered too: the handlers write them.
 *
 * MAP_NORESERVE keeps each mapping a line of its own in /proc/self/maps:
 * the kernel merges neighbouring anonymous mappings only when their flags
 * agree, so a program that tracks mapping by mapping can skip ours.
 */
#include <bsd/sys/tree.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <urcu/urcu-bp.h>

#include "internal.h"
#include "shadow-alloc.h"
#include "vmaid.h"

#define SLAB_BYTES (64UL << 10)

static size_t round_up(size_t len)
{
	return (len + page_size() - 1) / page_size() * page_size();
}

static void *map_own(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* --- the registry: a tree of spans, by start ----------------------------- */

/*
 * A tree, not a sorted array: each tracked range maps six (its state and
 * five bitmaps), and a program may track tens of thousands of ranges.
 * Its nodes come from slabs of our own, never freed (a free list).
 */
struct own_node {
	RB_ENTRY(own_node) link;
	uintptr_t lo, hi;
};

static int node_cmp(const struct own_node *a, const struct own_node *b)
{
	return (a->lo > b->lo) - (a->lo < b->lo);
}

RB_HEAD(own_tree, own_node);
/* libbsd's RB_GENERATE_STATIC needs a __unused it leaves undefined. */
RB_GENERATE_INTERNAL(own_tree, own_node, link, node_cmp,
		     __attribute__((unused)) static)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct own_tree tree = RB_INITIALIZER(&tree);
static struct own_node *free_nodes;

static struct own_node *node_get(void)
{
	struct own_node *n, *slab;
	size_t i, count;

	if (!free_nodes) {
		slab = map_own(SLAB_BYTES);
		if (!slab)
			return NULL;
		count = SLAB_BYTES / sizeof(*slab);
		for (i = 1; i < count; i++) {
			slab[i].hi = (uintptr_t)free_nodes;
			free_nodes = &slab[i];
		}
		/* The slab is ours too: its first node says so. */
		slab[0].lo = (uintptr_t)slab;
		slab[0].hi = (uintptr_t)slab + SLAB_BYTES;
		RB_INSERT(own_tree, &tree, &slab[0]);
	}
	n = free_nodes;
	free_nodes = (struct own_node *)n->hi;
	return n;
}

static bool own_overlaps_locked(uintptr_t lo, uintptr_t hi)
{
	struct own_node key = { .lo = hi }, *n;

	/* The last span starting before @hi is the only one that can. */
	n = RB_NFIND(own_tree, &tree, &key);
	n = n ? RB_PREV(own_tree, &tree, n) : RB_MAX(own_tree, &tree);
	return n && n->hi > lo;
}

static int add(uintptr_t lo, uintptr_t hi)
{
	struct own_node *n = node_get();

	if (!n)
		return -ENOMEM;
	n->lo = lo;
	n->hi = hi;
	RB_INSERT(own_tree, &tree, n);
	return 0;
}

static void del(uintptr_t lo)
{
	struct own_node key = { .lo = lo }, *n;

	n = RB_FIND(own_tree, &tree, &key);
	if (!n)
		return;
	RB_REMOVE(own_tree, &tree, n);
	n->hi = (uintptr_t)free_nodes;
	free_nodes = n;
}

void *own_map(size_t len)
{
	void *p;

	len = round_up(len);
	p = map_own(len);
	if (!p)
		return NULL;
	pthread_mutex_lock(&mu);
	if (add((uintptr_t)p, (uintptr_t)p + len)) {
		pthread_mutex_unlock(&mu);
		munmap(p, len);
		return NULL;
	}
	pthread_mutex_unlock(&mu);
	return p;
}

void own_unmap(void *p, size_t len)
{
	if (!p)
		return;
	pthread_mutex_lock(&mu);
	del((uintptr_t)p);
	pthread_mutex_unlock(&mu);
	munmap(p, round_up(len));
}

bool own_overlaps(uintptr_t lo, uintptr_t hi)
{
	bool hit;

	pthread_mutex_lock(&mu);
	hit = own_overlaps_locked(lo, hi);
	pthread_mutex_unlock(&mu);
	return hit;
}

void own_atfork(enum fork_phase phase)
{
	if (phase == FORK_PREPARE)
		pthread_mutex_lock(&mu);
	else
		pthread_mutex_unlock(&mu);
}

/* Register what is mapped at @p (a mapping made by someone else). */
static void adopt(const void *p)
{
	struct vma_info v;

	if (vma_query((uintptr_t)p, &v))
		return;
	pthread_mutex_lock(&mu);
	if (!own_overlaps_locked(v.lo, v.hi))
		add(v.lo, v.hi);
	pthread_mutex_unlock(&mu);
}

/* urcu-bp's per-thread reader slot (urcu/static/urcu-bp.h), in a chunk
 * of its registry arena. */
struct urcu_bp_reader;
extern __thread struct urcu_bp_reader *urcu_bp_reader;

void own_thread_started(void)
{
	urcu_bp_register_thread();
	adopt(urcu_bp_reader);
}

/* The writable PT_LOAD segments of the objects holding @arg's addresses. */
static int adopt_segments(struct dl_phdr_info *info, size_t size, void *arg)
{
	const uintptr_t *want = arg;
	uintptr_t lo, hi, ps = page_size();
	bool ours = false;
	int i, j;

	(void)size;
	for (i = 0; i < info->dlpi_phnum && !ours; i++) {
		if (info->dlpi_phdr[i].p_type != PT_LOAD)
			continue;
		lo = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
		hi = lo + info->dlpi_phdr[i].p_memsz;
		for (j = 0; j < 2; j++)
			ours |= want[j] >= lo && want[j] < hi;
	}
	for (i = 0; ours && i < info->dlpi_phnum; i++) {
		if (info->dlpi_phdr[i].p_type != PT_LOAD ||
		    !(info->dlpi_phdr[i].p_flags & PF_W))
			continue;
		lo = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
		hi = lo + info->dlpi_phdr[i].p_memsz;
		lo &= ~(ps - 1);
		hi = (hi + ps - 1) & ~(ps - 1);
		pthread_mutex_lock(&mu);
		if (!own_overlaps_locked(lo, hi))
			add(lo, hi);
		pthread_mutex_unlock(&mu);
	}
	return 0;
}

__attribute__((constructor)) static void own_segments(void)
{
	uintptr_t want[2] = { (uintptr_t)&own_segments,
			      (uintptr_t)&urcu_bp_read_lock };

	dl_iterate_phdr(adopt_segments, want);
}

void *shadow_zalloc(size_t len)
{
	return own_map(len);
}

void shadow_free(void *p, size_t len)
{
	own_unmap(p, len);
}

/* --- threads on stacks of our own -------------------------------------- */

/* Like glibc's default: only what a thread touches is ever populated. */
#define STACK_BYTES (8UL << 20)

int own_thread_create(pthread_t *tid, void *(*fn)(void *), void *arg)
{
	size_t guard = page_size();
	pthread_attr_t attr;
	char *stack;
	int ret;

	stack = own_map(guard + STACK_BYTES);
	if (!stack)
		return -ENOMEM;
	/* An overflow faults instead of writing whatever lies below. */
	if (mprotect(stack, guard, PROT_NONE)) {
		ret = neg_errno();
		own_unmap(stack, guard + STACK_BYTES);
		return ret;
	}
	ret = -pthread_attr_init(&attr);
	if (!ret)
		ret = -pthread_attr_setstack(&attr, stack + guard, STACK_BYTES);
	if (!ret)
		ret = -pthread_create(tid, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (ret)
		own_unmap(stack, guard + STACK_BYTES);
	return ret;
}

void own_thread_join(pthread_t tid)
{
	pthread_attr_t attr;
	void *stack = NULL;
	size_t size = 0;

	if (!pthread_getattr_np(tid, &attr)) {
		pthread_attr_getstack(&attr, &stack, &size);
		pthread_attr_destroy(&attr);
	}
	pthread_join(tid, NULL);
	if (stack && size == STACK_BYTES)
		own_unmap((char *)stack - page_size(),
			  page_size() + STACK_BYTES);
}
