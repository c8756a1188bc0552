// Uploads: resumable blob upload sessions (POST/PATCH/PUT/GET/DELETE).
//
// A session is a RocksDB record (repo, committed offset) plus a staged file in
// the BlobStore. Only bytes of completed requests count: the committed offset
// advances when an Appender is committed; an abandoned Appender (client went
// away mid-PATCH) truncates the file back. The running SHA-256 is kept in
// memory; after a restart it is rebuilt from the staged file, so uploads
// continue across restarts. One Appender per session at a time (else busy).
// A blob is published only after its digest verified (BlobStore invariant).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "base/digest.h"
#include "base/error.h"
#include "base/fd.h"
#include "registry/registry.h"
#include "storage/blob_store.h"
#include "storage/kv_store.h"

namespace ep {

struct UploadState {
  std::string id;
  std::string repo;
  uint64_t offset = 0;  // bytes committed so far
};

class Uploads;

// Exclusive writer for one session; see class comment for commit/abort.
class UploadAppender {
 public:
  ~UploadAppender();
  Status write(const char* data, size_t size);
  Result<UploadState> commit();
  uint64_t written() const { return offset_ - start_; }

 private:
  friend class Uploads;
  UploadAppender(Uploads& owner, UploadState state, UniqueFd fd, Sha256 hash);
  Uploads& owner_;
  UploadState state_;
  UniqueFd fd_;
  Sha256 hash_;
  uint64_t start_, offset_;
  bool done_ = false;
};

class Uploads {
 public:
  Uploads(KvStore& kv, BlobStore& blobs, Registry& registry) : kv_(kv), blobs_(blobs), registry_(registry) {}

  // Removes staged files without a session (left by a crash).
  void recover();

  struct Session {
    std::string id, repo;
    uint64_t offset = 0;
    uint64_t updated_s = 0;  // wall seconds of the last committed write (or the start)
  };
  // Every open session, for garbage collection of abandoned ones.
  Result<std::vector<Session>> sessions();
  // Called with each blob a completed upload stored (e.g. to announce it to peers).
  void on_stored(std::function<void(const Digest&)> hook) { on_stored_ = std::move(hook); }

  Result<UploadState> start(std::string_view repo);
  Result<UploadState> status(std::string_view repo, std::string_view id);
  Status cancel(std::string_view repo, std::string_view id);
  // expected_start: the Content-Range start the client claims; must equal
  // the committed offset (else range_invalid, answered with 416).
  Result<std::unique_ptr<UploadAppender>> append(std::string_view repo, std::string_view id,
                                                 std::optional<uint64_t> expected_start);
  // Verifies the staged content against `digest`, publishes and links the
  // blob, and ends the session. On mismatch the session is discarded.
  Result<Digest> complete(std::string_view repo, std::string_view id, std::string_view digest);

 private:
  friend class UploadAppender;
  struct Active {
    bool busy = false;
    std::optional<Sha256> hash;  // hash of exactly `hashed` bytes
    uint64_t hashed = 0;
  };
  Result<UploadState> load(std::string_view repo, std::string_view id);
  Status save(const UploadState& state);
  Status claim(const std::string& id);
  void release(const std::string& id, std::optional<Sha256> hash, uint64_t hashed);
  Result<Sha256> hash_prefix(int fd, uint64_t length);

  KvStore& kv_;
  BlobStore& blobs_;
  Registry& registry_;
  std::mutex mu_;
  std::map<std::string, Active> active_;
  std::function<void(const Digest&)> on_stored_;  // set before serving
};

}  // namespace ep
