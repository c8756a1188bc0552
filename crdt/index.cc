#include "crdt/index.h"

#include <limits>

#include <algorithm>

#include "base/digest.h"

namespace ep::crdt {

Hlc from_wire(const wire::Timestamp& ts) { return Hlc{ts.wall_ms(), ts.logical(), ts.node()}; }

void to_wire(const Hlc& hlc, wire::Timestamp* out) {
  out->set_wall_ms(hlc.wall_ms);
  out->set_logical(hlc.logical);
  out->set_node(hlc.node);
}

std::string tag_entry_key(const TagKey& key) {
  std::string k = "t";
  k.append(key.ns).push_back('\0');
  k.append(key.repo).push_back('\0');
  k.append(key.tag);
  return k;
}

std::string pin_entry_key(const std::string& ref) { return "p" + ref; }

uint32_t bucket_of(const std::string& entry_key) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a: stable across builds and hosts
  for (unsigned char c : entry_key) h = (h ^ c) * 1099511628211ull;
  return static_cast<uint32_t>(h % kBuckets);
}

namespace {
TagKey key_of(const wire::TagKey& k) { return TagKey{k.ns(), k.repo(), k.tag()}; }

std::string id_key(const wire::Timestamp& ts) {
  // Sorts like the Hlc: fixed-width wall and logical, then node.
  char buf[40];
  std::snprintf(buf, sizeof buf, "%020llu.%010u.", static_cast<unsigned long long>(ts.wall_ms()), ts.logical());
  return buf + ts.node();
}

const wire::TagWrite* winner(const std::vector<wire::TagWrite>& writes) {
  return writes.empty() ? nullptr : &writes.back();  // kept sorted by ts
}

TagVersion version_of(const wire::TagWrite& w) {
  return TagVersion{w.digest(), w.media_type(), from_wire(w.ts()), w.writer()};
}
}  // namespace

void Index::touch(const std::string& key) {
  auto b = bucket_of(key);
  bucket_cache_[b].reset();
  if (tags_.count(key) || pins_.count(key))
    bucket_keys_[b].insert(key);
  else
    bucket_keys_[b].erase(key);
}

void Index::note(const Hlc& ts) {
  if (max_ts_ < ts) max_ts_ = ts;
}

wire::IndexDelta Index::put_tag(const TagKey& key, const std::string& digest, const std::string& media_type,
                                const Hlc& ts, const std::string& writer) {
  wire::IndexDelta delta;
  auto* w = delta.add_tags();
  w->mutable_key()->set_ns(key.ns);
  w->mutable_key()->set_repo(key.repo);
  w->mutable_key()->set_tag(key.tag);
  w->set_digest(digest);
  w->set_media_type(media_type);
  w->set_writer(writer);
  to_wire(ts, w->mutable_ts());
  if (auto it = tags_.find(tag_entry_key(key)); it != tags_.end() && !it->second.writes.empty())
    *w->mutable_observed() = winner(it->second.writes)->ts();
  merge_tag(*w);
  return delta;
}

wire::IndexDelta Index::delete_tag(const TagKey& key, const Hlc& ts, const std::string& writer) {
  return put_tag(key, "", "", ts, writer);
}

wire::IndexDelta Index::add_pin(const std::string& ref, uint32_t replicas, const Hlc& ts, bool automatic) {
  wire::IndexDelta delta;
  auto* add = delta.add_pin_adds();
  add->set_ref(ref);
  to_wire(ts, add->mutable_id());
  add->set_replicas(replicas);
  add->set_pinned_by(ts.node);
  add->set_automatic(automatic);
  merge_pin_add(*add);
  return delta;
}

std::optional<wire::IndexDelta> Index::use_pin(const std::string& ref, uint64_t wall_ms, uint64_t step_ms) {
  auto it = pins_.find(pin_entry_key(ref));
  if (it == pins_.end() || wall_ms < it->second.last_used_ms + step_ms) return std::nullopt;
  wire::IndexDelta delta;
  auto* use = delta.add_pin_uses();
  use->set_ref(ref);
  use->set_wall_ms(wall_ms);
  merge_pin_use(*use);
  return delta;
}

