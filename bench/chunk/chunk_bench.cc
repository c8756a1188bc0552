// chunk_bench: how fast one node serves a blob's chunks to a peer on loopback,
// side by side with the baseline of the same bytes over plain TCP.
//
//   chunk_bench [--mb N] [--parallel P] [--chunk-mb C] [--runs R] [--dir D]
//
// Both sides run in this process on real TCP over loopback, reading the blob
// from a file on disk (page cache) and writing what arrives to another file:
//   baseline  sendfile() of the whole blob over one plain TCP connection,
//             received with read() and pwrite() (no encryption, no checks);
//   edgepier  ChunkServer + ChunkClient: P chunks in flight over encrypted,
//             authenticated streams, each chunk hashed and written as it
//             arrives and checked against its SHA-256 (what a pulling node
//             does).
// Prints MB/s of each and the ratio edgepier/baseline, per run and median.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/digest.h"
#include "base/file_io.h"
#include "base/blocking_pool.h"
#include "transfer/chunk_server.h"

using namespace ep;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  uint64_t mb = 512, chunk_mb = 4;
  int parallel = 4, runs = 3;
  std::string dir = "/var/tmp";
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void write_random_file(const std::string& path, uint64_t size) {
  UniqueFd fd(::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600));
  std::mt19937_64 rng(42);
  std::vector<uint64_t> block(1 << 17);
  for (uint64_t done = 0; done < size;) {
    for (auto& w : block) w = rng();
    auto n = std::min<uint64_t>(size - done, block.size() * 8);
    if (::write(fd.get(), block.data(), n) != static_cast<ssize_t>(n)) std::perror("write"), std::exit(1);
    done += n;
  }
}

double baseline(const std::string& src, const std::string& dst, uint64_t size) {
  auto bound = transfer::listen_tcp("127.0.0.1:0", "bench");
  if (!bound) std::fprintf(stderr, "%s\n", bound.status().message.c_str()), std::exit(1);
  int listener = bound->first.get();
  std::thread server([&] {
    UniqueFd conn(::accept(listener, nullptr, nullptr));
    UniqueFd in(::open(src.c_str(), O_RDONLY));
    off_t offset = 0;
    while (static_cast<uint64_t>(offset) < size)
      if (::sendfile(conn.get(), in.get(), &offset, size - offset) <= 0) break;
  });
  auto start = Clock::now();
  auto conn = transfer::connect_tcp("127.0.0.1:" + std::to_string(bound->second), std::chrono::seconds(2));
  UniqueFd out(::open(dst.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600));
  std::vector<char> buffer(1 << 20);
  uint64_t got = 0;
  while (got < size) {
    auto n = ::read(conn->get(), buffer.data(), buffer.size());
    if (n <= 0) break;
    if (::pwrite(out.get(), buffer.data(), n, static_cast<off_t>(got)) != n) break;
    got += static_cast<uint64_t>(n);
  }
  double s = seconds_since(start);
  server.join();
  if (got != size) std::fprintf(stderr, "baseline: short transfer\n"), std::exit(1);
  return size / s / 1e6;
}

