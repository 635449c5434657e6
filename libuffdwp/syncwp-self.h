/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Self-service write faults of the synchronous userfaultfd, private to the
 * component: with UFFD_FEATURE_SIGBUS the writing thread resolves its own
 * write fault in the library's SIGBUS handler (record, then unprotect),
 * with no message and no handler thread. syncwp.c calls these; see
 * syncwp-self.c for the protocol.
 */
#ifndef UFFDWP_SYNCWP_SELF_H
#define UFFDWP_SYNCWP_SELF_H

#include "syncwp.h"

/* Make @r's faults @s's (installs the handler once). 0 or -errno. */
int syncwp_self_add(struct sync_state *s, struct region *r);
/* Forget @r; returns once no handler can still see it. */
void syncwp_self_remove(struct region *r);
/* Part of syncwp_pause()/syncwp_resume() on a self-service state: no
 * handler is in flight between the two, and none starts. */
void syncwp_self_pause(struct sync_state *s);
void syncwp_self_resume(struct sync_state *s);
void syncwp_self_atfork(enum fork_phase phase);
/* A handler thread of a self-service state starts (@on) or ends reading
 * and marking address-space events. */
void syncwp_self_events(bool on);

#endif /* UFFDWP_SYNCWP_SELF_H */
