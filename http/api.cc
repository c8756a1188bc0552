// Api dispatch, discovery endpoints and manifests. Blobs/uploads: api_blobs.cc.
#include "http/api.h"

#include <charconv>
#include <nlohmann/json.hpp>

#include "http/oci_errors.h"
#include "http/route_check.h"
#include "registry/manifest.h"
#include "base/json_text.h"

namespace ep::http {

namespace verb = boost::beast::http;
using boost::beast::http::field;

Handling answer(Reply reply) {
  Handling h;
  h.reply = std::move(reply);
  return h;
}

Handling fail(const Status& status) { return answer(error_reply(status)); }

Reply empty_reply(unsigned status) {
  Reply r;
  r.status = status;
  return r;
}

namespace {

Status method_not_allowed() { return Status{Errc::method_not_allowed, "method not allowed on this endpoint"}; }

Result<long> parse_n(const Route& route) {
  if (!route.has("n")) return -1L;
  auto text = route.param("n");
  long n = -1;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || ptr != text.data() + text.size() || n < 0)
    return Status{Errc::bad_request, "n must be a non-negative integer"};
  return n;
}

void add_next_link(Reply& reply, const std::string& path, long n, const std::string& last) {
  reply.header("Link", "<" + path + "?n=" + std::to_string(n) + "&last=" + url_encode(last) + ">; rel=\"next\"");
}

}  // namespace

