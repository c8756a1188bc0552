#include <utility>

#include "base/io_pool.h"

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

void IoPool::stop() {
  keep_.reset();
  ioc_.stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

}  // namespace ep
