// AdminApi: the node's admin HTTP API used by epctl (JSON, /admin/v1/...)
// and the read-only status page at / (http/status_page.h).
//
// Listens on admin-address (loopback by default). When a token is set every
// /admin/v1 request must carry "Authorization: Bearer <token>"; the page
// itself holds no data and is served to anyone, its script asks for the
// token. Site state is read from
// and changed through the site actor (requests run on the server's worker
// pool, never on its I/O threads); local facts (blobs, traffic) are read
// directly. Errors: {"error": "..."} with a 4xx/5xx status.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <functional>
#include <string>

#include "http/api.h"
#include "http/traffic_history.h"
#include "registry/fsck.h"

namespace ep {
class Replicator;
class GarbageCollector;
}

namespace ep::http {

class AdminApi : public RequestHandler {
 public:
  AdminApi(caf::actor_system& system, caf::actor site, Registry& registry, BlobStore& blobs, Metrics& registry_metrics,
           Mirror& mirror, std::shared_ptr<transfer::PeerTraffic> traffic, std::string token)
      : system_(system), site_(std::move(site)), registry_(registry), blobs_(blobs), metrics_(registry_metrics),
        mirror_(mirror), traffic_(std::move(traffic)), token_(std::move(token)) {}

  Handling handle(const RequestHead& head, const access::Caller& caller) override;
  // Records the byte counters for the status page's chart; called every
  // kTrafficPeriod by a timer on the I/O pool (never blocks).
  static constexpr std::chrono::milliseconds kTrafficPeriod{5000};
  void sample_traffic();
  // Set once, before the server starts.
  void set_site(caf::actor site) { site_ = std::move(site); }
  // Set once, before the server starts: the storage budget's keeper.
  void set_replicator(const Replicator* replicator) { replicator_ = replicator; }
  void set_collector(GarbageCollector* collector) { collector_ = collector; }
  void set_min_free_space(uint64_t bytes) { min_free_space_ = bytes; }
  // What `epctl fsck` runs (registry/fsck.h), with repair or not.
  void set_fsck(std::function<Result<FsckReport>(bool repair)> run) { fsck_ = std::move(run); }

 private:
  Reply pins_reply();
  Reply gc_reply(bool remove);
  Reply fsck_reply(bool repair);
  Reply blobs_reply();
  Reply stats_reply();
  Reply traffic_history_reply();
  TrafficSample traffic_now() const;
  // The site actor's answer to `request` (JSON text), waited for on an
  // admin pool thread: for work that blocks anyway (pins, blobs).
  template <class... Ts>
  Reply ask(Ts... request);
  // The same without a thread: a one-shot actor asks and `send`s the
  // reply when the answer comes (or after 5 s).
  template <class... Ts>
  void ask_later(std::function<void(Reply)> send, Ts... request);

  caf::actor_system& system_;
  caf::actor site_;
  Registry& registry_;
  BlobStore& blobs_;
  Metrics& metrics_;
  Mirror& mirror_;
  std::shared_ptr<transfer::PeerTraffic> traffic_;
  std::string token_;
  const Replicator* replicator_ = nullptr;
  GarbageCollector* collector_ = nullptr;
  uint64_t min_free_space_ = 0;
  std::function<Result<FsckReport>(bool)> fsck_;
  TrafficHistory traffic_history_{180};  // 15 minutes of kTrafficPeriod samples
};

}  // namespace ep::http
