/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Gates: hold writers of a range off for a few system calls, without a
 * userfaultfd. The range is made read-only; a write raises SIGSEGV, and the
 * library's handler waits until the gate opens, then lets the access run
 * again. uffd_async uses one while a range moves between its asynchronous
 * and a synchronous userfaultfd: unregistering drops every uffd-wp bit, so
 * without the gate a write between the two registrations would be seen by
 * neither (a lost dirty page, or a wrong snapshot pre-image).
 *
 * System calls that write into a closed gate fail with EFAULT; threads
 * that block SIGSEGV die on such a write (the kernel forces the signal).
 */
#ifndef UFFDWP_GATE_H
#define UFFDWP_GATE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

struct gate_seg {
	uintptr_t start, end;
	int prot; /* the mapping's own, restored on open */
};

struct gate {
	struct gate_seg *seg;
	size_t n;
	int slot;
	/* The closer's signal mask: closed is a signal window (segv.h). */
	sigset_t mask;
};

/* Read the writable mappings of [start, end), only those parts in @allow
 * (@nallow spans, in address order) unless it is NULL, and take a handler
 * slot. A mapping the range does not own (placed in a hole the program
 * unmapped, perhaps by the library itself) must not be held: whoever
 * closed the gate might write it. Allocates: call before anything may be
 * held off. */
int gate_prepare(struct gate *g, uintptr_t start, uintptr_t end,
		 const struct span *allow, size_t nallow);
/* Hold writers off: when it returns, no write to the range completes. */
int gate_close(struct gate *g);
/* Restore the mappings' protections and release held writers. */
void gate_open(struct gate *g);
void gate_release(struct gate *g);

/* Around fork (called by the context layer's handlers): fork waits for
 * every gate to open. */
void gate_atfork(enum fork_phase phase);

#endif /* UFFDWP_GATE_H */
