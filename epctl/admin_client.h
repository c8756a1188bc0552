// AdminClient: epctl's small blocking HTTP/1.1 client for the node's admin
// API (JSON over plain HTTP), plus parsing of the --admin URL. Every request
// has one overall deadline (10 s by default); failures become AdminError
// with a one-line message ready for "epctl: <message>".
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

namespace epctl {

// Objects keep the node's key order, so --json prints documents as received.
using Json = nlohmann::ordered_json;

struct AdminUrl {
  std::string host;       // without brackets for IPv6
  std::string port;       // "5050"
  std::string base_path;  // "" or "/prefix" (no trailing slash)
  std::string text;       // as the user wrote it, for messages
  std::string host_header() const;
};

// Accepts "http://host[:port][/prefix]" and a bare "host[:port]"; IPv6 hosts
// in brackets. The port defaults to 80 with a scheme and 5050 without one.
// Returns nullopt with *error saying why for anything else (https included).
std::optional<AdminUrl> parse_admin_url(const std::string& text, std::string* error);

// Percent-encodes everything except RFC 3986 unreserved characters.
std::string url_encode(const std::string& text);

// A failed request: node unreachable, timeout, HTTP error or bad JSON.
class AdminError : public std::runtime_error {
 public:
  AdminError(const std::string& message, int status = 0)
      : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }  // HTTP status, 0 if none arrived

 private:
  int status_;
};

class AdminClient {
 public:
  AdminClient(AdminUrl url, std::string token,
              std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Sends a request to base_path + path (path starts with "/admin/v1/...")
  // and returns the answer's JSON document. Throws AdminError for transport
  // failures, non-2xx statuses (with the node's {"error": ...} message when
  // it sent one) and bodies that are not JSON.
  Json get(const std::string& path) { return call("GET", path, nullptr); }
  Json post(const std::string& path, const Json& body) {
    return call("POST", path, &body);
  }
  Json del(const std::string& path) { return call("DELETE", path, nullptr); }
  Json call(const std::string& method, const std::string& path, const Json* body);

 private:
  AdminUrl url_;
  std::string token_;
  std::chrono::milliseconds timeout_;
};

// Collapses a message to one line: control characters become spaces and
// runs of spaces shrink to one; long messages are cut at max_chars.
std::string one_line(const std::string& text, size_t max_chars = 300);

}  // namespace epctl
