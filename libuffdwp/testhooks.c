/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The test hooks (testhooks.h), in the test build only. */
#include "testhooks.h"

#ifndef UFFDWP_TESTING
#error "testhooks.c is built into the uffdwp-testing library only"
#endif

struct uffdwp_test_hooks uffdwp_test_hooks;
