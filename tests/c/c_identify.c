/* identify hydrates memberships from the server, and a membership call made
 * while identify is in flight is kept. The harness runs this program with the
 * server answering identify 300 ms late. */
#include "harness.h"

#define WAIT_MS 20000

int main(void) {
    /* Device 1: the user joins teams there. */
    CHECK_OK(harness_init("device-1"));
    CHECK_OK(trodo_identify("user-1"));
    CHECK_OK(trodo_add_group("team", "a"));
    CHECK_OK(trodo_add_group("team", "b"));
    CHECK_OK(trodo_set_group("active_team", "b"));
    CHECK_OK(trodo_shutdown(WAIT_MS));

    /* Device 2: a new install. */
    CHECK_OK(harness_init("device-2"));
    CHECK_OK(trodo_add_group("team", "local-only"));
    CHECK_OK(trodo_identify("user-1"));
    CHECK_STRING(trodo_get_distinct_id(), "user-1"); /* at once, before the answer */
    CHECK_OK(trodo_add_group("team", "c")); /* while identify is in flight */
    CHECK_STRING(trodo_get_groups(), "{\"team\":[\"local-only\",\"c\"]}");

    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK_STRING(trodo_get_groups(), "{\"active_team\":[\"b\"],\"team\":[\"a\",\"b\",\"c\"]}");
    CHECK_OK(trodo_track("hydrated", NULL));
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/events", "\"event_name\":\"hydrated\"",
                    "{\"active_team\":[\"b\"],\"team\":[\"a\",\"b\",\"c\"]}", (char *)NULL) == 1);
    /* The identify request named the anonymous id it links. */
    CHECK(log_count("/api/sdk/identify", "\"identifyId\":\"user-1\"", (char *)NULL) == 2);
    CHECK(log_count("/api/sdk/identify", "\"userId\":\"user-1\"", (char *)NULL) == 0);

    CHECK_OK(trodo_reset());
    CHECK_STRING(trodo_get_groups(), "{}");
    CHECK_OK(trodo_shutdown(WAIT_MS));
    return harness_finish("c_identify");
}
