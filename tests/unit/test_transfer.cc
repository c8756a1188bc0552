// Data plane: rendezvous planning, encrypted peer streams, chunk service.
#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "dataplane/chunk_journal.h"
#include "site/chunk_plan.h"
#include "base/blocking_pool.h"
#include "transfer/chunk_server.h"

using namespace ep;

TEST_CASE("chunk ranges cover the blob exactly") {
  CHECK(site::chunk_count(0, 4) == 1);
  CHECK(site::chunk_count(8, 4) == 2);
  CHECK(site::chunk_count(9, 4) == 3);
  auto last = site::chunk_range(9, 4, 2);
  CHECK(last.offset == 8);
  CHECK(last.length == 1);
}

TEST_CASE("rendezvous order: same everywhere, spread evenly, stable when a member leaves") {
  std::vector<std::string> members;
  for (int i = 0; i < 6; ++i) members.push_back("node" + std::to_string(i));
  std::map<std::string, int> designated;
  for (uint64_t chunk = 0; chunk < 6000; ++chunk) {
    auto order = site::rendezvous_order("sha256:abc", chunk, members);
    auto reversed = members;
    std::reverse(reversed.begin(), reversed.end());
    REQUIRE(order == site::rendezvous_order("sha256:abc", chunk, reversed));  // input order does not matter
    ++designated[order[0]];
    // Without node3, every chunk keeps its fetcher unless node3 had it.
    auto without = members;
    without.erase(without.begin() + 3);
    auto order2 = site::rendezvous_order("sha256:abc", chunk, without);
    if (order[0] != "node3") REQUIRE(order2[0] == order[0]);
    else REQUIRE(order2[0] == order[1]);
  }
  for (auto& [name, count] : designated) CHECK(count > 800);  // ~1000 each
}

namespace {
transfer::DataKey key_of(unsigned char fill) {
  transfer::DataKey k;
  k.fill(fill);
  return k;
}

// A fetch whose chunk bytes are collected in `bytes`.
Result<wire::ChunkResponse> fetch_into(transfer::ChunkClient& client, const std::string& address,
                                       const wire::ChunkRequest& request, std::string& bytes,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(2)) {
  bytes.clear();
  transfer::ChunkSink sink{{}, [&](const unsigned char* data, size_t n) {
                             bytes.append(reinterpret_cast<const char*>(data), n);
                             return Status::Ok();
                           }};
  return client.fetch(address, request, timeout, &sink);
}

// Handshakes a client and a server channel over a socketpair.
std::pair<transfer::SecureChannel, transfer::SecureChannel> channel_pair(int client_fd, int server_fd) {
  Result<transfer::SecureChannel> server = Status{Errc::io_error, "not run"};
  std::thread t([&] { server = transfer::SecureChannel::server(UniqueFd(server_fd), key_of(1), std::chrono::seconds(2)); });
  auto client = transfer::SecureChannel::client(UniqueFd(client_fd), key_of(1), std::chrono::seconds(2));
  t.join();
  REQUIRE(client.ok());
  REQUIRE(server.ok());
  return {std::move(*client), std::move(*server)};
}
}  // namespace

TEST_CASE("secure channel: a peer without the key is refused; frames round-trip") {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  auto [client_channel, server_channel] = channel_pair(pair[0], pair[1]);
  auto* client = &client_channel;
  auto* server = &server_channel;
  // Several slices and a partial one; each byte tells its offset.
  std::string big((3 << 20) + 12345, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 4096);
  Result<transfer::Frame> got = Status{Errc::io_error, "not received"};
  std::thread reader([&] { got = server->receive(); });
  REQUIRE(client->send("head", big.size(), [&](uint64_t offset, unsigned char* into, size_t n) {
                  std::memcpy(into, big.data() + offset, n);
                  return Status::Ok();
                }).ok());
  reader.join();
  REQUIRE(got.ok());
  CHECK(got->header == "head");
  CHECK(got->payload == big);
  std::thread reader2([&] { got = server->receive(); });
  REQUIRE(client->send("only a header").ok());
  reader2.join();
  REQUIRE(got.ok());
  CHECK(got->header == "only a header");
  CHECK(got->payload.empty());

  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  Result<transfer::SecureChannel> refused = Status{Errc::io_error, "not run"};
  std::thread t2([&] { refused = transfer::SecureChannel::server(UniqueFd(pair[1]), key_of(1), std::chrono::seconds(2)); });
  auto intruder = transfer::SecureChannel::client(UniqueFd(pair[0]), key_of(2), std::chrono::seconds(2));
  t2.join();
  CHECK_FALSE(intruder.ok());
  CHECK_FALSE(refused.ok());
}

