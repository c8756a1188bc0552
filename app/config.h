// Node configuration: the [edgepier] settings of INTERFACE.md.
//
// Read through CAF's config machinery (INI file via --config-file=, and
// --edgepier.<key>=<value> on the command line, which wins). CAF 0.17 keeps
// unknown INI keys and silently drops mistyped INI values, so the INI section
// is re-read raw and every key is checked here: unknown keys and bad values
// are startup errors naming the key.
#pragma once

#include <caf/actor_system_config.hpp>
#include <chrono>
#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "base/error.h"

namespace ep {

struct Config {
  std::string node_name;
  std::string data_dir = "./edgepier-data";
  std::string registry_address = "0.0.0.0:5000";
  std::string cluster_address = "0.0.0.0:7946";
  std::string data_address = "0.0.0.0:7947";
  std::string admin_address = "127.0.0.1:5050";
  std::vector<std::string> seeds;
  std::string site_key_file;
  std::vector<std::string> upstreams;  // "namespace=base URL"
  std::string default_upstream;
  std::string upstream_credentials_file;
  std::vector<std::string> upstream_ca_files;  // "namespace=/path/ca.pem" (extension)
  std::string advertise_host;    // address peers use to reach us (extension; default: derived)
  std::string admin_token_file;  // bearer token for the admin API (extension)
  uint64_t chunk_size = 4 << 20;
  uint32_t replication = 0;  // 0 = "all"
  bool auto_pin = true;
  std::chrono::milliseconds auto_pin_ttl{7LL * 24 * 3600 * 1000};  // an auto-pin not pulled this long lapses
  uint64_t storage_budget = 0;  // 0 = unlimited
  uint64_t min_free_space = 64ull << 20;  // writes that would leave less free space are refused
  uint64_t blocking_threads = 32;  // most threads for registry work that must block (extension)
  uint64_t io_threads = 2;         // Asio I/O threads shared by every listener (extension)
  uint64_t disk_threads = 4;       // write and hash upstream fetches' body pieces (extension)
  uint64_t chunk_threads = 64;     // jobs obtaining site blobs' chunks at once (extension)
  uint64_t http_max_connections = 4096;               // past it: 503 (extension)
  std::chrono::milliseconds http_header_timeout{30000};  // a whole request header (extension)
  std::chrono::milliseconds http_stall_timeout{60000};   // no body/reply progress (extension)
  std::chrono::milliseconds tag_ttl{30000};
  std::chrono::milliseconds gone_after{24 * 3600 * 1000};  // dead/left members dropped after (extension)
  std::chrono::milliseconds gc_grace{3600 * 1000};  // unreferenced blobs and idle uploads kept this long (extension)
  std::string htpasswd_file;  // registry users (bcrypt); none: anonymous writes from loopback only
  std::string access_file;    // rights per user/group and repository pattern; none: the built-in rules
  std::string tls_cert_file, tls_key_file;  // HTTPS on the registry listener
  std::chrono::milliseconds token_ttl{300000};  // tokens of /v2/token (extension)
  std::string log_level = "info";   // trace, debug (adds the access log), info, warning, error
  std::string log_format = "text";  // text or json (one object per line)
};

class NodeConfig : public caf::actor_system_config {
 public:
  NodeConfig();
};

// Parses argv (and the INI file it names) into `config`. `cfg` keeps CAF's own
// settings for the actor system. Errors name the offending key.
Result<Config> load_config(NodeConfig& cfg, int argc, char** argv);

// What load_config does with the INI file: parses `ini` (CAF's INI syntax)
// and applies its [edgepier] section onto `config`, each key checked; errors
// name `origin` and the key. Declared here for tests/fuzz/fuzz_config.cc.
Status apply_ini(Config& config, std::istream& ini, const std::string& origin);

}  // namespace ep
