// A seeded, deterministic simulation of a site: many SiteCores, virtual
// time, and a simulated network with delays, drops, partitions and node
// restarts (persisted index entries survive a restart, as with RocksDB).
// Same seed, same run. Used by the sim tests and the `site_sim` tool.
#pragma once

#include <cstdint>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "site/core.h"

namespace ep::sim {

struct SimOptions {
  size_t nodes = 10;
  uint64_t seed = 1;
  double drop = 0.0;            // probability a message is lost
  uint64_t min_delay_ms = 1, max_delay_ms = 20;
  uint64_t tick_ms = 100;
  site::CoreOptions core;
};

class Simulation {
 public:
  explicit Simulation(SimOptions options);

  uint64_t now() const { return now_; }
  size_t size() const { return nodes_.size(); }
  site::SiteCore& core(size_t i) { return *nodes_[i].core; }
  bool up(size_t i) const { return nodes_[i].up; }

  void run_for(uint64_t ms);
  // Runs until all live nodes agree (index and membership) or `limit_ms`
  // passes; returns the time it took, or nullopt.
  std::optional<uint64_t> run_until_converged(uint64_t limit_ms);
  bool converged() const;

  // Faults. Group ids: nodes in different groups cannot talk.
  void partition(const std::vector<int>& group_of_node);
  void heal();
  void crash(size_t i);
  void restart(size_t i);
  void set_drop(double p) { options_.drop = p; }

  // Workload: random index operations at random live nodes, or chosen ones.
  void random_operation();
  void put_tag(size_t i, const crdt::TagKey& key, const wire::Manifest& manifest);
  void delete_tag(size_t i, const crdt::TagKey& key);
  void store_blob(size_t i, uint64_t key);  // a blob (site::holdings_key) stored at node i
  uint64_t messages() const { return messages_; }
  uint64_t bytes() const { return bytes_; }  // serialized envelopes sent (before drops)
  // Of those, the holdings summaries (whole filters and deltas).
  uint64_t holdings_messages() const { return holdings_messages_; }
  uint64_t holdings_bytes() const { return holdings_bytes_; }

 private:
  struct Node {
    std::unique_ptr<site::SiteCore> core;
    bool up = true;
    uint64_t incarnation = 1;
    site::SiteCore::Memory memory;  // persisted with the index
    std::map<std::string, std::string> disk;  // persisted index entries
  };
  struct Event {
    uint64_t at, seq;
    size_t to;
    std::shared_ptr<const wire::Envelope> envelope;  // null: connection attempt from `from`
    size_t from;
    bool operator>(const Event& o) const { return std::tie(at, seq) > std::tie(o.at, o.seq); }
  };

  void boot(size_t i, bool first);
  void carry_out(size_t from, site::Effects fx);
  bool reachable(size_t a, size_t b) const;
  size_t node_of(const std::string& name_or_address) const;
  void deliver(const Event& e);

  SimOptions options_;
  std::mt19937_64 rng_;
  std::vector<Node> nodes_;
  std::vector<int> group_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  uint64_t now_ = 0, seq_ = 0, next_tick_ = 0, messages_ = 0, bytes_ = 0;
  uint64_t holdings_messages_ = 0, holdings_bytes_ = 0;
};

}  // namespace ep::sim
