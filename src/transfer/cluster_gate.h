// ClusterGate: the public face of the CAF middleman port.
//
// CAF 0.17's BASP reads whatever payload size a peer announces before any
// authentication, so one forged 32-byte header could make a node allocate
// gigabytes. The middleman therefore listens on loopback only; this gate
// accepts on cluster-address and relays each connection to it, checking every
// BASP header on the way in (payload at most kMaxPayload) and dropping the
// connection otherwise. Messages themselves are still sealed and signed
// (site/security.h); the gate only keeps the unauthenticated parser safe.
// Two threads per connection, capped; owned by the Node.
#pragma once

#include <atomic>
#include <string>
#include <thread>

#include "base/error.h"
#include "base/fd.h"

namespace ep::transfer {

class ClusterGate {
 public:
  static constexpr uint32_t kMaxPayload = 16 << 20;
  explicit ClusterGate(std::string backend_address) : backend_(std::move(backend_address)) {}
  void set_backend(std::string address) { backend_ = std::move(address); }  // before start()
  ~ClusterGate();
  Result<uint16_t> listen(const std::string& address);
  void start();
  void stop();
  uint64_t connections_refused() const { return refused_; }

 private:
  void relay(UniqueFd client);
  std::string backend_;
  UniqueFd listener_;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::atomic<uint64_t> refused_{0};
};

}  // namespace ep::transfer
