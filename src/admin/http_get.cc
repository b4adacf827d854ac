#include "admin/http_get.h"

#include <strings.h>

#include <cstring>

#include "sys/socket.h"

namespace c10m::admin {

HttpResponse http_get(const std::string& host, uint16_t port, const std::string& path,
                      int timeout_ms) {
  HttpResponse r;
  const auto dest = sys::parse_ipv4_endpoint(host + ":" + std::to_string(port));
  if (!dest) {
    r.error = "bad host " + host;
    return r;
  }
  const int raw = sys::connect_tcp(*dest, nullptr, /*nonblocking=*/false);
  if (raw < 0) {
    r.error = std::string("connect: ") + std::strerror(-raw);
    return r;
  }
  sys::Fd fd(raw);
  const int64_t ns = int64_t{timeout_ms} * 1000000;
  sys::set_io_timeouts(fd.get(), ns, ns);
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + host + "\r\n\r\n";
  size_t sent = 0;
  while (sent < req.size()) {
    const ssize_t n = sys::write_some(fd.get(), req.data() + sent, req.size() - sent);
    if (n <= 0) {
      r.error = "write failed";
      return r;
    }
    sent += static_cast<size_t>(n);
  }
  std::string all;
  char buf[16384];
  for (;;) {
    const ssize_t n = sys::read_some(fd.get(), buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      r.error = std::string("read: ") + std::strerror(static_cast<int>(-n));
      return r;
    }
    all.append(buf, static_cast<size_t>(n));
  }
  const size_t head_end = all.find("\r\n\r\n");
  if (all.compare(0, 5, "HTTP/") != 0 || head_end == std::string::npos) {
    r.error = "malformed response";
    return r;
  }
  const size_t sp = all.find(' ');
  r.status = std::atoi(all.c_str() + sp + 1);
  size_t line = all.find("\r\n") + 2;
  while (line < head_end) {
    const size_t eol = all.find("\r\n", line);
    const std::string h = all.substr(line, eol - line);
    if (strncasecmp(h.c_str(), "content-type:", 13) == 0) {
      size_t v = 13;
      while (v < h.size() && h[v] == ' ') ++v;
      r.content_type = h.substr(v);
    }
    line = eol + 2;
  }
  r.body = all.substr(head_end + 4);
  return r;
}

}  // namespace c10m::admin
