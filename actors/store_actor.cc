#include "actors/store_actor.h"

#include <caf/all.hpp>

#include "actors/caf_types.h"
#include "actors/pending_writes.h"
#include "base/log.h"
#include "registry/registry.h"

namespace ep::actors {

// How often writes that did not land (a full disk) are tried again.
constexpr auto kRetryEvery = std::chrono::seconds(2);

caf::actor spawn_store_actor(caf::local_actor* parent, KvStore& kv, Registry& registry) {
  return parent->spawn<caf::detached>([kv = &kv, registry = &registry](caf::event_based_actor* self) -> caf::behavior {
    // This actor's own state: the writes that have not landed (a full disk),
    // retried every kRetryEvery until they do, and whether writes are
    // failing (logged when they start failing and when they work again, not
    // once per replicated entry).
    struct State {
      PendingWrites pending;
      bool failing = false;
      bool retry_scheduled = false;
    };
    auto st = std::make_shared<State>();
    auto flush = [=] {
      auto s = guarded("the store actor", [&] { return st->pending.flush(*kv, *registry); });
      if (!s && !st->failing)
        log_error("store", s.message + " (kept and retried until it lands; further failures are not logged until then)");
      if (!s && st->failing) log_debug("store", "retried writes still fail: " + s.message);
      if (s && st->failing) log_info("store", "site index and replicated writes work again; the kept ones landed");
      st->failing = !s;
      if (!s && !st->retry_scheduled) {
        st->retry_scheduled = true;
        self->delayed_send(self, kRetryEvery, flush_atom::value);
      }
    };
    return {
        [=](store_atom, const std::vector<std::string>& puts, const std::vector<std::string>& deletes,
            const std::vector<std::string>& manifests, const std::vector<std::string>& tags) {
          st->pending.add(StoreWrites{puts, deletes, manifests, tags});
          flush();
        },
        [=](flush_atom) {
          st->retry_scheduled = false;
          if (!st->pending.empty()) flush();
        },
        [=](holds_atom, const std::vector<std::string>& refs) {
          std::vector<std::string> holds;
          guarded("the store actor", [&] {
            for (const auto& ref : refs)
              if (registry->holds_image(ref)) holds.push_back(ref);
            return Status::Ok();
          });
          return holds;
        },
        [=](stop_atom) {
          if (!st->pending.empty()) flush();
          if (!st->pending.empty())
            log_warning("store", std::to_string(st->pending.size()) +
                                     " site writes had not landed at stop; the peers' anti-entropy brings them back");
          self->quit();
        },
    };
  });
}

void send_writes(const caf::actor& store, StoreWrites writes) {
  if (writes.empty() || !store) return;
  caf::anon_send(store, store_atom::value, std::move(writes.puts), std::move(writes.deletes),
             std::move(writes.manifests), std::move(writes.tags));
}

}  // namespace ep::actors
