#ifndef ALMANAC_CZLIB_SHIM_H
#define ALMANAC_CZLIB_SHIM_H
#include <zlib.h>

// inflateInit2 is a macro; a function Swift can call: windowBits 15 + 32 accepts gzip or zlib headers.
static inline int almanac_inflate_init_gzip(z_stream *stream) {
    return inflateInit2(stream, 15 + 32);
}
#endif
