// Unit tests of epctl: the aligned table printer, human sizes and ages,
// admin URL parsing, the shell tokenizer and completion, and the argument
// parser (exit-status classes: run / help / usage error).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#include <sstream>

#include "epctl/admin_client.h"
#include "epctl/cli.h"
#include "epctl/shell.h"
#include "epctl/table.h"

using namespace epctl;

namespace {
ParseResult parse(std::vector<std::string> args) { return parse_args(args, GlobalOptions{}, false); }
}  // namespace

TEST_CASE("tables pad columns to the widest cell") {
  Table t({"NAME", "STATE", "SIZE"});
  t.align_right(2);
  t.add_row({"node-a", "alive", "1.0 KiB"});
  t.add_row({"b", "suspect", "12 B"});
  t.add_row({"short"});  // padded with empty cells
  std::ostringstream out;
  t.print(out);
  CHECK(out.str() ==
        "NAME    STATE       SIZE\n"
        "node-a  alive    1.0 KiB\n"
        "b       suspect     12 B\n"
        "short\n");
  CHECK(t.rows() == 3);
}

TEST_CASE("tables measure UTF-8 by code points and leave no trailing blanks") {
  Table t({"A", "B"});
  t.add_row({"n\xc3\xb6""de", "x"});
  t.add_row({"ab", ""});
  std::ostringstream out;
  t.print(out);
  CHECK(out.str() == "A     B\nn\xc3\xb6""de  x\nab\n");
  CHECK(display_width("n\xc3\xb6""de") == 4);
}

TEST_CASE("human sizes") {
  CHECK(human_size(0) == "0 B");
  CHECK(human_size(1023) == "1023 B");
  CHECK(human_size(1024) == "1.0 KiB");
  CHECK(human_size(1536) == "1.5 KiB");
  CHECK(human_size(12897485) == "12.3 MiB");
  CHECK(human_size(1048575) == "1.0 MiB");  // not "1024.0 KiB"
  CHECK(human_size(5ull << 30) == "5.0 GiB");
  CHECK(human_size(~0ull) == "16.0 EiB");
}

TEST_CASE("human ages") {
  CHECK(human_ago(0) == "now");
  CHECK(human_ago(999) == "now");
  CHECK(human_ago(3000) == "3s ago");
  CHECK(human_ago(59999) == "59s ago");
  CHECK(human_ago(60000) == "1m ago");
  CHECK(human_ago(2 * 3600 * 1000) == "2h ago");
  CHECK(human_ago(3LL * 86400 * 1000) == "3d ago");
  CHECK(human_ago(-5000) == "in 5s");
  CHECK(human_since(0, 123456) == "-");
  CHECK(human_since(100000, 103000) == "3s ago");
}

TEST_CASE("digests, percentages, lists") {
  CHECK(short_digest("sha256:0123456789abcdef0123") == "sha256:0123456789ab");
  CHECK(short_digest("sha256:abc") == "sha256:abc");
  CHECK(percent(1, 2) == "50.0%");
  CHECK(percent(9999, 10000) == "99.9%");
  CHECK(percent(0, 0) == "100.0%");
  CHECK(join_or_dash({}) == "-");
  CHECK(join_or_dash({"a", "b"}) == "a, b");
}

TEST_CASE("admin URLs") {
  std::string error;
  auto url = parse_admin_url("http://127.0.0.1:5050", &error);
  REQUIRE(url);
  CHECK(url->host == "127.0.0.1");
  CHECK(url->port == "5050");
  CHECK(url->base_path.empty());
  url = parse_admin_url("node-b:6000", &error);
  REQUIRE(url);
  CHECK(url->host == "node-b");
  CHECK(url->port == "6000");
  url = parse_admin_url("http://[::1]:5051/ep/", &error);
  REQUIRE(url);
  CHECK(url->host == "::1");
  CHECK(url->host_header() == "[::1]:5051");
  CHECK(url->base_path == "/ep");
  CHECK(parse_admin_url("http://example.org", &error)->port == "80");
  CHECK(parse_admin_url("example.org", &error)->port == "5050");
  for (const char* bad : {"https://x:1", "ftp://x", "http://", "x:0", "x:99999", "x:port", "::1:5050",
                          "http://u:p@x", "http://x/?a=b", ""}) {
    INFO(bad);
    CHECK_FALSE(parse_admin_url(bad, &error));
    CHECK_FALSE(error.empty());
  }
  CHECK(url_encode("docker.io/library/nginx:1.25") == "docker.io%2Flibrary%2Fnginx%3A1.25");
  CHECK(one_line("a\n  b\tc\n") == "a b c");
}

