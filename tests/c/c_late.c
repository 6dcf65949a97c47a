/* Calls at the end of a thread's or a process's life: from a pthread key
 * destructor (run after the thread's own thread-locals are destroyed, as a
 * thread pool's or a C++ thread_local's cleanup would) and from an atexit
 * handler that shuts down (run after the main thread's thread-locals are
 * destroyed). None may abort the program, and the shutdown in the atexit
 * handler delivers everything. The late run is this program again, with
 * the argument "late", so that its exit can be watched. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define DEADLINE_S 60

static pthread_key_t key;

static void key_destructor(void *value) {
    (void)value;
    /* The thread's own storage is gone by now. */
    if (trodo_track("from_key_destructor", NULL) != TRODO_OK) _exit(11);
    if (trodo_last_error() == NULL) _exit(12);
}

static void *thread_main(void *arg) {
    (void)arg;
    /* A call first, so this thread has libtrodo storage to destroy. */
    if (trodo_track("from_thread", NULL) != TRODO_OK) _exit(13);
    pthread_setspecific(key, (void *)1);
    return NULL;
}

static void at_exit(void) {
    if (trodo_track("from_atexit", NULL) != TRODO_OK) _exit(14);
    if (trodo_last_error() == NULL) _exit(15);
    if (trodo_shutdown(20000) != TRODO_OK) _exit(16);
    /* After shutdown: a status, not an abort. */
    if (trodo_track("after_shutdown", NULL) != TRODO_ERR_NOT_INITIALIZED) _exit(17);
}

static int late_run(void) {
    pthread_t t;
    if (harness_init("late") != TRODO_OK) return 3;
    if (atexit(at_exit) != 0) return 4;
    if (pthread_key_create(&key, key_destructor) != 0) return 5;
    if (pthread_create(&t, NULL, thread_main, NULL) != 0) return 6;
    if (pthread_join(t, NULL) != 0) return 7;
    return 0; /* the atexit handler shuts down */
}

int main(int argc, char **argv) {

    if (argc > 1 && strcmp(argv[1], "late") == 0) return late_run();

    CHECK(harness_run_self(argv[0], "late", DEADLINE_S));
    /* Delivered by the shutdown in the atexit handler, not by a later run. */
    CHECK(log_count("/api/events", "\"event_name\":\"from_thread\"", (char *)NULL) == 1);
    CHECK(log_count("/api/events", "\"event_name\":\"from_key_destructor\"", (char *)NULL) == 1);
    CHECK(log_count("/api/events", "\"event_name\":\"from_atexit\"", (char *)NULL) == 1);
    CHECK(log_count("/api/events", "\"event_name\":\"after_shutdown\"", (char *)NULL) == 0);
    return harness_finish("c_late");
}
