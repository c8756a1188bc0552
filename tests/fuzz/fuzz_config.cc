// Fuzzes the node's INI configuration parser (app/config: apply_ini, what
// load_config does with --config-file: CAF's INI parser, then the raw
// [edgepier] section with every key checked and converted). Input: the INI
// file's bytes.
//
// Not through load_config itself: that also runs CAF's typed option parse,
// and CAF 0.17's option metadata (caf/make_config_option.hpp) compiled by
// clang does not match Debian's GCC-built libcaf_core (a null check
// function for list options: a crash in CAF, not in our parser).
//
// Asserts, for a file that applies: thread counts within 1..4096, a
// replication of at most 100000, and no negative duration.
#include <cstdint>
#include <sstream>
#include <string>

#include "app/config.h"
#include "fuzz_check.h"

using namespace ep;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream ini(std::string(reinterpret_cast<const char*>(data), size));
  Config config;
  if (!apply_ini(config, ini, "fuzz.ini")) return 0;
  for (auto threads : {config.io_threads, config.blocking_threads, config.disk_threads, config.chunk_threads})
    FUZZ_CHECK(threads >= 1 && threads <= 4096);
  FUZZ_CHECK(config.replication <= 100000);
  for (auto duration : {config.tag_ttl, config.gone_after, config.gc_grace, config.auto_pin_ttl})
    FUZZ_CHECK(duration.count() >= 0);
  return 0;
}
