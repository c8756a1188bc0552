// InflightBlob: a blob being fetched from upstream, readable while it grows.
//
// Shared by the fetching thread (the only writer) and every client that
// asked for the blob meanwhile (single flight). Invariant: readable() never
// covers bytes a client must not see: while the fetch runs, the final byte
// is held back until the whole blob verified against its digest, so a
// client can never receive a complete blob with the wrong content; on
// failure readable() drops to 0 and readers close their connections.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "base/digest.h"
#include "base/error.h"
#include "base/fd.h"

namespace ep {

class InflightBlob {
 public:
  InflightBlob(Digest digest, UniqueFd fd) : digest_(std::move(digest)), fd_(std::move(fd)) {}

  const Digest& digest() const { return digest_; }
  int fd() const { return fd_.get(); }

  // The blob's size once the upstream answered it, else 0.
  uint64_t size_known() const;
  // Calls `sized` (possibly inline, possibly from the fetching thread) with
  // the size once the upstream answered, or with why the fetch failed.
  void when_sized(std::function<void(Result<uint64_t>)> sized);
  uint64_t readable() const;
  bool failed() const;
  bool done() const;  // complete or failed
  // Calls `ready` (possibly inline, possibly from the fetch thread) once
  // readable() > offset or the fetch has ended.
  void when_readable(uint64_t offset, std::function<void()> ready);
  // Calls `ended` (possibly inline, possibly from the fetch thread) once the
  // fetch has ended, complete or failed.
  void when_done(std::function<void()> ended);

  // Fetch thread side.
  void begin(uint64_t size);
  void advance(uint64_t written);
  // Ends the fetch, releasing every waiter; later calls change nothing.
  void finish(Status outcome);

 private:
  enum class State { starting, streaming, complete, failed };
  uint64_t readable_locked() const;
  void notify_locked(std::vector<std::function<void()>>& out);

  Digest digest_;
  UniqueFd fd_;
  mutable std::mutex mu_;
  State state_ = State::starting;
  Status failure_;
  uint64_t size_ = 0, written_ = 0;
  std::vector<std::pair<uint64_t, std::function<void()>>> waiters_;
  std::vector<std::function<void(Result<uint64_t>)>> size_waiters_;
  // Releases the size waiters once the state left `starting` (caller holds mu_; call `out` after).
  void take_size_waiters_locked(std::vector<std::function<void()>>& out);
};

}  // namespace ep
