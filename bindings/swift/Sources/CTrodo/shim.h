/* The installed header, found through pkg-config (trodo.pc's Cflags). */
#include <trodo.h>