std::optional<wire::IndexDelta> Index::remove_pin(const std::string& ref) {
  auto it = pins_.find(pin_entry_key(ref));
  if (it == pins_.end()) return std::nullopt;
  wire::IndexDelta delta;
  for (const auto& [id, add] : it->second.adds) {
    if (it->second.removes.count(id)) continue;
    auto* remove = delta.add_pin_removes();
    remove->set_ref(ref);
    *remove->mutable_id() = add.id();
  }
  if (delta.pin_removes_size() == 0) return std::nullopt;
  for (const auto& r : delta.pin_removes()) merge_pin_remove(r);
  return delta;
}

bool Index::merge_tag(const wire::TagWrite& write) {
  const Hlc ts = from_wire(write.ts());
  const Hlc observed = from_wire(write.observed());
  const std::string key = tag_entry_key(key_of(write.key()));
  auto& writes = tags_[key].writes;
  for (const auto& existing : writes) {
    if (from_wire(existing.ts()) == ts) return false;  // duplicate delivery
    if (!existing.observed().node().empty() && ts <= from_wire(existing.observed())) return false;  // overwritten
  }
  if (!observed.zero())
    writes.erase(std::remove_if(writes.begin(), writes.end(),
                                [&](const wire::TagWrite& x) { return from_wire(x.ts()) <= observed; }),
                 writes.end());
  auto pos = std::upper_bound(writes.begin(), writes.end(), ts,
                              [](const Hlc& t, const wire::TagWrite& x) { return t < from_wire(x.ts()); });
  writes.insert(pos, write);
  tags_[key].changed = ++counter_;
  note(ts);
  touch(key);
  return true;
}

bool Index::merge_pin_add(const wire::PinAdd& add) {
  const std::string key = pin_entry_key(add.ref());
  auto& state = pins_[key];
  auto id = id_key(add.id());
  if (state.adds.count(id)) return false;
  state.adds.emplace(id, add);
  state.changed = ++counter_;
  note(from_wire(add.id()));
  touch(key);
  return true;
}

bool Index::merge_pin_remove(const wire::PinRemove& remove) {
  const std::string key = pin_entry_key(remove.ref());
  auto& state = pins_[key];
  auto id = id_key(remove.id());
  if (state.removes.count(id)) return false;
  state.removes.emplace(id, remove);
  state.changed = ++counter_;
  touch(key);
  return true;
}

bool Index::merge_pin_use(const wire::PinUse& use) {
  const std::string key = pin_entry_key(use.ref());
  // Kept even before the add arrives (delivery order must not matter); a
  // use alone pins nothing and is dropped by collect_garbage.
  auto& state = pins_[key];
  if (use.wall_ms() <= state.last_used_ms) return false;
  state.last_used_ms = use.wall_ms();
  state.changed = ++counter_;
  touch(key);
  return true;
}

void Index::append_pin(const PinState& state, const std::string& key, wire::IndexDelta& out) const {
  for (const auto& [id, add] : state.adds) *out.add_pin_adds() = add;
  for (const auto& [id, remove] : state.removes) *out.add_pin_removes() = remove;
  if (state.last_used_ms > 0) {
    auto* use = out.add_pin_uses();
    use->set_ref(key.substr(1));  // the entry key is "p" + ref
    use->set_wall_ms(state.last_used_ms);
  }
}

MergeResult Index::merge(const wire::IndexDelta& delta) {
  MergeResult result;
  for (const auto& w : delta.tags()) {
    TagKey key = key_of(w.key());
    auto before = tag(key);
    if (!merge_tag(w)) continue;
    result.changed_keys.push_back(tag_entry_key(key));
    auto after = tag(key);
    bool same = before.has_value() == after.has_value() &&
                (!before || (before->digest == after->digest && before->media_type == after->media_type));
    if (!same) result.changed_tags.push_back(key);
  }
  for (const auto& a : delta.pin_adds())
    if (merge_pin_add(a)) result.changed_keys.push_back(pin_entry_key(a.ref())), result.pins_changed = true;
  for (const auto& r : delta.pin_removes())
    if (merge_pin_remove(r)) result.changed_keys.push_back(pin_entry_key(r.ref())), result.pins_changed = true;
  for (const auto& u : delta.pin_uses())  // after the adds: a repair carries both
    if (merge_pin_use(u)) result.changed_keys.push_back(pin_entry_key(u.ref())), result.pins_changed = true;
  return result;
}

