// The commands of epctl (see commands.h): admin API calls rendered as
// aligned tables, or passed through as JSON with --json; and keygen.
#include "epctl/commands.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "epctl/admin_client.h"
#include "epctl/shell.h"
#include "epctl/table.h"
#include "base/json_text.h"

namespace epctl {

using json = Json;

namespace {

// Lenient field access: the tables show what the node sent and blanks for
// anything missing, so a newer node with extra or renamed fields still works.
std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : ep::json_text(*it);
}
int64_t num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int64_t>() : 0;
}
uint64_t unum(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<uint64_t>() : 0;
}
bool flag(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}
// The array under key; a missing array means the node answered something else.
const json& list(const json& doc, const char* key) {
  auto it = doc.find(key);
  if (!doc.is_object() || it == doc.end() || !it->is_array())
    throw AdminError(std::string("unexpected answer from the node: no \"") + key + "\" list");
  return *it;
}
std::vector<std::string> strings(const json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it != j.end() && it->is_array())
    for (const auto& v : *it) out.push_back(v.is_string() ? v.get<std::string>() : ep::json_text(v));
  return out;
}

void print_json(const json& doc, std::ostream& out) {
  out << ep::json_text(doc, 2) << '\n';
}

// "docker.io/library/nginx" for mirrored repositories, "team/app" for local ones.
std::string repo_name(const json& j) {
  std::string ns = str(j, "namespace"), repo = str(j, "repository");
  return ns.empty() ? repo : ns + "/" + repo;
}

std::string replicas_text(const json& j) {
  auto it = j.find("replicas");
  if (it == j.end() || it->is_null()) return "-";
  return it->is_string() ? it->get<std::string>() : ep::json_text(*it);
}

template <typename Key>
void sort_by(std::vector<json>& rows, Key key) {
  std::stable_sort(rows.begin(), rows.end(),
                   [&](const json& a, const json& b) { return key(a) < key(b); });
}

}  // namespace

int cmd_members(AdminClient& client, const Invocation& inv, std::ostream& out) {
  json doc = client.get("/admin/v1/members");
  if (inv.global.json) return print_json(doc, out), 0;
  std::vector<json> rows(list(doc, "members").begin(), list(doc, "members").end());
  sort_by(rows, [](const json& m) { return std::make_pair(!flag(m, "self"), str(m, "name")); });
  Table table({"NAME", "STATE", "LAST SEEN", "REGISTRY", "CLUSTER", "DATA"});
  for (const auto& m : rows) {
    bool self = flag(m, "self");
    table.add_row({str(m, "name") + (self ? " (self)" : ""), str(m, "state"),
                   self ? "-" : human_ago(num(m, "last_seen_ms")), str(m, "registry_address"),
                   str(m, "cluster_address"), str(m, "data_address")});
  }
  if (table.rows() == 0) return out << "no members\n", 0;
  table.print(out);
  return 0;
}

int cmd_tags(AdminClient& client, const Invocation& inv, std::ostream& out) {
  std::string path = "/admin/v1/tags";
  if (!inv.arg.empty()) path += "?repo=" + url_encode(inv.arg);
  json doc = client.get(path);
  if (inv.global.json) return print_json(doc, out), 0;
  std::vector<json> rows(list(doc, "tags").begin(), list(doc, "tags").end());
  sort_by(rows, [](const json& t) { return std::make_pair(repo_name(t), str(t, "tag")); });
  // BY: the node that took the write; USER: the registry user who made it
  // ("-" for the mirror's own writes).
  Table table({"REPOSITORY", "TAG", "DIGEST", "UPDATED", "BY", "USER", "CONFLICT"});
  size_t conflicts = 0;
  int64_t now = now_unix_ms();
  for (const auto& t : rows) {
    std::vector<std::string> others;
    auto it = t.find("conflicts");
    if (it != t.end() && it->is_array())
      for (const auto& c : *it) {
        std::string by = str(c, "updated_by");
        others.push_back(short_digest(str(c, "digest")) + (by.empty() ? "" : " (" + by + ")"));
      }
    if (!others.empty()) ++conflicts;
    table.add_row({repo_name(t), str(t, "tag"), flag(t, "deleted") ? "(deleted)" : short_digest(str(t, "digest")),
                   human_since(num(t, "updated_at_ms"), now), str(t, "updated_by"),
                   str(t, "writer").empty() ? "-" : str(t, "writer"), others.empty() ? "" : "vs " + join_or_dash(others)});
  }
  if (table.rows() == 0) return out << (inv.arg.empty() ? "no tags\n" : "no tags in " + inv.arg + "\n"), 0;
  table.print(out);
  if (conflicts)
    out << conflicts << (conflicts == 1 ? " tag was" : " tags were")
        << " written concurrently on different nodes (see CONFLICT)\n";
  return 0;
}

