#include "dataplane/inflight_blob.h"

#include <limits>

namespace ep {

uint64_t InflightBlob::size_known() const {
  std::lock_guard lock(mu_);
  return state_ == State::streaming || state_ == State::complete ? size_ : 0;
}

void InflightBlob::when_sized(std::function<void(Result<uint64_t>)> sized) {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(mu_);
    size_waiters_.push_back(std::move(sized));
    take_size_waiters_locked(ready);
  }
  for (auto& f : ready) f();
}

void InflightBlob::take_size_waiters_locked(std::vector<std::function<void()>>& out) {
  if (state_ == State::starting) return;
  Result<uint64_t> size = state_ == State::failed ? Result<uint64_t>(failure_) : Result<uint64_t>(size_);
  for (auto& waiter : size_waiters_) out.push_back([waiter = std::move(waiter), size] { waiter(size); });
  size_waiters_.clear();
}

uint64_t InflightBlob::readable_locked() const {
  switch (state_) {
    case State::complete: return size_;
    case State::streaming: return std::min(written_, size_ > 0 ? size_ - 1 : 0);
    default: return 0;
  }
}

uint64_t InflightBlob::readable() const {
  std::lock_guard lock(mu_);
  return readable_locked();
}

bool InflightBlob::failed() const {
  std::lock_guard lock(mu_);
  return state_ == State::failed;
}

bool InflightBlob::done() const {
  std::lock_guard lock(mu_);
  return state_ == State::complete || state_ == State::failed;
}

void InflightBlob::when_readable(uint64_t offset, std::function<void()> ready) {
  {
    std::lock_guard lock(mu_);
    bool ended = state_ == State::complete || state_ == State::failed;
    if (!ended && readable_locked() <= offset) {
      waiters_.emplace_back(offset, std::move(ready));
      return;
    }
  }
  ready();
}

void InflightBlob::when_done(std::function<void()> ended) {
  // No offset is ever readable past the largest: only the end releases it.
  when_readable(std::numeric_limits<uint64_t>::max(), std::move(ended));
}

void InflightBlob::notify_locked(std::vector<std::function<void()>>& out) {
  bool ended = state_ == State::complete || state_ == State::failed;
  uint64_t now = readable_locked();
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (ended || now > it->first) {
      out.push_back(std::move(it->second));
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
}

void InflightBlob::begin(uint64_t size) {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(mu_);
    size_ = size;
    state_ = State::streaming;
    take_size_waiters_locked(ready);
  }
  for (auto& f : ready) f();
}

void InflightBlob::advance(uint64_t written) {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(mu_);
    written_ = written;
    notify_locked(ready);
  }
  for (auto& f : ready) f();
}

void InflightBlob::finish(Status outcome) {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(mu_);
    if (state_ == State::complete || state_ == State::failed) return;  // ended already (the node stopped)
    if (outcome.ok()) {
      state_ = State::complete;
    } else {
      state_ = State::failed;
      failure_ = std::move(outcome);
    }
    take_size_waiters_locked(ready);
    notify_locked(ready);
  }
  for (auto& f : ready) f();
}

}  // namespace ep