Reply json_reply(std::string body) {
  Reply r;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

Handling Api::begin(const Route& route, const RequestHead& head, const access::Identity& who,
                    const access::Caller& caller) {
  Handling h = audited(dispatch(route, head, who), route, head, who, caller);
  // Mirror requests echo their namespace on every answer (when it is a
  // host name: anything else could split the header).
  auto ns = route.param("ns");
  if (!is_registry_host(ns)) return h;
  return on_reply(std::move(h), [ns](Reply r) {
    r.header("OCI-Namespace", ns);
    return r;
  });
}

Handling on_reply(Handling h, std::function<Reply(Reply)> step) {
  if (h.reply) h.reply = step(std::move(*h.reply));
  if (h.finish)
    h.finish = [step, inner = std::move(h.finish)](std::string body, std::unique_ptr<UploadAppender> a) {
      return step(inner(std::move(body), std::move(a)));
    };
  if (h.deferred) h.deferred = [step, inner = std::move(h.deferred)] { return step(inner()); };
  if (h.answers_later)
    h.answers_later = [step, inner = std::move(h.answers_later)](std::function<void(Reply)> send) {
      inner([step, send](Reply r) { send(step(std::move(r))); });
    };
  if (h.finish_later)
    h.finish_later = [step, inner = std::move(h.finish_later)](std::string body, std::function<void(Reply)> send) {
      inner(std::move(body), [step, send](Reply r) { send(step(std::move(r))); });
    };
  return h;
}

Upstream* Api::upstream_for(const Route& route) const {
  if (!mirror_) return nullptr;
  return mirror_->upstream_for(route.param("ns"));
}

Reply manifest_reply(StoredManifest m) {
  Reply r;
  r.content_type = m.media_type;
  r.header("Docker-Content-Digest", m.digest.str());
  r.header("ETag", "\"" + m.digest.str() + "\"");
  r.body = std::move(m.body);
  return r;
}

Handling Api::dispatch(const Route& route, const RequestHead& head, const access::Identity& who) {
  const auto method = head.method();
  const bool read = method == verb::verb::get || method == verb::verb::head;
  const bool repository_route = route.kind == RouteKind::manifest || route.kind == RouteKind::blob ||
                                route.kind == RouteKind::upload_start || route.kind == RouteKind::upload;
  const RouteUse use = read ? RouteUse::read : method == verb::verb::delete_ ? RouteUse::remove : RouteUse::write;
  if (auto s = check_route(route, use); !s) return fail(s);
  // A mirror's cache is written only by the mirror: a push there would
  // shadow the upstream for every ?ns= client.
  if (repository_route && !read && mirror_)
    if (const auto* owner = mirror_->cache_owner(route.name))
      return fail(Status{Errc::denied, "repository " + route.name + " is the pull-through cache of upstream " +
                                           owner->describe() + "; push to another repository name"});
  switch (route.kind) {
    case RouteKind::base:
      if (!read) return fail(method_not_allowed());
      return answer(json_reply("{}"));
    case RouteKind::healthz:
      return answer(json_reply("{\"status\":\"ok\"}"));
    case RouteKind::readyz:
      // Ready while reads work; a full disk only stops writes, and says so.
      return answer(json_reply(blobs_.full() ? "{\"status\":\"ready\",\"storage\":\"full\"}"
                                             : "{\"status\":\"ready\",\"storage\":\"ok\"}"));
    case RouteKind::metrics: {
      Reply r;
      r.content_type = "text/plain; version=0.0.4";
      r.body = metrics_.render(blobs_.used_bytes());
      if (extra_metrics_) r.body += extra_metrics_();
      return answer(std::move(r));
    }
    case RouteKind::catalog:
      if (!read) return fail(method_not_allowed());
      return answer(catalog(route, who));
    case RouteKind::token:
      if (!read) return fail(method_not_allowed());
      return answer(token(route, who));
    case RouteKind::tags:
      if (!read) return fail(method_not_allowed());
      return answer(tags(route));
    case RouteKind::referrers:
      if (!read) return fail(method_not_allowed());
      return answer(referrers(route));
    case RouteKind::manifest:
      return manifests(route, head, who.display());
    case RouteKind::blob:
      return blobs(route, head);
    case RouteKind::upload_start:
      return upload_start(route, head);
    case RouteKind::upload:
      return upload(route, head);
    case RouteKind::unknown:
    case RouteKind::count_:
      break;
  }
  return fail(Status{Errc::not_found, "no such endpoint"});
}

// Lists the repositories the caller may pull (a page may come out shorter
// than n; its Link still points past the last repository looked at).
Reply Api::catalog(const Route& route, const access::Identity& who) {
  auto n = parse_n(route);
  if (!n) return error_reply(n.status());
  auto page = registry_.catalog(*n, route.param("last"));
  if (!page) return error_reply(page.status());
  access::Identity user = who;
  user.has_token = false;  // a token proves who; the catalog shows what that user may pull
  std::vector<std::string> visible;
  for (const auto& repository : page->items)
    if (access_.rights(user, repository) & access::kPull) visible.push_back(repository);
  auto reply = json_reply(json_text(nlohmann::json({{"repositories", visible}})));
  if (page->more) add_next_link(reply, "/v2/_catalog", *n, page->items.back());
  return reply;
}

Reply Api::tags(const Route& route) {
  auto n = parse_n(route);
  if (!n) return error_reply(n.status());
  // Mirror requests list the tags this node has cached for that upstream.
  std::string repo = route.name;
  if (Upstream* upstream = upstream_for(route); upstream && route.has("ns")) repo = mirror_->mirror_repo(*upstream, route.name);
  auto page = registry_.list_tags(repo, *n, route.param("last"));
  if (!page) return error_reply(page.status());
  auto reply = json_reply(json_text(nlohmann::json({{"name", route.name}, {"tags", page->items}})));
  if (page->more) add_next_link(reply, "/v2/" + route.name + "/tags/list", *n, page->items.back());
  return reply;
}

Reply Api::referrers(const Route& route) {
  auto filter = route.param("artifactType");
  auto index = registry_.referrers(route.name, route.reference, filter);
  if (!index) return error_reply(index.status());
  auto reply = json_reply(std::move(*index));
  reply.content_type = "application/vnd.oci.image.index.v1+json";
  if (!filter.empty()) reply.header("OCI-Filters-Applied", "artifactType");
  return reply;
}

Handling Api::manifests(const Route& route, const RequestHead& head, const std::string& writer) {
  switch (head.method()) {
    case verb::verb::get:
    case verb::verb::head: {
      // An explicit ?ns= of a configured upstream reads the mirror; without
      // one, local (pushed) content first, then the default upstream.
      Upstream* upstream = upstream_for(route);
      if (!(upstream && route.has("ns"))) {
        auto m = registry_.get_manifest(route.name, route.reference);
        if (m) {
          registry_.note_pull(route.name, route.reference);
          return answer(manifest_reply(std::move(*m)));
        }
        bool miss = m.status().code == Errc::manifest_unknown || m.status().code == Errc::name_unknown;
        if (!upstream || !miss) return fail(m.status());
      }
      Handling h;
      h.answers_later = [this, upstream, route](std::function<void(Reply)> send) {
        mirror_->manifest_async(*upstream, route.name, route.reference, [this, upstream, route, send](Result<StoredManifest> m) {
          if (!m) return send(error_reply(m.status()));
          registry_.note_pull(mirror_repository(upstream->ns(), route.name), route.reference);
          send(manifest_reply(std::move(*m)));
        });
      };
      return h;
    }
    case verb::verb::put: {
      if (auto len = head.find(field::content_length); len != head.end()) {
        uint64_t declared = 0;
        auto v = len->value();
        std::from_chars(v.data(), v.data() + v.size(), declared);
        if (declared > kMaxManifestBytes) {
          auto r = error_reply(Status{Errc::too_large, "manifest exceeds the 4 MiB limit"});
          r.close = true;
          return answer(std::move(r));
        }
        // A manifest is small, but its database write must not be the one that fills the disk.
        if (auto s = blobs_.admit(declared); !s) return fail(s);
      }
      Handling h;
      h.mode = BodyMode::buffer;
      h.buffer_limit = kMaxManifestBytes;
      h.finish_waits = true;  // a database write and the site's index
      std::string content_type(head[field::content_type]);
      h.finish = [this, route, content_type, writer](std::string body, std::unique_ptr<UploadAppender>) {
        auto put = registry_.put_manifest(route.name, route.reference, content_type, body, writer);
        if (!put) return error_reply(put.status());
        Reply r = empty_reply(201);
        r.header("Location", "/v2/" + route.name + "/manifests/" + put->digest.str());
        r.header("Docker-Content-Digest", put->digest.str());
        if (put->subject) r.header("OCI-Subject", put->subject->str());
        return r;
      };
      return h;
    }
    case verb::verb::delete_: {
      auto s = registry_.delete_manifest(route.name, route.reference, writer);
      if (!s) return fail(s);
      return answer(empty_reply(202));
    }
    default:
      return fail(method_not_allowed());
  }
}

}  // namespace ep::http
