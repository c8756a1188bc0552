#include "http/metrics.h"

#include <sstream>

namespace ep::http {

void Metrics::record(RouteKind route, unsigned status, double seconds) {
  auto r = static_cast<size_t>(route);
  if (status < 600) requests_[r][status].fetch_add(1, std::memory_order_relaxed);
  size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  latency_[r][b].fetch_add(1, std::memory_order_relaxed);
  latency_sum_us_[r].fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

std::string Metrics::render(uint64_t storage_used_bytes) const {
  std::ostringstream out;
  out << "# HELP edgepier_http_requests_total HTTP requests by route and status.\n"
      << "# TYPE edgepier_http_requests_total counter\n";
  for (size_t r = 0; r < kRoutes; ++r)
    for (unsigned s = 100; s < 600; ++s)
      if (auto v = requests_[r][s].load(std::memory_order_relaxed))
        out << "edgepier_http_requests_total{route=\"" << route_label(static_cast<RouteKind>(r)) << "\",status=\""
            << s << "\"} " << v << "\n";
  out << "# HELP edgepier_http_request_duration_seconds HTTP request latency by route.\n"
      << "# TYPE edgepier_http_request_duration_seconds histogram\n";
  for (size_t r = 0; r < kRoutes; ++r) {
    uint64_t cumulative = 0;
    const char* label = route_label(static_cast<RouteKind>(r));
    for (size_t b = 0; b <= kBuckets.size(); ++b) {
      cumulative += latency_[r][b].load(std::memory_order_relaxed);
      out << "edgepier_http_request_duration_seconds_bucket{route=\"" << label << "\",le=\"";
      if (b < kBuckets.size())
        out << kBuckets[b];
      else
        out << "+Inf";
      out << "\"} " << cumulative << "\n";
    }
    out << "edgepier_http_request_duration_seconds_sum{route=\"" << label << "\"} "
        << latency_sum_us_[r].load(std::memory_order_relaxed) / 1e6 << "\n"
        << "edgepier_http_request_duration_seconds_count{route=\"" << label << "\"} " << cumulative << "\n";
  }
  out << "# HELP edgepier_http_bytes_received_total Bytes received from HTTP clients.\n"
      << "# TYPE edgepier_http_bytes_received_total counter\n"
      << "edgepier_http_bytes_received_total " << bytes_in_.load() << "\n"
      << "# HELP edgepier_http_bytes_sent_total Bytes sent to HTTP clients.\n"
      << "# TYPE edgepier_http_bytes_sent_total counter\n"
      << "edgepier_http_bytes_sent_total " << bytes_out_.load() << "\n"
      << "# HELP edgepier_http_open_connections Open HTTP connections.\n"
      << "# TYPE edgepier_http_open_connections gauge\n"
      << "edgepier_http_open_connections " << connections_.load() << "\n"
      << "# HELP edgepier_storage_used_bytes Bytes of complete blobs stored on this node.\n"
      << "# TYPE edgepier_storage_used_bytes gauge\n"
      << "edgepier_storage_used_bytes " << storage_used_bytes << "\n";
  return out.str();
}

std::string prometheus_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace ep::http
