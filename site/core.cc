#include "site/core.h"

#include <algorithm>

namespace ep::site {

void Effects::append(Effects&& o) {
  auto move_into = [](auto& into, auto& from) {
    into.insert(into.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
  };
  move_into(send, o.send);
  move_into(connect, o.connect);
  move_into(persist, o.persist);
  move_into(changed_tags, o.changed_tags);
  move_into(manifests, o.manifests);
  move_into(membership, o.membership);
  move_into(holdings_changed, o.holdings_changed);
}

SiteCore::SiteCore(wire::Member self, CoreOptions options, uint64_t seed, ManifestLookup manifests)
    : options_(options), membership_(self, options.membership), clock_(self.name()), rng_(seed),
      manifests_(std::move(manifests)) {}

wire::Envelope SiteCore::envelope(uint64_t now) const {
  wire::Envelope e;
  e.set_sender(self().name());
  e.set_sent_ms(now);
  e.set_incarnation(self().incarnation());
  return e;
}

Effects SiteCore::start(uint64_t now, const std::vector<std::string>& seeds) {
  seeds_ = seeds;
  Effects fx;
  fx.connect = seeds;
  last_heartbeat_ = last_anti_entropy_ = last_reconnect_ = now;
  return fx;
}

Effects SiteCore::connected(const std::string& address, uint64_t now) {
  // The peer's name is learned from its hello; introduce ourselves on the new
  // connection ("@<address>" names a connection rather than a member).
  Effects fx;
  Outgoing out{"@" + address, hello_envelope(now)};
  fx.send.push_back(std::move(out));
  return fx;
}

std::map<std::string, std::string> SiteCore::access_mismatches() const {
  std::map<std::string, std::string> out;
  const auto& mine = self().access_fingerprint();
  for (const auto& [name, member] : membership_.members())
    if (member.liveness == Liveness::alive && member.info.access_fingerprint() != mine)
      out[name] = member.info.access_fingerprint();
  return out;
}

wire::Member SiteCore::self_view() const {
  wire::Member me = self();
  me.set_peers(static_cast<uint32_t>(membership_.live_count()));
  me.set_collected_ms(collected_ms_);
  me.set_heartbeat_ms(static_cast<uint32_t>(heartbeat_ms_));
  return me;
}

uint64_t SiteCore::heartbeat_period(uint64_t now) const {
  // While members come and go, beat often: a newcomer, or a member back from
  // a partition, is heard and answered within a second even if its first
  // hello was lost (the same window as member lists in anti-entropy).
  const uint64_t shortest = options_.membership.heartbeat_ms;
  if (now - membership_.live_set_changed_ms() < 10 * shortest) return shortest;
  const uint64_t spread = membership_.live_count() * 1000 / std::max<uint64_t>(options_.heartbeats_per_second, 1);
  const uint64_t longest = std::max(shortest, options_.max_heartbeat_interval_ms);
  return std::clamp(spread, shortest, longest);
}

wire::Envelope SiteCore::hello_envelope(uint64_t now) const {
  auto e = envelope(now);
  *e.mutable_hello() = self_view();
  return e;
}

wire::Envelope SiteCore::digests_envelope(uint64_t now) const {
  auto e = envelope(now);
  for (auto& d : index_.bucket_digests()) e.mutable_digests()->add_digests(d);
  e.mutable_digests()->set_members_hash(membership_.live_set_hash());
  return e;
}

wire::Envelope SiteCore::members_envelope(uint64_t now) const {
  auto e = envelope(now);
  for (const auto& [name, m] : membership_.members())
    if (m.heard_directly && m.liveness != Liveness::dead) *e.mutable_members()->add_members() = m.info;
  *e.mutable_members()->add_members() = self_view();
  return e;
}

Effects SiteCore::on_member_event(std::optional<MembershipEvent> event, uint64_t now) {
  Effects fx;
  if (!event) return fx;
  fx.membership.push_back(*event);
  if (event->liveness == Liveness::alive) {
    // A member appeared or came back: a newcomer learns who we know (so the
    // mesh completes); everyone syncs the index with it right away.
    // Only a newcomer that knows much less than we do is sent the member list
    // (else every first contact in a large site would ship the whole list);
    // periodic gossip repairs the rest.
    const auto* m = membership_.find(event->name);
    // When a whole site starts at once every node is everyone's newcomer:
    // about 8 random senders per newcomer keep that from costing n^3.
    const size_t live = membership_.live_count();
    bool newcomer = m && m->info.peers() * 2 < live;
    bool chosen = live < 8 || rng_() % live < 8;
    if ((event->joined || event->restarted) && (live < 8 || (newcomer && chosen)))
      fx.send.push_back({event->name, members_envelope(now)});
    else if (event->joined || event->restarted) {
      fx.send.push_back({event->name, hello_envelope(now)});  // so the newcomer hears from us at once
    }
    // An immediate index sync, so a restarted node or a healed partition
    // catches up before the next round. In a large site, when a partition
    // heals every node sees n events at once; about 8 random syncs per member
    // suffice and the periodic rounds do the rest. No live-set hash here:
    // member lists are compared in the periodic rounds.
    if (chosen) {
      auto digests = digests_envelope(now);
      digests.mutable_digests()->clear_members_hash();
      fx.send.push_back({event->name, std::move(digests)});
    }
  }
  // After the hello or member list: a newcomer verifies our envelopes with
  // the identity key they carry.
  holdings_event(fx, *event, now);
  if (event->gone) acked_.erase(event->name);
  return fx;
}

Effects SiteCore::receive(const wire::Envelope& env, uint64_t now) {
  Effects fx;
  if (leaving_) return fx;  // no longer part of the site
  const std::string& from = env.sender();
  if (from == self().name()) return fx;
  // What the message says about its sender: its hello or its entry in a
  // member list, else what we knew. Copied only when the incarnation must be
  // raised (heartbeats, the bulk of the traffic, go through without a copy).
  const wire::Member* described = env.has_hello() ? &env.hello() : nullptr;
  if (env.has_members())
    for (const auto& m : env.members().members())
      if (m.name() == from) described = &m;
  const MemberState* known = membership_.find(from);
  if (!described && known) described = &known->info;
  wire::Member sender;
  if (!described || described->name() != from || env.incarnation() > described->incarnation()) {
    if (described) sender = *described;
    sender.set_name(from);
    if (env.incarnation() > sender.incarnation()) sender.set_incarnation(env.incarnation());
    described = &sender;
  }
  if (env.has_leave()) {
    // A leave from an earlier life (replayed, or delayed) must not retire
    // the member's current incarnation.
    if (known && env.incarnation() < known->info.incarnation()) return fx;
    fx.append(on_member_event(membership_.left(from, now), now));
    return fx;
  }
  // Every message proved the site key (the shell drops anything else).
  if (!stale_since_ && last_contact_ms_ != 0 && now > last_contact_ms_ + options_.membership.gone_after_ms)
    stale_since_ = last_contact_ms_;  // away longer than the site keeps members
  if (stale_since_) {
    // Exchange nothing until a hello says whether the site dropped tombstones
    // while we were away (members send one on every reconnection, and with
    // every heartbeat).
    if (!env.has_hello()) return fx;
    if (env.hello().collected_ms() > *stale_since_) {
      auto forgotten = index_.forget_before(*stale_since_);
      fx.persist = std::move(forgotten.changed_keys);
      fx.changed_tags = std::move(forgotten.changed_tags);
    }
    stale_since_.reset();
  }
  last_contact_ms_ = now;
  fx.append(on_member_event(membership_.heard(*described, now), now));

  switch (env.body_case()) {
    case wire::Envelope::kMembers:
      for (const auto& m : env.members().members())
        if (membership_.learn(m, now) && !m.cluster_address().empty()) fx.connect.push_back(m.cluster_address());
      break;
    case wire::Envelope::kDelta:
      fx.append(apply(env.delta(), now));
      break;
    case wire::Envelope::kHoldings:
      receive_holdings(fx, from, env.holdings(), now);
      break;
    case wire::Envelope::kDigests: {
      // Different live sets: show ours, so a lost introduction is repaired.
      if (env.digests().members_hash() != 0 && env.digests().members_hash() != membership_.live_set_hash())
        fx.send.push_back({from, members_envelope(now)});
      std::vector<std::string> theirs(env.digests().digests().begin(), env.digests().digests().end());
      auto diff = crdt::Index::differing(index_.bucket_digests(), theirs);
      if (diff.empty()) {
        acked_[from] = index_.change_counter();
        break;
      }
      send_repair(fx, from, diff, /*want_back=*/true, now);
      break;
    }
    case wire::Envelope::kRepair: {
      ++repairs_;
      fx.append(apply(env.repair().entries(), now));
      if (env.repair().want_size() > 0) {
        std::vector<uint32_t> want(env.repair().want().begin(), env.repair().want().end());
        send_repair(fx, from, want, /*want_back=*/false, now);
      }
      break;
    }
    default:
      break;
  }
  return fx;
}

Effects SiteCore::apply(const wire::IndexDelta& delta, uint64_t now) {
  Effects fx;
  for (const auto& w : delta.tags()) clock_.observe(crdt::from_wire(w.ts()), now);
  for (const auto& a : delta.pin_adds()) clock_.observe(crdt::from_wire(a.id()), now);
  auto result = index_.merge(delta);
  fx.persist = std::move(result.changed_keys);
  fx.changed_tags = std::move(result.changed_tags);
  for (const auto& m : delta.manifests()) fx.manifests.push_back(m);
  return fx;
}

void SiteCore::send_repair(Effects& fx, const std::string& to, const std::vector<uint32_t>& buckets, bool want_back,
                           uint64_t now) const {
  auto pieces = index_.entry_pieces(buckets, kRepairPieceEntries);
  if (pieces.empty()) pieces.emplace_back();  // still ask for theirs
  for (size_t i = 0; i < pieces.size(); ++i) {
    auto reply = envelope(now);
    auto* repair = reply.mutable_repair();
    *repair->mutable_entries() = std::move(pieces[i]);
    attach_manifests(*repair->mutable_entries());
    if (want_back && i == 0)
      for (auto b : buckets) repair->add_want(b);
    fx.send.push_back({to, std::move(reply)});
  }
}

void SiteCore::attach_manifests(wire::IndexDelta& delta) const {
  if (!manifests_) return;
  std::set<std::string> seen;
  for (const auto& w : delta.tags()) {
    if (w.digest().empty() || !seen.insert(w.digest()).second) continue;
    if (auto m = manifests_(w.digest())) *delta.add_manifests() = std::move(*m);
  }
}

Effects SiteCore::broadcast_delta(wire::IndexDelta delta, uint64_t now) {
  Effects fx;
  if (leaving_) return fx;  // left the site: local changes stay local
  for (const auto& peer : membership_.live_peers()) {
    auto e = envelope(now);
    *e.mutable_delta() = delta;
    fx.send.push_back({peer, std::move(e)});
  }
  return fx;
}

Effects SiteCore::put_tag(const crdt::TagKey& key, const wire::Manifest& manifest, uint64_t now,
                          const std::string& writer) {
  auto delta = index_.put_tag(key, manifest.digest(), manifest.media_type(), clock_.now(now), writer);
  Effects fx;
  fx.persist.push_back(crdt::tag_entry_key(key));
  *delta.add_manifests() = manifest;
  fx.append(broadcast_delta(std::move(delta), now));
  return fx;
}

Effects SiteCore::delete_tag(const crdt::TagKey& key, uint64_t now, const std::string& writer) {
  auto delta = index_.delete_tag(key, clock_.now(now), writer);
  Effects fx;
  fx.persist.push_back(crdt::tag_entry_key(key));
  fx.append(broadcast_delta(std::move(delta), now));
  return fx;
}

Effects SiteCore::add_pin(const std::string& ref, uint32_t replicas, uint64_t now, bool automatic) {
  auto delta = index_.add_pin(ref, replicas, clock_.now(now), automatic);
  Effects fx;
  fx.persist.push_back(crdt::pin_entry_key(ref));
  fx.append(broadcast_delta(std::move(delta), now));
  return fx;
}

std::optional<Effects> SiteCore::use_pin(const std::string& ref, uint64_t now, uint64_t step_ms) {
  auto delta = index_.use_pin(ref, now, step_ms);
  if (!delta) return std::nullopt;
  Effects fx;
  fx.persist.push_back(crdt::pin_entry_key(ref));
  fx.append(broadcast_delta(std::move(*delta), now));
  return fx;
}

std::optional<Effects> SiteCore::remove_pin(const std::string& ref, uint64_t now) {
  auto delta = index_.remove_pin(ref);
  if (!delta) return std::nullopt;
  Effects fx;
  fx.persist.push_back(crdt::pin_entry_key(ref));
  fx.append(broadcast_delta(std::move(*delta), now));
  return fx;
}

Effects SiteCore::leave(uint64_t now) {
  leaving_ = true;
  Effects fx;
  wire::Member me = self();
  me.set_leaving(true);
  for (const auto& peer : membership_.live_peers()) {
    auto e = envelope(now);
    *e.mutable_leave() = me;
    fx.send.push_back({peer, std::move(e)});
  }
  return fx;
}

Effects SiteCore::connection_lost(const std::string& peer, uint64_t now) {
  return on_member_event(membership_.connection_lost(peer, now), now);
}

void SiteCore::collect_garbage(Effects& fx, uint64_t now) {
  // Only entries every current member is known to hold may go.
  uint64_t stable = index_.change_counter();
  for (const auto& [name, m] : membership_.members()) {
    auto it = acked_.find(name);
    stable = std::min(stable, it == acked_.end() ? 0 : it->second);
  }
  if (stable == 0) return;
  for (auto& key : index_.collect_garbage(stable)) {
    fx.persist.push_back(std::move(key));
    collected_ms_ = now;
  }
}

Effects SiteCore::announce(uint64_t now) {
  Effects fx;
  if (leaving_) return fx;
  last_heartbeat_ = now;
  heartbeat_ms_ = heartbeat_period(now);  // announced with this beat, kept until the next
  const auto hello = hello_envelope(now);
  for (const auto& peer : membership_.live_peers()) fx.send.push_back({peer, hello});
  return fx;
}

Effects SiteCore::tick(uint64_t now) {
  Effects fx;
  if (leaving_) return fx;
  // Liveness moves in seconds (suspect 3 s, dead 6 s): checking every 250 ms
  // is precise enough and keeps a large site's ticks cheap.
  if (now - last_liveness_check_ >= 250) {
    last_liveness_check_ = now;
    for (auto& event : membership_.tick(now)) {
      holdings_event(fx, event, now);
      fx.membership.push_back(event);
    }
  }
  if (now - last_heartbeat_ >= heartbeat_ms_) {
    auto beat = announce(now);
    for (auto& send : beat.send) fx.send.push_back(std::move(send));
  }
  if (now - last_anti_entropy_ >= options_.anti_entropy_interval_ms) {
    last_anti_entropy_ = now;
    auto peers = membership_.live_peers();
    if (!peers.empty()) {
      ++rounds_;
      const auto& peer = peers[rng_() % peers.size()];
      fx.send.push_back({peer, digests_envelope(now)});
      // While members come and go, push the member list too (joins converge
      // in a few rounds); when the site is stable the hash in the digests
      // is enough to find a difference.
      if (now - membership_.live_set_changed_ms() < 10 * options_.anti_entropy_interval_ms)
        fx.send.push_back({peer, members_envelope(now)});
    }
    collect_garbage(fx, now);
  }
  if (now - last_reconnect_ >= options_.reconnect_interval_ms) {
    last_reconnect_ = now;
    for (const auto& [name, m] : membership_.members())
      if ((m.liveness == Liveness::dead || m.liveness == Liveness::suspect) && !m.info.cluster_address().empty())
        fx.connect.push_back(m.info.cluster_address());
    if (membership_.members().empty())
      for (const auto& seed : seeds_) fx.connect.push_back(seed);
  }
  return fx;
}

}  // namespace ep::site
