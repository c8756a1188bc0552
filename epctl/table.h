// Table printing and human-readable formatting for epctl's output: aligned
// tables (a header row, columns padded to the widest cell), sizes such as
// "12.3 MiB", ages such as "3s ago" and shortened digests.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace epctl {

class Table {
 public:
  explicit Table(std::vector<std::string> header);
  // Rows shorter than the header are padded with empty cells; longer rows
  // are cut to the header's width.
  void add_row(std::vector<std::string> row);
  // Right-aligns a column (sizes, counts). Columns are left-aligned by default.
  void align_right(size_t column);
  size_t rows() const { return rows_.size(); }
  // Columns are separated by two spaces; lines carry no trailing blanks.
  void print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<bool> right_;
};

// Display width of UTF-8 text: one column per code point.
size_t display_width(const std::string& text);
// 0 B, 512 B, 1.0 KiB, 12.3 MiB, 4.0 GiB ...
std::string human_size(uint64_t bytes);
// A duration as one unit: 45s, 12m, 5h, 3d.
std::string human_duration(int64_t ms);
// "now" under a second, else "3s ago"; negative ages (clock skew) "in 3s".
std::string human_ago(int64_t ms);
// Age of a unix-epoch millisecond timestamp relative to now_ms; "-" for 0.
std::string human_since(int64_t unix_ms, int64_t now_ms);
// "sha256:0123456789ab": the algorithm and the first 12 hex digits.
std::string short_digest(const std::string& digest);
// Percentage with one decimal, e.g. "45.2%"; whole == 0 gives "100.0%".
std::string percent(uint64_t part, uint64_t whole);
// Joins items with ", "; "-" for none.
std::string join_or_dash(const std::vector<std::string>& items);
// Milliseconds since the unix epoch.
int64_t now_unix_ms();

}  // namespace epctl
