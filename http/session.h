// start_session: serves one accepted connection of the registry's HTTP
// server (session.cc); internal to http/. The session owns itself until
// the connection closes; `api`, `metrics`, `limits` and `workers` must
// outlive it (the Server stops its threads and workers before they go).
#pragma once

#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>

#include "http/server.h"

namespace ep::http {

// `tls` null: plain HTTP; otherwise the connection starts with a TLS handshake.
void start_session(boost::asio::ip::tcp::socket socket, std::shared_ptr<boost::asio::ssl::context> tls,
                   RequestHandler& api, Metrics& metrics, const ServerLimits& limits, BlockingPool& workers);
// Answers one error reply (with Retry-After) without reading the request,
// then closes the connection: for connections past the cap.
void refuse_session(boost::asio::ip::tcp::socket socket, std::shared_ptr<boost::asio::ssl::context> tls,
                    RequestHandler& api, Metrics& metrics, const ServerLimits& limits, BlockingPool& workers,
                    Status why);

}  // namespace ep::http
