// edgepier: one node of an EdgePier site. Parses the configuration, starts
// the Node and waits for SIGINT/SIGTERM.
#include <malloc.h>
#include <signal.h>

#include "app/config.h"
#include "app/node.h"
#include "base/log.h"

int main(int argc, char** argv) {
  // Chunk frames are 4 MiB buffers allocated on many threads. A fixed mmap
  // threshold keeps glibc from raising it after the first free and then
  // parking freed chunks in per-thread arenas: big buffers go back to the
  // kernel when freed, and RSS follows what is in flight.
  ::mallopt(M_MMAP_THRESHOLD, 512 << 10);
  ::mallopt(M_ARENA_MAX, 4);
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
  if (!config) {
    ep::log_error("node", config.status().message);
    return 2;
  }
  if (auto s = ep::configure_logging(config->log_level, config->log_format); !s) {
    ep::log_error("node", s.message);
    return 2;
  }
  auto node = ep::Node::start(caf_config, *config);
  if (!node) {
    ep::log_error("node", node.status().message);
    return node.status().code == ep::Errc::config_invalid ? 2 : 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  ep::log_info("node", std::string("shutting down (") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ")");
  node->reset();
  ep::log_info("node", "stopped");
  return 0;
}
