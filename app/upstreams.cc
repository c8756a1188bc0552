#include "app/upstreams.h"

#include <fstream>

namespace ep {

Result<UpstreamSet> build_upstreams(const Config& config) {
  CredentialStore credentials;
  if (!config.upstream_credentials_file.empty()) {
    auto loaded = load_credentials(config.upstream_credentials_file);
    if (!loaded) return loaded.status();
    credentials = std::move(*loaded);
  }
  std::map<std::string, std::string> ca_files;
  for (const auto& entry : config.upstream_ca_files) {
    auto eq = entry.find('=');
    ca_files[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  UpstreamSet set;
  auto add = [&](const std::string& ns, const std::string& url_text) -> Status {
    auto url = Url::parse(url_text);
    if (!url) return Status{Errc::config_invalid, "setting edgepier.upstreams: " + url.status().message};
    HttpClient::Options options;
    if (auto it = ca_files.find(ns); it != ca_files.end()) {
      options.ca_file = it->second;
      if (!std::ifstream(options.ca_file))
        return Status{Errc::config_invalid, "setting edgepier.upstream-ca-files: cannot read " + options.ca_file};
    }
    bool default_port = (url->scheme == "https" && url->port == 443) || (url->scheme == "http" && url->port == 80);
    auto creds = find_credentials(credentials, default_port ? url->host : url->host + ":" + std::to_string(url->port));
    set.by_namespace[ns] = std::make_unique<Upstream>(ns, *url, options, creds);
    return Status::Ok();
  };
  for (const auto& [ns, path] : ca_files) {
    bool known = false;
    for (const auto& entry : config.upstreams) known |= entry.substr(0, entry.find('=')) == ns;
    if (!known) return Status{Errc::config_invalid, "setting edgepier.upstream-ca-files: no upstream named " + ns};
  }
  for (const auto& entry : config.upstreams) {
    auto eq = entry.find('=');
    if (auto s = add(entry.substr(0, eq), entry.substr(eq + 1)); !s) return s;
  }
  if (!config.default_upstream.empty()) {
    set.default_ns = config.default_upstream;
    if (config.default_upstream.find("://") != std::string::npos) {
      auto url = Url::parse(config.default_upstream);
      if (!url) return Status{Errc::config_invalid, "setting edgepier.default-upstream: " + url.status().message};
      bool default_port = (url->scheme == "https" && url->port == 443) || (url->scheme == "http" && url->port == 80);
      set.default_ns = default_port ? url->host : url->host + ":" + std::to_string(url->port);
      if (!set.by_namespace.count(set.default_ns))
        if (auto s = add(set.default_ns, config.default_upstream); !s) return s;
    }
  }
  return set;
}

}  // namespace ep
