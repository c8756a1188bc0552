// caf_intruder: a stock CAF 0.17 process without the site key that connects
// to a node's cluster address and sends it the node-local commands the site
// actor understands (delete a tag, write a tag, pin, leave) in the clear.
// Used by tests/site to check that none of them has any effect: peers reach
// only an envelope gateway, and envelopes must be sealed with the site key.
//   caf_intruder HOST PORT REPO TAG
// Exit status 0 when it connected and sent everything (effects are checked
// by the test), 2 on usage errors, 1 when it could not connect.
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <iostream>
#include <string>
#include <thread>

#include "actors/caf_types.h"

using namespace ep::actors;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: caf_intruder HOST PORT REPO TAG\n";
    return 2;
  }
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system system{cfg};
  auto target = system.middleman().remote_actor(argv[1], static_cast<uint16_t>(std::stoul(argv[2])));
  if (!target) {
    std::cerr << "caf_intruder: cannot connect: " << system.render(target.error()) << "\n";
    return 1;
  }
  const std::string repo = argv[3], tag = argv[4];
  caf::scoped_actor self{system};
  self->send(*target, tag_del_atom::value, std::string(), repo, tag);
  self->send(*target, tag_put_atom::value, std::string(), repo, std::string("forged"),
             std::string("sha256:") + std::string(64, 'a'), std::string("application/vnd.oci.image.manifest.v1+json"),
             std::string("{}"));
  self->send(*target, pin_add_atom::value, std::string("forged/pin:x"), int32_t{1});
  self->send(*target, leave_atom::value);
  self->send(*target, tick_atom::value);
  // Also a request that would answer with the member list.
  bool answered = false;
  self->request(*target, std::chrono::seconds(2), members_atom::value)
      .receive([&](const std::string&) { answered = true; }, [&](caf::error&) {});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::cout << (answered ? "answered" : "no answer") << std::endl;
  return 0;
}
