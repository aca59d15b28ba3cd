/* decode.c: fuzz target for blandeval.decode on arbitrary bytes.
 *
 * Input: one byte that chooses the options, then the text. Options may be
 * absent, valid (keep_nulls, max_depth, max_size at the text's length or one
 * below it) or bad, and bad ones must raise a clean "bad argument #2" error.
 * With good options decode returns a value, or nil, a message and an offset:
 *   - the offset lies within the input and the message ends with it;
 *   - the text before the offset is a beginning of valid JSON: decoding it
 *     alone succeeds or stops exactly there with "unexpected end of input";
 *   - for a syntax error, the byte at the offset is the first that is not:
 *     the text up to and including it fails there, naming it (the limits,
 *     max_depth and the double range, point at the container or number that
 *     goes beyond them, which is a valid beginning);
 *   - an accepted text nests no deeper than max_depth, and is accepted with
 *     keep_nulls flipped too. */

#include "harness.h"

/* option byte: bits 0-1 mode, 2-3 keep_nulls, 4-7 max_depth */
enum { MODE_NONE, MODE_TABLE, MODE_SIZED, MODE_BAD };
enum { DEPTH_ABSENT = 0, DEPTH_FIRST_BAD = 12 };
static const double depths[16] = { 0, 1, 2, 3, 4, 8, 31, 32, 33, 64, 1000, 100000,
                                   0, 100001, 2.5, NAN };

/* Calls decode (index 2) on the string at text_idx with the options at
 * opts_idx; leaves its results above top and returns the pcall status. */
static int call_decode(lua_State *L, int text_idx, int opts_idx, int *nres)
{
    int top = lua_gettop(L), status;

    lua_pushvalue(L, 2);
    lua_pushvalue(L, text_idx);
    lua_pushvalue(L, opts_idx);
    status = lua_pcall(L, 2, LUA_MULTRET, 0);
    *nres = lua_gettop(L) - top;
    return status;
}

/* The deepest nesting of arrays and objects in a valid JSON text. */
static long text_depth(const unsigned char *s, size_t len)
{
    long depth = 0, max = 0;
    size_t i;
    int in_string = 0;

    for (i = 0; i < len; i++) {
        if (in_string) {
            if (s[i] == '\\')
                i++;
            else if (s[i] == '"')
                in_string = 0;
        } else if (s[i] == '"')
            in_string = 1;
        else if (s[i] == '[' || s[i] == '{') {
            if (++depth > max)
                max = depth;
        } else if (s[i] == ']' || s[i] == '}')
            depth--;
    }
    return max;
}

