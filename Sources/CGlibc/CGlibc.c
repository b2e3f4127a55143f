#define _GNU_SOURCE
#include "CGlibc.h"

#if defined(__linux__)
#include <features.h>  // defines __GLIBC__ (only glibc's does)
#endif

#if defined(__GLIBC__)
#include <elf.h>
#include <link.h>
#include <malloc.h>
#include <nss.h>
#include <sys/auxv.h>

// Defined by the linker in a dynamically linked program only.
extern ElfW(Dyn) _DYNAMIC[] __attribute__((weak));

const char *cglibc_executable_path(void) { return (const char *)getauxval(AT_EXECFN); }

int cglibc_malloc_trim(size_t pad) { return malloc_trim(pad); }

int cglibc_is_statically_linked(void) { return _DYNAMIC == NULL; }

int cglibc_use_builtin_host_lookup(void) {
    if (!cglibc_is_statically_linked()) return 0;
    return __nss_configure_lookup("hosts", "files dns") == 0;
}
#else
const char *cglibc_executable_path(void) { return NULL; }
int cglibc_malloc_trim(size_t pad) { (void)pad; return -1; }
int cglibc_is_statically_linked(void) { return 0; }
int cglibc_use_builtin_host_lookup(void) { return 0; }
#endif
