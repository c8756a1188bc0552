#include "actors/revalidation_actor.h"

#include <caf/all.hpp>
#include <map>
#include <set>

#include "actors/caf_types.h"

namespace ep::actors {

namespace {

struct Flight {
  std::map<uint64_t, TagRevalidations::Waiter> waiters;  // by waiter id
};

struct RevalidationState {
  std::set<std::string> fresh;                  // revalidated within tag-ttl
  std::map<std::string, uint64_t> fresh_since;  // key -> the revalidation that made it fresh
  std::map<std::string, Flight> flights;        // running revalidations, by key
  uint64_t next_id = 0;                         // waiter ids, revalidation ids
  // Waiters still waiting when the actor stops are told so.
  ~RevalidationState() {
    auto stopping = std::make_shared<const Result<StoredManifest>>(Status::Stopping());
    for (auto& [key, flight] : flights)
      for (auto& [id, waiter] : flight.waiters) waiter(stopping);
  }
};

using Self = caf::stateful_actor<RevalidationState>;

caf::behavior revalidation(Self* self, std::chrono::milliseconds tag_ttl) {
  return {
      [=](revalidate_atom, const std::string& key, bool known, caf::timespan patience, TagRevalidations::Run& run,
          TagRevalidations::Waiter& waiter) {
        auto& st = self->state;
        if (known && st.fresh.count(key)) return waiter(nullptr);
        const uint64_t id = ++st.next_id;
        auto [flight, started] = st.flights.try_emplace(key);
        flight->second.waiters.emplace(id, std::move(waiter));
        if (patience.count() > 0) self->delayed_send(self, patience, patience_atom::value, key, id);
        if (!started) return;
        run([me = caf::actor_cast<caf::actor>(self), key](TagRevalidations::Outcome outcome) {
          caf::anon_send(me, revalidated_atom::value, key, std::move(outcome));
        });
      },
      [=](patience_atom, const std::string& key, uint64_t id) {
        auto flight = self->state.flights.find(key);
        if (flight == self->state.flights.end()) return;
        auto waiter = flight->second.waiters.find(id);
        if (waiter == flight->second.waiters.end()) return;
        auto serve_known = std::move(waiter->second);
        flight->second.waiters.erase(waiter);
        serve_known(nullptr);
      },
      [=](revalidated_atom, const std::string& key, TagRevalidations::Outcome& outcome) {
        auto& st = self->state;
        auto flight = st.flights.find(key);
        if (flight == st.flights.end()) return;
        auto waiters = std::move(flight->second.waiters);
        st.flights.erase(flight);
        if (outcome && *outcome) {
          const uint64_t generation = ++st.next_id;
          st.fresh.insert(key);
          st.fresh_since[key] = generation;
          self->delayed_send(self, tag_ttl, stale_atom::value, key, generation);
        }
        for (auto& [id, waiter] : waiters) waiter(outcome);
      },
      [=](stale_atom, const std::string& key, uint64_t generation) {
        auto& st = self->state;
        auto since = st.fresh_since.find(key);
        if (since == st.fresh_since.end() || since->second != generation) return;  // revalidated again since
        st.fresh_since.erase(since);
        st.fresh.erase(key);
      },
  };
}

class ActorRevalidations : public TagRevalidations {
 public:
  explicit ActorRevalidations(caf::actor actor) : actor_(std::move(actor)) {}
  void ask(const std::string& key, bool known, std::chrono::milliseconds patience, Run run, Waiter waiter) override {
    caf::anon_send(actor_, revalidate_atom::value, key, known, caf::timespan{patience}, std::move(run),
                   std::move(waiter));
  }

 private:
  caf::actor actor_;
};

}  // namespace

caf::actor spawn_revalidation_actor(caf::actor_system& system, std::chrono::milliseconds tag_ttl) {
  return system.spawn(revalidation, tag_ttl);
}

std::unique_ptr<TagRevalidations> revalidations_of(caf::actor actor) {
  return std::make_unique<ActorRevalidations>(std::move(actor));
}

}  // namespace ep::actors
