/* 8 threads calling at once: nothing lost, nothing crashes, and each thread
 * keeps its own last error. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define THREADS 8
#define EVENTS 200
#define WAIT_MS 60000

static int thread_failures[THREADS];

static void *worker(void *arg) {
    int t = (int)(size_t)arg, i;
    char team[32], props[64];
    snprintf(team, sizeof team, "team-%d", t);
    for (i = 0; i < EVENTS; i++) {
        snprintf(props, sizeof props, "{\"thread\":%d,\"i\":%d}", t, i);
        if (trodo_track("thread_event", props) != TRODO_OK) thread_failures[t]++;
        if (i % 40 == 0) {
            TrodoGroup *g;
            char *s;
            if (trodo_add_group("team", team) != TRODO_OK) thread_failures[t]++;
            if (trodo_set_group("active_team", team) != TRODO_OK) thread_failures[t]++;
            s = trodo_get_groups();
            if (s == NULL) thread_failures[t]++;
            trodo_string_free(s);
            s = trodo_get_distinct_id();
            if (s == NULL) thread_failures[t]++;
            trodo_string_free(s);
            g = trodo_get_group("company", team);
            if (g == NULL || trodo_group_increment(g, "calls", 1) != TRODO_OK) thread_failures[t]++;
            trodo_group_free(g);
            /* A failure here is this thread's alone. */
            if (trodo_track(NULL, NULL) != TRODO_ERR_INVALID_ARGUMENT) thread_failures[t]++;
            if (strstr(trodo_last_error(), "event_name") == NULL) thread_failures[t]++;
            if (trodo_track("thread_marker", NULL) != TRODO_OK) thread_failures[t]++;
            if (strcmp(trodo_last_error(), "") != 0) thread_failures[t]++;
        }
    }
    return NULL;
}

int main(void) {
    pthread_t threads[THREADS];
    int t;
    char needle[32];
    char *groups;

    CHECK_OK(harness_init("threads"));
    for (t = 0; t < THREADS; t++) {
        CHECK(pthread_create(&threads[t], NULL, worker, (void *)(size_t)t) == 0);
    }
    for (t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        CHECK(thread_failures[t] == 0);
    }
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/events", "\"event_name\":\"thread_event\"", (char *)NULL) == THREADS * EVENTS);
    for (t = 0; t < THREADS; t++) {
        snprintf(needle, sizeof needle, "\"thread\":%d}", t);
        CHECK(log_count("/api/events", needle, (char *)NULL) == EVENTS);
    }
    CHECK(log_count("/api/sdk/groups/add_group", (char *)NULL) == THREADS * (EVENTS / 40));
    groups = take_string(trodo_get_groups());
    CHECK(groups != NULL && strstr(groups, "\"team-7\"") != NULL && strstr(groups, "\"team-0\"") != NULL);
    free(groups);
    CHECK_OK(trodo_shutdown(WAIT_MS));
    return harness_finish("c_threads");
}
