/* client.c: the client (a libcurl handle and its settings) and the iterator
 * that drives a pager with it. A page turn, retries included, happens inside
 * one C call: ask the pager for the URL, perform it, hand the response back. */

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blandeval.h"

#define BE_ITER_MT "blandeval.iterator"

/* Empty pages in a row that an iteration accepts before calling it a loop. */
#define MAX_EMPTY_PAGES 16


typedef struct be_iter {
    int state;                    /* ITER_OPEN, ITER_DONE, ITER_FAILED, ITER_CLOSED */
    int backward;
    int turning;                  /* a page turn is under way: an error that escapes it (out
                                     of memory) may leave the pager past a page never seen */
    lua_Integer idx, n;
    be_client *client;            /* kept alive by the user value while ITER_OPEN */
} be_iter;

/* Items handed out between two nudges of a prefetch in flight: often enough
 * to drain the socket while the caller works, rarely enough to cost nothing. */
#define PUMP_EVERY 8

enum { ITER_OPEN, ITER_DONE, ITER_FAILED, ITER_CLOSED };
enum { UV_CLIENT = 1, UV_PAGER, UV_ITEMS, UV_PAGE, UV_SEEN, UV_ERROR };

#define now be_now

void be_sleep(double seconds)
{
    struct timespec ts;

    if (seconds <= 0)
        return;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

be_client *be_check_client(lua_State *L, int idx)
{
    be_client *c = (be_client *)luaL_checkudata(L, idx, BE_CLIENT_MT);
    if (c->closed)
        luaL_error(L, "blandeval: the client is closed");
    return c;
}

/* Pushes the error value for a transfer that libcurl could not complete. */
void be_push_transfer_error(lua_State *L, be_client *c, const be_http *h, CURLcode rc)
{
    be_error e;
    char msg[CURL_ERROR_SIZE + 64];

    memset(&e, 0, sizeof e);
    e.kind = rc == CURLE_OPERATION_TIMEDOUT ? "timeout" : "network";
    e.curl = be_curl_name(rc);
    e.status = h->status;
    e.request_id = h->request_id;
    e.redact = c->secret;
    e.retryable = be_curl_retryable(rc);
    if (h->too_big) {
        e.kind = "protocol";
        e.curl = NULL;
        e.retryable = 0;
        snprintf(msg, sizeof msg, "the response body is larger than max_body (%lu bytes)",
                 (unsigned long)h->max_body);
    } else if (h->no_memory) {
        e.retryable = 0;
        snprintf(msg, sizeof msg, "out of memory while reading the response");
    } else {
        snprintf(msg, sizeof msg, "%s", h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
    }
    e.message = msg;
    be_push_error(L, &e);
}

/* Gets the pager's next page, retrying as the policy allows. Pushes the page
 * and returns 1, or pushes the last error value and returns 0. */
static int fetch(lua_State *L, be_client *c, be_pager *p, int seen_idx, const void *owner)
{
    double deadline_at = c->deadline > 0 ? now() + c->deadline : 0;
    int attempt;

    for (attempt = 1;; attempt++) {
        double timeout = c->timeout, wait, left;
        const char *url;
        be_http *h = &c->http;
        CURLcode rc;
        int ok, retryable;

        if (deadline_at > 0 && deadline_at - now() < timeout)
            timeout = deadline_at - now();
        be_pager_push_url(L, p, c->base_url);
        url = lua_tostring(L, -1);
        /* the first attempt may be the prefetch this owner started: it is
         * finished, and its errors surface, only now */
        if (attempt == 1 && owner != NULL && c->ahead.in_flight && c->ahead.owner == owner
            && strcmp(c->ahead.url, url) == 0) {
            h = &c->ahead;
            rc = be_http_finish(h, timeout);
        } else
            rc = be_http_get(h, url, (long)(timeout * 1000) + 1);
        lua_pop(L, 1);
        if (rc != CURLE_OK) {
            be_push_transfer_error(L, c, h, rc);
            ok = 0;
        } else
            ok = be_pager_response(L, p, h, seen_idx, c->secret);
        if (ok)
            return 1;
        lua_getfield(L, -1, "retryable");
        retryable = lua_toboolean(L, -1);
        lua_pop(L, 1);
        be_pushint(L, attempt);
        lua_setfield(L, -2, "attempts");
        if (!retryable)
            return 0;
        left = -1;                           /* no deadline */
        if (deadline_at > 0)
            left = deadline_at > now() ? deadline_at - now() : 0;
        wait = be_retry_wait(&c->retry, attempt, h->retry_after, left, be_uniform(&c->rng));
        if (wait < 0) {
            if (attempt <= c->retry.max_retries) {
                lua_pushboolean(L, 1);       /* retries were left: the deadline ended them */
                lua_setfield(L, -2, "deadline_exceeded");
            }
            return 0;
        }
        lua_pop(L, 1);
        be_sleep(wait);
    }
}

/* ---- the client ---------------------------------------------------------- */

static double opt_number(lua_State *L, int t, const char *name, double def)
{
    double v;
    lua_getfield(L, t, name);
    v = lua_isnil(L, -1) ? def : lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Copies string option name (or NULL when absent) with malloc. */
static char *opt_string(lua_State *L, int t, const char *name)
{
    size_t len;
    const char *s;
    char *d;

    lua_getfield(L, t, name);
    s = lua_tolstring(L, -1, &len);
    if (s == NULL) {
        lua_pop(L, 1);
        return NULL;
    }
    d = (char *)malloc(len + 1);
    if (d != NULL)
        memcpy(d, s, len + 1);
    lua_pop(L, 1);
    return d;
}

static void client_release(be_client *c)
{
    while (c->batches != NULL)               /* unlinks itself */
        be_batch_detach(c->batches);
    be_http_free(&c->ahead);
    be_http_free(&c->http);
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi);
    c->multi = NULL;
    if (c->headers != NULL)
        curl_slist_free_all(c->headers);
    c->headers = NULL;
    if (c->key != NULL)
        memset(c->key, 0, strlen(c->key));
    free(c->key);
    free(c->base_url);
    free(c->cainfo);
    free(c->capath);
    c->key = c->base_url = c->cainfo = c->capath = NULL;
    c->secret = NULL;
    c->closed = 1;
}

static int client_close(lua_State *L)
{
    client_release((be_client *)luaL_checkudata(L, 1, BE_CLIENT_MT));
    return 0;
}

/* "blandeval.client (https://api.bland.ai)": never the key, nor any
 * user:password@ of the base URL */
static int client_tostring(lua_State *L)
{
    be_client *c = (be_client *)luaL_checkudata(L, 1, BE_CLIENT_MT);
    const char *u, *host, *at, *slash;

    if (c->closed) {
        lua_pushliteral(L, "blandeval.client (closed)");
        return 1;
    }
    u = c->base_url;
    host = strstr(u, "://");
    host = host != NULL ? host + 3 : u;
    slash = strchr(host, '/');
    at = strchr(host, '@');
    if (at != NULL && (slash == NULL || at < slash)) {
        lua_pushlstring(L, u, (size_t)(host - u));          /* the scheme */
        lua_pushfstring(L, "blandeval.client (%s%s)", lua_tostring(L, -1), at + 1);
    } else
        lua_pushfstring(L, "blandeval.client (%s)", u);
    return 1;
}

/* core.client(opts): the Lua layer has checked every option. */
static int l_client(lua_State *L)
{
    be_client *c;
    struct curl_slist *headers = NULL, *next;
    const char *ua;
    char line[512];
    int ok;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    c = (be_client *)be_newuserdata(L, sizeof *c);        /* 2 */
    memset(c, 0, sizeof *c);
    luaL_getmetatable(L, BE_CLIENT_MT);
    lua_setmetatable(L, -2);                 /* from here on __gc frees what c owns */

    c->base_url = opt_string(L, 1, "base_url");
    c->key = opt_string(L, 1, "api_key");
    c->multi = curl_multi_init();
    if (c->base_url == NULL || c->key == NULL || c->multi == NULL
        || !be_http_init(&c->http, c->multi) || !be_http_init(&c->ahead, c->multi))
        return luaL_error(L, "blandeval: cannot create the client (out of memory)");
    c->secret = c->key;
    if (strncmp(c->key, "Bearer ", 7) == 0 || strncmp(c->key, "bearer ", 7) == 0)
        c->secret = c->key + 7;
    c->timeout = opt_number(L, 1, "timeout", 30);
    c->deadline = opt_number(L, 1, "deadline", 0);
    c->retry.base = opt_number(L, 1, "retry_base_delay", 0.5);
    c->retry.max = opt_number(L, 1, "retry_max_delay", 8);
    c->retry.after_max = opt_number(L, 1, "retry_after_max", 60);
    c->retry.max_retries = (int)opt_number(L, 1, "max_retries", 2);
    c->http.max_body = (size_t)opt_number(L, 1, "max_body", (double)BE_DEFAULT_MAX_SIZE);
    c->ahead.max_body = c->http.max_body;
    c->connect_ms = (long)(opt_number(L, 1, "connect_timeout", 10) * 1000);
    lua_getfield(L, 1, "keep_nulls");
    c->keep_nulls = lua_toboolean(L, -1);
    lua_getfield(L, 1, "no_proxy");
    c->no_proxy = lua_toboolean(L, -1);
    lua_getfield(L, 1, "prefetch");
    c->prefetch = lua_toboolean(L, -1);
    lua_getfield(L, 1, "compress");
    c->compress = lua_toboolean(L, -1);
    lua_getfield(L, 1, "cainfo");
    lua_getfield(L, 1, "capath");
    ok = lua_isnil(L, -2) || (c->cainfo = opt_string(L, 1, "cainfo")) != NULL;
    ok = ok && (lua_isnil(L, -1) || (c->capath = opt_string(L, 1, "capath")) != NULL);
    lua_pop(L, 6);
    if (!ok)
        return luaL_error(L, "blandeval: cannot create the client (out of memory)");
    c->rng = (uint64_t)(uintptr_t)c ^ (uint64_t)(now() * 1e9) ^ 0x9E3779B97F4A7C15u;
    if (c->rng == 0)
        c->rng = 1;
    lua_getfield(L, 1, "user_agent");        /* 3 */
    ua = lua_tostring(L, 3);

    /* no Lua call from here until the header list belongs to the handle (or
     * is freed), so that no error can leak it */
    snprintf(line, sizeof line, "user-agent: %s", ua != NULL ? ua : "blandeval");
    ok = (next = curl_slist_append(headers, "accept: application/json")) != NULL;
    if (ok) headers = next;
    ok = ok && (next = curl_slist_append(headers, line)) != NULL;
    if (ok) headers = next;
    if (ok) {
        size_t n = strlen(c->key) + sizeof "authorization: ";
        char *auth = (char *)malloc(n);
        ok = auth != NULL;
        if (ok) {
            snprintf(auth, n, "authorization: %s", c->key);
            ok = (next = curl_slist_append(headers, auth)) != NULL;
            if (ok) headers = next;
            memset(auth, 0, n);
            free(auth);
        }
    }
    if (ok) {
        c->headers = headers;                /* freed with the client from here on */
        ok = be_http_configure(&c->http, headers, c->cainfo, c->capath, c->connect_ms, c->no_proxy,
                               c->compress)
             && be_http_configure(&c->ahead, headers, c->cainfo, c->capath, c->connect_ms,
                                  c->no_proxy, c->compress);
    } else
        curl_slist_free_all(headers);
    if (!ok)
        return luaL_error(L, "blandeval: cannot set up the transfer (out of memory or a bad TLS option)");
    lua_settop(L, 2);
    return 1;
}

/* Makes h a handle like the client's own: same multi handle (connections),
 * headers, TLS files, proxy rule, compression and body cap. 0 on failure;
 * be_http_free undoes what was done. */
int be_client_handle(be_client *c, be_http *h)
{
    if (!be_http_init(h, c->multi))
        return 0;
    h->max_body = c->http.max_body;
    return be_http_configure(h, c->headers, c->cainfo, c->capath, c->connect_ms, c->no_proxy,
                             c->compress);
}

/* client:_page(endpoint, run_id [, params]) -> page | nil, err (run_id is
 * nil for the endpoints without one) */
static int client_page(lua_State *L)
{
    be_client *c = be_check_client(L, 1);
    const char *endpoint = luaL_checkstring(L, 2);
    be_pager *p;

    p = be_pager_push(L, endpoint, 3, lua_istable(L, 4) ? 4 : 0, c->keep_nulls);
    if (fetch(L, c, p, 0, NULL))
        return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

/* ---- the iterator -------------------------------------------------------- */

/* Drops what the iterator holds, so the client, pages and ids can be freed;
 * a failed iterator keeps only its error (on the top of the stack). */
static void iter_release(lua_State *L, int idx, be_iter *it, int state)
{
    be_client *c = it->client;

    lua_newtable(L);                         /* first: if it cannot be had, nothing changed */
    if (state == ITER_FAILED) {
        lua_pushvalue(L, -2);
        lua_rawseti(L, -2, UV_ERROR);
    }
    if (it->state == ITER_OPEN && c != NULL && !c->closed && c->ahead.owner == it)
        be_http_abort(&c->ahead);             /* nobody will want the prefetched page */
    it->client = NULL;
    it->state = state;
    it->idx = it->n = 0;
    be_setuservalue(L, idx);
}

static int iter_close(lua_State *L)
{
    be_iter *it = (be_iter *)luaL_checkudata(L, 1, BE_ITER_MT);
    if (it->state != ITER_CLOSED)
        iter_release(L, 1, it, ITER_CLOSED);
    return 0;
}

/* __gc: an iterator dropped mid-run stops its prefetch. The client may be
 * finalized in the same cycle, before it: its memory is still there, and
 * closed is set. */
static int iter_gc(lua_State *L)
{
    be_iter *it = (be_iter *)luaL_checkudata(L, 1, BE_ITER_MT);
    be_client *c = it->client;

    if (it->state == ITER_OPEN && c != NULL && !c->closed && c->ahead.owner == it)
        be_http_abort(&c->ahead);
    it->client = NULL;
    return 0;
}

/* Raises the error value on the top of the stack, with the cursor of the page
 * that could not be had (to resume from), and keeps it: the iterator raises it
 * again if called again, rather than look like a normal end. */
static int iter_fail(lua_State *L, be_iter *it, const be_pager *p)
{
    if (p->cursor != NULL) {
        lua_pushlstring(L, p->cursor, p->cursor_len);
        lua_setfield(L, -2, p->backward ? "ending_before" : "starting_after");
    }
    iter_release(L, 1, it, ITER_FAILED);
    return lua_error(L);                     /* nothing malloc'd is pending here */
}

/* The generic-for step: the next item and its page, nil at the end; a failure
 * raises the error value. */
static int iter_next(lua_State *L)
{
    be_iter *it = (be_iter *)luaL_checkudata(L, 1, BE_ITER_MT);
    int uv, empty = 0;

    if (it->state == ITER_CLOSED)
        return luaL_error(L, "blandeval: the iterator is closed");
    if (it->state == ITER_DONE)
        return 0;
    lua_settop(L, 1);
    be_getuservalue(L, 1);
    uv = 2;
    if (it->state == ITER_FAILED) {
        lua_rawgeti(L, uv, UV_ERROR);
        return lua_error(L);
    }
    if (it->turning) {
        lua_pushliteral(L, "blandeval: the iteration was interrupted by an error during a page "
                           "turn (out of memory) and cannot go on");
        iter_release(L, 1, it, ITER_FAILED);
        return lua_error(L);
    }
    while (it->idx >= it->n) {
        be_client *c;
        be_pager *p;

        lua_rawgeti(L, uv, UV_PAGER);
        p = (be_pager *)lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (p->done) {
            iter_release(L, 1, it, ITER_DONE);
            return 0;
        }
        lua_rawgeti(L, uv, UV_CLIENT);
        c = be_check_client(L, -1);
        lua_pop(L, 1);
        it->turning = 1;
        lua_pushnil(L);                      /* the old page is garbage before the new one comes */
        lua_rawseti(L, uv, UV_ITEMS);
        lua_pushnil(L);
        lua_rawseti(L, uv, UV_PAGE);
        lua_rawgeti(L, uv, UV_SEEN);
        if (!fetch(L, c, p, lua_gettop(L), it))
            return iter_fail(L, it, p);
        if (c->prefetch && !p->done) {       /* page N+1 travels while N is read */
            be_pager_push_url(L, p, c->base_url);
            be_http_start(&c->ahead, lua_tostring(L, -1), 0, it);  /* failed: fetched later */
            lua_pop(L, 1);
        }
        lua_remove(L, -2);                   /* the seen table */
        lua_getfield(L, -1, "data");
        it->n = (lua_Integer)be_rawlen(L, -1);
        it->idx = 0;
        lua_rawseti(L, uv, UV_ITEMS);
        lua_rawseti(L, uv, UV_PAGE);
        it->turning = 0;
        if (it->n == 0 && ++empty > MAX_EMPTY_PAGES && !p->done) {
            be_error e;
            memset(&e, 0, sizeof e);
            e.kind = "protocol";
            e.message = "too many empty pages in a row";
            be_push_error(L, &e);
            return iter_fail(L, it, p);
        }
    }
    it->idx++;
    if (it->idx % PUMP_EVERY == 0 && it->client != NULL && !it->client->closed
        && it->client->ahead.owner == it)
        be_http_pump(&it->client->ahead);
    lua_rawgeti(L, uv, UV_ITEMS);
    /* going backward, each page is read last item first: items arrive in the
     * direction of travel */
    lua_rawgeti(L, -1, (int)(it->backward ? it->n - it->idx + 1 : it->idx));
    lua_rawgeti(L, uv, UV_PAGE);
    return 2;
}

/* client:_iter(endpoint, run_id [, params]) -> next, iterator, nil, iterator */
static int client_iter(lua_State *L)
{
    be_iter *it;
    be_pager *p;

    be_check_client(L, 1);
    luaL_checkstring(L, 2);
    lua_settop(L, 4);
    lua_pushcfunction(L, iter_next);                       /* 5 */
    it = (be_iter *)be_newuserdata_uv(L, sizeof *it);      /* 6 */
    memset(it, 0, sizeof *it);
    luaL_getmetatable(L, BE_ITER_MT);
    lua_setmetatable(L, -2);
    it->client = (be_client *)lua_touserdata(L, 1);
    lua_createtable(L, 5, 0);                              /* 7: the user value */
    lua_pushvalue(L, 1);
    lua_rawseti(L, 7, UV_CLIENT);
    p = be_pager_push(L, lua_tostring(L, 2), 3, lua_istable(L, 4) ? 4 : 0,
                      ((be_client *)lua_touserdata(L, 1))->keep_nulls);
    it->backward = p->backward;
    lua_rawseti(L, 7, UV_PAGER);
    lua_newtable(L);
    lua_rawseti(L, 7, UV_SEEN);
    be_setuservalue(L, 6);
    lua_pushnil(L);
    lua_pushvalue(L, 6);                   /* the closing value of Lua 5.4's for */
    return 4;
}

static const luaL_Reg client_methods[] = {
    { "_page", client_page },
    { "_iter", client_iter },
    { "_batch", be_client_batch },
    { "close", client_close },
    { NULL, NULL }
};

static const luaL_Reg iter_methods[] = {
    { "close", iter_close },
    { NULL, NULL }
};

/* A metatable with methods; gc (if any) frees C memory, close releases. */
void be_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                  lua_CFunction gc, lua_CFunction close)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    be_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    if (gc != NULL) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
    }
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
#else
    (void)close;
#endif
}

/* core.sleep(seconds): a blocking wait, for plain Lua (nginx has ngx.sleep) */
static int l_sleep(lua_State *L)
{
    be_sleep(luaL_checknumber(L, 1));
    return 0;
}

/* core.monotonic() -> seconds on a clock that wall-clock changes do not move */
static int l_monotonic(lua_State *L)
{
    lua_pushnumber(L, now());
    return 1;
}

void be_client_open(lua_State *L)
{
    be_new_class(L, BE_CLIENT_MT, client_methods, client_close, client_close);
    lua_pushcfunction(L, client_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    be_new_class(L, BE_ITER_MT, iter_methods, iter_gc, iter_close);
    lua_pop(L, 1);
    lua_pushcfunction(L, l_client);
    lua_setfield(L, -2, "client");
    lua_pushcfunction(L, l_sleep);
    lua_setfield(L, -2, "sleep");
    lua_pushcfunction(L, l_monotonic);
    lua_setfield(L, -2, "monotonic");
}
