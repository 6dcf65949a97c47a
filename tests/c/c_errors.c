/* Every bad-input rule of docs/c-conventions.md "Arguments", calls before init and after
 * shutdown, and that refused calls lose nothing already accepted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS 20000
#define NOT_INIT TRODO_ERR_NOT_INITIALIZED
#define BAD_ARG TRODO_ERR_INVALID_ARGUMENT
#define BAD_JSON TRODO_ERR_INVALID_JSON

/* Before init (and after shutdown) every call is refused as not initialized,
 * whatever its arguments. */
static void everything_refused_when_not_initialized(void) {
    const char *ids[] = {"a"};
    CHECK(trodo_last_error() != NULL);
    CHECK_FAILS(trodo_track(NULL, "[not json"), NOT_INIT, "trodo_init");
    CHECK_STATUS(trodo_track_with_category("e", NULL, ""), NOT_INIT);
    CHECK_STATUS(trodo_flush(0), NOT_INIT);
    CHECK_STATUS(trodo_shutdown(0), NOT_INIT);
    CHECK_STATUS(trodo_identify(NULL), NOT_INIT);
    CHECK_STATUS(trodo_reset(), NOT_INIT);
    CHECK(trodo_get_distinct_id() == NULL);
    CHECK(trodo_get_groups() == NULL);
    CHECK(trodo_get_group("k", "v") == NULL);
    CHECK_STATUS(trodo_set_group(NULL, NULL), NOT_INIT);
    CHECK_STATUS(trodo_set_groups("k", ids, 0), NOT_INIT);
    CHECK_STATUS(trodo_add_group("", ""), NOT_INIT);
    CHECK_STATUS(trodo_remove_group("k", "v"), NOT_INIT);
    CHECK_STATUS(trodo_group_set(NULL, "{}"), NOT_INIT);
    CHECK_STATUS(trodo_group_set_once(NULL, NULL), NOT_INIT);
    CHECK_STATUS(trodo_group_union(NULL, NULL, NULL), NOT_INIT);
    CHECK_STATUS(trodo_group_remove(NULL, NULL, NULL), NOT_INIT);
    CHECK_STATUS(trodo_group_append(NULL, NULL, NULL), NOT_INIT);
    CHECK_STATUS(trodo_group_increment(NULL, NULL, NAN), NOT_INIT);
    CHECK_STATUS(trodo_group_unset(NULL, NULL), NOT_INIT);
    CHECK_STATUS(trodo_group_delete(NULL), NOT_INIT);
    CHECK_STATUS(trodo_people_set("[]"), NOT_INIT);
    CHECK_STATUS(trodo_people_set_once(NULL), NOT_INIT);
    CHECK_STATUS(trodo_people_unset(NULL), NOT_INIT);
    CHECK_STATUS(trodo_people_increment("k", INFINITY), NOT_INIT);
    CHECK_STATUS(trodo_people_append("k", "{}"), NOT_INIT);
    CHECK_STATUS(trodo_people_union("k", "[]"), NOT_INIT);
    CHECK_STATUS(trodo_people_remove("k", "[]"), NOT_INIT);
    CHECK_STATUS(trodo_people_track_charge(1, NULL), NOT_INIT);
    CHECK_STATUS(trodo_people_clear_charges(), NOT_INIT);
    CHECK_STATUS(trodo_people_delete_user(), NOT_INIT);
    CHECK(strstr(trodo_last_error(), "not initialized") != NULL);
    trodo_string_free(NULL); /* harmless */
    trodo_group_free(NULL);
}

static void init_errors(void) {
    char blocker[2048], opts[4096];
    FILE *f;

    CHECK_FAILS(trodo_init(NULL, NULL), BAD_ARG, "site_id");
    CHECK_FAILS(trodo_init("", NULL), BAD_ARG, "site_id");
    CHECK_FAILS(trodo_init("site-c", "{"), BAD_JSON, "options_json");
    CHECK_FAILS(trodo_init("site-c", "[]"), BAD_JSON, "object");
    CHECK_FAILS(trodo_init("site-c", "{\"flush_att\":1}"), BAD_JSON, "flush_att");
    CHECK_FAILS(trodo_init("site-c", "{\"gzip\":\"yes\"}"), BAD_JSON, "gzip");
    CHECK_FAILS(trodo_init("site-c", "{\"timeout_ms\":-5}"), BAD_JSON, "timeout_ms");

    /* A storage_dir below a regular file cannot be created. */
    snprintf(blocker, sizeof blocker, "%s/blocker", getenv("TRODO_TEST_DIR"));
    f = fopen(blocker, "w");
    CHECK(f != NULL);
    if (f) fclose(f);
    snprintf(opts, sizeof opts, "{\"storage_dir\":\"%s/sub\"}", blocker);
    CHECK_FAILS(trodo_init("site-c", opts), TRODO_ERR_STORAGE, "blocker");

    /* None of that left anything initialized. */
    CHECK_STATUS(trodo_track("e", NULL), NOT_INIT);
    CHECK_OK(harness_init("errors"));
    CHECK(strcmp(trodo_last_error(), "") == 0);
    CHECK_FAILS(harness_init("errors"), TRODO_ERR_ALREADY_INITIALIZED, "already");
}

