/* blandeval.h: declarations shared by the C core's files. Every symbol declared
 * here stays hidden; the module exports luaopen_blandeval_core alone. */
#ifndef BLANDEVAL_H
#define BLANDEVAL_H

#include <stddef.h>
#include "compat.h"

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

#define BE_VERSION "0.1.0"

#if defined(__GNUC__)
#define BE_LIKELY(x) __builtin_expect(!!(x), 1)
#define BE_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define BE_LIKELY(x) (x)
#define BE_UNLIKELY(x) (x)
#endif

/* JSON -> Lua (decode.c) */
typedef struct be_decode_opts {
    int keep_nulls;     /* null -> blandeval.null instead of an absent value */
    int max_depth;      /* deepest nesting of arrays and objects accepted */
    size_t max_size;    /* longest input accepted, in bytes */
} be_decode_opts;

#define BE_DEFAULT_MAX_DEPTH 1000
#define BE_DEFAULT_MAX_SIZE ((size_t)64 << 20)

typedef struct be_decode_error {
    size_t offset;      /* first byte at which the input stops being a prefix of valid JSON */
    char message[160];  /* "<problem> at offset N" */
} be_decode_error;

/* Decodes buf[0..len) into one Lua value pushed on L; buf[len] must be '\0'
 * (Lua strings and the transport's buffers are). Returns 1 on success; on bad
 * input pushes nothing, fills *err and returns 0. Only a memory error raises,
 * and the decoder owns no memory that such an error could leak. */
int be_decode(lua_State *L, const char *buf, size_t len,
              const be_decode_opts *opts, be_decode_error *err);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
