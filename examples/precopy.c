/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Build: cc precopy.c helpers.c $(pkg-config --cflags --libs libuffdwp) \
 *        -pthread -o precopy
 *
 * Pre-copy live migration of a running workload's memory, the way a
 * hypervisor moves a VM: copy the whole region while the writers keep
 * running, then copy only what they dirtied meanwhile, round after round
 * while the dirty set shrinks; then pause the writers, copy the last dirty
 * pages, and check the copy. The pause is the only time the workload stops,
 * and it lasts about as long as the last, smallest round.
 *
 * The receiver is a forked child at the other end of a TCP connection on
 * 127.0.0.1. After the last pages it sends back a hash of each of its pages,
 * and the sender compares them with its own memory, still paused.
 *
 * usage: precopy [--size BYTES[K|M|G]] [--writers N] [--rounds N]
 *                [--backend NAME] [--quick]
 * Exit status: 0 the copy is equal, 1 it is not, 2 the migration failed,
 * 77 the backend cannot work here.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

#include "helpers.h"

/* A peer that makes no progress for this long is gone: nothing hangs. */
#define IO_TIMEOUT_S 10

/*
 * Writers write in bursts and then sleep, and most writes go to a hot
 * sixteenth of the region: a workload the copy can outrun, as pre-copy
 * assumes. One that dirties pages faster than the link carries them never
 * converges, and is stopped by the round limit instead.
 */
#define BURST 8
#define PACE_NS 100000
#define HOT_SHARE 16

/*
 * The wire format: a header, then len bytes. Both ends run on this machine,
 * so host byte order is fine.
 *   HELLO   off = size of the region, no payload
 *   PAGES   the region's bytes [off, off + len)
 *   VERIFY  no payload: reply with SUMS
 *   SUMS    one struct page_sum per page
 */
enum { MSG_HELLO = 1, MSG_PAGES, MSG_VERIFY, MSG_SUMS };

struct msg {
	uint32_t type;
	uint32_t pad;
	uint64_t off;
	uint64_t len;
};

/* The counter is the writers' per-page write count, to explain a mismatch. */
struct page_sum {
	uint64_t hash;
	uint64_t counter;
};

struct options {
	size_t size;
	unsigned int writers;
	unsigned int rounds;
	int backend;
};

struct sender {
	int fd;
	char *base;
	size_t page;
	unsigned long pages;
};

/* --- the connection ----------------------------------------------------- */

