/* Delivery, privacy and diagnostics: trodo_get_stats, the error callback and
 * opt-out (which survives a restart). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS 20000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int reports;
static char last_report[1024];
static int user_data_ok;

static void on_error(const char *message, void *user_data) {
    pthread_mutex_lock(&lock);
    reports++;
    strncpy(last_report, message, sizeof last_report - 1);
    user_data_ok = user_data == (void *)&reports;
    pthread_mutex_unlock(&lock);
}

/* The number after "key": in a stats object, or -1. */
static long stat_of(const char *stats, const char *key) {
    char needle[64];
    const char *at;
    snprintf(needle, sizeof needle, "\"%s\":", key);
    at = stats ? strstr(stats, needle) : NULL;
    return at ? strtol(at + strlen(needle), NULL, 10) : -1;
}

static char *stats_now(void) {
    return take_string(trodo_get_stats());
}

int main(void) {
    char opts[4096];
    char *stats;
    int i;
    bool opted_out = true;

    CHECK(trodo_get_stats() == NULL);
    CHECK(trodo_last_error_code() == TRODO_ERR_NOT_INITIALIZED);
    CHECK(!trodo_is_opted_out());
    /* trodo_get_opt_out tells "not initialized" from "not opted out". */
    CHECK_STATUS(trodo_get_opt_out(&opted_out), TRODO_ERR_NOT_INITIALIZED);
    CHECK(opted_out); /* left as it was */
    CHECK_STATUS(trodo_set_opt_out(true), TRODO_ERR_NOT_INITIALIZED);
    trodo_set_error_callback(on_error, &reports); /* allowed before init */

    /* A queue of 3 items that sends events only on flush: 10 events overflow it. */
    snprintf(opts, sizeof opts,
             "{\"api_base\":\"%s\",\"storage_dir\":\"%s/delivery\",\"max_queue_items\":3,"
             "\"flush_interval_ms\":600000}",
             getenv("TRODO_TEST_API"), getenv("TRODO_TEST_DIR"));
    CHECK_OK(trodo_init("site-c", opts));
    CHECK_OK(trodo_track("first", NULL));
    CHECK_OK(trodo_flush(WAIT_MS));
    for (i = 0; i < 10; i++) {
        char name[32];
        snprintf(name, sizeof name, "overflow_%d", i);
        CHECK_OK(trodo_track(name, NULL));
    }
    stats = stats_now();
    CHECK(stats != NULL);
    CHECK(stat_of(stats, "queue_full") == 7);
    CHECK(stat_of(stats, "dropped") == 7);
    CHECK(stat_of(stats, "queued") + stat_of(stats, "in_flight") == 3);
    CHECK(stat_of(stats, "paused_until_ms") == 0);
    free(stats);
    pthread_mutex_lock(&lock);
    CHECK(reports >= 1 && strstr(last_report, "queue_full") != NULL && user_data_ok);
    pthread_mutex_unlock(&lock);
    CHECK_OK(trodo_flush(WAIT_MS));
    /* The oldest were dropped; the newest three arrived. */
    CHECK(log_count("/api/events", "\"event_name\":\"overflow_0\"", (char *)NULL) == 0);
    CHECK(log_count("/api/events", "\"event_name\":\"overflow_9\"", (char *)NULL) == 1);
    CHECK(log_count("/api/events", "\"event_name\":\"overflow_7\"", (char *)NULL) == 1);
    stats = stats_now();
    CHECK(stat_of(stats, "queued") == 0 && stat_of(stats, "sent") == 5);
    free(stats);

    /* Opt-out: calls are checked, succeed, and record nothing. */
    CHECK_OK(trodo_add_group("team", "before"));
    CHECK_OK(trodo_set_opt_out(true));
    CHECK(trodo_is_opted_out());
    CHECK_OK(trodo_track("while_opted_out", NULL));
    CHECK_OK(trodo_add_group("team", "while_opted_out"));
    CHECK_STATUS(trodo_track(NULL, NULL), TRODO_ERR_INVALID_ARGUMENT);
    CHECK_STRING(trodo_get_groups(), "{\"team\":[\"before\"]}");
    CHECK_OK(trodo_shutdown(WAIT_MS));
    CHECK_OK(trodo_init("site-c", opts));
    CHECK(trodo_is_opted_out()); /* survives the restart */
    opted_out = false;
    CHECK_OK(trodo_get_opt_out(&opted_out));
    CHECK(opted_out);
    CHECK_STATUS(trodo_get_opt_out(NULL), TRODO_ERR_INVALID_ARGUMENT);
    CHECK_OK(trodo_track("still_opted_out", NULL));
    CHECK_OK(trodo_set_opt_out(false));
    CHECK_OK(trodo_get_opt_out(&opted_out));
    CHECK(!opted_out);
    CHECK_OK(trodo_track("opted_in_again", NULL));
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/events", "\"event_name\":\"while_opted_out\"", (char *)NULL) == 0);
    CHECK(log_count("/api/events", "\"event_name\":\"still_opted_out\"", (char *)NULL) == 0);
    CHECK(log_count("/api/sdk/groups/add_group", "\"groupId\":\"while_opted_out\"", (char *)NULL) == 0);
    CHECK(log_count("/api/events", "\"event_name\":\"opted_in_again\"", (char *)NULL) == 1);

    trodo_set_error_callback(NULL, NULL); /* off */
    CHECK_OK(trodo_shutdown(WAIT_MS));
    return harness_finish("c_delivery");
}
