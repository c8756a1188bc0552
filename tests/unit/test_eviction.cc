// Eviction order under storage-budget (dataplane/eviction_plan.h).
#include <catch2/catch.hpp>

#include "dataplane/eviction_plan.h"

using namespace ep;

namespace {
PinnedImage image(const std::string& ref, bool explicit_pin, uint64_t last_used, std::vector<std::string> blobs,
                  bool mirrored = true) {
  crdt::PinView pin;
  pin.ref = ref;
  pin.explicit_pin = explicit_pin;
  pin.last_used_ms = last_used;
  return {pin, std::move(blobs), mirrored};
}
}  // namespace

TEST_CASE("eviction: unpinned by last read, then auto-pinned by last use; explicit never") {
  std::vector<StoredBlob> stored = {{"u-old", 10, 1},   {"u-new", 10, 9},  {"a-old", 10, 50},
                                    {"a-new", 10, 0},   {"e", 10, 0},      {"shared", 10, 0}};
  std::vector<PinnedImage> pins = {image("old:1", false, 100, {"a-old"}), image("new:1", false, 900, {"a-new"}),
                                   image("keep:1", true, 1, {"e", "shared"}), image("auto:1", false, 5, {"shared"})};
  SECTION("only as much as needed") {
    auto plan = plan_eviction(stored, pins, 60, 45);
    CHECK(plan.evict == std::vector<std::string>{"u-old", "u-new"});
    CHECK_FALSE(plan.over_budget);
    CHECK(plan.kept_bytes == 20);
  }
  SECTION("auto-pinned blobs go oldest use first, after every unpinned one") {
    auto plan = plan_eviction(stored, pins, 60, 25);
    CHECK(plan.evict == std::vector<std::string>{"u-old", "u-new", "a-old", "a-new"});
    CHECK_FALSE(plan.over_budget);
  }
  SECTION("explicit pins over the budget are kept and reported") {
    auto plan = plan_eviction(stored, pins, 60, 15);
    CHECK(plan.evict.size() == 4);  // everything but the explicit pin's two blobs
    CHECK(plan.over_budget);
  }
  SECTION("within the budget, or no budget: nothing") {
    CHECK(plan_eviction(stored, pins, 60, 60).evict.empty());
    CHECK(plan_eviction(stored, pins, 60, 0).evict.empty());
    CHECK_FALSE(plan_eviction(stored, pins, 60, 0).over_budget);
  }
}

TEST_CASE("eviction: a pinned pushed image is kept (no upstream gives it back)") {
  std::vector<StoredBlob> stored = {{"pushed", 10, 0}, {"mirrored", 10, 0}, {"loose", 10, 0}};
  std::vector<PinnedImage> pins = {image("team/app:v1", false, 1, {"pushed"}, /*mirrored=*/false),
                                   image("docker.io/library/x:1", false, 1, {"mirrored"})};
  auto plan = plan_eviction(stored, pins, 30, 5);
  CHECK(plan.evict == std::vector<std::string>{"loose", "mirrored"});
  CHECK(plan.kept_bytes == 10);
  CHECK(plan.over_budget);
}
