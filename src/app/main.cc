// edgepier: one node of an EdgePier site. Wires config, storage, registry and
// the HTTP server together and waits for SIGINT/SIGTERM.
#include <signal.h>

#include <algorithm>
#include <caf/actor_system.hpp>
#include <filesystem>
#include <iostream>
#include <thread>

#include "app/config.h"
#include "app/upstreams.h"
#include "http/api.h"
#include "http/metrics.h"
#include "http/server.h"
#include "registry/registry.h"
#include "registry/uploads.h"
#include "storage/blob_store.h"
#include "storage/kv_store.h"

namespace {
int die(const std::string& message, int code = 1) {
  std::cerr << "edgepier: " << message << std::endl;
  return code;
}
}  // namespace

int main(int argc, char** argv) {
  // Block termination signals in every thread; the main thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  ep::NodeConfig caf_config;
  auto config = ep::load_config(caf_config, argc, argv);
  if (caf_config.cli_helptext_printed) return 0;
  if (!config) return die(config.status().message, 2);

  std::error_code ec;
  std::filesystem::create_directories(config->data_dir, ec);
  if (ec) return die("cannot create data-dir " + config->data_dir + ": " + ec.message());
  auto blobs = ep::open_fs_blob_store(config->data_dir);
  if (!blobs) return die(blobs.status().message);
  auto kv = ep::open_rocks_kv_store((std::filesystem::path(config->data_dir) / "meta").string());
  if (!kv) return die(kv.status().message);

  ep::Registry registry(**kv, **blobs);
  ep::Uploads uploads(**kv, **blobs, registry);
  uploads.recover();
  auto upstreams = ep::build_upstreams(*config);
  if (!upstreams) return die(upstreams.status().message, 2);
  ep::Mirror mirror(registry, **blobs, std::move(upstreams->by_namespace), upstreams->default_ns, config->tag_ttl);
  ep::http::Metrics metrics;
  ep::http::Api api(registry, uploads, **blobs, metrics, &mirror);
  ep::http::Server server(api, metrics);
  auto port = server.listen(config->registry_address);
  if (!port) return die(port.status().message);

  // The actor system hosts the site's actors (membership, index, transfer).
  caf::actor_system system{caf_config};

  const size_t threads = std::max(2u, std::thread::hardware_concurrency());
  server.start(threads);
  std::cerr << "edgepier: node " << config->node_name << " serving the registry on " << config->registry_address
            << " (port " << *port << "), data in " << config->data_dir << std::endl;

  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "edgepier: shutting down" << std::endl;
  server.stop();
  return 0;
}
