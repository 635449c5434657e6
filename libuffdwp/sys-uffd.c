/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * userfaultfd system calls, one wrapper each.
 */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "sys-uffd.h"

int uffd_open(int mode, int flags)
{
	int dev, fd;

	switch (mode) {
	case UFFDWP_UFFD_DEV:
		/*
		 * /dev/userfaultfd ignores vm.unprivileged_userfaultfd: its
		 * file permissions are the whole access check.
		 */
		dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev < 0)
			return neg_errno();
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
		if (fd < 0)
			fd = neg_errno();
		close(dev);
		return fd;
	case UFFDWP_UFFD_SYSCALL:
		fd = (int)syscall(__NR_userfaultfd, flags);
		return fd < 0 ? neg_errno() : fd;
	case UFFDWP_UFFD_USER_MODE_ONLY:
		fd = (int)syscall(__NR_userfaultfd,
				  flags | UFFD_USER_MODE_ONLY);
		return fd < 0 ? neg_errno() : fd;
	default:
		return -EINVAL;
	}
}

int uffd_api(int fd, uint64_t want, uint64_t *got)
{
	struct uffdio_api api = { .api = UFFD_API, .features = want };

	if (ioctl(fd, UFFDIO_API, &api))
		return neg_errno();
	if (api.api != UFFD_API)
		return -EPROTO;
	if (got)
		*got = api.features;
	return 0;
}

int uffd_register(int fd, void *addr, size_t len, uint64_t mode,
		  uint64_t *ioctls)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		return neg_errno();
	if (ioctls)
		*ioctls = reg.ioctls;
	return 0;
}

int uffd_unregister(int fd, void *addr, size_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

	return ioctl(fd, UFFDIO_UNREGISTER, &r) ? neg_errno() : 0;
}

int uffd_writeprotect(int fd, void *addr, size_t len, uint64_t mode)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};

	return ioctl(fd, UFFDIO_WRITEPROTECT, &wp) ? neg_errno() : 0;
}

int uffd_wake(int fd, void *addr, size_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

	return ioctl(fd, UFFDIO_WAKE, &r) ? neg_errno() : 0;
}
