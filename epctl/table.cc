// Aligned tables and human-readable sizes, ages and digests (see table.h).
#include "epctl/table.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace epctl {

Table::Table(std::vector<std::string> header)
    : header_(std::move(header)), right_(header_.size(), false) {}

void Table::add_row(std::vector<std::string> row) {
  row.resize(header_.size());
  rows_.push_back(std::move(row));
}

void Table::align_right(size_t column) {
  if (column < right_.size()) right_[column] = true;
}

void Table::print(std::ostream& out) const {
  std::vector<size_t> width(header_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], display_width(row[i]));
  };
  measure(header_);
  for (const auto& row : rows_) measure(row);

  auto line = [&](const std::vector<std::string>& row) {
    std::string text;
    for (size_t i = 0; i < row.size(); ++i) {
      size_t pad = width[i] - display_width(row[i]);
      bool last = i + 1 == row.size();
      if (i > 0) text += "  ";
      if (right_[i]) {
        text.append(pad, ' ');
        text += row[i];
      } else {
        text += row[i];
        if (!last) text.append(pad, ' ');
      }
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out << text << '\n';
  };
  line(header_);
  for (const auto& row : rows_) line(row);
}

size_t display_width(const std::string& text) {
  size_t n = 0;
  for (unsigned char c : text)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

std::string human_size(uint64_t bytes) {
  static const char* const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  // Move up a unit before rounding would print "1024.0".
  while (value >= 1023.95 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.1f %s", value, units[unit]);
  return text;
}

std::string human_duration(int64_t ms) {
  int64_t s = ms / 1000;
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 48 * 3600) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

std::string human_ago(int64_t ms) {
  if (ms <= -1000) return "in " + human_duration(-ms);
  if (ms < 1000) return "now";
  return human_duration(ms) + " ago";
}

std::string human_since(int64_t unix_ms, int64_t now_ms) {
  if (unix_ms <= 0) return "-";
  return human_ago(now_ms - unix_ms);
}

std::string short_digest(const std::string& digest) {
  auto colon = digest.find(':');
  size_t keep = (colon == std::string::npos ? 0 : colon + 1) + 12;
  return digest.size() <= keep ? digest : digest.substr(0, keep);
}

std::string percent(uint64_t part, uint64_t whole) {
  double value = whole == 0 ? 100.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
  // Never round a partial blob up to 100%.
  if (part < whole && value > 99.9) value = 99.9;
  char text[16];
  std::snprintf(text, sizeof text, "%.1f%%", value);
  return text;
}

std::string join_or_dash(const std::vector<std::string>& items) {
  if (items.empty()) return "-";
  std::string text;
  for (const auto& item : items) {
    if (!text.empty()) text += ", ";
    text += item;
  }
  return text;
}

int64_t now_unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace epctl