int cmd_pins(AdminClient& client, const Invocation& inv, std::ostream& out) {
  json doc = client.get("/admin/v1/pins");
  if (inv.global.json) return print_json(doc, out), 0;
  std::vector<json> rows(list(doc, "pins").begin(), list(doc, "pins").end());
  sort_by(rows, [](const json& p) { return str(p, "ref"); });
  Table table({"REF", "REPLICAS", "COPIES", "HOLDERS", "KIND", "PINNED BY", "PINNED", "LAST USE"});
  table.align_right(1);
  table.align_right(2);
  int64_t now = now_unix_ms();
  for (const auto& p : rows) {
    auto holders = strings(p, "holders");
    std::sort(holders.begin(), holders.end());
    std::string replicas = replicas_text(p);
    std::string copies = std::to_string(holders.size());
    if (replicas != "all" && replicas != "-") copies += "/" + replicas;
    std::string kind = str(p, "kind").empty() ? "-" : str(p, "kind");
    if (flag(p, "lapsed")) kind += " (lapsed)";
    table.add_row({str(p, "ref"), replicas, copies, join_or_dash(holders), kind, str(p, "pinned_by"),
                   human_since(num(p, "pinned_at_ms"), now), human_since(num(p, "last_used_ms"), now)});
  }
  if (table.rows() == 0)
    out << "no pins\n";
  else
    table.print(out);
  auto storage = doc.find("storage");
  if (storage != doc.end() && storage->is_object()) {
    const auto budget = unum(*storage, "budget_bytes");
    out << "storage on this node: " << human_size(unum(*storage, "used_bytes"))
        << (budget ? " of a " + human_size(budget) + " budget" : " (no budget)");
    if (flag(*storage, "over_budget"))
      out << "; OVER BUDGET: explicit pins and pinned pushed images hold " << human_size(unum(*storage, "kept_bytes"))
          << ", which are never evicted";
    out << "\n";
  }
  return 0;
}

int cmd_pin_add(AdminClient& client, const Invocation& inv, std::ostream& out) {
  json body = {{"ref", inv.arg}};
  if (inv.replicas == "all") body["replicas"] = "all";
  else if (!inv.replicas.empty()) body["replicas"] = std::stoul(inv.replicas);
  json doc = client.post("/admin/v1/pins", body);
  if (inv.global.json) return print_json(doc, out), 0;
  auto it = doc.find("pin");
  const json& pin = it != doc.end() && it->is_object() ? *it : body;
  std::string ref = str(pin, "ref").empty() ? inv.arg : str(pin, "ref");
  out << "pinned " << ref << " (replicas: " << replicas_text(pin) << ")\n";
  return 0;
}

int cmd_pin_rm(AdminClient& client, const Invocation& inv, std::ostream& out) {
  json doc = client.del("/admin/v1/pins?ref=" + url_encode(inv.arg));
  if (inv.global.json) return print_json(doc, out), 0;
  out << "unpinned " << inv.arg << "\n";
  return 0;
}

int cmd_blobs(AdminClient& client, const Invocation& inv, std::ostream& out) {
  json doc = client.get("/admin/v1/blobs");
  if (inv.global.json) return print_json(doc, out), 0;
  std::vector<json> rows(list(doc, "blobs").begin(), list(doc, "blobs").end());
  // Partial blobs first: they are the ones a reader is usually looking for.
  sort_by(rows, [](const json& b) { return std::make_pair(flag(b, "complete"), str(b, "digest")); });
  Table table({"DIGEST", "SIZE", "STATE", "PRESENT", "PINNED"});
  table.align_right(1);
  table.align_right(3);
  uint64_t stored = 0, total = 0;
  size_t complete = 0;
  for (const auto& b : rows) {
    uint64_t size = unum(b, "size");
    bool done = flag(b, "complete");
    uint64_t present = done ? size : unum(b, "bytes_present");
    stored += present;
    total += size;
    complete += done;
    std::string state = done ? "complete" : size ? "partial " + percent(present, size) : "partial";
    table.add_row({short_digest(str(b, "digest")), size || done ? human_size(size) : "?", state, human_size(present),
                   flag(b, "pinned") ? "yes" : "no"});
  }
  if (table.rows() == 0) return out << "no blobs\n", 0;
  table.print(out);
  out << rows.size() << (rows.size() == 1 ? " blob, " : " blobs, ") << complete << " complete, "
      << rows.size() - complete << " partial; " << human_size(stored) << " of " << human_size(total)
      << " present\n";
  return 0;
}

