/* A program built against an installed libtrodo (pkg-config or CMake), the
 * way a C developer would: it starts, tracks and stops, offline. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <trodo.h>

int main(int argc, char **argv) {
    char options[4096];
    if (argc < 2) {
        fprintf(stderr, "usage: %s STORAGE_DIR\n", argv[0]);
        return 2;
    }
    if (strcmp(trodo_version(), TRODO_VERSION) != 0) {
        fprintf(stderr, "header %s, library %s\n", TRODO_VERSION, trodo_version());
        return 1;
    }
    /* Port 9 on loopback: nothing is sent; the event stays queued on disk. */
    snprintf(options, sizeof options,
             "{\"api_base\":\"http://127.0.0.1:9\",\"storage_dir\":\"%s\"}", argv[1]);
    if (trodo_init("consumer", options) != TRODO_OK || trodo_set_group("team", "a") != TRODO_OK ||
        trodo_track("installed", "{\"ok\":true}") != TRODO_OK) {
        fprintf(stderr, "libtrodo: %s\n", trodo_last_error());
        return 1;
    }
    trodo_shutdown(0);
    printf("libtrodo %s works\n", trodo_version());
    return 0;
}
