// SiteCore: holdings summaries (see site/holdings_filter.h and core.h).
#include "site/core.h"

namespace ep::site {

wire::Envelope SiteCore::holdings_envelope(wire::HoldingsUpdate update, uint64_t now) const {
  auto e = envelope(now);
  *e.mutable_holdings() = std::move(update);
  return e;
}

Effects SiteCore::broadcast_holdings(const std::optional<wire::HoldingsUpdate>& update, uint64_t now) {
  Effects fx;
  if (!update || leaving_) return fx;
  for (const auto& peer : membership_.live_peers()) fx.send.push_back({peer, holdings_envelope(*update, now)});
  return fx;
}

Effects SiteCore::blob_stored(uint64_t key, uint64_t now) { return broadcast_holdings(own_holdings_.stored(key), now); }

Effects SiteCore::blob_removed(uint64_t key, uint64_t now) { return broadcast_holdings(own_holdings_.removed(key), now); }

void SiteCore::holdings_event(Effects& fx, const MembershipEvent& event, uint64_t now) {
  // A peer's previous life, or a peer no longer live: what it announced is
  // dropped (a restarted one announces its new holdings when it hears us).
  if (event.restarted || event.gone || event.liveness != Liveness::alive) {
    if (peer_holdings_.filter(event.name)) fx.holdings_changed.push_back(event.name);
    peer_holdings_.forget(event.name);
  }
  if (event.liveness != Liveness::alive || leaving_) return;
  // Alive again (joined, restarted, back from suspicion or a partition):
  // deltas sent meanwhile may be lost, so it gets the whole filter.
  fx.send.push_back({event.name, holdings_envelope(own_holdings_.whole(), now)});
  // Back from suspicion: it may still count us alive and not send its own.
  if (!event.joined && !event.restarted && !peer_holdings_.filter(event.name)) ask_whole_holdings(fx, event.name, now);
}

void SiteCore::ask_whole_holdings(Effects& fx, const std::string& peer, uint64_t now) const {
  wire::HoldingsUpdate ask;
  ask.set_want_whole(true);
  fx.send.push_back({peer, holdings_envelope(std::move(ask), now)});
}

void SiteCore::receive_holdings(Effects& fx, const std::string& from, const wire::HoldingsUpdate& update,
                                uint64_t now) {
  if (update.want_whole()) {
    fx.send.push_back({from, holdings_envelope(own_holdings_.whole(), now)});
    return;
  }
  switch (peer_holdings_.apply(from, update)) {
    case PeerHoldings::Outcome::want_whole:
      ask_whole_holdings(fx, from, now);
      fx.holdings_changed.push_back(from);
      break;
    case PeerHoldings::Outcome::changed:
      fx.holdings_changed.push_back(from);
      break;
    case PeerHoldings::Outcome::unchanged:
      break;
  }
}

}  // namespace ep::site
