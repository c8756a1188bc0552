// Mirror, peer side of the site data plane: blobs held by other members
// (found by asking, fetched chunk by chunk, each chunk verified against the
// holder's digests of its verified blob), serving chunks to peers, and the
// per-peer accounting and penalties.
#include <unistd.h>

#include <algorithm>

#include "base/json_text.h"
#include "base/log.h"
#include "dataplane/site_blob.h"
#include "site/chunk_plan.h"

namespace ep {

using namespace site_fetch;

Mirror::Holders Mirror::find_holders(const std::string& repo, const Digest& digest) {
  Holders found;
  if (!peers_) return found;
  wire::ChunkRequest probe;
  probe.set_id(1);
  probe.set_digest(digest.str());
  probe.set_repo(repo);
  probe.set_stat(true);
  probe.set_chunk_size(chunk_size_);
  probe.set_asker(self_name_);
  // Every peer at once, on this thread: a lookup costs about one round trip
  // however large the site, and no thread per peer.
  auto ask = [&](const std::vector<site::PeerAddress>& peers) {
    std::vector<std::string> addresses;
    for (const auto& peer : peers) addresses.push_back(peer.data_address);
    auto answers = chunk_client_->probe_all(addresses, probe, std::chrono::seconds(5));
    for (size_t i = 0; i < peers.size(); ++i) {
      const auto& r = answers[i];
      if (!r || r->status() != wire::ChunkResponse::OK) continue;
      found.peers.push_back(peers[i]);
      found.size = r->blob_size();
      if (found.chunk_digests.empty()) found.chunk_digests.assign(r->chunk_digests().begin(), r->chunk_digests().end());
    }
  };
  // Members that announced the whole blob recently are asked first; without
  // such an announcement, or if they no longer have it, every live member
  // whose holdings summary may contain it (or that announced none yet). A
  // digest no summary contains is held by nobody: nobody is asked.
  const auto live = peers_->live();
  const uint64_t key = site::holdings_key(digest.str());
  std::vector<site::PeerAddress> announced, may_hold;
  for (const auto& peer : live) {
    if (const auto* h = peer.holding(digest.str()); h && h->chunks.empty()) announced.push_back(peer);
    if (peer.may_hold(key)) may_hold.push_back(peer);
  }
  if (!announced.empty() || !may_hold.empty()) ++lookups_asked_;
  if (!announced.empty()) ask(announced);
  if (found.peers.empty() && !may_hold.empty()) ask(may_hold);
  if (announced.empty() && may_hold.empty() && !live.empty()) ++lookups_none_may_hold_;
  // Penalised peers last.
  std::stable_partition(found.peers.begin(), found.peers.end(),
                        [this](const site::PeerAddress& p) { return !penalised(p.name); });
  return found;
}

Result<BlobSource> Mirror::blob_from_peers(const std::string& repo, const std::string& digest_text, bool background) {
  auto digest = Digest::parse(digest_text);
  if (!digest) return digest.status();
  if (!peers_) return Status{Errc::blob_unknown, "blob unknown to repository: " + digest->str()};
  std::shared_ptr<InflightBlob> existing;
  {
    std::lock_guard lock(mu_);
    if (auto it = inflight_.find(digest->str()); it != inflight_.end()) existing = it->second.lock();
  }
  if (existing)  // its size is waited for by callback (blob_on_pool, or the replicator's when_done)
    return BlobSource{std::nullopt, existing, 0, /*size_pending=*/true, /*joined=*/false};
  // Who holds it completely? Ask the live peers (a pushed blob lives where it was pushed).
  auto holders = find_holders(repo, *digest);
  if (holders.peers.empty()) return Status{Errc::blob_unknown, "blob unknown to repository: " + digest->str()};
  const uint64_t size = holders.size;
  if (auto s = blobs_.admit_making_room(holders.size); !s) return s;
  auto fetch = start_peer_fetch(repo, *digest, std::move(holders));
  if (!fetch) return Status{Errc::io_error, "cannot stage a blob fetch"};
  if (!background) note_client_fetch(fetch);
  return BlobSource{std::nullopt, fetch, size};
}

std::shared_ptr<InflightBlob> Mirror::start_peer_fetch(const std::string& repo, const Digest& digest,
                                                       Holders holders, Upstream* upstream, std::string upstream_repo) {
  return start_chunked(digest, holders.size, [this, repo, holders, upstream, upstream_repo](auto fetch, auto sb) {
    // The holders' digests of their verified blob, if they match our chunking.
    const bool trusted = holders.chunk_digests.size() == sb->have.size();
    // Chunks spread over the holders, and over members that announced the
    // chunk (partial copies: the designated fetchers of a cold pull), several
    // in flight; one that fails, stalls or sends a chunk that does not
    // verify is skipped.
    assemble(fetch, sb, repo, [this, sb, holders, trusted, upstream, upstream_repo](uint64_t i) -> Status {
      const std::string expected = trusted ? holders.chunk_digests[i] : std::string();
      const auto live = peers_ ? peers_->live() : std::vector<site::PeerAddress>{};
      std::vector<site::PeerAddress> sources = holders.peers;
      for (const auto& peer : live)
        if (const auto* h = peer.holding(sb->digest.str()); h && !h->chunks.empty() && h->has_chunk(i))
          if (std::none_of(sources.begin(), sources.end(), [&](const auto& s) { return s.name == peer.name; }))
            sources.push_back(peer);
      if (!sources.empty())
        std::rotate(sources.begin(), sources.begin() + static_cast<long>(i % sources.size()), sources.end());
      std::stable_partition(sources.begin(), sources.end(), [this](const auto& p) { return !penalised(p.name); });
      for (const auto& holder : sources) {
        auto request = chunk_request(sb->digest, i, sb->chunk_size, sb->size);
        request.set_asker(self_name_);
        if (auto stored = chunk_from_peer(*sb, holder.name, holder.data_address, request,
                                          stall_bound(holder.name, kHolderStall), expected))
          return *stored;
      }
      // Every peer with the chunk was tried: the designated fetchers next,
      // chosen as a cold pull's members choose them (an upstream without
      // Range support has one per blob), so they agree on who uses the uplink.
      if (upstream)
        return chunk_via_fetchers(*upstream, upstream_repo, *sb, i, live,
                                  serves_ranges(*upstream, upstream_repo, sb->digest, {}));
      return Status{Errc::blob_unknown, "no peer could provide " + sb->digest.str()};
    });
  });
}

transfer::ChunkReply Mirror::serve_chunk(const wire::ChunkRequest& request) {
  transfer::ChunkReply reply;
  auto& response = reply.header;
  auto digest = Digest::parse(request.digest());
  // Chunks are cut at this node's chunk size only (the site shares one): a
  // peer cannot make us build digest lists of any granularity.
  if (!digest || (request.chunk_size() != chunk_size_ && !(request.stat() && request.chunk_size() == 0))) {
    response.set_status(wire::ChunkResponse::FAILED);
    response.set_message("bad request");
    return reply;
  }
  if (request.stat()) {
    // Repository-scoped, like every blob read: a peer only admits what that repository holds.
    auto size = registry_.stat_blob(request.repo(), digest->str());
    std::shared_ptr<const ChunkDigestList> digests;
    if (size && request.chunk_size() > 0) {
      auto list = chunk_digests_.of(*digest, request.chunk_size());  // re-verifies the blob
      if (list) digests = *list;
      else size = list.status();
    }
    response.set_status(size ? wire::ChunkResponse::OK : wire::ChunkResponse::MISSING);
    if (size) response.set_blob_size(*size);
    if (digests) *response.mutable_chunk_digests() = {digests->begin(), digests->end()};
    return reply;
  }
  auto range = site::chunk_range(request.blob_size(), request.chunk_size(), request.index());
  auto serve_from = [&](int fd, std::string chunk_digest) {
    reply.fd = UniqueFd(::dup(fd));
    reply.offset = range.offset;
    reply.length = range.length;
    response.set_chunk_digest(std::move(chunk_digest));
    std::lock_guard lock(mu_);
    peer_stats_[request.asker()].bytes_to += range.length;
    return std::move(reply);
  };
  if (auto blob = blobs_.open(*digest); blob && blob->size == request.blob_size()) {
    auto list = chunk_digests_.of(*digest, request.chunk_size());
    if (list && request.index() < (*list)->size()) return serve_from(blob->fd.get(), (**list)[request.index()]);
  }
  std::shared_ptr<SiteBlob> sb;
  {
    std::lock_guard lock(mu_);
    if (auto it = site_blobs_.find(digest->str()); it != site_blobs_.end()) {
      sb = it->second;
      sb->last_used = std::chrono::steady_clock::now();
    }
  }
  Upstream* up = upstream_for(request.ns());
  if (!sb && request.fetch() && up && request.chunk_size() == chunk_size_) sb = site_blob(*digest, request.blob_size());
  if (sb && sb->chunk_size == request.chunk_size() && request.index() < sb->have.size()) {
    bool have;
    {
      std::lock_guard lock(sb->mu);
      have = sb->have[request.index()];
    }
    Status s = have ? Status::Ok() : Status{Errc::blob_unknown, "chunk not here"};
    if (!have && request.fetch() && up) s = chunk_from_upstream(*up, request.repo(), *sb, request.index(), request.whole_blob());
    if (s) {
      std::string chunk_digest;
      {
        std::lock_guard lock(sb->mu);
        chunk_digest = sb->chunk_digests[request.index()];
      }
      return serve_from(sb->fd.get(), std::move(chunk_digest));
    }
    response.set_status(request.fetch() ? wire::ChunkResponse::FAILED : wire::ChunkResponse::MISSING);
    response.set_message(s.message);
    return reply;
  }
  response.set_status(wire::ChunkResponse::MISSING);
  return reply;
}

void Mirror::count_from_peer(const std::string& peer, uint64_t bytes, std::chrono::steady_clock::duration elapsed) {
  const double ms = std::chrono::duration<double, std::milli>(elapsed).count();
  std::lock_guard lock(mu_);
  auto& p = peer_stats_[peer];
  p.bytes_from += bytes;
  p.chunk_ms = p.chunk_ms == 0 ? ms : 0.8 * p.chunk_ms + 0.2 * ms;
}

std::chrono::milliseconds Mirror::stall_bound(const std::string& peer, std::chrono::milliseconds most) {
  std::lock_guard lock(mu_);
  auto it = peer_stats_.find(peer);
  if (it == peer_stats_.end() || it->second.chunk_ms == 0) return most;
  auto adaptive = std::chrono::milliseconds(static_cast<int64_t>(4 * it->second.chunk_ms));
  return std::clamp<std::chrono::milliseconds>(adaptive, kMinStall, most);
}

void Mirror::penalise(const std::string& peer, const std::string& why) {
  log_warning("peer", "peer " + printable(peer) + ": " + why + "; chunk discarded, peer used last for a while");
  std::lock_guard lock(mu_);
  ++peer_stats_[peer].bad_chunks;
  penalised_until_[peer] = std::chrono::steady_clock::now() + kPenalty;
}

bool Mirror::penalised(const std::string& peer) {
  std::lock_guard lock(mu_);
  auto it = penalised_until_.find(peer);
  return it != penalised_until_.end() && it->second > std::chrono::steady_clock::now();
}

std::vector<std::string> Mirror::prefer_trusted(std::vector<std::string> order) {
  std::stable_partition(order.begin(), order.end(), [this](const std::string& p) { return !penalised(p); });
  return order;
}

std::map<std::string, Mirror::PeerStats> Mirror::peer_stats() {
  std::lock_guard lock(mu_);
  auto out = peer_stats_;
  out.erase("");  // askers of older versions, which do not name themselves
  return out;
}

void Mirror::note_completed(const Digest& digest) {
  constexpr size_t kRecent = 64;  // enough for the images of a rollout; older ones are found by asking
  std::lock_guard lock(mu_);
  recent_blobs_.erase(std::remove(recent_blobs_.begin(), recent_blobs_.end(), digest.str()), recent_blobs_.end());
  recent_blobs_.push_back(digest.str());
  if (recent_blobs_.size() > kRecent) recent_blobs_.pop_front();
  ++holdings_version_;
}

std::vector<wire::BlobHolding> Mirror::holdings() {
  std::vector<wire::BlobHolding> out;
  std::lock_guard lock(mu_);
  for (const auto& [digest, sb] : site_blobs_) {
    wire::BlobHolding h;
    h.set_digest(digest);
    std::string bits;
    {
      std::lock_guard blob_lock(sb->mu);
      bits.assign((sb->have.size() + 7) / 8, '\0');
      bool any = false;
      for (uint64_t i = 0; i < sb->have.size(); ++i)
        if (sb->have[i]) {
          bits[i / 8] = static_cast<char>(static_cast<unsigned char>(bits[i / 8]) | (1u << (i % 8)));
          any = true;
        }
      if (!any) continue;
    }
    h.set_chunks(bits);
    out.push_back(std::move(h));
  }
  for (const auto& digest : recent_blobs_) {
    if (site_blobs_.count(digest)) continue;
    wire::BlobHolding h;
    h.set_digest(digest);  // no chunks: the whole blob
    out.push_back(std::move(h));
  }
  return out;
}

}  // namespace ep
