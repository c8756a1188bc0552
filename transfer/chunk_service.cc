#include "transfer/chunk_service.h"

#include "base/file_io.h"
#include "base/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <future>
#include <iostream>

namespace ep::transfer {

namespace net = boost::asio;

namespace {
constexpr size_t kMaxConnections = 256;
constexpr auto kHandshakeTimeout = std::chrono::seconds(5);
constexpr auto kIdleTimeout = std::chrono::seconds(120);
constexpr auto kWorkingInterval = std::chrono::seconds(3);
constexpr int kMaxChunkSends = 6;
constexpr auto kChunkSendTimeout = std::chrono::seconds(10);
}  // namespace

struct ChunkServer::Acceptor {
  explicit Acceptor(IoPool& io) : acceptor(io.context()) {}
  net::ip::tcp::acceptor acceptor;
};

ChunkServer::ChunkServer(IoPool& io, DataKey key, ChunkProvider provider, std::shared_ptr<PeerTraffic> traffic)
    : key_(key), provider_(std::move(provider)), traffic_(std::move(traffic)), acceptor_(std::make_unique<Acceptor>(io)) {}

ChunkServer::~ChunkServer() { stop(); }

Result<uint16_t> ChunkServer::listen(const std::string& address) {
  return listen_on(acceptor_->acceptor, address, "data address");
}

void ChunkServer::start() {
  net::post(acceptor_->acceptor.get_executor(), [this] { accept(); });
}

// On the I/O pool: each connection gets its own (owned) thread.
void ChunkServer::accept() {
  acceptor_->acceptor.async_accept([this](boost::system::error_code ec, net::ip::tcp::socket socket) {
    if (ec == net::error::operation_aborted || stopping_) return;
    join_finished();
    if (!ec) {
      UniqueFd fd(socket.release(ec));
      // Serving threads use blocking reads bounded by socket timeouts.
      if (fd.valid()) ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
      if (fd.valid()) start_connection(std::move(fd));
    }
    accept();
  });
}

void ChunkServer::start_connection(UniqueFd fd) {
  std::lock_guard lock(mu_);
  if (connections_.size() >= kMaxConnections) {
    ++traffic_->connections_refused;  // closed on leaving scope
    return;
  }
  Connection& connection = connections_.emplace_back();
  try {
    connection.thread = std::thread([this, &connection, fd = std::move(fd)]() mutable {
      guarded("a peer connection", [&] {  // one bad frame or handler ends this stream, never the node
        serve(std::move(fd));
        return Status::Ok();
      });
      std::lock_guard lock(mu_);
      connection.done = true;  // the last thing this thread does with the server
    });
  } catch (...) {  // no thread to spare: refuse this connection
    connections_.pop_back();
    ++traffic_->connections_refused;
    internal_error("starting a peer connection");
  }
}

// Joins the threads of connections that ended; they have returned, so
// this never waits (I/O pool).
void ChunkServer::join_finished() {
  std::list<Connection> finished;
  {
    std::lock_guard lock(mu_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      auto next = std::next(it);
      if (it->done) finished.splice(finished.end(), connections_, it);
      it = next;
    }
  }
  for (auto& c : finished) c.thread.join();
}

void ChunkServer::stop() {
  stopping_ = true;
  boost::system::error_code ignored;
  acceptor_->acceptor.close(ignored);
  // No connection starts any more: wake every serving thread (their sockets
  // fail, turn waits see stopping_) and join them all.
  {
    std::lock_guard lock(mu_);
    idle_.notify_all();
    for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
  }
  std::list<Connection> connections;
  {
    std::lock_guard lock(mu_);
    connections.swap(connections_);
  }
  for (auto& c : connections) c.thread.join();
}

void ChunkServer::serve(UniqueFd fd) {
  const int raw = fd.get();
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    open_.insert(raw);
  }
  struct Unregister {
    ChunkServer* server;
    int fd;
    ~Unregister() {
      std::lock_guard lock(server->mu_);
      server->open_.erase(fd);
    }
  } unregister{this, raw};
  auto channel = SecureChannel::server(std::move(fd), key_, kHandshakeTimeout);
  if (!channel) {
    ++traffic_->handshakes_refused;  // no site key: nothing is served
    return;
  }
  // After the handshake, allow long idle gaps between pipelined requests.
  channel->set_timeout(kIdleTimeout);
  while (!stopping_) {
    auto frame = channel->receive();
    if (!frame) return;
    wire::ChunkRequest request;
    if (!request.ParseFromArray(frame->header.data(), static_cast<int>(frame->header.size()))) return;
    ChunkReply reply;
    bool peer_gone = false;
    reply = answer(*channel, request, peer_gone);
    if (peer_gone) return;
    reply.header.set_id(request.id());
    traffic_->bytes_served += reply.length;
    ++traffic_->requests_served;
    auto read_chunk = [&](uint64_t offset, unsigned char* into, size_t size) {
      return pread_exact(reply.fd.get(), into, size, reply.offset + offset, "a chunk");
    };
    if (reply.length == 0) {
      if (!channel->send(reply.header.SerializeAsString())) return;
      continue;
    }
    // At most kMaxChunkSends chunks are sent at once, however many peers
    // ask, so memory and CPU stay bounded in a large site. A peer that stops
    // reading holds its turn for kChunkSendTimeout at most.
    {
      std::unique_lock lock(mu_);
      idle_.wait(lock, [&] { return sending_ < kMaxChunkSends || stopping_; });
      ++sending_;
    }
    channel->set_timeout(kChunkSendTimeout);
    bool sent = channel->send(reply.header.SerializeAsString(), reply.length, read_chunk).ok();
    channel->set_timeout(kIdleTimeout);
    {
      std::lock_guard lock(mu_);
      --sending_;
      idle_.notify_all();
    }
    if (!sent) return;
  }
}

