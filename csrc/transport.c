/* transport.c: HTTP GETs with libcurl. The easy handle and the multi handle
 * that drives it live as long as their client, so connections (and TLS
 * sessions) are reused across requests. Every transfer goes through the multi
 * interface, which lets one be started now and finished later (a prefetch)
 * without threads. The callbacks only copy bytes into buffers this file owns:
 * no Lua call, so no Lua error can ever unwind through libcurl. */

#define _POSIX_C_SOURCE 200809L   /* strncasecmp, clock_gettime */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "blandeval.h"

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    be_http *h = (be_http *)ud;
    size_t len = size * n;

    if (len > h->max_body - h->len) {        /* cap first: len may be anything */
        h->too_big = 1;
        return 0;                            /* aborts the transfer */
    }
    if (h->len + len + 1 > h->cap) {
        size_t cap = h->cap ? h->cap : 16384;
        char *nb;
        while (cap < h->len + len + 1)
            cap *= 2;
        nb = (char *)realloc(h->body, cap);
        if (nb == NULL) {
            h->no_memory = 1;
            return 0;
        }
        h->body = nb;
        h->cap = cap;
    }
    memcpy(h->body + h->len, data, len);
    h->len += len;
    h->body[h->len] = '\0';                  /* the decoder relies on it */
    return len;
}

/* Copies the value of header `name` from line into out, trimmed. */
static void header_value(const char *line, size_t len, const char *name,
                         char *out, size_t outsz)
{
    size_t nl = strlen(name), i, j;

    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return;
    for (i = nl + 1; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
        ;
    for (j = len; j > i && (line[j - 1] == '\r' || line[j - 1] == '\n' || line[j - 1] == ' '); j--)
        ;
    if (j - i >= outsz)
        j = i + outsz - 1;
    memcpy(out, line + i, j - i);
    out[j - i] = '\0';
}

static size_t on_header(char *line, size_t size, size_t n, void *ud)
{
    be_http *h = (be_http *)ud;
    size_t len = size * n;

    /* a new status line starts a new response (after a 100, a redirect or a
     * proxy's CONNECT): only the last one's headers count */
    if (len > 5 && memcmp(line, "HTTP/", 5) == 0) {
        h->request_id[0] = h->content_type[0] = '\0';
        return len;
    }
    header_value(line, len, "x-request-id", h->request_id, sizeof h->request_id);
    if (h->request_id[0] == '\0')           /* x-request-id wins over request-id */
        header_value(line, len, "request-id", h->request_id, sizeof h->request_id);
    header_value(line, len, "content-type", h->content_type, sizeof h->content_type);
    return len;
}

double be_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int be_http_init(be_http *h, CURLM *multi)
{
    CURL *c = curl_easy_init();

    if (c == NULL)
        return 0;
    h->curl = c;
    h->multi = multi;
    curl_easy_setopt(c, CURLOPT_PRIVATE, (void *)h);     /* routes the multi's messages */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);           /* no SIGALRM in threads or nginx */
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");    /* every encoding libcurl can decode */
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 131072L);    /* pages are 100s of kB: fewer reads */
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);     /* the key must not follow a redirect */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    return 1;
}

/* Applies the client's fixed options: headers, TLS files, the proxy. A
 * string option is copied by libcurl; the header list is the client's and
 * must outlive the handle. */
int be_http_configure(be_http *h, const struct curl_slist *headers, const char *cainfo,
                      const char *capath, long connect_timeout_ms, int no_proxy, int compress)
{
    CURL *c = h->curl;

    if (!compress)      /* no Accept-Encoding: the server sends the body as it is */
        curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, (char *)NULL);
    if (no_proxy)       /* plain http to this machine must not travel through a proxy */
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (cainfo != NULL && curl_easy_setopt(c, CURLOPT_CAINFO, cainfo) != CURLE_OK)
        return 0;
    if (capath != NULL && curl_easy_setopt(c, CURLOPT_CAPATH, capath) != CURLE_OK)
        return 0;
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
    return 1;
}

