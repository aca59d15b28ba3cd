/* errors.c: error values. A runtime failure is a table with a kind and what
 * is known of it; its __tostring reads well in a log. The API key is redacted
 * by value from every string an error carries. */

#include <string.h>

#include "blandeval.h"

/* Pushes s with every occurrence of secret replaced. */
void be_push_redacted(lua_State *L, const char *s, const char *secret)
{
    size_t n = secret != NULL ? strlen(secret) : 0;
    const char *hit;
    luaL_Buffer b;

    if (n == 0 || (hit = strstr(s, secret)) == NULL) {
        lua_pushstring(L, s);
        return;
    }
    luaL_buffinit(L, &b);
    do {
        luaL_addlstring(&b, s, (size_t)(hit - s));
        luaL_addstring(&b, "[REDACTED]");
        s = hit + n;
    } while ((hit = strstr(s, secret)) != NULL);
    luaL_addstring(&b, s);
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

/* core.error(t) -> t as an error value (for transports written in Lua) */
static int l_error(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_getmetatable(L, BE_ERROR_MT);
    lua_setmetatable(L, 1);
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
