#include "app/node.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sodium.h>

#include <algorithm>
#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "actors/caf_types.h"
#include "actors/replicator_actor.h"
#include "actors/revalidation_actor.h"
#include "actors/site_actor.h"
#include "app/credential_files.h"
#include "app/upstreams.h"
#include "http/admin_api.h"
#include "transfer/chunk_server.h"
#include "transfer/cluster_gate.h"
#include "http/api.h"
#include "http/node_metrics.h"
#include "http/server.h"
#include "base/log.h"
#include "dataplane/mirror.h"
#include "dataplane/replicator.h"
#include "registry/uploads.h"

namespace ep {

namespace {

std::string primary_ipv4() {
  ifaddrs* list = nullptr;
  std::string found = "127.0.0.1";
  if (::getifaddrs(&list) != 0) return found;
  for (auto* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, buf, sizeof buf);
    if (std::string(buf).rfind("127.", 0) != 0) {
      found = buf;
      break;
    }
  }
  ::freeifaddrs(list);
  return found;
}

// The address peers should use for a listener bound to `bind`.
std::string advertised(const std::string& bind, const std::string& advertise_host) {
  auto colon = bind.rfind(':');
  std::string host = bind.substr(0, colon), port = bind.substr(colon + 1);
  if (!advertise_host.empty()) host = advertise_host;
  else if (host == "0.0.0.0" || host == "::" || host == "[::]") host = primary_ipv4();
  return host + ":" + port;
}

Result<std::string> read_token(const std::string& path) {
  std::ifstream in(path);
  std::string token;
  if (!in || !(in >> token) || token.empty()) return Status{Errc::config_invalid, "cannot read admin token from " + path};
  return token;
}

uint64_t wall_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

struct Node::Parts {
  std::unique_ptr<BlobStore> blobs;
  std::unique_ptr<KvStore> kv;
  std::unique_ptr<Registry> registry;
  std::unique_ptr<Uploads> uploads;
  std::unique_ptr<GarbageCollector> gc;
  std::unique_ptr<Mirror> mirror;
  std::unique_ptr<caf::actor_system> system;
  caf::actor site;
  std::unique_ptr<actors::SiteTagObserver> observer;
  std::shared_ptr<actors::SiteStats> stats = std::make_shared<actors::SiteStats>();
  std::shared_ptr<site::PeerDirectory> peers = std::make_shared<site::PeerDirectory>();
  std::shared_ptr<site::IndexSnapshot> index = std::make_shared<site::IndexSnapshot>();
  std::unique_ptr<Replicator> replicator;
  caf::actor replicator_actor;  // drives the replicator on the blocking pool
  caf::actor revalidation;      // when the mirror asks upstreams about tags
  std::shared_ptr<transfer::PeerTraffic> traffic = std::make_shared<transfer::PeerTraffic>();
  std::unique_ptr<transfer::ChunkServer> chunk_server;
  std::unique_ptr<transfer::ClusterGate> gate;
  // Every listener's I/O; requests that wait (uplink, peers, the site
  // actor) run on threads started on demand.
  std::unique_ptr<IoPool> io;
  std::unique_ptr<BlockingPool> blocking, admin_blocking;
  std::unique_ptr<BlockingPool> peer_requests;  // the chunk server's provider calls
  http::Metrics metrics, admin_metrics;
  std::unique_ptr<access::AccessControl> access;
  std::unique_ptr<CredentialFiles> credentials;  // after the server it reloads
  std::unique_ptr<http::Api> api;
  std::unique_ptr<http::AdminApi> admin;
  std::unique_ptr<http::Server> server, admin_server;
};

Node::Node(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

namespace {
void stop_actor(Node::Parts& p, const caf::actor& actor) {
  if (!actor) return;
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  caf::scoped_actor waiter{*p.system};
  waiter->wait_for(actor);
}
}  // namespace

Node::~Node() {
  auto& p = *parts_;
  if (p.mirror) p.mirror->stop();  // fetches give up, so handlers waiting on them return
  if (p.io) p.io->stop();          // no I/O handler runs from here on
  if (p.blocking) p.blocking->stop();  // every deferred handler has returned
  if (p.admin_blocking) p.admin_blocking->stop();
  if (p.peer_requests) p.peer_requests->stop();  // every peer's request has been answered or dropped
  if (p.blobs) p.blobs->set_room_maker(nullptr);
  stop_actor(p, p.replicator_actor);  // its work has ended with the blocking pool
  p.replicator.reset();
  stop_actor(p, p.revalidation);  // tells clients still waiting that the node stops
  if (p.mirror) p.mirror->set_revalidations(nullptr);
  if (p.chunk_server) p.chunk_server->stop();  // and every serving thread is gone
  if (p.gate) p.gate->stop();
  // Listeners go before the I/O pool they were made on; the pool then frees
  // the connections its queued handlers still hold (they use the metrics
  // and handlers, which live on).
  p.credentials.reset();
  p.server.reset();
  p.admin_server.reset();
  p.gate.reset();
  p.chunk_server.reset();
  p.io.reset();
  if (p.registry) p.registry->set_observer(nullptr);
  stop_actor(p, p.site);  // it calls into the mirror (holdings) until it is gone
  p.mirror.reset();
}

namespace {

using Parts = Node::Parts;

// Storage, the content model and the data plane over them.
Status open_store(Parts& p, const Config& config) {
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) return Status{Errc::io_error, "cannot create data-dir " + config.data_dir + ": " + ec.message()};
  auto blobs = open_fs_blob_store(config.data_dir, config.min_free_space);
  if (!blobs) return blobs.status();
  p.blobs = std::move(*blobs);
  // Metadata writes may use half of min-free-space, the reserve blob writes leave them.
  auto kv = open_rocks_kv_store((std::filesystem::path(config.data_dir) / "meta").string(), config.min_free_space / 2);
  if (!kv) return kv.status();
  p.kv = std::move(*kv);
  p.registry = std::make_unique<Registry>(*p.kv, *p.blobs);
  p.uploads = std::make_unique<Uploads>(*p.kv, *p.blobs, *p.registry);
  p.uploads->recover();
  p.gc = std::make_unique<GarbageCollector>(*p.registry, *p.uploads, *p.blobs, config.gc_grace);
  auto upstreams = build_upstreams(config);
  if (!upstreams) return upstreams.status();
  p.mirror = std::make_unique<Mirror>(*p.registry, *p.blobs, std::move(upstreams->by_namespace),
                                      upstreams->default_ns, MirrorPools{config.disk_threads, config.chunk_threads});
  // Pushed blobs are announced to peers like assembled ones.
  p.uploads->on_stored([mirror = p.mirror.get()](const Digest& d) { mirror->note_completed(d); });
  return Status::Ok();
}

// Who this node is to the site: its member record, the site key, its signer.
struct SiteIdentity {
  wire::Member self;
  std::string site_key;
  std::shared_ptr<const site::Sealer> sealer;
};

Result<SiteIdentity> load_site_identity(const Config& config) {
  if (sodium_init() < 0) return Status{Errc::io_error, "libsodium failed to initialise"};
  auto identity = site::load_or_create_identity(config.data_dir);
  if (!identity) return identity.status();
  SiteIdentity out;
  out.site_key.assign(32, '\0');
  if (!config.site_key_file.empty()) {
    auto key = site::load_site_key(config.site_key_file);
    if (!key) return key.status();
    out.site_key = *key;
  } else {
    randombytes_buf(out.site_key.data(), out.site_key.size());  // single node: nobody else can talk to us
  }
  out.self.set_name(config.node_name);
  out.self.set_cluster_address(advertised(config.cluster_address, config.advertise_host));
  out.self.set_registry_address(advertised(config.registry_address, config.advertise_host));
  out.self.set_data_address(advertised(config.data_address, config.advertise_host));
  out.self.set_incarnation(wall_ms());
  out.self.set_identity_key(identity->public_key);
  out.sealer = std::make_shared<const site::Sealer>(out.site_key, *identity, config.node_name);
  return out;
}

void start_actor_system(Parts& p, NodeConfig& caf_config) {
  caf_config.load<caf::io::middleman>();
  caf_config.set("middleman.heartbeat-interval", caf::timespan{std::chrono::milliseconds(2000)});
  caf_config.set("middleman.connection-timeout", caf::timespan{std::chrono::seconds(4)});
  caf_config.set("scheduler.max-threads", static_cast<size_t>(2));
  // Work sharing: idle workers sleep instead of polling (work stealing kept
  // every node at ~3% CPU when idle, which a 50-node site on one host felt).
  caf_config.set("scheduler.policy", caf::atom("sharing"));
  p.system = std::make_unique<caf::actor_system>(caf_config);
}

// The cluster gate and the chunk server (site members only). Every listener
// is bound before the node joins the site, so a taken port fails the start
// without the site ever seeing this node alive.
Status bind_site_listeners(Parts& p, const Config& config, const std::string& site_key) {
  if (config.site_key_file.empty()) return Status::Ok();
  p.gate = std::make_unique<transfer::ClusterGate>(*p.io, "");
  if (auto port = p.gate->listen(config.cluster_address); !port) return port.status();
  auto data_key = site::derive_site_subkey(site_key, "edgepier data plane v1");
  auto mirror = p.mirror.get();
  // Peers' requests may wait on the disk or the uplink: a pool of their own,
  // so a rush of them never holds up this node's clients.
  p.peer_requests = std::make_unique<BlockingPool>(config.blocking_threads);
  p.chunk_server = std::make_unique<transfer::ChunkServer>(
      *p.io, *p.peer_requests, data_key, [mirror](const wire::ChunkRequest& r) { return mirror->serve_chunk(r); },
      p.traffic);
  if (auto port = p.chunk_server->listen(config.data_address); !port) return port.status();
  p.mirror->enable_site(p.peers, std::make_shared<transfer::ChunkClient>(data_key, p.traffic), config.node_name,
                        config.chunk_size);
  return Status::Ok();
}

// Who may use the registry: users, rules, and tokens any member accepts
// (their key comes from the site key).
void make_access(Parts& p, const Config& config, const std::string& site_key) {
  access::AccessSettings settings;
  settings.htpasswd_file = config.htpasswd_file;
  settings.access_file = config.access_file;
  settings.node_name = config.node_name;
  settings.token_ttl_ms = static_cast<uint64_t>(config.token_ttl.count());
  settings.token_key = site::derive_site_subkey(site_key, "edgepier registry tokens v1");
  p.access = std::make_unique<access::AccessControl>(std::move(settings));
}

Result<unsigned short> bind_registry(Parts& p, const Config& config, const std::string& site_key) {
  make_access(p, config, site_key);
  p.api = std::make_unique<http::Api>(*p.registry, *p.uploads, *p.blobs, p.metrics, *p.access, p.mirror.get());
  // The replicator is made before the I/O threads start and goes after they stop.
  p.api->set_metrics_source([&p] {
    std::string text = http::render_node_metrics(*p.stats, *p.traffic, *p.mirror);
    if (p.replicator) text += http::render_storage_metrics(*p.replicator, *p.blobs);
    return text;
  });
  p.blocking = std::make_unique<BlockingPool>(config.blocking_threads);
  // Upstream requests run on the I/O pool; a host name is looked up on the pool.
  p.mirror->use_pools(*p.io, *p.blocking);
  p.revalidation = actors::spawn_revalidation_actor(*p.system, config.tag_ttl);
  p.mirror->set_revalidations(actors::revalidations_of(p.revalidation));
  http::ServerLimits limits;
  limits.max_connections = config.http_max_connections;
  limits.header_timeout = config.http_header_timeout;
  limits.stall_timeout = config.http_stall_timeout;
  p.server = std::make_unique<http::Server>(*p.io, *p.api, p.metrics, *p.blocking, limits);
  p.credentials = std::make_unique<CredentialFiles>(
      *p.access, *p.server, *p.blocking, config.tls_cert_file, config.tls_key_file, [&p](const std::string& fingerprint) {
        if (p.site) caf::anon_send(p.site, actors::access_atom::value, fingerprint);
      });
  if (auto s = p.credentials->load(); !s) return s;
  return p.server->listen(config.registry_address);
}

Status bind_admin(Parts& p, const Config& config) {
  std::string token;
  if (!config.admin_token_file.empty()) {
    auto t = read_token(config.admin_token_file);
    if (!t) return t.status();
    token = *t;
  }
  p.admin = std::make_unique<http::AdminApi>(*p.system, caf::actor{}, *p.registry, *p.blobs, p.metrics, *p.mirror,
                                             p.traffic, token);
  http::ServerLimits admin_limits;
  admin_limits.max_connections = 64;
  // Its own small pool: an operator gets answers while registry work waits.
  p.admin_blocking = std::make_unique<BlockingPool>(2);
  p.admin_server = std::make_unique<http::Server>(*p.io, *p.admin, p.admin_metrics, *p.admin_blocking, admin_limits);
  if (auto port = p.admin_server->listen(config.admin_address); !port) return port.status();
  return Status::Ok();
}

// The site actor behind the gate; the registry reports tag writes to it.
Status start_site(Parts& p, const Config& config, const SiteIdentity& identity) {
  site::CoreOptions core_options;
  core_options.membership.gone_after_ms = static_cast<uint64_t>(config.gone_after.count());
  wire::Member self = identity.self;
  self.set_access_fingerprint(p.access->fingerprint());
  actors::SiteActorConfig site_config{self,               config.seeds,     core_options,
                                      config.replication, config.auto_pin, config.chunk_size,
                                      static_cast<uint64_t>(config.auto_pin_ttl.count())};
  auto* mirror = p.mirror.get();
  actors::SiteDeps deps{*p.kv, *p.registry, identity.sealer, p.stats, p.peers, p.index,
                        [mirror] { return mirror->holdings(); }, [mirror] { return mirror->holdings_version(); }, {}};
  for (const auto& [digest, size] : p.blobs->list()) deps.held_blobs.push_back(site::holdings_key(digest.str()));
  // The middleman listens on loopback only; the gate faces the network.
  auto site = actors::start_site_actor(*p.system, site_config, deps, "127.0.0.1", 0);
  if (!site) return site.status();
  p.site = site->first;
  if (p.gate) {
    p.gate->set_backend("127.0.0.1:" + std::to_string(site->second));
    p.gate->start();
  }
  p.admin->set_site(p.site);
  p.blobs->set_listener(actors::blob_listener(p.site));  // before start_serving: nothing stores blobs yet
  p.observer = std::make_unique<actors::SiteTagObserver>(p.site);
  p.registry->set_observer(p.observer.get());
  return Status::Ok();
}

// Background work and the listeners' accept loops, then the I/O threads.
void start_serving(Parts& p, const Config& config) {
  if (p.chunk_server) p.chunk_server->start();
  // Pinned images to fetch, and the storage budget to keep (single nodes too).
  p.replicator = std::make_unique<Replicator>(*p.registry, *p.blobs, *p.mirror, p.index, p.peers, config.node_name);
  p.replicator->set_storage_budget(config.storage_budget);
  p.replicator->set_auto_pin_ttl(static_cast<uint64_t>(config.auto_pin_ttl.count()));
  p.replicator->set_collector(p.gc.get());
  p.replicator_actor = actors::spawn_replicator_actor(
      *p.system, *p.replicator, [pool = p.blocking.get()](std::function<void()> work) { return pool->post(std::move(work)); });
  // A write that would be refused for space first evicts cached blobs.
  p.blobs->set_room_maker([replicator = p.replicator.get()](uint64_t bytes) { return replicator->make_room(bytes); });
  p.admin->set_replicator(p.replicator.get());
  p.admin->set_collector(p.gc.get());
  p.admin->set_min_free_space(config.min_free_space);
  std::vector<std::string> caches;  // repositories under a configured upstream's namespace
  for (const auto& entry : config.upstreams) caches.push_back(mirror_repository(entry.substr(0, entry.find('=')), ""));
  p.admin->set_fsck([&p, caches](bool repair) {
    return fsck(*p.kv, *p.blobs, repair, [&caches](std::string_view repo) {
      return std::any_of(caches.begin(), caches.end(), [&](const std::string& c) { return repo.rfind(c, 0) == 0; });
    });
  });
  p.server->start();
  p.admin_server->start();
  p.admin->sample_traffic();  // the status page's chart starts at the node's start
  p.io->repeat(http::AdminApi::kTrafficPeriod, [admin = p.admin.get()] { admin->sample_traffic(); });
  p.io->repeat(std::chrono::seconds(2), [credentials = p.credentials.get()] { credentials->check(); });
  p.io->start();
}

}  // namespace

Result<std::unique_ptr<Node>> Node::start(NodeConfig& caf_config, const Config& config) {
  // Owned by a Node from the start, so every early error return stops what
  // was started (the site actor above all, else the actor system waits forever).
  std::unique_ptr<Node> node(new Node(std::make_unique<Parts>()));
  Parts& p = *node->parts_;
  if (auto s = open_store(p, config); !s) return s;
  auto identity = load_site_identity(config);
  if (!identity) return identity.status();
  start_actor_system(p, caf_config);
  p.io = std::make_unique<IoPool>(config.io_threads);
  if (auto s = bind_site_listeners(p, config, identity->site_key); !s) return s;
  auto port = bind_registry(p, config, identity->site_key);
  if (!port) return port.status();
  if (auto s = bind_admin(p, config); !s) return s;
  if (auto s = start_site(p, config, *identity); !s) return s;
  start_serving(p, config);
  log_info("node", "node " + config.node_name + " serving the registry on " + config.registry_address +
                       (config.tls_cert_file.empty() ? "" : " over HTTPS") + " (port " +
           std::to_string(*port) + "), admin on " + config.admin_address + ", data in " + config.data_dir +
           (config.site_key_file.empty() ? ", single node (no site key)"
                                         : ", site member at " + identity->self.cluster_address()));
  return node;
}

}  // namespace ep
