/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The file sink, as the snapshot engine sees it.
 */
#ifndef UFFDWP_SINK_FILE_H
#define UFFDWP_SINK_FILE_H

#include <stdbool.h>

#include <uffdwp/uffdwp.h>

/*
 * Is @sink the library's file sink (sink-file.c), unwrapped? Its write()
 * waits for no thread of the program (a pwrite() and atomics), so the
 * thread that serves write faults may call it: a program's write() may
 * wait for anything, a thread writing the range included.
 */
bool sink_is_file(const struct uffdwp_sink *sink);

#endif /* UFFDWP_SINK_FILE_H */
