/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The raw kernel baseline: see raw.h. */
#include "raw.h"

/* ---- raw kernel mechanism ------------------------------------------- */

/* The fd the library would open too: the device first, then the syscall. */
int raw_uffd(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	int fd = -1;

	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC);
		close(dev);
	}
	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) ||
	    (api.features & features) != features) {
		close(fd);
		return -EOPNOTSUPP;
	}
	return fd;
}

int raw_register_wp(int fd, char *p, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	return ioctl(fd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

int raw_wp(int fd, char *p, size_t len, uint64_t mode)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = mode,
	};

	return ioctl(fd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}

/*
 * Report and re-protect the written pages of [p, p + len), with the flags
 * and masks of the library's async backend. A short vector ends the walk:
 * 6.18 can return a stale walk_end once a result outgrows the kernel's
 * internal buffer, so a full vector resumes past whichever of walk_end and
 * the last region reaches further.
 */
int raw_scan(char *p, size_t len, size_t *pages)
{
	static struct page_region vec[VEC_LEN];
	uint64_t start = (uintptr_t)p, end = start + len;
	size_t total = 0;

	while (start < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.flags = SCAN_FLAGS,
			.start = start,
			.end = end,
			.vec = (uintptr_t)vec,
			.vec_len = VEC_LEN,
			.category_mask = PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_WRITTEN,
		};
		long n = ioctl(pmfd, PAGEMAP_SCAN, &a);

		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++)
			total += (vec[i].end - vec[i].start) / page_sz;
		if ((size_t)n < VEC_LEN)
			break;
		start = a.walk_end;
		if (vec[n - 1].end > start)
			start = vec[n - 1].end;
	}
	*pages = total;
	return 0;
}

/* WP_ASYNC registration, armed by the same get-and-protect scan a collect
 * runs, so raw pages start in the state the library's do. */
int raw_async_setup(char *p, size_t len)
{
	size_t pages;
	int fd = raw_uffd(ASYNC_FEATURES), err;

	if (fd < 0)
		return fd;
	err = raw_register_wp(fd, p, len);
	if (!err)
		err = raw_scan(p, len, &pages);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

void *raw_handler_main(void *arg)
{
	struct raw_handler *h = arg;
	struct uffd_msg msg;

	for (;;) {
		ssize_t n = read(h->uffd, &msg, sizeof(msg));
		uintptr_t a;

		if (n != (ssize_t)sizeof(msg)) {
			if (n < 0 && errno != EINTR && errno != EAGAIN)
				die("read(uffd): %s", strerror(errno));
			continue;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		a = (uintptr_t)msg.arg.pagefault.address & ~(page_sz - 1);
		if (raw_wp(h->uffd, (char *)a, page_sz, 0))
			die("unprotect: %s", strerror(errno));
	}
	return NULL;
}

void raw_handler_start(struct raw_handler *h)
{
	if (pthread_create(&h->tid, NULL, raw_handler_main, h))
		die("pthread_create");
	h->running = true;
}

void raw_handler_stop(struct raw_handler *h)
{
	if (!h->running)
		return;
	/* It sits in read(), a cancellation point; no fault is pending. */
	pthread_cancel(h->tid);
	pthread_join(h->tid, NULL);
	h->running = false;
}
