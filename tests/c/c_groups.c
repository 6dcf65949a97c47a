/* The seed's multi-team pattern, attribution stamps, trodo_get_groups and the
 * trodo_get_group NULL cases. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS 20000

static void multi_team_pattern(void) {
    CHECK_OK(harness_init("groups"));
    CHECK_OK(trodo_track("opened_app", NULL));
    /* Permanent memberships via add_group, the workspace in use via set_group. */
    CHECK_OK(trodo_add_group("team", "team-a"));
    CHECK_OK(trodo_add_group("team", "team-b"));
    CHECK_OK(trodo_add_group("team", "team-b")); /* no change the second time */
    CHECK_OK(trodo_set_group("active_team", "team-a"));
    CHECK_OK(trodo_track("doc_edited", "{\"doc\":\"d1\"}"));
    CHECK_OK(trodo_set_group("active_team", "team-b"));
    CHECK_OK(trodo_track_with_category("doc_edited_b", NULL, "editor"));

    CHECK_STRING(trodo_get_groups(), "{\"active_team\":[\"team-b\"],\"team\":[\"team-a\",\"team-b\"]}");
    CHECK_OK(trodo_flush(WAIT_MS));

    /* Before any group call: no stamp, and none added later (no backfill). */
    CHECK(log_count("/api/events", "\"event_name\":\"opened_app\"", "\"custom_properties\":{}", (char *)NULL) == 1);
    /* While team-a was active. */
    CHECK(log_count("/api/events", "\"event_name\":\"doc_edited\"",
                    "\"custom_properties\":{\"active_team\":[\"team-a\"],\"doc\":\"d1\",\"team\":[\"team-a\",\"team-b\"]}",
                    (char *)NULL) == 1);
    /* After the switch. */
    CHECK(log_count("/api/events", "\"event_name\":\"doc_edited_b\"", "\"event_category\":\"editor\"",
                    "\"custom_properties\":{\"active_team\":[\"team-b\"],\"team\":[\"team-a\",\"team-b\"]}",
                    (char *)NULL) == 1);
    /* Membership calls on the wire, in call order, before the events they affect. */
    CHECK(log_count("/api/sdk/groups/add_group", "\"groupKey\":\"team\"", "\"groupId\":\"team-b\"", (char *)NULL) == 2);
    CHECK(log_count("/api/sdk/groups/set_group", "\"groupKey\":\"active_team\"", "\"groupId\":\"team-a\"",
                    "\"siteId\":\"site-c\"", (char *)NULL) == 1);
    CHECK(log_index("/api/sdk/groups/set_group", "\"groupId\":\"team-b\"", (char *)NULL) <
          log_index("/api/events", "\"event_name\":\"doc_edited_b\"", (char *)NULL));
    CHECK(log_index("/api/sdk/track", (char *)NULL) < log_index("/api/events", (char *)NULL));
    CHECK_OK(trodo_shutdown(WAIT_MS));
}

static void set_groups_and_remove(void) {
    const char *ids[] = {"acme", "globex", "acme"};

    CHECK_OK(harness_init("groups2"));
    CHECK_OK(trodo_set_groups("company", ids, 3));
    CHECK_OK(trodo_remove_group("company", "acme"));
    CHECK_STRING(trodo_get_groups(), "{\"company\":[\"globex\"]}");
    CHECK_OK(trodo_remove_group("company", "globex"));
    CHECK_STRING(trodo_get_groups(), "{}"); /* a key whose last id went is absent */
    CHECK_OK(trodo_track("after_removal", NULL));
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/sdk/groups/set_group", "\"groupId\":[\"acme\",\"globex\"]", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/remove_group", "\"groupId\":\"globex\"", (char *)NULL) == 1);
    CHECK(log_count("/api/events", "\"event_name\":\"after_removal\"", "\"custom_properties\":{}", (char *)NULL) == 1);
    CHECK_OK(trodo_shutdown(WAIT_MS));
}

static void get_group_null_cases(void) {
    TrodoGroup *g;
    char long_id[300];

    memset(long_id, 'x', 256);
    long_id[256] = '\0';

    CHECK(trodo_get_group("company", "acme") == NULL); /* not initialized */
    CHECK(strstr(trodo_last_error(), "trodo_init") != NULL);
    CHECK(trodo_last_error_code() == TRODO_ERR_NOT_INITIALIZED);

    CHECK_OK(harness_init("groups3"));
    CHECK(trodo_get_group(NULL, "acme") == NULL);
    CHECK(strstr(trodo_last_error(), "group_key") != NULL);
    CHECK(trodo_last_error_code() == TRODO_ERR_INVALID_ARGUMENT);
    CHECK(trodo_get_group("company", NULL) == NULL);
    CHECK(strstr(trodo_last_error(), "group_id") != NULL);
    CHECK(trodo_get_group("", "acme") == NULL);
    CHECK(strstr(trodo_last_error(), "group_key") != NULL);
    CHECK(trodo_get_group("company", "") == NULL);
    CHECK(strstr(trodo_last_error(), "group_id") != NULL);
    CHECK(trodo_get_group("company", long_id) == NULL);
    CHECK(strstr(trodo_last_error(), "group_id") != NULL);
    CHECK(trodo_get_group("\xff\xfe", "acme") == NULL);
    CHECK(strstr(trodo_last_error(), "UTF-8") != NULL);

    g = trodo_get_group("company", "acme");
    CHECK(g != NULL);
    CHECK(strcmp(trodo_last_error(), "") == 0);
    CHECK(trodo_last_error_code() == TRODO_OK);
    CHECK_OK(trodo_group_set(g, "{\"plan\":\"pro\"}"));
    /* The handle has no effect on attribution. */
    CHECK_STRING(trodo_get_groups(), "{}");
    /* It outlives shutdown and acts on the next client. */
    CHECK_OK(trodo_shutdown(WAIT_MS));
    CHECK_STATUS(trodo_group_set(g, "{\"plan\":\"x\"}"), TRODO_ERR_NOT_INITIALIZED);
    CHECK_OK(harness_init("groups3"));
    CHECK_OK(trodo_group_increment(g, "seats", 2));
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/sdk/groups/profile/increment", "\"groupId\":\"acme\"", "\"value\":2", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/profile/set", "\"plan\":\"x\"", (char *)NULL) == 0);
    trodo_group_free(g);
    trodo_group_free(NULL);
    CHECK_OK(trodo_shutdown(WAIT_MS));
}

int main(void) {
    multi_team_pattern();
    set_groups_and_remove();
    get_group_null_cases();
    return harness_finish("c_groups");
}
