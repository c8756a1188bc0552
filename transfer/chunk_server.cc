#include "transfer/chunk_server.h"

#include <arpa/inet.h>

#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <map>
#include <mutex>
#include <optional>

#include "base/file_io.h"
#include "base/log.h"

namespace ep::transfer {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

namespace {
constexpr size_t kMaxConnections = 256;
constexpr auto kHandshakeTimeout = std::chrono::seconds(5);
constexpr auto kIdleTimeout = std::chrono::seconds(120);  // between pipelined requests
constexpr auto kWorkingInterval = std::chrono::seconds(3);
constexpr int kMaxChunkSends = 6;
// A peer that stops reading holds its send slot this long at most.
constexpr auto kChunkSendTimeout = std::chrono::seconds(10);
constexpr size_t kMaxRequestFrame = 64 << 10;  // requests are small messages and carry no payload
}  // namespace

class ChunkConnection;

struct ChunkServer::Shared {
  Shared(BlockingPool& pool, DataKey k, ChunkProvider p, std::shared_ptr<PeerTraffic> t)
      : providers(pool), key(k), provider(std::move(p)), traffic(std::move(t)) {}

  // A send slot now (true), or `resume` is called once one is handed over.
  bool acquire_send(std::function<void()> resume) {
    std::lock_guard lock(mu);
    if (sending < kMaxChunkSends) {
      ++sending;
      return true;
    }
    if (!stopping) waiting_to_send.push_back(std::move(resume));
    return false;
  }
  void release_send() {
    std::function<void()> next;
    {
      std::lock_guard lock(mu);
      if (waiting_to_send.empty()) {
        --sending;
        return;
      }
      next = std::move(waiting_to_send.front());  // the slot passes on
      waiting_to_send.pop_front();
    }
    next();
  }

  BlockingPool& providers;
  const DataKey key;
  const ChunkProvider provider;
  const std::shared_ptr<PeerTraffic> traffic;
  std::mutex mu;  // guards what follows
  bool stopping = false;
  std::map<const ChunkConnection*, std::weak_ptr<ChunkConnection>> connections;
  int sending = 0;
  std::deque<std::function<void()>> waiting_to_send;
};

// One peer's stream; every handler runs on the socket's strand.
class ChunkConnection : public std::enable_shared_from_this<ChunkConnection> {
 public:
  ChunkConnection(tcp::socket socket, std::shared_ptr<ChunkServer::Shared> shared)
      : socket_(std::move(socket)), deadline_(socket_.get_executor()), working_(socket_.get_executor()),
        shared_(std::move(shared)), handshake_(/*is_client=*/false) {}
  ~ChunkConnection() {
    std::lock_guard lock(shared_->mu);
    shared_->connections.erase(this);
  }

  void start() {
    arm_deadline(kHandshakeTimeout);
    auto self = shared_from_this();
    net::async_write(socket_, net::buffer(handshake_.public_key(), kPublicKeyBytes), [self](error_code ec, size_t) {
      if (ec) return self->close();
      net::async_read(self->socket_, net::buffer(self->peer_public_), [self](error_code ec, size_t) {
        if (ec) return self->close();
        self->proof_ = self->handshake_.proof(self->peer_public_.data(), self->shared_->key);
        net::async_write(self->socket_, net::buffer(self->proof_), [self](error_code ec, size_t) {
          if (ec) return self->close();
          net::async_read(self->socket_, net::buffer(self->peer_proof_), [self](error_code ec, size_t) {
            if (ec) return self->close();
            self->handshaken();
          });
        });
      });
    });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    deadline_.cancel();
    working_.cancel();
    if (holds_send_slot_) {
      holds_send_slot_ = false;
      shared_->release_send();
    }
  }

  auto executor() { return socket_.get_executor(); }

 private:
  void handshaken() {
    if (!handshake_.finish(peer_public_.data(), peer_proof_.data(), shared_->key, rx_, tx_)) {
      ++shared_->traffic->handshakes_refused;  // no site key: nothing is served
      return close();
    }
    read_request();
  }

