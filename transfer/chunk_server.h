// ChunkServer: answers peers' ChunkRequests on data-address.
//
// Asynchronous on the node's I/O pool, with no thread per connection: each
// connection is a chain of handlers on its own strand (handshake, then
// request after request, answered in order). The provider (which may block:
// a disk read, a chunk fetched from upstream) runs on a bounded blocking
// pool the Node owns; while a fetch request waits there, the connection
// sends WORKING notes every few seconds, so the asker keeps waiting for a
// live peer and gives up quickly on a dead one. At most kMaxChunkSends
// chunk frames are being sent at once, however many peers ask, so memory
// and CPU stay bounded in a large site. Chunk bytes go from the file into
// the sealed frame a slice at a time, never into a CAF message.
//
// Ownership: owned by the Node, which stops the I/O pool and the provider
// pool first, then calls stop() (closes the listener and every connection).
// Connections share only `Shared` with the server, so handlers the pool
// still holds may outlive the server. Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "base/blocking_pool.h"
#include "base/io_pool.h"
#include "transfer/chunk_service.h"

namespace ep::transfer {

class ChunkServer {
 public:
  ChunkServer(IoPool& io, BlockingPool& providers, DataKey key, ChunkProvider provider,
              std::shared_ptr<PeerTraffic> traffic);
  ~ChunkServer();
  Result<uint16_t> listen(const std::string& address);
  void start();
  void stop();

  struct Shared;  // what the server and its connections share (chunk_server.cc)

 private:
  void accept();
  std::shared_ptr<Shared> shared_;
  struct Acceptor;  // Asio, kept out of this header
  std::unique_ptr<Acceptor> acceptor_;
};

}  // namespace ep::transfer
