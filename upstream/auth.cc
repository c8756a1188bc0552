#include "upstream/auth.h"

#include <openssl/evp.h>

#include <cctype>
#include <nlohmann/json.hpp>

#include "base/file_io.h"

namespace ep {

std::string base64_encode(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(const std::string& in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out(in.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  size_t padding = 0;
  for (size_t i = in.size(); i > 0 && in[i - 1] == '='; --i) ++padding;
  // "====" decodes to 3 bytes with 4 of padding: n - padding would wrap.
  if (padding > 2 || static_cast<size_t>(n) < padding) return std::nullopt;
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

std::string Credentials::basic_header() const { return "Basic " + base64_encode(username + ":" + password); }

namespace {
// "https://index.docker.io/v1/" -> "index.docker.io"; "host:5000" stays.
std::string normalize_host(std::string key) {
  auto scheme = key.find("://");
  if (scheme != std::string::npos) key = key.substr(scheme + 3);
  key = key.substr(0, key.find('/'));
  return key;
}
}  // namespace

Result<CredentialStore> load_credentials(const std::string& path) {
  auto text = read_whole_file(path);
  if (!text) return Status{Errc::config_invalid, "cannot read upstream credentials file " + path};
  return parse_credentials(*text, path);
}

Result<CredentialStore> parse_credentials(std::string_view text, const std::string& path) {
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return Status{Errc::config_invalid, path + ": not a docker config.json (invalid JSON)"};
  CredentialStore store;
  auto auths = doc.find("auths");
  if (auths == doc.end() || !auths->is_object()) return store;
  for (auto& item : auths->items()) {  // not a structured binding: clang 14 cannot capture one
    const std::string& key = item.key();
    const auto& entry = item.value();
    if (!entry.is_object()) continue;
    Credentials creds;
    if (entry.contains("auth") && entry["auth"].is_string()) {
      auto decoded = base64_decode(entry["auth"].get<std::string>());
      auto colon = decoded ? decoded->find(':') : std::string::npos;
      if (colon == std::string::npos) return Status{Errc::config_invalid, path + ": bad \"auth\" for " + key};
      creds = {decoded->substr(0, colon), decoded->substr(colon + 1)};
    } else {
      auto text = [&](const char* key) {
        auto it = entry.find(key);
        return it != entry.end() && it->is_string() ? it->get<std::string>() : std::string();
      };
      creds = {text("username"), text("password")};
    }
    store[normalize_host(key)] = creds;
  }
  return store;
}

std::optional<Credentials> find_credentials(const CredentialStore& store, const std::string& host_port) {
  if (auto it = store.find(host_port); it != store.end()) return it->second;
  // Docker Hub's credentials are conventionally stored for index.docker.io.
  if (host_port == "registry-1.docker.io")
    if (auto it = store.find("index.docker.io"); it != store.end()) return it->second;
  return std::nullopt;
}

std::optional<Challenge> parse_challenge(const std::string& header) {
  size_t i = 0;
  while (i < header.size() && std::isspace(static_cast<unsigned char>(header[i]))) ++i;
  size_t start = i;
  while (i < header.size() && !std::isspace(static_cast<unsigned char>(header[i]))) ++i;
  Challenge c;
  c.scheme = header.substr(start, i - start);
  for (auto& ch : c.scheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (c.scheme.empty()) return std::nullopt;
  while (i < header.size()) {
    while (i < header.size() && (std::isspace(static_cast<unsigned char>(header[i])) || header[i] == ',')) ++i;
    auto eq = header.find('=', i);
    if (eq == std::string::npos) break;
    std::string key = header.substr(i, eq - i);
    for (auto& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    i = eq + 1;
    std::string value;
    if (i < header.size() && header[i] == '"') {
      ++i;
      while (i < header.size() && header[i] != '"') {
        if (header[i] == '\\' && i + 1 < header.size()) ++i;
        value.push_back(header[i++]);
      }
      ++i;
    } else {
      while (i < header.size() && header[i] != ',') value.push_back(header[i++]);
    }
    c.params[key] = value;
  }
  return c;
}

}  // namespace ep