  void read_request() {
    arm_deadline(kIdleTimeout);
    auto self = shared_from_this();
    net::async_read(socket_, net::buffer(&frame_length_, 4), [self](error_code ec, size_t) {
      if (ec) return self->close();
      const uint32_t length = ntohl(self->frame_length_);
      if (length < kTagBytes + 4 || length > kMaxRequestFrame + kTagBytes) return self->close();
      self->frame_.resize(length);
      net::async_read(self->socket_, net::buffer(self->frame_), [self](error_code ec, size_t) {
        if (ec) return self->close();
        auto header = open_whole_frame(self->rx_, self->rx_counter_++, self->frame_.data(), self->frame_.size());
        if (!header || !self->request_.ParseFromString(*header)) return self->close();  // garbage: drop the stream
        self->provide();
      });
    });
  }

  // The provider runs on the blocking pool; its answer comes back to this strand.
  void provide() {
    deadline_.cancel();
    providing_ = true;
    if (request_.fetch()) arm_working();
    auto self = shared_from_this();
    bool queued = shared_->providers.post([self, request = request_] {
      auto reply = std::make_shared<ChunkReply>();
      // One bad request ends this stream, never the node.
      Status answered = guarded("a peer's chunk request", [&] {
        *reply = self->shared_->provider(request);
        return Status::Ok();
      });
      net::post(self->executor(), [self, reply, answered] { self->provided(answered, std::move(*reply)); });
    });
    if (!queued) close();  // the node is stopping
  }

  void provided(const Status& answered, ChunkReply reply) {
    providing_ = false;
    working_.cancel();
    if (closed_ || !answered) return close();
    reply.header.set_id(request_.id());
    shared_->traffic->bytes_served += reply.length;
    ++shared_->traffic->requests_served;
    reply_ = std::move(reply);
    if (!writing_) send_reply();
  }

  // "Still working" every kWorkingInterval while a fetch request waits.
  void arm_working() {
    working_.expires_after(kWorkingInterval);
    working_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->closed_ || !self->providing_) return;
      if (!self->writing_) {
        wire::ChunkResponse working;
        working.set_id(self->request_.id());
        working.set_status(wire::ChunkResponse::WORKING);
        self->write_whole(working.SerializeAsString(), [self] {
          if (self->reply_) self->send_reply();
        });
      }
      self->arm_working();
    });
  }

  // A frame without payload, then `then` (on this strand).
  void write_whole(const std::string& header, std::function<void()> then) {
    FrameWriter frame(tx_, tx_counter_++, header, 0);
    auto piece = frame.next({});
    if (!piece) return close();
    small_.assign(piece->first, piece->first + piece->second);
    writing_ = true;
    net::async_write(socket_, net::buffer(small_), [self = shared_from_this(), then = std::move(then)](error_code ec, size_t) {
      self->writing_ = false;
      if (ec) return self->close();
      then();
    });
  }

  void send_reply() {
    auto self = shared_from_this();
    if (reply_->length == 0) {
      write_whole(reply_->header.SerializeAsString(), [self] {
        self->reply_.reset();
        self->read_request();
      });
      return;
    }
    auto resume = [self] { net::post(self->executor(), [self] { self->got_send_slot(); }); };
    if (shared_->acquire_send(resume)) got_send_slot();
  }

  void got_send_slot() {
    if (closed_) return shared_->release_send();  // closed while it waited: the slot passes on
    holds_send_slot_ = true;
    out_.emplace(tx_, tx_counter_++, reply_->header.SerializeAsString(), reply_->length);
    write_piece();
  }

  void write_piece() {
    auto piece = out_->next([this](uint64_t offset, unsigned char* into, size_t size) {
      return pread_exact(reply_->fd.get(), into, size, reply_->offset + offset, "a chunk");
    });
    if (!piece) return close();
    arm_deadline(kChunkSendTimeout);
    writing_ = true;
    net::async_write(socket_, net::buffer(piece->first, piece->second), [self = shared_from_this()](error_code ec, size_t) {
      self->writing_ = false;
      if (ec) return self->close();
      if (!self->out_->done()) return self->write_piece();
      self->out_.reset();
      self->reply_.reset();
      self->holds_send_slot_ = false;
      self->shared_->release_send();
      self->read_request();
    });
  }

  // Closes the stream unless re-armed or cancelled first.
  void arm_deadline(std::chrono::seconds after) {
    deadline_.expires_after(after);
    deadline_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->close();
    });
  }

  tcp::socket socket_;
  net::steady_timer deadline_, working_;
  std::shared_ptr<ChunkServer::Shared> shared_;
  Handshake handshake_;
  std::array<unsigned char, kPublicKeyBytes> peer_public_{};
  std::array<unsigned char, kProofBytes> peer_proof_{}, proof_{};
  SessionKey rx_{}, tx_{};
  uint64_t rx_counter_ = 0, tx_counter_ = 0;
  uint32_t frame_length_ = 0;
  std::vector<unsigned char> frame_;  // the request being read
  wire::ChunkRequest request_;
  std::optional<ChunkReply> reply_;  // the answer to send once the stream is free
  std::optional<FrameWriter> out_;   // the chunk frame being sent
  std::vector<unsigned char> small_;  // a frame without payload being sent
  bool providing_ = false, writing_ = false, holds_send_slot_ = false, closed_ = false;
};

