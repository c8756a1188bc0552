#include "http/admin_api.h"

#include <sodium.h>
#include <sys/stat.h>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <nlohmann/json.hpp>
#include <set>

#include "actors/caf_types.h"
#include "base/clock.h"
#include "dataplane/garbage.h"
#include "dataplane/replicator.h"
#include "http/route_check.h"
#include "http/status_page.h"
#include "base/names.h"
#include "base/json_text.h"

namespace ep::http {

using nlohmann::json;
namespace verb = boost::beast::http;
using boost::beast::http::field;

namespace {

Reply json_reply(unsigned status, std::string body) {
  Reply r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

Reply error_json(unsigned status, const std::string& message) {
  return json_reply(status, json_text(json({{"error", message}})));
}

// A pin names an image as repository:tag or repository@digest, read as the
// replicator reads it (split_reference); the reference must be explicit.
Status check_pin_ref(const std::string& ref) {
  if (ref.find_first_of(":@") == std::string::npos)
    return Status{Errc::bad_request, "a pin is repository:tag or repository@digest: " + ref};
  auto [repo, reference] = split_reference(ref);
  if (auto s = validate_repository(repo); !s) return s;
  return check_reference(reference);
}

// The page is self-contained (inline CSS and script, nothing fetched from
// elsewhere); the policy says so to the browser too.
Reply status_page_reply() {
  Reply r;
  r.content_type = "text/html; charset=utf-8";
  r.body = std::string(status_page_html());
  r.header("Cache-Control", "no-store")
      .header("Content-Security-Policy",
              "default-src 'none'; connect-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; "
              "script-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
      .header("X-Content-Type-Options", "nosniff")
      .header("Referrer-Policy", "no-referrer");
  return r;
}

Handling now(Reply reply) {
  Handling h;
  h.reply = std::move(reply);
  return h;
}

}  // namespace

namespace {
Reply site_answer(const std::string& body) { return body.empty() ? error_json(404, "not found") : json_reply(200, body); }
}  // namespace

template <class... Ts>
Reply AdminApi::ask(Ts... request) {
  caf::scoped_actor self{system_};
  Reply reply = error_json(503, "the site actor did not answer");
  self->request(site_, std::chrono::seconds(5), request...)
      .receive([&](const std::string& body) { reply = site_answer(body); },
               [&](caf::error& err) { reply = error_json(503, "site actor: " + system_.render(err)); });
  return reply;
}

template <class... Ts>
void AdminApi::ask_later(std::function<void(Reply)> send, Ts... request) {
  if (!site_) return send(error_json(503, "the site actor is not running yet"));
  caf::actor_system* system = &system_;
  system_.spawn([site = site_, send, system, request...](caf::event_based_actor* self) {
    self->request(site, std::chrono::seconds(5), request...)
        .then([send](const std::string& body) { send(site_answer(body)); },
              [send, system](caf::error& err) { send(error_json(503, "site actor: " + system->render(err))); });
  });
}

namespace {
// A Handling whose reply comes from the site actor, transformed by `then`.
template <class Ask>
Handling later(Ask ask, std::function<Reply(Reply)> then = nullptr) {
  Handling h;
  h.answers_later = [ask, then](std::function<void(Reply)> send) {
    ask([send, then](Reply r) { send(then ? then(std::move(r)) : std::move(r)); });
  };
  return h;
}
}  // namespace

Handling AdminApi::handle(const RequestHead& head, const access::Caller&) {
  const std::string_view requested(head.target().data(), head.target().size());
  if ((head.method() == verb::verb::get || head.method() == verb::verb::head) &&
      (requested == "/" || requested == "/index.html"))
    return now(status_page_reply());
  if (!token_.empty()) {
    auto auth = head[field::authorization];
    std::string expected = "Bearer " + token_;
    if (auth.size() != expected.size() || sodium_memcmp(auth.data(), expected.data(), expected.size()) != 0)
      return now(error_json(401, "missing or wrong admin token"));
  }
  auto route = parse_route(std::string_view(head.target().data(), head.target().size()));
  std::string target(head.target());
  std::string path = target.substr(0, target.find('?'));
  const auto method = head.method();
  const bool get = method == verb::verb::get;
  Handling h;
  if (path == "/admin/v1/members" && get) {
    return later([this](auto send) { ask_later(send, actors::members_atom::value); });
  } else if (path == "/admin/v1/tags" && get) {
    std::string repo = route.param("repo");
    if (auto s = repo.empty() ? Status::Ok() : validate_repository(repo); !s) return now(error_json(400, s.message));
    return later([this, repo](auto send) { ask_later(send, actors::tags_atom::value, repo); });
  } else if (path == "/admin/v1/pins" && get) {
    h.deferred = [this] { return pins_reply(); };
  } else if (path == "/admin/v1/pins" && method == verb::verb::post) {
    h.mode = BodyMode::buffer;
    h.buffer_limit = 64 * 1024;
    h.finish_later = [this](std::string body, std::function<void(Reply)> send) {
      auto doc = json::parse(body, nullptr, false);
      if (doc.is_discarded() || !doc.is_object() || !doc.contains("ref") || !doc["ref"].is_string() ||
          doc["ref"].get<std::string>().empty())
        return send(error_json(400, "body must be {\"ref\": \"repo:tag\", \"replicas\": N|\"all\"}"));
      if (auto s = check_pin_ref(doc["ref"].get<std::string>()); !s) return send(error_json(400, s.message));
      int32_t replicas = -1;  // the node's replication setting
      if (doc.contains("replicas")) {
        const auto& r = doc["replicas"];
        if (r.is_string() && r == "all")
          replicas = 0;
        else if (r.is_number_integer() && r.get<int64_t>() >= 1 && r.get<int64_t>() <= 1000000)
          replicas = static_cast<int32_t>(r.get<int64_t>());
        else
          return send(error_json(400, "replicas must be a positive number or \"all\""));
      }
      auto created = [send](Reply reply) {
        if (reply.status == 200) reply.status = 201;
        send(std::move(reply));
      };
      ask_later(created, actors::pin_add_atom::value, doc["ref"].get<std::string>(), replicas);
    };
  } else if (path == "/admin/v1/pins" && method == verb::verb::delete_) {
    std::string ref = route.param("ref");
    if (ref.empty()) return now(error_json(400, "missing ?ref="));
    if (auto s = check_pin_ref(ref); !s) return now(error_json(400, s.message));
    return later([this, ref](auto send) { ask_later(send, actors::pin_rm_atom::value, ref); },
                 [ref](Reply r) {
                   if (r.status == 200) r.body = json_text(json({{"removed", true}}));
                   if (r.status == 404) r = error_json(404, "no pin for " + ref);
                   return r;
                 });
  } else if (path == "/admin/v1/gc" && (get || method == verb::verb::post)) {
    const bool remove = !get;  // GET: what would go (dry run); POST: collect now
    h.deferred = [this, remove] { return gc_reply(remove); };
  } else if (path == "/admin/v1/fsck" && (get || method == verb::verb::post)) {
    const bool repair = !get;  // GET: check only; POST: quarantine what is corrupt
    h.deferred = [this, repair] { return fsck_reply(repair); };
  } else if (path == "/admin/v1/blobs" && get) {
    h.deferred = [this] { return blobs_reply(); };
  } else if (path == "/admin/v1/stats" && get) {
    return now(stats_reply());
  } else if (path == "/admin/v1/stats/history" && get) {
    return now(traffic_history_reply());
  } else if (path == "/admin/v1/leave" && method == verb::verb::post) {
    return later([this](auto send) { ask_later(send, actors::leave_atom::value); }, [](Reply r) {
      if (r.status == 200) r = json_reply(202, json_text(json({{"status", "leaving"}})));
      return r;
    });
  } else if (path.rfind("/admin/v1/", 0) == 0) {
    return now(error_json(404, "no such admin endpoint: " + std::string(head.method_string()) + " " + path));
  } else {
    return now(error_json(404, "not found"));
  }
  return h;
}

// The site's pins, with this node's storage: its budget and whether explicit
// pins alone exceed it.
Reply AdminApi::pins_reply() {
  Reply reply = ask(actors::pins_atom::value);
  if (reply.status != 200 || !replicator_) return reply;
  auto doc = json::parse(reply.body, nullptr, false);
  if (doc.is_discarded()) return reply;
  doc["storage"] = {{"budget_bytes", replicator_->storage_budget()},
                    {"used_bytes", blobs_.used_bytes()},
                    {"kept_bytes", replicator_->kept_bytes()},
                    {"over_budget", replicator_->over_budget()},
                    {"auto_pin_ttl_ms", replicator_->auto_pin_ttl_ms()}};
  reply.body = json_text(doc);
  return reply;
}

Reply AdminApi::gc_reply(bool remove) {
  if (!collector_) return error_json(503, "garbage collection is not running yet");
  auto report = collector_->collect(remove);
  if (!report) return error_json(500, "garbage collection failed: " + report.status().message);
  json items = json::array();
  for (const auto& item : report->items)
    items.push_back({{"kind", item.kind}, {"id", item.id}, {"bytes", item.bytes}, {"reason", item.reason},
                     {"due", item.due}});
  return json_reply(200, json_text(json({{"ran", remove},
                                         {"grace_ms", collector_->grace_ms()},
                                         {"due_bytes", report->due_bytes},
                                         {"removed", report->removed},
                                         {"items", items}})));
}

Reply AdminApi::fsck_reply(bool repair) {
  if (!fsck_) return error_json(503, "fsck is not available yet");
  auto report = fsck_(repair);
  if (!report) return error_json(500, "fsck failed: " + report.status().message);
  json problems = json::array();
  for (const auto& p : report->problems)
    problems.push_back({{"kind", p.kind}, {"subject", p.subject}, {"detail", p.detail}, {"repaired", p.repaired}});
  return json_reply(200, json_text(json({{"repair", repair},
                                         {"blobs", report->blobs},
                                         {"bytes_hashed", report->bytes_hashed},
                                         {"manifests", report->manifests},
                                         {"tags", report->tags},
                                         {"problems", problems}})));
}

Reply AdminApi::blobs_reply() {
  // Pinned images' blobs, to mark them.
  std::set<std::string> pinned;
  Reply pins = ask(actors::pins_atom::value);
  if (pins.status == 200) {
    auto doc = json::parse(pins.body, nullptr, false);
    if (!doc.is_discarded())
      for (const auto& pin : doc["pins"])
        if (auto blobs = registry_.image_blobs(pin.value("ref", "")))
          for (const auto& d : *blobs) pinned.insert(d.str());
  }
  json list = json::array();
  for (const auto& [digest, size] : blobs_.list())
    list.push_back({{"digest", digest.str()}, {"size", size}, {"complete", true}, {"bytes_present", size},
                    {"pinned", pinned.count(digest.str()) > 0}});
  for (const auto& partial : mirror_.partial_blobs())
    list.push_back({{"digest", partial.digest}, {"size", partial.size}, {"complete", false},
                    {"bytes_present", partial.present}, {"pinned", pinned.count(partial.digest) > 0}});
  for (const auto& id : blobs_.list_staging()) {
    if (id.rfind("chunks-", 0) == 0 || id.rfind("fetch-", 0) == 0) continue;  // listed above
    auto fd = blobs_.open_staging(id, false);
    struct stat st {};
    if (!fd || ::fstat(fd->get(), &st) != 0) continue;
    list.push_back({{"digest", "upload:" + id}, {"size", nullptr}, {"complete", false},
                    {"bytes_present", static_cast<uint64_t>(st.st_size)}, {"pinned", false}});
  }
  return json_reply(200, json_text(json({{"blobs", list}})));
}

TrafficSample AdminApi::traffic_now() const {
  TrafficSample s;
  s.wall_ms = wall_clock_ms();
  s.from_upstream = mirror_.bytes_from_upstream();
  s.from_peers = traffic_->bytes_fetched.load();
  s.to_clients = metrics_.bytes_out();
  s.to_peers = traffic_->bytes_served.load();
  return s;
}

void AdminApi::sample_traffic() { traffic_history_.add(traffic_now()); }

Reply AdminApi::traffic_history_reply() {
  json samples = json::array();
  for (const auto& s : traffic_history_.samples())
    samples.push_back({{"time_ms", s.wall_ms},
                       {"bytes_from_upstream", s.from_upstream},
                       {"bytes_from_peers", s.from_peers},
                       {"bytes_to_clients", s.to_clients},
                       {"bytes_to_peers", s.to_peers}});
  return json_reply(200, json_text(json({{"period_ms", kTrafficPeriod.count()}, {"samples", samples}})));
}

Reply AdminApi::stats_reply() {
  const TrafficSample counters = traffic_now();
  json doc = {{"bytes_to_clients", counters.to_clients},
              {"bytes_from_clients", metrics_.bytes_in()},
              {"bytes_from_upstream", counters.from_upstream},
              {"bytes_from_peers", counters.from_peers},
              {"bytes_to_peers", counters.to_peers},
              {"storage_free_bytes", blobs_.free_bytes()},
              {"min_free_space", min_free_space_},
              {"storage_full", blobs_.full()},
              {"peers", json::array()}};
  for (const auto& [name, p] : mirror_.peer_stats())
    doc["peers"].push_back(
        {{"name", name}, {"bytes_from", p.bytes_from}, {"bytes_to", p.bytes_to}, {"bad_chunks", p.bad_chunks}});
  return json_reply(200, json_text(doc));
}

}  // namespace ep::http
