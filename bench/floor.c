/* bench/floor.c: the floor under blandeval's iteration. Fetches the URLs given
 * on stdin (one per line) with one libcurl handle, as the client does (same
 * headers, compression, keep-alive), and decodes nothing. Prints the best
 * wall time of the passes in seconds; the first pass saves the bodies to DIR
 * (as 0001.json, ...) so that the decoding can be timed apart. ENCODING
 * "gzip" asks for compressed bodies, "identity" (the default) does not.
 *   floor DIR|- PASSES [ENCODING] < urls        (key from BLAND_API_KEY) */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

typedef struct { char *p; size_t n, cap; } buffer;

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    buffer *b = (buffer *)ud;
    size_t len = size * n;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1 << 20;
        char *p;
        while (cap < b->n + len)
            cap *= 2;
        if ((p = (char *)realloc(b->p, cap)) == NULL)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
    return len;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : NULL, *key = getenv("BLAND_API_KEY");
    int passes = argc > 2 ? atoi(argv[2]) : 3, pass;
    int gzip = argc > 3 && strcmp(argv[3], "gzip") == 0;

    if (dir != NULL && strcmp(dir, "-") == 0)    /* "-": save nothing */
        dir = NULL;
    char line[4096], auth[512];
    char **urls = NULL;
    size_t n = 0, i;
    double best = 1e9;
    buffer body = { NULL, 0, 0 };
    struct curl_slist *headers = NULL;
    CURL *c;

    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        urls = (char **)realloc(urls, (n + 1) * sizeof *urls);
        urls[n] = (char *)malloc(strlen(line) + 1);
        strcpy(urls[n++], line);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c = curl_easy_init();
    snprintf(auth, sizeof auth, "authorization: %s", key ? key : "");
    headers = curl_slist_append(headers, "accept: application/json");
    headers = curl_slist_append(headers, auth);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (gzip)
        curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 131072L);    /* as the client's handles */
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    for (pass = 0; pass < passes; pass++) {
        double t0 = now(), t;
        for (i = 0; i < n; i++) {
            long status = 0;
            body.n = 0;
            curl_easy_setopt(c, CURLOPT_URL, urls[i]);
            if (curl_easy_perform(c) != CURLE_OK) {
                fprintf(stderr, "floor: %s failed\n", urls[i]);
                return 1;
            }
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
            if (status != 200) {
                fprintf(stderr, "floor: %s: HTTP %ld\n", urls[i], status);
                return 1;
            }
            if (pass == 0 && dir != NULL) {
                char path[4200];
                FILE *f;
                snprintf(path, sizeof path, "%s/%04lu.json", dir, (unsigned long)i + 1);
                if ((f = fopen(path, "wb")) == NULL || fwrite(body.p, 1, body.n, f) != body.n) {
                    fprintf(stderr, "floor: cannot write %s\n", path);
                    return 1;
                }
                fclose(f);
            }
        }
        t = now() - t0;
        if (pass > 0 || passes == 1)         /* the first pass also writes files */
            best = t < best ? t : best;
    }
    printf("%.6f\n", best);
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    for (i = 0; i < n; i++)
        free(urls[i]);
    free(urls);
    free(body.p);
    curl_global_cleanup();
    return 0;
}
