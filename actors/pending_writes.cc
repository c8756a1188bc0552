#include "actors/pending_writes.h"

#include "actors/store_actor.h"
#include "base/digest.h"
#include "registry/registry.h"
#include "storage/kv_store.h"

namespace ep::actors {

void PendingWrites::add(const StoreWrites& writes) {
  for (size_t i = 0; i + 1 < writes.puts.size(); i += 2) entries_[writes.puts[i]] = writes.puts[i + 1];
  for (const auto& key : writes.deletes) entries_[key] = std::nullopt;
  for (size_t i = 0; i + 2 < writes.manifests.size(); i += 3) {
    auto [it, added] = manifests_.try_emplace(writes.manifests[i], writes.manifests[i + 1], writes.manifests[i + 2]);
    if (!added) continue;
    bytes_ += writes.manifests[i + 2].size();
    arrival_.push_back(writes.manifests[i]);
  }
  for (size_t i = 0; i + 3 < writes.tags.size(); i += 4)
    tags_[{writes.tags[i], writes.tags[i + 1], writes.tags[i + 2]}] = writes.tags[i + 3];
  bound();
}

void PendingWrites::bound() {
  if (bytes_ <= kMaxBytes) return;
  // Manifest bodies are what grows (up to 4 MiB each): the oldest half goes.
  const size_t drop = arrival_.size() / 2 + 1;
  for (size_t i = 0; i < drop && i < arrival_.size(); ++i) {
    if (auto it = manifests_.find(arrival_[i]); it != manifests_.end()) {
      bytes_ -= std::min<uint64_t>(bytes_, it->second.second.size());
      manifests_.erase(it);
      ++dropped_;
    }
  }
  arrival_.erase(arrival_.begin(), arrival_.begin() + static_cast<std::ptrdiff_t>(std::min(drop, arrival_.size())));
}

Status PendingWrites::flush(KvStore& kv, Registry& registry) {
  Status first = Status::Ok();
  auto note = [&](Status s, const std::string& what) {
    if (!s && first) first = Status{s.code, what + ": " + s.message};
  };
  if (!entries_.empty()) {
    KvBatch batch;
    for (const auto& [key, value] : entries_) value ? batch.put(key, *value) : batch.del(key);
    note(kv.write(batch), "cannot persist the site index");
  }
  // Manifests before the tags that point at them.
  for (const auto& [digest, content] : manifests_)
    note(registry.store_manifest_content(digest, content.first, content.second),
         "cannot store replicated manifest " + digest);
  for (const auto& [key, digest_text] : tags_) {
    std::optional<Digest> digest;
    if (auto d = Digest::parse(digest_text)) digest = *d;
    const auto& [ns, repo, tag] = key;
    note(registry.apply_replicated_tag(ns, repo, tag, digest), "cannot apply replicated tag " + repo + ":" + tag);
  }
  if (first) {
    entries_.clear();
    manifests_.clear();
    tags_.clear();
    arrival_.clear();
    bytes_ = 0;
  }
  return first;
}

}  // namespace ep::actors
