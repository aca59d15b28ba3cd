/* pager.c: the cursor state machine, without I/O. It says which URL to get
 * next and turns each response (status, headers, body) into a page or an
 * error value: envelope checks, cursor rules and loop detection live here
 * once, for every transport. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blandeval.h"

static char *dup_string(lua_State *L, const char *s, size_t len)
{
    char *d = (char *)malloc(len + 1);
    if (d == NULL)
        luaL_error(L, "blandeval: out of memory");
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

static void free_strings(be_pager *p)
{
    free(p->path);
    free(p->query);
    free(p->cursor);
    free(p->prev_cursor);
    p->path = p->query = p->cursor = p->prev_cursor = NULL;
}

static int pager_gc(lua_State *L)
{
    free_strings((be_pager *)luaL_checkudata(L, 1, BE_PAGER_MT));
    return 0;
}

/* Percent-encodes s into b: everything but RFC 3986's unreserved characters,
 * so that no run id or cursor can change the path or add a parameter. */
static void add_escaped(luaL_Buffer *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
            || c == '-' || c == '.' || c == '_' || c == '~') {
            luaL_addchar(b, (char)c);
        } else {
            luaL_addchar(b, '%');
            luaL_addchar(b, hex[c >> 4]);
            luaL_addchar(b, hex[c & 15]);
        }
    }
}

/* Takes the string on the top of the stack as a new malloc'd copy in *slot,
 * its length (it may hold NUL bytes) in *len. */
static void take_string(lua_State *L, char **slot, size_t *len)
{
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    char *d = dup_string(L, s, n);
    free(*slot);
    *slot = d;
    if (len != NULL)
        *len = n;
    lua_pop(L, 1);
}

/* The endpoints: a path (with the escaped run id where "%" stands), and what
 * the data holds: a paged list, a list in one page, or one object. */
enum { EP_PAGED = 1, EP_LIST, EP_OBJECT };

static const struct endpoint {
    const char *name, *before, *after;      /* path = before .. run id .. after */
    int kind, has_id;
} endpoints[] = {
    { "call-results", "/v1/evals/runs/", "/call-results", EP_PAGED, 1 },
    { "agent-results", "/v1/evals/runs/", "/agent-results", EP_PAGED, 1 },
    { "agent-snapshots", "/v1/evals/runs/", "/agent-snapshots", EP_LIST, 1 },
    { "run", "/v1/evals/runs/", "", EP_OBJECT, 1 },
    { "runs", "/v1/evals/runs", "", EP_PAGED, 0 },
    { "status", "/v1/evals/status", "", EP_OBJECT, 0 },
    { NULL, NULL, NULL, 0, 0 }
};

/* The query parameters a request may carry besides its cursor, in the order
 * they are sent. The Lua layer has checked which belong to which endpoint. */
static const char *const query_params[] = {
    "include_agent_results", "limit", "eval_agent_id", "workbench_setup_id", "status",
    "triggered_by", NULL
};

/* Writes the whole number at idx into out (32 bytes), or returns 0 when it is
 * not one of at most 2^53 in magnitude: exact as a double on every VM, so the
 * URL says exactly what was given. */
static int whole_param(lua_State *L, int idx, char *out)
{
    const lua_Number max = 9007199254740992.0;
    lua_Number x;

#if BE_HAS_INTEGERS
    if (lua_isinteger(L, idx)) {
        lua_Integer n = lua_tointeger(L, idx);
        if (n > ((lua_Integer)1 << 53) || n < -((lua_Integer)1 << 53))
            return 0;
        snprintf(out, 32, "%lld", (long long)n);
        return 1;
    }
#endif
    x = lua_tonumber(L, idx);
    if (!(x >= -max && x <= max) || x != (lua_Number)(long long)x)   /* NaN fails too */
        return 0;
    snprintf(out, 32, "%lld", (long long)x);
    return 1;
}

