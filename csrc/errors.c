/* errors.c: error values. A runtime failure is a table with a kind and what
 * is known of it; its __tostring reads well in a log. The API key is redacted
 * by value from every string an error carries. */

#include <string.h>

#include "blandeval.h"

/* The length of the longest ending of s (at least 4 bytes, or all of a
 * shorter secret) that is a beginning of secret: what is left of the secret
 * where a copy of it was cut to fit a buffer. */
static size_t cut_secret(const char *s, size_t len, const char *secret, size_t n)
{
    size_t k = len < n ? len : n - 1, min = n < 4 ? n : 4;

    for (; k >= min && k > 0; k--)
        if (memcmp(s + len - k, secret, k) == 0)
            return k;
    return 0;
}

/* Pushes s with every occurrence of secret, and a cut-short copy of it at the
 * end, replaced. */
void be_push_redacted(lua_State *L, const char *s, const char *secret)
{
    size_t n = secret != NULL ? strlen(secret) : 0, len, tail;
    const char *hit;
    luaL_Buffer b;

    if (n == 0) {
        lua_pushstring(L, s);
        return;
    }
    luaL_buffinit(L, &b);
    while ((hit = strstr(s, secret)) != NULL) {
        luaL_addlstring(&b, s, (size_t)(hit - s));
        luaL_addstring(&b, "[REDACTED]");
        s = hit + n;
    }
    len = strlen(s);
    tail = cut_secret(s, len, secret, n);
    luaL_addlstring(&b, s, len - tail);
    if (tail > 0)
        luaL_addstring(&b, "[REDACTED]");
    luaL_pushresult(&b);
}

static void set_string(lua_State *L, const char *field, const char *v, const char *secret)
{
    if (v == NULL || *v == '\0')
        return;
    be_push_redacted(L, v, secret);
    lua_setfield(L, -2, field);
}

void be_push_error(lua_State *L, const be_error *e)
{
    lua_createtable(L, 0, 9);
    lua_pushstring(L, e->kind);
    lua_setfield(L, -2, "kind");
    if (e->status > 0) {
        be_pushint(L, e->status);
        lua_setfield(L, -2, "status");
    }
    set_string(L, "code", e->code, e->redact);
    set_string(L, "message", e->message != NULL ? e->message : e->kind, e->redact);
    set_string(L, "request_id", e->request_id, e->redact);
    set_string(L, "curl", e->curl, NULL);
    lua_pushboolean(L, e->retryable);
    lua_setfield(L, -2, "retryable");
    if (e->attempts > 0) {
        be_pushint(L, e->attempts);
        lua_setfield(L, -2, "attempts");
    }
    luaL_getmetatable(L, BE_ERROR_MT);
    lua_setmetatable(L, -2);
}

/* "blandeval: api error, HTTP 404 EVAL_RUN_NOT_FOUND: Eval run not found
 * [request req_1] after 3 attempts" */
static int error_tostring(lua_State *L)
{
    luaL_Buffer b;
    const char *s;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "kind");              /* 2 */
    lua_getfield(L, 1, "status");            /* 3 */
    lua_getfield(L, 1, "code");              /* 4 */
    lua_getfield(L, 1, "curl");              /* 5 */
    lua_getfield(L, 1, "message");           /* 6 */
    lua_getfield(L, 1, "request_id");        /* 7 */
    lua_getfield(L, 1, "attempts");          /* 8 */
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "blandeval: ");
    luaL_addstring(&b, (s = lua_tostring(L, 2)) != NULL ? s : "unknown");
    luaL_addstring(&b, " error");
    if ((s = lua_tostring(L, 3)) != NULL) {
        luaL_addstring(&b, ", HTTP ");
        luaL_addstring(&b, s);
    }
    if ((s = lua_tostring(L, 4)) != NULL || (s = lua_tostring(L, 5)) != NULL) {
        luaL_addstring(&b, lua_isnil(L, 3) ? ", " : " ");
        luaL_addstring(&b, s);
    }
    if ((s = lua_tostring(L, 6)) != NULL) {
        luaL_addstring(&b, ": ");
        luaL_addstring(&b, s);
    }
    if ((s = lua_tostring(L, 7)) != NULL) {
        luaL_addstring(&b, " [request ");
        luaL_addstring(&b, s);
        luaL_addstring(&b, "]");
    }
    if (lua_tonumber(L, 8) > 1) {
        luaL_addstring(&b, " after ");
        luaL_addstring(&b, lua_tostring(L, 8));
        luaL_addstring(&b, " attempts");
    }
    luaL_pushresult(&b);
    return 1;
}

/* core.error(t [, secret]) -> t as an error value, its strings redacted (for
 * transports written in Lua) */
static int l_error(lua_State *L)
{
    static const char *const fields[] = { "message", "code", "request_id", NULL };
    const char *secret = luaL_optstring(L, 2, NULL);
    int i;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    for (i = 0; fields[i] != NULL && secret != NULL; i++) {
        lua_getfield(L, 1, fields[i]);
        if (lua_type(L, -1) == LUA_TSTRING) {
            be_push_redacted(L, lua_tostring(L, -1), secret);
            lua_setfield(L, 1, fields[i]);
        }
        lua_pop(L, 1);
    }
    luaL_getmetatable(L, BE_ERROR_MT);
    lua_setmetatable(L, 1);
    lua_settop(L, 1);
    return 1;
}

void be_errors_open(lua_State *L)
{
    luaL_newmetatable(L, BE_ERROR_MT);
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}

void be_errors_expose(lua_State *L)
{
    lua_pushcfunction(L, l_error);
    lua_setfield(L, -2, "error");
}
