// The project's one error vocabulary.
//
// Every layer below http/ reports failures as an `Errc` plus a human message
// (`Status`), or a `Result<T>` holding either a value or a `Status`. Nothing is
// thrown across layers. Only http/oci_errors.cc maps these codes to OCI error
// codes and HTTP statuses, from one table.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace ep {

enum class Errc {
  ok = 0,
  blob_unknown,           // blob is not in the repository (or nowhere at all)
  blob_upload_invalid,    // upload session exists but the request does not fit it
  blob_upload_unknown,    // no such upload session in this repository
  digest_invalid,         // malformed digest, or content does not match it
  manifest_blob_unknown,  // manifest references a blob/manifest the repo lacks
  manifest_invalid,       // manifest is not valid JSON or not a known schema
  manifest_unknown,       // no manifest for this tag or digest in the repository
  name_invalid,           // repository name violates the distribution grammar
  name_unknown,           // repository does not exist
  tag_invalid,            // tag violates the distribution grammar
  size_invalid,           // declared length does not match the content
  range_invalid,          // Range/Content-Range cannot be satisfied
  too_large,              // content exceeds a configured bound (manifest 4 MiB)
  unsupported,            // operation or algorithm not supported
  bad_request,            // malformed request that fits no better code
  not_found,              // route does not exist
  method_not_allowed,     // route exists, method does not
  busy,                   // resource is in use by a concurrent request
  unauthorized,           // an upstream refused our credentials
  denied,                 // the client may not do this here (e.g. push into a mirror's cache)
  upstream_unavailable,   // the upstream registry cannot be reached now
  io_error,               // disk or database failure on our side
  out_of_space,           // the data dir is full, or a write would leave less than min-free-space
  timed_out,              // a peer or upstream did not answer within its bound
  overloaded,             // the node is at a configured bound (open connections); retry later
  config_invalid,         // startup configuration is wrong
};

// Short stable name of a code, for logs and tests.
const char* errc_name(Errc code);

struct Status {
  Errc code = Errc::ok;
  std::string message;

  Status() = default;
  Status(Errc c, std::string msg) : code(c), message(std::move(msg)) {}
  static Status Ok() { return {}; }
  // Work refused or ended because the node is shutting down (a client may
  // retry on another node; `code` picks the OCI error it is reported as).
  static Status Stopping(Errc c = Errc::upstream_unavailable) { return {c, "the node is stopping"}; }
  bool ok() const { return code == Errc::ok; }
  explicit operator bool() const { return ok(); }
};

// A value or the Status explaining why there is none.
template <class T>
class Result {
 public:
  Result(T value) : data_(std::move(value)) {}
  Result(Status status) : data_(std::move(status)) { assert(!std::get<Status>(data_).ok()); }
  Result(Errc code, std::string message) : data_(Status{code, std::move(message)}) {}

  bool ok() const { return data_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<T>(data_); }
  const T& value() const { return std::get<T>(data_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  // Ok for a result that holds a value, so `return parse(x).status();` is
  // safe whichever way the parse went.
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(data_);
  }

 private:
  std::variant<T, Status> data_;
};

}  // namespace ep