/* Checks the cursor on the top of the stack: a non-empty string. */
static void check_cursor(lua_State *L, int params_idx, const char *name)
{
    if (lua_type(L, -1) != LUA_TSTRING || be_rawlen(L, -1) == 0)
        luaL_argerror(L, params_idx, lua_pushfstring(L, "'%s' must be a non-empty string", name));
}

/* Creates a pager for endpoint (a name of the table above) of the run at
 * run_id_idx (ignored by endpoints without one), with the query parameters of
 * the table at params_idx (0: none) and its starting_after or ending_before.
 * The Lua layer checks them with its own messages; what it would refuse and
 * could still reach here (a run id that is not one path segment, a value the
 * URL cannot carry exactly, two cursors) raises a bad argument error. */
be_pager *be_pager_push(lua_State *L, const char *endpoint, int run_id_idx, int params_idx,
                        int keep_nulls)
{
    be_pager *p = (be_pager *)be_newuserdata(L, sizeof *p);
    const struct endpoint *ep = endpoints;
    luaL_Buffer b;
    int i, first = 1;

    while (ep->name != NULL && strcmp(ep->name, endpoint) != 0)
        ep++;
    if (ep->name == NULL)
        luaL_error(L, "blandeval: unknown endpoint '%s'", endpoint);
    memset(p, 0, sizeof *p);
    luaL_getmetatable(L, BE_PAGER_MT);
    lua_setmetatable(L, -2);
    p->keep_nulls = keep_nulls;
    p->paged = ep->kind == EP_PAGED;
    p->object = ep->kind == EP_OBJECT;

    luaL_buffinit(L, &b);
    luaL_addstring(&b, ep->before);
    if (ep->has_id) {
        size_t len;
        const char *run_id = luaL_checklstring(L, run_id_idx, &len);
        /* "." and ".." stay dot segments even percent-encoded (RFC 3986 6.2.2.2) */
        if (len == 0 || (len <= 2 && run_id[0] == '.' && run_id[len - 1] == '.'))
            luaL_argerror(L, run_id_idx, "a run id cannot be empty, \".\" or \"..\"");
        add_escaped(&b, run_id, len);
    }
    luaL_addstring(&b, ep->after);
    luaL_pushresult(&b);
    take_string(L, &p->path, NULL);

    if (params_idx == 0 || !p->paged) {
        p->query = dup_string(L, "", 0);
        return p;
    }
    /* the values are used after they leave the stack, while the URL is built: only
     * the table may hold them, not an __index that makes them */
    if (lua_getmetatable(L, params_idx))
        luaL_argerror(L, params_idx, "params cannot have a metatable");
    luaL_buffinit(L, &b);
    for (i = 0; query_params[i] != NULL; i++) {
        lua_getfield(L, params_idx, query_params[i]);
        if (!lua_isnil(L, -1)) {
            char num[32];
            size_t len;
            const char *v;
            int t = lua_type(L, -1);
            if (t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING)
                luaL_argerror(L, params_idx, lua_pushfstring(L,
                              "parameter '%s' must be a string, a boolean or a number, got %s",
                              query_params[i], luaL_typename(L, -1)));
            if (t == LUA_TBOOLEAN) {
                v = lua_toboolean(L, -1) ? "true" : "false";
                len = strlen(v);
            } else if (t == LUA_TNUMBER) {
                if (!whole_param(L, -1, num))
                    luaL_argerror(L, params_idx, lua_pushfstring(L,
                                  "parameter '%s' must be a whole number of at most 2^53",
                                  query_params[i]));
                v = num;
                len = strlen(v);
            } else
                v = lua_tolstring(L, -1, &len);
            lua_pop(L, 1);                   /* the table keeps any string alive */
            if (!first)
                luaL_addchar(&b, '&');
            luaL_addstring(&b, query_params[i]);
            luaL_addchar(&b, '=');
            add_escaped(&b, v, len);
            first = 0;
        } else
            lua_pop(L, 1);
    }
    luaL_pushresult(&b);
    take_string(L, &p->query, NULL);

    lua_getfield(L, params_idx, "ending_before");
    lua_getfield(L, params_idx, "starting_after");
    if (!lua_isnil(L, -1) && !lua_isnil(L, -2))
        luaL_argerror(L, params_idx, "starting_after and ending_before cannot be combined");
    if (!lua_isnil(L, -1)) {
        check_cursor(L, params_idx, "starting_after");
        take_string(L, &p->cursor, &p->cursor_len);
    } else {
        lua_pop(L, 1);
        if (!lua_isnil(L, -1)) {
            check_cursor(L, params_idx, "ending_before");
            p->backward = 1;
            lua_pushvalue(L, -1);
            take_string(L, &p->cursor, &p->cursor_len);
        }
    }
    lua_pop(L, 1);
    return p;
}

