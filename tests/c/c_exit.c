/* A program that tracks and returns from main without trodo_shutdown: every
 * event it tracked is on disk when it has exited, and the next run sends
 * them. The tracking run (this program again, with the argument "track")
 * cannot reach its server and writes state only every 60 s: its events
 * reach the disk through the queue's mapped journal as each call returns,
 * and its last identify and group through the exit handler alone. On
 * Windows the run is a new process (_spawnl), not a fork. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define EVENTS 20
#define WAIT_MS 20000
#define DEADLINE_S 60

static int track_and_return(void) {
    char options[4096], name[32];
    int i;
    /* Port 9 on loopback: nothing listens, every send fails and is retried. */
    snprintf(options, sizeof options,
             "{\"api_base\":\"http://127.0.0.1:9\",\"storage_dir\":\"%s/exit\","
             "\"persist_interval_ms\":60000}",
             getenv("TRODO_TEST_DIR"));
    if (trodo_init("site-c", options) != TRODO_OK) return 3;
    for (i = 0; i < EVENTS; i++) {
        snprintf(name, sizeof name, "exit-%d", i);
        if (trodo_track(name, NULL) != TRODO_OK) return 4;
    }
    if (trodo_identify("exit-user") != TRODO_OK) return 5;
    if (trodo_set_group("company", "exit-co") != TRODO_OK) return 6;
    return 0; /* no trodo_shutdown */
}

int main(int argc, char **argv) {
    int i;
    char name[64];

    if (argc > 1 && strcmp(argv[1], "track") == 0) return track_and_return();

    CHECK(harness_run_self(argv[0], "track", DEADLINE_S));

    /* The next run, with a server: everything the first one accepted arrives. */
    CHECK_OK(harness_init("exit"));
    CHECK_STRING(trodo_get_distinct_id(), "exit-user");
    CHECK_STRING(trodo_get_groups(), "{\"company\":[\"exit-co\"]}");
    CHECK_OK(trodo_flush(WAIT_MS));
    for (i = 0; i < EVENTS; i++) {
        snprintf(name, sizeof name, "\"event_name\":\"exit-%d\"", i);
        CHECK(log_count("/api/events", name, (char *)NULL) == 1);
    }
    CHECK_OK(trodo_shutdown(WAIT_MS));
    return harness_finish("c_exit");
}
