// See include/CSelfProfiler.h. The SIGPROF handler may only do async-signal-safe work:
// atomics on a preallocated ring, gettid, and the DWARF unwinder (_Unwind_Backtrace),
// which needs no allocation once primed in csp_install. Swift and glibc's own code carry
// asynchronous unwind tables, so unwinding from any interrupted instruction is exact.
#define _GNU_SOURCE
#include "CSelfProfiler.h"

#include <errno.h>
#include <link.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <unwind.h>
#include <zlib.h>

// A bounded multi-producer, single-consumer ring (Vyukov's sequence numbers): slot i
// is free for the writer at position p when seq == p, and readable at p when seq == p + 1.
typedef struct {
    _Atomic uint64_t seq;
    csp_sample sample;
} csp_slot;

static csp_slot *ring;
static uint64_t ring_mask;
static size_t ring_bytes;
static _Atomic uint64_t write_pos;
static uint64_t read_pos;
static _Atomic int recording;
static _Atomic uint64_t dropped_samples;
static _Atomic uint64_t truncated_stacks;

// Frames of the handler itself and the kernel's signal trampoline come first; room for them.
#define CSP_SCRATCH_FRAMES (CSP_MAX_FRAMES + 8)

typedef struct {
    uintptr_t frames[CSP_SCRATCH_FRAMES];
    int count;
} csp_unwind;

static _Unwind_Reason_Code csp_collect(struct _Unwind_Context *context, void *arg) {
    csp_unwind *state = arg;
    if (state->count >= CSP_SCRATCH_FRAMES) return _URC_END_OF_STACK;
    int before = 0;
    uintptr_t ip = (uintptr_t)_Unwind_GetIPInfo(context, &before);
    if (ip == 0) return _URC_END_OF_STACK;
    state->frames[state->count++] = ip;
    return _URC_NO_REASON;
}

static uintptr_t csp_interrupted_pc(void *context) {
    ucontext_t *uc = context;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#else
    (void)uc;
    return 0;
#endif
}

static void csp_on_sigprof(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)info;
    int saved_errno = errno;
    if (!atomic_load_explicit(&recording, memory_order_acquire)) {
        errno = saved_errno;
        return;
    }
    uint64_t pos = atomic_load_explicit(&write_pos, memory_order_relaxed);
    csp_slot *slot;
    for (;;) {
        slot = &ring[pos & ring_mask];
        uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
        int64_t lag = (int64_t)(seq - pos);
        if (lag == 0) {
            if (atomic_compare_exchange_weak_explicit(&write_pos, &pos, pos + 1, memory_order_relaxed, memory_order_relaxed))
                break;
        } else if (lag < 0) {
            // The reader is behind: losing a sample beats blocking a thread in a handler.
            atomic_fetch_add_explicit(&dropped_samples, 1, memory_order_relaxed);
            errno = saved_errno;
            return;
        } else {
            pos = atomic_load_explicit(&write_pos, memory_order_relaxed);
        }
    }

    csp_unwind state;
    state.count = 0;
    _Unwind_Backtrace(csp_collect, &state);
    // Skip the handler and the trampoline: the interrupted instruction starts the stack.
    uintptr_t pc = csp_interrupted_pc(context);
    int first = -1;
    for (int i = 0; i < state.count; i++) {
        if (state.frames[i] == pc) {
            first = i;
            break;
        }
    }
    csp_sample *sample = &slot->sample;
    sample->tid = (uint32_t)syscall(SYS_gettid);
    if (first < 0) {
        // The unwinder could not cross the signal frame: keep at least the leaf.
        sample->frames[0] = pc;
        sample->depth = pc ? 1 : 0;
    } else {
        int depth = state.count - first;
        if (depth > CSP_MAX_FRAMES) {
            depth = CSP_MAX_FRAMES;
            atomic_fetch_add_explicit(&truncated_stacks, 1, memory_order_relaxed);
        }
        memcpy(sample->frames, &state.frames[first], (size_t)depth * sizeof(uintptr_t));
        sample->depth = (uint32_t)depth;
    }
    atomic_store_explicit(&slot->seq, pos + 1, memory_order_release);
    errno = saved_errno;
}

int csp_install(uint32_t capacity) {
    if (ring == NULL) {
        uint64_t slots = 1;
        while (slots < capacity) slots <<= 1;
        size_t bytes = (size_t)slots * sizeof(csp_slot);
        void *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED) return errno;
        ring = memory;
        ring_bytes = bytes;
        ring_mask = slots - 1;
        for (uint64_t i = 0; i < slots; i++) atomic_init(&ring[i].seq, i);
        atomic_store(&write_pos, 0);
        read_pos = 0;
    }
    // Prime the unwinder outside any handler: its first call may resolve symbols and
    // set up caches, which must not happen inside a signal handler.
    csp_unwind warmup;
    warmup.count = 0;
    _Unwind_Backtrace(csp_collect, &warmup);
    (void)syscall(SYS_gettid);

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = csp_on_sigprof;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    atomic_store_explicit(&recording, 1, memory_order_release);
    if (sigaction(SIGPROF, &action, NULL) != 0) {
        atomic_store(&recording, 0);
        return errno;
    }
    return 0;
}