TEST_CASE("secure channel: a payload byte altered in transit fails the frame after its slices were delivered") {
  // client -> [a relay that flips one byte deep in the payload] -> server
  int to_relay[2], to_server[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, to_relay) == 0);
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, to_server) == 0);
  constexpr size_t kHandshakeBytes = 64;  // X25519 key + transcript MAC
  const size_t flip_at = kHandshakeBytes + 4 + 4 + 4 + 700000;  // in the third slice of the payload
  std::thread relay_out([&] {  // client -> server, one byte altered
    char buffer[65536];
    size_t seen = 0;
    for (ssize_t n; (n = ::read(to_relay[1], buffer, sizeof buffer)) > 0; seen += static_cast<size_t>(n)) {
      if (flip_at >= seen && flip_at < seen + static_cast<size_t>(n)) buffer[flip_at - seen] ^= 1;
      if (::write(to_server[0], buffer, static_cast<size_t>(n)) != n) break;
    }
    ::shutdown(to_server[0], SHUT_WR);
  });
  std::thread relay_back([&] {  // server -> client, unchanged
    char buffer[4096];
    for (ssize_t n; (n = ::read(to_server[0], buffer, sizeof buffer)) > 0;)
      if (::write(to_relay[1], buffer, static_cast<size_t>(n)) != n) break;
  });
  auto [client, server] = channel_pair(to_relay[0], to_server[1]);
  std::string payload(1 << 20, 'p');
  uint64_t delivered = 0;
  Status received = Status{Errc::io_error, "not received"};
  std::thread reader([&] {
    received = server.receive(transfer::FrameSink{
        {}, [&](const unsigned char*, size_t n) { delivered += n; return Status::Ok(); }});
  });
  REQUIRE(client.send("head", payload.size(), [&](uint64_t offset, unsigned char* into, size_t n) {
                  std::memcpy(into, payload.data() + offset, n);
                  return Status::Ok();
                }).ok());
  reader.join();
  CHECK(delivered == payload.size());  // the slices went to the sink, unauthenticated ...
  CHECK_FALSE(received.ok());          // ... and the frame as a whole is refused
  CHECK(received.message.find("authentication") != std::string::npos);
  ::shutdown(to_relay[0], SHUT_RDWR);
  ::shutdown(to_server[1], SHUT_RDWR);
  relay_out.join();
  relay_back.join();
  for (int fd : {to_relay[1], to_server[0]}) ::close(fd);
}

