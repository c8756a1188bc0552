// The site actor (see site_actor.h).
#include "actors/site_actor.h"

#include <charconv>
#include <caf/all.hpp>
#include <google/protobuf/util/message_differencer.h>
#include <caf/io/all.hpp>
#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "actors/admin_views.h"
#include "actors/caf_types.h"
#include "actors/store_actor.h"
#include "base/clock.h"
#include "base/json_text.h"
#include "base/log.h"
#include "storage/keys.h"

namespace ep::actors {

namespace {

uint64_t now_ms() { return wall_clock_ms(); }

struct SiteState {
  std::unique_ptr<site::SiteCore> core;
  std::shared_ptr<const site::Sealer> sealer;
  // Envelopes applied within their validity window (a replay is dropped).
  site::ReplayGuard replays{site::Sealer::kMaxAgeMs, 1 << 17};
  std::shared_ptr<SiteStats> stats;
  std::shared_ptr<site::PeerDirectory> peers;
  std::shared_ptr<site::IndexSnapshot> snapshot;
  bool auto_pin = true;
  Registry* registry = nullptr;
  uint32_t default_replicas = 0;
  uint64_t chunk_size = 4 << 20;
  uint64_t use_step_ms = 3600 * 1000;  // a pin's last use is raised at most this often
  uint64_t auto_pin_ttl_ms = 0;
  std::function<std::vector<wire::BlobHolding>()> holdings;
  std::function<uint64_t()> holdings_version;
  uint64_t announced_version = 0;
  bool peers_changed = false;  // an envelope arrived since the peers were last published
  std::map<std::string, caf::actor> by_name;
  std::map<std::string, caf::actor> by_address;
  std::map<caf::actor_addr, std::string> name_of;
  std::set<std::string> connecting;
  uint64_t ticks = 0;
  caf::actor store;            // disk writes and blob stats, off this actor's thread (store_actor.h)
  bool holds_pending = false;  // a holds request is out
  site::SiteCore::Memory persisted;
  std::map<std::string, std::string> access_warned;  // member -> the differing fingerprint the log named
  bool pins_dirty = false;  // the pins changed since the snapshot last got them
  static inline const char* name = "edgepier.site";
};

using SiteActor = caf::stateful_actor<SiteState>;

void carry_out(SiteActor* self, site::Effects fx);

// Says once per change when a live member decides registry access on other
// users or rules (its htpasswd or access file differs from ours).
void warn_of_access_mismatches(SiteState& st) {
  auto now = st.core->access_mismatches();
  for (const auto& [name, fingerprint] : now)
    if (st.access_warned[name] != fingerprint)
      log_warning("site", "member " + name + " serves other registry users or access rules (fingerprint " +
                              (fingerprint.empty() ? "none" : fingerprint) + ", here " +
                              st.core->self().access_fingerprint() +
                              "): a write one node refuses another accepts; give every node the same "
                              "htpasswd-file and access-file");
  st.access_warned = std::move(now);
}

void connect(SiteActor* self, const std::string& address) {
  auto& st = self->state;
  if (address.empty() || address == st.core->self().cluster_address() || st.connecting.count(address) ||
      st.by_address.count(address))
    return;
  // Addresses come from peers' hellos: a malformed one is ignored, never fatal.
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return;
  std::string host = address.substr(0, colon);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(address.data() + colon + 1, address.data() + address.size(), port);
  if (ec != std::errc() || end != address.data() + address.size() || port == 0 || port > 65535) return;
  st.connecting.insert(address);
  auto mm = self->system().middleman().actor_handle();
  self->request(mm, std::chrono::seconds(5), caf::connect_atom::value, host, static_cast<uint16_t>(port))
      .then(
          [=](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
            auto& s = self->state;
            s.connecting.erase(address);
            if (!ptr) return;
            auto peer = caf::actor_cast<caf::actor>(ptr);
            s.by_address[address] = peer;
            self->monitor(peer);
            carry_out(self, s.core->connected(address, now_ms()));
          },
          [=](caf::error&) { self->state.connecting.erase(address); });
}

void publish_stats(SiteState& st) {
  uint64_t counts[4] = {0, 0, 0, 0};
  for (const auto& [name, m] : st.core->membership().members()) ++counts[static_cast<int>(m.liveness)];
  st.stats->alive = counts[0];
  st.stats->suspect = counts[1];
  st.stats->dead = counts[2];
  st.stats->left = counts[3];
  st.stats->anti_entropy_rounds = st.core->anti_entropy_rounds();
  st.stats->repairs = st.core->repairs();
  st.stats->index_entries = st.core->index().size();
}

// The live members with the blobs they announce, for the transfer threads.
void publish_peers(SiteState& st) {
  std::vector<site::PeerAddress> live;
  for (const auto& [name, m] : st.core->membership().members()) {
    if (m.liveness != site::Liveness::alive || m.info.data_address().empty()) continue;
    site::PeerAddress peer{name, m.info.data_address(), {}, st.core->holdings_of(name)};
    for (const auto& b : m.info.blobs()) peer.holdings.push_back({b.digest(), b.chunks()});
    live.push_back(std::move(peer));
  }
  st.peers->update(std::move(live));
}

// What changed for the replicator's snapshot: origins of mirrored tags now,
// the pins at the next tick. O(changed entries), never O(index).
void note_snapshot_changes(SiteState& st, const std::vector<std::string>& changed_entries) {
  std::map<std::string, site::IndexSnapshot::Origin> origins;
  for (const auto& entry : changed_entries) {
    auto key = st.core->index().tag_key_of(entry);
    if (!key)
      st.pins_dirty = true;
    else if (!key->ns.empty())
      origins[mirror_repository(key->ns, key->repo)] = {key->ns, key->repo};
  }
  if (!origins.empty()) st.snapshot->add_origins(origins);
}

void carry_out(SiteActor* self, site::Effects fx) {
  auto& st = self->state;
  const auto& index = st.core->index();
  StoreWrites writes;  // done by the store actor, in this order
  for (const auto& key : fx.persist) {
    auto encoded = index.encode_entry(key);
    if (encoded.empty()) {
      writes.deletes.push_back(keys::index_entry(key));
    } else {
      writes.puts.push_back(keys::index_entry(key));
      writes.puts.push_back(std::move(encoded));
    }
  }
  note_snapshot_changes(st, fx.persist);
  for (const auto& m : fx.manifests) writes.manifests.insert(writes.manifests.end(), {m.digest(), m.media_type(), m.body()});
  for (const auto& key : fx.changed_tags) {
    auto value = index.tag(key);
    writes.tags.insert(writes.tags.end(), {key.ns, key.repo, key.tag, value ? value->digest : std::string()});
  }
  send_writes(st.store, std::move(writes));
  // At once, not at the next publish: a tag this node applies after the
  // filter's update may name a blob only the new filter says a peer holds.
  for (const auto& name : fx.holdings_changed) st.peers->set_holdings(name, st.core->holdings_of(name));
  for (const auto& address : fx.connect) connect(self, address);
  // A heartbeat goes to every member unchanged: it is signed and sealed once
  // (an Ed25519 signature per member and second was most of an idle node's
  // own CPU in a large site).
  const wire::Envelope* last_envelope = nullptr;
  std::string last_sealed;
  for (auto& out : fx.send) {
    caf::actor peer;
    if (!out.to.empty() && out.to[0] == '@') {
      if (auto it = st.by_address.find(out.to.substr(1)); it != st.by_address.end()) peer = it->second;
    } else if (auto it = st.by_name.find(out.to); it != st.by_name.end()) {
      peer = it->second;
    } else if (const auto* m = st.core->membership().find(out.to)) {
      if (auto a = st.by_address.find(m->info.cluster_address()); a != st.by_address.end())
        peer = a->second;
      else
        connect(self, m->info.cluster_address());
    }
    if (!peer) continue;  // anti-entropy repairs what this loses
    if (!last_envelope || !google::protobuf::util::MessageDifferencer::Equals(*last_envelope, out.envelope)) {
      last_sealed = st.sealer->seal(out.envelope);
      last_envelope = &out.envelope;
    }
    self->send(peer, envelope_atom::value, last_sealed);
    ++st.stats->messages_sent;
  }
  if (!fx.membership.empty()) publish_peers(st);
  for (const auto& ev : fx.membership)
    log_info("site", "member " + printable(ev.name) + " is " + (ev.gone ? "gone" : site::liveness_name(ev.liveness)) +
                         (ev.restarted ? " (restarted)" : ""));
  st.stats->joined = !st.core->membership().live_peers().empty();
  publish_stats(st);
}

void on_envelope(SiteActor* self, const std::string& sealed) {
  auto& st = self->state;
  auto pinned = [&](const std::string& name) -> std::string {
    // A member that is dead or left may come back with a new identity key
    // (its data dir was wiped): the key a hello carries is then accepted.
    // While it is alive its key stays pinned, so no member can take over
    // the name of a running one.
    const auto* m = st.core->membership().find(name);
    if (!m || m->liveness == site::Liveness::dead || m->liveness == site::Liveness::left) return std::string();
    return m->info.identity_key();
  };
  uint64_t replays_before = st.replays.replays_dropped();
  auto envelope = st.sealer->open(sealed, pinned, now_ms(), st.replays);
  if (!envelope) {
    ++st.stats->messages_rejected;  // no site key, tampered, replayed, or an impostor
    if (st.replays.replays_dropped() != replays_before) ++st.stats->messages_replayed;
    return;
  }
  ++st.stats->messages_received;
  st.peers_changed = true;
  if (auto sender = self->current_sender()) {
    auto peer = caf::actor_cast<caf::actor>(sender);
    auto& known = st.by_name[envelope->sender()];
    if (known != peer) {
      known = peer;
      st.name_of[peer.address()] = envelope->sender();
      self->monitor(peer);
    }
  }
  carry_out(self, st.core->receive(*envelope, now_ms()));
}

caf::behavior site_behavior(SiteActor* self) {
  // An exception escaping any other handler still ends this actor (CAF
  // quits it); say so once in the log instead of dying silently.
  self->set_exception_handler([](caf::scheduled_actor*, std::exception_ptr& eptr) -> caf::error {
    try {
      std::rethrow_exception(eptr);
    } catch (...) {
      internal_error("the site actor");
    }
    return caf::sec::runtime_error;
  });
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    for (auto it = st.by_address.begin(); it != st.by_address.end();)
      it = it->second.address() == msg.source ? st.by_address.erase(it) : std::next(it);
    auto it = st.name_of.find(msg.source);
    if (it == st.name_of.end()) return;
    std::string name = it->second;
    st.name_of.erase(it);
    // Only the actor we currently route to counts: the old actor of a member
    // that restarted goes down after its new one took over.
    if (auto n = st.by_name.find(name); n != st.by_name.end() && n->second.address() == msg.source) {
      st.by_name.erase(n);
      carry_out(self, st.core->connection_lost(name, now_ms()));
    }
  });
  self->send(self, tick_atom::value);
  return {
      [=](tick_atom) {
        auto& st = self->state;
        if (++st.ticks % 8 == 0) {  // every 2 s: which pinned images are complete here
          if (!st.holds_pending) {
            std::vector<std::string> refs;
            for (const auto& pin : st.core->index().pins()) refs.push_back(pin.ref);
            st.holds_pending = true;
            self->request(st.store, std::chrono::seconds(30), holds_atom::value, std::move(refs))
                .then(
                    [=](std::vector<std::string>& holds) {
                      self->state.holds_pending = false;
                      self->state.core->set_holdings(holds);
                    },
                    [=](caf::error&) { self->state.holds_pending = false; });
          }
          auto memory = st.core->memory();  // survives a restart (see SiteCore::Memory)
          if (memory.last_contact_ms != st.persisted.last_contact_ms || memory.collected_ms != st.persisted.collected_ms) {
            StoreWrites writes;
            writes.puts = {std::string(keys::kLastContact), std::to_string(memory.last_contact_ms),
                           std::string(keys::kCollected), std::to_string(memory.collected_ms)};
            send_writes(st.store, std::move(writes));
            st.persisted = memory;
          }
        }
        // What we can serve goes out with every heartbeat, and within a tick
        // (250 ms) of a chunk or blob completing here: peers use it while a
        // pull is still running. What the others announced reaches the
        // transfer threads within a tick too.
        const uint64_t version = st.holdings && st.holdings_version ? st.holdings_version() : 0;
        const bool news = version != st.announced_version;
        if (st.holdings && (news || st.ticks % 4 == 0)) {
          st.announced_version = version;
          st.core->set_blob_holdings(st.holdings());
        }
        if (news) carry_out(self, st.core->announce(now_ms()));
        if (st.peers_changed || st.ticks % 4 == 0) {
          st.peers_changed = false;
          publish_peers(st);
        }
        if (st.ticks % 20 == 0) warn_of_access_mismatches(st);
        if (st.pins_dirty) {
          st.pins_dirty = false;
          st.snapshot->set_pins(st.core->index().pins());
        }
        carry_out(self, st.core->tick(now_ms()));
        self->delayed_send(self, std::chrono::milliseconds(250), tick_atom::value);
      },
      [=](blob_atom, uint64_t key, bool present) {
        auto& core = *self->state.core;
        carry_out(self, present ? core.blob_stored(key, now_ms()) : core.blob_removed(key, now_ms()));
      },
      [=](access_atom, const std::string& fingerprint) {
        self->state.core->set_access_fingerprint(fingerprint);
        carry_out(self, self->state.core->announce(now_ms()));
      },
      [=](envelope_atom, const std::string& sealed) {
        guarded("a peer envelope", [&] {  // a bad envelope is dropped; the actor keeps running
          on_envelope(self, sealed);
          return Status::Ok();
        });
      },
      [=](tag_put_atom, const std::string& ns, const std::string& repo, const std::string& tag,
          const std::string& digest, const std::string& media_type, const std::string& body,
          const std::string& writer) {
        auto& st = self->state;
        wire::Manifest m;
        m.set_digest(digest);
        m.set_media_type(media_type);
        m.set_body(body);
        carry_out(self, st.core->put_tag(crdt::TagKey{ns, repo, tag}, m, now_ms(), writer));
        if (st.auto_pin) {  // first pull (or push) pins the image for the site
          std::string ref = (ns.empty() ? repo : mirror_repository(ns, repo)) + ":" + tag;
          if (!st.core->index().pinned(ref))
            carry_out(self, st.core->add_pin(ref, st.default_replicas, now_ms(), /*automatic=*/true));
        }
      },
      [=](pin_used_atom, const std::string& ref) {
        auto& st = self->state;
        if (auto fx = st.core->use_pin(ref, now_ms(), st.use_step_ms)) carry_out(self, std::move(*fx));
      },
      [=](tag_del_atom, const std::string& ns, const std::string& repo, const std::string& tag,
          const std::string& writer) {
        carry_out(self, self->state.core->delete_tag(crdt::TagKey{ns, repo, tag}, now_ms(), writer));
      },
      [=](pin_add_atom, const std::string& ref, int32_t replicas) -> std::string {
        auto& st = self->state;
        uint32_t factor = replicas < 0 ? st.default_replicas : static_cast<uint32_t>(replicas);
        carry_out(self, st.core->add_pin(ref, factor, now_ms()));
        return pin_json(*st.core, *st.registry, ref, {st.chunk_size, st.auto_pin_ttl_ms, now_ms()});
      },
      [=](pin_rm_atom, const std::string& ref) -> std::string {
        auto fx = self->state.core->remove_pin(ref, now_ms());
        if (!fx) return "";  // not pinned
        carry_out(self, std::move(*fx));
        return "{}";
      },
      [=](members_atom) -> std::string { return members_json(*self->state.core, now_ms()); },
      [=](tags_atom, const std::string& repo) -> std::string { return tags_json(*self->state.core, repo); },
      [=](pins_atom) -> std::string {
        auto& st = self->state;
        return pins_json(*st.core, *st.registry, {st.chunk_size, st.auto_pin_ttl_ms, now_ms()});
      },
      [=](leave_atom) -> std::string {
        carry_out(self, self->state.core->leave(now_ms()));
        return "{}";
      },
  };
}

}  // namespace

