// AccessRules (see rules.h): parsing the access file and matching rules.
#include "access/rules.h"

#include <sstream>

namespace ep::access {

namespace {

Status bad_line(const std::string& origin, size_t line, const std::string& why) {
  return Status{Errc::config_invalid, origin + " line " + std::to_string(line) + ": " + why};
}

std::vector<std::string> words(std::string_view line) {
  std::istringstream in{std::string(line)};
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// "pull,push" -> bits; false on an unknown word.
bool parse_rights(const std::string& text, uint8_t& rights) {
  rights = 0;
  std::istringstream in(text);
  for (std::string word; std::getline(in, word, ',');) {
    if (word == "pull") rights |= kPull;
    else if (word == "push") rights |= kPush;
    else if (word == "delete") rights |= kDelete;
    else if (word == "all") rights |= kAll;
    else if (word != "none") return false;
  }
  return true;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 256) return false;
  for (unsigned char c : name)
    if (c <= ' ' || c == ':' || c == '#' || c == ',' || c >= 0x7f) return false;
  return true;
}

}  // namespace

std::string rights_text(uint8_t rights) {
  std::string out;
  auto add = [&](uint8_t bit, const char* word) {
    if (!(rights & bit)) return;
    if (!out.empty()) out += ",";
    out += word;
  };
  add(kPull, "pull");
  add(kPush, "push");
  add(kDelete, "delete");
  return out;
}

bool glob_matches(std::string_view pattern, std::string_view text) {
  // Iterative wildcard match with one backtrack point: linear in practice,
  // never exponential (patterns come from an operator, names from clients).
  size_t p = 0, t = 0, star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p, ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

AccessRules AccessRules::defaults() {
  AccessRules rules;
  rules.rules_.push_back(Rule{"anonymous", kPull, {"*"}});
  rules.rules_.push_back(Rule{"authenticated", kAll, {"*"}});
  return rules;
}

Result<AccessRules> AccessRules::parse(std::string_view text, const std::string& origin) {
  AccessRules rules;
  bool anonymous_named = false;
  std::istringstream in{std::string(text)};
  size_t line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    auto w = words(line);
    if (w.empty()) continue;
    if (w[0] == "group") {
      if (w.size() < 2 || w[1].size() < 2 || w[1].back() != ':' || !valid_name(w[1].substr(0, w[1].size() - 1)))
        return bad_line(origin, line_number, "expected `group NAME: member ...`");
      auto& members = rules.groups_[w[1].substr(0, w[1].size() - 1)];
      for (size_t i = 2; i < w.size(); ++i) members.insert(w[i]);
      continue;
    }
    Rule rule;
    rule.subject = w[0];
    if (!valid_name(rule.subject.front() == '@' ? rule.subject.substr(1) : rule.subject))
      return bad_line(origin, line_number, "bad subject '" + rule.subject + "'");
    if (w.size() < 2 || !parse_rights(w[1], rule.rights))
      return bad_line(origin, line_number, "expected rights (pull, push, delete, all or none) after '" + w[0] + "'");
    if (w.size() < 3 && rule.rights != 0)
      return bad_line(origin, line_number, "expected one or more repository patterns after the rights");
    rule.patterns.assign(w.begin() + 2, w.end());
    anonymous_named |= rule.subject == "anonymous";
    rules.rules_.push_back(std::move(rule));
  }
  for (const auto& rule : rules.rules_)
    if (rule.subject.front() == '@' && !rules.groups_.count(rule.subject.substr(1)))
      return Status{Errc::config_invalid, origin + ": rule for unknown group '" + rule.subject + "'"};
  if (!anonymous_named) rules.rules_.push_back(Rule{"anonymous", kPull, {"*"}});
  return rules;
}

bool AccessRules::applies(const Rule& rule, const std::string& user) const {
  if (rule.subject == "anonymous") return true;  // what anybody may do, a user may too
  if (user.empty()) return false;
  if (rule.subject == "authenticated" || rule.subject == user) return true;
  if (rule.subject.front() != '@') return false;
  auto group = groups_.find(rule.subject.substr(1));
  return group != groups_.end() && group->second.count(user) != 0;
}

uint8_t AccessRules::rights(const std::string& user, std::string_view repository) const {
  uint8_t granted = 0;
  for (const auto& rule : rules_) {
    if ((granted | rule.rights) == granted || !applies(rule, user)) continue;
    for (const auto& pattern : rule.patterns)
      if (glob_matches(pattern, repository)) {
        granted |= rule.rights;
        break;
      }
  }
  return granted;
}

bool AccessRules::may_somewhere(const std::string& user, uint8_t right) const {
  for (const auto& rule : rules_)
    if ((rule.rights & right) && applies(rule, user)) return true;
  return false;
}

}  // namespace ep::access