void csp_uninstall(void) {
    atomic_store_explicit(&recording, 0, memory_order_release);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_IGN;
    sigemptyset(&action.sa_mask);
    sigaction(SIGPROF, &action, NULL);
}

// Raw syscalls rather than glibc's timer_create: glibc before 2.34 keeps that in librt,
// and the layer must run on Amazon Linux 2 (glibc 2.26) without extra libraries.
int csp_arm_thread(pid_t tid, int64_t interval_ns, uintptr_t *timer_id) {
    // The kernel's encoding of a thread's CPU clock (MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)),
    // as glibc's pthread_getcpuclockid builds it.
    clockid_t clock = (clockid_t)((~(uint32_t)tid) << 3 | 2u | 4u);
    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_THREAD_ID;
    event.sigev_signo = SIGPROF;
    event._sigev_un._tid = tid;
    int kernel_timer = -1;
    if (syscall(SYS_timer_create, clock, &event, &kernel_timer) != 0) return errno;
    struct itimerspec spec;
    spec.it_interval.tv_sec = interval_ns / 1000000000;
    spec.it_interval.tv_nsec = interval_ns % 1000000000;
    spec.it_value = spec.it_interval;
    if (syscall(SYS_timer_settime, kernel_timer, 0, &spec, NULL) != 0) {
        int error = errno;
        syscall(SYS_timer_delete, kernel_timer);
        return error;
    }
    *timer_id = (uintptr_t)(unsigned)kernel_timer;
    return 0;
}

int csp_disarm(uintptr_t timer_id) {
    return syscall(SYS_timer_delete, (int)timer_id) == 0 ? 0 : errno;
}

int csp_drain(csp_sample *out, int max) {
    if (ring == NULL) return 0;
    int count = 0;
    while (count < max) {
        csp_slot *slot = &ring[read_pos & ring_mask];
        uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
        if ((int64_t)(seq - (read_pos + 1)) < 0) break;
        csp_sample *target = &out[count++];
        target->tid = slot->sample.tid;
        target->depth = slot->sample.depth;
        memcpy(target->frames, slot->sample.frames, (size_t)slot->sample.depth * sizeof(uintptr_t));
        atomic_store_explicit(&slot->seq, read_pos + ring_mask + 1, memory_order_release);
        read_pos++;
    }
    return count;
}

uint64_t csp_dropped_samples(void) { return atomic_load(&dropped_samples); }
uint64_t csp_truncated_stacks(void) { return atomic_load(&truncated_stacks); }

typedef struct {
    csp_module *out;
    int max;
    int count;
} csp_module_walk;

static int csp_add_module(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    csp_module_walk *walk = arg;
    if (walk->count >= walk->max) return 1;
    uintptr_t low = UINTPTR_MAX, high = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *segment = &info->dlpi_phdr[i];
        if (segment->p_type != PT_LOAD || !(segment->p_flags & PF_X)) continue;
        uintptr_t start = info->dlpi_addr + segment->p_vaddr;
        if (start < low) low = start;
        if (start + segment->p_memsz > high) high = start + segment->p_memsz;
    }
    if (high == 0) return 0;
    csp_module *module = &walk->out[walk->count++];
    module->bias = info->dlpi_addr;
    module->start = low;
    module->end = high;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    strncpy(module->path, name, sizeof module->path - 1);
    module->path[sizeof module->path - 1] = 0;
    return 0;
}

int csp_modules(csp_module *out, int max) {
    csp_module_walk walk = {out, max, 0};
    dl_iterate_phdr(csp_add_module, &walk);
    return walk.count;
}

int csp_gzip(const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len, int level) {
    z_stream stream;
    memset(&stream, 0, sizeof stream);
    // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
    int status = deflateInit2(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    if (status != Z_OK) return status;
    stream.next_in = (Bytef *)in;
    stream.avail_in = (uInt)in_len;
    stream.next_out = out;
    stream.avail_out = (uInt)*out_len;
    status = deflate(&stream, Z_FINISH);
    *out_len = stream.total_out;
    deflateEnd(&stream);
    return status == Z_STREAM_END ? 0 : (status == Z_OK ? Z_BUF_ERROR : status);
}

extern char *swift_demangle(const char *mangled, size_t length, char *output, size_t *output_size, uint32_t flags);
extern char *__cxa_demangle(const char *mangled, char *output, size_t *length, int *status);

char *csp_demangle_swift(const char *name, size_t length) { return swift_demangle(name, length, NULL, NULL, 0); }

char *csp_demangle_cxx(const char *name) {
    int status = 0;
    char *result = __cxa_demangle(name, NULL, NULL, &status);
    return status == 0 ? result : NULL;
}
