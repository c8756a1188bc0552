#include "dataplane/garbage.h"

#include "base/clock.h"
#include "base/log.h"

namespace ep {

namespace {
std::string minutes(uint64_t ms) { return ms < 60000 ? std::to_string(ms / 1000) + "s" : std::to_string(ms / 60000) + "min"; }
}  // namespace

Result<GarbageCollector::Report> GarbageCollector::collect(bool remove) {
  std::lock_guard lock(mu_);
  Report report;
  const uint64_t now = wall_clock_ms();
  if (auto s = collect_blobs(remove, now, report); !s) return s;
  if (auto s = collect_uploads(remove, now, report); !s) return s;
  if (report.removed)
    log_info("gc", "removed " + std::to_string(report.removed) + " unreferenced blobs and abandoned uploads (" +
                       std::to_string(report.due_bytes) + " bytes)");
  return report;
}

Status GarbageCollector::collect_blobs(bool remove, uint64_t now, Report& report) {
  // The references first: a manifest stored after this scan lists blobs that
  // are either new (within the grace) or were read by its push (HEAD).
  auto referenced = registry_.referenced_blobs();
  if (!referenced) return referenced.status();
  const auto reads = registry_.blob_access();
  const uint64_t steady_now = steady_clock_ms();
  std::map<std::string, uint64_t> still_unreferenced;
  for (const auto& [digest, size] : blobs_.list()) {
    const std::string d = digest.str();
    if (referenced->count(d)) continue;
    auto since = unreferenced_since_.find(d);
    uint64_t first = since == unreferenced_since_.end() ? now : since->second;
    if (auto read = reads.find(d); read != reads.end() && steady_now - read->second < grace_ms_)
      first = std::max(first, now - (steady_now - read->second));  // a read restarts the grace
    still_unreferenced[d] = first;
    Item item{"blob", d, size, "no manifest lists it (unreferenced for " + minutes(now - first) + ")",
              now - first >= grace_ms_};
    if (item.due) {
      report.due_bytes += size;
      if (remove && blobs_.remove(digest)) {
        ++report.removed;
        still_unreferenced.erase(d);
      }
    }
    report.items.push_back(std::move(item));
  }
  unreferenced_since_ = std::move(still_unreferenced);  // forgets blobs referenced again or gone
  return Status::Ok();
}

Status GarbageCollector::collect_uploads(bool remove, uint64_t now, Report& report) {
  auto sessions = uploads_.sessions();
  if (!sessions) return sessions.status();
  for (const auto& session : *sessions) {
    const uint64_t idle = now / 1000 > session.updated_s ? now - session.updated_s * 1000 : 0;
    if (idle < grace_ms_) continue;
    Item item{"upload", session.id, session.offset,
              "upload to " + session.repo + " with no write for " + minutes(idle), true};
    report.due_bytes += session.offset;
    // A session a request is writing to right now is busy: cancel refuses it.
    if (remove && uploads_.cancel(session.repo, session.id)) ++report.removed;
    report.items.push_back(std::move(item));
  }
  return Status::Ok();
}

}  // namespace ep
