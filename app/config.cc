#include "app/config.h"

#include <unistd.h>

#include <caf/config_option_adder.hpp>
#include <caf/config_value.hpp>
#include <caf/settings.hpp>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

namespace ep {

namespace {

using caf::config_value;

enum class Kind { string, string_list, size, boolean, duration, replication };

struct Key {
  const char* name;
  Kind kind;
  const char* help;
};

// Every setting of INTERFACE.md, in its order.
const Key kKeys[] = {
    {"node-name", Kind::string, "this node's stable name in the site (default: host name)"},
    {"data-dir", Kind::string, "blobs, RocksDB, keys"},
    {"registry-address", Kind::string, "OCI registry HTTP listener, host:port"},
    {"cluster-address", Kind::string, "CAF middleman listener for control messages"},
    {"data-address", Kind::string, "peer chunk-stream listener"},
    {"admin-address", Kind::string, "admin HTTP API used by epctl"},
    {"seeds", Kind::string_list, "cluster addresses to join through"},
    {"site-key-file", Kind::string, "file holding the site's shared secret"},
    {"upstreams", Kind::string_list, "namespace=base URL entries"},
    {"default-upstream", Kind::string, "upstream for requests without ?ns="},
    {"upstream-credentials-file", Kind::string, "credentials per upstream host (docker config.json)"},
    {"upstream-ca-files", Kind::string_list, "extra trusted CA (PEM) per upstream: namespace=/path entries"},
    {"advertise-host", Kind::string, "host or IP peers use to reach this node (default: from the addresses)"},
    {"admin-token-file", Kind::string, "file with the admin API bearer token (required off loopback)"},
    {"chunk-size", Kind::size, "bytes per chunk"},
    {"replication", Kind::replication, "copies of each pinned image: a number or \"all\""},
    {"auto-pin", Kind::boolean, "pin every image first pulled through the site"},
    {"auto-pin-ttl", Kind::duration, "an auto-pin lapses when its image was not pulled on any node this long (default 7d)"},
    {"storage-budget", Kind::size, "bytes of blob storage before unpinned blobs are evicted (0 = unlimited)"},
    {"min-free-space", Kind::size, "writes that would leave less free space in data-dir are refused (default 64 MiB)"},
    {"tag-ttl", Kind::duration, "how long an upstream tag answer is trusted"},
    {"gone-after", Kind::duration, "how long a dead or departed member's state is kept (default 24h)"},
    {"gc-grace", Kind::duration, "how long a blob no manifest lists, or an upload with no write, is kept (default 1h)"},
    {"blocking-threads", Kind::size, "most threads for registry requests that wait (on the uplink, peers); "
                                     "started when needed, ended when idle (default 32)"},
    {"io-threads", Kind::size, "I/O threads shared by the registry, admin, cluster and data listeners (default 2)"},
    {"disk-threads", Kind::size, "threads writing and hashing what upstream fetches receive, started when needed "
                                 "(default 4)"},
    {"chunk-threads", Kind::size, "most jobs obtaining chunks of site blobs at once, four per blob; more wait "
                                  "(default 64)"},
    {"http-max-connections", Kind::size, "open registry connections; past it a new one gets 503 (default 4096)"},
    {"http-header-timeout", Kind::duration, "a request's whole header must arrive within this (default 30s)"},
    {"http-stall-timeout", Kind::duration, "a body or reply that makes no progress this long ends the connection (default 60s)"},
    {"htpasswd-file", Kind::string, "users of the registry API (bcrypt htpasswd); with it, pushes and deletes need a "
                                    "user; re-read when it changes"},
    {"access-file", Kind::string, "pull, push and delete rights per user or group on repository patterns, and the "
                                  "anonymous policy (README, \"Access control\"); re-read when it changes"},
    {"tls-cert-file", Kind::string, "serve the registry listener over HTTPS with this certificate chain (PEM)"},
    {"tls-key-file", Kind::string, "the private key (PEM) of tls-cert-file; both are re-read when they change"},
    {"token-ttl", Kind::duration, "how long a token from /v2/token is valid (default 5min)"},
    {"log-level", Kind::string, "trace, debug (adds one access-log line per request), info, warning or error"},
    {"log-format", Kind::string, "\"text\" or \"json\" (one JSON object per line on standard error)"},
};

Status bad(const std::string& key, const std::string& why) {
  return Status{Errc::config_invalid, "setting edgepier." + key + ": " + why};
}

bool parse_duration(std::string_view text, std::chrono::milliseconds& out) {
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || !(value >= 0)) return false;  // NaN too
  std::string_view unit(ptr, static_cast<size_t>(text.data() + text.size() - ptr));
  static const std::map<std::string_view, double> kUnits = {
      {"ms", 1}, {"s", 1000}, {"min", 60000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
  auto it = kUnits.find(unit);
  if (it == kUnits.end()) return false;
  const double ms = value * it->second;
  if (!(ms < 9.2e18)) return false;  // below 2^63, so the conversion is defined (inf fails too)
  out = std::chrono::milliseconds(static_cast<int64_t>(ms));
  return true;
}

// Applies one raw value (from the INI file or the typed CLI) to `config`.
Status apply(Config& config, const Key& key, const config_value& value) {
  const std::string name = key.name;
  const auto* str = caf::get_if<std::string>(&value);
  const auto* integer = caf::get_if<int64_t>(&value);
  switch (key.kind) {
    case Kind::string: {
      if (!str) return bad(name, "expected a quoted string, got " + caf::to_string(value));
      static const std::map<std::string, std::string Config::*> kFields = {
          {"node-name", &Config::node_name},
          {"data-dir", &Config::data_dir},
          {"registry-address", &Config::registry_address},
          {"cluster-address", &Config::cluster_address},
          {"data-address", &Config::data_address},
          {"admin-address", &Config::admin_address},
          {"site-key-file", &Config::site_key_file},
          {"default-upstream", &Config::default_upstream},
          {"upstream-credentials-file", &Config::upstream_credentials_file},
          {"advertise-host", &Config::advertise_host},
          {"admin-token-file", &Config::admin_token_file},
          {"htpasswd-file", &Config::htpasswd_file},
          {"access-file", &Config::access_file},
          {"tls-cert-file", &Config::tls_cert_file},
          {"tls-key-file", &Config::tls_key_file},
          {"log-level", &Config::log_level},
          {"log-format", &Config::log_format}};
      config.*kFields.at(name) = *str;
      return Status::Ok();
    }
    case Kind::string_list: {
      const auto* list = caf::get_if<config_value::list>(&value);
      if (!list) return bad(name, "expected a list of strings like [\"a\", \"b\"], got " + caf::to_string(value));
      std::vector<std::string> items;
      for (const auto& item : *list) {
        const auto* s = caf::get_if<std::string>(&item);
        if (!s) return bad(name, "list items must be quoted strings, got " + caf::to_string(item));
        items.push_back(*s);
      }
      (name == "seeds" ? config.seeds : name == "upstreams" ? config.upstreams : config.upstream_ca_files) =
          std::move(items);
      return Status::Ok();
    }
    case Kind::size: {
      int64_t n = -1;
      if (integer) n = *integer;
      if (str) {
        auto [ptr, ec] = std::from_chars(str->data(), str->data() + str->size(), n);
        if (ec != std::errc() || ptr != str->data() + str->size()) n = -1;
      }
      if (n < 0) return bad(name, "expected a non-negative number of bytes, got " + caf::to_string(value));
      static const std::set<std::string> kThreadCounts = {"blocking-threads", "io-threads", "disk-threads",
                                                          "chunk-threads"};
      if (kThreadCounts.count(name) && (n < 1 || n > 4096))
        return bad(name, "expected 1 to 4096 threads");
      if (name == "http-max-connections" && n < 1) return bad(name, "expected at least 1 connection");
      static const std::map<std::string, uint64_t Config::*> kSizes = {{"chunk-size", &Config::chunk_size},
                                                                         {"storage-budget", &Config::storage_budget},
                                                                         {"min-free-space", &Config::min_free_space},
                                                                         {"blocking-threads", &Config::blocking_threads},
                                                                         {"io-threads", &Config::io_threads},
                                                                         {"disk-threads", &Config::disk_threads},
                                                                         {"chunk-threads", &Config::chunk_threads},
                                                                         {"http-max-connections", &Config::http_max_connections}};
      config.*kSizes.at(name) = static_cast<uint64_t>(n);
      return Status::Ok();
    }
    case Kind::boolean: {
      const auto* b = caf::get_if<bool>(&value);
      if (b) {
        config.auto_pin = *b;
        return Status::Ok();
      }
      if (str && (*str == "true" || *str == "false")) {  // the command line gives text
        config.auto_pin = *str == "true";
        return Status::Ok();
      }
      return bad(name, "expected true or false, got " + caf::to_string(value));
    }
    case Kind::duration: {
      auto& field = name == "tag-ttl"        ? config.tag_ttl
                    : name == "auto-pin-ttl" ? config.auto_pin_ttl
                    : name == "gc-grace"     ? config.gc_grace
                    : name == "http-header-timeout" ? config.http_header_timeout
                    : name == "http-stall-timeout"  ? config.http_stall_timeout
                    : name == "token-ttl"           ? config.token_ttl
                                             : config.gone_after;
      std::chrono::milliseconds parsed{-1};
      if (const auto* span = caf::get_if<caf::timespan>(&value); span && span->count() >= 0)
        parsed = std::chrono::duration_cast<std::chrono::milliseconds>(*span);
      else if (!str || !parse_duration(*str, parsed))
        return bad(name, "expected a duration like 30s, 500ms, 5min, 12h or 7d, got " + caf::to_string(value));
      // A connection timeout of nothing would close every connection at once.
      if ((name.rfind("http-", 0) == 0 || name == "token-ttl") && parsed < std::chrono::milliseconds(100))
        return bad(name, "expected at least 100ms");
      field = parsed;
      return Status::Ok();
    }
    case Kind::replication: {
      int64_t n = 0;
      if (integer) n = *integer;
      if (str && *str == "all") {
        config.replication = 0;
        return Status::Ok();
      }
      if (str) {
        auto [ptr, ec] = std::from_chars(str->data(), str->data() + str->size(), n);
        if (ec != std::errc() || ptr != str->data() + str->size()) n = 0;
      }
      if (n < 1 || n > 100000) return bad(name, "expected a positive number or \"all\", got " + caf::to_string(value));
      config.replication = static_cast<uint32_t>(n);
      return Status::Ok();
    }
  }
  return Status::Ok();
}

const Key* find_key(std::string_view name) {
  for (const auto& key : kKeys)
    if (name == key.name) return &key;
  return nullptr;
}

bool valid_address(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  unsigned port = 0;
  auto p = std::string_view(address).substr(colon + 1);
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  return ec == std::errc() && ptr == p.data() + p.size() && port <= 65535;
}

Status check_semantics(const Config& c) {
  const std::pair<const char*, const std::string*> addresses[] = {{"registry-address", &c.registry_address},
                                                                  {"cluster-address", &c.cluster_address},
                                                                  {"data-address", &c.data_address},
                                                                  {"admin-address", &c.admin_address}};
  for (auto [name, value] : addresses)
    if (!valid_address(*value)) return bad(name, "expected host:port, got \"" + *value + "\"");
  for (const auto& seed : c.seeds)
    if (!valid_address(seed)) return bad("seeds", "expected host:port entries, got \"" + seed + "\"");
  for (const auto& up : c.upstreams) {
    auto eq = up.find('=');
    auto url = eq == std::string::npos ? std::string() : up.substr(eq + 1);
    if (eq == 0 || eq == std::string::npos || (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0))
      return bad("upstreams", "expected \"namespace=http(s)://host[:port]\" entries, got \"" + up + "\"");
  }
  for (const auto& entry : c.upstream_ca_files)
    if (entry.find('=') == std::string::npos || entry.find('=') == 0)
      return bad("upstream-ca-files", "expected \"namespace=/path/ca.pem\" entries, got \"" + entry + "\"");
  if (!c.default_upstream.empty() && c.default_upstream.find("://") == std::string::npos) {
    bool listed = false;
    for (const auto& up : c.upstreams) listed |= up.substr(0, up.find('=')) == c.default_upstream;
    if (!listed) return bad("default-upstream", "\"" + c.default_upstream + "\" is neither a URL nor a namespace in upstreams");
  }
  // A chunk travels in one peer frame (at most 80 MiB with its header).
  if (c.chunk_size < (64 << 10) || c.chunk_size > (64 << 20))
    return bad("chunk-size", "must be between 65536 and 67108864 bytes");
  if (c.data_dir.empty()) return bad("data-dir", "must not be empty");
  if (!c.seeds.empty() && c.site_key_file.empty())
    return bad("seeds", "joining a site needs site-key-file (write one with epctl keygen)");
  auto admin_host = c.admin_address.substr(0, c.admin_address.rfind(':'));
  bool loopback = admin_host.rfind("127.", 0) == 0 || admin_host == "localhost" || admin_host == "[::1]" || admin_host == "::1";
  if (!loopback && c.admin_token_file.empty())
    return bad("admin-address", "listening off loopback needs admin-token-file");
  if (c.node_name.empty()) return bad("node-name", "must not be empty");
  if (c.tls_cert_file.empty() != c.tls_key_file.empty())
    return bad(c.tls_cert_file.empty() ? "tls-cert-file" : "tls-key-file",
               "HTTPS needs both tls-cert-file and tls-key-file");
  return Status::Ok();
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "edgepier";
  return buf;
}

}  // namespace

NodeConfig::NodeConfig() {
  caf::config_option_adder group{custom_options_, "edgepier"};
  for (const auto& key : kKeys) {
    // caf::string_view takes a const char* only under GCC (CAF_GCC); clang needs the length.
    const caf::string_view name(key.name, std::strlen(key.name)), help(key.help, std::strlen(key.help));
    switch (key.kind) {
      case Kind::string_list: group.add<std::vector<std::string>>(name, help); break;
      case Kind::size: group.add<int64_t>(name, help); break;
      // CAF's CLI parser takes no value for bool flags; read it as text.
      case Kind::boolean: group.add<std::string>(name, help); break;
      case Kind::duration: group.add<caf::timespan>(name, help); break;
      default: group.add<std::string>(name, help); break;
    }
  }
}

Status apply_ini(Config& config, std::istream& ini, const std::string& path) {
  auto raw = caf::actor_system_config::parse_config(ini);
  if (!raw)
    return Status{Errc::config_invalid,
                  "cannot read config file " + path + ": " + caf::actor_system_config::render(raw.error())};
  if (auto it = raw->find("edgepier"); it != raw->end()) {
    const auto* section = caf::get_if<caf::settings>(&it->second);
    if (!section) return Status{Errc::config_invalid, path + ": edgepier must be a section"};
    for (const auto& [name, value] : *section) {
      const Key* key = find_key(name);
      if (!key) return Status{Errc::config_invalid, path + ": unknown setting edgepier." + name};
      if (auto s = apply(config, *key, value); !s) return Status{Errc::config_invalid, path + ": " + s.message};
    }
  }
  return Status::Ok();
}

Result<Config> load_config(NodeConfig& cfg, int argc, char** argv) {
  if (auto err = cfg.parse(argc, argv))
    return Status{Errc::config_invalid, "invalid configuration: " + cfg.render(err)};
  if (cfg.cli_helptext_printed) return Status{Errc::config_invalid, "help"};  // main() exits 0 after --help
  for (const auto& arg : cfg.remainder)
    return Status{Errc::config_invalid, "unexpected argument: " + arg};

  Config config;
  config.node_name = host_name();
  // The INI file, re-read raw so that nothing in it is silently ignored.
  std::string path;
  if (auto given = caf::get_if<std::string>(&cfg.content, "config-file"))
    path = *given;
  else if (!cfg.config_file_path.empty() && std::filesystem::exists(cfg.config_file_path))
    path = cfg.config_file_path;
  if (!path.empty()) {
    std::ifstream file(path);
    if (!file) return Status{Errc::config_invalid, "cannot read config file " + path};
    if (auto s = apply_ini(config, file, path); !s) return s;
  }
  // Command-line values win over the file.
  auto cli = caf::get_if<caf::settings>(&cfg.content, "edgepier");
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.rfind("--edgepier.", 0) != 0) continue;
    auto name = arg.substr(11, arg.find('=') == std::string_view::npos ? std::string_view::npos : arg.find('=') - 11);
    const Key* key = find_key(name);
    if (!key) return Status{Errc::config_invalid, "unknown setting edgepier." + std::string(name)};
    const config_value* value = nullptr;
    if (cli)
      if (auto it = cli->find(std::string(name)); it != cli->end()) value = &it->second;
    if (!value) return bad(std::string(name), "missing or malformed value in " + std::string(arg));
    if (auto s = apply(config, *key, *value); !s) return s;
  }
  if (auto s = check_semantics(config); !s) return s;
  return config;
}

}  // namespace ep
