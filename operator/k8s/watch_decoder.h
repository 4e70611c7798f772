// Decoding of a watch response body: newline-delimited JSON WatchEvents
// ({"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}), one per line.
//
// The body arrives in arbitrary pieces; LineSplitter reassembles lines and DecodeWatchEvent
// turns one line into a typed event. Both are pure and never throw (fuzzed by
// tests/fuzz/watch_event_fuzz.cc).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "common/status.h"
#include "operator/k8s/api_error.h"

namespace kubemoe::k8s {

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };
const char* WatchEventTypeName(WatchEventType type);

struct WatchEvent {
  WatchEventType type = WatchEventType::kAdded;
  // The object (ADDED/MODIFIED/DELETED: the object; BOOKMARK: an object with only
  // metadata.resourceVersion). Never null for those types; null for ERROR.
  std::shared_ptr<const nlohmann::json> object;
  // metadata.resourceVersion of the object ("" when absent).
  std::string resource_version;
  // For ERROR events: the metav1.Status carried by the event (410 Gone when the watch's
  // resourceVersion is too old).
  ApiError error;
};

// Decodes one line (without its '\n'; a trailing '\r' and surrounding blanks are ignored).
// InvalidArgument naming what is wrong when the line is not a JSON object with a known "type"
// and an object-valued "object".
StatusOr<WatchEvent> DecodeWatchEvent(std::string_view line);

// Reassembles lines from body pieces. A line longer than `max_line_bytes` is an error (a bound
// on memory for a misbehaving server).
class LineSplitter {
 public:
  explicit LineSplitter(size_t max_line_bytes = 64u << 20) : max_line_bytes_(max_line_bytes) {}

  // Appends a piece. Fails (OutOfRange) once the unfinished line exceeds the bound.
  Status Append(std::string_view piece);
  // Moves the next complete line (without '\n') into *line; false when none is complete.
  // Empty lines are skipped.
  bool Next(std::string* line);
  // Bytes of the unfinished last line (a stream that ends with these bytes was cut short).
  size_t pending_bytes() const { return buffer_.size() - start_; }

 private:
  size_t max_line_bytes_;
  std::string buffer_;
  size_t start_ = 0;  // where the first unconsumed byte is
};

}  // namespace kubemoe::k8s
