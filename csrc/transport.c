/* transport.c: one HTTP GET with libcurl. The easy handle lives as long as
 * its client, so connections (and TLS sessions) are reused across requests.
 * The callbacks only copy bytes into buffers this file owns: no Lua call, so
 * no Lua error can ever unwind through libcurl. */

#define _POSIX_C_SOURCE 200809L   /* strncasecmp */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

int be_http_init(be_http *h)
{
    CURL *c = curl_easy_init();

    if (c == NULL)
        return 0;
    h->curl = c;
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);           /* no SIGALRM in threads or nginx */
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");    /* every encoding libcurl can decode */
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
 * string option is copied by libcurl; the header list must outlive the handle
 * and is owned by h. */
int be_http_configure(be_http *h, struct curl_slist *headers, const char *cainfo,
                      const char *capath, long connect_timeout_ms, int no_proxy)
{
    CURL *c = h->curl;

    if (no_proxy)       /* plain http to this machine must not travel through a proxy */
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");

    if (h->headers != NULL)
        curl_slist_free_all(h->headers);
    h->headers = headers;
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (cainfo != NULL && curl_easy_setopt(c, CURLOPT_CAINFO, cainfo) != CURLE_OK)
        return 0;
    if (capath != NULL && curl_easy_setopt(c, CURLOPT_CAPATH, capath) != CURLE_OK)
        return 0;
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
    return 1;
}

CURLcode be_http_get(be_http *h, const char *url, long timeout_ms)
{
    CURLcode rc;
    CURL *c = h->curl;

    h->len = 0;
    if (h->body != NULL)
        h->body[0] = '\0';
    h->status = 0;
    h->retry_after = -1;
    h->too_big = h->no_memory = 0;
    h->errbuf[0] = h->request_id[0] = h->content_type[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    rc = curl_easy_perform(c);
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

void be_http_free(be_http *h)
{
    if (h->curl != NULL)
        curl_easy_cleanup(h->curl);
    h->curl = NULL;
    if (h->headers != NULL)
        curl_slist_free_all(h->headers);
    h->headers = NULL;
    free(h->body);
    h->body = NULL;
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
