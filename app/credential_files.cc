// CredentialFiles (see credential_files.h).
#include "app/credential_files.h"

#include <sys/stat.h>

#include "base/log.h"

namespace ep {

Status CredentialFiles::load() {
  auto policy = access_.reload();
  if (!policy) return policy.status();
  on_policy_(access_.fingerprint());
  if (cert_file_.empty()) return Status::Ok();
  tls_stamp_ = tls_stamp();
  return server_.use_tls(cert_file_, key_file_);
}

void CredentialFiles::check() {
  if (!access_.has_files() && cert_file_.empty()) return;  // nothing to re-read: no wakeups
  if (checking_.exchange(true)) return;  // the last check is still reading
  if (!pool_.post([this] {
        reload();
        checking_ = false;
      }))
    checking_ = false;  // the node is stopping
}

void CredentialFiles::reload() {
  auto changed = access_.reload();
  if (!changed) {
    if (changed.status().message != last_access_error_)
      log_error("access", changed.status().message + "; the users and rules in force stay");
    last_access_error_ = changed.status().message;
  } else if (*changed) {
    last_access_error_.clear();
    log_info("access", "users and access rules reloaded (fingerprint " + access_.fingerprint() + ")");
    on_policy_(access_.fingerprint());
  }
  if (cert_file_.empty()) return;
  auto stamp = tls_stamp();
  if (stamp == tls_stamp_) return;
  if (auto s = server_.use_tls(cert_file_, key_file_); !s) {
    if (s.message != last_tls_error_) log_error("tls", s.message + "; the certificate in force stays");
    last_tls_error_ = s.message;
    return;  // the pair may be half written: tried again at the next check
  }
  tls_stamp_ = stamp;
  last_tls_error_.clear();
  log_info("tls", "certificate reloaded from " + cert_file_);
}

std::string CredentialFiles::tls_stamp() const {
  std::string stamp;
  for (const auto* path : {&cert_file_, &key_file_}) {
    struct stat st {};
    if (::stat(path->c_str(), &st) != 0) return "";
    stamp += std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + "/" +
             std::to_string(st.st_size) + "/" + std::to_string(st.st_ino) + ";";
  }
  return stamp;
}

}  // namespace ep