TEST_CASE("argument parsing: commands and options") {
  auto r = parse({"members"});
  REQUIRE(r.kind == ParseResult::run);
  CHECK(r.invocation.command == Command::members);
  CHECK(r.invocation.global.admin == "http://127.0.0.1:5050");
  CHECK_FALSE(r.invocation.global.json);

  r = parse({"--admin", "http://10.0.0.2:5050", "--token", "s3cret", "--json", "tags", "team/app"});
  REQUIRE(r.kind == ParseResult::run);
  CHECK(r.invocation.command == Command::tags);
  CHECK(r.invocation.arg == "team/app");
  CHECK(r.invocation.global.admin == "http://10.0.0.2:5050");
  CHECK(r.invocation.global.token == "s3cret");
  CHECK(r.invocation.global.json);

  r = parse({"pins", "--json"});  // global options after the command
  REQUIRE(r.kind == ParseResult::run);
  CHECK(r.invocation.global.json);

  r = parse({"pin", "add", "docker.io/library/nginx:1.25", "--replicas", "2"});
  REQUIRE(r.kind == ParseResult::run);
  CHECK(r.invocation.command == Command::pin_add);
  CHECK(r.invocation.arg == "docker.io/library/nginx:1.25");
  CHECK(r.invocation.replicas == "2");
  r = parse({"pin", "add", "x:1", "--replicas", "all"});
  CHECK(r.invocation.replicas == "all");
  r = parse({"pin", "add", "x:1"});
  CHECK(r.invocation.replicas.empty());
  r = parse({"pin", "rm", "x:1"});
  CHECK(r.invocation.command == Command::pin_rm);
  CHECK(parse({"keygen", "/tmp/k"}).invocation.command == Command::keygen);
  CHECK(parse({"blobs"}).invocation.command == Command::blobs);
  CHECK(parse({"stats"}).invocation.command == Command::stats);
  CHECK(parse({"leave"}).invocation.command == Command::leave);
  CHECK(parse({"shell"}).invocation.command == Command::shell);
}

TEST_CASE("argument parsing: usage errors and help") {
  for (std::vector<std::string> bad : std::vector<std::vector<std::string>>{
           {}, {"frobnicate"}, {"pin"}, {"pin", "add"}, {"pin", "add", "x", "--replicas", "0"},
           {"pin", "add", "x", "--replicas", "some"}, {"pin", "rm"}, {"keygen"}, {"members", "extra"},
           {"--admin", "https://x", "members"}, {"--bogus", "members"}, {"members", "pins"}}) {
    auto r = parse(bad);
    INFO(r.text);
    CHECK(r.kind == ParseResult::usage_error);
    CHECK(r.text.find('\n') == std::string::npos);
    CHECK_FALSE(r.text.empty());
  }
  CHECK(parse({"frobnicate"}).text == "unknown command 'frobnicate' (try --help)");
  CHECK(parse({"--json", "pin", "frob", "x"}).text == "unknown pin command 'frob' (use 'pin add' or 'pin rm')");
  CHECK(parse({"members", "--admin"}).text == "--admin needs a value");
  CHECK(parse({"--admin", "https://x", "members"}).text.find("https is not supported") != std::string::npos);
  auto help = parse({"--help"});
  CHECK(help.kind == ParseResult::help);
  CHECK(help.text.find("members") != std::string::npos);
  help = parse({"pin", "add", "--help"});
  CHECK(help.kind == ParseResult::help);
  CHECK(help.text.find("--replicas") != std::string::npos);
  // The shell refuses a nested shell and keeps its own defaults.
  GlobalOptions defaults;
  defaults.admin = "node-b:5050";
  defaults.json = true;
  CHECK(parse_args({"shell"}, defaults, true).kind == ParseResult::usage_error);
  auto r = parse_args({"members"}, defaults, true);
  CHECK(r.invocation.global.admin == "node-b:5050");
  CHECK(r.invocation.global.json);
}

TEST_CASE("replicas values") {
  CHECK(check_replicas("all").empty());
  CHECK(check_replicas("3").empty());
  CHECK_FALSE(check_replicas("0").empty());
  CHECK_FALSE(check_replicas("-1").empty());
  CHECK_FALSE(check_replicas("99999999").empty());
}

TEST_CASE("shell tokenizer") {
  std::vector<std::string> w;
  std::string error;
  REQUIRE(tokenize("  pin add 'a b' \"c \\\"d\\\"\" e\\ f  ", &w, &error));
  CHECK(w == std::vector<std::string>{"pin", "add", "a b", "c \"d\"", "e f"});
  REQUIRE(tokenize("tags ''", &w, &error));
  CHECK(w == std::vector<std::string>{"tags", ""});
  CHECK_FALSE(tokenize("pin add 'x", &w, &error));
  CHECK_FALSE(tokenize("pin add \"x", &w, &error));
  CHECK_FALSE(tokenize("x\\", &w, &error));
}

TEST_CASE("shell completion") {
  bool files = false;
  CHECK(completions("", "p", &files) == std::vector<std::string>{"pin", "pins"});
  CHECK(completions("", "", &files).size() == 13);  // 10 commands (gc, fsck included) + exit, help, quit
  CHECK(completions("", "g", &files) == std::vector<std::string>{"gc"});
  CHECK(completions("gc ", "--r", &files) == std::vector<std::string>{"--run"});
  CHECK(completions("pin ", "", &files) == std::vector<std::string>{"add", "rm"});
  CHECK(completions("--json pin ", "r", &files) == std::vector<std::string>{"rm"});
  CHECK(completions("pin add x ", "--r", &files) == std::vector<std::string>{"--replicas"});
  CHECK(completions("pin add x --replicas ", "", &files) == std::vector<std::string>{"all"});
  CHECK(completions("members ", "--j", &files) == std::vector<std::string>{"--json"});
  CHECK(completions("--admin ", "", &files).empty());
  CHECK(completions("help ", "st", &files) == std::vector<std::string>{"stats"});
  CHECK(completions("members ", "", &files).empty());
  CHECK_FALSE(files);
  CHECK(completions("keygen ", "/tm", &files).empty());
  CHECK(files);
}
