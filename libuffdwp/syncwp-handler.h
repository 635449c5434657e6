/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The synchronous userfaultfd's fault loop, private to the component
 * (syncwp.c starts and stops it): library-owned threads read fault and
 * event messages in batches, deduplicate pages, record them, and resolve
 * them through a wp batch (unprotect without wake, one wake per run).
 */
#ifndef UFFDWP_SYNCWP_HANDLER_H
#define UFFDWP_SYNCWP_HANDLER_H

#include "syncwp.h"

/* Start @n handler threads with every asynchronous signal blocked;
 * returns once each has entered its loop. */
int syncwp_handlers_start(struct sync_state *s, unsigned int n);
void syncwp_handlers_stop(struct sync_state *s);

#endif /* UFFDWP_SYNCWP_HANDLER_H */
