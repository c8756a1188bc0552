// Mirror: pull-through of images from upstream registries (`?ns=`).
//
// Owns the upstreams and the single-flight table of blob fetches. Mirrored
// content lives in local repositories named "<namespace>/<upstream repo>"
// (':' in a namespace becomes '-'), so two upstreams never collide and a
// pushed repository is never shadowed. Tags are revalidated upstream with a
// HEAD at most once per tag-ttl; when the upstream is down, the last known
// digest is served at once. Blobs are fetched once per node however many
// clients ask, written to a staging file while clients stream it, verified,
// then published (BlobStore invariant). A fetch from upstream holds no
// thread: its request runs on the node's I/O pool and its writes on the
// Mirror's disk pool. blob_async answers without blocking (a single node);
// the other calls may block: call them from a blocking pool.
#pragma once

#include <atomic>
#include <functional>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "base/blocking_pool.h"
#include "dataplane/chunk_digests.h"
#include "dataplane/inflight_blob.h"
#include "dataplane/tag_revalidations.h"
#include "site/peer_directory.h"
#include "transfer/chunk_service.h"
#include "registry/registry.h"
#include "storage/blob_store.h"
#include "upstream/upstream.h"

namespace ep {

class IoPool;

struct BlobSource {
  std::optional<OpenBlob> local;           // complete, verified blob
  std::shared_ptr<InflightBlob> inflight;  // or one still arriving
  uint64_t size = 0;
  // `inflight` may not know its size yet (blob_on_pool waits for it
  // without a thread); `joined`: a fetch started for another repository,
  // which may lack the blob upstream.
  bool size_pending = false, joined = false;
};

// The Mirror's own pools (settings disk-threads and chunk-threads).
struct MirrorPools {
  size_t disk_threads = 4;    // writes and hashes body pieces of upstream fetches, mirrored manifests
  size_t chunk_threads = 64;  // jobs obtaining chunks of site blobs (four per blob); more wait
};

class Mirror {
 public:
  Mirror(Registry& registry, BlobStore& blobs, std::map<std::string, std::unique_ptr<Upstream>> upstreams,
         std::string default_ns, MirrorPools pools = {});
  ~Mirror();  // stops and waits for running fetches
  // Makes running and future fetches give up at their next read.
  // Fetches give up at once, requests to upstreams and peers included
  // (waiting clients get an error), and every fetch has ended when this
  // returns. Call before the I/O pool goes.
  void stop();

  // The upstream serving a request with this ?ns= (empty: the default), or null.
  Upstream* upstream_for(const std::string& ns) const;

  using ManifestHandler = std::function<void(Result<StoredManifest>)>;
  // A manifest by tag or digest, cached or from upstream (a tag is
  // revalidated as `revalidations` decides); never blocks: `done` is called
  // once, inline, from an I/O thread, a CAF worker or the disk pool.
  void manifest_async(Upstream& upstream, const std::string& repo, const std::string& reference, ManifestHandler done);
  // Who decides when tags are revalidated (the revalidation actor); set
  // before requests arrive.
  void set_revalidations(std::unique_ptr<TagRevalidations> revalidations);
  // May block (a site member asks its peers who holds the blob), but never
  // waits for a fetch: one in flight comes back with size_pending
  // (blob_on_pool waits for it by callback, and counts it as a client's for
  // client_fetch_running; the replicator's prefetch waits with when_done).
  Result<BlobSource> blob(Upstream& upstream, const std::string& repo, const std::string& digest, bool head);
  using BlobHandler = std::function<void(Result<BlobSource>)>;
  // blob() for a client that must not wait on a thread: `done` is called
  // once, inline, from an I/O thread or from the disk pool. Only while
  // answers_without_waiting(): a site member asks its peers first, which
  // blob() does (blocking).
  void blob_async(Upstream& upstream, const std::string& repo, const std::string& digest, bool head, BlobHandler done);
  bool answers_without_waiting() const;
  // Requests to upstreams run on `io` from now on; their name lookups, and
  // client lookups that block (blob_on_pool), on `blocking`. Before this,
  // no blob can be fetched. Both must outlive stop().
  void use_pools(IoPool& io, BlockingPool& blocking);
  // Whether a client is waiting on a fetch here now.
  bool client_fetch_running();

  std::string mirror_repo(const Upstream& upstream, const std::string& repo) const;
  // The upstream namespace whose cache holds local repository `repo`, or
  // null: clients may read such repositories but not write them.
  const Upstream* cache_owner(const std::string& repo) const;

