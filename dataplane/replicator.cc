#include "dataplane/replicator.h"

#include "base/log.h"

#include <algorithm>
#include <set>

#include "site/chunk_plan.h"

namespace ep {

Replicator::Replicator(Registry& registry, BlobStore& blobs, Mirror& mirror, std::shared_ptr<site::IndexSnapshot> index,
                       std::shared_ptr<site::PeerDirectory> peers, std::string self_name)
    : registry_(registry), blobs_(blobs), mirror_(mirror), index_(std::move(index)), peers_(std::move(peers)),
      self_(std::move(self_name)) {}

Replicator::~Replicator() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Replicator::start() {
  thread_ = std::thread([this] {
    guarded("the replicator", [&] {
      run();
      return Status::Ok();
    });
  });
}

bool Replicator::assigned(const crdt::PinView& pin, const std::string& self, std::vector<std::string> members) {
  if (pin.replicas == 0) return true;
  members.push_back(self);
  auto order = site::rendezvous_order(pin.ref, 0, std::move(members));
  auto end = order.begin() + std::min<size_t>(pin.replicas, order.size());
  return std::find(order.begin(), end, self) != end;
}

void Replicator::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::seconds(3), [&] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    std::vector<std::string> members;
    for (const auto& peer : peers_->live()) members.push_back(peer.name);
    for (const auto& pin : index_->pins()) {
      if (!assigned(pin, self_, members) || registry_.holds_image(pin.ref)) continue;
      replicate(pin);
      std::lock_guard check(mu_);
      if (stopping_) break;
    }
    enforce_budget();
    lock.lock();
  }
}

void Replicator::enforce_budget() {
  const uint64_t budget = budget_;
  if (budget == 0 || blobs_.used_bytes() <= budget) return;
  std::set<std::string> pinned;
  for (const auto& pin : index_->pins())
    if (auto blobs = registry_.image_blobs(pin.ref))
      for (const auto& d : *blobs) pinned.insert(d.str());
  auto access = registry_.blob_access();
  std::vector<std::pair<uint64_t, std::pair<Digest, uint64_t>>> candidates;  // (last access, blob)
  for (auto& [digest, size] : blobs_.list()) {
    if (pinned.count(digest.str())) continue;
    auto it = access.find(digest.str());
    candidates.push_back({it == access.end() ? 0 : it->second, {digest, size}});
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [when, blob] : candidates) {
    if (blobs_.used_bytes() <= budget) break;
    if (blobs_.remove(blob.first)) ++evicted_;
  }
}

void Replicator::yield_to_clients() {
  // At most kMaxYield at a time, so a steady stream of pulls cannot hold
  // the pinned images back for ever.
  constexpr auto kMaxYield = std::chrono::seconds(60);
  const auto until = std::chrono::steady_clock::now() + kMaxYield;
  std::unique_lock lock(mu_);
  while (!stopping_ && mirror_.client_fetch_running() && std::chrono::steady_clock::now() < until)
    cv_.wait_for(lock, std::chrono::milliseconds(200));
}

void Replicator::replicate(const crdt::PinView& pin) {
  auto blobs = registry_.image_blobs(pin.ref);  // the manifest arrives with the index
  if (!blobs) return;
  std::string repo(split_reference(pin.ref).first);
  auto origin = index_->origin(repo);
  Upstream* upstream = origin.ns.empty() ? nullptr : mirror_.upstream_for(origin.ns);
  for (const auto& digest : *blobs) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    if (registry_.stat_blob(repo, digest.str())) continue;
    yield_to_clients();
    auto source = upstream ? mirror_.blob(*upstream, origin.repo, digest.str(), false, /*background=*/true)
                           : mirror_.blob_from_peers(repo, digest.str(), /*background=*/true);
    if (!source) continue;  // try again next round
    if (source->inflight && !source->inflight->wait_complete(std::chrono::minutes(30))) continue;
    ++replicated_;
  }
}

}  // namespace ep