/* Pushes the URL of the next request. */
void be_pager_push_url(lua_State *L, const be_pager *p, const char *base_url)
{
    luaL_Buffer b;

    luaL_buffinit(L, &b);
    luaL_addstring(&b, base_url);
    luaL_addstring(&b, p->path);
    if (p->query[0] != '\0' || p->cursor != NULL)
        luaL_addchar(&b, '?');
    luaL_addstring(&b, p->query);
    if (p->cursor != NULL) {
        if (p->query[0] != '\0')
            luaL_addchar(&b, '&');
        luaL_addstring(&b, p->backward ? "ending_before=" : "starting_after=");
        add_escaped(&b, p->cursor, p->cursor_len);
    }
    luaL_pushresult(&b);
}

/* ---- responses ----------------------------------------------------------- */

static int is_null(lua_State *L, int idx)
{
    return lua_isnil(L, idx) || (lua_islightuserdata(L, idx) && lua_touserdata(L, idx) == NULL);
}

/* Pushes an error value built from e, filling in the response's request id. */
static int push_fail(lua_State *L, be_error *e, const be_http *h, const char *secret)
{
    e->request_id = h->request_id;
    e->redact = secret;
    be_push_error(L, e);
    return 0;
}

/* The API's error code and message from a decoded error body at idx
 * ({"errors":[{"error":CODE,"message":...}]}; "code" instead of "error", or a
 * plain string item, also occur). Leaves code and message on the stack. */
static int api_error_fields(lua_State *L, int idx, const char **code, const char **message)
{
    *code = *message = NULL;
    if (!lua_istable(L, idx)) {
        lua_pushnil(L);
        lua_pushnil(L);
        return 0;
    }
    lua_getfield(L, idx, "errors");
    if (lua_istable(L, -1)) {
        lua_rawgeti(L, -1, 1);
        lua_remove(L, -2);
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        *message = lua_tostring(L, -1);
        lua_pushnil(L);
        lua_insert(L, -2);                   /* nil code below the message */
        return 1;
    }
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_getfield(L, idx, "message");     /* legacy {"status":"error","message":...} */
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            lua_pushnil(L);
            lua_pushnil(L);
            return 0;
        }
        *message = lua_tostring(L, -1);
        lua_pushnil(L);
        lua_insert(L, -2);
        return 1;
    }
    lua_getfield(L, -1, "error");
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        lua_getfield(L, -1, "code");
    }
    lua_getfield(L, -2, "message");
    lua_remove(L, -3);
    *code = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    *message = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    return *code != NULL || *message != NULL;
}

static int status_retryable(long status)
{
    return status == 408 || status == 409 || status == 429 || status >= 500;
}

/* A non-2xx answer: an api error when the body is the API's error envelope,
 * an http error otherwise (an HTML page from a proxy, an empty body). */
