// Server: the HTTP/1.1 listener (Boost.Beast) in front of Api.
//
// Owns the io_context and its I/O threads. Each connection is a Session
// on its own strand. Bounds: 16 KiB of headers, Api-chosen body limits,
// a 60 s deadline for a request header (idle and slowloris clients), 60 s
// without progress while reading a body or writing a reply. Blob bytes go
// out with sendfile(2). Keeps no request state beyond the open connections.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/blocking_pool.h"
#include "base/error.h"
#include "http/api.h"
#include "http/metrics.h"

namespace ep::http {

struct ServerLimits {
  size_t header_bytes = 16 * 1024;
  int header_timeout_s = 60;
  int transfer_timeout_s = 60;
  size_t max_connections = 8192;
};

class Server {
 public:
  // Deferred work (handlers that wait, e.g. on the uplink) runs on
  // `blocking`, which the caller owns and stops after this server.
  Server(RequestHandler& handler, Metrics& metrics, BlockingPool& blocking, ServerLimits limits = {});
  ~Server();
  // Binds "host:port" (port 0 picks one); returns the bound port.
  Result<unsigned short> listen(const std::string& address);
  void start(size_t threads);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits "host:port" ("[v6]:port" too); false when malformed.
bool split_host_port(const std::string& address, std::string& host, unsigned short& port);

}  // namespace ep::http