ChunkReply ChunkServer::answer(SecureChannel& channel, const wire::ChunkRequest& request, bool& peer_gone) {
  if (!request.fetch()) return provider_(request);
  // The provider may wait on the uplink for long: say so every few seconds,
  // so the asker keeps waiting for a live peer and gives up quickly on a
  // dead one. The helper thread is joined before this returns.
  std::packaged_task<ChunkReply()> task([&] { return provider_(request); });
  auto pending = task.get_future();
  std::thread helper(std::move(task));
  while (pending.wait_for(kWorkingInterval) != std::future_status::ready) {
    wire::ChunkResponse working;
    working.set_id(request.id());
    working.set_status(wire::ChunkResponse::WORKING);
    if (!peer_gone && !channel.send(working.SerializeAsString())) peer_gone = true;
  }
  helper.join();
  return pending.get();  // rethrows what the provider threw
}

void ChunkClient::cancel_all() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  for (int fd : busy_) ::shutdown(fd, SHUT_RDWR);
  idle_.clear();
}

Result<wire::ChunkResponse> ChunkClient::fetch(const std::string& address, const wire::ChunkRequest& request,
                                               std::chrono::milliseconds timeout, const ChunkSink* sink) {
  std::unique_ptr<SecureChannel> channel;
  {
    std::lock_guard lock(mu_);
    auto& idle = idle_[address];
    if (!idle.empty()) {
      channel = std::move(idle.back());
      idle.pop_back();
    }
  }
  wire::ChunkResponse answer;
  bool note = false, answered = false;
  uint64_t received = 0;
  // "Still working" notes are skipped: each one proves the peer alive (and
  // resets the stall bound, which applies per read).
  FrameSink frames{[&](std::string_view header, uint64_t length) -> Status {
                     if (!answer.ParseFromArray(header.data(), static_cast<int>(header.size())) ||
                         answer.id() != request.id())
                       return Status{Errc::io_error, "malformed chunk response from " + address};
                     note = answer.status() == wire::ChunkResponse::WORKING;
                     if (note && length > 0) return Status{Errc::io_error, "malformed chunk response from " + address};
                     if (note) return Status::Ok();
                     answered = true;
                     if (length > 0 && !sink) return Status{Errc::io_error, "unexpected chunk bytes from " + address};
                     return sink && sink->begin ? sink->begin(answer, length) : Status::Ok();
                   },
                   [&](const unsigned char* data, size_t size) {
                     received += size;
                     return sink->bytes ? sink->bytes(data, size) : Status::Ok();
                   }};
  // While a fetch runs its socket is listed, so cancel_all() can end it.
  int listed = -1;
  auto unlist = [&] {
    std::lock_guard lock(mu_);
    busy_.erase(listed);
    listed = -1;
  };
  struct Unlist {
    std::function<void()> run;
    ~Unlist() { run(); }
  } unlist_at_exit{unlist};
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = channel != nullptr;
    // The socket is listed from before the handshake on: a peer that
    // accepted but does not answer (it is stopping too) must not hold this
    // node's stop for the handshake's whole timeout.
    auto list = [&](int fd) {
      std::lock_guard lock(mu_);
      if (cancelled_) return false;
      busy_.insert(listed = fd);
      return true;
    };
    if (!channel) {
      auto fd = connect_tcp(address, std::chrono::milliseconds(2000));
      if (!fd) return fd.status();
      if (!list(fd->get())) return Status{Errc::io_error, "the node is stopping"};
      auto ch = SecureChannel::client(std::move(*fd), key_, timeout);
      if (!ch) return ch.status();
      channel = std::make_unique<SecureChannel>(std::move(*ch));
    } else if (!list(channel->socket())) {
      return Status{Errc::io_error, "the node is stopping"};
    }
    channel->set_timeout(timeout);  // pooled channels serve callers with different stall bounds
    Status got = channel->send(request.SerializeAsString());  // requests carry no payload
    do {
      if (got) got = channel->receive(frames);
    } while (got && note);
    traffic_->bytes_fetched += received;
    unlist();
    if (!got) {
      channel.reset();
      // A pooled connection that had gone stale fails at once: retry once on
      // a fresh one. A peer that stalled past the bound is not asked again,
      // nor one whose answer had begun (the sink has seen its bytes).
      if (reused && !answered && got.code != Errc::timed_out) continue;
      return got;
    }
    std::lock_guard lock(mu_);
    auto& idle = idle_[address];
    if (idle.size() < 8) idle.push_back(std::move(channel));
    return answer;
  }
  return Status{Errc::io_error, "cannot fetch a chunk from " + address};
}

}  // namespace ep::transfer
