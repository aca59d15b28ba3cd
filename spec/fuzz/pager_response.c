/* pager_response.c: fuzz target for the pager's response handling
 * (core.pager(...):response(status, body, meta)), the sans-IO half that every
 * transport drives.
 *
 * Input: a config byte (bits 0-2 endpoint, 3 keep_nulls, 4 a seen table,
 * 5-6 starting cursor: none, starting_after, ending_before; 7 a secret to
 * redact), a length byte and that many bytes of starting cursor, then records
 * separated by "\n---\n", each a status byte, a meta byte (bits 0-1
 * request id, 2 an HTML content type) and the body. Records are fed in
 * order, as a transport would, until the pager is done. Invariants:
 *   - a bad status raises a clean error; otherwise the answer is a page or
 *     nil and an error value, and nothing else;
 *   - a page is numbered in sequence and carries the cursor it was fetched
 *     with; the pager is done exactly when the list says has_more false (or
 *     the endpoint is not paged), and then has neither URL nor cursor; while
 *     not done its new cursor is the server's (or, going backward, the first
 *     item's id), non-empty and not the one just used;
 *   - the same response again, which would loop forever, is refused;
 *   - with a seen table every item has a string id, recorded in it;
 *   - an error changes nothing (the same URL is asked for again), its kind
 *     agrees with the status, its retryable flag with the retry rules, and
 *     none of its strings holds the secret. */

#include "harness.h"

#define SEP "\n---\n"
#define SEP_LEN 5
#define MAX_RECORDS 24
#define BASE "https://api.example"
#define SECRET "org_Zx9Kq2Lm"

static const char *const endpoints[8] = {
    "call-results", "agent-results", "agent-snapshots", "run", "runs", "status",
    "call-results", "agent-results"
};

/* statuses, by the record's first byte; the last four must be refused */
#define BAD_STATUSES 4
static const double statuses[32] = {
    200, 200, 200, 200, 200, 200, 200, 200, 201, 204, 299, 199, 300, 301, 400, 401,
    403, 404, 408, 409, 422, 429, 500, 502, 503, 504, 0, 999, -1, 2.5, 1e300, NAN
};

/* request ids, by bits 0-1 of the meta byte: the last one is cut to 127
 * bytes in the middle of the secret */
static const char *const request_ids[4] = {
    "", "req_1", "req-" SECRET,
    "RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR"
    "RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR" SECRET
};

typedef struct record {
    const unsigned char *body;
    size_t len;
    double status;
    int bad;                      /* a status the pager must refuse */
    const char *request_id;
    int html;
} record;

static const unsigned char *find_sep(const unsigned char *p, const unsigned char *end)
{
    for (; end - p >= SEP_LEN; p++)
        if (memcmp(p, SEP, SEP_LEN) == 0)
            return p;
    return end;
}

/* Pushes what the pager at idx shows of its state: url, cursor, backward, done. */
static void push_state(lua_State *L, int idx)
{
    int top = lua_gettop(L);

    lua_getfield(L, idx, "url");
    lua_pushvalue(L, idx);
    lua_pushliteral(L, BASE);
    lua_call(L, 2, 1);
    lua_getfield(L, idx, "cursor");
    lua_pushvalue(L, idx);
    lua_call(L, 1, 2);
    lua_getfield(L, idx, "done");
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    FUZZ_CHECK(lua_gettop(L) == top + 4, "pager state is not 4 values");
    FUZZ_CHECK(lua_isnil(L, top + 1) || lua_type(L, top + 1) == LUA_TSTRING, "url is not a string");
    FUZZ_CHECK(lua_isnil(L, top + 2) || lua_type(L, top + 2) == LUA_TSTRING, "cursor is not a string");
    /* done: no URL and no cursor; not done: a URL */
    FUZZ_CHECK(lua_toboolean(L, top + 4) == lua_isnil(L, top + 1), "url and done disagree");
    FUZZ_CHECK(!lua_toboolean(L, top + 4) || lua_isnil(L, top + 2), "a done pager has a cursor");
}

