/* blandeval.h: declarations shared by the C core's files. Every symbol declared
 * here stays hidden; the module exports luaopen_blandeval_core alone. */
#ifndef BLANDEVAL_H
#define BLANDEVAL_H

#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>
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
/* the deepest nesting the Lua stack can hold (see decode.c) */
#if LUA_VERSION_NUM >= 502
#define BE_MAX_DEPTH 100000
#else
#define BE_MAX_DEPTH 2500
#endif
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

/* HTTP with libcurl (transport.c): an easy handle and its response. The
 * handles of a client share one multi handle, which drives them and holds
 * their connections. A transfer can be started now and finished later (a
 * prefetch: one that nobody waits for yet). */
typedef struct be_http {
    CURLM *multi;                 /* shared, owned by the client */
    CURL *curl;
    int in_flight, done;          /* added to the multi handle; ended (with result) */
    CURLcode result;
    const void *owner;            /* who started the transfer in flight (NULL: a plain get) */
    char *url;                    /* the URL in flight, owned */
    char *body;                   /* response body, NUL-terminated, owned */
    size_t len, cap, max_body;
    long status;
    double retry_after;           /* seconds the server asked to wait, or -1 */
    int too_big, no_memory;       /* why the body callback stopped the transfer */
    char request_id[128];
    char content_type[128];
    char errbuf[CURL_ERROR_SIZE];
} be_http;

int be_http_init(be_http *h, CURLM *multi);
int be_http_configure(be_http *h, const struct curl_slist *headers, const char *cainfo,
                      const char *capath, long connect_timeout_ms, int no_proxy, int compress);
CURLcode be_http_get(be_http *h, const char *url, long timeout_ms);
int be_http_start(be_http *h, const char *url, long timeout_ms, const void *owner);
void be_http_pump(be_http *h);
CURLcode be_http_finish(be_http *h, double timeout);
void be_http_abort(be_http *h);
void be_http_free(be_http *h);
double be_now(void);
void be_multi_poll(CURLM *multi, long wait_ms);
int be_curl_retryable(CURLcode rc);
const char *be_curl_name(CURLcode rc);

/* Error values (errors.c): tables with kind, status, code, message, ... */
typedef struct be_error {
    const char *kind;             /* usage network timeout http api decode protocol */
    long status;                  /* HTTP status, 0 if none */
    const char *code;             /* API error code or curl error name */
    const char *message;
    const char *request_id;
    int retryable;
    int attempts;
    const char *curl;             /* curl error name for network kinds */
    const char *redact;           /* a secret no message may show (the API key) */
} be_error;

#define BE_ERROR_MT "blandeval.error"
void be_push_error(lua_State *L, const be_error *e);
void be_push_redacted(lua_State *L, const char *s, const char *secret);
void be_errors_open(lua_State *L);
void be_errors_expose(lua_State *L);

/* The pager (pager.c): a cursor state machine that does no I/O. */
typedef struct be_pager {
    char *path;                   /* escaped path: /v1/evals/runs/<id>/call-results */
    char *query;                  /* fixed query: include_agent_results=...&limit=... */
    char *cursor;                 /* the cursor of the next request, NULL for the first */
    char *prev_cursor;            /* the cursor of the last page received */
    size_t cursor_len, prev_len;  /* cursors are Lua strings: they may hold NUL */
    int paged;                    /* the endpoint takes cursors */
    int object;                   /* the endpoint answers one object, not a list */
    int backward;                 /* ending_before: paging toward older items */
    int done;
    int keep_nulls;
    long pages;
} be_pager;

#define BE_PAGER_MT "blandeval.pager"
be_pager *be_pager_push(lua_State *L, const char *endpoint, int run_id_idx, int params_idx,
                        int keep_nulls);
void be_pager_push_url(lua_State *L, const be_pager *p, const char *base_url);
int be_pager_response(lua_State *L, be_pager *p, const be_http *h, int seen_idx,
                      const char *secret);
void be_pager_open(lua_State *L);
void be_pager_expose(lua_State *L);

/* The retry policy (retry.c) */
typedef struct be_retry_policy {
    int max_retries;
    double base, max, after_max;  /* seconds: first wait, longest wait, longest Retry-After */
} be_retry_policy;

double be_uniform(uint64_t *state);
double be_retry_wait(const be_retry_policy *rp, int attempt, double retry_after,
                     double left, double u);
void be_retry_open(lua_State *L);

/* The client (client.c) */
struct be_batch;
typedef struct be_client {
    CURLM *multi;                 /* drives both handles; holds the connections */
    be_http http;                 /* pages asked for now */
    be_http ahead;                /* the page an iterator prefetches */
    struct curl_slist *headers;   /* the request headers of both, owned */
    char *base_url;               /* without a trailing slash */
    char *key;                    /* kept only to redact it */
    const char *secret;           /* what to redact: the key, less any "Bearer " */
    double timeout, deadline;     /* seconds per attempt; for all attempts (0: none) */
    be_retry_policy retry;
    int keep_nulls;
    int prefetch;                 /* iterators request page N+1 when they hand out page N */
    int closed;
    char *cainfo, *capath;        /* for the handles of batches, owned */
    long connect_ms;
    int no_proxy, compress;
    struct be_batch *batches;     /* open batches: their handles leave the multi first */
    uint64_t rng;                 /* jitter */
} be_client;

#define BE_CLIENT_MT "blandeval.client"
be_client *be_check_client(lua_State *L, int idx);
int be_client_handle(be_client *c, be_http *h);
void be_push_transfer_error(lua_State *L, be_client *c, const be_http *h, CURLcode rc);
void be_client_open(lua_State *L);
void be_new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                  lua_CFunction close);

/* Batches (batch.c): several transfers of one client at once */
int be_client_batch(lua_State *L);
void be_batch_detach(struct be_batch *b);
void be_batch_open(lua_State *L);
void be_sleep(double seconds);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