  // Site data plane (site_fetch.cc). Once enabled, a cold blob is fetched in
  // chunks: each from the chunk's designated fetcher (rendezvous order over
  // the live members), which fetches it from upstream with a Range request
  // once for the whole site; the next member if that fails; upstream last.
  // Also resumes partial blobs left by an earlier run (their verified chunks).
  void enable_site(std::shared_ptr<site::PeerDirectory> peers, std::shared_ptr<transfer::ChunkClient> client,
                   std::string self_name, uint64_t chunk_size);
  // A blob pushed to another member: found by asking the live peers, then
  // fetched in chunks from those holding it, streamed while it arrives.
  // `background`: for the replicator's prefetch, which yields to clients
  // (see client_fetch_running). A fetch in flight comes back as blob()'s.
  Result<BlobSource> blob_from_peers(const std::string& repo, const std::string& digest, bool background = false);
  // Runs a blocking lookup (blob() or blob_from_peers()) on
  // the blocking pool, then waits for a fetch's size without a thread, and
  // calls `done` once; a joined fetch that found the blob unknown upstream
  // runs the lookup once more. false: the node stops (`done` not called).
  bool blob_on_pool(std::function<Result<BlobSource>()> lookup, BlobHandler done);
  // What blob_on_pool does once `lookup` gave `source`.
  void settle(Result<BlobSource> source, std::function<Result<BlobSource>()> lookup, BlobHandler done);
  // Answers a peer's chunk request (the ChunkServer's provider).
  transfer::ChunkReply serve_chunk(const wire::ChunkRequest& request);
  uint64_t bytes_from_upstream() const { return bytes_from_upstream_; }
  // Lookups of a blob missing here: how many asked peers, and how many asked
  // nobody because no live member's holdings summary may contain it.
  struct HolderLookups {
    uint64_t asked = 0, none_may_hold = 0;
  };
  HolderLookups holder_lookups() const { return {lookups_asked_, lookups_none_may_hold_}; }

  struct PeerStats {
    uint64_t bytes_from = 0, bytes_to = 0;  // chunk bytes fetched from / served to the peer
    uint64_t bad_chunks = 0;                // chunks from it that did not verify
    double chunk_ms = 0;                    // recent time per chunk (moving average; 0: none yet)
  };
  std::map<std::string, PeerStats> peer_stats();  // by member name
  // What this node announces to peers: blobs being assembled here (with the
  // chunks present) and the most recently completed ones.
  std::vector<wire::BlobHolding> holdings();
  // Changes whenever holdings() would say more: a chunk or a blob completed.
  uint64_t holdings_version() const { return holdings_version_; }
  // A blob now stored here completely (assembled, fetched or pushed): it is
  // announced among the recent ones.
  void note_completed(const Digest& digest);

  struct Partial {
    std::string digest;
    uint64_t size = 0, present = 0;
  };
  // Blobs being fetched or assembled from chunks here, with progress.
  std::vector<Partial> partial_blobs();

 private:
  // Manifests and HEADs are small: a stalled upstream is given up on sooner.
  static constexpr std::chrono::milliseconds kMetadataTimeout{5000};
  // The size a blob HEAD answered, or why there is none.
  static Result<uint64_t> blob_size_from_head(const Upstream& up, const Digest& digest,
                                              const Result<HttpResponse>& head);
  void joined(const std::shared_ptr<InflightBlob>& fetch, BlobHandler done);
  // Sizes the manifests served here declare for their config and layers, so
  // a cold blob they list starts its site fetch without a HEAD upstream: one
  // uplink round trip less per blob and node (the blob's digest is still
  // verified; a wrong size only fails that fetch).
  void note_declared_sizes(const StoredManifest& manifest);
  std::optional<uint64_t> declared_size(const Digest& digest);
  void head_async(Upstream& up, const std::string& repo, const Digest& digest, BlobHandler done);
  struct WholeBlobFetch;  // upstream_fetch.cc
  void revalidate_async(Upstream& up, const std::string& local, const std::string& repo, const std::string& reference,
                        std::optional<Digest> known, std::function<void(TagRevalidations::Outcome)> end);
  void fetch_manifest_async(Upstream& up, const std::string& local, const std::string& repo,
                            const std::string& reference, const std::string& tag, ManifestHandler done);
  // Runs `work` on the disk pool, or tells `refused` the node is stopping
  // (a manifest or blob handler).
  void on_disk_pool(std::function<void()> work, const std::function<void(Status)>& refused);
  std::shared_ptr<InflightBlob> start_fetch(Upstream& upstream, const std::string& local, const std::string& repo,
                                            const Digest& digest);
  void finish_fetch(const std::shared_ptr<InflightBlob>& blob, const Status& outcome);

