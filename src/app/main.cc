// edgepier: one node of an EdgePier site. Parses the configuration, starts
// the Node and waits for SIGINT/SIGTERM.
#include <signal.h>

#include <iostream>

#include "app/config.h"
#include "app/node.h"

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
  if (!config) {
    std::cerr << "edgepier: " << config.status().message << std::endl;
    return 2;
  }
  auto node = ep::Node::start(caf_config, *config);
  if (!node) {
    std::cerr << "edgepier: " << node.status().message << std::endl;
    return node.status().code == ep::Errc::config_invalid ? 2 : 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "edgepier: shutting down" << std::endl;
  node->reset();
  return 0;
}
