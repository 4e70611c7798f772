#include "worker/process_memory.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace kubemoe::worker {

int64_t ResidentBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    std::istringstream fields(line.substr(6));
    int64_t kib = -1;
    fields >> kib;  // "VmRSS:   123456 kB"
    return kib < 0 ? -1 : kib * 1024;
  }
  return -1;
}

int64_t MappedFileBytes(const std::string& dir) {
  std::error_code ec;
  std::string prefix = std::filesystem::weakly_canonical(dir, ec).string();
  if (ec) prefix = dir;
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  std::ifstream in("/proc/self/maps");
  if (!in) return -1;
  int64_t total = 0;
  std::string line;
  // "start-end perms offset dev inode   path"
  while (std::getline(in, line)) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos || line.compare(slash, prefix.size(), prefix) != 0) continue;
    uint64_t start = 0, end = 0;
    char dash = 0;
    std::istringstream range(line);
    range >> std::hex >> start >> dash >> end;
    if (dash == '-' && end > start) total += static_cast<int64_t>(end - start);
  }
  return total;
}

}  // namespace kubemoe::worker