/* Runs the multi handle as far as it goes without waiting and marks each
 * transfer that ended, whichever handle of the client it belongs to. */
static CURLMcode drive(CURLM *multi, int *running)
{
    CURLMcode mc = curl_multi_perform(multi, running);
    CURLMsg *msg;
    int queued;

    while ((msg = curl_multi_info_read(multi, &queued)) != NULL) {
        char *priv = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv != NULL) {
            be_http *x = (be_http *)(void *)priv;
            x->done = 1;
            x->result = msg->data.result;
        }
    }
    return mc;
}

/* Starts a GET of url (timeout_ms: libcurl's limit for the whole transfer,
 * 0 for none) and sends what can be sent without waiting. A transfer of this
 * handle still in flight is aborted first. 0 if it could not be started. */
int be_http_start(be_http *h, const char *url, long timeout_ms, const void *owner)
{
    CURL *c = h->curl;
    size_t n = strlen(url) + 1;
    int running;

    be_http_abort(h);
    h->len = 0;
    if (h->body != NULL)
        h->body[0] = '\0';
    h->status = 0;
    h->retry_after = -1;
    h->too_big = h->no_memory = 0;
    h->errbuf[0] = h->request_id[0] = h->content_type[0] = '\0';
    free(h->url);
    h->url = (char *)malloc(n);
    if (h->url == NULL) {
        h->no_memory = 1;
        snprintf(h->errbuf, sizeof h->errbuf, "out of memory");
        return 0;
    }
    memcpy(h->url, url, n);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    {
        CURLMcode mc = curl_multi_add_handle(h->multi, c);
        if (mc != CURLM_OK) {
            h->no_memory = mc == CURLM_OUT_OF_MEMORY;
            snprintf(h->errbuf, sizeof h->errbuf, "cannot start the transfer: %s",
                     curl_multi_strerror(mc));
            return 0;
        }
    }
    h->in_flight = 1;
    h->done = 0;
    h->owner = owner;
    drive(h->multi, &running);
    return 1;
}

/* Moves the client's transfers on as far as they go without waiting. */
void be_http_pump(be_http *h)
{
    int running;
    if (h->in_flight && !h->done)
        drive(h->multi, &running);
}

/* Stops the transfer in flight, if any; libcurl drops its connection when
 * the answer was not read to the end. */
void be_http_abort(be_http *h)
{
    if (!h->in_flight)
        return;
    curl_multi_remove_handle(h->multi, h->curl);
    h->in_flight = h->done = 0;
    h->owner = NULL;
}

/* Waits for the transfer in flight to end and returns its result. timeout >
 * 0: seconds from now after which it ends as CURLE_OPERATION_TIMEDOUT (for a
 * prefetch, started without a limit of libcurl's: its time starts when the
 * caller asks for the page). */
CURLcode be_http_finish(be_http *h, double timeout)
{
    CURL *c = h->curl;
    CURLcode rc = CURLE_OK;
    double until = timeout > 0 ? be_now() + timeout : 0;

    if (!h->in_flight)
        return CURLE_FAILED_INIT;
    for (;;) {
        int running;
        long wait_ms = 1000;
        CURLMcode mc;

        if (!h->done) {
            mc = drive(h->multi, &running);
            if (mc != CURLM_OK) {
                snprintf(h->errbuf, sizeof h->errbuf, "%s", curl_multi_strerror(mc));
                rc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
                break;
            }
        }
        if (h->done) {
            rc = h->result;
            break;
        }
        if (until > 0) {
            double left = until - be_now();
            if (left <= 0) {
                snprintf(h->errbuf, sizeof h->errbuf,
                         "Operation timed out after %ld milliseconds with %lu bytes received",
                         (long)(timeout * 1000), (unsigned long)h->len);
                rc = CURLE_OPERATION_TIMEDOUT;
                break;
            }
            if (left * 1000 < wait_ms)
                wait_ms = (long)(left * 1000) + 1;
        }
        mc = curl_multi_poll(h->multi, NULL, 0, (int)wait_ms, NULL);
        if (mc != CURLM_OK) {
            snprintf(h->errbuf, sizeof h->errbuf, "%s", curl_multi_strerror(mc));
            rc = CURLE_FAILED_INIT;
            break;
        }
    }
    be_http_abort(h);                        /* removes the handle, ended or not */
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h->status);
#if LIBCURL_VERSION_NUM >= 0x074200
    {
        curl_off_t ra = -1;
        if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
            h->retry_after = (double)ra;
    }
