// Chunk transfer between nodes over SecureChannel: the types both sides
// share, and ChunkClient, which fetches chunks from peers (blocking, on the
// caller's thread), reusing idle connections per address, and probes many
// peers at once without a thread each (chunk_probes.cc). The serving side
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
namespace boost::asio {
class io_context;
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
  // Asks every address about one blob at once (`request` has stat set: no
  // chunk bytes either way) and returns the answers in the order of
  // `addresses`. The probes run on a private event loop on the caller's
  // thread until each answered, failed or stalled for `timeout`: no thread
  // per peer, however many are asked. Idle pooled connections are used
  // first (a stale one is replaced once), and answered ones go back.
  std::vector<Result<wire::ChunkResponse>> probe_all(const std::vector<std::string>& addresses,
                                                     const wire::ChunkRequest& request,
                                                     std::chrono::milliseconds timeout);
  // Ends every fetch and probe in flight at once (their sockets are shut
  // down, their event loops stopped) and refuses new ones: the node is stopping.
  void cancel_all();

  // The connection pool, per address (also for chunk_probes.cc).
  std::unique_ptr<SecureChannel> take_idle(const std::string& address);
  void return_idle(const std::string& address, std::unique_ptr<SecureChannel> channel);
  const DataKey& key() const { return key_; }

 private:
  static constexpr size_t kMaxIdlePerAddress = 8;
  std::set<boost::asio::io_context*> probing_;  // event loops of probe_all calls running (mu_)
  std::set<int> busy_;  // sockets of fetches in flight (mu_)
  bool cancelled_ = false;
  DataKey key_;
  std::shared_ptr<PeerTraffic> traffic_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::unique_ptr<SecureChannel>>> idle_;
};

}  // namespace ep::transfer
