/* The host's transport: every request goes through libcurl (WinHTTP on
 * Windows, where Debian's mingw-w64 has no libcurl), on a sender
 * thread of this program's (or, in one phase, at once inside the send
 * function). The test server answers the first two requests with 503 and
 * 429 + Retry-After: libtrodo retries them and waits as told. A request the
 * transport never completes counts as timed out and is sent again; its late
 * completion, and one after trodo_shutdown, change nothing. Run against the
 * library built without its HTTP client too (TRODO_TEST_NO_HTTP=1). */
#define _POSIX_C_SOURCE 200809L
#ifdef _WIN32
#include <windows.h>
#include <winhttp.h>
#else
#include <curl/curl.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define WAIT_MS 30000
#define MAX_PENDING 64
#define MAX_SEEN 256

enum mode { ON_THREAD, AT_ONCE, HOLD };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static TrodoRequest *pending[MAX_PENDING];
static int pending_count, stopping;
static enum mode mode = ON_THREAD;
static TrodoRequest *held; /* HOLD: kept, never sent */
static long seen_status[MAX_SEEN];
static double seen_at[MAX_SEEN];
static int seen_count, user_data_ok;
static int marker;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct reply {
    char retry_after[64];
    char *body;
    size_t length;
};

/* Records what came back and completes the request with it. */
static void complete(TrodoRequest *request, long status, struct reply *reply) {
    struct reply r = *reply;
    pthread_mutex_lock(&lock);
    if (seen_count < MAX_SEEN) {
        seen_status[seen_count] = status;
        seen_at[seen_count++] = now_s();
    }
    pthread_mutex_unlock(&lock);
    trodo_request_complete(request, (int32_t)status, r.retry_after[0] ? r.retry_after : NULL,
                           (const uint8_t *)r.body, r.length);
    free(r.body);
}

