// FUZZ_CHECK: the harnesses' invariant assertion. A failed check prints what
// was violated and aborts, which libFuzzer reports as a crash and saves the
// input (scripts/fuzz.sh fails on it). Independent of NDEBUG.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
