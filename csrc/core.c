/* core.c: the blandeval.core module table and its argument checking. */

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "blandeval.h"

#if defined(__GNUC__)
#define BE_EXPORT __attribute__((visibility("default")))
#else
#define BE_EXPORT
#endif

BE_EXPORT int luaopen_blandeval_core(lua_State *L);

/* Reads an optional whole number option >= min from the table at index t. */
static lua_Number opt_whole(lua_State *L, int t, const char *name, lua_Number def,
                            lua_Number min, lua_Number max)
{
    lua_Number v;

    lua_getfield(L, t, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || v != v || v < min || v > max || v != (lua_Number)(long long)v) {
        char range[64];
        snprintf(range, sizeof range, "from %.0f to %.0f", (double)min, (double)max);
        luaL_error(L, "bad argument #2 to 'decode' (option '%s' must be a whole number %s, got %s)",
                   name, range, lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1)
                                                              : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

static const char *const decode_options[] = { "keep_nulls", "max_depth", "max_size", NULL };

/* Rejects option names that decode does not know, so a typo is not silently
 * ignored. */
static void check_option_names(lua_State *L, int t, const char *fname,
                               const char *const *known)
{
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        int i, ok = 0;
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -2);
            for (i = 0; known[i] != NULL; i++)
                if (strcmp(k, known[i]) == 0)
                    ok = 1;
        }
        if (!ok) {
            lua_pop(L, 1);
            luaL_error(L, "bad argument #2 to '%s' (unknown option '%s')", fname,
                       lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                       : luaL_typename(L, -1));
        }
        lua_pop(L, 1);
    }
}

/* blandeval.decode(text [, opts]) -> value | nil, message, offset */
static int l_decode(lua_State *L)
{
    size_t len;
    const char *text;
    be_decode_opts o;
    be_decode_error err;

    if (lua_type(L, 1) != LUA_TSTRING)       /* a number is not JSON text */
        return luaL_argerror(L, 1, lua_pushfstring(L, "string expected, got %s",
                                                   luaL_typename(L, 1)));
    text = lua_tolstring(L, 1, &len);
    o.keep_nulls = 0;
    o.max_depth = BE_DEFAULT_MAX_DEPTH;
    o.max_size = BE_DEFAULT_MAX_SIZE;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        check_option_names(L, 2, "decode", decode_options);
        lua_getfield(L, 2, "keep_nulls");
        if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
            luaL_error(L, "bad argument #2 to 'decode' (option 'keep_nulls' must be a boolean, got %s)",
                       luaL_typename(L, -1));
        o.keep_nulls = lua_toboolean(L, -1);
        lua_pop(L, 1);
        o.max_depth = (int)opt_whole(L, 2, "max_depth", BE_DEFAULT_MAX_DEPTH, 1, BE_MAX_DEPTH);
        o.max_size = (size_t)opt_whole(L, 2, "max_size", (lua_Number)BE_DEFAULT_MAX_SIZE, 0, 9e15);
        lua_settop(L, 1);
    }
    if (be_decode(L, text, len, &o, &err))
        return 1;
    lua_pushnil(L);
    lua_pushstring(L, err.message);
    be_pushint(L, err.offset);
    return 3;
}

static const luaL_Reg functions[] = {
    { "decode", l_decode },
    { NULL, NULL }
};

/* libcurl's global init must run once per process, before any handle, and
 * is not thread-safe in every build: the one piece of process-wide state. It
 * is never undone (a __gc or a reload must not pull it from under other users). */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

BE_EXPORT int luaopen_blandeval_core(lua_State *L)
{
    const curl_version_info_data *cv;

    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return luaL_error(L, "blandeval: libcurl failed to initialise: %s",
                          curl_easy_strerror(curl_init_rc));
    cv = curl_version_info(CURLVERSION_NOW);
    be_errors_open(L);
    be_pager_open(L);
    lua_newtable(L);
    be_setfuncs(L, functions, 0);
    be_client_open(L);
    be_batch_open(L);
    be_retry_open(L);
    be_pager_expose(L);
    be_errors_expose(L);
    lua_pushlightuserdata(L, NULL);          /* the same value as cjson.null and ngx.null */
    lua_setfield(L, -2, "null");
    lua_pushliteral(L, BE_VERSION);
    lua_setfield(L, -2, "_VERSION");
    lua_pushstring(L, cv->version);
    lua_setfield(L, -2, "libcurl_version");
    return 1;
}
