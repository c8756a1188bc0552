#include "actors/store_actor.h"

#include <caf/all.hpp>

#include "actors/caf_types.h"
#include "base/digest.h"
#include "base/log.h"
#include "registry/registry.h"
#include "storage/kv_store.h"

namespace ep::actors {

namespace {

// Writes in order; returns the first failure (the later writes are still tried).
Status write_all(KvStore& kv, Registry& registry, const std::vector<std::string>& puts,
                 const std::vector<std::string>& deletes, const std::vector<std::string>& manifests,
                 const std::vector<std::string>& tags) {
  Status first = Status::Ok();
  auto note = [&](Status s, const std::string& what) {
    if (!s && first) first = Status{s.code, what + ": " + s.message};
  };
  if (!puts.empty() || !deletes.empty()) {
    KvBatch batch;
    for (size_t i = 0; i + 1 < puts.size(); i += 2) batch.put(puts[i], puts[i + 1]);
    for (const auto& key : deletes) batch.del(key);
    note(kv.write(batch), "cannot persist the site index");
  }
  for (size_t i = 0; i + 2 < manifests.size(); i += 3)
    note(registry.store_manifest_content(manifests[i], manifests[i + 1], manifests[i + 2]),
         "cannot store replicated manifest " + manifests[i]);
  for (size_t i = 0; i + 3 < tags.size(); i += 4) {
    std::optional<Digest> digest;
    if (auto d = Digest::parse(tags[i + 3])) digest = *d;
    note(registry.apply_replicated_tag(tags[i], tags[i + 1], tags[i + 2], digest),
         "cannot apply replicated tag " + tags[i + 1] + ":" + tags[i + 2]);
  }
  return first;
}

}  // namespace

caf::actor spawn_store_actor(caf::local_actor* parent, KvStore& kv, Registry& registry) {
  return parent->spawn<caf::detached>([kv = &kv, registry = &registry](caf::event_based_actor* self) -> caf::behavior {
    // This actor's own state: whether writes are failing. A full disk is
    // logged when writes start failing and when they work again, not once
    // per replicated entry.
    auto failing = std::make_shared<bool>(false);
    return {
        [=](store_atom, const std::vector<std::string>& puts, const std::vector<std::string>& deletes,
            const std::vector<std::string>& manifests, const std::vector<std::string>& tags) {
          auto s = guarded("the store actor", [&] { return write_all(*kv, *registry, puts, deletes, manifests, tags); });
          if (!s && !*failing) log_error("store", s.message + " (further failures are not logged until a write works)");
          if (s && *failing) log_info("store", "site index and replicated writes work again");
          *failing = !s;
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
        [=](stop_atom) { self->quit(); },
    };
  });
}

void send_writes(const caf::actor& store, StoreWrites writes) {
  if (writes.empty() || !store) return;
  caf::anon_send(store, store_atom::value, std::move(writes.puts), std::move(writes.deletes),
             std::move(writes.manifests), std::move(writes.tags));
}

}  // namespace ep::actors
