// epctl: the EdgePier admin tool (INTERFACE.md, "epctl"). Parsing lives in
// cli.cc, the commands in commands.cc, the interactive shell in shell.cc.
#include <iostream>
#include <string>
#include <vector>

#include "epctl/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return epctl::execute(args, epctl::GlobalOptions{}, false, std::cout, std::cerr);
}