int cmd_stats(AdminClient& client, const Invocation& inv, std::ostream& out) {
  json doc = client.get("/admin/v1/stats");
  if (inv.global.json) return print_json(doc, out), 0;
  if (!doc.is_object()) throw AdminError("unexpected answer from the node: not a JSON object");
  Table totals({"TRAFFIC", "BYTES"});
  totals.align_right(1);
  totals.add_row({"to clients", human_size(unum(doc, "bytes_to_clients"))});
  totals.add_row({"from upstream", human_size(unum(doc, "bytes_from_upstream"))});
  totals.add_row({"from peers", human_size(unum(doc, "bytes_from_peers"))});
  totals.add_row({"to peers", human_size(unum(doc, "bytes_to_peers"))});
  totals.print(out);
  if (doc.contains("storage_free_bytes"))
    out << "\nstorage: " << human_size(unum(doc, "storage_free_bytes")) << " free (min-free-space "
        << human_size(unum(doc, "min_free_space")) << ")"
        << (flag(doc, "storage_full") ? "; FULL: pushes, new pulls and replication are refused" : "") << "\n";
  auto it = doc.find("peers");
  if (it == doc.end() || !it->is_array() || it->empty()) return out << "\nno peer traffic\n", 0;
  std::vector<json> rows(it->begin(), it->end());
  sort_by(rows, [](const json& p) { return str(p, "name"); });
  Table peers({"PEER", "FROM PEER", "TO PEER", "BAD CHUNKS"});
  peers.align_right(1);
  peers.align_right(2);
  peers.align_right(3);
  for (const auto& p : rows)
    peers.add_row({str(p, "name"), human_size(unum(p, "bytes_from")), human_size(unum(p, "bytes_to")),
                   std::to_string(unum(p, "bad_chunks"))});
  out << '\n';
  peers.print(out);
  return 0;
}

int cmd_leave(AdminClient& client, const Invocation& inv, std::ostream& out) {
  json doc = client.call("POST", "/admin/v1/leave", nullptr);
  if (inv.global.json) return print_json(doc, out), 0;
  std::string status = str(doc, "status");
  out << "the node is leaving the site" << (status.empty() || status == "leaving" ? "" : " (" + status + ")")
      << "\n";
  return 0;
}

int cmd_gc(AdminClient& client, const Invocation& inv, std::ostream& out) {
  json doc = client.call(inv.run ? "POST" : "GET", "/admin/v1/gc", nullptr);
  if (inv.global.json) return print_json(doc, out), 0;
  std::vector<json> rows(list(doc, "items").begin(), list(doc, "items").end());
  Table table({"KIND", "ID", "SIZE", "WHEN", "WHY"});
  table.align_right(2);
  for (const auto& item : rows)
    table.add_row({str(item, "kind"), str(item, "kind") == "blob" ? short_digest(str(item, "id")) : str(item, "id"),
                   human_size(unum(item, "bytes")), flag(item, "due") ? (inv.run ? "removed" : "now") : "after gc-grace",
                   str(item, "reason")});
  if (table.rows() == 0) return out << "nothing to collect\n", 0;
  table.print(out);
  if (inv.run)
    out << "removed " << unum(doc, "removed") << " (" << human_size(unum(doc, "due_bytes")) << ")\n";
  else
    out << human_size(unum(doc, "due_bytes")) << " would go now; epctl gc --run removes it\n";
  return 0;
}

// Exit status 1 when something is wrong and was not repaired: scripts can
// run `epctl fsck` as a check.
int cmd_fsck(const AdminUrl& url, const Invocation& inv, std::ostream& out) {
  AdminClient client(url, inv.global.token, std::chrono::hours(1));  // it reads every byte stored
  json doc = client.call(inv.repair ? "POST" : "GET", "/admin/v1/fsck", nullptr);
  std::vector<json> rows(list(doc, "problems").begin(), list(doc, "problems").end());
  const bool unrepaired = std::any_of(rows.begin(), rows.end(), [](const json& p) { return !flag(p, "repaired"); });
  if (inv.global.json) return print_json(doc, out), unrepaired ? 1 : 0;
  out << "checked " << unum(doc, "blobs") << " blobs (" << human_size(unum(doc, "bytes_hashed")) << " re-hashed), "
      << unum(doc, "manifests") << " manifests, " << unum(doc, "tags") << " tags\n";
  if (rows.empty()) return out << "no problems\n", 0;
  Table table({"PROBLEM", "WHAT", "DETAIL", "REPAIRED"});
  for (const auto& p : rows)
    table.add_row({str(p, "kind"), str(p, "subject"), str(p, "detail"), flag(p, "repaired") ? "quarantined" : "-"});
  table.print(out);
  if (!inv.repair && std::any_of(rows.begin(), rows.end(), [](const json& p) { return str(p, "kind") == "corrupt blob"; }))
    out << "epctl fsck --repair quarantines the corrupt blobs; they are fetched again from peers or upstream\n";
  return unrepaired ? 1 : 0;
}

