// Mirror: a cold blob fetched whole from upstream without holding a thread
// (start_fetch), and the blob lookup that answers without waiting
// (blob_async). The request runs on the node's I/O pool; each body piece is
// written and hashed on the Mirror's disk pool, and the next one is read
// only once it is stored (backpressure); the commit (fsync, rename, the
// registry link) runs there too.
#include "base/file_io.h"
#include "base/names.h"
#include "dataplane/mirror.h"
#include "dataplane/site_blob.h"

namespace ep {

namespace {
// The verdict on a whole-blob GET once its body ended.
Status check_whole_blob(const Upstream& up, const Digest& digest, const Result<HttpResponse>& response,
                        std::optional<uint64_t> size, uint64_t written, Sha256& hash) {
  if (!response) return response.status();
  if (response->status == 404) return Status{Errc::blob_unknown, "blob unknown upstream " + up.describe() + ": " + digest.str()};
  if (response->status != 200)
    return Status{Errc::upstream_unavailable,
                  "upstream " + up.describe() + " answered HTTP " + std::to_string(response->status) + " for a blob"};
  if (size && written != *size)
    return Status{Errc::upstream_unavailable, "upstream " + up.describe() + " sent a truncated blob"};
  if (hash.finish() != digest)
    return Status{Errc::upstream_unavailable, "upstream " + up.describe() + " sent content that does not match " + digest.str()};
  return Status::Ok();
}
}  // namespace

// One whole-blob GET into a staging file. Its steps run one at a time (the
// client reads on only after a piece was stored), alternating between an
// I/O strand and the disk pool, so its fields need no lock.
struct Mirror::WholeBlobFetch {
  WholeBlobFetch(Mirror& m, Upstream& u, std::string l, std::string r, std::string staging,
                 std::shared_ptr<InflightBlob> b)
      : mirror(m), up(u), local(std::move(l)), repo(std::move(r)), staging_id(std::move(staging)), blob(std::move(b)) {}

  Mirror& mirror;
  Upstream& up;
  std::string local, repo, staging_id;
  std::shared_ptr<InflightBlob> blob;
  Sha256 hash;
  uint64_t written = 0;
  std::optional<uint64_t> size;

  void start(const std::shared_ptr<WholeBlobFetch>& self) {
    auto sink = std::make_shared<AsyncBodySink>();
    sink->accept = [self](const HttpResponse& head) {
      if (head.status != 200) return false;
      self->size = head.content_length;
      if (self->size) self->blob->begin(*self->size);
      return true;
    };
    sink->on_body = [self](const char* data, size_t n, std::function<void(Status)> next) {
      auto store = [self, data, n, next] { next(self->store(data, n)); };
      if (!self->mirror.disk_->post(store)) next(Status::Stopping());
    };
    up.async_get(repo, "blobs/" + blob->digest().str(), "GET", {}, sink, std::chrono::milliseconds(0),
                 [self](Result<HttpResponse> response) { self->answered(self, response); });
  }

  // On the disk pool.
  Status store(const char* data, size_t n) {
    if (mirror.stopping_) return Status{Errc::io_error, "node is shutting down"};
    if (auto s = pwrite_all(blob->fd(), data, n, written, "blob"); !s) return s;
    hash.update(data, n);
    written += n;
    mirror.bytes_from_upstream_ += n;
    blob->advance(written);
    return Status::Ok();
  }

  void answered(const std::shared_ptr<WholeBlobFetch>& self, const Result<HttpResponse>& response) {
    Status verdict = check_whole_blob(up, blob->digest(), response, size, written, hash);
    if (!verdict) return end(verdict);
    if (!mirror.disk_->post([self] { self->end(self->commit_blob()); }))
      end(Status::Stopping());
  }

  // On the disk pool: publish the verified blob.
  Status commit_blob() {
    const Digest& digest = blob->digest();
    Status outcome = mirror.blobs_.commit_staging(staging_id, digest);
    if (outcome) outcome = mirror.registry_.link_blob(local, digest);
    if (outcome && !size) blob->begin(written);
    if (outcome) mirror.note_completed(digest);
    return outcome;
  }

