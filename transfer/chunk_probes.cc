// ChunkClient::probe_all: many peers asked about one blob at once, each
// probe a chain of Asio handlers on one private event loop that the calling
// thread runs (no thread per peer). A probe takes an idle pooled connection
// or connects and does the handshake (frame_codec.h), sends its request,
// skips WORKING notes, and reads the answer whole: a probe's answer carries
// no chunk bytes. Every read and write is bounded by the stall timeout; a
// stale pooled connection is replaced once, as in fetch().
#include <arpa/inet.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <algorithm>
#include <cstring>
#include <functional>
#include <optional>

#include "transfer/chunk_service.h"

namespace ep::transfer {

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;

constexpr std::chrono::milliseconds kConnectTimeout{2000};  // as fetch()
// Probes in flight at once: each may hold a socket, and a site may be large.
constexpr size_t kMaxProbesInFlight = 64;

Result<tcp::endpoint> endpoint_of(const std::string& address) {
  auto found = resolve_tcp(address);
  if (!found) return found.status();
  tcp::endpoint endpoint;
  std::memcpy(endpoint.data(), found->get(), found->size);
  endpoint.resize(found->size);
  return endpoint;
}

struct Probe {
  Probe(net::io_context& loop, ChunkClient& client, const std::string& address, const std::string& request,
        uint64_t id, std::chrono::milliseconds timeout, std::function<void()> ended)
      : client(client), address(address), request(request), id(id), timeout(timeout), socket(loop), timer(loop),
        ended(std::move(ended)) {}

  ChunkClient& client;
  const std::string& address;
  const std::string& request;  // serialized ChunkRequest
  uint64_t id;
  std::chrono::milliseconds timeout;
  tcp::socket socket;
  net::steady_timer timer;
  std::function<void()> ended;  // starts the next probe waiting for a place
  SecureChannel::State session;  // keys and counters; the socket is `socket` while probing
  std::optional<Handshake> handshake;
  unsigned char peer_public[kPublicKeyBytes], peer_proof[kProofBytes];
  std::array<unsigned char, kProofBytes> proof{};
  std::string out;
  uint32_t length = 0;
  std::vector<unsigned char> in;
  bool reused = false, stalled = false, done = false;
  Result<wire::ChunkResponse> result = Status{Errc::io_error, "not asked"};

  void start() {
    if (auto idle = client.take_idle(address)) {
      session = std::move(*idle).release();
      error_code ec;
      sockaddr_storage local{};
      socklen_t size = sizeof local;
      ::getsockname(session.fd.get(), reinterpret_cast<sockaddr*>(&local), &size);
      socket.assign(local.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), session.fd.get(), ec);
      if (!ec) {
        session.fd.release();  // the socket owns it until the probe ends
        reused = true;
        return send_request();
      }
      session = {};  // unusable: closed with the state
    }
    connect();
  }

  void connect() {
    reused = false;
    auto endpoint = endpoint_of(address);
    if (!endpoint) return end(endpoint.status());
    arm(kConnectTimeout);
    socket.async_connect(*endpoint, [this](error_code ec) {
      if (ec) return failed("cannot connect to", ec);
      socket.set_option(tcp::no_delay(true), ec);
      begin_handshake();
    });
  }

  void begin_handshake() {
    handshake.emplace(true);
    arm(timeout);
    net::async_write(socket, net::buffer(handshake->public_key(), kPublicKeyBytes), [this](error_code ec, size_t) {
      if (ec) return failed("handshake with", ec);
      net::async_read(socket, net::buffer(peer_public), [this](error_code ec, size_t) {
        if (ec) return failed("handshake with", ec);
        proof = handshake->proof(peer_public, client.key());
        net::async_write(socket, net::buffer(proof), [this](error_code ec, size_t) {
          if (ec) return failed("handshake with", ec);
          net::async_read(socket, net::buffer(peer_proof), [this](error_code ec, size_t) {
            if (ec) return failed("handshake with", ec);
            session = {};
            if (auto s = handshake->finish(peer_public, peer_proof, client.key(), session.rx, session.tx); !s)
              return end(s);
            send_request();
          });
        });
      });
    });
  }

