// site_sim: runs the deterministic site simulation and reports how long the
// index and membership take to converge, and what writes cost the network.
//   site_sim [--nodes N] [--seed S] [--drop P] [--ops K] [--keys K] [--writes W] [--rate R] [--blobs B]
// Phases: join; K random operations under message loss with a partition of
// the site in two halves and a crashed node; heal and restart; measure
// virtual time and anti-entropy rounds until every live node agrees. Then,
// with --writes: --keys tags written at node 0 and converged (an index of
// that size), and W tag writes at random nodes, R per second of virtual
// time: messages and bytes per write, and the time to converge after the
// last one. With --blobs: B blobs stored at random nodes, 100 per second:
// holdings messages and bytes per stored blob, and whether every peer's
// copy of the storer's holdings filter contains each one.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "simulation.h"

namespace {

uint64_t total_rounds(ep::sim::Simulation& sim) {
  uint64_t rounds = 0;
  for (size_t i = 0; i < sim.size(); ++i) rounds += sim.core(i).anti_entropy_rounds();
  return rounds;
}

ep::wire::Manifest manifest_for(size_t n) {
  ep::wire::Manifest m;
  m.set_digest("sha256:" + std::string(58, '0') + std::to_string(1000000 + n));
  m.set_media_type("application/vnd.oci.image.manifest.v1+json");
  m.set_body("{}");
  return m;
}

// Steady writes on an index of `keys` tags: what each write costs.
bool measure_writes(ep::sim::Simulation& sim, size_t keys, size_t writes, double rate) {
  for (size_t k = 0; k < keys; ++k) sim.put_tag(0, ep::crdt::TagKey{"", "ci/app", "b" + std::to_string(k)}, manifest_for(k));
  auto loaded = sim.run_until_converged(600000);
  std::printf("index of %zu tags: converged %s ms after the writes\n", keys,
              loaded ? std::to_string(*loaded).c_str() : "never");
  const uint64_t messages = sim.messages(), bytes = sim.bytes(), rounds = total_rounds(sim);
  const uint64_t step = static_cast<uint64_t>(1000.0 / rate);
  for (size_t w = 0; w < writes; ++w) {
    sim.put_tag(w % sim.size(), ep::crdt::TagKey{"", "ci/app", "w" + std::to_string(w)}, manifest_for(keys + w));
    sim.run_for(step);
  }
  auto settled = sim.run_until_converged(600000);
  const double per_write = 1.0 / static_cast<double>(writes);
  std::printf("%zu writes at %.0f/s: %.1f messages and %.0f bytes per write, %.2f anti-entropy rounds per node and "
              "write, converged %s ms after the last\n",
              writes, rate, static_cast<double>(sim.messages() - messages) * per_write,
              static_cast<double>(sim.bytes() - bytes) * per_write,
              static_cast<double>(total_rounds(sim) - rounds) * per_write / static_cast<double>(sim.size()),
              settled ? std::to_string(*settled).c_str() : "never");
  return loaded && settled;
}

// Blobs stored at random nodes: what announcing them costs, and whether every
// live peer's copy of the storer's filter has them.
bool measure_holdings(ep::sim::Simulation& sim, size_t blobs) {
  std::mt19937_64 rng(7);
  std::vector<std::pair<size_t, uint64_t>> stored;
  const uint64_t messages = sim.holdings_messages(), bytes = sim.holdings_bytes();
  for (size_t b = 0; b < blobs; ++b) {
    stored.emplace_back(rng() % sim.size(), rng());
    sim.store_blob(stored.back().first, stored.back().second);
    sim.run_for(10);
  }
  sim.run_for(2000);
  const double per_blob = 1.0 / static_cast<double>(blobs);
  size_t missing = 0;
  for (const auto& [at, key] : stored)
    for (size_t i = 0; i < sim.size(); ++i) {
      auto filter = i == at ? nullptr : sim.core(i).holdings_of(sim.core(at).self().name());
      missing += i != at && (!filter || !filter->may_hold(key));
    }
  std::printf("%zu blobs stored: %.1f holdings messages and %.0f bytes per blob, %zu of %zu peer filters lack one\n",
              blobs, static_cast<double>(sim.holdings_messages() - messages) * per_blob,
              static_cast<double>(sim.holdings_bytes() - bytes) * per_blob, missing, blobs * (sim.size() - 1));
  return missing == 0;
}

}  // namespace

int main(int argc, char** argv) {
  ep::sim::SimOptions options;
  size_t ops = 200, keys = 0, writes = 0, blobs = 0;
  double rate = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--nodes") options.nodes = std::stoul(argv[i + 1]);
    else if (flag == "--seed") options.seed = std::stoull(argv[i + 1]);
    else if (flag == "--drop") options.drop = std::stod(argv[i + 1]);
    else if (flag == "--ops") ops = std::stoul(argv[i + 1]);
    else if (flag == "--keys") keys = std::stoul(argv[i + 1]);
    else if (flag == "--writes") writes = std::stoul(argv[i + 1]);
    else if (flag == "--rate") rate = std::stod(argv[i + 1]);
    else if (flag == "--blobs") blobs = std::stoul(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: site_sim [--nodes N] [--seed S] [--drop P] [--ops K] [--keys K] [--writes W] "
                           "[--rate R] [--blobs B]\n");
      return 2;
    }
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress survives a timeout
  auto wall = std::chrono::steady_clock::now();
  ep::sim::Simulation sim(options);
  auto join = sim.run_until_converged(120000);
  std::printf("nodes=%zu seed=%llu drop=%.2f\n", sim.size(), static_cast<unsigned long long>(options.seed), options.drop);
  std::printf("join: %s ms\n", join ? std::to_string(*join).c_str() : "did not converge");

  std::vector<int> halves(sim.size());
  for (size_t i = 0; i < sim.size(); ++i) halves[i] = i < sim.size() / 2 ? 0 : 1;
  sim.partition(halves);
  sim.crash(sim.size() - 1);
  for (size_t k = 0; k < ops; ++k) {
    sim.random_operation();
    sim.run_for(10);
  }
  sim.heal();
  sim.set_drop(0);
  sim.restart(sim.size() - 1);
  uint64_t rounds_before = total_rounds(sim);
  auto heal = sim.run_until_converged(120000);
  double per_node = static_cast<double>(total_rounds(sim) - rounds_before) / static_cast<double>(sim.size());
  std::printf("after partition+crash+%zu ops, heal: %s ms, %.1f anti-entropy rounds per node, %llu messages total\n",
              ops, heal ? std::to_string(*heal).c_str() : "did not converge", per_node,
              static_cast<unsigned long long>(sim.messages()));
  bool steady = writes == 0 || measure_writes(sim, keys, writes, rate);
  bool announced = blobs == 0 || measure_holdings(sim, blobs);
  std::printf("index entries: %zu; wall time %.1f s\n", sim.core(0).index().size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count());
  return join && heal && steady && announced ? 0 : 1;
}