static int http_failure(lua_State *L, const be_http *h, const char *secret)
{
    be_decode_opts o = { 0, 64, (size_t)-1 };
    be_decode_error derr;
    be_error e;
    char msg[96];
    int top = lua_gettop(L);

    memset(&e, 0, sizeof e);
    e.status = h->status;
    e.retryable = status_retryable(h->status);
    if (h->len > 0 && be_decode(L, h->body, h->len, &o, &derr)
        && api_error_fields(L, top + 1, &e.code, &e.message)) {
        e.kind = "api";
        push_fail(L, &e, h, secret);
        lua_replace(L, top + 1);
        lua_settop(L, top + 1);
        return 0;
    }
    lua_settop(L, top);
    e.kind = "http";
    snprintf(msg, sizeof msg, "HTTP %ld%s", h->status,
             strstr(h->content_type, "html") != NULL ? " with an HTML page" : "");
    e.message = msg;
    return push_fail(L, &e, h, secret);
}

/* The same, with the message on the top of the stack: built whole, so that
 * redaction sees every byte of what the server sent. */
static int protocol_failure_top(lua_State *L, const be_http *h, const char *secret, int top)
{
    be_error e;

    memset(&e, 0, sizeof e);
    e.kind = "protocol";
    e.status = h->status;
    e.message = lua_tostring(L, -1);
    push_fail(L, &e, h, secret);
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return 0;
}

static int protocol_failure(lua_State *L, const be_http *h, const char *secret,
                            const char *message, int top)
{
    be_error e;

    lua_settop(L, top);
    memset(&e, 0, sizeof e);
    e.kind = "protocol";
    e.status = h->status;
    e.message = message;
    return push_fail(L, &e, h, secret);
}

/* Copies field name from the table at from (or, when absent, from the table
 * at alt) into the table on the top of the stack. */
static void copy_field(lua_State *L, int from, int alt, const char *name)
{
    lua_getfield(L, from, name);
    if (is_null(L, -1)) {
        lua_pop(L, 1);
        lua_getfield(L, alt, name);
    }
    lua_setfield(L, -2, name);
}

/* Turns the response in h into a page (pushed, returns 1) or an error value
 * (pushed, returns 0), and advances the pager. seen_idx (0: none) is a table
 * of the item ids seen so far in this iteration. */
