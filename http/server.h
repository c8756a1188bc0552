// Server: the HTTP/1.1 listener (Boost.Beast) in front of Api.
//
// Runs on the node's I/O pool. Each connection is a Session
// on its own strand. Bounds: 16 KiB of headers, Api-chosen body limits,
// a 60 s deadline for a request header (idle and slowloris clients), 60 s
// without progress while reading a body or writing a reply. Blob bytes go
// out with sendfile(2). Keeps no request state beyond the open connections.
#pragma once

#include <memory>
#include <string>

#include "base/blocking_pool.h"
#include "base/io_pool.h"
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
  // Connections run on `io`; deferred work (handlers that wait, e.g. on the
  // uplink) on `blocking`. The caller owns both: it stops the I/O pool
  // before destroying this server, and destroys the pool (and with it the
  // open connections) before the handler and metrics.
  Server(IoPool& io, RequestHandler& handler, Metrics& metrics, BlockingPool& blocking, ServerLimits limits = {});
  ~Server();
  // Binds "host:port" (port 0 picks one); returns the bound port.
  Result<unsigned short> listen(const std::string& address);
  void start();  // accepts on the I/O pool

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ep::http