/* A copy of the options table at opts_idx (nil: none) with keep_nulls flipped. */
static void push_flipped(lua_State *L, int opts_idx)
{
    int keep = 0;

    lua_newtable(L);
    if (lua_istable(L, opts_idx)) {
        lua_getfield(L, opts_idx, "keep_nulls");
        keep = lua_toboolean(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, opts_idx, "max_depth");
        lua_setfield(L, -2, "max_depth");
        lua_getfield(L, opts_idx, "max_size");
        lua_setfield(L, -2, "max_size");
    }
    lua_pushboolean(L, !keep);
    lua_setfield(L, -2, "keep_nulls");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *text = data + 1;
    lua_State *L;
    size_t len, max_size = (size_t)64 << 20;
    int mode, keep, depth, bad = 0, status, nres;
    long max_depth = 1000;

    if (size == 0)
        return 0;
    mode = data[0] & 3;
    keep = (data[0] >> 2) & 3;
    depth = data[0] >> 4;
    len = size - 1;

    L = fuzz_state();
    lua_getfield(L, 1, "decode");                          /* 2 */
    lua_pushlstring(L, (const char *)text, len);           /* 3 */
    if (mode == MODE_NONE) {
        lua_pushnil(L);                                    /* 4: the options */
    } else if (mode == MODE_BAD) {
        bad = 1;
        if (keep & 1)
            lua_pushinteger(L, 5);
        else {
            lua_newtable(L);
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "max_deep");
        }
    } else {
        lua_newtable(L);
        if (keep == 1 || keep == 2) {
            lua_pushboolean(L, keep == 2);
            lua_setfield(L, -2, "keep_nulls");
        } else if (keep == 3) {
            lua_pushliteral(L, "yes");
            lua_setfield(L, -2, "keep_nulls");
            bad = 1;
        }
        if (depth != DEPTH_ABSENT) {
            if (depths[depth] == floor(depths[depth]))
                lua_pushinteger(L, (lua_Integer)depths[depth]);
            else
                lua_pushnumber(L, depths[depth]);
            lua_setfield(L, -2, "max_depth");
            if (depth >= DEPTH_FIRST_BAD)
                bad = 1;
            else
                max_depth = (long)depths[depth];
        }
        if (mode == MODE_SIZED) {                          /* the limit, or just below it */
            max_size = keep == 0 && len > 0 ? len - 1 : len;
            lua_pushinteger(L, (lua_Integer)max_size);
            lua_setfield(L, -2, "max_size");
        }
    }

    status = call_decode(L, 3, 4, &nres);
    if (bad) {
        FUZZ_CHECK(status != LUA_OK, "bad options were accepted");
        /* luaL_checktype names the function as found in package.loaded */
        FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING
                   && (strstr(lua_tostring(L, -1), "bad argument #2 to 'decode'") != NULL
                       || strstr(lua_tostring(L, -1), "bad argument #2 to 'blandeval.core.decode'")
                          != NULL),
                   "bad options raised an unclear error: %s", lua_tostring(L, -1));
        lua_close(L);
        return 0;
    }
    FUZZ_CHECK(status == LUA_OK, "decode raised: %s", lua_tostring(L, -1));

    if (!lua_isnil(L, 5)) {                                /* accepted */
        FUZZ_CHECK(nres == 1, "decode returned %d values with a value", nres);
        FUZZ_CHECK(len <= max_size, "a text longer than max_size was accepted");
        FUZZ_CHECK(text_depth(text, len) <= max_depth, "nesting %ld beyond max_depth %ld accepted",
                   text_depth(text, len), max_depth);
        lua_settop(L, 4);
        push_flipped(L, 4);                                /* 5 */
        status = call_decode(L, 3, 5, &nres);
        FUZZ_CHECK(status == LUA_OK && nres == 1 && !lua_isnil(L, 6),
                   "accepted with one keep_nulls, not with the other");
    } else {                                               /* rejected */
        lua_Integer off;
        FUZZ_CHECK(nres == 3 && lua_type(L, 6) == LUA_TSTRING && lua_isinteger(L, 7),
                   "a rejection is not nil, message, offset");
        off = lua_tointeger(L, 7);
        FUZZ_CHECK(off >= 0 && (size_t)off <= len, "offset %lld outside the input (%zu bytes)",
                   (long long)off, len);
        FUZZ_CHECK(fuzz_names_offset(L, 6, off), "message does not end with its offset: %s",
                   lua_tostring(L, 6));
        if (len > max_size) {
            FUZZ_CHECK((size_t)off == max_size
                       && strncmp(lua_tostring(L, 6), "input larger than max_size", 26) == 0,
                       "an oversized input got: %s", lua_tostring(L, 6));
        } else {
            /* the limits point at the number or container beyond them, a
             * valid beginning; a syntax error at the first byte that is not */
            int limit = strncmp(lua_tostring(L, 6), "number out of range", 19) == 0
                        || strncmp(lua_tostring(L, 6), "nesting deeper than max_depth", 29) == 0;
            lua_settop(L, 4);
            lua_pushlstring(L, (const char *)text, (size_t)off);   /* 5 */
            status = call_decode(L, 5, 4, &nres);
            FUZZ_CHECK(status == LUA_OK, "decoding the prefix raised");
            if (lua_isnil(L, 6)) {
                FUZZ_CHECK(nres == 3 && lua_tointeger(L, 8) == off
                           && strncmp(lua_tostring(L, 7), "unexpected end of input", 23) == 0,
                           "the text before offset %lld is not a beginning of valid JSON: %s",
                           (long long)off, lua_tostring(L, 7));
            }
            if ((size_t)off < len && !limit) {
                lua_settop(L, 4);
                lua_pushlstring(L, (const char *)text, (size_t)off + 1);   /* 5 */
                status = call_decode(L, 5, 4, &nres);
                FUZZ_CHECK(status == LUA_OK && nres == 3 && lua_isnil(L, 6)
                           && lua_tointeger(L, 8) == off
                           && strncmp(lua_tostring(L, 7), "unexpected end of input", 23) != 0,
                           "offset %lld is not the first bad byte: with it, the text gives %s",
                           (long long)off, lua_isnil(L, 6) ? lua_tostring(L, 7) : "a value");
            }
        }
    }
    lua_close(L);
    return 0;
}
