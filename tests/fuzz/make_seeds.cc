// make_seeds: writes the seeds the crypto harnesses need that only the code
// can make, into <corpus dir>/envelope and <corpus dir>/secure_channel:
// sealed envelopes, their inner wire::Sealed and wire::Envelope forms (see
// fuzz_envelope.cc for the leading mode byte), and a recorded secure-channel
// handshake in both directions plus a genuine frame (see
// fuzz_secure_channel.cc). Keys, clock and randomness are the harnesses'
// (fuzz_fixtures.h), so the handshakes and the frame verify when replayed.
// Run by hand after a change to either format; the output is committed:
//   build-fuzz/bin/fuzz_make_seeds tests/fuzz/corpus
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "fuzz_fixtures.h"

using namespace ep;
using namespace ep::transfer;

namespace {

void write_seed(const std::string& dir, const std::string& name, char mode, const std::string& body) {
  std::ofstream(dir + "/" + name, std::ios::binary) << mode << body;
}

wire::Envelope hello(const std::string& name, const std::string& key) {
  wire::Envelope e;
  e.set_sender(name);
  e.set_sent_ms(fuzz::kNowMs);
  e.set_incarnation(1699999990000);
  auto* m = e.mutable_hello();
  m->set_name(name);
  m->set_cluster_address("10.0.0.1:7946");
  m->set_registry_address("10.0.0.1:5000");
  m->set_data_address("10.0.0.1:7947");
  m->set_incarnation(1699999990000);
  m->set_identity_key(key);
  m->add_holds("library/alpine@sha256:" + std::string(64, 'a'));
  m->set_peers(2);
  auto* b = m->add_blobs();
  b->set_digest("sha256:" + std::string(64, 'b'));
  b->set_chunks(std::string("\x0f", 1));
  return e;
}

wire::Envelope delta() {
  wire::Envelope e;
  e.set_sender(fuzz::kSelfName);
  e.set_sent_ms(fuzz::kNowMs);
  e.set_incarnation(1699999990000);
  auto* d = e.mutable_delta();
  auto* tag = d->add_tags();
  tag->mutable_key()->set_repo("library/alpine");
  tag->mutable_key()->set_tag("3.19");
  tag->set_digest("sha256:" + std::string(64, 'c'));
  tag->mutable_ts()->set_wall_ms(fuzz::kNowMs);
  tag->mutable_ts()->set_node(fuzz::kSelfName);
  return e;
}

void envelope_seeds(const std::string& dir) {
  const auto self = fuzz::identity(1), stranger = fuzz::identity(2);
  site::Sealer ours(fuzz::site_key(), self, fuzz::kSelfName), theirs(fuzz::site_key(), stranger, "node-b");
  write_seed(dir, "sealed-hello", 0, ours.seal(hello(fuzz::kSelfName, self.public_key)));
  write_seed(dir, "sealed-hello-unpinned", 0, theirs.seal(hello("node-b", stranger.public_key)));
  wire::Envelope members;
  members.set_sender("node-b");
  members.set_sent_ms(fuzz::kNowMs);
  *members.mutable_members()->add_members() = hello("node-b", stranger.public_key).hello();
  write_seed(dir, "sealed-members-unpinned", 0, theirs.seal(members));
  // The plaintext of a sealed delta: sender, signature, envelope.
  wire::Sealed inner;
  inner.set_sender(fuzz::kSelfName);
  inner.set_envelope(delta().SerializeAsString());
  std::string signature(crypto_sign_BYTES, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(signature.data()), nullptr,
                       reinterpret_cast<const unsigned char*>(inner.envelope().data()), inner.envelope().size(),
                       reinterpret_cast<const unsigned char*>(self.secret_key.data()));
  inner.set_signature(signature);
  write_seed(dir, "plain-sealed-delta", 1, inner.SerializeAsString());
  write_seed(dir, "envelope-delta", 2, delta().SerializeAsString());
  write_seed(dir, "envelope-hello", 2, hello(fuzz::kSelfName, self.public_key).SerializeAsString());
}

std::pair<UniqueFd, UniqueFd> socket_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// A client (stream seed `client_seed`) and a server (`server_seed`) shake
// hands through a relay that records each direction; then the client sends
// one frame. Returns {client -> server bytes, server -> client bytes}.
std::pair<std::string, std::string> record(uint64_t client_seed, uint64_t server_seed) {
  auto [client_fd, client_relay] = socket_pair();
  auto [server_fd, server_relay] = socket_pair();
  std::string up, down;
  std::atomic<bool> done{false};
  std::thread relay([&, c = client_relay.get(), s = server_relay.get()] {
    pollfd fds[2] = {{c, POLLIN, 0}, {s, POLLIN, 0}};
    char buffer[65536];
    while (!done) {
      if (::poll(fds, 2, 20) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (!(fds[i].revents & POLLIN)) continue;
        auto n = ::read(fds[i].fd, buffer, sizeof buffer);
        if (n <= 0) continue;
        (i == 0 ? up : down).append(buffer, static_cast<size_t>(n));
        if (::write(fds[1 - i].fd, buffer, static_cast<size_t>(n)) != n) std::abort();
      }
    }
  });
  const std::chrono::milliseconds timeout(5000);
  Result<SecureChannel> client(Status{Errc::io_error, "not run"});
  std::thread client_side([&, fd = std::move(client_fd)]() mutable {
    fuzz::FixedRandom::reset(client_seed);
    client = SecureChannel::client(std::move(fd), fuzz::data_key(), timeout);
  });
  fuzz::FixedRandom::reset(server_seed);
  auto server = SecureChannel::server(std::move(server_fd), fuzz::data_key(), timeout);
  client_side.join();
  if (!client || !server) std::abort();
  const std::string payload(300, 'p');
  auto sent = client->send("chunk-response", payload.size(), [&](uint64_t offset, unsigned char* into, size_t n) {
    std::memcpy(into, payload.data() + offset, n);
    return Status::Ok();
  });
  auto frame = server->receive();
  if (!sent || !frame || frame->payload != payload) std::abort();
  done = true;
  relay.join();
  return {up, down};
}

std::string u16(size_t v) { return {static_cast<char>(v & 0xff), static_cast<char>(v >> 8)}; }

void channel_seeds(const std::string& dir) {
  // Mode 0 / 1: the harness's own side always starts from kServerSeed.
  const auto to_server = record(fuzz::kClientSeed, fuzz::kServerSeed).first;
  write_seed(dir, "handshake-to-server", 0, to_server.substr(0, 64));
  write_seed(dir, "handshake-to-client", 1, record(fuzz::kServerSeed, fuzz::kClientSeed).second.substr(0, 64));
  // Mode 2, raw op: a genuine frame as recorded on the wire.
  write_seed(dir, "frame-raw-genuine", 2, std::string(1, 2) + to_server.substr(64));
  // Mode 2 scripts.
  const std::string genuine(1, 0), tampered(1, 1), end(1, 3);
  write_seed(dir, "frames-genuine", 2,
             genuine + u16(5) + u16(100) + "hello" + genuine + u16(0) + u16(0) + genuine + u16(14) + u16(16384) +
                 "chunk-response" + end);
  write_seed(dir, "frames-tampered", 2,
             genuine + u16(4) + u16(10) + "note" + tampered + u16(4) + u16(10) + "note" + u16(9) + "\x40");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  fuzz::FixedRandom::install();
  const std::string corpus = argv[1];
  envelope_seeds(corpus + "/envelope");
  channel_seeds(corpus + "/secure_channel");
  return 0;
}
