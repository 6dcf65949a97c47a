/* Memberships and identity survive shutdown + init; reset clears groups (and
 * that too survives a restart); a corrupt state file never stops init. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS 20000

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

int main(void) {
    char *id, *anon;
    char path[2048], aside[2100];
    FILE *f;

    CHECK_OK(harness_init("persist"));
    CHECK_OK(trodo_identify("user-x"));
    CHECK_OK(trodo_add_group("team", "a"));
    CHECK_OK(trodo_add_group("team", "b"));
    CHECK_OK(trodo_set_group("active_team", "a"));
    CHECK_OK(trodo_shutdown(WAIT_MS));

    CHECK_OK(harness_init("persist"));
    CHECK_STRING(trodo_get_groups(), "{\"active_team\":[\"a\"],\"team\":[\"a\",\"b\"]}");
    CHECK_STRING(trodo_get_distinct_id(), "user-x");
    CHECK_OK(trodo_track("after_restart", NULL));
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/events", "\"event_name\":\"after_restart\"",
                    "{\"active_team\":[\"a\"],\"team\":[\"a\",\"b\"]}", "\"user_id\":\"user-x\"",
                    (char *)NULL) == 1);

    /* Reset: the next person on the device inherits nothing. */
    CHECK_OK(trodo_reset());
    CHECK_STRING(trodo_get_groups(), "{}");
    anon = take_string(trodo_get_distinct_id());
    CHECK(anon != NULL && strcmp(anon, "user-x") != 0 && strlen(anon) == 36);
    CHECK_OK(trodo_track("anonymous_again", NULL));
    CHECK_OK(trodo_shutdown(WAIT_MS));
    CHECK(log_count("/api/sdk/reset", "\"userId\":\"user-x\"", (char *)NULL) == 1);
    CHECK(log_count("/api/events", "\"event_name\":\"anonymous_again\"", "\"custom_properties\":{}",
                    (char *)NULL) == 1);

    CHECK_OK(harness_init("persist"));
    CHECK_STRING(trodo_get_groups(), "{}");
    id = take_string(trodo_get_distinct_id());
    CHECK(id != NULL && anon != NULL && strcmp(id, anon) == 0);
    free(id);
    free(anon);
    CHECK_OK(trodo_shutdown(WAIT_MS));

    /* A corrupt state file is moved aside and replaced by fresh state. */
    snprintf(path, sizeof path, "%s/persist/state.json", getenv("TRODO_TEST_DIR"));
    snprintf(aside, sizeof aside, "%s.corrupt", path);
    f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs("{\"version\":1,\"groups\":{\"tea", f);
        fclose(f);
    }
    CHECK_OK(harness_init("persist"));
    CHECK(file_exists(aside));
    CHECK_STRING(trodo_get_groups(), "{}");
    CHECK_OK(trodo_add_group("team", "fresh"));
    CHECK_OK(trodo_shutdown(WAIT_MS));
    CHECK_OK(harness_init("persist"));
    CHECK_STRING(trodo_get_groups(), "{\"team\":[\"fresh\"]}");
    CHECK_OK(trodo_shutdown(WAIT_MS));
    return harness_finish("c_persist");
}
