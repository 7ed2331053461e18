// Symbol visibility for the shared library (built with -fvisibility=hidden).
#pragma once

// A standard attribute, so it combines with [[nodiscard]] in any order.
#if defined(SESSIONBROKER_STATIC)
#define SESSIONBROKER_EXPORT
#else
#define SESSIONBROKER_EXPORT [[gnu::visibility("default")]]
#endif
