#include "storage/space_guard.h"

#include <sys/statvfs.h>

#include <limits>

#include "base/log.h"

namespace ep {

namespace {
std::string mib(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }
}  // namespace

uint64_t SpaceGuard::free_bytes() const {
  struct statvfs fs {};
  if (::statvfs(dir_.c_str(), &fs) != 0) return std::numeric_limits<uint64_t>::max();
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

Status SpaceGuard::admit(uint64_t bytes) {
  const uint64_t free = free_bytes();
  const bool fits = free >= min_free_ && free - min_free_ >= bytes;
  // "Full" is the disk's state (below min-free-space), not one write's: a
  // write too big for what is left is refused without changing it.
  const bool full = free < min_free_;
  if (full_.exchange(full) != full) {  // the state changed: say so once
    if (!full)
      log_info("storage", "data dir " + dir_ + " has room again (" + mib(free) + " free): writes are accepted");
    else
      log_warning("storage", "data dir " + dir_ + " is full (" + mib(free) + " free, min-free-space " + mib(min_free_) +
                                 "): pushes, pulls of new content and replication are refused until space is freed");
  }
  if (fits) return Status::Ok();
  return Status{Errc::out_of_space, "out of storage space: " + mib(free) + " free on the node, min-free-space is " +
                                        mib(min_free_) + (bytes ? ", this write needs " + mib(bytes) + " more" : "")};
}

Status SpaceGuard::admit_making_room(uint64_t bytes) {
  if (auto s = admit(bytes); s) return s;
  RoomMaker maker;
  {
    std::lock_guard lock(maker_mu_);
    maker = room_maker_;
  }
  const uint64_t free = free_bytes();
  const uint64_t wanted = min_free_ + bytes;
  if (maker && free < wanted) maker(wanted - free);
  return admit(bytes);
}

void SpaceGuard::set_room_maker(RoomMaker maker) {
  std::lock_guard lock(maker_mu_);
  room_maker_ = std::move(maker);
}

bool SpaceGuard::can_make_room() const {
  std::lock_guard lock(maker_mu_);
  return static_cast<bool>(room_maker_);
}

}  // namespace ep
