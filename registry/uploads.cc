#include "registry/uploads.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "base/file_io.h"
#include "storage/keys.h"
#include "base/json_text.h"
#include "base/log.h"

namespace ep {

namespace {
// 8-4-4-4-12 hex digits, random; nullopt if the kernel's random source
// failed (an upload id must never be guessable or shared).
std::optional<std::string> new_upload_id() {
  auto hex = random_hex(16);
  if (!hex) return std::nullopt;
  for (size_t at : {8, 13, 18, 23}) hex->insert(at, 1, '-');
  return hex;
}

Status unknown_upload() { return Status{Errc::blob_upload_unknown, "blob upload unknown"}; }
}  // namespace

void Uploads::recover() {
  for (const auto& id : blobs_.list_staging()) {
    if (id.rfind("chunks-", 0) == 0) continue;  // the mirror's partial blobs: it resumes them
    auto v = kv_.get(keys::upload(id));
    if (v && !v->has_value()) blobs_.remove_staging(id);
  }
}

Result<std::vector<Uploads::Session>> Uploads::sessions() {
  std::vector<Session> out;
  const std::string prefix = keys::upload("");
  auto s = kv_.scan(prefix, "", [&](std::string_view key, std::string_view value) {
    auto record = nlohmann::json::parse(value, nullptr, false);
    if (record.is_discarded() || !record.is_object()) return true;
    out.push_back(Session{std::string(key.substr(prefix.size())), record.value("repo", ""),
                          record.value("offset", uint64_t{0}), record.value("updated", uint64_t{0})});
    return true;
  });
  if (!s) return s;
  return out;
}

Result<UploadState> Uploads::start(std::string_view repo) {
  if (auto s = registry_.validate_repo(repo); !s) return s;
  auto id = new_upload_id();
  if (!id) return Status{Errc::io_error, "cannot start an upload: no random upload id"};
  UploadState state{*id, std::string(repo), 0};
  auto fd = blobs_.open_staging(state.id, /*create=*/true);
  if (!fd) return fd.status();
  if (auto s = save(state); !s) return s;
  return state;
}

Status Uploads::save(const UploadState& state) {
  auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
  nlohmann::json record = {{"repo", state.repo}, {"offset", state.offset}, {"updated", now.count()}};
  KvBatch batch;
  batch.put(keys::upload(state.id), json_text(record));
  return kv_.write(batch);
}

Result<UploadState> Uploads::load(std::string_view repo, std::string_view id) {
  if (auto s = registry_.validate_repo(repo); !s) return s;
  if (id.empty() || id.size() > 64) return unknown_upload();
  auto v = kv_.get(keys::upload(id));
  if (!v) return v.status();
  if (!v->has_value()) return unknown_upload();
  auto record = nlohmann::json::parse(**v, nullptr, false);
  if (record.is_discarded() || record.value("repo", "") != repo) return unknown_upload();
  return UploadState{std::string(id), std::string(repo), record.value("offset", uint64_t{0})};
}

Result<UploadState> Uploads::status(std::string_view repo, std::string_view id) { return load(repo, id); }

Status Uploads::cancel(std::string_view repo, std::string_view id) {
  auto state = load(repo, id);
  if (!state) return state.status();
  if (auto s = claim(state->id); !s) return s;
  KvBatch batch;
  batch.del(keys::upload(state->id));
  auto s = kv_.write(batch);
  if (s) s = blobs_.remove_staging(state->id);
  release(state->id, std::nullopt, 0);
  return s;
}

Status Uploads::claim(const std::string& id) {
  std::lock_guard lock(mu_);
  auto& active = active_[id];
  if (active.busy) return Status{Errc::busy, "another request is writing to this upload"};
  active.busy = true;
  return Status::Ok();
}

void Uploads::release(const std::string& id, std::optional<Sha256> hash, uint64_t hashed) {
  std::lock_guard lock(mu_);
  if (!hash) {
    active_.erase(id);
    return;
  }
  auto& active = active_[id];
  active.busy = false;
  active.hash = std::move(hash);
  active.hashed = hashed;
}

Result<Sha256> Uploads::hash_prefix(int fd, uint64_t length) {
  Sha256 hash;
  std::vector<char> buf(1 << 20);
  uint64_t done = 0;
  while (done < length) {
    const auto n = static_cast<size_t>(std::min<uint64_t>(buf.size(), length - done));
    if (!pread_exact(fd, buf.data(), n, done, "upload data"))
      return Status{Errc::io_error, "upload data is shorter than its recorded offset"};
    hash.update(buf.data(), n);
    done += n;
  }
  return hash;
}

Result<std::unique_ptr<UploadAppender>> Uploads::append(std::string_view repo, std::string_view id,
                                                        std::optional<uint64_t> expected_start) {
  auto state = load(repo, id);
  if (!state) return state.status();
  if (expected_start && *expected_start != state->offset)
    return Status{Errc::range_invalid, "chunk starts at " + std::to_string(*expected_start) + ", upload is at " +
                                           std::to_string(state->offset)};
  if (auto s = claim(state->id); !s) return s;
  std::optional<Sha256> hash;
  {
    std::lock_guard lock(mu_);
    auto& active = active_[state->id];
    if (active.hash && active.hashed == state->offset) hash = std::move(active.hash);
    active.hash.reset();
  }
  auto fd = blobs_.open_staging(state->id, /*create=*/false);
  if (fd && ::ftruncate(fd->get(), static_cast<off_t>(state->offset)) != 0)
    fd = Status{Errc::io_error, std::string("cannot truncate upload: ") + std::strerror(errno)};
  if (fd && !hash) {
    auto rebuilt = hash_prefix(fd->get(), state->offset);
    if (rebuilt)
      hash = std::move(*rebuilt);
    else
      fd = rebuilt.status();
  }
  if (!fd) {
    release(state->id, std::nullopt, 0);
    return fd.status();
  }
  return std::unique_ptr<UploadAppender>(new UploadAppender(*this, *state, std::move(*fd), std::move(*hash)));
}

Result<Digest> Uploads::complete(std::string_view repo, std::string_view id, std::string_view digest_text) {
  auto expected = Digest::parse(digest_text);
  if (!expected) return expected.status();
  auto appender = append(repo, id, std::nullopt);
  if (!appender) return appender.status();
  UploadAppender& a = **appender;
  Digest actual = a.hash_.finish();
  a.done_ = true;
  const std::string upload_id = a.state_.id;
  Status result;
  if (actual != *expected) {
    result = Status{Errc::digest_invalid, "content digest " + actual.str() + " does not match " + expected->str()};
  } else {
    result = blobs_.commit_staging(upload_id, actual);
    if (result) result = registry_.link_blob(repo, actual);
    if (result && on_stored_) on_stored_(actual);
  }
  // The session ends either way; a failed verification leaves nothing behind.
  KvBatch batch;
  batch.del(keys::upload(upload_id));
  kv_.write(batch);
  blobs_.remove_staging(upload_id);
  release(upload_id, std::nullopt, 0);
  if (!result) return result;
  return actual;
}

UploadAppender::UploadAppender(Uploads& owner, UploadState state, UniqueFd fd, Sha256 hash)
    : owner_(owner), state_(std::move(state)), fd_(std::move(fd)), hash_(std::move(hash)),
      start_(state_.offset), offset_(state_.offset) {}

UploadAppender::~UploadAppender() {
  if (done_) return;
  // Abandoned mid-request: forget the bytes; the next append truncates them.
  owner_.release(state_.id, std::nullopt, 0);
}

Status UploadAppender::write(const char* data, size_t size) {
  if (auto s = pwrite_all(fd_.get(), data, size, offset_, "upload"); !s) {
    // This request's bytes go (a full disk gets its space back at once);
    // the session stays at its committed offset, so the client can resume.
    if (::ftruncate(fd_.get(), static_cast<off_t>(start_)) != 0)
      log_warning("uploads", "cannot truncate upload " + state_.id + ": " + std::strerror(errno));
    return s;
  }
  offset_ += size;
  hash_.update(data, size);
  return Status::Ok();
}

Result<UploadState> UploadAppender::commit() {
  state_.offset = offset_;
  if (auto s = owner_.save(state_); !s) return s;
  done_ = true;
  owner_.release(state_.id, std::move(hash_), offset_);
  return state_;
}

}  // namespace ep
