#include "base/process_name.h"

#include <sys/prctl.h>

#include <cstring>

namespace c10m {

void name_process(const char* argv0) {
  if (argv0 == nullptr || *argv0 == '\0') return;
  const char* slash = std::strrchr(argv0, '/');
  ::prctl(PR_SET_NAME, slash != nullptr ? slash + 1 : argv0, 0, 0, 0);
}

}  // namespace c10m