double chunked(const std::string& src, const std::string& dst, uint64_t size, const Options& o) {
  const uint64_t chunk = o.chunk_mb << 20;
  const uint64_t chunks = (size + chunk - 1) / chunk;
  UniqueFd in(::open(src.c_str(), O_RDONLY));
  // The digests a holder would hand out (computed once, not timed).
  std::vector<std::string> digests;
  {
    std::vector<char> buffer(chunk);
    for (uint64_t i = 0; i < chunks; ++i) {
      auto len = std::min(chunk, size - i * chunk);
      if (::pread(in.get(), buffer.data(), len, static_cast<off_t>(i * chunk)) != static_cast<ssize_t>(len)) std::exit(1);
      digests.push_back(Digest::of(std::string_view(buffer.data(), len)).str());
    }
  }
  transfer::DataKey key;
  key.fill(7);
  auto traffic = std::make_shared<transfer::PeerTraffic>();
  IoPool io(2);  // the node's I/O pool, io-threads' default
  BlockingPool providers(32);  // the node's pool for peers' requests (blocking-threads)
  transfer::ChunkServer server(io, providers, key, [&](const wire::ChunkRequest& r) {
    transfer::ChunkReply reply;
    reply.fd = UniqueFd(::dup(in.get()));
    reply.offset = r.index() * chunk;
    reply.length = std::min(chunk, size - reply.offset);
    reply.header.set_chunk_digest(digests[r.index()]);
    return reply;
  }, traffic);
  auto port = server.listen("127.0.0.1:0");
  server.start();
  io.start();
  transfer::ChunkClient client(key, traffic);
  const std::string address = "127.0.0.1:" + std::to_string(*port);
  UniqueFd out(::open(dst.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600));
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < o.parallel; ++w)
    workers.emplace_back([&] {
      for (uint64_t i; (i = next++) < chunks;) {
        wire::ChunkRequest request;
        request.set_id(i + 1);
        request.set_index(static_cast<uint32_t>(i));
        request.set_chunk_size(chunk);
        // As a pulling node receives: each slice hashed and written as it arrives.
        Sha256 hash;
        uint64_t at = i * chunk;
        transfer::ChunkSink sink{{}, [&](const unsigned char* data, size_t n) {
                                   hash.update(data, n);
                                   auto s = pwrite_all(out.get(), data, n, at, "a chunk");
                                   at += n;
                                   return s;
                                 }};
        auto r = client.fetch(address, request, std::chrono::seconds(10), &sink);
        if (!r || hash.finish().str() != r->chunk_digest()) failed = true;
      }
    });
  for (auto& w : workers) w.join();
  double s = seconds_since(start);
  io.stop();  // as the Node does: I/O and the provider pool first, then the server
  providers.stop();
  server.stop();
  if (failed) std::fprintf(stderr, "edgepier: a chunk failed\n"), std::exit(1);
  return size / s / 1e6;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--mb") o.mb = std::stoull(argv[i + 1]);
    else if (flag == "--parallel") o.parallel = std::stoi(argv[i + 1]);
    else if (flag == "--chunk-mb") o.chunk_mb = std::stoull(argv[i + 1]);
    else if (flag == "--runs") o.runs = std::stoi(argv[i + 1]);
    else if (flag == "--dir") o.dir = argv[i + 1];
    else return std::fprintf(stderr, "usage: chunk_bench [--mb N] [--parallel P] [--chunk-mb C] [--runs R] [--dir D]\n"), 2;
  }
  auto dir = std::filesystem::path(o.dir) / ("chunk-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string src = dir / "blob", dst = dir / "copy";
  const uint64_t size = o.mb << 20;
  write_random_file(src, size);
  std::printf("blob %llu MiB, chunks %llu MiB, %d in flight, loopback, %d runs\n",
              static_cast<unsigned long long>(o.mb), static_cast<unsigned long long>(o.chunk_mb), o.parallel, o.runs);
  std::printf("%-5s %22s %22s %8s\n", "run", "baseline (plain TCP)", "edgepier (chunks)", "ratio");
  std::vector<double> base, ours, ratio;
  for (int r = 1; r <= o.runs; ++r) {
    base.push_back(baseline(src, dst, size));
    ours.push_back(chunked(src, dst, size, o));
    ratio.push_back(ours.back() / base.back());
    std::printf("%-5d %17.0f MB/s %17.0f MB/s %7.2fx\n", r, base.back(), ours.back(), ratio.back());
  }
  std::printf("%-5s %17.0f MB/s %17.0f MB/s %7.2fx\n", "median", median(base), median(ours), median(ratio));
  std::filesystem::remove_all(dir);
  return 0;
}
