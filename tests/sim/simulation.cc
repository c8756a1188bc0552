#include "simulation.h"

#include <cstdio>

namespace ep::sim {

namespace {
std::string name_of(size_t i) { return "node" + std::to_string(i); }
std::string address_of(size_t i) { return name_of(i) + ":7946"; }
}  // namespace

Simulation::Simulation(SimOptions options) : options_(options), rng_(options.seed) {
  nodes_.resize(options_.nodes);
  group_.assign(options_.nodes, 0);
  for (size_t i = 0; i < nodes_.size(); ++i) boot(i, true);
  next_tick_ = options_.tick_ms;
}

void Simulation::boot(size_t i, bool first) {
  wire::Member self;
  self.set_name(name_of(i));
  self.set_cluster_address(address_of(i));
  self.set_incarnation(nodes_[i].incarnation);
  auto& node = nodes_[i];
  node.core = std::make_unique<site::SiteCore>(self, options_.core, rng_(), nullptr);
  if (!first) {
    for (const auto& [key, value] : node.disk) node.core->mutable_index().load_entry(value);
    node.core->restore(node.memory);
  }
  std::vector<std::string> seeds;
  if (nodes_.size() > 1) seeds.push_back(address_of(i == 0 ? 1 : 0));
  carry_out(i, node.core->start(now_, i == 0 && first ? std::vector<std::string>{} : seeds));
}

size_t Simulation::node_of(const std::string& s) const {
  auto digits = s.substr(4, s.find(':') == std::string::npos ? std::string::npos : s.find(':') - 4);
  return std::stoul(digits);
}

bool Simulation::reachable(size_t a, size_t b) const { return group_[a] == group_[b]; }

void Simulation::carry_out(size_t from, site::Effects fx) {
  auto& node = nodes_[from];
  for (const auto& key : fx.persist) {
    auto encoded = node.core->index().encode_entry(key);
    if (encoded.empty())
      node.disk.erase(key);
    else
      node.disk[key] = std::move(encoded);
  }
  auto delay = [&] {
    return options_.min_delay_ms + rng_() % (options_.max_delay_ms - options_.min_delay_ms + 1);
  };
  for (const auto& address : fx.connect) {
    size_t to = node_of(address);
    if (to != from) queue_.push(Event{now_ + delay(), seq_++, to, nullptr, from});
  }
  for (auto& out : fx.send) {
    size_t to = node_of(out.to[0] == '@' ? out.to.substr(1) : out.to);
    ++messages_;
    bytes_ += out.envelope.ByteSizeLong();
    if (out.envelope.has_holdings()) {
      ++holdings_messages_;
      holdings_bytes_ += out.envelope.ByteSizeLong();
    }
    if (options_.drop > 0 && std::uniform_real_distribution<>(0, 1)(rng_) < options_.drop) continue;
    queue_.push(Event{now_ + delay(), seq_++, to,
                      std::make_shared<const wire::Envelope>(std::move(out.envelope)), from});
  }
}

void Simulation::deliver(const Event& e) {
  if (!nodes_[e.to].up || !nodes_[e.from].up || !reachable(e.from, e.to)) return;
  if (!e.envelope) {
    carry_out(e.from, nodes_[e.from].core->connected(address_of(e.to), now_));
    return;
  }
  carry_out(e.to, nodes_[e.to].core->receive(*e.envelope, now_));
}

void Simulation::run_for(uint64_t ms) {
  const uint64_t end = now_ + ms;
  while (true) {
    uint64_t next_event = queue_.empty() ? UINT64_MAX : queue_.top().at;
    uint64_t next = std::min(next_event, next_tick_);
    if (next > end) break;
    now_ = next;
    if (next_tick_ <= next_event) {
      for (size_t i = 0; i < nodes_.size(); ++i)
        if (nodes_[i].up) carry_out(i, nodes_[i].core->tick(now_));
      next_tick_ += options_.tick_ms;
    } else {
      Event e = queue_.top();
      queue_.pop();
      deliver(e);
    }
  }
  now_ = end;
}

bool Simulation::converged() const {
  const std::string* digest = nullptr;
  std::string first;
  size_t live = 0;
  for (const auto& n : nodes_) live += n.up;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!nodes_[i].up) continue;
    auto d = nodes_[i].core->index().state_digest();
    if (!digest) {
      first = d;
      digest = &first;
    } else if (d != *digest) {
      return false;
    }
    size_t alive = 1;
    for (const auto& [name, m] : nodes_[i].core->membership().members())
      if (m.liveness == site::Liveness::alive && nodes_[node_of(name)].up) ++alive;
    if (alive != live) return false;
  }
  return true;
}

std::optional<uint64_t> Simulation::run_until_converged(uint64_t limit_ms) {
  const uint64_t start = now_;
  // Checking is O(nodes^2): look every 100 ms of virtual time.
  while (now_ - start < limit_ms) {
    if (converged()) return now_ - start;
    run_for(std::max<uint64_t>(options_.tick_ms, 100));
  }
  return converged() ? std::optional<uint64_t>(now_ - start) : std::nullopt;
}

void Simulation::partition(const std::vector<int>& group_of_node) {
  group_ = group_of_node;
  for (size_t i = 0; i < nodes_.size(); ++i)
    for (size_t j = 0; j < nodes_.size(); ++j)
      if (i != j && nodes_[i].up && !reachable(i, j)) carry_out(i, nodes_[i].core->connection_lost(name_of(j), now_));
}

void Simulation::heal() { group_.assign(nodes_.size(), 0); }

void Simulation::crash(size_t i) {
  nodes_[i].up = false;
  nodes_[i].memory = nodes_[i].core->memory();
  nodes_[i].core.reset();
  for (size_t j = 0; j < nodes_.size(); ++j)
    if (j != i && nodes_[j].up) carry_out(j, nodes_[j].core->connection_lost(name_of(i), now_));
}

void Simulation::restart(size_t i) {
  nodes_[i].up = true;
  ++nodes_[i].incarnation;
  boot(i, false);
}

void Simulation::put_tag(size_t i, const crdt::TagKey& key, const wire::Manifest& manifest) {
  carry_out(i, nodes_[i].core->put_tag(key, manifest, now_));
}

void Simulation::delete_tag(size_t i, const crdt::TagKey& key) { carry_out(i, nodes_[i].core->delete_tag(key, now_)); }

void Simulation::store_blob(size_t i, uint64_t key) { carry_out(i, nodes_[i].core->blob_stored(key, now_)); }

void Simulation::random_operation() {
  std::vector<size_t> live;
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].up) live.push_back(i);
  if (live.empty()) return;
  size_t i = live[rng_() % live.size()];
  auto& core = *nodes_[i].core;
  crdt::TagKey key{"", "repo" + std::to_string(rng_() % 10), "t" + std::to_string(rng_() % 5)};
  auto dice = rng_() % 100;
  if (dice < 50) {
    wire::Manifest m;
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(rng_()));
    m.set_digest("sha256:" + std::string(hex) + std::string(48, '0'));
    m.set_media_type("application/vnd.oci.image.manifest.v1+json");
    carry_out(i, core.put_tag(key, m, now_));
  } else if (dice < 65) {
    carry_out(i, core.delete_tag(key, now_));
  } else if (dice < 85) {
    carry_out(i, core.add_pin(key.repo + ":" + key.tag, static_cast<uint32_t>(rng_() % 3), now_));
  } else if (auto fx = core.remove_pin(key.repo + ":" + key.tag, now_)) {
    carry_out(i, std::move(*fx));
  }
}

}  // namespace ep::sim