  struct SiteBlob;
  std::shared_ptr<SiteBlob> site_blob(const Digest& digest, uint64_t size);
  // Chunk `index` from upstream, by a Range request, or with `whole_blob`
  // (an upstream without Range support) by getting the whole blob here in
  // one GET that brings every chunk.
  Status chunk_from_upstream(Upstream& upstream, const std::string& repo, SiteBlob& blob, uint64_t index,
                             bool whole_blob);
  // Chunk `index` of a mirrored blob: from a peer that announced it, else
  // chunk_via_fetchers.
  Status obtain_chunk(Upstream& upstream, const std::string& repo, SiteBlob& blob, uint64_t index,
                      bool upstream_ranges);
  // The chunk's designated fetchers among `live` and this node, in
  // rendezvous order; upstream directly if every one failed. Without
  // `upstream_ranges` (Mirror::serves_ranges) the blob has one designated
  // fetcher, which gets it in one GET: every caller must agree on it, or the
  // blob crosses the uplink once per disagreeing member.
  Status chunk_via_fetchers(Upstream& upstream, const std::string& repo, SiteBlob& blob, uint64_t index,
                            const std::vector<site::PeerAddress>& live, bool upstream_ranges);
  using ChunkedBody = std::function<void(std::shared_ptr<InflightBlob>, std::shared_ptr<SiteBlob>)>;
  // Registers a chunked fetch (single flight by digest) and runs `body`,
  // which starts its assembly and returns.
  std::shared_ptr<InflightBlob> start_chunked(const Digest& digest, uint64_t size, ChunkedBody body);
  // Publishes a verified chunked blob (or discards it) and ends the fetch.
  void publish_chunked(const std::shared_ptr<InflightBlob>& fetch, const std::shared_ptr<SiteBlob>& sb,
                       const std::string& repo, Status outcome);
  struct Holders {
    std::vector<site::PeerAddress> peers;  // members holding the blob completely
    uint64_t size = 0;
    std::vector<std::string> chunk_digests;  // from a holder's verified blob (empty: unknown)
  };
  Holders find_holders(const std::string& repo, const Digest& digest);
  // Assembles a blob from the members that hold it. For a mirrored blob
  // (`upstream` set; `upstream_repo` its name there), a chunk no holder can
  // provide comes from its designated fetchers (then upstream) instead, so a
  // bad or vanished holder cannot fail the pull.
  std::shared_ptr<InflightBlob> start_peer_fetch(const std::string& repo, const Digest& digest, Holders holders,
                                                 Upstream* upstream = nullptr, std::string upstream_repo = {});
  // Writes a verified chunk into the staging file and marks it present.
  Status store_chunk(SiteBlob& blob, uint64_t index, std::string_view data, const std::string& digest);
  // One GET for chunk `index` (claimed by the caller): a Range request, or
  // the whole blob (`whole_blob`, the caller set streaming_whole). An
  // upstream that ignores Range answers with the whole blob too. From a
  // whole blob, every chunk nobody here is fetching is written, unless this
  // node streams it already (`another_stream`: wait for that one instead).
  Status stream_from_upstream(Upstream& upstream, const std::string& repo, SiteBlob& blob, uint64_t index,
                              bool whole_blob, bool& another_stream);
  void mark_present(SiteBlob& blob, uint64_t index, const std::string& digest);  // caller holds blob.mu
  // Records a present chunk in the blob's journal; without blob.mu held (a file write).
  void journal_chunk(const SiteBlob& blob, uint64_t index, const std::string& digest);
  void resume_partial_blobs();
  bool fits_on_disk(int partial_fd, uint64_t blob_size) const;
  // Takes the partial blobs nobody assembled for a while out of
  // site_blobs_ (caller holds mu_); their files are removed by the caller
  // once it released mu_ (remove_site_blob_files).
  std::vector<std::shared_ptr<SiteBlob>> take_idle_site_blobs();
  void remove_site_blob_files(const SiteBlob& blob);
  // A new partial blob with its staging file and journal (file work: not under mu_).
  std::shared_ptr<SiteBlob> make_site_blob(const Digest& digest, uint64_t size);
  bool site_fetch_failed_recently(const Digest& digest);
  // Accounts a chunk from `peer` that took `elapsed`.
  void count_from_peer(const std::string& peer, uint64_t bytes, std::chrono::steady_clock::duration elapsed);
  // Asks `peer` for the chunk `request` names and stores it if it verifies
  // (against `expected`, else the digest the peer recorded); accounts it. A
  // chunk that arrives whole but does not verify penalises the peer.
  // nullopt: this peer could not provide it (the caller tries another).
  std::optional<Status> chunk_from_peer(SiteBlob& blob, const std::string& peer, const std::string& address,
                                        const wire::ChunkRequest& request, std::chrono::milliseconds stall,
                                        const std::string& expected);
  // How long `peer` may stall before the next source is tried (adaptive, at most `most`).
  std::chrono::milliseconds stall_bound(const std::string& peer, std::chrono::milliseconds most);
  void penalise(const std::string& peer, const std::string& why);
  bool penalised(const std::string& peer);
  std::vector<std::string> prefer_trusted(std::vector<std::string> order);  // penalised peers last
  // Whether `upstream` serves Range requests for blobs: its HEAD's
  // Accept-Ranges if it says "bytes", else what its GETs showed, else a GET
  // of the blob's first byte (206 or a refused 200) tells.
  bool serves_ranges(Upstream& upstream, const std::string& repo, const Digest& digest, const std::string& accept_ranges);
  // `ranges`: the upstream serves Range requests; if not, one designated
  // fetcher gets the whole blob and every member asks it for each chunk.
  std::shared_ptr<InflightBlob> start_site_fetch(Upstream& upstream, const std::string& local, const std::string& repo,
                                                 const Digest& digest, uint64_t size, bool ranges);
  // Obtains every chunk with `obtain` (kParallelChunks jobs on the chunk
  // pool), streams the verified-so-far prefix to clients, checks the digest
  // and publishes; returns at once, the job that ends last publishes.
  void assemble(std::shared_ptr<InflightBlob> blob, std::shared_ptr<SiteBlob> site, const std::string& repo,
                std::function<Status(uint64_t index)> obtain);
  struct Assembly;
  void assembly_worker(const std::shared_ptr<Assembly>& assembly);
  void worker_ended(const std::shared_ptr<Assembly>& assembly, const Status& outcome);
  void hash_prefix(Assembly& assembly);
  void finish_assembly(Assembly& assembly);

