// Mirror, site data plane: chunks from upstream. A designated fetcher gets
// its chunk with a Range request, or, from an upstream that does not serve
// ranges, the whole blob in one GET that brings every chunk nobody else here
// is fetching. Each chunk's SHA-256 is recorded as its bytes pass, so peers
// can check what we serve.
#include "base/file_io.h"
#include "dataplane/site_blob.h"
#include "site/chunk_plan.h"

namespace ep {

namespace {
// A Content-Range header names exactly bytes [from, from + length) of `total`.
bool content_range_is(const std::string& value, uint64_t from, uint64_t length, uint64_t total) {
  const std::string range = "bytes " + std::to_string(from) + "-" + std::to_string(from + length - 1) + "/";
  return value == range + std::to_string(total) || value == range + "*";
}
}  // namespace

Status Mirror::chunk_from_upstream(Upstream& up, const std::string& repo, SiteBlob& sb, uint64_t index,
                                   bool whole_blob) {
  Status outcome;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool another_stream = false;
    {
      // Single flight per chunk; while the whole blob streams in here, the
      // chunk comes with that stream.
      std::unique_lock lock(sb.mu);
      sb.cv.wait(lock, [&] { return sb.have[index] || (!sb.fetching[index] && !sb.streaming_whole); });
      if (sb.have[index]) return Status::Ok();
      sb.fetching[index] = 1;
      if (whole_blob) sb.streaming_whole = true;
    }
    outcome = stream_from_upstream(up, repo, sb, index, whole_blob, another_stream);
    std::unique_lock lock(sb.mu);
    if (another_stream) sb.cv.wait(lock, [&] { return !sb.streaming_whole; });
    if (sb.have[index]) return Status::Ok();
    if (!another_stream) break;
  }
  return outcome.ok() ? Status{Errc::upstream_unavailable, "upstream " + up.describe() + " sent a short chunk"}
                      : outcome;
}