std::optional<TagVersion> Index::tag(const TagKey& key) const {
  auto it = tags_.find(tag_entry_key(key));
  if (it == tags_.end() || it->second.writes.empty()) return std::nullopt;
  const auto* w = winner(it->second.writes);
  if (w->digest().empty()) return std::nullopt;
  return version_of(*w);
}

std::vector<TagView> Index::tags() const {
  std::vector<TagView> out;
  for (const auto& [key, state] : tags_) {
    const auto* w = winner(state.writes);
    if (!w || (w->digest().empty() && state.writes.size() < 2)) continue;
    TagView view{key_of(w->key()), version_of(*w), {}};
    for (size_t i = 0; i + 1 < state.writes.size(); ++i) view.conflicts.push_back(version_of(state.writes[i]));
    out.push_back(std::move(view));
  }
  return out;
}

bool Index::pinned(const std::string& ref) const {
  auto it = pins_.find(pin_entry_key(ref));
  if (it == pins_.end()) return false;
  for (const auto& [id, add] : it->second.adds)
    if (!it->second.removes.count(id)) return true;
  return false;
}

std::optional<TagKey> Index::tag_key_of(const std::string& entry_key) const {
  auto it = tags_.find(entry_key);
  if (it == tags_.end() || it->second.writes.empty()) return std::nullopt;
  return key_of(it->second.writes.front().key());
}

std::vector<PinView> Index::pins() const {
  std::vector<PinView> out;
  for (const auto& [key, state] : pins_) {
    const wire::PinAdd* live = nullptr;
    bool explicit_pin = false;
    for (const auto& [id, add] : state.adds) {
      if (state.removes.count(id)) continue;
      live = &add;  // highest live id wins (map is sorted)
      explicit_pin |= !add.automatic();
    }
    if (!live) continue;
    PinView view{live->ref(), live->replicas(), live->pinned_by(), from_wire(live->id())};
    view.explicit_pin = explicit_pin;
    view.last_used_ms = std::max(state.last_used_ms, view.pinned_at.wall_ms);
    out.push_back(std::move(view));
  }
  return out;
}

std::string Index::encode_entry(const std::string& key) const {
  wire::IndexDelta entry;
  if (auto t = tags_.find(key); t != tags_.end()) {
    for (const auto& w : t->second.writes) *entry.add_tags() = w;
  } else if (auto p = pins_.find(key); p != pins_.end()) {
    append_pin(p->second, key, entry);
  }
  if (entry.tags_size() == 0 && entry.pin_adds_size() == 0 && entry.pin_removes_size() == 0) return "";
  return entry.SerializeAsString();
}

bool Index::load_entry(std::string_view encoded) {
  wire::IndexDelta entry;
  if (!entry.ParseFromArray(encoded.data(), static_cast<int>(encoded.size()))) return false;
  merge(entry);
  return true;
}

std::vector<std::string> Index::entry_keys() const {
  std::vector<std::string> keys;
  for (const auto& [k, v] : tags_) keys.push_back(k);
  for (const auto& [k, v] : pins_) keys.push_back(k);
  return keys;
}

std::vector<std::string> Index::bucket_digests() const {
  std::vector<std::string> out;
  for (uint32_t b = 0; b < kBuckets; ++b) {
    if (!bucket_cache_[b]) {
      Sha256 h;
      for (const auto& key : bucket_keys_[b]) {
        auto encoded = encode_entry(key);
        h.update(key.data(), key.size() + 1);  // includes the terminating NUL
        h.update(encoded.data(), encoded.size());
      }
      bucket_cache_[b] = h.finish().str();
    }
    out.push_back(*bucket_cache_[b]);
  }
  return out;
}

std::vector<uint32_t> Index::differing(const std::vector<std::string>& mine, const std::vector<std::string>& theirs) {
  std::vector<uint32_t> out;
  for (uint32_t b = 0; b < kBuckets; ++b)
    if (b >= mine.size() || b >= theirs.size() || mine[b] != theirs[b]) out.push_back(b);
  return out;
}

