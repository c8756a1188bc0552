// epctl's command line: the options and commands of INTERFACE.md parsed with
// CLI11 into an Invocation. The same parser serves argv and each line of
// `epctl shell` (split by tokenize()), so both accept exactly the same syntax.
#pragma once

#include <string>
#include <vector>

namespace epctl {

struct GlobalOptions {
  std::string admin = "http://127.0.0.1:5050";
  std::string token;
  bool json = false;
};

enum class Command { members, tags, pins, pin_add, pin_rm, blobs, stats, keygen, leave, gc, fsck, shell };

struct Invocation {
  GlobalOptions global;
  Command command = Command::members;
  std::string arg;       // tags: REPO (may be empty); pin add/rm: REF; keygen: FILE
  std::string replicas;  // pin add: "all", a positive number, or "" for the node's default
  bool force = false;    // keygen: replace an existing key file
  bool run = false;      // gc: remove what is due (else a dry run)
  bool repair = false;   // fsck: quarantine corrupt blobs (else only report)
};

struct ParseResult {
  enum Kind { run, help, usage_error };
  Kind kind = usage_error;
  Invocation invocation;  // when kind == run
  std::string text;       // help text (help) or a one-line message (usage_error)
};

// Parses arguments without the program name. Options missing from args keep
// the values in defaults (the shell passes the options it was started with).
// With in_shell the `shell` command is refused and EPCTL_ADMIN/EPCTL_TOKEN
// are not consulted (the shell already applied them).
ParseResult parse_args(const std::vector<std::string>& args, const GlobalOptions& defaults,
                       bool in_shell);

// Splits a shell line into words: blanks separate words, '...' is literal,
// "..." allows \" and \\, a backslash elsewhere escapes the next character.
// Returns false with *error set for an unclosed quote or a trailing backslash.
bool tokenize(const std::string& line, std::vector<std::string>* words, std::string* error);

// "all" or a whole number from 1 to 1000000; returns an error message or "".
std::string check_replicas(const std::string& value);

struct CommandHelp {
  std::string usage;        // e.g. "pin add REF [--replicas N|all]"
  std::string description;
};
// Every command with its usage, in the order of INTERFACE.md (shell included).
const std::vector<CommandHelp>& command_help();
// The first words of the commands (members, tags, ..., shell).
std::vector<std::string> command_names();

}  // namespace epctl