Result<std::pair<caf::actor, uint16_t>> start_site_actor(caf::actor_system& system, SiteActorConfig config, SiteDeps deps,
                                    const std::string& cluster_host, uint16_t cluster_port) {
  auto registry = &deps.registry;
  auto lookup = [registry](const std::string& digest) -> std::optional<wire::Manifest> {
    auto d = Digest::parse(digest);
    if (!d) return std::nullopt;
    auto m = registry->manifest_by_digest(*d);
    if (!m) return std::nullopt;
    wire::Manifest out;
    out.set_digest(m->digest.str());
    out.set_media_type(m->media_type);
    out.set_body(m->body);
    return out;
  };
  auto core = std::make_unique<site::SiteCore>(config.self, config.core, config.self.incarnation(), lookup);
  core->set_held_blobs(deps.held_blobs);
  // The index as persisted: a restarted node comes back with it and catches up.
  auto s = deps.kv.scan(keys::kIndexPrefix, "", [&](std::string_view, std::string_view value) {
    core->mutable_index().load_entry(value);
    return true;
  });
  if (!s) return s;
  site::SiteCore::Memory memory;
  for (auto [key, field] : {std::pair{keys::kLastContact, &memory.last_contact_ms}, {keys::kCollected, &memory.collected_ms}})
    if (auto v = deps.kv.get(key); v && v->has_value()) *field = std::strtoull((*v)->c_str(), nullptr, 10);
  core->restore(memory);
  auto start = core->start(now_ms(), config.seeds);
  auto actor = system.spawn([core = std::move(core), deps, config, start = std::move(start)](SiteActor* self) mutable {
    auto& st = self->state;
    st.core = std::move(core);
    st.sealer = deps.sealer;
    st.stats = deps.stats;
    st.peers = deps.peers;
    st.snapshot = deps.index;
    st.auto_pin = config.auto_pin;
    st.registry = &deps.registry;
    st.default_replicas = config.default_replicas;
    st.chunk_size = config.chunk_size;
    // Last use is coarse: a tenth of the TTL (at most an hour, at least a
    // second), so a lapse is decided within 10% and a busy image costs one
    // index write per step, not one per pull.
    st.use_step_ms = std::clamp<uint64_t>(config.auto_pin_ttl_ms / 10, 1000, 3600 * 1000);
    st.auto_pin_ttl_ms = config.auto_pin_ttl_ms;
    st.holdings = deps.holdings;
    st.holdings_version = deps.holdings_version;
    st.store = spawn_store_actor(self, deps.kv, deps.registry);
    // The store ends after the writes this actor queued for it.
    self->attach_functor([store = st.store](const caf::error&) { caf::anon_send(store, stop_atom::value); });
    carry_out(self, std::move(start));
    note_snapshot_changes(st, st.core->index().entry_keys());  // what the node restarted with
    st.snapshot->set_pins(st.core->index().pins());
    st.pins_dirty = false;
    return site_behavior(self);
  });
  // Peers reach the site actor only through this gateway, which passes on
  // sealed envelopes and nothing else: the local commands (tag writes, pins,
  // leave, ticks) cannot be sent from the network. `delegate` keeps the
  // remote sender, which the site actor routes and monitors by.
  auto gateway = system.spawn([site = actor](caf::event_based_actor* self) -> caf::behavior {
    self->link_to(site);
    return {[=](envelope_atom atom, const std::string& sealed) { self->delegate(site, atom, sealed); }};
  });
  auto published = system.middleman().publish(gateway, cluster_port, cluster_host.c_str(), true);
  if (!published) {
    caf::anon_send_exit(gateway, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    return Status{Errc::io_error, "cannot listen on cluster address " + cluster_host + ":" +
                                      std::to_string(cluster_port) + ": " + system.render(published.error())};
  }
  return std::make_pair(actor, *published);
}

}  // namespace ep::actors