static int same_state(lua_State *L, int a, int b)
{
    int i;

    for (i = 0; i < 4; i++)
        if (!lua_rawequal(L, a + i, b + i))
            return 0;
    return 1;
}

/* Calls pager:response for r; returns the pcall status, results above top. */
static int respond(lua_State *L, int pager, int seen, int secret, const record *r, int *nres)
{
    int top = lua_gettop(L), status;

    lua_getfield(L, pager, "response");
    lua_pushvalue(L, pager);
    lua_pushnumber(L, r->status);
    lua_pushlstring(L, (const char *)r->body, r->len);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, r->request_id);
    lua_setfield(L, -2, "request_id");
    lua_pushstring(L, r->html ? "text/html; charset=utf-8" : "application/json");
    lua_setfield(L, -2, "content_type");
    if (secret) {
        lua_pushliteral(L, SECRET);
        lua_setfield(L, -2, "secret");
    }
    if (seen) {
        lua_pushvalue(L, seen);
        lua_setfield(L, -2, "seen");
    }
    status = lua_pcall(L, 4, LUA_MULTRET, 0);
    *nres = lua_gettop(L) - top;
    return status;
}

static int retryable_status(double s)
{
    return s == 408 || s == 409 || s == 429 || s >= 500;
}

static void check_secret_free(lua_State *L, int idx, const char *what)
{
    size_t len;
    const char *s;

    if (lua_type(L, idx) != LUA_TSTRING)
        return;
    s = lua_tolstring(L, idx, &len);
    FUZZ_CHECK(!fuzz_contains(s, len, SECRET, sizeof SECRET - 1), "the secret is in %s: %s", what, s);
}

/* The error value at idx for response r. */
static void check_error(lua_State *L, int idx, const record *r, int secret)
{
    const char *kind;
    int ok_status = r->status >= 200 && r->status <= 299;
    static const char *const fields[] = { "message", "code", "request_id", NULL };
    int i;

    FUZZ_CHECK(lua_istable(L, idx), "the error is a %s", luaL_typename(L, idx));
    lua_getfield(L, idx, "kind");
    kind = lua_tostring(L, -1);
    FUZZ_CHECK(kind != NULL, "an error without a kind");
    if (ok_status)
        FUZZ_CHECK(strcmp(kind, "decode") == 0 || strcmp(kind, "protocol") == 0,
                   "a %g answer failed as %s", r->status, kind);
    else
        FUZZ_CHECK(strcmp(kind, "http") == 0 || strcmp(kind, "api") == 0,
                   "a %g answer failed as %s", r->status, kind);
    lua_pop(L, 1);
    lua_getfield(L, idx, "message");
    FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING, "an error without a message");
    lua_pop(L, 1);
    lua_getfield(L, idx, "status");
    if (r->status > 0)
        FUZZ_CHECK(lua_isinteger(L, -1) && (double)lua_tointeger(L, -1) == r->status,
                   "error status is not %g", r->status);
    else
        FUZZ_CHECK(lua_isnil(L, -1), "error status for a status of %g", r->status);
    lua_pop(L, 1);
    lua_getfield(L, idx, "retryable");
    FUZZ_CHECK(lua_isboolean(L, -1)
               && lua_toboolean(L, -1) == (!ok_status && retryable_status(r->status)),
               "retryable is wrong for a %g answer", r->status);
    lua_pop(L, 1);
    if (r->request_id[0] != '\0') {
        lua_getfield(L, idx, "request_id");
        FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING, "the request id is lost");
        lua_pop(L, 1);
    }
    if (secret) {
        for (i = 0; fields[i] != NULL; i++) {
            lua_getfield(L, idx, fields[i]);
            check_secret_free(L, -1, fields[i]);
            lua_pop(L, 1);
        }
        luaL_tolstring(L, idx, NULL);
        check_secret_free(L, -1, "tostring(err)");
        lua_pop(L, 1);
    }
}

/* The page at idx, from response r, given the state before (at before) and
 * after (at after) it; number is the page count so far. */