static void argument_rules(void) {
    char long_name[300], max_name[300];
    const char *ids_with_null[] = {"ok", NULL};
    const char *ids_with_empty[] = {"ok", ""};
    TrodoGroup *g = trodo_get_group("company", "acme");

    memset(long_name, 'k', 256);
    long_name[256] = '\0';
    memset(max_name, 'k', 255);
    max_name[255] = '\0';
    CHECK(g != NULL);

    /* NULL where a string is required. */
    CHECK_FAILS(trodo_track(NULL, NULL), BAD_ARG, "event_name");
    CHECK_FAILS(trodo_identify(NULL), BAD_ARG, "identify_id");
    CHECK_FAILS(trodo_set_group("team", NULL), BAD_ARG, "group_id");
    CHECK_FAILS(trodo_add_group(NULL, "a"), BAD_ARG, "group_key");
    CHECK_FAILS(trodo_remove_group("team", NULL), BAD_ARG, "group_id");
    CHECK_FAILS(trodo_set_groups("team", NULL, 1), BAD_ARG, "group_ids");
    CHECK_FAILS(trodo_set_groups("team", ids_with_null, 2), BAD_ARG, "group_ids[1]");
    CHECK_FAILS(trodo_people_unset(NULL), BAD_ARG, "key");
    CHECK_FAILS(trodo_people_set(NULL), BAD_ARG, "properties_json");
    CHECK_FAILS(trodo_group_union(g, NULL, "[]"), BAD_ARG, "list_name");
    CHECK_FAILS(trodo_group_append(g, "p", NULL), BAD_ARG, "value_json");

    /* Empty. */
    CHECK_FAILS(trodo_track("", NULL), BAD_ARG, "event_name");
    CHECK_FAILS(trodo_add_group("", "a"), BAD_ARG, "group_key");
    CHECK_FAILS(trodo_set_group("team", ""), BAD_ARG, "group_id");
    CHECK_FAILS(trodo_set_groups("team", ids_with_empty, 2), BAD_ARG, "group_ids[1]");
    CHECK_FAILS(trodo_track_with_category("e", NULL, ""), BAD_ARG, "category");
    CHECK_FAILS(trodo_group_unset(g, ""), BAD_ARG, "property");
    CHECK_FAILS(trodo_people_increment("", 1), BAD_ARG, "key");

    /* count >= 1. */
    CHECK_FAILS(trodo_set_groups("team", ids_with_empty, 0), BAD_ARG, "group_ids");

    /* Not UTF-8. */
    CHECK_FAILS(trodo_add_group("team", "\xc3\x28"), BAD_ARG, "group_id");
    CHECK_FAILS(trodo_track("\xff", NULL), BAD_ARG, "event_name");
    CHECK_FAILS(trodo_identify("caf\xe9"), BAD_ARG, "UTF-8");
    CHECK_FAILS(trodo_track("e", "{\"k\":\"\xff\"}"), BAD_JSON, "properties_json");

    /* Over-long (more than 255 bytes); 255 is fine. */
    CHECK_FAILS(trodo_add_group(long_name, "a"), BAD_ARG, "group_key");
    CHECK_FAILS(trodo_track(long_name, NULL), BAD_ARG, "256");
    CHECK_FAILS(trodo_identify(long_name), BAD_ARG, "identify_id");
    CHECK(trodo_get_group(long_name, "a") == NULL);
    CHECK(strstr(trodo_last_error(), "group_key") != NULL);
    CHECK_OK(trodo_people_unset(max_name));

    /* Properties that are not a JSON object. */
    CHECK_FAILS(trodo_track("e", "[1,2]"), BAD_JSON, "properties_json");
    CHECK_FAILS(trodo_track("e", "42"), BAD_JSON, "object");
    CHECK_FAILS(trodo_track("e", "null"), BAD_JSON, "properties_json");
    CHECK_FAILS(trodo_group_set(g, "\"str\""), BAD_JSON, "properties_json");
    CHECK_FAILS(trodo_people_set_once("[]"), BAD_JSON, "properties_json");
    CHECK_FAILS(trodo_people_track_charge(1, "[]"), BAD_JSON, "properties_json");
    /* values_json that is not an array. */
    CHECK_FAILS(trodo_people_append("k", "{}"), BAD_JSON, "values_json");
    CHECK_FAILS(trodo_group_union(g, "tags", "\"one\""), BAD_JSON, "array");

    /* Malformed JSON. */
    CHECK_FAILS(trodo_track("e", "{\"a\":}"), BAD_JSON, "properties_json");
    CHECK_FAILS(trodo_track("e", ""), BAD_JSON, "properties_json");
    CHECK_FAILS(trodo_track("e", "{\"a\":NaN}"), BAD_JSON, "properties_json");
    CHECK_FAILS(trodo_track("e", "{\"a\":1e999}"), BAD_JSON, "properties_json");
    CHECK_FAILS(trodo_group_remove(g, "tags", "nul"), BAD_JSON, "value_json");
    CHECK_FAILS(trodo_people_union("k", "[1,"), BAD_JSON, "values_json");

    /* Non-finite numbers. */
    CHECK_FAILS(trodo_people_increment("k", NAN), BAD_ARG, "amount");
    CHECK_FAILS(trodo_group_increment(g, "seats", INFINITY), BAD_ARG, "value");
    CHECK_FAILS(trodo_people_track_charge(-INFINITY, NULL), BAD_ARG, "amount");

    /* NULL handles. */
    CHECK_FAILS(trodo_group_set(NULL, "{}"), BAD_ARG, "group");
    CHECK_FAILS(trodo_group_delete(NULL), BAD_ARG, "group");
    CHECK_FAILS(trodo_group_increment(NULL, "p", 1), BAD_ARG, "group");

    /* Any JSON value is a value. */
    CHECK_OK(trodo_group_append(g, "p", "null"));
    CHECK(strcmp(trodo_last_error(), "") == 0);
    trodo_group_free(g);
}

