/* A host that loads libtrodo at run time (a plug-in, a game's module), starts
 * it and unloads it while its threads still run, without trodo_shutdown. The
 * library must stay mapped (Windows: the DLL pins itself; Linux: glibc keeps
 * a library loaded while threads it started hold thread-local destructors of
 * it), or its threads and exit handler run unmapped code and the host
 * crashes. This program does not link libtrodo: it finds it in the
 * directory TRODO_TEST_LIB_DIR names. Standalone: no harness.o, which would
 * link it. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
typedef HMODULE Library;
static Library load(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/trodo.dll", dir);
    return LoadLibraryA(path);
}
/* Copied, not cast: ISO C has no conversion between function and object
 * pointers. */
static int find(Library lib, const char *name, void *fn, size_t size) {
    FARPROC found = GetProcAddress(lib, name);
    memcpy(fn, &found, size);
    return found != NULL;
}
static void unload(Library lib) { FreeLibrary(lib); }
static int still_loaded(void) { return GetModuleHandleA("trodo.dll") != NULL; }
static void pause_ms(int ms) { Sleep((DWORD)ms); }
#else
#include <dlfcn.h>
#include <time.h>
typedef void *Library;
static char lib_path[4096];
static Library load(const char *dir) {
    snprintf(lib_path, sizeof lib_path, "%s/libtrodo.so", dir);
    return dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
}
static int find(Library lib, const char *name, void *fn, size_t size) {
    void *found = dlsym(lib, name);
    memcpy(fn, &found, size);
    return found != NULL;
}
static void unload(Library lib) { dlclose(lib); }
static int still_loaded(void) {
    void *again = dlopen(lib_path, RTLD_NOW | RTLD_NOLOAD);
    if (again != NULL) dlclose(again);
    return again != NULL;
}
static void pause_ms(int ms) {
    struct timespec t;
    t.tv_sec = ms / 1000;
    t.tv_nsec = (long)(ms % 1000) * 1000000L;
    nanosleep(&t, NULL);
}
#endif

typedef int (*InitFn)(const char *, const char *);
typedef int (*TrackFn)(const char *, const char *);
typedef int (*FlushFn)(unsigned);

#define FAIL(...)                                  \
    do {                                           \
        fprintf(stderr, "c_unload: " __VA_ARGS__); \
        fprintf(stderr, "\n");                     \
        return 1;                                  \
    } while (0)

int main(void) {
    char options[4096], name[32];
    const char *dir = getenv("TRODO_TEST_LIB_DIR");
    Library lib;
    InitFn init;
    TrackFn track;
    FlushFn flush;
    int i;

    if (dir == NULL) FAIL("TRODO_TEST_LIB_DIR is not set");
    lib = load(dir);
    if (lib == NULL) FAIL("cannot load libtrodo from %s", dir);
    if (!find(lib, "trodo_init", &init, sizeof init) || !find(lib, "trodo_track", &track, sizeof track) ||
        !find(lib, "trodo_flush", &flush, sizeof flush))
        FAIL("missing exports");
    snprintf(options, sizeof options,
             "{\"api_base\":\"%s\",\"storage_dir\":\"%s/unload\",\"persist_interval_ms\":10}",
             getenv("TRODO_TEST_API"), getenv("TRODO_TEST_DIR"));
    if (init("site-c", options) != 0) FAIL("trodo_init failed");
    for (i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "unload-%d", i);
        if (track(name, NULL) != 0) FAIL("trodo_track failed");
    }
    if (flush(20000) != 0) FAIL("trodo_flush failed");
    if (track("after-flush", NULL) != 0) FAIL("trodo_track failed");
    unload(lib);
    /* The library's threads wake meanwhile (a batch due, the state look
     * every second); then the exit handler runs. */
    pause_ms(1500);
    if (!still_loaded()) FAIL("libtrodo was unmapped while its threads run");
    printf("c_unload: all checks passed\n");
    return 0;
}
