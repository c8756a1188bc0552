// SiteCore: one node's control-plane protocol, sans I/O.
//
// Combines Membership (liveness), the CRDT Index (deltas, anti-entropy,
// tombstone collection) and the join protocol. Inputs are messages, ticks
// and local operations with the current time; outputs are Effects the shell
// carries out: envelopes to send to named peers, addresses to connect to,
// index entries to persist, tags whose value changed, manifests received.
// The CAF actors and the deterministic simulation drive the same class.
// Owned by one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "crdt/hlc.h"
#include "crdt/index.h"
#include "site/holdings_filter.h"
#include "site/membership.h"

namespace ep::site {

struct CoreOptions {
  MembershipOptions membership;
  // Every live peer is sent a heartbeat once per period. The period is
  // membership.heartbeat_ms in a small site; a large one stretches it so a
  // node sends about heartbeats_per_second of them, up to
  // max_heartbeat_interval_ms. While members come and go the period stays
  // short. A lost connection is reported by the transport at once; silence
  // is the backstop, and peers scale it by the period the sender announced.
  uint64_t heartbeats_per_second = 5;
  uint64_t max_heartbeat_interval_ms = 10000;
  uint64_t anti_entropy_interval_ms = 1000;
  uint64_t reconnect_interval_ms = 2000;
};

struct Outgoing {
  std::string to;  // member name, or "@<address>" for a just-opened connection
  wire::Envelope envelope;
};

struct Effects {
  std::vector<Outgoing> send;
  std::vector<std::string> connect;               // cluster addresses to (re)connect to
  std::vector<std::string> persist;               // index entry keys to write (or erase if gone)
  std::vector<crdt::TagKey> changed_tags;         // value changed: update the registry view
  std::vector<wire::Manifest> manifests;          // manifests to store locally
  std::vector<MembershipEvent> membership;
  std::vector<std::string> holdings_changed;      // peers whose holdings filter changed or was dropped
  void append(Effects&& other);
};

// Where the core finds manifest bodies to ship along with tag writes.
using ManifestLookup = std::function<std::optional<wire::Manifest>(const std::string& digest)>;

class SiteCore {
 public:
  SiteCore(wire::Member self, CoreOptions options, uint64_t seed, ManifestLookup manifests);

  Effects start(uint64_t now_ms, const std::vector<std::string>& seeds);
  Effects tick(uint64_t now_ms);
  Effects receive(const wire::Envelope& envelope, uint64_t now_ms);
  Effects connection_lost(const std::string& peer, uint64_t now_ms);
  // Called when the transport connected to an address (name unknown yet).
  Effects connected(const std::string& address, uint64_t now_ms);

  // `writer`: the registry user who wrote it, recorded with the write.
  Effects put_tag(const crdt::TagKey& key, const wire::Manifest& manifest, uint64_t now_ms,
                  const std::string& writer = "");
  Effects delete_tag(const crdt::TagKey& key, uint64_t now_ms, const std::string& writer = "");
  Effects add_pin(const std::string& ref, uint32_t replicas, uint64_t now_ms, bool automatic = false);
  // A client pulled `ref` here: raises its last use site-wide, at most once
  // per `step_ms` (nullopt: not pinned, or used recently enough).
  std::optional<Effects> use_pin(const std::string& ref, uint64_t now_ms, uint64_t step_ms);
  std::optional<Effects> remove_pin(const std::string& ref, uint64_t now_ms);
  Effects leave(uint64_t now_ms);

