// SPDX-License-Identifier: LGPL-2.1-or-later
// ABI suite: the public header compiles as C++ and links (extern "C").
#include <cstring>

#include <uffdwp/uffdwp.h>

int main()
{
	struct uffdwp_caps caps = {};

	caps.sz = sizeof(caps);
	return std::strcmp(uffdwp_backend_name(UFFDWP_BACKEND_MPROTECT),
			   "mprotect") == 0 && caps.sz ? 0 : 1;
}
