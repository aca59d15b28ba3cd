/* decode_diff.c: differential fuzz target, blandeval.decode against lua-cjson
 * (Debian's lua-cjson 2.1.0 for Lua 5.4, loaded by require in the same state).
 *
 * When both accept a text their values must be deeply equal. The differences
 * the README documents are compared for, not skipped:
 *   - numbers: cjson gives floats only; a blandeval integer must equal, as a
 *     double, what cjson's strtod made of the same literal (exact up to 2^53,
 *     correctly rounded beyond), and zeros must have the same sign;
 *   - null: with keep_nulls both give the NULL light userdata; by default
 *     blandeval leaves null members out, leaves null array slots nil and
 *     records such an array's length as n, and keeps a top-level null.
 * Duplicate keys (the last wins) must agree too. Classes documented to
 * differ, skipped:
 *   - texts cjson accepts and blandeval rejects by design (NaN, Infinity, hex,
 *     leading zeros or '+', "1.", raw control characters, invalid UTF-8,
 *     anything after a NUL byte, numbers beyond the double range): only texts
 *     both accept are compared;
 *   - texts blandeval accepts and cjson rejects: a UTF-8 byte order mark, and
 *     surrogate escapes (blandeval turns a lone one into U+FFFD; to keep the
 *     test simple any text with a \uD800-\uDFFF escape is left out). Every
 *     other text blandeval accepts cjson must accept too. */

#include <dlfcn.h>

#include "harness.h"

#ifndef BE_FUZZ_CMOD
#define BE_FUZZ_CMOD "/usr/lib/x86_64-linux-gnu/lua/5.4"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Loads cjson.so once for the whole run, so that the require of every input
 * (and the dlclose when its state closes) does not map it afresh. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(dlopen(BE_FUZZ_CMOD "/cjson.so", RTLD_NOW) != NULL, "cannot load cjson: %s", dlerror());
    return 0;
}

static int is_null(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

static int same_number(lua_State *L, int a, int b)
{
    double x, y;

    if (lua_isinteger(L, b))                 /* not Debian's cjson, but exact if so */
        return lua_isinteger(L, a) ? lua_tointeger(L, a) == lua_tointeger(L, b)
                                   : (double)lua_tonumber(L, a) == (double)lua_tointeger(L, b);
    x = lua_isinteger(L, a) ? (double)lua_tointeger(L, a) : (double)lua_tonumber(L, a);
    y = (double)lua_tonumber(L, b);
    return x == y && !signbit(x) == !signbit(y);
}

static int same(lua_State *L, int a, int b, int strip);

/* Tables: cjson's arrays have the keys 1..n, its objects string keys. */
static int same_table(lua_State *L, int a, int b, int strip)
{
    lua_Integer expected = 0, got = 0, len = 0;
    int has_null = 0, ok = 1;

    luaL_checkstack(L, 6, "decode_diff");
    lua_pushnil(L);
    while (ok && lua_next(L, b) != 0) {      /* key -2, value -1 */
        if (lua_type(L, -2) == LUA_TNUMBER)
            len++;
        lua_pushvalue(L, -2);
        lua_rawget(L, a);
        if (strip && is_null(L, -2)) {
            ok = lua_isnil(L, -1);           /* a null member or slot: absent */
            has_null = 1;
        } else {
            ok = same(L, lua_gettop(L), lua_gettop(L) - 1, strip);
            expected++;
        }
        lua_pop(L, 2);
    }
    if (!ok) {
        lua_pop(L, 1);                       /* the key */
        return 0;
    }
    if (strip && has_null && len > 0) {      /* an array with nulls records its length */
        lua_getfield(L, a, "n");
        ok = lua_isinteger(L, -1) && lua_tointeger(L, -1) == len;
        lua_pop(L, 1);
        expected++;
    }
    lua_pushnil(L);
    while (lua_next(L, a) != 0) {
        got++;
        lua_pop(L, 1);
    }
    return ok && got == expected;
}

/* Whether blandeval's value at a is what cjson's at b stands for; strip:
 * blandeval's was decoded without keep_nulls. */
static int same(lua_State *L, int a, int b, int strip)
{
    switch (lua_type(L, b)) {
    case LUA_TNUMBER: return lua_type(L, a) == LUA_TNUMBER && same_number(L, a, b);
    case LUA_TSTRING: return lua_type(L, a) == LUA_TSTRING && lua_rawequal(L, a, b);
    case LUA_TBOOLEAN:
        return lua_type(L, a) == LUA_TBOOLEAN && lua_toboolean(L, a) == lua_toboolean(L, b);
    case LUA_TLIGHTUSERDATA: return is_null(L, a) && is_null(L, b);
    case LUA_TTABLE: return lua_type(L, a) == LUA_TTABLE && same_table(L, a, b, strip);
    default: return 0;
    }
}

/* The texts that blandeval accepts and cjson refuses, as documented. */
static int cjson_refuses_by_design(const unsigned char *s, size_t len)
{
    size_t i;

    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        return 1;
    for (i = 0; i + 3 < len; i++)
        if (s[i] == '\\' && s[i + 1] == 'u' && (s[i + 2] | 0x20) == 'd'
            && ((s[i + 3] >= '8' && s[i + 3] <= '9') || ((s[i + 3] | 0x20) >= 'a'
                                                          && (s[i + 3] | 0x20) <= 'f')))
            return 1;
    return 0;
}

/* blandeval.decode(text, {keep_nulls = keep}): leaves the value or nil on top. */
static void blandeval_decode(lua_State *L, int keep)
{
    lua_getfield(L, 1, "decode");
    lua_pushvalue(L, 3);
    lua_createtable(L, 0, 1);
    lua_pushboolean(L, keep);
    lua_setfield(L, -2, "keep_nulls");
    FUZZ_CHECK(lua_pcall(L, 2, 1, 0) == LUA_OK, "decode raised: %s", lua_tostring(L, -1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_state();
    int cjson_ok;

    luaL_requiref(L, "package", luaopen_package, 1);
    lua_pushliteral(L, BE_FUZZ_CMOD "/?.so");
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    FUZZ_CHECK(lua_pcall(L, 1, 1, 0) == LUA_OK, "require 'cjson': %s", lua_tostring(L, -1));
    lua_getfield(L, -1, "decode");
    lua_replace(L, 2);                       /* 2: cjson.decode */
    lua_pushlstring(L, (const char *)data, size);            /* 3: the text */

    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    cjson_ok = lua_pcall(L, 1, 1, 0) == LUA_OK;              /* 4: cjson's value */
    blandeval_decode(L, 1);                                  /* 5: with keep_nulls */
    if (lua_isnil(L, 5) || (!cjson_ok && cjson_refuses_by_design(data, size))) {
        lua_close(L);
        return 0;
    }
    FUZZ_CHECK(cjson_ok, "blandeval accepts a text cjson refuses: %s", lua_tostring(L, 4));
    FUZZ_CHECK(same(L, 5, 4, 0), "keep_nulls = true: blandeval and cjson disagree");
    blandeval_decode(L, 0);                                  /* 6: default options */
    FUZZ_CHECK(!lua_isnil(L, 6), "accepted with keep_nulls only");
    FUZZ_CHECK(same(L, 6, 4, 1), "default options: blandeval and cjson disagree");
    lua_close(L);
    return 0;
}
