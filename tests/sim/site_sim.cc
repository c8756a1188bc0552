// site_sim: runs the deterministic site simulation and reports how long the
// index and membership take to converge.
//   site_sim [--nodes N] [--seed S] [--drop P] [--ops K]
// Phases: join; K random operations under message loss with a partition of
// the site in two halves and a crashed node; heal and restart; measure
// virtual time and anti-entropy rounds until every live node agrees.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "simulation.h"

int main(int argc, char** argv) {
  ep::sim::SimOptions options;
  size_t ops = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--nodes") options.nodes = std::stoul(argv[i + 1]);
    else if (flag == "--seed") options.seed = std::stoull(argv[i + 1]);
    else if (flag == "--drop") options.drop = std::stod(argv[i + 1]);
    else if (flag == "--ops") ops = std::stoul(argv[i + 1]);
    else { std::fprintf(stderr, "usage: site_sim [--nodes N] [--seed S] [--drop P] [--ops K]\n"); return 2; }
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
  uint64_t rounds_before = 0;
  for (size_t i = 0; i < sim.size(); ++i) rounds_before += sim.core(i).anti_entropy_rounds();
  auto heal = sim.run_until_converged(120000);
  uint64_t rounds_after = 0;
  for (size_t i = 0; i < sim.size(); ++i) rounds_after += sim.core(i).anti_entropy_rounds();
  double per_node = static_cast<double>(rounds_after - rounds_before) / static_cast<double>(sim.size());
  std::printf("after partition+crash+%zu ops, heal: %s ms, %.1f anti-entropy rounds per node, %llu messages total\n",
              ops, heal ? std::to_string(*heal).c_str() : "did not converge", per_node,
              static_cast<unsigned long long>(sim.messages()));
  std::printf("index entries: %zu; wall time %.1f s\n", sim.core(0).index().size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count());
  return join && heal ? 0 : 1;
}
