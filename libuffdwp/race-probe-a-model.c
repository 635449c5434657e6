/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Race probe A's software model, for tests only (built with UFFDWP_TESTING,
 * never into the shipped library): the same race with no kernel involved.
 * Writers keep a cached pointer to the hot page (their "TLB entry"), a
 * copier copies the page and swaps the pointer (the "COW"). RACE_MODEL
 * waits for every writer to acknowledge the new epoch (the "TLB flush")
 * before copying; RACE_MODEL_BROKEN copies first, and writers still
 * holding the old pointer lose increments. Both go through a_judge(), so
 * the broken one shows that A's arithmetic and report catch a loss.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>

#include "race-probe-a.h"
#include "segv.h"

#define M_WRITERS 2
/* Increments between copies, so every copy lands mid-stream. */
#define M_STREAM 256
/* Bounds on the copier's waits (writers may be descheduled a while). */
#define M_STREAM_NS 2000000ULL
#define M_WINDOW_NS 2000000ULL
#define M_ACK_NS 2000000000ULL

struct m_slot {
	uint64_t n; /* increments so far */
	uint64_t ack; /* last epoch acknowledged */
	uint64_t refreshes;
} __attribute__((aligned(64)));

struct a_model {
	uint64_t *pub; /* the published page: the "PTE" */
	uint64_t epoch; /* bumped for a "TLB flush" */
	int stop;
	bool broken;
	char *blocks; /* two pages, copied back and forth */
	uint64_t cycles;
	int err;
	struct m_slot slot[M_WRITERS];
};

struct m_writer {
	struct a_model *m;
	unsigned int id;
};

/*
 * A writer increments through its cached pointer: its "TLB entry". It drops
 * the pointer only when it sees a new epoch, and then acknowledges; with no
 * page published (a copy in progress) it waits, like a fault would.
 */
static void *m_writer_main(void *arg)
{
	struct m_writer *w = arg;
	struct a_model *m = w->m;
	struct m_slot *s = &m->slot[w->id];
	uint64_t *cached = NULL, seen = UINT64_MAX, n = 0, e;

	race_pin(w->id);
	while (!stopping(&m->stop)) {
		e = __atomic_load_n(&m->epoch, __ATOMIC_ACQUIRE);
		if (e != seen) {
			cached = NULL;
			seen = e;
			s->refreshes++;
			/* Release: every increment made through the old
			 * pointer is visible to whoever sees the ack. */
			__atomic_store_n(&s->ack, e, __ATOMIC_RELEASE);
		}
		if (!cached) {
			cached = __atomic_load_n(&m->pub, __ATOMIC_ACQUIRE);
			if (!cached) {
				sched_yield();
				continue;
			}
		}
		__atomic_fetch_add(cached, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&s->n, ++n, __ATOMIC_RELAXED);
	}
	return NULL;
}

static uint64_t m_progress(struct a_model *m)
{
	uint64_t sum = 0;
	unsigned int i;

	for (i = 0; i < M_WRITERS; i++)
		sum += __atomic_load_n(&m->slot[i].n, __ATOMIC_RELAXED);
	return sum;
}

/* Yield until the writers made @more increments past @base, or @ns pass. */
static void m_wait_progress(struct a_model *m, uint64_t base, uint64_t more,
			    uint64_t ns)
{
	uint64_t end = now_ns() + ns;

	while (m_progress(m) - base < more && !stopping(&m->stop) &&
	       now_ns() < end)
		sched_yield();
}

/* True once every writer acknowledged @epoch; false on timeout or stop. */
static bool m_wait_acks(struct a_model *m, uint64_t epoch)
{
	uint64_t end = now_ns() + M_ACK_NS;
	unsigned int i;

	for (i = 0; i < M_WRITERS; i++)
		while (__atomic_load_n(&m->slot[i].ack, __ATOMIC_ACQUIRE) !=
		       epoch) {
			if (stopping(&m->stop) || now_ns() >= end)
				return false;
			sched_yield();
		}
	return true;
}

/* A writer did not acknowledge in time: end the run, inconclusive. */
static void m_abort(struct a_model *m)
{
	if (!stopping(&m->stop))
		m->err = -ETIMEDOUT;
	__atomic_store_n(&m->stop, 1, __ATOMIC_RELEASE);
}