static void check_page(lua_State *L, int idx, int before, int after, int seen, int backward,
                       const char *endpoint, lua_Integer number, const record *r)
{
    int paged = strcmp(endpoint, "call-results") == 0 || strcmp(endpoint, "agent-results") == 0
                || strcmp(endpoint, "runs") == 0;
    int object = strcmp(endpoint, "run") == 0 || strcmp(endpoint, "status") == 0;
    int top = lua_gettop(L), has_more;
    lua_Integer n, i;

    FUZZ_CHECK(lua_istable(L, idx), "the page is a %s", luaL_typename(L, idx));
    if (object) {
        FUZZ_CHECK(lua_toboolean(L, after + 3), "an object endpoint is not done after its page");
        return;
    }
    lua_getfield(L, idx, "number");                          /* top + 1 */
    FUZZ_CHECK(lua_isinteger(L, -1) && lua_tointeger(L, -1) == number,
               "page number is not %lld", (long long)number);
    lua_getfield(L, idx, "cursor");                          /* top + 2 */
    FUZZ_CHECK(lua_rawequal(L, -1, before + 1), "page.cursor is not the cursor it was fetched with");
    lua_getfield(L, idx, "data");                            /* top + 3 */
    FUZZ_CHECK(lua_istable(L, -1), "page.data is not a table");
    n = (lua_Integer)luaL_len(L, top + 3);
    lua_getfield(L, idx, "has_more");                        /* top + 4 */
    FUZZ_CHECK(lua_isboolean(L, -1), "page.has_more is not a boolean");
    has_more = lua_toboolean(L, -1);
    if (r->request_id[0] != '\0') {
        size_t want = strlen(r->request_id);
        lua_getfield(L, idx, "request_id");
        FUZZ_CHECK(fuzz_streq(L, -1, r->request_id, want < 127 ? want : 127),
                   "page.request_id is not the response's");
        lua_pop(L, 1);
    }
    if (seen) {
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, top + 3, i);
            FUZZ_CHECK(lua_istable(L, -1), "item %lld is not an object", (long long)i);
            lua_getfield(L, -1, "id");
            FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING, "item %lld has no string id", (long long)i);
            lua_rawget(L, seen);
            FUZZ_CHECK(lua_toboolean(L, -1), "item %lld is not recorded as seen", (long long)i);
            lua_pop(L, 2);
        }
    }
    if (paged && has_more) {
        FUZZ_CHECK(!lua_toboolean(L, after + 3), "done although has_more is true");
        FUZZ_CHECK(lua_type(L, after + 1) == LUA_TSTRING && lua_rawlen(L, after + 1) > 0,
                   "no cursor although has_more is true");
        FUZZ_CHECK(!lua_rawequal(L, after + 1, before + 1), "the cursor did not advance");
        lua_getfield(L, idx, "next_cursor");                 /* top + 5 */
        if (backward && lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            lua_rawgeti(L, top + 3, 1);
            lua_getfield(L, -1, "id");
            lua_remove(L, -2);
        }
        FUZZ_CHECK(lua_rawequal(L, -1, after + 1), "the new cursor is not the server's");
    } else {
        FUZZ_CHECK(lua_toboolean(L, after + 3), "not done after the last page");
    }
    lua_settop(L, top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *p = data, *end = data + size;
    const char *endpoint;
    lua_State *L;
    int keep_nulls, seen = 0, cursor_mode, secret, backward, nrec = 0, i;
    lua_Integer pages = 0;
    record recs[MAX_RECORDS];

    if (size < 2)
        return 0;
    endpoint = endpoints[p[0] & 7];
    keep_nulls = (p[0] >> 3) & 1;
    cursor_mode = (p[0] >> 5) & 3;
    secret = p[0] >> 7;
    backward = cursor_mode == 2;

    L = fuzz_state();
    lua_getfield(L, 1, "pager");
    lua_pushstring(L, endpoint);
    lua_pushliteral(L, "run-1");
    lua_newtable(L);
    lua_pushinteger(L, 25);
    lua_setfield(L, -2, "limit");
    if (cursor_mode == 1 || cursor_mode == 2) {
        size_t n = p[1];
        if (n > (size_t)(end - p - 2))
            n = (size_t)(end - p - 2);
        if (n == 0)
            lua_pushliteral(L, "cursor-0");
        else
            lua_pushlstring(L, (const char *)p + 2, n);
        lua_setfield(L, -2, backward ? "ending_before" : "starting_after");
        p += n;
    }
    p += 2;
    lua_pushboolean(L, keep_nulls);
    FUZZ_CHECK(lua_pcall(L, 4, 1, 0) == LUA_OK, "core.pager raised: %s", lua_tostring(L, -1));
    /* 2: the pager */
    if ((data[0] >> 4) & 1) {
        lua_newtable(L);                                     /* 3: seen */
        seen = 3;
    }
    /* the endpoints that take no cursor ignore one */
    if (strcmp(endpoint, "call-results") != 0 && strcmp(endpoint, "agent-results") != 0
        && strcmp(endpoint, "runs") != 0)
        backward = 0;

    while (p < end && nrec < MAX_RECORDS) {
        const unsigned char *stop = find_sep(p, end);
        record *r = &recs[nrec++];
        if (stop - p >= 2) {
            r->status = statuses[p[0] & 31];
            r->bad = (p[0] & 31) >= 32 - BAD_STATUSES;
            r->request_id = request_ids[p[1] & 3];
            r->html = (p[1] >> 2) & 1;
            r->body = p + 2;
            r->len = (size_t)(stop - p - 2);
        } else {
            r->status = 200;
            r->bad = 0;
            r->request_id = "";
            r->html = 0;
            r->body = p;
            r->len = (size_t)(stop - p);
        }
        p = stop + (stop < end ? SEP_LEN : 0);
    }

    for (i = 0; i < nrec; i++) {
        const record *r = &recs[i];
        int before, after, res, status, nres;

        before = lua_gettop(L) + 1;
        push_state(L, 2);
        if (lua_toboolean(L, before + 3))
            break;                                           /* a transport stops here */
        res = lua_gettop(L) + 1;
        status = respond(L, 2, seen, secret, r, &nres);
        if (r->bad) {
            FUZZ_CHECK(status != LUA_OK && lua_type(L, -1) == LUA_TSTRING
                       && strstr(lua_tostring(L, -1), "bad argument #2") != NULL
                       && strstr(lua_tostring(L, -1), "status") != NULL,
                       "a status of %g was not refused cleanly: %s", r->status,
                       status == LUA_OK ? "accepted" : lua_tostring(L, -1));
            lua_settop(L, res - 1);
            after = lua_gettop(L) + 1;
            push_state(L, 2);
            FUZZ_CHECK(same_state(L, before, after), "a refused call changed the pager");
            lua_settop(L, before - 1);
            continue;
        }
        FUZZ_CHECK(status == LUA_OK, "response raised: %s", lua_tostring(L, -1));
        after = lua_gettop(L) + 1;
        push_state(L, 2);
        if (!lua_isnil(L, res)) {
            FUZZ_CHECK(nres == 1, "a page came with %d values", nres);
            pages++;
            check_page(L, res, before, after, seen, backward, endpoint, pages, r);
            if (!lua_toboolean(L, after + 3)) {
                /* the same answer again: the pager must not follow it */
                int again = lua_gettop(L) + 1, replay;
                FUZZ_CHECK(respond(L, 2, seen, secret, r, &nres) == LUA_OK, "replay raised");
                FUZZ_CHECK(nres == 2 && lua_isnil(L, again), "the same page twice was accepted");
                check_error(L, again + 1, r, secret);
                lua_getfield(L, again + 1, "kind");
                FUZZ_CHECK(fuzz_streq(L, -1, "protocol", 8), "a repeated page is not a protocol error");
                replay = lua_gettop(L) + 1;
                push_state(L, 2);
                FUZZ_CHECK(same_state(L, after, replay), "the refused replay changed the pager");
            }
        } else {
            FUZZ_CHECK(nres == 2, "a failure came with %d values", nres);
            check_error(L, res + 1, r, secret);
            FUZZ_CHECK(same_state(L, before, after), "a failed response changed the pager");
        }
        lua_settop(L, before - 1);
    }
    lua_close(L);
    return 0;
}