static void nothing_accepted_is_lost(void) {
    CHECK_OK(trodo_track("kept_1", "{\"n\":1}"));
    CHECK_OK(trodo_add_group("team", "accepted"));
    CHECK_STATUS(trodo_add_group("team", NULL), BAD_ARG);
    CHECK_STATUS(trodo_track("e", "[1]"), BAD_JSON);
    CHECK_STATUS(trodo_set_group("", "x"), BAD_ARG);
    CHECK_OK(trodo_track("kept_2", NULL));
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK_STRING(trodo_get_groups(), "{\"team\":[\"accepted\"]}");
    CHECK(log_count("/api/events", "\"event_name\":\"kept_1\"", "\"n\":1", (char *)NULL) == 1);
    CHECK(log_count("/api/events", "\"event_name\":\"kept_2\"", "\"team\":[\"accepted\"]", (char *)NULL) == 1);
    CHECK(log_count("/api/events", (char *)NULL) == 2);
    CHECK(log_count("/api/sdk/groups/add_group", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/set_group", (char *)NULL) == 0);
    CHECK(log_count("/api/sdk/people/unset", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/profile/append", "\"value\":null", (char *)NULL) == 1);
}

int main(void) {
    const char *v = trodo_version();
    char numbers[64];
    /* The header's version macros are the library's version. */
#if !defined(TRODO_VERSION_MAJOR) || TRODO_VERSION_MAJOR < 0
#error "trodo.h defines no usable TRODO_VERSION_MAJOR"
#endif
    snprintf(numbers, sizeof numbers, "%d.%d.%d", TRODO_VERSION_MAJOR, TRODO_VERSION_MINOR,
             TRODO_VERSION_PATCH);
    CHECK(v != NULL && strcmp(v, TRODO_VERSION) == 0);
    CHECK(strcmp(numbers, TRODO_VERSION) == 0);
    everything_refused_when_not_initialized();
    init_errors();
    argument_rules();
    nothing_accepted_is_lost();
    CHECK_OK(trodo_shutdown(WAIT_MS));
    everything_refused_when_not_initialized();
    return harness_finish("c_errors");
}
