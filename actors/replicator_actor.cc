#include "actors/replicator_actor.h"

#include <caf/all.hpp>
#include <deque>

#include "actors/caf_types.h"
#include "base/log.h"
#include "dataplane/replicator.h"

namespace ep::actors {

namespace {

// A round's jobs travel from the pool to the actor as CAF's built-in types:
// five strings per job.
std::vector<std::string> flatten(const std::vector<ReplicationJob>& jobs) {
  std::vector<std::string> out;
  out.reserve(jobs.size() * 5);
  for (const auto& j : jobs) out.insert(out.end(), {j.repo, j.digest, j.ns, j.origin_repo, j.cache_hint ? "1" : ""});
  return out;
}

std::deque<ReplicationJob> unflatten(const std::vector<std::string>& flat) {
  std::deque<ReplicationJob> jobs;
  for (size_t i = 0; i + 5 <= flat.size(); i += 5)
    jobs.push_back({flat[i], flat[i + 1], flat[i + 2], flat[i + 3], !flat[i + 4].empty()});
  return jobs;
}

struct ReplicatorState {
  std::deque<ReplicationJob> queue;  // this round's blobs still to fetch; the first is in hand
  int yields = 0;                    // how often the first yielded in a row
  bool in_round = false;
};

using Self = caf::stateful_actor<ReplicatorState>;

struct Driver {
  Self* self;
  ReplicationWork* work;
  BlockingRunner run;
  ReplicatorTiming timing;

  caf::actor me() const { return caf::actor_cast<caf::actor>(self); }

  void start_round() {
    if (self->state.in_round) return;
    self->state.in_round = true;
    run([work = work, me = me()] {
      std::vector<ReplicationJob> jobs;
      guarded("the replicator", [&] {
        jobs = work->round();
        return Status::Ok();
      });
      caf::anon_send(me, round_atom::value, flatten(jobs));
    });
  }

  // The first queued blob, or housekeeping once the queue is empty.
  void next() {
    auto& st = self->state;
    if (st.queue.empty()) {
      run([work = work, me = me()] {
        guarded("the replicator", [&] {
          work->housekeeping();
          return Status::Ok();
        });
        caf::anon_send(me, rested_atom::value);
      });
      return;
    }
    const bool may_yield = st.yields < timing.max_yields;
    run([work = work, me = me(), job = st.queue.front(), may_yield] {
      auto started = FetchStart::skipped;
      guarded("the replicator", [&] {
        started = work->start_fetch(job, may_yield, [me](bool ok) { caf::anon_send(me, fetched_atom::value, ok); });
        return Status::Ok();
      });
      caf::anon_send(me, started_atom::value, static_cast<int32_t>(started));
    });
  }

  void first_done() {
    auto& st = self->state;
    if (!st.queue.empty()) st.queue.pop_front();
    st.yields = 0;
    next();
  }
};

caf::behavior replicator(Self* self, ReplicationWork* work, BlockingRunner run, ReplicatorTiming timing) {
  Driver d{self, work, std::move(run), timing};
  self->delayed_send(self, timing.round_every, tick_atom::value);
  return {
      [=](tick_atom) mutable { d.start_round(); },
      [=](round_atom, const std::vector<std::string>& jobs) mutable {
        self->state.queue = unflatten(jobs);
        self->state.yields = 0;
        d.next();
      },
      [=](started_atom, int32_t started) mutable {
        switch (static_cast<FetchStart>(started)) {
          case FetchStart::started: break;  // its end arrives as fetched_atom (possibly already did)
          case FetchStart::yielded:
            ++self->state.yields;
            self->delayed_send(self, d.timing.yield_retry, retry_atom::value);
            break;
          case FetchStart::skipped: d.first_done(); break;
        }
      },
      [=](retry_atom) mutable { d.next(); },
      [=](fetched_atom, bool ok) mutable {
        d.work->note_fetched(ok);
        d.first_done();
      },
      [=](rested_atom) {
        self->state.in_round = false;
        self->delayed_send(self, d.timing.round_every, tick_atom::value);
      },
  };
}

}  // namespace

caf::actor spawn_replicator_actor(caf::actor_system& system, ReplicationWork& work, BlockingRunner run_blocking,
                                  ReplicatorTiming timing) {
  return system.spawn(replicator, &work, std::move(run_blocking), timing);
}

}  // namespace ep::actors
