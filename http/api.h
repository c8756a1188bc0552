// Api: the OCI Distribution endpoints, as synchronous handlers.
//
// The server calls begin() once the request header is parsed; the returned
// Handling says how to treat the body (ignore, buffer up to a bound, or stream
// into an upload) and how to produce the reply once the body is in. Handlers
// run on HTTP worker threads and only call the thread-safe Registry/Uploads.
#pragma once

#include <boost/beast/http/message.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "access/access_control.h"
#include "http/metrics.h"
#include "http/reply.h"
#include "http/router.h"
#include "dataplane/mirror.h"
#include "registry/registry.h"
#include "registry/uploads.h"

namespace ep::http {

using RequestHead = boost::beast::http::request_header<>;

enum class BodyMode { none, buffer, upload };

struct Handling {
  RouteKind route = RouteKind::unknown;  // for metrics
  BodyMode mode = BodyMode::none;
  size_t buffer_limit = 64 * 1024;  // for none: bytes we read and drop before giving up
  std::unique_ptr<UploadAppender> appender;  // for BodyMode::upload
  std::optional<Reply> reply;                // answer without reading the body
  std::function<Reply(std::string body, std::unique_ptr<UploadAppender> appender)> finish;
  bool finish_waits = false;  // finish may block (disk sync, the site actor): run it on the blocking pool
  // Work that may block on the network (mirror): run on a worker pool.
  std::function<Reply()> deferred;
  // Work that answers later without blocking (a cold blob from upstream):
  // called on the I/O thread with the function that sends the reply, which
  // it calls once, from any thread.
  std::function<void(std::function<void(Reply)> send)> answers_later;
  // The same once a buffered body is in (BodyMode::buffer).
  std::function<void(std::string body, std::function<void(Reply)> send)> finish_later;
  // Blocking work before the handler decides (making room on a full disk):
  // the server runs it on the worker pool, then calls handle_prepared().
  std::function<void()> prepare;
};

// What the Server calls for each request once its header is parsed.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  virtual Handling handle(const RequestHead& head, const access::Caller& caller) = 0;
  // The same request again, after its Handling's `prepare` ran: decides
  // without asking to prepare again.
  virtual Handling handle_prepared(const RequestHead& head, const access::Caller& caller) {
    return handle(head, caller);
  }
};

class Api : public RequestHandler {
 public:
  Api(Registry& registry, Uploads& uploads, BlobStore& blobs, Metrics& metrics, access::AccessControl& access,
      Mirror* mirror = nullptr)
      : registry_(registry), uploads_(uploads), blobs_(blobs), metrics_(metrics), access_(access), mirror_(mirror) {}

  // Every request is first checked by the access control (api_access.cc):
  // a refusal is answered at once; a credential not checked yet is checked
  // off the I/O thread (Handling::prepare). A write that would be refused
  // for space first asks to make room (the blob store's room maker, also
  // off the I/O thread).
  Handling handle(const RequestHead& head, const access::Caller& caller) override;
  Handling handle_prepared(const RequestHead& head, const access::Caller& caller) override;
  // Extra Prometheus text appended to /metrics (e.g. the site's counters).
  void set_metrics_source(std::function<std::string()> source) { extra_metrics_ = std::move(source); }

 private:
  Handling handle_request(const RequestHead& head, const access::Caller& caller, bool prepared);
  Handling begin(const Route& route, const RequestHead& head, const access::Identity& who,
                 const access::Caller& caller);
  Handling dispatch(const Route& route, const RequestHead& head, const access::Identity& who);
  // The registry token endpoint (GET /v2/token?service=&scope=...).
  Reply token(const Route& route, const access::Identity& who);
  Handling manifests(const Route& route, const RequestHead& head, const std::string& writer);
  // Mirror mode: the upstream for this request, when a local read misses.
  Upstream* upstream_for(const Route& route) const;
  // The reply for a mirrored blob once the mirror found it (or failed).
  static Reply mirrored_blob_reply(Result<BlobSource> source, const Upstream* upstream, const Route& route,
                                   const std::string& range, bool head, bool explicit_ns);
  Handling blobs(const Route& route, const RequestHead& head);
  Handling upload_start(const Route& route, const RequestHead& head);
  Handling upload(const Route& route, const RequestHead& head);
  Reply tags(const Route& route);
  Reply catalog(const Route& route, const access::Identity& who);
  Reply referrers(const Route& route);
  Reply upload_progress(const UploadState& state, unsigned status);

  Registry& registry_;
  Uploads& uploads_;
  BlobStore& blobs_;
  Metrics& metrics_;
  access::AccessControl& access_;
  Mirror* mirror_;
  std::function<std::string()> extra_metrics_;
};

// Helpers shared by the api_*.cc files.
Handling answer(Reply reply);
Handling fail(const Status& status);
Reply empty_reply(unsigned status);
Reply json_reply(std::string body);
// `h` with `step` applied to whichever reply it produces (at once, after
// the body, or deferred).
Handling on_reply(Handling h, std::function<Reply(Reply)> step);
// `h`, logging its write (a manifest put or delete, a blob delete, a
// finished upload) with user, repository, reference, digest and client
// address once it succeeded. api_access.cc.
Handling audited(Handling h, const Route& route, const RequestHead& head, const access::Identity& who,
                 const access::Caller& caller);
Reply manifest_reply(StoredManifest manifest);
// An inclusive byte range [first, last].
struct ByteRange {
  uint64_t first, last;
};
// Parses a blob GET's Range, "bytes=a-b", "bytes=a-" or "bytes=-n", against
// `size`. nullopt: not a single range we understand (serve the whole blob).
// Sets `unsatisfiable` when the range is well-formed but outside the blob.
// Declared here for tests/fuzz/fuzz_range.cc.
std::optional<ByteRange> parse_range(std::string_view header, uint64_t size, bool& unsatisfiable);
// Parses a PATCH's Content-Range: "a-b" (Docker), "bytes a-b/*" or
// "bytes=a-b". Declared here for tests/fuzz/fuzz_range.cc.
std::optional<ByteRange> parse_content_range(std::string_view header);
// Blob GET/HEAD reply for `size` bytes, honouring a Range header; `file` may
// be empty for HEAD.
Reply blob_reply(const std::string& digest, uint64_t size, std::string_view range_header, FileRange file);

}  // namespace ep::http
