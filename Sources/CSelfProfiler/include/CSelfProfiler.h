// The async-signal-safe half of the self-profiler: a SIGPROF handler that unwinds the
// interrupted thread into a preallocated lock-free ring, per-thread CPU-time timers that
// raise it, and gzip through zlib. Everything else (symbols, pprof, uploads) is Swift.
#ifndef CSELFPROFILER_H
#define CSELFPROFILER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CSP_MAX_FRAMES 64

/// One stack, leaf first: frames[0] is the interrupted instruction, the rest are
/// return addresses.
typedef struct {
    uint32_t tid;
    uint32_t depth;
    uintptr_t frames[CSP_MAX_FRAMES];
} csp_sample;

/// Allocates a ring of `capacity` samples (rounded up to a power of two) and installs
/// the SIGPROF handler. Returns 0 or an errno value. Until this is called the process
/// has no handler, no ring and no timer.
int csp_install(uint32_t capacity);

/// Stops recording and sets SIGPROF to ignored, so a signal still pending from a
/// deleted timer cannot kill the process. The ring is kept (a late drain is harmless).
void csp_uninstall(void);

/// Arms a timer on the CPU time of thread `tid` that sends it SIGPROF every
/// `interval_ns` of CPU it uses. Returns 0 or an errno value; the timer id goes to
/// `*timer_id` (an opaque handle for csp_disarm).
int csp_arm_thread(pid_t tid, int64_t interval_ns, uintptr_t *timer_id);

/// Deletes a timer made by csp_arm_thread.
int csp_disarm(uintptr_t timer_id);

/// Moves up to `max` finished samples into `out`, oldest first. Returns how many.
/// One reader at a time.
int csp_drain(csp_sample *out, int max);

/// Samples lost because the ring was full, and stacks cut at CSP_MAX_FRAMES.
uint64_t csp_dropped_samples(void);
uint64_t csp_truncated_stacks(void);

/// Loaded modules (the executable and shared libraries) with executable code.
typedef struct {
    uintptr_t bias;   // add to an ELF virtual address to get the run-time address
    uintptr_t start;  // lowest and highest run-time address of executable segments
    uintptr_t end;
    char path[512];   // "" for the main executable: read /proc/self/exe
} csp_module;

/// Fills up to `max` modules; returns how many.
int csp_modules(csp_module *out, int max);

/// gzip (RFC 1952) of `in` into `out`; `*out_len` holds the capacity on entry and the
/// length on return. Returns 0, or a zlib error code (Z_BUF_ERROR when `out` is too small).
int csp_gzip(const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len, int level);

/// Demanglers: the Swift runtime's and the C++ ABI's. Both return malloc'd strings
/// (NULL when the name is not theirs); free them with free().
char *csp_demangle_swift(const char *name, size_t length);
char *csp_demangle_cxx(const char *name);

#endif
