/* Per-user calls (server mode) through TrodoUser handles: every call's
 * route and body, the group stamp, one session registration per user per
 * client, bad input for each argument, opt-out, shutdown and re-init, and 8
 * threads acting for 1 000 users each. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS 30000
#define THREADS 8
/* Under valgrind, a tenth: the rest is the same. */
static int users_per_thread = 1000;
static int thread_failures[THREADS];

/* The call returns NULL and trodo_last_error() mentions `needle`. */
#define CHECK_NULL(call, needle)                                  \
    do {                                                          \
        CHECK((call) == NULL);                                    \
        harness_check_error_names((needle), __FILE__, __LINE__);  \
    } while (0)

/* Each thread acts for its own 1 000 users, each with its own group context. */
static void *many_users(void *arg) {
    int t = (int)(size_t)arg, i;
    for (i = 0; i < users_per_thread; i++) {
        char id[32], groups[64], props[64];
        TrodoUser *u;
        snprintf(id, sizeof id, "t%du%d", t, i);
        snprintf(groups, sizeof groups, "{\"team\":[\"team-%s\"]}", id);
        snprintf(props, sizeof props, "{\"who\":\"%s\"}", id);
        u = trodo_user_new(id, groups);
        if (u == NULL || trodo_user_track(u, "many", props) != TRODO_OK) thread_failures[t]++;
        trodo_user_free(u);
    }
    return NULL;
}

