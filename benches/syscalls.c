/* The system calls trodo_track makes on the caller's thread, in steady
 * state: 10 000 calls between two getppid() markers, counted by running this
 * under `strace -ff` and reading the main thread's trace between the markers
 * (scripts/bench-compare.sh). Usage: syscalls API_BASE STORAGE_DIR */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "trodo.h"

#define CALLS 10000
static const char *PROPS = "{\"plan\":\"pro\",\"seats\":12,\"trial\":false,\"source\":\"bench\",\"ratio\":0.5}";

int main(int argc, char **argv) {
    char options[4096];
    int i;
    if (argc < 3) return 2;
    snprintf(options, sizeof options, "{\"api_base\":\"%s\",\"storage_dir\":\"%s\"}", argv[1], argv[2]);
    if (trodo_init("bench-site", options) != TRODO_OK) return 1;
    for (i = 0; i < CALLS; i++) trodo_track("warm_up", PROPS);
    syscall(SYS_getppid);
    for (i = 0; i < CALLS; i++) trodo_track("measured", PROPS);
    syscall(SYS_getppid);
    trodo_shutdown(0);
    return 0;
}
