/*
 * Definitions that libstdc++.a of Debian 12 (GCC 12, built for glibc 2.36) expects from
 * glibc but that glibc 2.26 (Amazon Linux 2) does not have. Linked into the layer binary
 * by layer/toolchain/clang; each one is what glibc itself would do, with older calls.
 */
#include <stdint.h>
#include <stddef.h>
#include <sys/random.h>

/* glibc 2.32: a hint that the process has one thread. 0 means "assume threads", so
 * libstdc++ always uses atomic reference counts: correct everywhere, at most slower. */
char __libc_single_threaded = 0;

/* glibc 2.36: std::random_device's default source. getrandom is glibc 2.25. */
uint32_t arc4random(void) {
    uint32_t value;
    while (getrandom(&value, sizeof value, 0) != (ssize_t)sizeof value) {
    }
    return value;
}
