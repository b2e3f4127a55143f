// glibc calls that Swift's Glibc module does not import (sys/auxv.h, malloc.h, nss.h).
// Called directly, not looked up with dlsym: in a statically linked binary (the layer's),
// dlsym finds nothing, because the program has no dynamic symbol table.
#ifndef CGLIBC_H
#define CGLIBC_H

#include <stddef.h>

/// The path the kernel executed (getauxval(AT_EXECFN)); NULL where unknown. Unlike
/// /proc/self/cmdline, it needs no /proc.
const char *cglibc_executable_path(void);

/// glibc's malloc_trim(pad): returns free heap pages to the system. 1 when memory was
/// released, 0 when none could be, -1 where the C library has no malloc_trim.
int cglibc_malloc_trim(size_t pad);

/// In a statically linked binary, makes host-name lookups use the resolvers built into
/// glibc only ("files dns": /etc/hosts, then DNS), whatever /etc/nsswitch.conf names:
/// any other NSS module would be loaded with dlopen from the runtime image, a shared
/// library of another glibc than the one linked in. Returns 1 when applied, 0 in a
/// dynamically linked binary (the system's NSS setup applies there) or when refused.
int cglibc_use_builtin_host_lookup(void);

/// 1 when the binary is statically linked (it has no dynamic section).
int cglibc_is_statically_linked(void);

#endif
