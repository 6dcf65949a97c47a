#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <process.h>
#include <windows.h>
#else
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#endif

int harness_failures = 0;

#ifdef _WIN32
/* Windows has no fork: the run is a new process of the same program. */
int harness_run_self(const char *argv0, const char *arg, int deadline_s) {
    DWORD code = 1;
    intptr_t child = _spawnl(_P_NOWAIT, argv0, argv0, arg, (char *)NULL);
    HANDLE process = (HANDLE)child;
    if (child == -1) {
        fprintf(stderr, "_spawnl failed for the \"%s\" run\n", arg);
        harness_failures++;
        return 0;
    }
    if (WaitForSingleObject(process, (DWORD)deadline_s * 1000) != WAIT_OBJECT_0) {
        TerminateProcess(process, 9);
        WaitForSingleObject(process, INFINITE);
        fprintf(stderr, "the \"%s\" run did not exit in time\n", arg);
        harness_failures++;
    }
    GetExitCodeProcess(process, &code);
    CloseHandle(process);
    if (code != 0) fprintf(stderr, "the \"%s\" run exited with %lu\n", arg, (unsigned long)code);
    return code == 0;
}
#else
int harness_run_self(const char *argv0, const char *arg, int deadline_s) {
    struct timespec tick = {0, 10 * 1000000L};
    int status = 0, waited;
    pid_t pid = fork();
    if (pid == 0) {
        execl(argv0, argv0, arg, (char *)NULL);
        _exit(5);
    }
    if (pid < 0) {
        fprintf(stderr, "fork failed for the \"%s\" run\n", arg);
        harness_failures++;
        return 0;
    }
    for (waited = 0; waited < deadline_s * 100; waited++) {
        if (waitpid(pid, &status, WNOHANG) == pid) break;
        nanosleep(&tick, NULL);
    }
    if (waited == deadline_s * 100) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fprintf(stderr, "the \"%s\" run did not exit in time\n", arg);
        harness_failures++;
    }
    if (WIFSIGNALED(status)) fprintf(stderr, "the \"%s\" run died of signal %d\n", arg, WTERMSIG(status));
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        fprintf(stderr, "the \"%s\" run exited with %d\n", arg, WEXITSTATUS(status));
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
#endif

void harness_check(int ok, const char *expr, const char *file, int line) {
    if (!ok) {
        fprintf(stderr, "%s:%d: CHECK failed: %s (last error: \"%s\")\n", file, line, expr,
                trodo_last_error());
        harness_failures++;
    }
}

void harness_check_string(char *got, const char *want, const char *expr, const char *file,
                          int line) {
    if (got == NULL || strcmp(got, want) != 0) {
        fprintf(stderr, "%s:%d: %s gave %s%s%s, want \"%s\" (last error: \"%s\")\n", file, line,
                expr, got ? "\"" : "", got ? got : "NULL", got ? "\"" : "", want, trodo_last_error());
        harness_failures++;
    }
    trodo_string_free(got);
}

void harness_check_status(TrodoStatus got, TrodoStatus want, const char *expr, const char *file,
                          int line) {
    if (got != want) {
        fprintf(stderr, "%s:%d: %s returned %d, expected %d (last error: \"%s\")\n", file, line, expr,
                (int)got, (int)want, trodo_last_error());
        harness_failures++;
    }
}

void harness_check_error_names(const char *needle, const char *file, int line) {
    const char *e = trodo_last_error();
    if (e == NULL || strstr(e, needle) == NULL) {
        fprintf(stderr, "%s:%d: last error \"%s\" does not mention \"%s\"\n", file, line,
                e ? e : "(NULL)", needle);
        harness_failures++;
    }
}

static const char *env(const char *name) {
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "%s is not set: run this through tests/c_harness.rs\n", name);
        exit(2);
    }
    return v;
}

const char *harness_options(const char *subdir) {
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"api_base\":\"%s\",\"storage_dir\":\"%s/%s\",\"persist_interval_ms\":10}",
             env("TRODO_TEST_API"), env("TRODO_TEST_DIR"), subdir);
    return buf;
}

const char *harness_options_plus(const char *subdir, const char *extra) {
    static char buf[4096];
    const char *base = harness_options(subdir);
    snprintf(buf, sizeof buf, "%.*s%s}", (int)(strlen(base) - 1), base, extra);
    return buf;
}

TrodoStatus harness_init(const char *subdir) {
    return trodo_init("site-c", harness_options(subdir));
}

static char *read_log(void) {
    FILE *f = fopen(env("TRODO_TEST_LOG"), "rb");
    char *data;
    long n;
    if (f == NULL) {
        data = (char *)malloc(1);
        data[0] = '\0';
        return data;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = (char *)malloc((size_t)n + 1);
    n = (long)fread(data, 1, (size_t)n, f);
    data[n] = '\0';
    fclose(f);
    return data;
}

/* Scans the log; returns the count of matches, and the first match's index
 * and text through the out-parameters. */
static int scan(const char *path, va_list needles_in, int *first_index, char *first_line,
                size_t first_cap) {
    const char *needles[32];
    size_t n_needles = 0, i;
    char want_path[512];
    char *log = read_log();
    char *line = log;
    int count = 0, index = 0, any_event;
    const char *needle;

    while ((needle = va_arg(needles_in, const char *)) != NULL && n_needles < 32) {
        needles[n_needles++] = needle;
    }
    snprintf(want_path, sizeof want_path, "\"path\":\"%s\"}", path);
    /* Events arrive alone or in bulk: "/api/events" means either. */
    any_event = strcmp(path, "/api/events") == 0;
    *first_index = -1;
    if (first_line) first_line[0] = '\0';
    while (*line) {
        char *end = strchr(line, '\n');
        int match = 1;
        if (end) *end = '\0';
        if (strstr(line, want_path) == NULL &&
            !(any_event && strstr(line, "\"path\":\"/api/events/bulk\"}") != NULL))
            match = 0;
        for (i = 0; match && i < n_needles; i++) {
            if (strstr(line, needles[i]) == NULL) match = 0;
        }
        if (match) {
            if (count == 0) {
                *first_index = index;
                if (first_line) {
                    strncpy(first_line, line, first_cap - 1);
                    first_line[first_cap - 1] = '\0';
                }
            }
            count++;
        }
        index++;
        if (!end) break;
        line = end + 1;
    }
    free(log);
    return count;
}

int log_count(const char *path, ...) {
    va_list ap;
    int idx, n;
    va_start(ap, path);
    n = scan(path, ap, &idx, NULL, 0);
    va_end(ap);
    return n;
}

int log_index(const char *path, ...) {
    va_list ap;
    int idx;
    va_start(ap, path);
    scan(path, ap, &idx, NULL, 0);
    va_end(ap);
    return idx;
}

const char *log_line(const char *path, ...) {
    static char buf[65536];
    va_list ap;
    int idx;
    va_start(ap, path);
    scan(path, ap, &idx, buf, sizeof buf);
    va_end(ap);
    return buf;
}

char *take_string(char *s) {
    char *copy;
    if (s == NULL) return NULL;
    copy = (char *)malloc(strlen(s) + 1);
    strcpy(copy, s);
    trodo_string_free(s);
    return copy;
}

int harness_finish(const char *name) {
    if (harness_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, harness_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}
