#include <utility>

#include "base/io_pool.h"

#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <memory>

#include "base/log.h"

namespace ep {

void IoPool::start() {
  for (size_t i = 0; i < threads_wanted_; ++i)
    threads_.emplace_back([this] {
      // A handler that throws is a bug: log it and keep serving.
      while (!ioc_.stopped())
        guarded("an I/O handler", [&] {
          ioc_.run();
          return Status::Ok();
        });
    });
}

namespace {
struct Repeating : std::enable_shared_from_this<Repeating> {
  Repeating(boost::asio::io_context& ioc, std::chrono::milliseconds every, std::function<void()> job)
      : timer(ioc), period(every), work(std::move(job)) {}
  void arm() {
    timer.expires_after(period);
    timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      self->work();
      self->arm();
    });
  }
  boost::asio::steady_timer timer;
  std::chrono::milliseconds period;
  std::function<void()> work;
};
}  // namespace

void IoPool::repeat(std::chrono::milliseconds period, std::function<void()> work) {
  std::make_shared<Repeating>(ioc_, period, std::move(work))->arm();
}

void IoPool::stop() {
  keep_.reset();
  ioc_.stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

Result<boost::asio::ip::tcp::endpoint> tcp_endpoint(const std::string& address, const std::string& what) {
  const std::string prefix = what.empty() ? "" : what + ": ";
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 >= address.size())
    return Status{Errc::config_invalid, prefix + "not a host:port address: " + address};
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const char* digits = address.data() + colon + 1;
  unsigned port = 0;
  auto [end, ec] = std::from_chars(digits, address.data() + address.size(), port);
  if (ec != std::errc() || end != address.data() + address.size() || port > 65535 || host.empty())
    return Status{Errc::config_invalid, prefix + "not a host:port address: " + address};
  boost::system::error_code bad_ip;
  auto ip = boost::asio::ip::make_address(host, bad_ip);
  if (bad_ip) return Status{Errc::config_invalid, prefix + "not an IP address: " + host};
  return boost::asio::ip::tcp::endpoint(ip, static_cast<unsigned short>(port));
}

Result<unsigned short> listen_on(boost::asio::ip::tcp::acceptor& acceptor, const std::string& address,
                                 const std::string& what) {
  auto endpoint = tcp_endpoint(address, what);
  if (!endpoint) return endpoint.status();
  boost::system::error_code ec;
  acceptor.open(endpoint->protocol(), ec);
  if (!ec) acceptor.set_option(boost::asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(*endpoint, ec);
  if (!ec) acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) return Status{Errc::io_error, "cannot listen on " + (what.empty() ? "" : what + " ") + address + ": " + ec.message()};
  return acceptor.local_endpoint().port();
}

}  // namespace ep
