#include "registry/fsck.h"

#include <set>

#include "base/digest.h"
#include "base/file_io.h"
#include "registry/manifest.h"
#include "storage/keys.h"

namespace ep {

namespace {

// (repo, second component) of a "prefix" repo \0 x key.
std::pair<std::string, std::string> split_key(std::string_view key, size_t prefix) {
  key.remove_prefix(prefix);
  auto nul = key.find('\0');
  if (nul == std::string_view::npos) return {std::string(key), ""};
  return {std::string(key.substr(0, nul)), std::string(key.substr(nul + 1))};
}

// Re-hashes one stored blob; the problem, or nothing.
std::optional<std::string> rehash(BlobStore& blobs, const Digest& digest, uint64_t& hashed) {
  auto blob = blobs.open(digest);
  if (!blob) return "cannot open: " + blob.status().message;
  Sha256 hash;
  std::vector<char> buffer(1 << 20);
  for (uint64_t offset = 0; offset < blob->size;) {
    const uint64_t n = std::min<uint64_t>(buffer.size(), blob->size - offset);
    if (auto s = pread_exact(blob->fd.get(), buffer.data(), n, offset, "a blob"); !s) return s.message;
    hash.update(buffer.data(), n);
    offset += n;
  }
  hashed += blob->size;
  auto actual = hash.finish();
  if (actual != digest) return "its " + std::to_string(blob->size) + " bytes hash to " + actual.str();
  return std::nullopt;
}

Status check_blobs(BlobStore& blobs, bool repair, FsckReport& report) {
  for (const auto& [digest, size] : blobs.list()) {
    ++report.blobs;
    auto problem = rehash(blobs, digest, report.bytes_hashed);
    if (!problem) continue;
    FsckProblem p{"corrupt blob", digest.str(), *problem, false};
    if (repair) {
      auto s = blobs.quarantine(digest);
      p.repaired = static_cast<bool>(s);
      if (!s) p.detail += "; quarantine failed: " + s.message;
    }
    report.problems.push_back(std::move(p));
  }
  return Status::Ok();
}

Status check_manifests(KvReader& kv, BlobStore& blobs, FsckReport& report,
                       const std::function<bool(std::string_view)>& cache_repository,
                       std::set<std::pair<std::string, std::string>>& linked) {
  const std::string prefix = keys::all_manifest_links();
  std::vector<std::pair<std::string, std::string>> links;
  auto s = kv.scan(prefix, "", [&](std::string_view key, std::string_view) {
    links.push_back(split_key(key, prefix.size()));
    return true;
  });
  if (!s) return s;
  for (const auto& [repo, digest] : links) {
    ++report.manifests;
    linked.insert({repo, digest});
    const std::string subject = repo + "@" + digest;
    auto body = kv.get(keys::manifest(digest));
    if (!body) return body.status();
    if (!body->has_value()) {
      report.problems.push_back({"missing manifest", subject, "linked, but its body is not stored", false});
      continue;
    }
    const std::string& value = **body;
    auto nl = value.find('\n');
    auto content = nl == std::string::npos ? std::string_view() : std::string_view(value).substr(nl + 1);
    if (Digest::of(content).str() != digest) {
      report.problems.push_back({"bad manifest", subject, "its stored body does not hash to its digest", false});
      continue;
    }
    auto info = parse_manifest(content, std::string_view(value).substr(0, nl));
    if (!info) {
      report.problems.push_back({"bad manifest", subject, info.status().message, false});
      continue;
    }
    if (cache_repository(repo)) continue;  // a mirror's blobs come and go with the cache
    for (const auto& blob : info->blobs) {
      auto link = kv.get(keys::blob_link(repo, blob.str()));
      if (!link) return link.status();
      if (!link->has_value() || !blobs.stat(blob))
        report.problems.push_back({"missing blob", subject, blob.str() + " is not stored here (a peer may hold it)",
                                   false});
    }
  }
  return Status::Ok();
}

Status check_tags(KvReader& kv, FsckReport& report, const std::set<std::pair<std::string, std::string>>& linked) {
  const std::string prefix = keys::all_tags();
  return kv.scan(prefix, "", [&](std::string_view key, std::string_view value) {
    ++report.tags;
    auto [repo, tag] = split_key(key, prefix.size());
    if (!linked.count({repo, std::string(value)}))
      report.problems.push_back(
          {"dangling tag", repo + ":" + tag, "names " + std::string(value) + ", which is not in the repository", false});
    return true;
  });
}

}  // namespace

Result<FsckReport> fsck(KvStore& kv, BlobStore& blobs, bool repair,
                        const std::function<bool(std::string_view repo)>& cache_repository) {
  FsckReport report;
  if (auto s = check_blobs(blobs, repair, report); !s) return s;
  // Links and tags are read at one moment: replication goes on while fsck
  // runs, and a tag written with its link between two live scans would look
  // dangling.
  auto metadata = kv.snapshot();
  std::set<std::pair<std::string, std::string>> linked;
  if (auto s = check_manifests(*metadata, blobs, report, cache_repository, linked); !s) return s;
  if (auto s = check_tags(*metadata, report, linked); !s) return s;
  return report;
}

}  // namespace ep
