/* harness.h: what the fuzz targets share. Each input gets a fresh Lua 5.4
 * state with blandeval.core loaded from the objects linked into the target,
 * closed again before the input ends: every __gc has run by then, so
 * libFuzzer's leak check sees every malloc the core made for that input. A
 * broken invariant aborts with a message, which libFuzzer reports as a crash. */
#ifndef BE_FUZZ_HARNESS_H
#define BE_FUZZ_HARNESS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_blandeval_core(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz: invariant broken (%s:%d): ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* A new state with blandeval.core at index 1. */
static inline lua_State *fuzz_state(void)
{
    lua_State *L = luaL_newstate();

    FUZZ_CHECK(L != NULL, "luaL_newstate failed");
    luaL_requiref(L, "blandeval.core", luaopen_blandeval_core, 0);
    FUZZ_CHECK(lua_gettop(L) == 1 && lua_istable(L, 1), "blandeval.core did not load");
    return L;
}

/* Whether the string at idx holds exactly the bytes s[0..n). */
static inline int fuzz_streq(lua_State *L, int idx, const char *s, size_t n)
{
    size_t len;
    const char *v;

    if (lua_type(L, idx) != LUA_TSTRING)
        return 0;
    v = lua_tolstring(L, idx, &len);
    return len == n && memcmp(v, s, n) == 0;
}

/* Whether needle (n bytes, n > 0) occurs in hay (len bytes). */
static inline int fuzz_contains(const char *hay, size_t len, const char *needle, size_t n)
{
    size_t i;

    for (i = 0; n <= len && i <= len - n; i++)
        if (memcmp(hay + i, needle, n) == 0)
            return 1;
    return 0;
}

/* Whether the message at idx is "... at offset <off>" with that offset. */
static inline int fuzz_names_offset(lua_State *L, int idx, lua_Integer off)
{
    char tail[48];
    size_t len, n;
    const char *msg = lua_tolstring(L, idx, &len);

    n = (size_t)snprintf(tail, sizeof tail, " at offset %lld", (long long)off);
    return msg != NULL && len >= n && memcmp(msg + len - n, tail, n) == 0;
}

#endif
