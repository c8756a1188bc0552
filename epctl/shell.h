// `epctl shell`: an interactive prompt (libedit) over the same commands as
// the command line, with history in ~/.epctl_history and tab completion of
// command names and options. Reads plain lines when stdin is not a terminal.
#pragma once

#include <string>
#include <vector>

#include "epctl/cli.h"

namespace epctl {

// Runs until `exit`, `quit` or end of input; returns the last command's status.
int run_shell(const GlobalOptions& options);

// Completion candidates for the word being typed (`word`), given the text of
// the line before it. Empty when nothing fits; *files is set when file names
// should be completed instead (keygen FILE).
std::vector<std::string> completions(const std::string& before, const std::string& word, bool* files);

}  // namespace epctl
