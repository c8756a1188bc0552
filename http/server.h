// Server: the HTTP/1.1 listener (Boost.Beast) in front of Api.
//
// Runs on the node's I/O pool. Each connection is a Session
// on its own strand. Bounds (ServerLimits, from the http-* settings): 16 KiB
// of headers, Api-chosen body limits, a deadline for a whole request header
// (idle and slowloris clients), a bound on time without progress while
// reading a body or writing a reply, and a cap on open connections (past it,
// one 503 reply each; the log says so once per episode). Blob bytes go out
// with sendfile(2), or through TLS when the listener serves HTTPS. Keeps no
// request state beyond the open connections.
#pragma once

#include <chrono>
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
  // A request's whole header must arrive within this (slowloris clients).
  std::chrono::milliseconds header_timeout{30000};
  // A body read or reply write that makes no progress this long ends the connection.
  std::chrono::milliseconds stall_timeout{60000};
  // Connections past this many get one 503 UNAVAILABLE reply and are closed.
  size_t max_connections = 4096;
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
  // Serves HTTPS from now on with this certificate chain and key (PEM
  // files); called again, it swaps them for new connections (open ones keep
  // theirs). config_invalid naming the file when they do not load: the
  // certificate in force stays. Any thread; reads the files.
  Status use_tls(const std::string& cert_file, const std::string& key_file);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ep::http