  void end(const Status& outcome) {
    if (!outcome) mirror.blobs_.remove_staging(staging_id);
    mirror.finish_fetch(blob, outcome);
  }
};

std::shared_ptr<InflightBlob> Mirror::start_fetch(Upstream& up, const std::string& local, const std::string& repo,
                                                  const Digest& digest) {
  auto existing = [&]() -> std::shared_ptr<InflightBlob> {
    auto it = inflight_.find(digest.str());
    return it == inflight_.end() ? nullptr : it->second.lock();
  };
  {
    std::lock_guard lock(mu_);
    if (auto fetch = existing()) return fetch;
  }
  // The staging file is made without mu_ held (file work); a fetch that
  // another thread registered meanwhile wins, and this file goes.
  auto random = site_fetch::random_id("fetch-");
  if (!random) return nullptr;  // the caller reports that it cannot stage the fetch
  auto fd = blobs_.open_staging(*random, /*create=*/true);
  if (!fd) return nullptr;
  std::shared_ptr<WholeBlobFetch> job;
  std::shared_ptr<InflightBlob> winner;
  {
    std::lock_guard lock(mu_);
    if (!(winner = existing())) {
      auto fetch = std::make_shared<InflightBlob>(digest, std::move(*fd));
      inflight_[digest.str()] = fetch;
      job = std::make_shared<WholeBlobFetch>(*this, up, local, repo, *random, fetch);
    }
  }
  if (winner) {
    fd->reset();
    blobs_.remove_staging(*random);
    return winner;
  }
  job->start(job);
  return job->blob;
}

void Mirror::use_pools(IoPool& io, BlockingPool& blocking) {
  for (auto& [ns, upstream] : upstreams_) upstream->use_pools(io, blocking);
  blocking_ = &blocking;
  io_ready_ = true;
}

bool Mirror::blob_on_pool(std::function<Result<BlobSource>()> lookup, BlobHandler done) {
  if (!blocking_) return false;
  return blocking_->post([this, lookup, done] { settle(lookup(), lookup, done); });
}

void Mirror::settle(Result<BlobSource> source, std::function<Result<BlobSource>()> lookup, BlobHandler done) {
  if (!source || !source->size_pending) return done(std::move(source));
  const bool may_retry = source->joined;
  joined(source->inflight, [this, lookup, done, may_retry](Result<BlobSource> settled) {
    if (settled || settled.status().code != Errc::blob_unknown || !may_retry) return done(std::move(settled));
    // That fetch was for another repository; this one may have the blob.
    if (!blob_on_pool(lookup, done)) done(Status::Stopping());
  });
}

bool Mirror::answers_without_waiting() const { return io_ready_ && (!peers_ || !peers_->any_live()); }

void Mirror::blob_async(Upstream& up, const std::string& repo, const std::string& digest_text, bool head,
                        BlobHandler done) {
  if (auto s = validate_repository(repo); !s) return done(s);
  auto digest = Digest::parse(digest_text);
  if (!digest) return done(digest.status());
  const std::string local = mirror_repo(up, repo);
  if (auto b = registry_.open_blob(local, digest->str())) {
    uint64_t size = b->size;
    return done(BlobSource{std::move(*b), nullptr, size});
  }
  if (blobs_.stat(*digest)) {  // stored for another repository: linked (a database write) and shared
    auto lookup = [this, &up, repo, digest_text, head] { return blob(up, repo, digest_text, head); };
    return on_disk_pool([this, lookup, done] { settle(lookup(), lookup, done); }, done);
  }
  std::shared_ptr<InflightBlob> fetch;
  {
    std::lock_guard lock(mu_);
    if (auto it = inflight_.find(digest->str()); it != inflight_.end()) fetch = it->second.lock();
  }
  // The fetch joined may be for another repository, which lacks the blob
  // upstream; this one may have it: asked again once that fetch is over.
  if (fetch)
    return joined(fetch, [this, &up, repo, digest_text, head, done](Result<BlobSource> source) {
      if (!source && source.status().code == Errc::blob_unknown) return blob_async(up, repo, digest_text, head, done);
      done(std::move(source));
    });
  if (!up.available())
    return done(Status{Errc::upstream_unavailable,
                       "blob " + digest->str() + " is not cached and upstream " + up.describe() + " is unavailable"});
  if (head) return head_async(up, repo, *digest, done);
  auto launch = [this, &up, local, repo, digest = *digest, done] {
    auto started = start_fetch(up, local, repo, digest);
    if (!started) return done(Status{Errc::io_error, "cannot stage a blob fetch"});
    joined(started, done);
  };
  if (blobs_.admit(0)) return launch();
  // A fetch into a full data dir first evicts cached blobs (disk work), and
  // fails with the reason (507) if that made no room.
  on_disk_pool(
      [this, launch, done] {
        if (auto s = blobs_.admit_making_room(0); !s) return done(s);
        launch();
      },
      done);
}

void Mirror::joined(const std::shared_ptr<InflightBlob>& fetch, BlobHandler done) {
  note_client_fetch(fetch);
  // Not owned by its own waiter: a fetch whose end never comes (its I/O
  // handlers dropped at stop) must not keep itself, and its clients, alive.
  fetch->when_sized([weak = std::weak_ptr<InflightBlob>(fetch), done](Result<uint64_t> size) {
    auto fetch = weak.lock();
    if (!size || !fetch) return done(size ? Status::Stopping() : size.status());
    done(BlobSource{std::nullopt, fetch, *size});
  });
}

void Mirror::head_async(Upstream& up, const std::string& repo, const Digest& digest, BlobHandler done) {
  up.async_get(repo, "blobs/" + digest.str(), "HEAD", {}, nullptr, kMetadataTimeout,
               [&up, digest, done](Result<HttpResponse> response) {
                 auto size = blob_size_from_head(up, digest, response);
                 if (!size) return done(size.status());
                 done(BlobSource{std::nullopt, nullptr, *size});
               });
}

}  // namespace ep
