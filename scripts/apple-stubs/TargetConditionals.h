/* Stand-in for the SDK's TargetConditionals.h: compile check only. */
#pragma once