int be_pager_response(lua_State *L, be_pager *p, const be_http *h, int seen_idx,
                      const char *secret)
{
    be_decode_opts o;
    be_decode_error derr;
    int top = lua_gettop(L), body, data, items;
    size_t n, i;

    if (h->status < 200 || h->status > 299)
        return http_failure(L, h, secret);
    o.keep_nulls = p->keep_nulls;
    o.max_depth = BE_DEFAULT_MAX_DEPTH;
    o.max_size = (size_t)-1;                 /* the transport caps the body */
    if (!be_decode(L, h->body, h->len, &o, &derr)) {
        be_error e;
        memset(&e, 0, sizeof e);
        e.kind = "decode";
        e.status = h->status;
        e.message = derr.message;
        return push_fail(L, &e, h, secret);
    }
    body = top + 1;
    if (!lua_istable(L, body))
        return protocol_failure(L, h, secret, "the body is not the API's envelope (not an object)", top);
    lua_getfield(L, body, "errors");
    if (!is_null(L, -1)) {
        const char *code, *message;
        be_error e;
        api_error_fields(L, body, &code, &message);
        lua_pushfstring(L, "a %d answer carries errors: %s", (int)h->status,
                        message != NULL ? message : code != NULL ? code : "(no message)");
        memset(&e, 0, sizeof e);
        e.kind = "protocol";
        e.status = h->status;
        e.code = code;
        e.message = lua_tostring(L, -1);
        e.request_id = h->request_id;
        e.redact = secret;
        be_push_error(L, &e);
        lua_replace(L, top + 1);
        lua_settop(L, top + 1);
        return 0;
    }
    lua_pop(L, 1);
    lua_getfield(L, body, "data");
    data = top + 2;
    if (!lua_istable(L, data))
        return protocol_failure(L, h, secret, "the body is not the API's envelope (no data object)", top);
    if (p->object) {                         /* one object: the answer is data itself */
        p->done = 1;
        p->pages++;
        lua_replace(L, body);
        lua_settop(L, body);
        return 1;
    }
    lua_getfield(L, data, "data");
    items = top + 3;
    if (!lua_istable(L, items))
        return protocol_failure(L, h, secret, "the body is not a list (data.data is not an array)", top);
    lua_getfield(L, data, "has_more");
    if (lua_type(L, -1) != LUA_TBOOLEAN)
        return protocol_failure(L, h, secret, "the body is not a list (has_more is not a boolean)", top);
    n = (size_t)be_rawlen(L, items);

    /* every item needs an id, and none may come twice in one iteration */
    if (seen_idx != 0) {
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, items, (int)i);
            if (!lua_istable(L, -1))
                return protocol_failure(L, h, secret, "a list item is not an object", top);
            lua_getfield(L, -1, "id");
            if (lua_type(L, -1) != LUA_TSTRING)
                return protocol_failure(L, h, secret, "a list item has no string id", top);
            lua_pushvalue(L, -1);
            lua_rawget(L, seen_idx);
            if (!lua_isnil(L, -1)) {
                lua_pushfstring(L, "item id %s came twice in one iteration", lua_tostring(L, -2));
                return protocol_failure_top(L, h, secret, top);
            }
            lua_pop(L, 1);
            lua_pushboolean(L, 1);
            lua_rawset(L, seen_idx);
            lua_pop(L, 1);
        }
    }

    /* the next cursor: next_cursor; going backward, when the server gives
     * none, the first item's id (the API documents no backward cursor) */
    if (p->paged && lua_toboolean(L, -1)) {
        size_t len;
        const char *next;
        lua_getfield(L, data, "next_cursor");
        if (p->backward && lua_type(L, -1) != LUA_TSTRING && n > 0) {
            lua_pop(L, 1);
            lua_rawgeti(L, items, 1);
            lua_getfield(L, -1, "id");
            lua_remove(L, -2);
        }
        next = lua_tolstring(L, -1, &len);
        if (lua_type(L, -1) != LUA_TSTRING || len == 0)
            return protocol_failure(L, h, secret, "has_more is true but there is no cursor", top);
        if (p->cursor != NULL && len == p->cursor_len && memcmp(next, p->cursor, len) == 0) {
            lua_pushfstring(L, "the cursor did not advance (%s)", p->cursor);
            return protocol_failure_top(L, h, secret, top);
        }
        free(p->prev_cursor);
        p->prev_cursor = p->cursor;
        p->prev_len = p->cursor_len;
        p->cursor = NULL;
        take_string(L, &p->cursor, &p->cursor_len);
    } else {
        free(p->prev_cursor);
        p->prev_cursor = p->cursor;
        p->prev_len = p->cursor_len;
        p->cursor = NULL;
        p->cursor_len = 0;
        p->done = 1;
    }
    p->pages++;
    lua_pop(L, 1);                           /* has_more */

    /* the page: the list object, with the run's progress and the request's facts */
    lua_settop(L, data);
    copy_field(L, body, data, "run_status");
    copy_field(L, body, data, "run_resolved_call_count");
    be_pushint(L, p->pages);
    lua_setfield(L, data, "number");
    if (p->prev_cursor != NULL) {
        lua_pushlstring(L, p->prev_cursor, p->prev_len);
        lua_setfield(L, data, "cursor");
    }
    if (h->request_id[0] != '\0') {
        lua_pushstring(L, h->request_id);
        lua_setfield(L, data, "request_id");
    }
    lua_replace(L, body);
    return 1;
}

/* ---- the pager from Lua, for transports that do their I/O in Lua ------- */

/* core.pager(endpoint, run_id [, params [, keep_nulls]]) -> pager (run_id:
 * nil for the endpoints without one) */
