// Symbol visibility for the shared library (built with -fvisibility=hidden).
#pragma once

#if defined(SESSIONBROKER_STATIC)
#define SESSIONBROKER_EXPORT
#else
#define SESSIONBROKER_EXPORT __attribute__((visibility("default")))
#endif