  const crdt::Index& index() const { return index_; }
  crdt::Index& mutable_index() { return index_; }
  const Membership& membership() const { return membership_; }
  const wire::Member& self() const { return membership_.self(); }
  // What this node holds completely, announced with every heartbeat.
  void set_holdings(const std::vector<std::string>& refs) {
    auto* holds = membership_.mutable_self().mutable_holds();
    holds->Clear();
    for (const auto& r : refs) *holds->Add() = r;
  }
  // The registry's users and rules in force here (a hash), announced with
  // every heartbeat: every member must decide writes alike.
  void set_access_fingerprint(const std::string& fingerprint) {
    membership_.mutable_self().set_access_fingerprint(fingerprint);
  }
  // Live members announcing other users or rules than this node: name -> fingerprint.
  std::map<std::string, std::string> access_mismatches() const;
  // Blobs (and chunks of partial ones) announced with every heartbeat.
  void set_blob_holdings(std::vector<wire::BlobHolding> blobs) {
    auto* out = membership_.mutable_self().mutable_blobs();
    out->Clear();
    for (auto& b : blobs) *out->Add() = std::move(b);
  }
  // Holdings summaries (site/holdings_filter.h), in core_holdings.cc. What
  // this node holds completely at start, then each blob stored or removed
  // here: the peers are told at once, so a blob is in the filter they hold
  // before any tag naming it (sent after it) reaches them.
  void set_held_blobs(const std::vector<uint64_t>& keys) { own_holdings_.reset(keys); }
  Effects blob_stored(uint64_t key, uint64_t now_ms);
  Effects blob_removed(uint64_t key, uint64_t now_ms);
  // What a peer announced; nullptr: unknown, it may hold anything.
  std::shared_ptr<const HoldingsFilter> holdings_of(const std::string& peer) const {
    return peer_holdings_.filter(peer);
  }
  // The next heartbeat, now: what this node holds changed (a chunk or a
  // blob completed), and peers should know before the regular beat.
  Effects announce(uint64_t now_ms);
  // What the shell persists besides the index: when a member was last heard,
  // and when tombstones were last dropped here. A node back after more than
  // gone-after waits for a member's hello: if that member dropped tombstones
  // since our last contact, our older entries may be deletes the site has
  // forgotten, so we forget them too (what is still live comes back with
  // the repair). A site that was down as a whole dropped nothing meanwhile,
  // and keeps everything.
  struct Memory {
    uint64_t last_contact_ms = 0, collected_ms = 0;
  };
  Memory memory() const { return {last_contact_ms_, collected_ms_}; }
  void restore(const Memory& m) {
    last_contact_ms_ = m.last_contact_ms;
    collected_ms_ = m.collected_ms;
  }
  uint64_t anti_entropy_rounds() const { return rounds_; }
  uint64_t repairs() const { return repairs_; }

 private:
  wire::Envelope envelope(uint64_t now_ms) const;
  wire::Envelope members_envelope(uint64_t now_ms) const;
  wire::Envelope digests_envelope(uint64_t now_ms) const;  // bucket digests + live-set hash
  wire::Envelope hello_envelope(uint64_t now_ms) const;    // self with peer count and collection time
  wire::Member self_view() const;  // self with the current peer count and heartbeat period
  uint64_t heartbeat_period(uint64_t now_ms) const;  // for the live peers known now (see CoreOptions)
  Effects broadcast_delta(wire::IndexDelta delta, uint64_t now_ms);
  void attach_manifests(wire::IndexDelta& delta) const;
  // The entries of `buckets` to `to`, in pieces of kRepairPieceEntries keys;
  // with `want_back`, the first piece asks for the peer's entries of them.
  void send_repair(Effects& fx, const std::string& to, const std::vector<uint32_t>& buckets, bool want_back,
                   uint64_t now) const;
  static constexpr size_t kRepairPieceEntries = 1000;
  Effects apply(const wire::IndexDelta& delta, uint64_t now_ms);
  void collect_garbage(Effects& fx, uint64_t now_ms);
  Effects on_member_event(std::optional<MembershipEvent> event, uint64_t now_ms);
  Effects broadcast_holdings(const std::optional<wire::HoldingsUpdate>& update, uint64_t now_ms);
  void holdings_event(Effects& fx, const MembershipEvent& event, uint64_t now_ms);
  void receive_holdings(Effects& fx, const std::string& from, const wire::HoldingsUpdate& update, uint64_t now_ms);
  wire::Envelope holdings_envelope(wire::HoldingsUpdate update, uint64_t now_ms) const;
  void ask_whole_holdings(Effects& fx, const std::string& peer, uint64_t now_ms) const;

  CoreOptions options_;
  Membership membership_;
  crdt::Index index_;
  crdt::HlcClock clock_;
  std::mt19937_64 rng_;
  ManifestLookup manifests_;
  uint64_t heartbeat_ms_ = options_.membership.heartbeat_ms;  // the period announced with the last beat: the next one keeps it
  uint64_t last_heartbeat_ = 0, last_anti_entropy_ = 0, last_reconnect_ = 0, last_liveness_check_ = 0;
  std::map<std::string, uint64_t> acked_;  // peer -> index change counter both had
  std::vector<std::string> seeds_;
  bool leaving_ = false;
  uint64_t rounds_ = 0, repairs_ = 0;
  uint64_t last_contact_ms_ = 0, collected_ms_ = 0;
  std::optional<uint64_t> stale_since_;  // back after a long gap: undecided until a hello
  HoldingsSummary own_holdings_;
  PeerHoldings peer_holdings_;
};

}  // namespace ep::site