#ifdef _WIN32
/* Sends one request with WinHTTP and completes it. */
static void send_over_http(TrodoRequest *request) {
    struct reply r;
    size_t i, length = 0;
    const uint8_t *body = trodo_request_body(request, &length);
    long status = 0;
    int timeout = (int)trodo_request_timeout_ms(request);
    wchar_t url[2048], host[256], path[1024], wide_headers[4096];
    char headers[4096];
    size_t used = 0;
    URL_COMPONENTS parts;
    HINTERNET session = NULL, connection = NULL, call = NULL;
    memset(&r, 0, sizeof r);
    memset(&parts, 0, sizeof parts);
    headers[0] = '\0';
    for (i = 0; i < trodo_request_header_count(request); i++) {
        int n = snprintf(headers + used, sizeof headers - used, "%s: %s\r\n",
                         trodo_request_header_name(request, i), trodo_request_header_value(request, i));
        if (n > 0 && (size_t)n < sizeof headers - used) used += (size_t)n;
    }
    MultiByteToWideChar(CP_UTF8, 0, trodo_request_url(request), -1, url, 2048);
    MultiByteToWideChar(CP_UTF8, 0, headers, -1, wide_headers, 4096);
    parts.dwStructSize = sizeof parts;
    parts.lpszHostName = host;
    parts.dwHostNameLength = 256;
    parts.lpszUrlPath = path;
    parts.dwUrlPathLength = 1024;
    if (WinHttpCrackUrl(url, 0, 0, &parts))
        session = WinHttpOpen(L"c_transport", WINHTTP_ACCESS_TYPE_NO_PROXY, WINHTTP_NO_PROXY_NAME,
                              WINHTTP_NO_PROXY_BYPASS, 0);
    if (session) connection = WinHttpConnect(session, host, parts.nPort, 0);
    if (connection)
        call = WinHttpOpenRequest(connection, L"POST", path, NULL, WINHTTP_NO_REFERER,
                                  WINHTTP_DEFAULT_ACCEPT_TYPES, 0);
    if (call && WinHttpSetTimeouts(call, timeout, timeout, timeout, timeout) &&
        WinHttpSendRequest(call, wide_headers, (DWORD)-1L, (LPVOID)body, (DWORD)length, (DWORD)length, 0) &&
        WinHttpReceiveResponse(call, NULL)) {
        DWORD code = 0, size = sizeof code, got = 0;
        wchar_t retry_after[64];
        char chunk[4096];
        if (WinHttpQueryHeaders(call, WINHTTP_QUERY_STATUS_CODE | WINHTTP_QUERY_FLAG_NUMBER,
                                WINHTTP_HEADER_NAME_BY_INDEX, &code, &size, WINHTTP_NO_HEADER_INDEX))
            status = (long)code;
        size = sizeof retry_after;
        if (WinHttpQueryHeaders(call, WINHTTP_QUERY_RETRY_AFTER, WINHTTP_HEADER_NAME_BY_INDEX, retry_after,
                                &size, WINHTTP_NO_HEADER_INDEX))
            WideCharToMultiByte(CP_UTF8, 0, retry_after, -1, r.retry_after, sizeof r.retry_after, NULL, NULL);
        while (WinHttpReadData(call, chunk, sizeof chunk, &got) && got > 0) {
            char *grown = (char *)realloc(r.body, r.length + got);
            if (grown == NULL) break;
            memcpy(grown + r.length, chunk, got);
            r.body = grown;
            r.length += got;
        }
    }
    if (call) WinHttpCloseHandle(call);
    if (connection) WinHttpCloseHandle(connection);
    if (session) WinHttpCloseHandle(session);
    complete(request, status, &r);
}
#else
static size_t on_header(char *line, size_t size, size_t n, void *data) {
    struct reply *r = (struct reply *)data;
    size_t len = size * n;
    if (len > 12 && strncmp(line, "Retry-After:", 12) == 0) {
        size_t i = 12, j = 0;
        while (i < len && line[i] == ' ') i++;
        while (i < len && line[i] != '\r' && line[i] != '\n' && j + 1 < sizeof r->retry_after)
            r->retry_after[j++] = line[i++];
        r->retry_after[j] = '\0';
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *out) {
    struct reply *r = (struct reply *)out;
    size_t len = size * n;
    char *grown = (char *)realloc(r->body, r->length + len);
    if (grown == NULL) return 0;
    memcpy(grown + r->length, data, len);
    r->body = grown;
    r->length += len;
    return len;
}

/* Sends one request with libcurl and completes it. */
static void send_over_http(TrodoRequest *request) {
    struct reply r;
    struct curl_slist *headers = NULL;
    size_t i, length = 0;
    const uint8_t *body = trodo_request_body(request, &length);
    long status = 0;
    CURL *curl = curl_easy_init();
    memset(&r, 0, sizeof r);
    for (i = 0; i < trodo_request_header_count(request); i++) {
        char line[512];
        snprintf(line, sizeof line, "%s: %s", trodo_request_header_name(request, i),
                 trodo_request_header_value(request, i));
        headers = curl_slist_append(headers, line);
    }
    curl_easy_setopt(curl, CURLOPT_URL, trodo_request_url(request));
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, (const char *)body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)length);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)trodo_request_timeout_ms(request));
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    complete(request, status, &r);
}
#endif

static void send_fn(TrodoRequest *request, void *user_data) {
    enum mode m;
    pthread_mutex_lock(&lock);
    user_data_ok = user_data == (void *)&marker;
    m = mode;
    if (m == HOLD && held == NULL) {
        held = request;
        pthread_mutex_unlock(&lock);
        return;
    }
    if (m == ON_THREAD || m == HOLD) {
        if (pending_count < MAX_PENDING) pending[pending_count++] = request;
        pthread_cond_signal(&wake);
        pthread_mutex_unlock(&lock);
        return;
    }
    pthread_mutex_unlock(&lock);
    send_over_http(request); /* AT_ONCE: sent and completed inside the send function */
}

