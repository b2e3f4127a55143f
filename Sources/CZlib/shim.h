// zlib, already linked for the self-profiler's gzip: its CRC-32 checks spool records, and
// gzip push bodies are inflated and deflated again to add labels (PYROSCOPE_LAMBDA_LABELS).
#include <zlib.h>

// inflateInit2 and deflateInit2 are macros, which Swift cannot call.
static inline int czlib_inflate_init_gzip(z_stream *stream) { return inflateInit2(stream, 15 + 16); }

static inline int czlib_deflate_init_gzip(z_stream *stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
