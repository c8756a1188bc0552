// Parsing epctl's command line with CLI11 (see cli.h).
#include "epctl/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <sstream>

#include "epctl/admin_client.h"

namespace epctl {

const std::vector<CommandHelp>& command_help() {
  static const std::vector<CommandHelp> help = {
      {"members", "every known node: addresses, state, last seen"},
      {"tags [REPO]", "the replicated tag map, concurrent writes marked"},
      {"pins", "the pin set: replication factor and the nodes holding each image"},
      {"pin add REF [--replicas N|all]", "pin an image in the site"},
      {"pin rm REF", "remove a pin"},
      {"blobs", "the blobs this node stores, complete or partial"},
      {"stats", "bytes served to clients, from peers, from upstream; per peer"},
      {"keygen FILE", "write a new site key (mode 0600; --force replaces an existing file)"},
      {"leave", "make the node leave the site gracefully"},
      {"gc [--run]", "what garbage collection would remove and why (dry run), or remove it now"},
      {"fsck [--repair]", "re-hash every blob, check manifests and tags; --repair quarantines corrupt blobs"},
      {"shell", "an interactive prompt over these commands"},
  };
  return help;
}

std::vector<std::string> command_names() {
  std::vector<std::string> names;
  for (const auto& c : command_help()) {
    std::string first = c.usage.substr(0, c.usage.find(' '));
    if (std::find(names.begin(), names.end(), first) == names.end()) names.push_back(first);
  }
  return names;
}

std::string check_replicas(const std::string& value) {
  if (value == "all") return "";
  if (value.empty() || value.size() > 7 || value.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(value) == 0 || std::stoul(value) > 1000000)
    return "must be 'all' or a number from 1 to 1000000, not '" + value + "'";
  return "";
}

namespace {

// The words of args that are neither options nor option values.
std::vector<std::string> words_of(const std::vector<std::string>& args) {
  std::vector<std::string> words;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--admin" || args[i] == "--token" || args[i] == "--replicas") ++i;
    else if (args[i].rfind("-", 0) != 0) words.push_back(args[i]);
  }
  return words;
}

// CLI11's messages, made to read as one line in epctl's own terms.
std::string usage_message(const CLI::ParseError& e, const std::vector<std::string>& args) {
  std::string message = one_line(e.what());
  auto words = words_of(args);
  if (dynamic_cast<const CLI::RequiredError*>(&e) && message.find("subcommand") != std::string::npos) {
    if (words.empty()) return "no command given (try --help)";
    if (words[0] == "pin") {
      if (words.size() == 1) return "pin needs 'add REF' or 'rm REF'";
      return "unknown pin command '" + words[1] + "' (use 'pin add' or 'pin rm')";
    }
    return "unknown command '" + words[0] + "' (try --help)";
  }
  if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
    auto colon = message.find(": ");
    return "unexpected argument " + (colon == std::string::npos ? message : message.substr(colon + 2)) +
           " (try --help)";
  }
  // "--admin: 1 required TEXT missing" -> "--admin needs a value"
  auto missing = message.find(": 1 required ");
  if (missing != std::string::npos && message.size() > 8 &&
      message.compare(message.size() - 8, 8, " missing") == 0)
    return message.substr(0, missing) + " needs a value";
  return message + " (try --help)";
}

}  // namespace

