// Node: everything one edgepier process runs, wired together in start order
// (storage, registry, mirror, site actor, HTTP listeners) and stopped in
// reverse. main() only parses the configuration and waits for a signal.
#pragma once

#include <memory>

#include "app/config.h"
#include "base/error.h"

namespace ep {

class Node {
 public:
  static Result<std::unique_ptr<Node>> start(NodeConfig& caf_config, const Config& config);
  ~Node();
  struct Parts;

 private:
  friend struct Parts;
  explicit Node(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace ep
