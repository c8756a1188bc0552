// Node configuration: INI and command line, with strict validation.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include "app/config.h"

using namespace ep;

namespace {
struct Ini {
  std::string path;
  explicit Ini(const std::string& text) {
    std::random_device rd;
    path = (std::filesystem::temp_directory_path() / ("ep-config-" + std::to_string(rd()) + ".ini")).string();
    std::ofstream(path) << text;
  }
  ~Ini() { std::filesystem::remove(path); }
};

Result<Config> load(std::vector<std::string> args) {
  args.insert(args.begin(), "edgepier");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  NodeConfig cfg;
  return load_config(cfg, static_cast<int>(argv.size()), argv.data());
}
}  // namespace

TEST_CASE("defaults match INTERFACE.md") {
  auto c = load({});
  REQUIRE(c.ok());
  CHECK(c->registry_address == "0.0.0.0:5000");
  CHECK(c->data_dir == "./edgepier-data");
  CHECK(c->admin_address == "127.0.0.1:5050");
  CHECK(c->chunk_size == 4194304);
  CHECK(c->replication == 0);
  CHECK(c->auto_pin);
  CHECK(c->tag_ttl == std::chrono::seconds(30));
  CHECK(c->io_threads == 2);
  CHECK(c->blocking_threads == 32);
  CHECK(c->disk_threads == 4);
  CHECK(c->chunk_threads == 64);
  CHECK_FALSE(c->node_name.empty());
}

TEST_CASE("INI values are read and the command line wins") {
  Ini ini("[edgepier]\nnode-name=\"n1\"\nregistry-address=\"127.0.0.1:6000\"\nseeds=[\"10.0.0.1:7946\"]\n"
          "site-key-file=\"/etc/edgepier/site.key\"\n"
          "chunk-size=1048576\nreplication=3\nauto-pin=true\ntag-ttl=5s\n"
          "upstreams=[\"docker.io=https://registry-1.docker.io\"]\n");
  auto c = load({"--config-file=" + ini.path, "--edgepier.registry-address=127.0.0.1:7000",
                 "--edgepier.replication=all", "--edgepier.auto-pin=false"});
  REQUIRE(c.ok());
  CHECK(c->node_name == "n1");
  CHECK(c->registry_address == "127.0.0.1:7000");
  CHECK(c->seeds == std::vector<std::string>{"10.0.0.1:7946"});
  CHECK(c->chunk_size == 1048576);
  CHECK(c->replication == 0);
  CHECK_FALSE(c->auto_pin);
  CHECK(c->tag_ttl == std::chrono::seconds(5));
  CHECK(c->upstreams.size() == 1);
}

TEST_CASE("unknown keys and bad values are errors naming the key") {
  auto error_of = [](const std::string& ini_text) {
    Ini ini(ini_text);
    auto c = load({"--config-file=" + ini.path});
    REQUIRE_FALSE(c.ok());
    return c.status().message;
  };
  CHECK_THAT(error_of("[edgepier]\nchunk-sise=1\n"), Catch::Contains("chunk-sise"));
  CHECK_THAT(error_of("[edgepier]\nchunk-size=\"big\"\n"), Catch::Contains("chunk-size"));
  CHECK_THAT(error_of("[edgepier]\nauto-pin=3\n"), Catch::Contains("auto-pin"));
  CHECK_THAT(error_of("[edgepier]\nreplication=0\n"), Catch::Contains("replication"));
  CHECK_THAT(error_of("[edgepier]\nregistry-address=\"nohost\"\n"), Catch::Contains("registry-address"));
  CHECK_THAT(error_of("[edgepier]\nupstreams=[\"docker.io\"]\n"), Catch::Contains("upstreams"));
  CHECK_THAT(error_of("[edgepier]\ntag-ttl=\"soon\"\n"), Catch::Contains("tag-ttl"));
  CHECK_THAT(error_of("[edgepier]\nseeds=\"a:1\"\n"), Catch::Contains("seeds"));
  CHECK_THAT(error_of("[edgepier]\nseeds=[\"10.0.0.1:7946\"]\n"), Catch::Contains("site-key-file"));
  CHECK_THAT(error_of("[edgepier]\nadmin-address=\"0.0.0.0:5050\"\n"), Catch::Contains("admin-token-file"));
  CHECK_THAT(error_of("[edgepier]\ndefault-upstream=\"nowhere\"\n"), Catch::Contains("default-upstream"));
  for (std::string pool : {"io-threads", "blocking-threads", "disk-threads", "chunk-threads"}) {
    CHECK_THAT(error_of("[edgepier]\n" + pool + "=0\n"), Catch::Contains(pool) && Catch::Contains("1 to 4096"));
    CHECK_THAT(error_of("[edgepier]\n" + pool + "=5000\n"), Catch::Contains(pool));
  }

  auto cli = load({"--edgepier.chunk-sise=5"});
  REQUIRE_FALSE(cli.ok());
  CHECK_THAT(cli.status().message, Catch::Contains("chunk-sise"));
  CHECK_FALSE(load({"--edgepier.chunk-size=abc"}).ok());
  CHECK_FALSE(load({"--edgepier.auto-pin=maybe"}).ok());
  CHECK(load({"--edgepier.auto-pin=true"})->auto_pin);
  CHECK(load({"--edgepier.disk-threads=2"})->disk_threads == 2);
  CHECK(load({"--edgepier.chunk-threads=16"})->chunk_threads == 16);
  CHECK_FALSE(load({"--config-file=/nonexistent/node.ini"}).ok());
}
