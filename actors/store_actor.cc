#include "actors/store_actor.h"

#include <caf/all.hpp>

#include "actors/caf_types.h"
#include "base/digest.h"
#include "base/log.h"
#include "registry/registry.h"
#include "storage/kv_store.h"

namespace ep::actors {

namespace {

void write_all(KvStore& kv, Registry& registry, const std::vector<std::string>& puts,
               const std::vector<std::string>& deletes, const std::vector<std::string>& manifests,
               const std::vector<std::string>& tags) {
  if (!puts.empty() || !deletes.empty()) {
    KvBatch batch;
    for (size_t i = 0; i + 1 < puts.size(); i += 2) batch.put(puts[i], puts[i + 1]);
    for (const auto& key : deletes) batch.del(key);
    if (auto s = kv.write(batch); !s) log_error("store", "cannot persist the site index: " + s.message);
  }
  for (size_t i = 0; i + 2 < manifests.size(); i += 3)
    if (auto s = registry.store_manifest_content(manifests[i], manifests[i + 1], manifests[i + 2]); !s)
      log_error("store", "cannot store replicated manifest " + manifests[i] + ": " + s.message);
  for (size_t i = 0; i + 3 < tags.size(); i += 4) {
    std::optional<Digest> digest;
    if (auto d = Digest::parse(tags[i + 3])) digest = *d;
    if (auto s = registry.apply_replicated_tag(tags[i], tags[i + 1], tags[i + 2], digest); !s)
      log_error("store", "cannot apply replicated tag " + tags[i + 1] + ":" + tags[i + 2] + ": " + s.message);
  }
}

}  // namespace

caf::actor spawn_store_actor(caf::local_actor* parent, KvStore& kv, Registry& registry) {
  return parent->spawn<caf::detached>([kv = &kv, registry = &registry](caf::event_based_actor* self) -> caf::behavior {
    return {
        [=](store_atom, const std::vector<std::string>& puts, const std::vector<std::string>& deletes,
            const std::vector<std::string>& manifests, const std::vector<std::string>& tags) {
          guarded("the store actor", [&] {
            write_all(*kv, *registry, puts, deletes, manifests, tags);
            return Status::Ok();
          });
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