  void send_request() {
    FrameWriter frame(session.tx, session.tx_counter++, request, 0);
    out.clear();
    while (!frame.done()) {
      auto piece = frame.next({});
      if (!piece) return end(piece.status());
      out.append(reinterpret_cast<const char*>(piece->first), piece->second);
    }
    arm(timeout);
    net::async_write(socket, net::buffer(out), [this](error_code ec, size_t) {
      if (ec) return failed("cannot send a probe to", ec);
      read_answer();
    });
  }

  // Frames until the answer: "still working" notes only prove the peer alive.
  void read_answer() {
    arm(timeout);
    net::async_read(socket, net::buffer(&length, sizeof length), [this](error_code ec, size_t) {
      if (ec) return failed("no answer to a probe from", ec);
      length = ntohl(length);
      if (length < kTagBytes + 4 || length > kMaxFrame + kTagBytes)
        return end(Status{Errc::io_error, "bad frame length from " + address});
      in.resize(length);
      net::async_read(socket, net::buffer(in), [this](error_code ec, size_t) {
        if (ec) return failed("no answer to a probe from", ec);
        auto header = open_whole_frame(session.rx, session.rx_counter++, in.data(), in.size());
        if (!header) return end(header.status());
        wire::ChunkResponse answer;
        if (!answer.ParseFromString(*header) || answer.id() != id)
          return end(Status{Errc::io_error, "malformed chunk response from " + address});
        if (answer.status() == wire::ChunkResponse::WORKING) return read_answer();
        answered(std::move(answer));
      });
    });
  }

  void arm(std::chrono::milliseconds bound) {
    timer.expires_after(bound);
    timer.async_wait([this](error_code ec) {
      if (ec) return;  // re-armed or ended
      stalled = true;
      error_code ignored;
      socket.close(ignored);  // the pending read or write fails at once
    });
  }

  void failed(const std::string& what, error_code ec) {
    // A pooled connection that went stale fails at once: one fresh try.
    // One that stalled past the bound is not asked again.
    if (reused && !stalled) {
      error_code ignored;
      socket.close(ignored);
      return connect();
    }
    if (stalled) return end(Status{Errc::timed_out, "probe of " + address + " timed out"});
    end(Status{Errc::io_error, what + " " + address + ": " + ec.message()});
  }

  void answered(wire::ChunkResponse answer) {
    result = std::move(answer);
    done = true;
    ended();
    error_code ec;
    timer.cancel(ec);
    const int fd = socket.release(ec);
    if (ec) return;
    session.fd = UniqueFd(fd);
    client.return_idle(address, std::make_unique<SecureChannel>(SecureChannel::adopt(std::move(session))));
  }

  void end(Status status) {
    result = std::move(status);
    done = true;
    ended();
    error_code ignored;
    timer.cancel(ignored);
    socket.close(ignored);
  }
};

}  // namespace

std::vector<Result<wire::ChunkResponse>> ChunkClient::probe_all(const std::vector<std::string>& addresses,
                                                                const wire::ChunkRequest& request,
                                                                std::chrono::milliseconds timeout) {
  // The loop outlives the probes: their sockets and timers close first, and
  // handlers a stop left queued are destroyed with it, never run.
  net::io_context loop(1);
  const std::string serialized = request.SerializeAsString();
  std::vector<std::unique_ptr<Probe>> probes;
  size_t next = 0;
  // Posted, so a probe that ends at once does not start the next one inside its own call.
  auto start_next = [&] {
    net::post(loop, [&] {
      if (next < probes.size()) probes[next++]->start();
    });
  };
  for (const auto& address : addresses)
    probes.push_back(std::make_unique<Probe>(loop, *this, address, serialized, request.id(), timeout, start_next));
  {
    std::lock_guard lock(mu_);
    if (cancelled_) return std::vector<Result<wire::ChunkResponse>>(addresses.size(), Status::Stopping(Errc::io_error));
    probing_.insert(&loop);
  }
  for (size_t i = 0; i < std::min(kMaxProbesInFlight, probes.size()); ++i) start_next();
  loop.run();
  {
    std::lock_guard lock(mu_);
    probing_.erase(&loop);
  }
  std::vector<Result<wire::ChunkResponse>> answers;
  for (auto& probe : probes)
    answers.push_back(probe->done ? std::move(probe->result) : Result<wire::ChunkResponse>(Status::Stopping(Errc::io_error)));
  return answers;
}

}  // namespace ep::transfer