static void *sender(void *arg) {
    (void)arg;
    for (;;) {
        TrodoRequest *request;
        pthread_mutex_lock(&lock);
        while (pending_count == 0 && !stopping) pthread_cond_wait(&wake, &lock);
        if (pending_count == 0) {
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        request = pending[0];
        memmove(pending, pending + 1, (size_t)(pending_count - 1) * sizeof pending[0]);
        pending_count--;
        pthread_mutex_unlock(&lock);
        send_over_http(request);
    }
}

static void set_mode(enum mode m) {
    pthread_mutex_lock(&lock);
    mode = m;
    pthread_mutex_unlock(&lock);
}

static TrodoRequest *take_held(void) {
    TrodoRequest *r;
    pthread_mutex_lock(&lock);
    r = held;
    held = NULL;
    pthread_mutex_unlock(&lock);
    return r;
}

/* Options with a short request timeout, so a held request times out soon. */
static const char *options(const char *subdir) {
    return harness_options_plus(subdir, ",\"timeout_ms\":800");
}

int main(void) {
    pthread_t thread;
    TrodoRequest *late;
    int i, saw_503 = 0, saw_429 = 0;
    double retried_after = 0;
    int no_http = getenv("TRODO_TEST_NO_HTTP") != NULL;

#ifndef _WIN32
    curl_global_init(CURL_GLOBAL_DEFAULT);
#endif
    pthread_create(&thread, NULL, sender, NULL);

    /* Without a transport: the build without an HTTP client refuses init. */
    if (no_http) {
        CHECK_FAILS(trodo_init("site-c", options("none")), TRODO_ERR_INVALID_ARGUMENT,
                    "trodo_set_transport");
    }

    CHECK_OK(trodo_set_transport(send_fn, &marker));
    CHECK_OK(trodo_init("site-c", options("t")));
    CHECK_STATUS(trodo_set_transport(NULL, NULL), TRODO_ERR_ALREADY_INITIALIZED);

    /* The seed scenario, through libcurl on the sender thread. The server
       answers the first request 503, the second 429 with Retry-After: 1. */
    CHECK_OK(trodo_identify("user-t"));
    CHECK_OK(trodo_add_group("team", "team-a"));
    CHECK_OK(trodo_set_group("active_team", "team-a"));
    CHECK_OK(trodo_track("transported", "{\"n\":1}"));
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/events", "\"event_name\":\"transported\"", "\"active_team\":[\"team-a\"]",
                    "\"user_id\":\"user-t\"", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/set_group", "\"groupId\":\"team-a\"", (char *)NULL) == 1);
    pthread_mutex_lock(&lock);
    for (i = 0; i < seen_count; i++) {
        if (seen_status[i] == 503) saw_503 = 1;
        if (seen_status[i] == 429 && i + 1 < seen_count) {
            saw_429 = 1;
            retried_after = seen_at[i + 1] - seen_at[i];
        }
    }
    CHECK(user_data_ok);
    pthread_mutex_unlock(&lock);
    CHECK(saw_503 && saw_429);
    CHECK(retried_after >= 0.9); /* Retry-After: 1 was honoured */

    /* Completed inside the send function, on the delivery thread. */
    set_mode(AT_ONCE);
    CHECK_OK(trodo_track("at_once", NULL));
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/events", "\"event_name\":\"at_once\"", (char *)NULL) == 1);

    /* Never completed: it times out (800 ms) and is sent again, through the
       thread; the held one stays valid and its late completion is ignored. */
    set_mode(HOLD);
    CHECK_OK(trodo_track("held_once", NULL));
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/events", "\"event_name\":\"held_once\"", (char *)NULL) == 1);
    late = take_held();
    CHECK(late != NULL);
    if (late != NULL) {
        CHECK(strstr(trodo_request_url(late), "/api/events") != NULL);
        trodo_request_complete(late, 500, NULL, NULL, 0);
    }
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/events", "\"event_name\":\"held_once\"", (char *)NULL) == 1);

    /* Completed only after trodo_shutdown: harmless; the event stays queued
       and the next start sends it. */
    CHECK_OK(trodo_track("after_shutdown", NULL));
    CHECK_STATUS(trodo_shutdown(300), TRODO_ERR_TIMEOUT);
    late = take_held();
    CHECK(late != NULL);
    if (late != NULL) trodo_request_complete(late, 200, NULL, NULL, 0);
    CHECK(log_count("/api/events", "\"event_name\":\"after_shutdown\"", (char *)NULL) == 0);
    set_mode(ON_THREAD);
    CHECK_OK(trodo_init("site-c", options("t")));
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/events", "\"event_name\":\"after_shutdown\"", (char *)NULL) == 1);
    CHECK_OK(trodo_shutdown(WAIT_MS));

    /* NULL restores the built-in client (refused again without one). */
    CHECK_OK(trodo_set_transport(NULL, NULL));
    if (no_http) {
        CHECK_FAILS(trodo_init("site-c", options("t")), TRODO_ERR_INVALID_ARGUMENT,
                    "trodo_set_transport");
    } else {
        CHECK_OK(trodo_init("site-c", options("t")));
        CHECK_OK(trodo_track("built_in", NULL));
        CHECK_OK(trodo_shutdown(WAIT_MS));
        CHECK(log_count("/api/events", "\"event_name\":\"built_in\"", (char *)NULL) == 1);
    }

    pthread_mutex_lock(&lock);
    stopping = 1;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    pthread_join(thread, NULL);
#ifndef _WIN32
    curl_global_cleanup();
#endif
    return harness_finish("c_transport");
}