Status Mirror::stream_from_upstream(Upstream& up, const std::string& repo, SiteBlob& sb, uint64_t index,
                                    bool whole_blob, bool& another_stream) {
  const auto range = site::chunk_range(sb.size, sb.chunk_size, index);
  // The chunks this fetch writes: the one asked for (claimed by the caller)
  // and, when the upstream ignores Range and sends the whole blob, every
  // chunk nobody else here is fetching: the blob crosses the uplink once.
  std::vector<uint8_t> mine(sb.have.size(), 0);
  mine[index] = 1;
  bool whole_body = false;
  uint64_t base = range.offset, seen = 0;  // the body starts at blob offset `base`
  Sha256 hash;  // of the chunk the body is in; recorded with it, so peers can verify what we serve
  auto claim = [&](uint64_t k) {  // caller holds sb.mu
    if (!sb.have[k] && !sb.fetching[k]) sb.fetching[k] = mine[k] = 1;
  };
  if (whole_blob) {  // the caller set streaming_whole
    std::lock_guard lock(sb.mu);
    whole_body = true;
    base = 0;
    for (uint64_t k = 0; k < mine.size(); ++k) claim(k);
  }
  std::string refused;  // why an answer was not taken
  BodySink sink{[&](const HttpResponse& head) {
                  if (head.status == 206) {  // exactly the range asked for (a whole blob asks for bytes=0-)
                    const uint64_t from = whole_body ? 0 : range.offset;
                    const uint64_t length = whole_body ? sb.size : range.length;
                    if (head.content_length != length ||
                        !content_range_is(head.header("content-range"), from, length, sb.size)) {
                      refused = "a partial answer for another range";
                      return false;
                    }
                    up.saw_ranges(true);
                    return true;
                  }
                  if (head.status != 200) return false;
                  if (head.content_length != sb.size) {  // a 200 must be the whole blob
                    refused = "an answer that is not the whole blob";
                    return false;
                  }
                  up.saw_ranges(false);
                  if (whole_body || range.length == sb.size) return true;
                  // It ignored the Range: the whole blob streams in here, once.
                  std::lock_guard lock(sb.mu);
                  if (sb.streaming_whole) {
                    another_stream = true;
                    return false;
                  }
                  sb.streaming_whole = whole_body = true;
                  base = 0;
                  for (uint64_t k = 0; k < mine.size(); ++k) claim(k);
                  return true;
                },
                [&](const char* data, size_t n) -> Status {
                  if (stopping_) return Status{Errc::io_error, "node is shutting down"};
                  bytes_from_upstream_ += n;
                  while (n > 0) {
                    const uint64_t at = base + seen;
                    if (at >= (whole_body ? sb.size : range.offset + range.length))
                      return Status{Errc::io_error, "upstream sent more than the range"};
                    const uint64_t k = at / sb.chunk_size;
                    const auto chunk = site::chunk_range(sb.size, sb.chunk_size, k);
                    if (whole_body && at == chunk.offset && !mine[k]) {  // freed meanwhile by a failed fetch
                      std::lock_guard lock(sb.mu);
                      claim(k);
                    }
                    const size_t piece = static_cast<size_t>(std::min<uint64_t>(n, chunk.offset + chunk.length - at));
                    if (mine[k]) {
                      if (auto s = pwrite_all(sb.fd.get(), data, piece, at, "chunk"); !s) return s;
                      hash.update(data, piece);
                    }
                    data += piece;
                    n -= piece;
                    seen += piece;
                    if (mine[k] && at + piece == chunk.offset + chunk.length) {
                      const std::string chunk_digest = hash.finish().str();
                      hash = Sha256();
                      {
                        std::lock_guard lock(sb.mu);
                        sb.fetching[k] = mine[k] = 0;
                        mark_present(sb, k, chunk_digest);
                        sb.cv.notify_all();
                      }
                      journal_chunk(sb, k, chunk_digest);
                    }
                  }
                  return Status::Ok();
                }};
  // A whole blob is asked for as "bytes=0-" too: the answer (206 or 200)
  // shows whether the upstream serves ranges after all.
  const std::string wanted = whole_blob ? "bytes=0-"
                                        : "bytes=" + std::to_string(range.offset) + "-" +
                                              std::to_string(range.offset + range.length - 1);
  auto response = up.get(repo, "blobs/" + sb.digest.str(), "GET", {{"Range", wanted}}, &sink);
  Status outcome;
  if (!response)
    outcome = response.status();
  else if (!refused.empty())
    outcome = Status{Errc::upstream_unavailable, "upstream " + up.describe() + " sent " + refused};
  else if (response->status != 206 && response->status != 200)
    outcome = Status{Errc::upstream_unavailable, "upstream " + up.describe() + " answered HTTP " +
                                                     std::to_string(response->status) + " for a chunk"};
  std::lock_guard lock(sb.mu);
  for (uint64_t k = 0; k < mine.size(); ++k)
    if (mine[k]) sb.fetching[k] = 0;  // a cut stream: not written, someone may fetch it again
  if (whole_body) sb.streaming_whole = false;
  sb.cv.notify_all();
  return outcome;
}

bool Mirror::serves_ranges(Upstream& up, const std::string& repo, const Digest& digest,
                           const std::string& accept_ranges) {
  // Accept-Ranges is optional: silence proves nothing, so ask for one byte.
  // An upstream that ignores Range starts sending the whole blob: the
  // connection is closed after the head, and the answer is remembered.
  if (accept_ranges.find("bytes") != std::string::npos) return true;
  if (auto seen = up.serves_ranges()) return *seen;
  BodySink refuse{[](const HttpResponse&) { return false; }, [](const char*, size_t) { return Status::Ok(); }};
  auto probe = up.get(repo, "blobs/" + digest.str(), "GET", {{"Range", "bytes=0-0"}}, &refuse, std::chrono::seconds(5));
  if (!probe || (probe->status != 206 && probe->status != 200)) return false;  // one GET per blob: always safe
  up.saw_ranges(probe->status == 206);
  return probe->status == 206;
}

}  // namespace ep
