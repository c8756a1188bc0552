// Chunk transfer between nodes over SecureChannel: the types both sides
// share, and ChunkClient, which fetches chunks from peers (blocking, on the
// caller's thread), reusing idle connections per address. The serving side
// is ChunkServer (chunk_server.h). Chunk bytes travel only here, never in
// CAF messages. Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "proto/edgepier.pb.h"
#include "transfer/secure_channel.h"

namespace ep {
namespace wire = ::edgepier::wire;
}

namespace ep::transfer {

// An answer: a header, and chunk bytes read from `fd` at `offset` straight
// into the outgoing frame (no bytes when length is 0).
struct ChunkReply {
  wire::ChunkResponse header;
  UniqueFd fd;
  uint64_t offset = 0, length = 0;
};

// Takes an answer's chunk bytes as they arrive: `begin` sees the answer
// before its first byte (`length` bytes follow), `bytes` them in order.
// Neither the answer nor the bytes are authenticated until fetch() returns
// OK: a sink must not count them as the chunk before that.
struct ChunkSink {
  std::function<Status(const wire::ChunkResponse& header, uint64_t length)> begin;
  std::function<Status(const unsigned char* data, size_t size)> bytes;
};

// Answers one request; may block (e.g. fetching the chunk from upstream):
// the server runs it on a blocking pool.
using ChunkProvider = std::function<ChunkReply(const wire::ChunkRequest&)>;

struct PeerTraffic {
  std::atomic<uint64_t> bytes_served{0}, bytes_fetched{0}, requests_served{0}, handshakes_refused{0};
  std::atomic<uint64_t> connections_refused{0};
};

class ChunkClient {
 public:
  ChunkClient(DataKey key, std::shared_ptr<PeerTraffic> traffic) : key_(key), traffic_(std::move(traffic)) {}
  // One request/response with the peer at `address` (host:port); chunk
  // bytes go to `sink` (an answer with bytes and no sink is an error).
  Result<wire::ChunkResponse> fetch(const std::string& address, const wire::ChunkRequest& request,
                                    std::chrono::milliseconds timeout, const ChunkSink* sink = nullptr);
  // Ends every fetch in flight at once (their sockets are shut down) and
  // refuses new ones: the node is stopping.
  void cancel_all();

 private:
  std::set<int> busy_;  // sockets of fetches in flight (mu_)
  bool cancelled_ = false;
  DataKey key_;
  std::shared_ptr<PeerTraffic> traffic_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::unique_ptr<SecureChannel>>> idle_;
};

}  // namespace ep::transfer
