// ClusterGate: the public face of the CAF middleman port.
//
// CAF 0.17's BASP reads whatever payload size a peer announces before any
// authentication, so one forged 32-byte header could make a node allocate
// gigabytes. The middleman therefore listens on loopback only; this gate
// accepts on cluster-address and relays each connection to it, checking every
// BASP header on the way in (payload at most kMaxPayload) and dropping the
// connection otherwise. Messages themselves are still sealed and signed
// (site/security.h); the gate only keeps the unauthenticated parser safe.
//
// Ownership: owned by the Node. All relays are asynchronous on the node's
// I/O pool (no thread per connection); the relay set is touched only on one
// strand. The Node stops the I/O pool first, then calls stop(), which closes
// the listener and every relay; the pool, destroyed after the gate, frees
// what its queued handlers still hold.
#pragma once

#include <memory>
#include <string>

#include "base/error.h"
#include "base/io_pool.h"

namespace ep::transfer {

class ClusterGate {
 public:
  static constexpr uint32_t kMaxPayload = 16 << 20;
  static constexpr int kMaxConnections = 256;

  ClusterGate(IoPool& io, std::string backend_address);
  ~ClusterGate();
  void set_backend(std::string address);  // before start()
  Result<uint16_t> listen(const std::string& address);
  void start();
  void stop();  // after the I/O pool stopped
  uint64_t connections_refused() const;

  struct Impl;  // defined in cluster_gate.cc, with its relays

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ep::transfer
