// FsBlobStore and MemoryBlobStore (see blob_store.h).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>

#include "storage/blob_store.h"
#include "storage/space_guard.h"

namespace fs = std::filesystem;

namespace ep {

namespace {

Status errno_status(const std::string& what) {
  const bool full = errno == ENOSPC || errno == EDQUOT;
  return Status{full ? Errc::out_of_space : Errc::io_error, what + ": " + std::strerror(errno)};
}

bool valid_staging_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

class FsBlobStore final : public BlobStore {
 public:
  FsBlobStore(fs::path root, uint64_t min_free)
      : blobs_(root / "blobs" / "sha256"), uploads_(root / "uploads"), quarantine_(root / "quarantine"),
        space_(root.string(), min_free) {}

  Status quarantine(const Digest& digest) override {
    auto size = stat(digest);
    if (!size) return size.status();
    std::error_code ec;
    fs::create_directories(quarantine_, ec);
    if (ec) return Status{Errc::io_error, "cannot create " + quarantine_.string() + ": " + ec.message()};
    const auto aside = quarantine_ / (std::string(digest.hex()) + "." + std::to_string(::time(nullptr)));
    if (::rename(blob_path(digest).c_str(), aside.c_str()) != 0) return errno_status("quarantine blob " + digest.str());
    used_ -= *size;
    if (listener_) listener_(digest, false);
    return Status::Ok();
  }

  Status admit(uint64_t bytes) override { return space_.admit(bytes); }
  Status admit_making_room(uint64_t bytes) override { return space_.admit_making_room(bytes); }
  void set_room_maker(RoomMaker maker) override { space_.set_room_maker(std::move(maker)); }
  bool can_make_room() const override { return space_.can_make_room(); }
  uint64_t free_bytes() const override { return space_.free_bytes(); }
  bool full() const override { return space_.full(); }

  Status init() {
    std::error_code ec;
    fs::create_directories(blobs_, ec);
    if (!ec) fs::create_directories(uploads_, ec);
    if (ec) return Status{Errc::io_error, "cannot create " + blobs_.string() + ": " + ec.message()};
    uint64_t used = 0;
    for (auto it = fs::recursive_directory_iterator(blobs_, ec); !ec && it != fs::end(it); it.increment(ec))
      if (it->is_regular_file(ec)) used += it->file_size(ec);
    used_ = used;
    (void)space_.admit(0);  // a node starting on a full disk says so at once (and serves reads)
    return Status::Ok();
  }

  Result<uint64_t> stat(const Digest& digest) override {
    struct stat st;
    if (::stat(blob_path(digest).c_str(), &st) != 0) return not_found(digest);
    return static_cast<uint64_t>(st.st_size);
  }

  Result<OpenBlob> open(const Digest& digest) override {
    UniqueFd fd(::open(blob_path(digest).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      if (errno == ENOENT) return not_found(digest);
      return errno_status("open blob " + digest.str());
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return errno_status("stat blob " + digest.str());
    return OpenBlob{std::move(fd), static_cast<uint64_t>(st.st_size)};
  }

  Status remove(const Digest& digest) override {
    auto size = stat(digest);
    if (!size) return size.status();
    if (::unlink(blob_path(digest).c_str()) != 0) return errno_status("remove blob " + digest.str());
    used_ -= *size;
    if (listener_) listener_(digest, false);
    return Status::Ok();
  }

  uint64_t used_bytes() const override { return used_; }

  std::vector<std::pair<Digest, uint64_t>> list() override {
    std::vector<std::pair<Digest, uint64_t>> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(blobs_, ec); !ec && it != fs::end(it); it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      if (auto d = Digest::parse("sha256:" + it->path().filename().string())) out.emplace_back(*d, it->file_size(ec));
    }
    return out;
  }

  Result<UniqueFd> open_staging(std::string_view id, bool create) override {
    if (!valid_staging_id(id)) return Status{Errc::blob_upload_unknown, "invalid upload id"};
    const fs::path path = uploads_ / std::string(id);
    if (create && ::access(path.c_str(), F_OK) != 0)  // a new file: the write it starts must fit
      if (auto s = space_.admit(0); !s) return s;
    int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0);
    UniqueFd fd(::open(path.c_str(), flags, 0644));
    if (!fd.valid()) {
      if (errno == ENOENT) return Status{Errc::blob_upload_unknown, "upload data is missing"};
      return errno_status("open upload file");
    }
    return fd;
  }

  Status remove_staging(std::string_view id) override {
    if (!valid_staging_id(id)) return Status::Ok();
    if (::unlink((uploads_ / std::string(id)).c_str()) != 0 && errno != ENOENT)
      return errno_status("remove upload file");
    return Status::Ok();
  }

  std::vector<std::string> list_staging() override {
    std::vector<std::string> ids;
    std::error_code ec;
    for (auto it = fs::directory_iterator(uploads_, ec); !ec && it != fs::end(it); it.increment(ec))
      ids.push_back(it->path().filename().string());
    return ids;
  }

