// IoPool: the node's Asio I/O threads, shared by every listener (registry
// and admin HTTP, the cluster gate, the chunk server's acceptor).
//
// Ownership: owned by the Node, sized by the io-threads setting. Handlers run
// on these threads only and never block. stop() stops the context and joins
// every thread; handlers still queued are destroyed (not run) when the pool
// is destroyed, so everything a handler refers to must outlive the pool.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"

namespace ep {

class IoPool {
 public:
  explicit IoPool(size_t threads) : threads_wanted_(threads ? threads : 1), ioc_(static_cast<int>(threads_wanted_)) {}
  ~IoPool() { stop(); }
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  boost::asio::io_context& context() { return ioc_; }
  // Runs `work` on the pool every `period` until the pool stops. The timer is
  // owned by its pending wait alone, so it goes with the pool; `work` must
  // not block and what it uses must outlive the pool.
  void repeat(std::chrono::milliseconds period, std::function<void()> work);
  void start();
  // No handler runs once this returns.
  void stop();

 private:
  size_t threads_wanted_;
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> keep_{ioc_.get_executor()};
  std::vector<std::thread> threads_;
};

// "ip:port" (an IPv6 address in brackets) as an endpoint; config_invalid
// otherwise. `what` names the setting in the error (may be empty).
Result<boost::asio::ip::tcp::endpoint> tcp_endpoint(const std::string& address, const std::string& what);

// Opens `acceptor` on "ip:port" (port 0 picks one), binds and listens; the
// one way every listener of the node is bound. Returns the bound port.
Result<unsigned short> listen_on(boost::asio::ip::tcp::acceptor& acceptor, const std::string& address,
                                 const std::string& what);

}  // namespace ep