/* Copy a page word by word: atomic loads, as writers may be storing. */
static void m_copy(uint64_t *dst, const uint64_t *src)
{
	size_t i;

	for (i = 0; i < page_size() / sizeof(*dst); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/*
 * The "COW": copy the published page to the other block and publish that.
 * Correct: unpublish, flush (epoch), wait for every ack, then copy. Broken:
 * copy, publish, then flush; writers still holding the old pointer write
 * into a page nobody will read again.
 */
static void *m_copier_main(void *arg)
{
	struct a_model *m = arg;
	uint64_t *old, *new, base, e;

	race_pin(CPU_PROT);
	while (!stopping(&m->stop)) {
		m_wait_progress(m, m_progress(m), M_STREAM, M_STREAM_NS);
		old = __atomic_load_n(&m->pub, __ATOMIC_RELAXED);
		new = (uint64_t *)(m->blocks + ((char *)old == m->blocks ?
							page_size() :
							0));
		if (!m->broken) {
			__atomic_store_n(&m->pub, NULL, __ATOMIC_RELAXED);
			e = __atomic_add_fetch(&m->epoch, 1, __ATOMIC_RELEASE);
			if (!m_wait_acks(m, e)) {
				/* Nothing copied: the old page stays right. */
				__atomic_store_n(&m->pub, old,
						 __ATOMIC_RELEASE);
				m_abort(m);
				break;
			}
			m_copy(new, old);
			__atomic_store_n(&m->pub, new, __ATOMIC_RELEASE);
		} else {
			m_copy(new, old);
			__atomic_store_n(&m->pub, new, __ATOMIC_RELEASE);
			/* Widen the window: let the stale writers write. */
			base = m_progress(m);
			m_wait_progress(m, base, 2, M_WINDOW_NS);
			e = __atomic_add_fetch(&m->epoch, 1, __ATOMIC_RELEASE);
			/* Acks still matter: the old block is the next
			 * copy's target. */
			if (!m_wait_acks(m, e)) {
				m->cycles++;
				m_abort(m);
				break;
			}
		}
		m->cycles++;
	}
	return NULL;
}

int a_model(struct race_run *run, uint64_t t0)
{
	struct uffdwp_race_result *out = run->out;
	struct a_model m = { 0 };
	struct m_writer w[M_WRITERS];
	struct a_tally t = { 0 };
	pthread_t wt[M_WRITERS], ct;
	unsigned int i, started = 0;
	bool copier = false;
	sigset_t all, old;
	size_t ps = page_size();
	int ret = 0;

	m.broken = run->variant == RACE_MODEL_BROKEN;
	m.blocks = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m.blocks == MAP_FAILED)
		return -ENOMEM;
	m.pub = (uint64_t *)m.blocks;
	for (i = 0; i < M_WRITERS; i++)
		m.slot[i].ack = UINT64_MAX;

	segv_thread_mask(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < M_WRITERS; i++) {
		w[i] = (struct m_writer){ &m, i };
		ret = pthread_create(&wt[i], NULL, m_writer_main, &w[i]);
		if (ret)
			break;
		started++;
	}
	if (!ret) {
		ret = pthread_create(&ct, NULL, m_copier_main, &m);
		copier = !ret;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!ret)
		a_wait_until(t0 + (uint64_t)(run->seconds * 1e9), &m.stop);
	__atomic_store_n(&m.stop, 1, __ATOMIC_RELEASE);
	/* Every wait of these threads is bounded, and all check stop. */
	if (copier)
		pthread_join(ct, NULL);
	for (i = 0; i < started; i++)
		pthread_join(wt[i], NULL);
	if (ret) {
		race_why(out, "cannot start the model's threads: %s",
			 strerror(ret));
		ret = 0;
		goto out;
	}

	for (i = 0; i < M_WRITERS; i++) {
		t.expected += m.slot[i].n;
		t.faults += m.slot[i].refreshes;
	}
	t.actual = __atomic_load_n(m.pub, __ATOMIC_ACQUIRE);
	t.cycles = m.cycles;
	t.copies = m.cycles;
	t.err = m.err;
	t.err_what = "the model copier (a writer did not acknowledge)";
	t.label = m.broken ? "the software model (broken)" :
			     "the software model";
	a_judge(run, &t);
out:
	munmap(m.blocks, 2 * ps);
	return ret;
}
