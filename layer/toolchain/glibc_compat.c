/*
 * Definitions that libstdc++.a of Debian 12 (GCC 12, built for glibc 2.36) expects from
 * glibc but that glibc 2.26 (Amazon Linux 2) does not have. Linked into the layer binary
 * by layer/toolchain/clang; each one is what glibc itself would do, with older calls.
 */
#define _GNU_SOURCE /* dl_iterate_phdr */
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

/*
 * The arm64 layer is built from Debian sid's archives (Swift 6.2.3's runtime, GCC 16's
 * libstdc++ and libgcc_eh), compiled against glibc 2.43. They reference the following,
 * which glibc 2.26 lacks. Weak: where an archive brings its own (the x86_64 toolchain's
 * libdispatch.a has a strlcpy), that one is taken.
 */
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAYER_WEAK __attribute__((weak))

/* glibc 2.38: the C23 forms of strto* and sscanf only add binary (0b) input. */
LAYER_WEAK long __isoc23_strtol(const char *text, char **end, int base) { return strtol(text, end, base); }
LAYER_WEAK long long __isoc23_strtoll(const char *text, char **end, int base) { return strtoll(text, end, base); }
LAYER_WEAK unsigned long __isoc23_strtoul(const char *text, char **end, int base) { return strtoul(text, end, base); }
LAYER_WEAK unsigned long long __isoc23_strtoull(const char *text, char **end, int base) { return strtoull(text, end, base); }
LAYER_WEAK int __isoc23_sscanf(const char *text, const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    int count = vsscanf(text, format, arguments);
    va_end(arguments);
    return count;
}

/* glibc 2.38 */
LAYER_WEAK size_t strlcpy(char *destination, const char *source, size_t size) {
    size_t length = strlen(source);
    if (size > 0) {
        size_t copied = length < size - 1 ? length : size - 1;
        memcpy(destination, source, copied);
        destination[copied] = '\0';
    }
    return length;
}

/*
 * glibc 2.35: libgcc's unwinder (GCC 12 and later, built against glibc 2.35 or later) finds
 * the unwind tables of the object holding an address with _dl_find_object only. The same
 * answer from dl_iterate_phdr (glibc 2.2.4), which is what libgcc itself did before: the
 * object whose loaded segment holds the address, and its PT_GNU_EH_FRAME segment; zig's
 * libunwind (the x86_64 layer's) finds them the same way. (zig's glibc headers declare
 * struct dl_find_object whatever the target version.)
 */
struct layer_find_request {
    uintptr_t address;
    struct dl_find_object *result;
    int found;
};

static int layer_find_object(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct layer_find_request *request = data;
    uintptr_t start = UINTPTR_MAX, end = 0;
    int holds = 0;
    void *eh_frame = NULL;
    for (size_t index = 0; index < info->dlpi_phnum; index++) {
        const ElfW(Phdr) *header = &info->dlpi_phdr[index];
        uintptr_t segment = info->dlpi_addr + header->p_vaddr;
        if (header->p_type == PT_LOAD) {
            if (request->address >= segment && request->address < segment + header->p_memsz) holds = 1;
            if (segment < start) start = segment;
            if (segment + header->p_memsz > end) end = segment + header->p_memsz;
        } else if (header->p_type == PT_GNU_EH_FRAME) {
            eh_frame = (void *)segment;
        }
    }
    if (!holds) return 0;
    memset(request->result, 0, sizeof *request->result);
    request->result->dlfo_map_start = (void *)start;
    request->result->dlfo_map_end = (void *)end;
    request->result->dlfo_eh_frame = eh_frame;
    request->found = 1;
    return 1;
}

LAYER_WEAK int _dl_find_object(void *address, struct dl_find_object *result) {
    struct layer_find_request request = {(uintptr_t)address, result, 0};
    dl_iterate_phdr(layer_find_object, &request);
    return request.found ? 0 : -1;
}
