// Builds the Upstream objects of a node from its configuration.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "app/config.h"
#include "upstream/upstream.h"

namespace ep {

struct UpstreamSet {
  std::map<std::string, std::unique_ptr<Upstream>> by_namespace;
  std::string default_ns;  // "" when requests without ?ns= are local only
};

Result<UpstreamSet> build_upstreams(const Config& config);

}  // namespace ep
