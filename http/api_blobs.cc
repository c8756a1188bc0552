// Api: blob reads/deletes and the upload protocol (POST/PATCH/PUT/GET/DELETE).
#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <optional>

#include "http/api.h"
#include "http/oci_errors.h"

namespace ep::http {

namespace verb = boost::beast::http;
using boost::beast::http::field;

namespace {

Status method_not_allowed() { return Status{Errc::method_not_allowed, "method not allowed on this endpoint"}; }

bool parse_u64(std::string_view text, uint64_t& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size() && !text.empty();
}

}  // namespace

// The Range parsers (declared in api.h, for tests/fuzz/fuzz_range.cc).
std::optional<ByteRange> parse_range(std::string_view header, uint64_t size, bool& unsatisfiable) {
  unsatisfiable = false;
  if (header.substr(0, 6) != "bytes=" || header.find(',') != std::string_view::npos) return std::nullopt;
  auto spec = header.substr(6);
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto a = spec.substr(0, dash), b = spec.substr(dash + 1);
  uint64_t first = 0, last = 0;
  if (a.empty()) {
    if (!parse_u64(b, last) || last == 0) return unsatisfiable = (b == "0"), std::nullopt;
    if (size == 0) return unsatisfiable = true, std::nullopt;
    return ByteRange{size - std::min(last, size), size - 1};
  }
  if (!parse_u64(a, first)) return std::nullopt;
  if (b.empty())
    last = size ? size - 1 : 0;
  else if (!parse_u64(b, last) || last < first)
    return std::nullopt;
  if (first >= size) return unsatisfiable = true, std::nullopt;
  return ByteRange{first, std::min(last, size - 1)};
}

std::optional<ByteRange> parse_content_range(std::string_view header) {
  if (header.substr(0, 6) == "bytes ") header = header.substr(6);
  if (header.substr(0, 6) == "bytes=") header = header.substr(6);
  header = header.substr(0, header.find('/'));
  auto dash = header.find('-');
  uint64_t first = 0, last = 0;
  // A range that ends at byte 2^64 - 1 has no length that fits in 64 bits
  // (0-18446744073709551615 would claim length 0).
  if (dash == std::string_view::npos || !parse_u64(header.substr(0, dash), first) ||
      !parse_u64(header.substr(dash + 1), last) || last < first || last == UINT64_MAX)
    return std::nullopt;
  return ByteRange{first, last};
}

namespace {

std::string upload_location(const UploadState& state) {
  return "/v2/" + state.repo + "/blobs/uploads/" + state.id;
}

Reply blob_created(const std::string& repo, const Digest& digest) {
  Reply r = empty_reply(201);
  r.header("Location", "/v2/" + repo + "/blobs/" + digest.str());
  r.header("Docker-Content-Digest", digest.str());
  return r;
}

// Refuses a body that would leave less than min-free-space before any of
// it is read (the client is told at once, with 507).
Status admit_body(BlobStore& blobs, const RequestHead& head) {
  auto header = head[field::content_length];
  uint64_t length = 0;
  if (!parse_u64(std::string_view(header.data(), header.size()), length)) length = 0;
  return blobs.admit(length);
}

}  // namespace

Reply Api::upload_progress(const UploadState& state, unsigned status) {
  Reply r = empty_reply(status);
  r.header("Location", upload_location(state));
  r.header("Range", "0-" + std::to_string(state.offset ? state.offset - 1 : 0));
  r.header("Docker-Upload-UUID", state.id);
  r.header("Blob-Upload-Session-ID", state.id);
  return r;
}

Handling Api::blobs(const Route& route, const RequestHead& head) {
  const auto method = head.method();
  if (method == verb::verb::delete_) {
    auto s = registry_.delete_blob(route.name, route.reference);
    if (!s) return fail(s);
    return answer(empty_reply(202));
  }
  if (method != verb::verb::get && method != verb::verb::head) return fail(method_not_allowed());
  std::string range(head[field::range]);
  const bool head_only = method == verb::verb::head;
  Upstream* upstream = upstream_for(route);
  const bool explicit_ns = upstream && route.has("ns");
  if (!explicit_ns) {
    auto blob = registry_.open_blob(route.name, route.reference);
    if (blob) {
      uint64_t size = blob->size;
      return answer(blob_reply(route.reference, size, range, FileRange{std::move(*blob), 0, size, nullptr}));
    }
    if (blob.status().code != Errc::blob_unknown || !mirror_ || (head_only && !upstream)) return fail(blob.status());
  }
  Handling h;
  if (upstream && mirror_->answers_without_waiting()) {
    // A single node: the mirror answers without holding a thread.
    h.answers_later = [this, upstream, explicit_ns, route, range, head_only](std::function<void(Reply)> send) {
      mirror_->blob_async(*upstream, route.name, route.reference, head_only,
                          [upstream, explicit_ns, route, range, head_only, send](Result<BlobSource> source) {
                            send(mirrored_blob_reply(std::move(source), upstream, route, range, head_only, explicit_ns));
                          });
    };
    return h;
  }
  // A site member: finding the blob may block (asking peers who holds it,
  // the upstream's HEAD), so that part runs on the blocking pool; waiting
  // for the fetch to start does not hold a thread.
  h.answers_later = [this, upstream, explicit_ns, route, range, head_only](std::function<void(Reply)> send) {
    auto lookup = [this, upstream, explicit_ns, route, head_only]() -> Result<BlobSource> {
      if (!explicit_ns && !head_only) {
        // Pushed to another member of the site? Fetch it from there. (HEAD
        // stays local: a client that sees 404 uploads the blob here, which
        // keeps manifest pushes consistent.)
        auto source = mirror_->blob_from_peers(route.name, route.reference);
        if (source || !upstream) return source;
      }
      return mirror_->blob(*upstream, route.name, route.reference, head_only);
    };
    auto reply = [upstream, explicit_ns, route, range, head_only, send](Result<BlobSource> source) {
      send(mirrored_blob_reply(std::move(source), upstream, route, range, head_only, explicit_ns));
    };
    if (!mirror_->blob_on_pool(lookup, reply)) send(error_reply(Status::Stopping()));
  };
  return h;
}

Reply Api::mirrored_blob_reply(Result<BlobSource> source, const Upstream* upstream, const Route& route,
                               const std::string& range, bool head, bool explicit_ns) {
  if (!source) {
    // A HEAD without ?ns= is how a pushing client asks whether the blob is
    // here. With the default upstream unreachable the answer is no (404), so
    // the push uploads it instead of failing on a 503.
    Reply refusal = error_reply(source.status());
    if (upstream && !explicit_ns && head && refusal.status == 503)
      return error_reply(Status{Errc::blob_unknown, "blob unknown to repository " + route.name + " (and upstream " +
                                                        upstream->describe() + " is unavailable)"});
    return refusal;
  }
  FileRange file;
  if (source->local) {
    file.blob = std::move(*source->local);
  } else if (source->inflight) {
    file.blob.fd = UniqueFd(::dup(source->inflight->fd()));
    file.blob.size = source->size;
    file.growing = source->inflight;
  }
  return blob_reply(route.reference, source->size, range, std::move(file));
}

Reply blob_reply(const std::string& digest, uint64_t size, std::string_view range_header, FileRange file) {
  Reply r;
  r.content_type = "application/octet-stream";
  r.header("Docker-Content-Digest", digest);
  r.header("ETag", "\"" + digest + "\"");
  r.header("Accept-Ranges", "bytes");
  r.header("Cache-Control", "max-age=31536000");
  file.offset = 0;
  file.length = size;
  if (!range_header.empty()) {
    bool unsatisfiable = false;
    auto range = parse_range(range_header, size, unsatisfiable);
    if (unsatisfiable) {
      Reply e = error_reply(Status{Errc::range_invalid, "requested range not satisfiable"});
      e.header("Content-Range", "bytes */" + std::to_string(size));
      return e;
    }
    if (range) {
      r.status = 206;
      r.header("Content-Range", "bytes " + std::to_string(range->first) + "-" + std::to_string(range->last) + "/" +
                                    std::to_string(size));
      file.offset = range->first;
      file.length = range->last - range->first + 1;
    }
  }
  if (file.blob.fd.valid())
    r.file = std::move(file);
  else
    r.head_length = file.length;  // HEAD answered from upstream metadata
  return r;
}

Handling Api::upload_start(const Route& route, const RequestHead& head) {
  if (head.method() != verb::verb::post) return fail(method_not_allowed());
  if (route.has("mount")) {
    auto mounted = registry_.mount_blob(route.name, route.param("mount"), route.param("from"));
    if (mounted) return answer(blob_created(route.name, *Digest::parse(route.param("mount"))));
    if (mounted.code == Errc::name_invalid && route.param("from").empty()) return fail(mounted);
    // Otherwise fall back to a regular upload session, as the spec requires.
  }
  if (auto s = admit_body(blobs_, head); !s) return fail(s);
  auto state = uploads_.start(route.name);
  if (!state) return fail(state.status());
  if (!route.has("digest")) return answer(upload_progress(*state, 202));

  // Monolithic upload: POST ?digest= with the whole blob as the body.
  auto digest = Digest::parse(route.param("digest"));
  if (!digest) {
    uploads_.cancel(route.name, state->id);
    return fail(digest.status());
  }
  auto appender = uploads_.append(route.name, state->id, 0);
  if (!appender) return fail(appender.status());
  Handling h;
  h.mode = BodyMode::upload;
  h.appender = std::move(*appender);
  h.finish_waits = true;  // commit: verify, sync and publish the blob
  h.finish = [this, repo = route.name, id = state->id, d = digest->str()](std::string,
                                                                            std::unique_ptr<UploadAppender> a) {
    if (auto committed = a->commit(); !committed) return error_reply(committed.status());
    auto done = uploads_.complete(repo, id, d);
    if (!done) return error_reply(done.status());
    return blob_created(repo, *done);
  };
  return h;
}

Handling Api::upload(const Route& route, const RequestHead& head) {
  const auto method = head.method();
  if (method == verb::verb::get || method == verb::verb::head) {
    auto state = uploads_.status(route.name, route.reference);
    if (!state) return fail(state.status());
    return answer(upload_progress(*state, 204));
  }
  if (method == verb::verb::delete_) {
    auto s = uploads_.cancel(route.name, route.reference);
    if (!s) return fail(s);
    return answer(empty_reply(204));
  }
  if (method != verb::verb::patch && method != verb::verb::put) return fail(method_not_allowed());

  std::optional<Digest> digest;
  if (method == verb::verb::put) {
    if (!route.has("digest")) return fail(Status{Errc::digest_invalid, "PUT must carry a ?digest= parameter"});
    auto d = Digest::parse(route.param("digest"));
    if (!d) return fail(d.status());
    digest = *d;
  }
  std::optional<uint64_t> start;
  if (auto cr_header = head[field::content_range]; !cr_header.empty()) {
    std::string_view cr(cr_header.data(), cr_header.size());
    auto range = parse_content_range(cr);
    uint64_t length = 0;
    auto cl_header = head[field::content_length];
    std::string_view cl(cl_header.data(), cl_header.size());
    bool length_mismatch = range && !cl.empty() && parse_u64(cl, length) && length != range->last - range->first + 1;
    if (!range || length_mismatch) {
      auto state = uploads_.status(route.name, route.reference);
      if (!state) return fail(state.status());
      Reply r = upload_progress(*state, 416);
      Reply e = error_reply(Status{Errc::range_invalid, "invalid Content-Range: " + std::string(cr)});
      r.content_type = e.content_type;
      r.body = e.body;
      return answer(std::move(r));
    }
    start = range->first;
  }
  if (auto s = admit_body(blobs_, head); !s) return fail(s);
  auto appender = uploads_.append(route.name, route.reference, start);
  if (!appender) {
    if (appender.status().code != Errc::range_invalid) return fail(appender.status());
    auto state = uploads_.status(route.name, route.reference);
    if (!state) return fail(state.status());
    Reply r = upload_progress(*state, 416);
    Reply e = error_reply(appender.status());
    r.content_type = e.content_type;
    r.body = e.body;
    return answer(std::move(r));
  }
  Handling h;
  h.mode = BodyMode::upload;
  h.appender = std::move(*appender);
  h.finish_waits = true;  // commit: verify, sync and publish the blob
  h.finish = [this, repo = route.name, id = route.reference, digest](std::string,
                                                                     std::unique_ptr<UploadAppender> a) {
    auto committed = a->commit();
    if (!committed) return error_reply(committed.status());
    if (!digest) return upload_progress(*committed, 202);
    auto done = uploads_.complete(repo, id, digest->str());
    if (!done) return error_reply(done.status());
    return blob_created(repo, *done);
  };
  return h;
}

}  // namespace ep::http