int cmd_keygen(const Invocation& inv, std::ostream& out, std::ostream& err) {
  const std::string& path = inv.arg;
  auto fail = [&](const std::string& message) {
    err << "epctl: " << message << std::endl;
    return 1;
  };
  if (sodium_init() < 0) return fail("libsodium failed to initialise");
  unsigned char key[32];
  randombytes_buf(key, sizeof key);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, key, sizeof key);
  sodium_memzero(key, sizeof key);
  std::string text = std::string(hex) + "\n";
  sodium_memzero(hex, sizeof hex);
  // Created 0600. An existing key is kept unless --force: replacing a site's
  // key by accident would cut this node off its site. With --force the file
  // is truncated and brought to 0600 before the key is written, so the
  // secret is never readable by others.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (inv.force ? O_TRUNC : O_EXCL), 0600);
  if (fd < 0 && errno == EEXIST)
    return fail(path + " already exists; `epctl keygen --force " + path +
                "` replaces it (every node of the site then needs the new key)");
  if (fd < 0) return fail("cannot write " + path + ": " + std::strerror(errno));
  bool ok = ::fchmod(fd, 0600) == 0;
  for (size_t done = 0; ok && done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  int saved = errno;
  ok = ::close(fd) == 0 && ok;
  sodium_memzero(&text[0], text.size());
  if (!ok) return fail("cannot write " + path + ": " + std::strerror(saved ? saved : errno));
  if (inv.global.json) print_json({{"file", path}, {"created", true}}, out);
  else out << "wrote a new site key to " << path << "\n";
  return 0;
}

int run_command(const Invocation& inv, std::ostream& out, std::ostream& err) {
  if (inv.command == Command::keygen) return cmd_keygen(inv, out, err);
  try {
    std::string error;
    auto url = parse_admin_url(inv.global.admin, &error);
    if (!url) return err << "epctl: bad admin URL '" << inv.global.admin << "': " << error << std::endl, 2;
    AdminClient client(*url, inv.global.token);
    int status = 1;
    switch (inv.command) {
      case Command::members: status = cmd_members(client, inv, out); break;
      case Command::tags: status = cmd_tags(client, inv, out); break;
      case Command::pins: status = cmd_pins(client, inv, out); break;
      case Command::pin_add: status = cmd_pin_add(client, inv, out); break;
      case Command::pin_rm: status = cmd_pin_rm(client, inv, out); break;
      case Command::blobs: status = cmd_blobs(client, inv, out); break;
      case Command::stats: status = cmd_stats(client, inv, out); break;
      case Command::leave: status = cmd_leave(client, inv, out); break;
      case Command::gc: status = cmd_gc(client, inv, out); break;
      case Command::fsck: status = cmd_fsck(*url, inv, out); break;
      default: return err << "epctl: this command cannot run here" << std::endl, 2;
    }
    out.flush();
    return status;
  } catch (const AdminError& e) {
    err << "epctl: " << one_line(e.what()) << std::endl;
  } catch (const nlohmann::json::exception& e) {
    err << "epctl: unexpected answer from the node: " << one_line(e.what()) << std::endl;
  } catch (const std::exception& e) {
    err << "epctl: " << one_line(e.what()) << std::endl;
  }
  return 1;
}

int execute(const std::vector<std::string>& args, const GlobalOptions& defaults, bool in_shell,
            std::ostream& out, std::ostream& err) {
  ParseResult parsed = parse_args(args, defaults, in_shell);
  if (parsed.kind == ParseResult::help) return out << parsed.text << std::flush, 0;
  if (parsed.kind == ParseResult::usage_error) return err << "epctl: " << parsed.text << std::endl, 2;
  if (parsed.invocation.command == Command::shell) return run_shell(parsed.invocation.global);
  return run_command(parsed.invocation, out, err);
}

}  // namespace epctl