TEST_CASE("chunk service answers members and refuses intruders") {
  auto traffic = std::make_shared<transfer::PeerTraffic>();
  // Chunk i of the served file is 1000 bytes of 'a' + i.
  std::string content;
  for (int i = 0; i < 5; ++i) content += std::string(1000, static_cast<char>('a' + i));
  UniqueFd file(::memfd_create("chunks", 0));
  REQUIRE(::write(file.get(), content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  IoPool io(1);  // the node's I/O pool, here of one thread
  BlockingPool providers(4);
  transfer::ChunkServer server(io, providers, key_of(7), [&](const wire::ChunkRequest& r) {
    transfer::ChunkReply reply;
    reply.fd = UniqueFd(::dup(file.get()));
    reply.offset = r.index() * r.chunk_size();
    reply.length = r.chunk_size();
    return reply;
  }, traffic);
  auto port = server.listen("127.0.0.1:0");
  REQUIRE(port.ok());
  server.start();
  io.start();
  std::string address = "127.0.0.1:" + std::to_string(*port);
  transfer::ChunkClient member(key_of(7), traffic);
  for (uint32_t i = 0; i < 5; ++i) {  // reuses one connection
    wire::ChunkRequest request;
    request.set_id(i + 1);
    request.set_index(i);
    request.set_chunk_size(1000);
    std::string bytes;
    auto r = fetch_into(member, address, request, bytes);
    REQUIRE(r.ok());
    CHECK(bytes == std::string(1000, static_cast<char>('a' + i)));
  }
  transfer::ChunkClient intruder(key_of(8), std::make_shared<transfer::PeerTraffic>());
  wire::ChunkRequest request;
  request.set_id(1);
  request.set_chunk_size(10);
  CHECK_FALSE(intruder.fetch(address, request, std::chrono::seconds(2)).ok());
  // The intruder gave up on the server's proof; the server checks the
  // intruder's on its own strand, a moment later.
  for (int i = 0; i < 200 && traffic->handshakes_refused == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  io.stop();  // as the Node does: I/O and the provider pool first, then the server
  providers.stop();
  server.stop();
  CHECK(traffic->handshakes_refused >= 1);
  CHECK(traffic->requests_served == 5);
}

TEST_CASE("chunk service: garbage frames and a handler that throws end one stream, never the node") {
  auto traffic = std::make_shared<transfer::PeerTraffic>();
  UniqueFd file(::memfd_create("chunks", 0));
  REQUIRE(::write(file.get(), std::string(100, 'x').data(), 100) == 100);
  IoPool io(1);  // the node's I/O pool, here of one thread
  BlockingPool providers(4);
  transfer::ChunkServer server(io, providers, key_of(7), [&](const wire::ChunkRequest& r) -> transfer::ChunkReply {
    if (r.index() == 99) throw std::runtime_error("a bug reached by a peer's request");
    transfer::ChunkReply reply;
    reply.fd = UniqueFd(::dup(file.get()));
    reply.length = 100;
    return reply;
  }, traffic);
  auto port = server.listen("127.0.0.1:0");
  REQUIRE(port.ok());
  server.start();
  io.start();
  const std::string address = "127.0.0.1:" + std::to_string(*port);
  // A member that sends frames that are not requests: its stream is closed.
  for (std::string garbage : {std::string("\xff\xfe\x00garbage"), std::string(5000, '\xff')}) {
    auto fd = transfer::connect_tcp(address, std::chrono::seconds(2));
    REQUIRE(fd.ok());
    auto channel = transfer::SecureChannel::client(std::move(*fd), key_of(7), std::chrono::seconds(2));
    REQUIRE(channel.ok());
    CHECK(channel->send(garbage).ok());
    CHECK_FALSE(channel->receive().ok());  // closed, not answered
  }
  transfer::ChunkClient member(key_of(7), traffic);
  wire::ChunkRequest request;
  request.set_id(1);
  request.set_chunk_size(100);
  request.set_index(99);
  std::string bytes;
  CHECK_FALSE(fetch_into(member, address, request, bytes).ok());  // the handler threw: that stream ends
  request.set_index(0);
  auto r = fetch_into(member, address, request, bytes);
  REQUIRE(r.ok());
  CHECK(bytes == std::string(100, 'x'));
  io.stop();  // as the Node does: I/O and the provider pool first, then the server
  providers.stop();
  server.stop();  // returns: every connection thread ended
}

TEST_CASE("chunk journal: records chunks, survives a torn last line, rejects garbage") {
  UniqueFd fd(::memfd_create("journal", 0));
  auto blob = Digest::of("blob");
  auto journal = ChunkJournal::create(UniqueFd(::dup(fd.get())), blob, 10 << 20, 4 << 20);
  REQUIRE(journal);
  REQUIRE(journal->record(0, Digest::of("c0").str()));
  REQUIRE(journal->record(2, Digest::of("c2").str()));
  REQUIRE(journal->record(7, Digest::of("beyond the blob").str()));  // index out of range: ignored
  auto contents = ChunkJournal::read(fd.get());
  REQUIRE(contents);
  CHECK(contents->blob == blob.str());
  CHECK(contents->size == (10u << 20));
  CHECK(contents->chunk_size == (4u << 20));
  CHECK(contents->chunks == std::map<uint64_t, std::string>{{0, Digest::of("c0").str()}, {2, Digest::of("c2").str()}});
  // a write cut short by a crash: the partial entry is not believed
  std::string torn = "1 sha256:0123";
  REQUIRE(::write(fd.get(), torn.data(), torn.size()) == static_cast<ssize_t>(torn.size()));
  contents = ChunkJournal::read(fd.get());
  REQUIRE(contents);
  CHECK(contents->chunks.count(1) == 0);
  CHECK(contents->chunks.size() == 2);
  UniqueFd junk(::memfd_create("junk", 0));
  REQUIRE(::write(junk.get(), "not a journal\n", 14) == 14);
  CHECK_FALSE(ChunkJournal::read(junk.get()));
}

TEST_CASE("a designated fetcher that waits on the uplink longer than the asker's stall bound is not given up on") {
  auto traffic = std::make_shared<transfer::PeerTraffic>();
  UniqueFd file(::memfd_create("chunk", 0));
  REQUIRE(::write(file.get(), "abcd", 4) == 4);
  IoPool io(1);  // the node's I/O pool, here of one thread
  BlockingPool providers(4);
  transfer::ChunkServer server(io, providers, key_of(9), [&](const wire::ChunkRequest& r) {
    if (r.fetch()) std::this_thread::sleep_for(std::chrono::milliseconds(7000));  // a slow uplink
    transfer::ChunkReply reply;
    reply.fd = UniqueFd(::dup(file.get()));
    reply.length = 4;
    return reply;
  }, traffic);
  auto port = server.listen("127.0.0.1:0");
  REQUIRE(port.ok());
  server.start();
  io.start();
  transfer::ChunkClient client(key_of(9), traffic);
  wire::ChunkRequest request;
  request.set_id(1);
  request.set_chunk_size(4);
  request.set_fetch(true);
  // Stall bound 4 s: without the fetcher's WORKING notes (every 3 s) this times out.
  std::string bytes;
  auto r = fetch_into(client, "127.0.0.1:" + std::to_string(*port), request, bytes, std::chrono::seconds(4));
  REQUIRE(r.ok());
  CHECK(r->status() == wire::ChunkResponse::OK);
  CHECK(bytes == "abcd");
  io.stop();  // as the Node does: I/O and the provider pool first, then the server
  providers.stop();
  server.stop();
}

namespace {
size_t threads_now() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}
}  // namespace

TEST_CASE("chunk server: many peers' streams cost no thread each, and stop closes them all") {
  auto traffic = std::make_shared<transfer::PeerTraffic>();
  UniqueFd file(::memfd_create("chunk", 0));
  REQUIRE(::write(file.get(), std::string(4096, 'z').data(), 4096) == 4096);
  auto io = std::make_unique<IoPool>(1);
  BlockingPool providers(2);
  auto server = std::make_unique<transfer::ChunkServer>(*io, providers, key_of(5), [&](const wire::ChunkRequest&) {
    transfer::ChunkReply reply;
    reply.fd = UniqueFd(::dup(file.get()));
    reply.length = 4096;
    return reply;
  }, traffic);
  auto port = server->listen("127.0.0.1:0");
  REQUIRE(port.ok());
  server->start();
  io->start();
  const size_t before = threads_now();
  // 40 members connected at once, each with its stream open and asking.
  std::vector<transfer::SecureChannel> peers;
  for (int i = 0; i < 40; ++i) {
    auto fd = transfer::connect_tcp("127.0.0.1:" + std::to_string(*port), std::chrono::seconds(2));
    REQUIRE(fd.ok());
    auto channel = transfer::SecureChannel::client(std::move(*fd), key_of(5), std::chrono::seconds(5));
    REQUIRE(channel.ok());
    peers.push_back(std::move(*channel));
  }
  for (size_t i = 0; i < peers.size(); ++i) {
    wire::ChunkRequest request;
    request.set_id(i + 1);
    request.set_chunk_size(4096);
    REQUIRE(peers[i].send(request.SerializeAsString()).ok());
  }
  for (auto& peer : peers) {
    auto answer = peer.receive();
    REQUIRE(answer.ok());
    CHECK(answer->payload == std::string(4096, 'z'));
  }
  // At most the provider pool's two threads came; the streams themselves took none.
  CHECK(threads_now() <= before + 2);
  CHECK(traffic->requests_served == 40);
  // Stopped as the Node stops it, with every stream open: each is closed
  // (by the I/O pool freeing what its handlers held), none is left waiting.
  io->stop();
  providers.stop();
  server->stop();
  server.reset();
  io.reset();
  for (auto& peer : peers) {
    peer.set_timeout(std::chrono::seconds(2));
    auto after = peer.receive();
    REQUIRE_FALSE(after.ok());
    CHECK(after.status().code != Errc::timed_out);  // closed, not silent
  }
}

namespace {
// A peer's chunk server on loopback, stopped as the Node stops it (I/O and
// the provider pool first, then the server).
struct LoopbackChunkServer {
  IoPool io{1};
  BlockingPool providers{2};
  transfer::ChunkServer server;
  std::string address;
  LoopbackChunkServer(unsigned char key, transfer::ChunkProvider provider, std::shared_ptr<transfer::PeerTraffic> traffic,
                      const std::string& bind = "127.0.0.1:0")
      : server(io, providers, key_of(key), std::move(provider), std::move(traffic)) {
    auto port = server.listen(bind);
    REQUIRE(port.ok());
    server.start();
    io.start();
    address = "127.0.0.1:" + std::to_string(*port);
  }
  ~LoopbackChunkServer() {
    io.stop();
    providers.stop();
    server.stop();
  }
};
}  // namespace

TEST_CASE("probing many peers at once: answers in order, no thread each, a silent peer costs one stall bound") {
  auto traffic = std::make_shared<transfer::PeerTraffic>();
  UniqueFd file(::memfd_create("chunk", 0));
  REQUIRE(::write(file.get(), "abcd", 4) == 4);
  // "sha256:held" is held whole (a stat answer); anything else is missing;
  // a chunk request gets the file's four bytes.
  LoopbackChunkServer peer(3, [&](const wire::ChunkRequest& r) {
    transfer::ChunkReply reply;
    if (r.stat()) {
      reply.header.set_status(r.digest() == "sha256:held" ? wire::ChunkResponse::OK : wire::ChunkResponse::MISSING);
      reply.header.set_blob_size(4);
      return reply;
    }
    reply.fd = UniqueFd(::dup(file.get()));
    reply.length = 4;
    return reply;
  }, traffic);
  const std::string serving = peer.address;
  auto silent = transfer::listen_tcp("127.0.0.1:0", "test");  // accepts (the kernel does), never answers
  REQUIRE(silent.ok());
  const std::string silent_address = "127.0.0.1:" + std::to_string(silent->second);
  auto closed = transfer::listen_tcp("127.0.0.1:0", "test");
  REQUIRE(closed.ok());
  const std::string refused_address = "127.0.0.1:" + std::to_string(closed->second);
  closed->first.reset();  // nothing listens there now

  transfer::ChunkClient client(key_of(3), traffic);
  wire::ChunkRequest probe;
  probe.set_id(1);
  probe.set_stat(true);
  probe.set_digest("sha256:held");
  std::vector<std::string> addresses = {silent_address, refused_address};
  for (int i = 0; i < 100; ++i) addresses.push_back(serving);  // more than may be in flight at once
  const size_t threads_before = threads_now();
  const auto t0 = std::chrono::steady_clock::now();
  auto answers = client.probe_all(addresses, probe, std::chrono::milliseconds(1500));
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(answers.size() == addresses.size());
  REQUIRE_FALSE(answers[0].ok());
  CHECK(answers[0].status().code == Errc::timed_out);
  REQUIRE_FALSE(answers[1].ok());
  CHECK(answers[1].status().code == Errc::io_error);
  for (size_t i = 2; i < answers.size(); ++i) {
    REQUIRE(answers[i].ok());
    CHECK(answers[i]->status() == wire::ChunkResponse::OK);
    CHECK(answers[i]->blob_size() == 4);
  }
  CHECK(took < std::chrono::milliseconds(4000));     // one stall bound, not one per probe
  CHECK(threads_now() <= threads_before + 2);        // the provider pool's, if any: none for the probes

  // The probes' connections went back to the pool: a blocking fetch and
  // another round use them, their sessions intact.
  wire::ChunkRequest chunk;
  chunk.set_id(2);
  chunk.set_chunk_size(4);
  std::string bytes;
  auto fetched = fetch_into(client, serving, chunk, bytes);
  REQUIRE(fetched.ok());
  CHECK(bytes == "abcd");
  probe.set_digest("sha256:absent");
  auto again = client.probe_all({serving, serving}, probe, std::chrono::seconds(2));
  for (const auto& a : again) {
    REQUIRE(a.ok());
    CHECK(a->status() == wire::ChunkResponse::MISSING);
  }

  // A round still waiting on a silent peer ends at once when the node stops.
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    client.cancel_all();
  });
  const auto t1 = std::chrono::steady_clock::now();
  auto cancelled = client.probe_all({silent_address}, probe, std::chrono::seconds(30));
  stopper.join();
  CHECK(std::chrono::steady_clock::now() - t1 < std::chrono::seconds(5));
  REQUIRE_FALSE(cancelled[0].ok());
  CHECK(cancelled[0].status().message == Status::Stopping().message);
  CHECK_FALSE(client.probe_all({serving}, probe, std::chrono::seconds(2))[0].ok());  // refused after the stop
}

TEST_CASE("a probe on a pooled connection the peer has since closed asks again on a fresh one") {
  auto traffic = std::make_shared<transfer::PeerTraffic>();
  auto stat_ok = [](const wire::ChunkRequest&) {
    transfer::ChunkReply reply;
    reply.header.set_status(wire::ChunkResponse::OK);
    reply.header.set_blob_size(7);
    return reply;
  };
  std::string address;
  transfer::ChunkClient client(key_of(4), traffic);
  wire::ChunkRequest probe;
  probe.set_id(1);
  probe.set_stat(true);
  {  // a first peer process: answers, and its connection goes to the pool
    LoopbackChunkServer peer(4, stat_ok, traffic);
    address = peer.address;
    auto first = client.probe_all({address}, probe, std::chrono::seconds(2));
    REQUIRE(first[0].ok());
  }  // the peer restarts: its end of the pooled connection closes
  LoopbackChunkServer restarted(4, stat_ok, traffic, address);
  auto again = client.probe_all({address}, probe, std::chrono::seconds(2));
  REQUIRE(again[0].ok());
  CHECK(again[0]->blob_size() == 7);
}
