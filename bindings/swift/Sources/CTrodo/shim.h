/* The generated header lives at the repository root; this shim keeps one copy. */
#include "../../../../include/trodo.h"