static int l_pager(lua_State *L)
{
    size_t len;
    const char *endpoint = luaL_checklstring(L, 1, &len);

    if (strlen(endpoint) != len)             /* a NUL would cut the name short */
        return luaL_argerror(L, 1, "unknown endpoint (the name holds a NUL byte)");
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    be_pager_push(L, endpoint, 2, lua_istable(L, 3) ? 3 : 0, lua_toboolean(L, 4));
    return 1;
}

/* pager:url(base_url) -> the next request's URL, or nil when done */
static int pager_url(lua_State *L)
{
    be_pager *p = (be_pager *)luaL_checkudata(L, 1, BE_PAGER_MT);

    if (p->done)
        return 0;
    be_pager_push_url(L, p, luaL_checkstring(L, 2));
    return 1;
}

static void meta_string(lua_State *L, int t, const char *name, char *out, size_t outsz)
{
    size_t len;
    const char *v;

    lua_getfield(L, t, name);
    v = lua_tolstring(L, -1, &len);
    out[0] = '\0';
    if (v != NULL) {
        if (len >= outsz)
            len = outsz - 1;
        memcpy(out, v, len);
        out[len] = '\0';
    }
    lua_pop(L, 1);
}

/* pager:response(status, body [, meta]) -> page | nil, err. meta: request_id,
 * content_type (the response's headers), seen (a table of the ids seen in
 * this iteration), secret (the string to redact). */
static int pager_response(lua_State *L)
{
    be_pager *p = (be_pager *)luaL_checkudata(L, 1, BE_PAGER_MT);
    be_http h;
    size_t len;
    const char *secret = NULL;
    int seen = 0;
    lua_Number status = luaL_checknumber(L, 2);

    /* range first: converting NaN or a number beyond long is undefined */
    luaL_argcheck(L, status >= 0 && status <= 999 && (lua_Number)(long)status == status, 2,
                  "status must be a whole number from 0 to 999");
    memset(&h, 0, sizeof h);
    h.status = (long)status;
    h.body = (char *)(uintptr_t)luaL_checklstring(L, 3, &len);  /* the pager only reads it */
    h.len = len;
    h.retry_after = -1;
    lua_settop(L, 4);
    if (lua_istable(L, 4)) {
        meta_string(L, 4, "request_id", h.request_id, sizeof h.request_id);
        meta_string(L, 4, "content_type", h.content_type, sizeof h.content_type);
        lua_getfield(L, 4, "secret");        /* 5 */
        secret = lua_tostring(L, 5);
        lua_getfield(L, 4, "seen");          /* 6 */
        if (lua_istable(L, 6))
            seen = 6;
    }
    if (be_pager_response(L, p, &h, seen, secret))
        return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

/* pager:cursor() -> the cursor of the next request (nil for the first) and
 * whether it goes backward */
static int pager_cursor(lua_State *L)
{
    be_pager *p = (be_pager *)luaL_checkudata(L, 1, BE_PAGER_MT);

    if (p->cursor == NULL)
        lua_pushnil(L);
    else
        lua_pushlstring(L, p->cursor, p->cursor_len);
    lua_pushboolean(L, p->backward);
    return 2;
}

/* pager:done() -> whether the last page has been received */
static int pager_done(lua_State *L)
{
    lua_pushboolean(L, ((be_pager *)luaL_checkudata(L, 1, BE_PAGER_MT))->done);
    return 1;
}

static const luaL_Reg pager_methods[] = {
    { "url", pager_url },
    { "response", pager_response },
    { "done", pager_done },
    { "cursor", pager_cursor },
    { NULL, NULL }
};

void be_pager_open(lua_State *L)
{
    luaL_newmetatable(L, BE_PAGER_MT);
    lua_pushcfunction(L, pager_gc);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L);
    be_setfuncs(L, pager_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

void be_pager_expose(lua_State *L)
{
    lua_pushcfunction(L, l_pager);
    lua_setfield(L, -2, "pager");
}