static int wait_fd(int fd, short events)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int n;

	do
		n = poll(&pfd, 1, IO_TIMEOUT_S * 1000);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n == 0 ? -ETIMEDOUT : 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;
	int err;

	while (len) {
		/* MSG_NOSIGNAL: a dead receiver is an error, not a SIGPIPE. */
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN) {
			err = wait_fd(fd, POLLOUT);
			if (err)
				return err;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	ssize_t n;
	int err;

	while (len) {
		n = recv(fd, p, len, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN) {
			err = wait_fd(fd, POLLIN);
			if (err)
				return err;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_msg(int fd, uint32_t type, uint64_t off, const void *data,
		    uint64_t len)
{
	struct msg m = { .type = type, .off = off, .len = len };
	int err = write_all(fd, &m, sizeof(m));

	return err ? err : write_all(fd, data, len);
}

/* --- verification ------------------------------------------------------- */

/*
 * Each step is a bijection of the state, so two pages that differ in one
 * word always hash differently; differing in several, they collide with a
 * chance of about 2^-64.
 */
static uint64_t page_hash(const uint64_t *w, size_t words)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL;
	size_t i;

	for (i = 0; i < words; i++) {
		h = (h ^ w[i]) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	return h;
}

static void page_sums(const char *base, size_t page, size_t npages,
		      struct page_sum *sums)
{
	size_t i;

	for (i = 0; i < npages; i++) {
		const uint64_t *p = (const uint64_t *)(base + i * page);

		sums[i].hash = page_hash(p, page / sizeof(*p));
		sums[i].counter = p[0];
	}
}

/* --- the receiver ------------------------------------------------------- */

static int receive(int lfd)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), size = 0;
	struct page_sum *sums;
	char *image = NULL;
	struct msg m;
	int fd, err;

	err = wait_fd(lfd, POLLIN);
	if (err) {
		fprintf(stderr, "receiver: no connection from the sender: %s\n",
			strerror(-err));
		return 2;
	}
	fd = accept(lfd, NULL, NULL);
	close(lfd);
	if (fd < 0) {
		perror("receiver: accept");
		return 2;
	}

	for (;;) {
		err = read_all(fd, &m, sizeof(m));
		if (err)
			break;
		if (m.type == MSG_HELLO && !image && m.off &&
		    m.off % page == 0 && m.len == 0) {
			size = m.off;
			image = mmap(NULL, size, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (image == MAP_FAILED) {
				perror("receiver: mmap");
				return 2;
			}
		} else if (m.type == MSG_PAGES && image && m.off <= size &&
			   m.len <= size - m.off) {
			err = read_all(fd, image + m.off, m.len);
			if (err)
				break;
		} else if (m.type == MSG_VERIFY && image && m.len == 0) {
			sums = calloc(size / page, sizeof(*sums));
			if (!sums) {
				err = -ENOMEM;
				break;
			}
			page_sums(image, page, size / page, sums);
			err = send_msg(fd, MSG_SUMS, 0, sums,
				       size / page * sizeof(*sums));
			free(sums);
			/* The sender sends nothing after VERIFY. */
			return err ? 2 : 0;
		} else {
			fprintf(stderr,
				"receiver: bad message %u (%llu+%llu)\n",
				m.type, (unsigned long long)m.off,
				(unsigned long long)m.len);
			return 2;
		}
	}
	fprintf(stderr, "receiver: %s\n",
		err == -ECONNRESET ? "the sender hung up" : strerror(-err));
	return 2;
}

/* --- the workload ------------------------------------------------------- */

static void *writer_main(void *arg)
{
	struct writer *me = arg;
	struct workload *w = me->w;
	/* Each page has one writer, so a page is never half-written. */
	size_t owned = (w->npages - me->id + w->nwriters - 1) / w->nwriters;
	size_t hot = owned / HOT_SHARE ? owned / HOT_SHARE : 1;
	size_t words = w->page / sizeof(uint64_t), k, pg;
	struct timespec pace = { .tv_nsec = PACE_NS };
	uint64_t rnd = 0x9e3779b97f4a7c15ULL * (me->id + 1), *p, c;
	unsigned long n = 0;

	for (;;) {
		if (atomic_load_explicit(&w->hold, memory_order_acquire) &&
		    workload_park(w))
			break;
		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		/* Seven writes in eight go to the hot set. */
		k = (rnd >> 8) % (rnd % 8 ? hot : owned);
		pg = me->id + k * w->nwriters;
		p = (uint64_t *)(w->base + pg * w->page);
		/* A copy that missed a write shows an older count. */
		c = ++p[0];
		p[1 + c % (words - 1)] = c ^ pg;
		if (++n % BURST == 0)
			nanosleep(&pace, NULL);
	}
	atomic_fetch_add(&w->writes, n);
	workload_exit(w);
	return NULL;
}

/* --- the sender --------------------------------------------------------- */

static int send_run(void *arg, void *addr, size_t len)
{
	struct sender *s = arg;
	int err;

	/* On failure the run stays pending in the context: nothing is lost. */
	err = send_msg(s->fd, MSG_PAGES, (uint64_t)((char *)addr - s->base),
		       addr, len);
	if (!err)
		s->pages += len / s->page;
	return err;
}

/*
 * Copy what was dirtied since the last round. soft_dirty loses writes made
 * while a collect runs, so on it the writers are held for the round.
 */
static long copy_round(struct uffdwp_ctx *ctx, struct sender *s,
		       struct workload *w, int quiesce)
{
	long n;

	s->pages = 0;
	if (quiesce)
		workload_pause(w);
	n = uffdwp_collect(ctx, send_run, s);
	if (quiesce)
		workload_resume(w);
	if (n < 0) {
		fprintf(stderr, "precopy: uffdwp_collect: %s\n",
			strerror((int)-n));
		return n;
	}
	if ((unsigned long)n != s->pages) {
		fprintf(stderr,
			"precopy: uffdwp_collect returned %ld, its runs held %lu pages\n",
			n, s->pages);
		return -EPROTO;
	}
	return n;
}

/* Returns the number of pages that differ, or a negative errno. */
static long verify(struct sender *s, size_t npages, long *first_bad,
		   struct page_sum *mine, struct page_sum *theirs)
{
	struct msg m;
	long bad = 0;
	size_t i;
	int err;

	err = send_msg(s->fd, MSG_VERIFY, 0, NULL, 0);
	if (err)
		return err;
	/* Hash here while the receiver hashes there. */
	page_sums(s->base, s->page, npages, mine);
	err = read_all(s->fd, &m, sizeof(m));
	if (!err && (m.type != MSG_SUMS || m.len != npages * sizeof(*theirs)))
		err = -EPROTO;
	if (!err)
		err = read_all(s->fd, theirs, m.len);
	if (err)
		return err;
	for (i = 0; i < npages; i++) {
		if (!memcmp(&mine[i], &theirs[i], sizeof(mine[i])))
			continue;
		if (!bad++)
			*first_bad = (long)i;
	}
	return bad;
}

static int migrate(const struct options *o, int fd)
{
	struct uffdwp_ctx_opts copts = { .sz = sizeof(copts),
					 .backend = o->backend };
	struct uffdwp_caps caps = { .sz = sizeof(caps) };
	struct uffdwp_stats st = { .sz = sizeof(st) };
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t npages = o->size / page, i;
	/* Few enough pages that copying them while paused is quick. */
	unsigned long total,
		threshold = npages / 1024 > 16 ? npages / 1024 : 16;
	struct sender s = { .fd = fd, .page = page };
	struct workload w = { .page = page,
			      .npages = npages,
			      .nwriters = o->writers,
			      .lock = PTHREAD_MUTEX_INITIALIZER,
			      .cond = PTHREAD_COND_INITIALIZER };
	struct page_sum *sums = NULL;
	struct writer *wr = NULL;
	struct uffdwp_ctx *ctx;
	unsigned int round, last, started = 0;
	long n, prev, bad, first_bad = -1;
	double t_pause, t_sent, t_done;
	int err, quiesce, ret = 2;

	err = uffdwp_ctx_new(&copts, &ctx);
	if (err == -EOPNOTSUPP && uffdwp_probe(&caps) == 0) {
		printf("SKIP: %s cannot track here: %s\n",
		       uffdwp_backend_name(o->backend),
		       o->backend ? caps.backend[o->backend].reason :
				    caps.auto_reason);
		return 77;
	}
	if (err) {
		fprintf(stderr, "precopy: uffdwp_ctx_new: %s\n",
			strerror(-err));
		return 2;
	}
	quiesce = uffdwp_ctx_backend(ctx) == UFFDWP_BACKEND_SOFT_DIRTY;
	printf("backend %s: %s\n", uffdwp_backend_name(uffdwp_ctx_backend(ctx)),
	       uffdwp_ctx_backend_reason(ctx));
	printf("migrating %.1f MiB (%zu pages) written by %u threads\n",
	       o->size / 1048576.0, npages, o->writers);

	s.base = w.base = mmap(NULL, o->size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	wr = calloc(o->writers, sizeof(*wr));
	sums = calloc(2 * npages, sizeof(*sums));
	if (w.base == MAP_FAILED || !wr || !sums) {
		fprintf(stderr, "precopy: out of memory\n");
		w.base = NULL;
		goto out;
	}
	for (i = 0; i < npages; i++)
		((uint64_t *)(w.base + i * page))[1] = i;

	/* The workload runs before the migration starts, as it would. */
	for (; started < o->writers; started++) {
		wr[started] = (struct writer){ .w = &w, .id = started };
		err = pthread_create(&wr[started].thread, NULL, writer_main,
				     &wr[started]);
		if (err) {
			fprintf(stderr, "precopy: pthread_create: %s\n",
				strerror(err));
			goto out;
		}
	}

	/* Track first: writes made while round 0 copies go to round 1. */
	err = uffdwp_track(ctx, w.base, o->size, 0);
	if (err) {
		fprintf(stderr, "precopy: uffdwp_track: %s\n", strerror(-err));
		goto out;
	}
	err = send_msg(fd, MSG_HELLO, o->size, NULL, 0);
	if (!err)
		err = send_run(&s, w.base, o->size);
	if (err) {
		fprintf(stderr, "precopy: sending: %s\n", strerror(-err));
		goto out;
	}
	printf("round %2u: %6zu pages (the whole region)\n", 0u, npages);
	total = npages;

	prev = (long)npages;
	for (round = 1; round <= o->rounds; round++) {
		n = copy_round(ctx, &s, &w, quiesce);
		if (n < 0)
			goto out;
		total += (unsigned long)n;
		printf("round %2u: %6ld pages\n", round, n);
		if ((unsigned long)n <= threshold) {
			printf("converged: %ld pages <= %lu\n", n, threshold);
			break;
		}
		if (n >= prev) {
			printf("converged: the dirty set stopped shrinking (%ld >= %ld)\n",
			       n, prev);
			break;
		}
		prev = n;
	}
	last = round > o->rounds ? o->rounds : round;
	if (round > o->rounds)
		printf("round limit %u reached without converging\n",
		       o->rounds);

	/* Stop-and-copy: from here on the sender's memory does not change. */
	t_pause = now();
	workload_pause(&w);
	n = copy_round(ctx, &s, &w, 0);
	if (n < 0)
		goto out;
	t_sent = now();
	total += (unsigned long)n;
	printf("stop-and-copy: %ld pages\n", n);

	bad = verify(&s, npages, &first_bad, sums, sums + npages);
	t_done = now();
	if (bad < 0) {
		fprintf(stderr, "precopy: verifying: %s\n",
			strerror((int)-bad));
		goto out;
	}
	workload_stop(&w, wr, started);
	started = 0;

	printf("rounds 0-%u and stop-and-copy: %lu pages sent (%.2fx the region), %lu writes during the migration\n",
	       last, total, (double)total / npages, atomic_load(&w.writes));
	if (uffdwp_ctx_stats(ctx, &st) == 0)
		printf("%llu collects: %.2f ms in uffdwp_collect, sending included; %llu write faults\n",
		       (unsigned long long)st.collects, st.collect_ns / 1e6,
		       (unsigned long long)st.faults);
	printf("stop-and-copy: last page sent %.2f ms after the pause, copy verified after %.2f ms\n",
	       (t_sent - t_pause) * 1e3, (t_done - t_pause) * 1e3);
	if (bad) {
		printf("verdict: NOT EQUAL: %ld of %zu pages differ; first page %ld, written %llu times here, %llu in the copy\n",
		       bad, npages, first_bad,
		       (unsigned long long)sums[first_bad].counter,
		       (unsigned long long)sums[npages + first_bad].counter);
		ret = 1;
	} else {
		printf("verdict: EQUAL: all %zu pages of the copy match the paused sender's memory\n",
		       npages);
		ret = 0;
	}

out:
	workload_stop(&w, wr, started);
	if (w.base) {
		err = uffdwp_untrack(ctx, w.base, o->size);
		if (err && err != -ENOENT)
			fprintf(stderr, "precopy: uffdwp_untrack: %s\n",
				strerror(-err));
		munmap(w.base, o->size);
	}
	free(sums);
	free(wr);
	uffdwp_ctx_free(ctx);
	return ret;
}

/* --- setup -------------------------------------------------------------- */

static int parse_size(const char *arg, size_t *size)
{
	static const char units[] = "KMG";
	const char *u;
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 0);
	if (*end && (u = strchr(units, *end))) {
		v <<= 10 * (u - units + 1);
		end++;
	}
	if (errno || *end || !v)
		return -EINVAL;
	*size = (size_t)v;
	return 0;
}

static void print_usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [--size BYTES[K|M|G]] [--writers N] [--rounds N] [--backend NAME] [--quick]\n"
		"       %s --help\n",
		prog, prog);
}

