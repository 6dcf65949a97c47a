/* Stand-in for the SDK's assert.h: compile check only. */
#pragma once
#define assert(e) ((void)0)
