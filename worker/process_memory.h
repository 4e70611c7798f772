// What this process holds in memory, from /proc (Linux): the resident set, and how many bytes of
// a checkpoint's files are mapped. The worker logs both after loading, so an operator can see
// that a shard maps and keeps only its experts.
#pragma once

#include <cstdint>
#include <string>

namespace kubemoe::worker {

// VmRSS from /proc/self/status in bytes; -1 when it cannot be read.
int64_t ResidentBytes();

// Total size of the mappings in /proc/self/maps of files under directory `dir` (a path prefix,
// compared after resolving symlinks); -1 when the maps cannot be read.
int64_t MappedFileBytes(const std::string& dir);

}  // namespace kubemoe::worker
