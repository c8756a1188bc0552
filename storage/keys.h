// The RocksDB key layout: the one place that knows how metadata keys look.
//
// Owned by storage/; callers build keys only through these functions.
// Repository names, tags and digests never contain '\0' (validated in base/),
// so '\0' separates components and keeps prefix scans exact: all keys of
// repository "a" sort before those of "a/b" because '\0' < '/'.
//
//   "V"                              -> schema version ("1")
//   "M" <digest>                     -> manifest: <media type> '\n' <exact bytes>
//   "m/" <repo> \0 <digest>          -> ""        manifest is linked into repo
//   "t/" <repo> \0 <tag>             -> <digest>  tag of repo
//   "b/" <repo> \0 <digest>          -> ""        blob is linked into repo
//   "r/" <repo>                      -> ""        repository exists
//   "f/" <repo> \0 <subject> \0 <digest> -> descriptor JSON of a referrer
//   "u/" <uuid>                      -> upload session JSON {repo, offset, started}
//   "c" <index entry key>            -> one CRDT index entry (crdt::Index::encode_entry)
//   "s/last-contact"                 -> decimal ms: when a site member was last heard
//   "s/collected"                    -> decimal ms: when this node last dropped tombstones
#pragma once

#include <string>
#include <string_view>

namespace ep::keys {

constexpr std::string_view kSchemaVersion = "V";

inline std::string join(std::string_view prefix, std::string_view a) {
  std::string k;
  k.reserve(prefix.size() + a.size());
  k.append(prefix).append(a);
  return k;
}
inline std::string join(std::string_view prefix, std::string_view a, std::string_view b) {
  std::string k = join(prefix, a);
  k.push_back('\0');
  k.append(b);
  return k;
}

inline std::string manifest(std::string_view digest) { return join("M", digest); }
inline std::string manifest_link(std::string_view repo, std::string_view digest) { return join("m/", repo, digest); }
inline std::string all_manifest_links() { return "m/"; }  // prefix of every repository's manifest links
inline std::string all_tags() { return "t/"; }             // prefix of every repository's tags
inline std::string tag(std::string_view repo, std::string_view tag) { return join("t/", repo, tag); }
inline std::string tag_prefix(std::string_view repo) { return join("t/", repo, ""); }
inline std::string blob_link(std::string_view repo, std::string_view digest) { return join("b/", repo, digest); }
inline std::string repository(std::string_view repo) { return join("r/", repo); }
constexpr std::string_view kRepositoryPrefix = "r/";
inline std::string referrer_prefix(std::string_view repo, std::string_view subject) {
  std::string k = join("f/", repo, subject);
  k.push_back('\0');
  return k;
}
inline std::string referrer(std::string_view repo, std::string_view subject, std::string_view digest) {
  return referrer_prefix(repo, subject).append(digest);
}
inline std::string upload(std::string_view uuid) { return join("u/", uuid); }
constexpr std::string_view kUploadPrefix = "u/";
inline std::string index_entry(std::string_view entry_key) { return join("c", entry_key); }
constexpr std::string_view kIndexPrefix = "c";
constexpr std::string_view kLastContact = "s/last-contact";
constexpr std::string_view kCollected = "s/collected";

}  // namespace ep::keys