int main(void) {
    TrodoUser *u, *again;
    const char *ids[] = {"w1", "w2", "w1"};
    pthread_t threads[THREADS];
    int t;

    if (getenv("TRODO_TEST_VALGRIND")) users_per_thread = 100;
    /* Before init: NULL, and not initialized whatever the arguments. */
    CHECK_NULL(trodo_user_new("early", NULL), "trodo_init");
    CHECK_FAILS(trodo_user_track(NULL, NULL, NULL), TRODO_ERR_NOT_INITIALIZED, "trodo_init");

    CHECK_OK(harness_init("users"));
    CHECK_OK(trodo_identify("app-user"));

    /* Bad input for each argument of the constructor. */
    CHECK_NULL(trodo_user_new(NULL, NULL), "distinct_id");
    CHECK_NULL(trodo_user_new("", NULL), "distinct_id");
    CHECK_NULL(trodo_user_new("u", "[1]"), "groups_json");
    CHECK_NULL(trodo_user_new("u", "{\"team\":\"a\"}"), "groups_json");
    CHECK_NULL(trodo_user_new("u", "{\"team\":[\"\"]}"), "groups_json");

    u = trodo_user_new("srv-1", "{\"active_team\":[\"team-a\"],\"empty\":[]}");
    CHECK(u != NULL);
    CHECK_STRING(trodo_user_get_groups(u), "{\"active_team\":[\"team-a\"]}");
    CHECK_STRING(trodo_user_get_distinct_id(u), "srv-1");

    /* Bad input for each argument of the calls; nothing is queued. */
    CHECK_FAILS(trodo_user_track(NULL, "e", NULL), TRODO_ERR_INVALID_ARGUMENT, "user");
    CHECK_FAILS(trodo_user_track(u, NULL, NULL), TRODO_ERR_INVALID_ARGUMENT, "event_name");
    CHECK_FAILS(trodo_user_track(u, "e", "[]"), TRODO_ERR_INVALID_JSON, "properties_json");
    CHECK_FAILS(trodo_user_track_with_category(u, "e", NULL, ""), TRODO_ERR_INVALID_ARGUMENT, "category");
    CHECK_FAILS(trodo_user_identify(u, NULL), TRODO_ERR_INVALID_ARGUMENT, "identify_id");
    CHECK_FAILS(trodo_user_identify(NULL, "x"), TRODO_ERR_INVALID_ARGUMENT, "user");
    CHECK_FAILS(trodo_user_set_group(u, NULL, "a"), TRODO_ERR_INVALID_ARGUMENT, "group_key");
    CHECK_FAILS(trodo_user_set_group(u, "k", ""), TRODO_ERR_INVALID_ARGUMENT, "group_id");
    CHECK_FAILS(trodo_user_set_groups(u, "k", ids, 0), TRODO_ERR_INVALID_ARGUMENT, "group_ids");
    CHECK_FAILS(trodo_user_set_groups(u, "k", NULL, 2), TRODO_ERR_INVALID_ARGUMENT, "group_ids");
    CHECK_FAILS(trodo_user_add_group(NULL, "k", "a"), TRODO_ERR_INVALID_ARGUMENT, "user");
    CHECK_FAILS(trodo_user_remove_group(u, "k", NULL), TRODO_ERR_INVALID_ARGUMENT, "group_id");
    CHECK_NULL(trodo_user_get_groups(NULL), "user");
    CHECK_NULL(trodo_user_get_distinct_id(NULL), "user");
    CHECK_FAILS(trodo_user_people_set(u, "[]"), TRODO_ERR_INVALID_JSON, "properties_json");
    CHECK_FAILS(trodo_user_people_set_once(u, NULL), TRODO_ERR_INVALID_ARGUMENT, "properties_json");
    CHECK_FAILS(trodo_user_people_unset(u, ""), TRODO_ERR_INVALID_ARGUMENT, "key");
    CHECK_FAILS(trodo_user_people_increment(u, "n", NAN), TRODO_ERR_INVALID_ARGUMENT, "amount");
    CHECK_FAILS(trodo_user_people_append(u, "l", "{}"), TRODO_ERR_INVALID_JSON, "values_json");
    CHECK_FAILS(trodo_user_people_union(u, NULL, "[]"), TRODO_ERR_INVALID_ARGUMENT, "key");
    CHECK_FAILS(trodo_user_people_remove(u, "l", "1"), TRODO_ERR_INVALID_JSON, "values_json");
    CHECK_FAILS(trodo_user_people_track_charge(u, INFINITY, NULL), TRODO_ERR_INVALID_ARGUMENT, "amount");
    CHECK_FAILS(trodo_user_people_clear_charges(NULL), TRODO_ERR_INVALID_ARGUMENT, "user");
    CHECK_FAILS(trodo_user_people_delete_user(NULL), TRODO_ERR_INVALID_ARGUMENT, "user");
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/sdk/track", "server:srv-1", (char *)NULL) == 0);

    /* Every call, for the handle's user. */
    CHECK_OK(trodo_user_track(u, "viewed", "{\"n\":1}"));
    CHECK_OK(trodo_user_track_with_category(u, "bought", "{\"active_team\":\"mine\"}", "sales"));
    CHECK_OK(trodo_user_add_group(u, "team", "t1"));
    CHECK_OK(trodo_user_set_groups(u, "workspace", ids, 3));
    CHECK_OK(trodo_user_set_group(u, "active_team", "team-b"));
    CHECK_OK(trodo_user_remove_group(u, "team", "t1"));
    CHECK_STRING(trodo_user_get_groups(u), "{\"active_team\":[\"team-b\"],\"workspace\":[\"w1\",\"w2\"]}");
    CHECK_OK(trodo_user_identify(u, "srv-known"));
    CHECK_STRING(trodo_user_get_distinct_id(u), "srv-known");
    CHECK_OK(trodo_user_track(u, "after_identify", NULL));
    CHECK_OK(trodo_user_people_set(u, "{\"plan\":\"pro\"}"));
    CHECK_OK(trodo_user_people_set_once(u, "{\"first\":1}"));
    CHECK_OK(trodo_user_people_unset(u, "old"));
    CHECK_OK(trodo_user_people_increment(u, "logins", 2));
    CHECK_OK(trodo_user_people_append(u, "visits", "[\"home\"]"));
    CHECK_OK(trodo_user_people_union(u, "roles", "[\"admin\"]"));
    CHECK_OK(trodo_user_people_remove(u, "roles", "[\"guest\"]"));
    CHECK_OK(trodo_user_people_track_charge(u, 9.5, NULL));
    CHECK_OK(trodo_user_people_clear_charges(u));
    CHECK_OK(trodo_user_people_delete_user(u));
    CHECK_OK(trodo_flush(WAIT_MS));

    /* The process's current user is untouched. */
    CHECK_STRING(trodo_get_distinct_id(), "app-user");
    CHECK_STRING(trodo_get_groups(), "{}");

#define SRV "\"session_id\":\"server:srv-1\""
    CHECK(log_count("/api/sdk/track", "\"sessionData\":{\"device_type\":\"server\",\"distinct_id\":\"srv-1\"",
                    "\"is_bounce\":false,\"is_server_session\":true,", "\"referrer\":\"server\"," SRV
                    ",\"site_id\":\"site-c\",", "\"team_id\":null,\"user_id\":\"srv-1\"}}",
                    (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/track", "\"server:srv-1\"", (char *)NULL) == 1);
    CHECK(log_index("/api/sdk/track", SRV, (char *)NULL) <
          log_index("/api/events", "\"viewed\"", (char *)NULL));
    CHECK(log_count("/api/events", "\"event_name\":\"viewed\"", "\"custom_properties\":{\"active_team\":[\"team-a\"],\"n\":1}",
                    SRV, "\"user_id\":\"srv-1\"", (char *)NULL) == 1);
    CHECK(log_count("/api/events", "\"event_category\":\"sales\"", "\"event_name\":\"bought\"",
                    "\"custom_properties\":{\"active_team\":\"mine\"}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/add_group", "{\"groupId\":\"t1\",\"groupKey\":\"team\",\"siteId\":\"site-c\",\"userId\":\"srv-1\"}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/set_group", "\"groupId\":[\"w1\",\"w2\"]", "\"userId\":\"srv-1\"", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/set_group", "\"groupId\":\"team-b\"", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/remove_group", "\"groupId\":\"t1\"", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/identify", "{\"distinctId\":\"srv-1\",\"identifyId\":\"srv-known\",\"sessionId\":\"server:srv-1\",\"siteId\":\"site-c\",\"userId\":\"srv-1\"}", (char *)NULL) == 1);
    CHECK(log_count("/api/events", "\"event_name\":\"after_identify\"", SRV, "\"user_id\":\"srv-known\"",
                    "\"custom_properties\":{\"active_team\":[\"team-b\"],\"workspace\":[\"w1\",\"w2\"]}", (char *)NULL) == 1);
#define KNOWN "\"siteId\":\"site-c\",\"userId\":\"srv-known\""
    CHECK(log_count("/api/sdk/people/set", "{\"properties\":{\"plan\":\"pro\"}," KNOWN "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/set_once", "{\"properties\":{\"first\":1}," KNOWN "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/unset", "{\"keys\":[\"old\"]," KNOWN "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/increment", "{\"amount\":2,\"key\":\"logins\"," KNOWN "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/append", "{\"key\":\"visits\"," KNOWN ",\"values\":[\"home\"]}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/union", "{\"key\":\"roles\"," KNOWN ",\"values\":[\"admin\"]}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/remove", "{\"key\":\"roles\"," KNOWN ",\"values\":[\"guest\"]}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/track_charge", "{\"amount\":9.5,\"properties\":{}," KNOWN "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/clear_charges", "{" KNOWN "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/delete_user", "{" KNOWN "}", (char *)NULL) == 1);

    /* A second handle for the same user: no second registration. */
    again = trodo_user_new("srv-1", NULL);
    CHECK_OK(trodo_user_track(again, "second_handle", NULL));

    /* Opted out: checked, OK, nothing sent or changed. */
    CHECK_OK(trodo_set_opt_out(true));
    CHECK_OK(trodo_user_track(u, "hidden", NULL));
    CHECK_OK(trodo_user_add_group(u, "team", "hidden"));
    CHECK_FAILS(trodo_user_track(u, "", NULL), TRODO_ERR_INVALID_ARGUMENT, "event_name");
    CHECK_STRING(trodo_user_get_groups(u), "{\"active_team\":[\"team-b\"],\"workspace\":[\"w1\",\"w2\"]}");
    CHECK_OK(trodo_set_opt_out(false));
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/events", "\"hidden\"", (char *)NULL) == 0);
    CHECK(log_count("/api/sdk/groups/add_group", "\"hidden\"", (char *)NULL) == 0);
    CHECK(log_count("/api/sdk/track", "\"server:srv-1\"", (char *)NULL) == 1);

    /* After shutdown the handle is still valid: not initialized; after
     * re-init it acts on the new client, which registers the user again. */
    CHECK_OK(trodo_shutdown(WAIT_MS));
    CHECK_FAILS(trodo_user_track(u, "late", NULL), TRODO_ERR_NOT_INITIALIZED, "trodo_init");
    CHECK_NULL(trodo_user_get_groups(u), "trodo_init");
    CHECK_OK(harness_init("users"));
    CHECK_OK(trodo_user_track(u, "reinit", NULL));
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/sdk/track", "\"server:srv-1\"", (char *)NULL) == 2);
    CHECK(log_count("/api/events", "\"reinit\"", "\"user_id\":\"srv-known\"", (char *)NULL) == 1);
    trodo_user_free(u);
    trodo_user_free(again);
    trodo_user_free(NULL);

    /* 8 threads, 1 000 users each: every event with its own user's id and
     * group context, each user registered once, nothing lost. */
    for (t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, many_users, (void *)(size_t)t);
    for (t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        CHECK(thread_failures[t] == 0);
    }
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/events", "\"event_name\":\"many\"", (char *)NULL) == THREADS * users_per_thread);
    CHECK(log_count("/api/sdk/track", "\"is_server_session\":true", (char *)NULL) ==
          THREADS * users_per_thread + 2);
    {
        const char *samples[] = {"t0u0", "t3u51", "t7u99"};
        size_t k;
        for (k = 0; k < sizeof samples / sizeof *samples; k++) {
            char who[48], user[48], team[64], session[64];
            snprintf(who, sizeof who, "\"who\":\"%s\"", samples[k]);
            snprintf(user, sizeof user, "\"user_id\":\"%s\"", samples[k]);
            snprintf(team, sizeof team, "\"team\":[\"team-%s\"]", samples[k]);
            snprintf(session, sizeof session, "\"session_id\":\"server:%s\"", samples[k]);
            CHECK(log_count("/api/events", who, user, team, session, (char *)NULL) == 1);
            CHECK(log_count("/api/sdk/track", session, (char *)NULL) == 1);
        }
    }
    CHECK_OK(trodo_shutdown(WAIT_MS));
    return harness_finish("c_users");
}
