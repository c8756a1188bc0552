// `epctl shell` (see shell.h): a libedit prompt whose lines go through the
// same parser and commands as the command line.
#include "epctl/shell.h"

#include <editline/readline.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "epctl/commands.h"
#include "epctl/table.h"

namespace epctl {

std::vector<std::string> completions(const std::string& before, const std::string& word, bool* files) {
  *files = false;
  std::vector<std::string> words, positional;
  std::string error;
  if (!tokenize(before, &words, &error)) return {};
  bool option_value = false;  // the word is the value of --admin/--token/--replicas
  std::string value_of;
  for (const auto& w : words) {
    if (option_value) {
      option_value = false;
      continue;
    }
    if (w == "--admin" || w == "--token" || w == "--replicas") {
      option_value = true;
      value_of = w;
    } else if (w.rfind("-", 0) != 0) {
      positional.push_back(w);
    }
  }
  std::vector<std::string> candidates;
  if (option_value) {
    if (value_of == "--replicas") candidates = {"all"};
  } else if (word.rfind("-", 0) == 0) {
    candidates = {"--admin", "--help", "--json", "--token"};
    if (positional.size() >= 2 && positional[0] == "pin" && positional[1] == "add")
      candidates.push_back("--replicas");
    if (!positional.empty() && positional[0] == "gc") candidates.push_back("--run");
    if (!positional.empty() && positional[0] == "fsck") candidates.push_back("--repair");
  } else if (positional.empty() || (positional.size() == 1 && positional[0] == "help")) {
    for (const auto& name : command_names())
      if (name != "shell") candidates.push_back(name);
    if (positional.empty()) candidates.insert(candidates.end(), {"exit", "help", "quit"});
  } else if (positional.size() == 1 && positional[0] == "pin") {
    candidates = {"add", "rm"};
  } else if (positional.size() == 1 && positional[0] == "keygen") {
    *files = true;
  }
  std::vector<std::string> matches;
  for (const auto& c : candidates)
    if (c.compare(0, word.size(), word) == 0) matches.push_back(c);
  std::sort(matches.begin(), matches.end());
  return matches;
}

namespace {

std::vector<std::string> g_matches;  // for the libedit generator below
volatile sig_atomic_t g_interrupted = 0;

char* next_match(const char*, int state) {
  static size_t index = 0;
  if (state == 0) index = 0;
  return index < g_matches.size() ? strdup(g_matches[index++].c_str()) : nullptr;
}

char** complete(const char* text, int start, int) {
  bool files = false;
  g_matches = completions(std::string(rl_line_buffer, static_cast<size_t>(start)), text, &files);
  rl_attempted_completion_over = files ? 0 : 1;  // 0: libedit completes file names
  if (files || g_matches.empty()) return nullptr;
  return rl_completion_matches(text, next_match);
}

void on_sigint(int) { g_interrupted = 1; }

std::string history_file() {
  const char* home = std::getenv("HOME");
  if (!home || !*home) {
    const passwd* pw = getpwuid(getuid());
    home = pw ? pw->pw_dir : nullptr;
  }
  return home && *home ? std::string(home) + "/.epctl_history" : std::string();
}

// Lines may hold a --token, so the history file is private to the user.
void save_history(const std::string& path) {
  if (path.empty()) return;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
  write_history(path.c_str());
  ::chmod(path.c_str(), 0600);
}

void print_help(std::ostream& out) {
  Table table({"COMMAND", "DESCRIPTION"});
  for (const auto& c : command_help())
    if (c.usage != "shell") table.add_row({c.usage, c.description});
  table.add_row({"help [COMMAND]", "this list, or the details of one command"});
  table.add_row({"exit", "leave the shell (also quit, Ctrl-D)"});
  table.print(out);
  out << "Any line may also carry --json, --admin URL and --token T.\n";
}

// One line from the terminal through libedit; false at end of input.
// Ctrl-C abandons the line being typed rather than the shell.
bool read_line(std::string* line, bool* interrupted) {
  struct sigaction action {}, previous {};
  action.sa_handler = on_sigint;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &previous);
  g_interrupted = 0;
  char* raw = readline("epctl> ");
  sigaction(SIGINT, &previous, nullptr);
  *interrupted = g_interrupted != 0;
  if (!raw) return false;
  *line = raw;
  std::free(raw);
  return true;
}

}  // namespace

int run_shell(const GlobalOptions& options) {
  bool tty = ::isatty(STDIN_FILENO);
  std::string history = tty ? history_file() : std::string();
  std::string previous;  // the newest history line, not to be repeated
  if (tty) {
    rl_readline_name = "epctl";
    rl_attempted_completion_function = complete;
    stifle_history(1000);
    if (!history.empty()) read_history(history.c_str());
    if (HIST_ENTRY* last = history_length > 0 ? history_get(history_base + history_length - 1) : nullptr)
      previous = last->line;
    std::cout << "epctl shell on " << options.admin << "; 'help' lists the commands, 'exit' leaves.\n";
  }
  int last = 0, failed = 0;
  for (;;) {
    std::string line;
    if (tty) {
      bool interrupted = false;
      if (!read_line(&line, &interrupted)) {
        if (interrupted) {  // Ctrl-C: a fresh prompt
          std::cout << std::endl;
          continue;
        }
        std::cout << std::endl;  // Ctrl-D
        break;
      }
    } else if (!std::getline(std::cin, line)) {
      break;
    }
    auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    line = line.substr(first, line.find_last_not_of(" \t\r") + 1 - first);
    if (tty && line != previous) {
      add_history(line.c_str());
      save_history(history);
      previous = line;
    }
    std::vector<std::string> words;
    std::string error;
    if (!tokenize(line, &words, &error)) {
      std::cerr << "epctl: " << error << std::endl;
      last = 2;
      continue;
    }
    if (words[0] == "exit" || words[0] == "quit") break;
    if (words[0] == "help" || words[0] == "?") {
      if (words.size() == 1) {
        print_help(std::cout);
        last = 0;
        continue;
      }
      words.erase(words.begin());
      words.push_back("--help");
    }
    if (words[0] == "shell") {
      std::cerr << "epctl: already in the shell" << std::endl;
      last = 2;
      continue;
    }
    last = execute(words, options, true, std::cout, std::cerr);
    if (last != 0 && failed == 0) failed = last;
    std::cout.flush();
  }
  // A script piped in fails if any of its commands failed; at a prompt the
  // session's status is that of the last command.
  return tty ? last : failed;
}

}  // namespace epctl
