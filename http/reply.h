// Reply: what an API handler answers, before the server serializes it.
//
// Either a small in-memory body or a byte range of an open blob file (sent
// with sendfile, never copied through user space). For HEAD the server sends
// the headers of the equivalent GET and no body.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/inflight_blob.h"
#include "storage/blob_store.h"

namespace ep::http {

struct FileRange {
  OpenBlob blob;
  uint64_t offset = 0;
  uint64_t length = 0;
  // Set while the blob is still arriving from upstream: send only what it
  // says is readable, and wait for more.
  std::shared_ptr<InflightBlob> growing;
};

struct Reply {
  unsigned status = 200;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<FileRange> file;
  std::optional<uint64_t> head_length;  // HEAD: Content-Length to announce
  bool close = false;                   // close the connection afterwards

  Reply& header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
};

}  // namespace ep::http