static void usage(const char *prog)
{
	print_usage(stderr, prog);
	exit(2);
}

/* --help asked for it: on stdout, and a success. */
static void help(const char *prog)
{
	print_usage(stdout, prog);
	printf("\n"
	       "Pre-copy live migration of N writer threads' memory to a receiver\n"
	       "process over loopback TCP, in rounds of uffdwp_collect until the\n"
	       "dirty set converges, then a short stop-and-copy and a page-by-page\n"
	       "check of the receiver's copy.\n"
	       "\n"
	       "  --size BYTES[K|M|G]  memory the writers write (default 64M)\n"
	       "  --writers N          writer threads (default 4)\n"
	       "  --rounds N           most pre-copy rounds (default 30)\n"
	       "  --backend NAME       auto, async, sync, soft-dirty or mprotect\n"
	       "  --quick              a short run, as a test\n"
	       "  --help               print this help\n"
	       "\n"
	       "Exit status: 0 the copy is equal, 1 it is not, 2 the migration\n"
	       "failed, 77 the backend cannot work here.\n");
	exit(0);
}

static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "writers", required_argument, NULL, 'w' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "backend", required_argument, NULL, 'b' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	int c, quick = 0;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_size(optarg, &o->size))
				usage(argv[0]);
			break;
		case 'w':
			o->writers = (unsigned int)atoi(optarg);
			break;
		case 'r':
			o->rounds = (unsigned int)atoi(optarg);
			break;
		case 'b':
			o->backend = uffdwp_backend_from_name(optarg);
			if (o->backend < 0) {
				fprintf(stderr, "precopy: unknown backend %s\n",
					optarg);
				exit(2);
			}
			break;
		case 'q':
			quick = 1;
			break;
		case 'h':
			help(argv[0]);
			break;
		default:
			usage(argv[0]);
		}
	}
	if (!o->size)
		o->size = quick ? 8 << 20 : 64 << 20;
	o->size = (o->size + page - 1) / page * page;
	if (optind < argc || !o->writers || o->writers > o->size / page)
		usage(argv[0]);
}

