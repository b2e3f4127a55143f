// zlib, already linked for the self-profiler's gzip: its CRC-32 checks spool records.
#include <zlib.h>