#endif
    if (h->body == NULL && rc == CURLE_OK) {
        /* an empty body still reaches the decoder as a NUL-terminated string */
        h->body = (char *)malloc(1);
        if (h->body == NULL) {
            h->no_memory = 1;
            return CURLE_OUT_OF_MEMORY;
        }
        h->cap = 1;
        h->body[0] = '\0';
    }
    return rc;
}

/* Waits up to wait_ms for activity on any transfer of the multi handle. */
void be_multi_poll(CURLM *multi, long wait_ms)
{
    curl_multi_poll(multi, NULL, 0, (int)wait_ms, NULL);
}

/* One GET, waited for. */
CURLcode be_http_get(be_http *h, const char *url, long timeout_ms)
{
    if (!be_http_start(h, url, timeout_ms > 0 ? timeout_ms : 1L, NULL))
        return h->no_memory ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
    return be_http_finish(h, 0);
}

/* Frees the handle and its buffers; the multi handle is the client's. */
void be_http_free(be_http *h)
{
    if (h->multi != NULL)
        be_http_abort(h);
    if (h->curl != NULL)
        curl_easy_cleanup(h->curl);
    h->curl = NULL;
    h->multi = NULL;
    free(h->body);
    free(h->url);
    h->body = h->url = NULL;
    h->len = h->cap = 0;
}

/* Whether a failed transfer may succeed when tried again: the network and
 * the server's side of it, never TLS verification or our own setup. */
int be_curl_retryable(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_BAD_CONTENT_ENCODING:
        return 1;
    default:
        return 0;
    }
}

/* The CURLcode's name, for error values and logs. */
const char *be_curl_name(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK: return "OK";
    case CURLE_UNSUPPORTED_PROTOCOL: return "UNSUPPORTED_PROTOCOL";
    case CURLE_URL_MALFORMAT: return "URL_MALFORMAT";
    case CURLE_COULDNT_RESOLVE_PROXY: return "COULDNT_RESOLVE_PROXY";
    case CURLE_COULDNT_RESOLVE_HOST: return "COULDNT_RESOLVE_HOST";
    case CURLE_COULDNT_CONNECT: return "COULDNT_CONNECT";
    case CURLE_WRITE_ERROR: return "WRITE_ERROR";
    case CURLE_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
    case CURLE_OPERATION_TIMEDOUT: return "OPERATION_TIMEDOUT";
    case CURLE_SSL_CONNECT_ERROR: return "SSL_CONNECT_ERROR";
    case CURLE_PEER_FAILED_VERIFICATION: return "PEER_FAILED_VERIFICATION";
    case CURLE_GOT_NOTHING: return "GOT_NOTHING";
    case CURLE_SEND_ERROR: return "SEND_ERROR";
    case CURLE_RECV_ERROR: return "RECV_ERROR";
    case CURLE_PARTIAL_FILE: return "PARTIAL_FILE";
    case CURLE_BAD_CONTENT_ENCODING: return "BAD_CONTENT_ENCODING";
    case CURLE_SSL_CACERT_BADFILE: return "SSL_CACERT_BADFILE";
    case CURLE_SSL_CERTPROBLEM: return "SSL_CERTPROBLEM";
    case CURLE_HTTP2: return "HTTP2";
    case CURLE_HTTP2_STREAM: return "HTTP2_STREAM";
    case CURLE_ABORTED_BY_CALLBACK: return "ABORTED_BY_CALLBACK";
    default: return "CURL_ERROR";
    }
}