/* Returns the listening socket, bound before the fork so both know the port. */
static int listen_loopback(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd;

	*addr = (struct sockaddr_in){
		.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)
	};
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof(*addr)) ||
	    listen(fd, 1) || getsockname(fd, (struct sockaddr *)addr, &len)) {
		perror("precopy: listening on 127.0.0.1");
		exit(2);
	}
	return fd;
}

/*
 * Reaps the receiver, saying what became of it if it failed. After a failed
 * migration it may be on its way out, its socket closed before its exit
 * status is ready: give it a moment before killing it.
 */
static int reap(pid_t pid, int skipped)
{
	int status, i;

	for (i = 0; !skipped && i < 200; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		usleep(10000);
	}
	if (skipped || i == 200) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return skipped ? 0 : -1;
	}
	if (WIFSIGNALED(status))
		fprintf(stderr,
			"precopy: the receiver was killed by signal %d (%s)\n",
			WTERMSIG(status), strsignal(WTERMSIG(status)));
	else if (WEXITSTATUS(status))
		fprintf(stderr, "precopy: the receiver exited with status %d\n",
			WEXITSTATUS(status));
	return WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct options o = { .writers = 4, .rounds = 30 };
	struct sockaddr_in addr;
	int lfd, fd, ret;
	pid_t pid;

	parse_options(argc, argv, &o);
	/* Line-buffered, so a killed run still shows how far it got. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* Fork before any thread or context exists: the child stays simple. */
	lfd = listen_loopback(&addr);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("precopy: fork");
		return 2;
	}
	if (pid == 0)
		_exit(receive(lfd));
	close(lfd);

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		perror("precopy: connecting to the receiver");
		reap(pid, 0);
		return 2;
	}
	ret = migrate(&o, fd);
	/* Reap before closing: a healthy receiver must not see a hang-up. */
	if (reap(pid, ret == 77) && ret == 0)
		ret = 2;
	close(fd);
	return ret;
}
