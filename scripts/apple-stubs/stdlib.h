/* Stand-in for the SDK's stdlib.h: compile check only. */
#pragma once
#include <stddef.h>
void abort(void);
