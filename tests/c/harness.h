/* Helpers shared by the C harness programs. Each program is run by
 * tests/c_harness.rs with a fresh loopback fake Trodo server:
 *   TRODO_TEST_API  the server's base URL
 *   TRODO_TEST_LOG  a file where the server appends each request it accepted,
 *                   one line of JSON with sorted keys: {"body":{...},"path":"..."};
 *                   a bulk request is logged one event per line
 *   TRODO_TEST_DIR  an empty directory for this program's storage
 */
#ifndef TRODO_HARNESS_H
#define TRODO_HARNESS_H

#include <stddef.h>
#include "trodo.h"

#ifdef __cplusplus
extern "C" {
#endif

extern int harness_failures;

void harness_check(int ok, const char *expr, const char *file, int line);
void harness_check_status(TrodoStatus got, TrodoStatus want, const char *expr, const char *file, int line);
void harness_check_error_names(const char *needle, const char *file, int line);
void harness_check_string(char *got, const char *want, const char *expr, const char *file, int line);

#define CHECK(cond) harness_check((cond) ? 1 : 0, #cond, __FILE__, __LINE__)
#define CHECK_STATUS(call, want) harness_check_status((call), (want), #call, __FILE__, __LINE__)
#define CHECK_OK(call) CHECK_STATUS(call, TRODO_OK)
/* The call returns a libtrodo string equal to `want`; it is freed. */
#define CHECK_STRING(call, want) harness_check_string((call), (want), #call, __FILE__, __LINE__)
/* The call fails with `want` and trodo_last_error() mentions `needle`. */
#define CHECK_FAILS(call, want, needle)                                   \
    do {                                                                  \
        harness_check_status((call), (want), #call, __FILE__, __LINE__);  \
        harness_check_error_names((needle), __FILE__, __LINE__);          \
    } while (0)

/* trodo_init for the test server, storing under TRODO_TEST_DIR/<subdir>. */
TrodoStatus harness_init(const char *subdir);
/* Options JSON for that init (static buffer). */
const char *harness_options(const char *subdir);
/* The same with more keys: `extra` is `,"key":value...` (static buffer). */
const char *harness_options_plus(const char *subdir, const char *extra);

/* Number of logged requests to `path` whose line contains every needle
 * (a NULL-terminated list). "/api/events" counts events sent alone or in bulk. */
int log_count(const char *path, ...);
/* Line number (0-based) of the first such request, or -1. */
int log_index(const char *path, ...);
/* Returns the first such line (static buffer, "" when none). */
const char *log_line(const char *path, ...);

/* Duplicates a string returned by libtrodo, then frees the original. */
char *take_string(char *s);

/* Runs this program again (argv0) with the one argument `arg`, waiting at
 * most deadline_s seconds (then it is killed, said, and counted as a
 * failure); says how it ended unless it exited with 0. Returns whether it
 * exited with 0. */
int harness_run_self(const char *argv0, const char *arg, int deadline_s);

/* Prints the result; the program's exit code. */
int harness_finish(const char *name);

#ifdef __cplusplus
}
#endif

#endif
