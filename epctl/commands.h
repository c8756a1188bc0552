// epctl's commands: one function per command of INTERFACE.md. Each writes
// its table (or, with --json, the node's JSON document) to `out`, its one-line
// error to `err` as "epctl: <message>", and returns the exit status: 0 on
// success, 1 on a failed command. The shell reuses them line by line.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "epctl/cli.h"

namespace epctl {

class AdminClient;

// Runs any command except `shell` (see shell.h).
int run_command(const Invocation& invocation, std::ostream& out, std::ostream& err);

int cmd_members(AdminClient& client, const Invocation& inv, std::ostream& out);
int cmd_tags(AdminClient& client, const Invocation& inv, std::ostream& out);
int cmd_pins(AdminClient& client, const Invocation& inv, std::ostream& out);
int cmd_pin_add(AdminClient& client, const Invocation& inv, std::ostream& out);
int cmd_pin_rm(AdminClient& client, const Invocation& inv, std::ostream& out);
int cmd_blobs(AdminClient& client, const Invocation& inv, std::ostream& out);
int cmd_stats(AdminClient& client, const Invocation& inv, std::ostream& out);
int cmd_leave(AdminClient& client, const Invocation& inv, std::ostream& out);
// Writes 32 random bytes from libsodium as hex to FILE with mode 0600.
int cmd_keygen(const Invocation& inv, std::ostream& out, std::ostream& err);

// Parses args and runs them: help goes to out (status 0), usage errors to
// err (status 2); `shell` starts the shell unless in_shell. main() and each
// shell line come through here.
int execute(const std::vector<std::string>& args, const GlobalOptions& defaults, bool in_shell,
            std::ostream& out, std::ostream& err);

}  // namespace epctl