struct ChunkServer::Acceptor {
  explicit Acceptor(IoPool& io) : ioc(io.context()), acceptor(net::make_strand(io.context())) {}
  net::io_context& ioc;
  tcp::acceptor acceptor;
};

ChunkServer::ChunkServer(IoPool& io, BlockingPool& providers, DataKey key, ChunkProvider provider,
                         std::shared_ptr<PeerTraffic> traffic)
    : shared_(std::make_shared<Shared>(providers, key, std::move(provider), std::move(traffic))),
      acceptor_(std::make_unique<Acceptor>(io)) {}

ChunkServer::~ChunkServer() { stop(); }

Result<uint16_t> ChunkServer::listen(const std::string& address) {
  return listen_on(acceptor_->acceptor, address, "data address");
}

void ChunkServer::start() {
  net::post(acceptor_->acceptor.get_executor(), [this] { accept(); });
}

void ChunkServer::accept() {
  acceptor_->acceptor.async_accept(net::make_strand(acceptor_->ioc), [this](error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) return;
    if (!ec) {
      std::shared_ptr<ChunkConnection> connection;
      {
        std::lock_guard lock(shared_->mu);
        if (shared_->stopping) return;
        if (shared_->connections.size() >= kMaxConnections) {
          ++shared_->traffic->connections_refused;  // the socket closes on leaving scope
        } else {
          connection = std::make_shared<ChunkConnection>(std::move(socket), shared_);
          shared_->connections[connection.get()] = connection;
        }
      }
      if (connection) net::post(connection->executor(), [connection] { connection->start(); });
    }
    accept();
  });
}

void ChunkServer::stop() {
  std::vector<std::shared_ptr<ChunkConnection>> open;
  std::deque<std::function<void()>> waiting;  // freed after the lock: they hold connections
  {
    std::lock_guard lock(shared_->mu);
    if (shared_->stopping) return;
    shared_->stopping = true;
    waiting.swap(shared_->waiting_to_send);
    for (auto& [raw, weak] : shared_->connections)
      if (auto connection = weak.lock()) open.push_back(std::move(connection));
  }
  error_code ignored;
  acceptor_->acceptor.close(ignored);
  // On their strands (if the pool still runs; if not, the pool frees them).
  for (auto& connection : open) net::post(connection->executor(), [connection] { connection->close(); });
}

}  // namespace ep::transfer
