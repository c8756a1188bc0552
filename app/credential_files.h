// CredentialFiles: keeps the registry's access policy and TLS certificate
// in step with their files (htpasswd-file, access-file, tls-cert-file,
// tls-key-file), so an operator edits a file and never restarts a node.
//
// check() is called by a timer on the I/O pool; the reading and parsing run
// on the blocking pool, one check at a time (a check still running makes
// the next one a no-op), so the stamps below are only touched by that one
// job. A file that no longer parses keeps what is in force, and the log
// says why once per change. `on_policy` hears the new access fingerprint.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "access/access_control.h"
#include "base/blocking_pool.h"
#include "http/server.h"

namespace ep {

class CredentialFiles {
 public:
  CredentialFiles(access::AccessControl& access, http::Server& server, BlockingPool& pool, std::string cert_file,
                  std::string key_file, std::function<void(const std::string&)> on_policy)
      : access_(access), server_(server), pool_(pool), cert_file_(std::move(cert_file)),
        key_file_(std::move(key_file)), on_policy_(std::move(on_policy)) {}

  // At start: loads both; an error is the node's start error.
  Status load();
  void check();

 private:
  void reload();
  // Modification time, size and inode of the TLS files ("" when missing).
  std::string tls_stamp() const;

  access::AccessControl& access_;
  http::Server& server_;
  BlockingPool& pool_;
  std::string cert_file_, key_file_;
  std::function<void(const std::string&)> on_policy_;
  std::atomic<bool> checking_{false};
  std::string tls_stamp_;           // of the files in force
  std::string last_access_error_;   // said once
  std::string last_tls_error_;
};

}  // namespace ep
