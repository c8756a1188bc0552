#include "registry/registry.h"

#include <cctype>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>

#include "base/names.h"
#include "registry/manifest.h"
#include "storage/keys.h"
#include "base/clock.h"
#include "base/json_text.h"

namespace ep {

namespace {
// Splits "mediaType\nbody" as stored under keys::manifest().
StoredManifest decode_manifest(const Digest& digest, const std::string& value) {
  auto nl = value.find('\n');
  return StoredManifest{digest, value.substr(0, nl), value.substr(nl + 1)};
}
}  // namespace

Status Registry::validate_repo(std::string_view repo) const { return validate_repository(repo); }

std::string mirror_repository(std::string_view ns, std::string_view upstream_repo) {
  std::string out;
  for (char c : ns) out.push_back(c == ':' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  out.push_back('/');
  out.append(upstream_repo);
  return out;
}

Status Registry::apply_replicated_tag(std::string_view ns, std::string_view repo, std::string_view tag,
                                      const std::optional<Digest>& digest) {
  std::string local = ns.empty() ? std::string(repo) : mirror_repository(ns, repo);
  if (auto s = validate_repo(local); !s) return s;
  if (auto s = validate_tag(tag); !s) return s;
  KvBatch batch;
  if (digest) {
    batch.put(keys::manifest_link(local, digest->str()), "");
    batch.put(keys::repository(local), "");
    batch.put(keys::tag(local, tag), digest->str());
  } else {
    batch.del(keys::tag(local, tag));
  }
  return kv_.write(batch);
}

Status Registry::store_manifest_content(std::string_view digest_text, std::string_view media_type,
                                        std::string_view body) {
  auto digest = Digest::parse(digest_text);
  if (!digest) return digest.status();
  if (Digest::of(body) != *digest) return Status{Errc::digest_invalid, "replicated manifest does not match its digest"};
  std::string record(media_type);
  record.push_back('\n');
  record.append(body);
  KvBatch batch;
  batch.put(keys::manifest(digest->str()), std::move(record));
  return kv_.write(batch);
}

Result<bool> Registry::exists(const std::string& key) {
  auto v = kv_.get(key);
  if (!v) return v.status();
  return v->has_value();
}

Result<StoredManifest> Registry::load_manifest(const Digest& digest) {
  auto v = kv_.get(keys::manifest(digest.str()));
  if (!v) return v.status();
  if (!v->has_value()) return Status{Errc::manifest_unknown, "manifest unknown: " + digest.str()};
  return decode_manifest(digest, **v);
}

Result<StoredManifest> Registry::get_manifest(std::string_view repo, std::string_view reference) {
  if (auto s = validate_repo(repo); !s) return s;
  std::optional<Digest> digest;
  if (looks_like_digest(reference)) {
    auto d = Digest::parse(reference);
    if (!d) return d.status();
    auto linked = exists(keys::manifest_link(repo, d->str()));
    if (!linked) return linked.status();
    if (!*linked) return Status{Errc::manifest_unknown, "manifest unknown: " + d->str()};
    digest = *d;
  } else {
    if (auto s = validate_tag(reference); !s) return s;
    auto v = kv_.get(keys::tag(repo, reference));
    if (!v) return v.status();
    if (!v->has_value())
      return Status{Errc::manifest_unknown, "manifest unknown: " + std::string(repo) + ":" + std::string(reference)};
    auto d = Digest::parse(**v);
    if (!d) return Status{Errc::io_error, "corrupt tag record"};
    digest = *d;
  }
  return load_manifest(*digest);
}

Result<PutManifestResult> Registry::put_manifest(std::string_view repo, std::string_view reference,
                                                 std::string_view content_type, std::string_view body,
                                                 const std::string& writer) {
  if (auto s = validate_repo(repo); !s) return s;
  const bool by_digest = looks_like_digest(reference);
  if (!by_digest)
    if (auto s = validate_tag(reference); !s) return s;
  auto info = parse_manifest(body, content_type);
  if (!info) return info.status();
  Digest digest = Digest::of(body);
  if (by_digest) {
    auto d = Digest::parse(reference);
    if (!d) return d.status();
    if (*d != digest)
      return Status{Errc::digest_invalid, "manifest digest " + digest.str() + " does not match " + d->str()};
  }
  for (const auto& blob : info->blobs) {
    auto linked = exists(keys::blob_link(repo, blob.str()));
    if (!linked) return linked.status();
    if (!*linked) return Status{Errc::manifest_blob_unknown, "blob unknown to repository: " + blob.str()};
  }
  for (const auto& child : info->manifests) {
    auto linked = exists(keys::manifest_link(repo, child.str()));
    if (!linked) return linked.status();
    if (!*linked) return Status{Errc::manifest_blob_unknown, "manifest unknown to repository: " + child.str()};
  }

  KvBatch batch;
  std::string record = info->media_type;
  record.push_back('\n');
  record.append(body);
  batch.put(keys::manifest(digest.str()), std::move(record));
  batch.put(keys::manifest_link(repo, digest.str()), "");
  batch.put(keys::repository(repo), "");
  if (!by_digest) batch.put(keys::tag(repo, reference), digest.str());
  if (info->subject) {
    nlohmann::json desc = {{"mediaType", info->media_type}, {"digest", digest.str()}, {"size", body.size()}};
    if (!info->artifact_type.empty()) desc["artifactType"] = info->artifact_type;
    if (!info->annotations_json.empty()) desc["annotations"] = nlohmann::json::parse(info->annotations_json);
    batch.put(keys::referrer(repo, info->subject->str(), digest.str()), json_text(desc));
  }
  if (auto s = kv_.write(batch); !s) return s;
  if (!by_digest && observer_)
    observer_->tag_written("", std::string(repo), std::string(reference),
                           StoredManifest{digest, info->media_type, std::string(body)}, writer);
  return PutManifestResult{digest, info->subject};
}

Status Registry::put_mirrored_manifest(std::string_view repo, const Digest& digest, std::string_view media_type,
                                       std::string_view body, std::string_view tag) {
  if (auto s = validate_repo(repo); !s) return s;
  KvBatch batch;
  std::string record(media_type);
  record.push_back('\n');
  record.append(body);
  batch.put(keys::manifest(digest.str()), std::move(record));
  batch.put(keys::manifest_link(repo, digest.str()), "");
  batch.put(keys::repository(repo), "");
  if (!tag.empty()) batch.put(keys::tag(repo, tag), digest.str());
  return kv_.write(batch);
}

std::pair<std::string_view, std::string_view> split_reference(std::string_view ref) {
  auto at = ref.find('@');
  if (at != std::string_view::npos) return {ref.substr(0, at), ref.substr(at + 1)};
  auto colon = ref.rfind(':');
  if (colon != std::string_view::npos && ref.find('/', colon) == std::string_view::npos)
    return {ref.substr(0, colon), ref.substr(colon + 1)};
  return {ref, "latest"};
}

std::optional<std::vector<Digest>> Registry::image_blobs(std::string_view ref, std::vector<uint64_t>* sizes) {
  const auto parts = split_reference(ref);  // no structured binding: clang 14 cannot capture one
  const std::string_view repo = parts.first, reference = parts.second;
  std::vector<Digest> blobs;
  std::function<bool(std::string_view, int)> walk = [&](std::string_view r, int depth) {
    auto m = get_manifest(repo, r);
    if (!m || depth > 2) return false;
    auto info = parse_manifest(m->body, m->media_type);
    if (!info) return false;
    blobs.insert(blobs.end(), info->blobs.begin(), info->blobs.end());
    if (sizes) sizes->insert(sizes->end(), info->blob_sizes.begin(), info->blob_sizes.end());
    // An index's platforms count only where their manifest is here: nobody
    // pulled the others, so they are not fetched on speculation.
    for (const auto& child : info->manifests) walk(child.str(), depth + 1);
    return true;
  };
  if (!walk(reference, 0)) return std::nullopt;
  return blobs;
}

Result<std::set<std::string>> Registry::referenced_blobs() {
  // Manifests linked into some repository (a deleted one keeps its body,
  // which other repositories may share, but loses its link).
  std::set<std::string> linked;
  auto s = kv_.scan(keys::all_manifest_links(), "", [&](std::string_view key, std::string_view) {
    auto separator = key.rfind('\0');
    if (separator != std::string_view::npos) linked.emplace(key.substr(separator + 1));
    return true;
  });
  if (!s) return s;
  std::set<std::string> referenced;
  const std::string prefix = keys::manifest("");
  s = kv_.scan(prefix, "", [&](std::string_view key, std::string_view value) {
    if (!linked.count(std::string(key.substr(prefix.size())))) return true;
    auto nl = value.find('\n');
    if (nl == std::string_view::npos) return true;
    auto info = parse_manifest(value.substr(nl + 1), value.substr(0, nl));
    if (info)
      for (const auto& d : info->blobs) referenced.insert(d.str());
    return true;
  });
  if (!s) return s;
  return referenced;
}

bool Registry::holds_image(std::string_view ref) {
  auto repo = split_reference(ref).first;
  auto blobs = image_blobs(ref);
  if (!blobs) return false;
  for (const auto& blob : *blobs)
    if (!stat_blob(repo, blob.str())) return false;
  return true;
}

Result<std::optional<Digest>> Registry::resolve_tag(std::string_view repo, std::string_view tag) {
  auto v = kv_.get(keys::tag(repo, tag));
  if (!v) return v.status();
  if (!v->has_value()) return std::optional<Digest>();
  auto d = Digest::parse(**v);
  if (!d) return Status{Errc::io_error, "corrupt tag record"};
  return std::optional<Digest>(*d);
}

Status Registry::delete_manifest(std::string_view repo, std::string_view reference, const std::string& writer) {
  if (auto s = validate_repo(repo); !s) return s;
  KvBatch batch;
  if (!looks_like_digest(reference)) {
    if (auto s = validate_tag(reference); !s) return s;
    auto tagged = exists(keys::tag(repo, reference));
    if (!tagged) return tagged.status();
    if (!*tagged) return Status{Errc::manifest_unknown, "tag unknown: " + std::string(reference)};
    batch.del(keys::tag(repo, reference));
    auto s = kv_.write(batch);
    if (s && observer_) observer_->tag_deleted("", std::string(repo), std::string(reference), writer);
    return s;
  }
  auto manifest = get_manifest(repo, reference);
  if (!manifest) return manifest.status();
  const std::string& digest = manifest->digest.str();
  batch.del(keys::manifest_link(repo, digest));
  auto prefix = keys::tag_prefix(repo);
  std::vector<std::string> removed_tags;
  auto s = kv_.scan(prefix, "", [&](std::string_view key, std::string_view value) {
    if (value == digest) {
      batch.del(std::string(key));
      removed_tags.emplace_back(key.substr(prefix.size()));
    }
    return true;
  });
  if (!s) return s;
  if (auto info = parse_manifest(manifest->body, manifest->media_type); info && info->subject)
    batch.del(keys::referrer(repo, info->subject->str(), digest));
  s = kv_.write(batch);
  if (s && observer_)
    for (const auto& tag : removed_tags) observer_->tag_deleted("", std::string(repo), tag, writer);
  return s;
}

Result<Digest> Registry::linked_blob(std::string_view repo, std::string_view digest_text) {
  if (auto s = validate_repo(repo); !s) return s;
  auto digest = Digest::parse(digest_text);
  if (!digest) return digest.status();
  auto linked = exists(keys::blob_link(repo, digest->str()));
  if (!linked) return linked.status();
  if (!*linked) return Status{Errc::blob_unknown, "blob unknown to repository: " + digest->str()};
  return digest;
}

Result<uint64_t> Registry::stat_blob(std::string_view repo, std::string_view digest_text) {
  auto digest = linked_blob(repo, digest_text);
  if (!digest) return digest.status();
  return blobs_.stat(*digest);
}

Result<OpenBlob> Registry::open_blob(std::string_view repo, std::string_view digest_text) {
  auto digest = linked_blob(repo, digest_text);
  if (!digest) return digest.status();
  {
    std::lock_guard lock(access_mu_);
    access_[digest->str()] = steady_clock_ms();
  }
  return blobs_.open(*digest);
}

std::map<std::string, uint64_t> Registry::blob_access() const {
  std::lock_guard lock(access_mu_);
  return access_;
}

Status Registry::delete_blob(std::string_view repo, std::string_view digest_text) {
  auto size = stat_blob(repo, digest_text);
  if (!size) return size.status();
  KvBatch batch;
  batch.del(keys::blob_link(repo, digest_text));
  return kv_.write(batch);
}

Status Registry::link_blob(std::string_view repo, const Digest& digest) {
  if (auto s = validate_repo(repo); !s) return s;
  KvBatch batch;
  batch.put(keys::blob_link(repo, digest.str()), "");
  batch.put(keys::repository(repo), "");
  return kv_.write(batch);
}

Status Registry::mount_blob(std::string_view repo, std::string_view digest_text, std::string_view from) {
  if (auto s = validate_repo(repo); !s) return s;
  auto digest = Digest::parse(digest_text);
  if (!digest) return digest.status();
  if (from.empty()) {
    if (auto size = blobs_.stat(*digest); !size) return size.status();
  } else if (auto size = stat_blob(from, digest_text); !size) {
    return size.status();
  }
  return link_blob(repo, *digest);
}

namespace {
// Collects the suffixes of keys under `prefix` into a page of at most n items.
Result<Page> scan_page(KvStore& kv, const std::string& prefix, long n, std::string_view last) {
  Page page;
  if (n == 0) return page;
  std::string start = last.empty() ? std::string() : prefix + std::string(last);
  auto s = kv.scan(prefix, start, [&](std::string_view key, std::string_view) {
    if (n > 0 && static_cast<long>(page.items.size()) == n) {
      page.more = true;
      return false;
    }
    page.items.emplace_back(key.substr(prefix.size()));
    return true;
  });
  if (!s) return s;
  return page;
}
}  // namespace

Result<Page> Registry::list_tags(std::string_view repo, long n, std::string_view last) {
  if (auto s = validate_repo(repo); !s) return s;
  auto known = exists(keys::repository(repo));
  if (!known) return known.status();
  if (!*known) return Status{Errc::name_unknown, "repository name not known to registry: " + std::string(repo)};
  return scan_page(kv_, keys::tag_prefix(repo), n, last);
}

Result<Page> Registry::catalog(long n, std::string_view last) {
  return scan_page(kv_, std::string(keys::kRepositoryPrefix), n, last);
}

Result<std::string> Registry::referrers(std::string_view repo, std::string_view subject,
                                        std::string_view artifact_type) {
  if (auto s = validate_repo(repo); !s) return s;
  auto digest = Digest::parse(subject);
  if (!digest) return digest.status();
  nlohmann::json manifests = nlohmann::json::array();
  auto s = kv_.scan(keys::referrer_prefix(repo, digest->str()), "", [&](std::string_view, std::string_view value) {
    auto desc = nlohmann::json::parse(value, nullptr, false);
    if (desc.is_discarded()) return true;
    if (artifact_type.empty() || desc.value("artifactType", "") == artifact_type) manifests.push_back(std::move(desc));
    return true;
  });
  if (!s) return s;
  nlohmann::json index = {{"schemaVersion", 2}, {"mediaType", media::kOciIndex}, {"manifests", manifests}};
  return json_text(index);
}

}  // namespace ep