ParseResult parse_args(const std::vector<std::string>& args, const GlobalOptions& defaults,
                       bool in_shell) {
  ParseResult result;
  Invocation& inv = result.invocation;
  inv.global = defaults;

  CLI::App app{"epctl: administer an EdgePier node", "epctl"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the command
  auto* admin = app.add_option("--admin", inv.global.admin, "admin API URL")->capture_default_str();
  auto* token = app.add_option("--token", inv.global.token, "admin API token (sent as a Bearer token)");
  if (!in_shell) {
    admin->envname("EPCTL_ADMIN");
    token->envname("EPCTL_TOKEN");
  }
  admin->check([](const std::string& value) {
    std::string error;
    return parse_admin_url(value, &error) ? std::string() : "bad URL '" + value + "': " + error;
  });
  app.add_flag("--json", inv.global.json, "print the node's JSON document instead of a table");

  auto* members = app.add_subcommand("members", command_help()[0].description);
  auto* tags = app.add_subcommand("tags", command_help()[1].description);
  tags->add_option("REPO", inv.arg, "only this repository");
  auto* pins = app.add_subcommand("pins", command_help()[2].description);
  auto* pin = app.add_subcommand("pin", "add or remove a pin");
  pin->require_subcommand(1);
  auto* pin_add = pin->add_subcommand("add", command_help()[3].description);
  pin_add->add_option("REF", inv.arg, "image reference, e.g. docker.io/library/nginx:1.25")->required();
  pin_add->add_option("--replicas", inv.replicas, "copies in the site: N or all (default: the node's replication setting)")
      ->type_name("N|all")
      ->check(check_replicas);
  auto* pin_rm = pin->add_subcommand("rm", command_help()[4].description);
  pin_rm->add_option("REF", inv.arg, "image reference as pinned")->required();
  auto* blobs = app.add_subcommand("blobs", command_help()[5].description);
  auto* stats = app.add_subcommand("stats", command_help()[6].description);
  auto* keygen = app.add_subcommand("keygen", command_help()[7].description);
  keygen->add_option("FILE", inv.arg, "where to write the key")->required();
  keygen->add_flag("--force", inv.force, "replace an existing key file (every node then needs the new key)");
  auto* leave = app.add_subcommand("leave", command_help()[8].description);
  auto* gc = app.add_subcommand("gc", command_help()[9].description);
  gc->add_flag("--run", inv.run, "remove what is due now (without it: only show it)");
  auto* fsck = app.add_subcommand("fsck", command_help()[10].description);
  fsck->add_flag("--repair", inv.repair, "quarantine corrupt blobs; they are fetched again from peers or upstream");
  CLI::App* shell = nullptr;
  if (!in_shell) shell = app.add_subcommand("shell", command_help()[11].description);

  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them reversed
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    std::ostringstream out, err;
    app.exit(e, out, err);
    result.kind = ParseResult::help;
    result.text = out.str();
    return result;
  } catch (const CLI::CallForAllHelp& e) {
    std::ostringstream out, err;
    app.exit(e, out, err);
    result.kind = ParseResult::help;
    result.text = out.str();
    return result;
  } catch (const CLI::ParseError& e) {
    result.text = usage_message(e, args);
    return result;
  }

  if (*members) inv.command = Command::members;
  else if (*tags) inv.command = Command::tags;
  else if (*pins) inv.command = Command::pins;
  else if (*pin_add) inv.command = Command::pin_add;
  else if (*pin_rm) inv.command = Command::pin_rm;
  else if (*blobs) inv.command = Command::blobs;
  else if (*stats) inv.command = Command::stats;
  else if (*keygen) inv.command = Command::keygen;
  else if (*leave) inv.command = Command::leave;
  else if (*gc) inv.command = Command::gc;
  else if (*fsck) inv.command = Command::fsck;
  else if (shell && *shell) inv.command = Command::shell;
  else {
    result.text = "no command given (try --help)";
    return result;
  }
  result.kind = ParseResult::run;
  return result;
}

bool tokenize(const std::string& line, std::vector<std::string>* words, std::string* error) {
  words->clear();
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) words->push_back(word);
      word.clear();
      in_word = false;
    } else if (c == '\'') {
      auto close = line.find('\'', i + 1);
      if (close == std::string::npos) return *error = "unclosed single quote", false;
      word += line.substr(i + 1, close - i - 1);
      i = close;
      in_word = true;
    } else if (c == '"') {
      size_t j = i + 1;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size() && (line[j + 1] == '"' || line[j + 1] == '\\')) ++j;
        word += line[j];
      }
      if (j >= line.size()) return *error = "unclosed double quote", false;
      i = j;
      in_word = true;
    } else if (c == '\\') {
      if (i + 1 >= line.size()) return *error = "trailing backslash", false;
      word += line[++i];
      in_word = true;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) words->push_back(word);
  return true;
}

}  // namespace epctl