wire::IndexDelta Index::entries(const std::vector<uint32_t>& buckets) const {
  auto pieces = entry_pieces(buckets, std::numeric_limits<size_t>::max());
  return pieces.empty() ? wire::IndexDelta() : std::move(pieces.front());
}

std::vector<wire::IndexDelta> Index::entry_pieces(const std::vector<uint32_t>& buckets, size_t max_entries) const {
  std::set<uint32_t> wanted(buckets.begin(), buckets.end());
  std::vector<wire::IndexDelta> pieces;
  size_t in_piece = max_entries;
  for (uint32_t b : wanted) {
    if (b >= kBuckets) continue;
    for (const auto& key : bucket_keys_[b]) {
      if (in_piece >= max_entries) {
        pieces.emplace_back();
        in_piece = 0;
      }
      auto& out = pieces.back();
      if (auto t = tags_.find(key); t != tags_.end())
        for (const auto& w : t->second.writes) *out.add_tags() = w;
      if (auto p = pins_.find(key); p != pins_.end()) append_pin(p->second, key, out);
      ++in_piece;
    }
  }
  return pieces;
}

std::string Index::state_digest() const {
  Sha256 h;
  for (const auto& b : bucket_digests()) h.update(b.data(), b.size());
  return h.finish().str();
}

MergeResult Index::forget_before(uint64_t wall_ms) {
  MergeResult out;
  auto old = [&](const wire::Timestamp& ts) { return ts.wall_ms() < wall_ms; };
  ++counter_;
  for (auto it = tags_.begin(); it != tags_.end();) {
    auto& writes = it->second.writes;
    if (std::none_of(writes.begin(), writes.end(), [&](const wire::TagWrite& w) { return old(w.ts()); })) {
      ++it;
      continue;
    }
    out.changed_tags.push_back(key_of(writes.front().key()));
    writes.erase(std::remove_if(writes.begin(), writes.end(), [&](const wire::TagWrite& w) { return old(w.ts()); }),
                 writes.end());
    it->second.changed = counter_;
    const std::string key = it->first;
    out.changed_keys.push_back(key);
    it = writes.empty() ? tags_.erase(it) : std::next(it);
    touch(key);
  }
  for (auto it = pins_.begin(); it != pins_.end();) {
    auto& state = it->second;
    const size_t before = state.adds.size() + state.removes.size();
    for (auto a = state.adds.begin(); a != state.adds.end();) a = old(a->second.id()) ? state.adds.erase(a) : std::next(a);
    for (auto r = state.removes.begin(); r != state.removes.end();)
      r = old(r->second.id()) ? state.removes.erase(r) : std::next(r);
    if (state.adds.size() + state.removes.size() == before) {
      ++it;
      continue;
    }
    state.changed = counter_;
    const std::string key = it->first;
    out.changed_keys.push_back(key);
    out.pins_changed = true;
    it = state.adds.empty() && state.removes.empty() ? pins_.erase(it) : std::next(it);
    touch(key);
  }
  return out;
}

std::vector<std::string> Index::collect_garbage(uint64_t stable) {
  std::vector<std::string> erased;
  for (auto it = tags_.begin(); it != tags_.end();) {
    const auto& writes = it->second.writes;
    bool dead = writes.empty() ||
                (writes.size() == 1 && writes[0].digest().empty() && it->second.changed <= stable);
    if (dead) {
      std::string key = it->first;
      erased.push_back(key);
      it = tags_.erase(it);
      touch(key);
    } else {
      ++it;
    }
  }
  for (auto it = pins_.begin(); it != pins_.end();) {
    auto& state = it->second;
    bool changed = false;
    for (auto r = state.removes.begin(); r != state.removes.end();) {
      if (state.changed <= stable && state.adds.count(r->first)) {
        state.adds.erase(r->first);
        r = state.removes.erase(r);
        changed = true;
      } else {
        ++r;
      }
    }
    if (changed) touch(it->first);
    if (state.adds.empty() && state.removes.empty()) {
      std::string key = it->first;
      erased.push_back(key);
      it = pins_.erase(it);
      touch(key);
    } else {
      if (changed) erased.push_back(it->first);  // rewritten, persist again
      ++it;
    }
  }
  return erased;
}

}  // namespace ep::crdt
