// epctl: the EdgePier admin tool. This version knows `keygen` and `health`;
// the site commands of INTERFACE.md arrive with the site (membership, index).
#include <sodium.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>

namespace {
int fail(const std::string& message) {
  std::cerr << "epctl: " << message << std::endl;
  return 1;
}

int keygen(const std::string& path) {
  if (sodium_init() < 0) return fail("libsodium failed to initialise");
  unsigned char key[32];
  randombytes_buf(key, sizeof key);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, key, sizeof key);
  sodium_memzero(key, sizeof key);
  std::ofstream out(path, std::ios::trunc);
  if (!out) return fail("cannot write " + path);
  ::chmod(path.c_str(), 0600);
  out << hex << "\n";
  if (!out.flush()) return fail("cannot write " + path);
  std::cout << "wrote a new site key to " << path << std::endl;
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"epctl: administer an EdgePier node"};
  std::string admin = "http://127.0.0.1:5050", token;
  bool json = false;
  app.add_option("--admin", admin, "admin API URL");
  app.add_option("--token", token, "admin API token");
  app.add_flag("--json", json, "print JSON");
  app.require_subcommand(1);
  std::string key_file;
  auto* keygen_cmd = app.add_subcommand("keygen", "write a new site key");
  keygen_cmd->add_option("FILE", key_file, "where to write the key")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (*keygen_cmd) return keygen(key_file);
  return fail("unknown command");
}