  Status commit_staging(std::string_view id, const Digest& digest) override {
    if (!valid_staging_id(id)) return Status{Errc::blob_upload_unknown, "invalid upload id"};
    auto staged = uploads_ / std::string(id);
    auto target = blob_path(digest);
    if (stat(digest)) return remove_staging(id);  // already stored: deduplicated
    {
      // Durable content before the name becomes visible.
      UniqueFd fd(::open(staged.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd.valid()) return errno_status("open staged upload");
      if (::fdatasync(fd.get()) != 0) return errno_status("sync staged upload");
    }
    std::error_code ec;
    fs::create_directories(fs::path(target).parent_path(), ec);
    if (ec) return Status{Errc::io_error, "cannot create blob directory: " + ec.message()};
    struct stat st;
    if (::stat(staged.c_str(), &st) != 0) return errno_status("stat staged upload");
    if (::rename(staged.c_str(), target.c_str()) != 0) return errno_status("publish blob " + digest.str());
    used_ += static_cast<uint64_t>(st.st_size);
    if (listener_) listener_(digest, true);
    return Status::Ok();
  }

  void set_listener(Listener listener) override { listener_ = std::move(listener); }

 private:
  std::string blob_path(const Digest& d) const {
    auto hex = d.hex();
    return (blobs_ / std::string(hex.substr(0, 2)) / std::string(hex)).string();
  }
  static Status not_found(const Digest& d) { return Status{Errc::blob_unknown, "blob unknown: " + d.str()}; }

  fs::path blobs_, uploads_, quarantine_;
  SpaceGuard space_;
  std::atomic<uint64_t> used_{0};
  Listener listener_;  // set before the store is shared
};

// Memory-backed fake: every file is a memfd, so callers use the same fd code.
class MemoryBlobStore final : public BlobStore {
 public:
  Status admit(uint64_t) override { return Status::Ok(); }
  Status admit_making_room(uint64_t) override { return Status::Ok(); }
  void set_room_maker(RoomMaker) override {}
  bool can_make_room() const override { return false; }
  uint64_t free_bytes() const override { return std::numeric_limits<uint64_t>::max(); }
  bool full() const override { return false; }
  Result<uint64_t> stat(const Digest& digest) override {
    std::lock_guard lock(mu_);
    auto it = blobs_.find(digest.str());
    if (it == blobs_.end()) return Status{Errc::blob_unknown, "blob unknown: " + digest.str()};
    return size_of(it->second.get());
  }
  Result<OpenBlob> open(const Digest& digest) override {
    std::lock_guard lock(mu_);
    auto it = blobs_.find(digest.str());
    if (it == blobs_.end()) return Status{Errc::blob_unknown, "blob unknown: " + digest.str()};
    UniqueFd dup(::fcntl(it->second.get(), F_DUPFD_CLOEXEC, 0));
    return OpenBlob{std::move(dup), size_of(it->second.get())};
  }
  Status quarantine(const Digest& digest) override { return remove(digest); }
  Status remove(const Digest& digest) override {
    {
      std::lock_guard lock(mu_);
      if (!blobs_.erase(digest.str())) return Status{Errc::blob_unknown, "blob unknown: " + digest.str()};
    }
    if (listener_) listener_(digest, false);
    return Status::Ok();
  }
  void set_listener(Listener listener) override { listener_ = std::move(listener); }
  uint64_t used_bytes() const override {
    std::lock_guard lock(mu_);
    uint64_t used = 0;
    for (auto& [k, fd] : blobs_) used += size_of(fd.get());
    return used;
  }
  std::vector<std::pair<Digest, uint64_t>> list() override {
    std::lock_guard lock(mu_);
    std::vector<std::pair<Digest, uint64_t>> out;
    for (auto& [k, fd] : blobs_) out.emplace_back(*Digest::parse(k), size_of(fd.get()));
    return out;
  }
  Result<UniqueFd> open_staging(std::string_view id, bool create) override {
    std::lock_guard lock(mu_);
    auto it = staging_.find(std::string(id));
    if (it == staging_.end()) {
      if (!create) return Status{Errc::blob_upload_unknown, "upload data is missing"};
      it = staging_.emplace(std::string(id), UniqueFd(::memfd_create("staging", MFD_CLOEXEC))).first;
    }
    return UniqueFd(::fcntl(it->second.get(), F_DUPFD_CLOEXEC, 0));
  }
  Status remove_staging(std::string_view id) override {
    std::lock_guard lock(mu_);
    staging_.erase(std::string(id));
    return Status::Ok();
  }
  std::vector<std::string> list_staging() override {
    std::lock_guard lock(mu_);
    std::vector<std::string> ids;
    for (auto& [k, fd] : staging_) ids.push_back(k);
    return ids;
  }
  Status commit_staging(std::string_view id, const Digest& digest) override {
    bool stored = false;
    {
      std::lock_guard lock(mu_);
      auto it = staging_.find(std::string(id));
      if (it == staging_.end()) return Status{Errc::blob_upload_unknown, "upload data is missing"};
      stored = blobs_.emplace(digest.str(), std::move(it->second)).second;
      staging_.erase(it);
    }
    if (stored && listener_) listener_(digest, true);
    return Status::Ok();
  }

 private:
  static uint64_t size_of(int fd) {
    struct stat st;
    return ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  }
  mutable std::mutex mu_;
  std::map<std::string, UniqueFd> blobs_, staging_;
  Listener listener_;  // set before the store is shared
};

}  // namespace

Result<std::unique_ptr<BlobStore>> open_fs_blob_store(const std::string& data_dir, uint64_t min_free_space) {
  auto store = std::make_unique<FsBlobStore>(data_dir, min_free_space);
  auto s = store->init();
  if (!s) return s;
  return std::unique_ptr<BlobStore>(std::move(store));
}

std::unique_ptr<BlobStore> make_memory_blob_store() { return std::make_unique<MemoryBlobStore>(); }

}  // namespace ep
