#include "transfer/chunk_service.h"

#include <sys/socket.h>

#include <boost/asio/io_context.hpp>

namespace ep::transfer {

void ChunkClient::cancel_all() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  for (int fd : busy_) ::shutdown(fd, SHUT_RDWR);
  for (auto* loop : probing_) loop->stop();
  idle_.clear();
}

std::unique_ptr<SecureChannel> ChunkClient::take_idle(const std::string& address) {
  std::lock_guard lock(mu_);
  auto it = idle_.find(address);
  if (it == idle_.end() || it->second.empty()) return nullptr;
  auto channel = std::move(it->second.back());
  it->second.pop_back();
  return channel;
}

void ChunkClient::return_idle(const std::string& address, std::unique_ptr<SecureChannel> channel) {
  std::lock_guard lock(mu_);
  if (cancelled_) return;
  auto& idle = idle_[address];
  if (idle.size() < kMaxIdlePerAddress) idle.push_back(std::move(channel));
}

Result<wire::ChunkResponse> ChunkClient::fetch(const std::string& address, const wire::ChunkRequest& request,
                                               std::chrono::milliseconds timeout, const ChunkSink* sink) {
  std::unique_ptr<SecureChannel> channel = take_idle(address);
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
  // The socket is listed from before the handshake on: a peer that accepted
  // but does not answer (it is stopping too) must not hold this node's stop
  // for the handshake's whole timeout.
  auto list = [&](int fd) {
    std::lock_guard lock(mu_);
    if (cancelled_) return false;
    busy_.insert(listed = fd);
    return true;
  };
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = channel != nullptr;
    if (!channel) {
      auto fd = connect_tcp(address, std::chrono::milliseconds(2000));
      if (!fd) return fd.status();
      if (!list(fd->get())) return Status::Stopping(Errc::io_error);
      auto ch = SecureChannel::client(std::move(*fd), key_, timeout);
      if (!ch) return ch.status();
      channel = std::make_unique<SecureChannel>(std::move(*ch));
    } else if (!list(channel->socket())) {
      return Status::Stopping(Errc::io_error);
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
    return_idle(address, std::move(channel));
    return answer;
  }
  return Status{Errc::io_error, "cannot fetch a chunk from " + address};
}

}  // namespace ep::transfer
