#pragma once
// A tiny blocking HTTP/1.0 GET for tests and tools that talk to the admin port (so they
// need not include cpp-httplib, whose ABI depends on build-specific defines). Not for
// production use: no redirects, no chunked encoding (HTTP/1.0 answers are not chunked).
#include <cstdint>
#include <string>

namespace c10m::admin {

struct HttpResponse {
  int status = 0;  // 0 = no answer (see error)
  std::string content_type;
  std::string body;
  std::string error;
};

/// GET http://host:port/path, waiting at most `timeout_ms` for each read and write.
HttpResponse http_get(const std::string& host, uint16_t port, const std::string& path,
                      int timeout_ms = 5000);

}  // namespace c10m::admin