  Registry& registry_;
  BlobStore& blobs_;
  std::map<std::string, std::unique_ptr<Upstream>> upstreams_;
  std::string default_ns_;

  std::mutex mu_;
  std::map<std::string, std::weak_ptr<InflightBlob>> inflight_;  // by digest
  std::unique_ptr<TagRevalidations> revalidations_;
  std::atomic<bool> stopping_{false};
  // The jobs that obtain a site blob's chunks (kParallelChunks per blob);
  // the last one to end publishes it. Declared last: stopped and joined
  // first when the Mirror goes (with disk_).
  std::unique_ptr<BlockingPool> chunk_workers_;
  // Writes and commits of blobs fetched without a thread (WholeBlobFetch),
  // and blob_async's work that touches the database. Short jobs: small.
  // Stopped after chunk_workers_.
  std::unique_ptr<BlockingPool> disk_;
  BlockingPool* blocking_ = nullptr;  // the node's (use_pools)
  std::atomic<bool> io_ready_{false};
  std::atomic<uint64_t> bytes_from_upstream_{0};
  std::atomic<uint64_t> lookups_asked_{0}, lookups_none_may_hold_{0};
  std::shared_ptr<site::PeerDirectory> peers_;
  std::shared_ptr<transfer::ChunkClient> chunk_client_;
  std::string self_name_;
  uint64_t chunk_size_ = 4 << 20;
  std::map<std::string, std::shared_ptr<SiteBlob>> site_blobs_;  // by digest; guarded by mu_
  std::unordered_map<std::string, uint64_t> declared_sizes_;       // digest -> size; guarded by mu_
  static constexpr size_t kMaxDeclaredSizes = 1 << 16;             // then it starts over
  std::map<std::string, PeerStats> peer_stats_;                   // guarded by mu_
  // Blobs whose chunks verified but whose whole digest did not: fetched from
  // upstream directly for a while (guarded by mu_).
  std::map<std::string, std::chrono::steady_clock::time_point> site_fetch_failed_;
  std::deque<std::string> recent_blobs_;  // digests completed here, newest last (guarded by mu_)
  std::vector<std::weak_ptr<InflightBlob>> client_fetches_;  // fetches clients wait on (guarded by mu_)
  void note_client_fetch(const std::shared_ptr<InflightBlob>& fetch);
  std::atomic<uint64_t> holdings_version_{0};
  std::map<std::string, std::chrono::steady_clock::time_point> penalised_until_;  // guarded by mu_
  ChunkDigests chunk_digests_{blobs_};
};

}  // namespace ep
