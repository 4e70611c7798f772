#include "operator/k8s/watch_decoder.h"

#include <nlohmann/json.hpp>

namespace kubemoe::k8s {

const char* WatchEventTypeName(WatchEventType type) {
  switch (type) {
    case WatchEventType::kAdded: return "ADDED";
    case WatchEventType::kModified: return "MODIFIED";
    case WatchEventType::kDeleted: return "DELETED";
    case WatchEventType::kBookmark: return "BOOKMARK";
    case WatchEventType::kError: return "ERROR";
  }
  return "?";
}

StatusOr<WatchEvent> DecodeWatchEvent(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
    line.remove_suffix(1);
  }
  nlohmann::json parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return InvalidArgument("watch event is not valid JSON");
  if (!parsed.is_object()) return InvalidArgument("watch event is not a JSON object");
  auto type_it = parsed.find("type");
  if (type_it == parsed.end() || !type_it->is_string()) {
    return InvalidArgument("watch event has no string field \"type\"");
  }
  const std::string& type = type_it->get_ref<const std::string&>();
  WatchEvent event;
  if (type == "ADDED") {
    event.type = WatchEventType::kAdded;
  } else if (type == "MODIFIED") {
    event.type = WatchEventType::kModified;
  } else if (type == "DELETED") {
    event.type = WatchEventType::kDeleted;
  } else if (type == "BOOKMARK") {
    event.type = WatchEventType::kBookmark;
  } else if (type == "ERROR") {
    event.type = WatchEventType::kError;
  } else {
    return InvalidArgument("watch event has unknown type \"" + type.substr(0, 64) + "\"");
  }
  auto object_it = parsed.find("object");
  if (object_it == parsed.end() || !object_it->is_object()) {
    return InvalidArgument(std::string("watch event ") + WatchEventTypeName(event.type) +
                           " has no object-valued field \"object\"");
  }
  if (event.type == WatchEventType::kError) {
    event.error = ApiError::FromStatusObject(*object_it);
    return event;
  }
  auto meta = object_it->find("metadata");
  if (meta != object_it->end() && meta->is_object()) {
    auto rv = meta->find("resourceVersion");
    if (rv != meta->end() && rv->is_string()) event.resource_version = rv->get<std::string>();
  }
  if (event.type != WatchEventType::kBookmark) {
    // Handlers key objects by metadata.name; an object without it is refused here, so no
    // handler ever meets it.
    auto name = meta != object_it->end() && meta->is_object() ? meta->find("name") : meta;
    if (meta == object_it->end() || !meta->is_object() || name == meta->end() ||
        !name->is_string() || name->get_ref<const std::string&>().empty()) {
      return InvalidArgument(std::string("watch event ") + WatchEventTypeName(event.type) +
                             " has an object without metadata.name");
    }
  }
  if (event.type == WatchEventType::kBookmark && event.resource_version.empty()) {
    return InvalidArgument("watch BOOKMARK event has no metadata.resourceVersion");
  }
  event.object = std::make_shared<const nlohmann::json>(std::move(*object_it));
  return event;
}

Status LineSplitter::Append(std::string_view piece) {
  // Drop consumed bytes before growing, so the buffer holds at most one partial line plus piece.
  if (start_ > 0 && start_ >= buffer_.size() / 2) {
    buffer_.erase(0, start_);
    start_ = 0;
  }
  buffer_.append(piece);
  size_t newline = buffer_.find('\n', start_);
  size_t unfinished = newline == std::string::npos ? buffer_.size() - start_
                                                   : buffer_.size() - buffer_.rfind('\n') - 1;
  if (unfinished > max_line_bytes_) {
    return OutOfRange("watch stream line longer than " + std::to_string(max_line_bytes_) + " bytes");
  }
  return Status::Ok();
}

bool LineSplitter::Next(std::string* line) {
  while (true) {
    size_t newline = buffer_.find('\n', start_);
    if (newline == std::string::npos) return false;
    std::string_view candidate(buffer_.data() + start_, newline - start_);
    start_ = newline + 1;
    bool blank = candidate.find_first_not_of(" \t\r") == std::string_view::npos;
    if (blank) continue;
    line->assign(candidate);
    return true;
  }
}

}  // namespace kubemoe::k8s
