#include "operator/controller/informer.h"

#include <iostream>
#include <random>

#include <nlohmann/json.hpp>

namespace kubemoe::op {
namespace {

std::string ResourceVersionOf(const nlohmann::json& object) {
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return "";
  auto rv = meta->find("resourceVersion");
  return rv != meta->end() && rv->is_string() ? rv->get<std::string>() : "";
}

double Jitter() {
  thread_local std::mt19937 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

std::string Informer::KeyOf(const nlohmann::json& object) {
  const nlohmann::json& meta = object.contains("metadata") ? object["metadata"] : object;
  std::string name = meta.is_object() ? meta.value("name", "") : "";
  std::string ns = meta.is_object() ? meta.value("namespace", "") : "";
  return ns.empty() ? name : ns + "/" + name;
}

Informer::Informer(k8s::Client& client, InformerOptions options, Handler handler)
    : client_(client), options_(std::move(options)), handler_(std::move(handler)) {}

Informer::~Informer() { Stop(); }

void Informer::Start() { thread_ = std::thread([this] { Run(); }); }

void Informer::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  cancel_.Cancel();
  if (thread_.joinable()) thread_.join();
}

bool Informer::WaitForSync(std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lock(&mu_);
  while (!synced_.load() && !stopping_.load() && cv_.WaitUntil(&mu_, deadline)) {
  }
  return synced_.load();
}

ObjectPtr Informer::Get(const std::string& key) const {
  MutexLock lock(&mu_);
  auto it = cache_.find(key);
  return it == cache_.end() ? nullptr : it->second;
}

std::vector<ObjectPtr> Informer::List() const {
  MutexLock lock(&mu_);
  std::vector<ObjectPtr> out;
  out.reserve(cache_.size());
  for (const auto& [key, object] : cache_) out.push_back(object);
  return out;
}

std::string Informer::resource_version() const {
  MutexLock lock(&mu_);
  return resource_version_;
}

void Informer::SleepFor(std::chrono::milliseconds d) {
  const auto deadline = std::chrono::steady_clock::now() + d;
  MutexLock lock(&mu_);
  while (!stopping_.load() && cv_.WaitUntil(&mu_, deadline)) {
  }
}

std::chrono::milliseconds Informer::NextBackoff() {
  backoff_ = backoff_.count() == 0 ? options_.initial_backoff
                                   : std::min(backoff_ * 2, options_.max_backoff);
  // Full jitter in [backoff/2, backoff): reconnecting clients spread out.
  return std::chrono::milliseconds(
      static_cast<int64_t>(static_cast<double>(backoff_.count()) * (0.5 + 0.5 * Jitter())));
}

bool Informer::ListOnce() {
  k8s::ListOptions list_options;
  list_options.label_selector = options_.label_selector;
  k8s::ApiResult<nlohmann::json> list = client_.List(options_.resource, options_.namespace_, list_options);
  if (!list.ok()) {
    std::cerr << "informer " << options_.resource.plural << ": list failed: "
              << list.error().ToString() << "\n";
    return false;
  }
  std::map<std::string, ObjectPtr> fresh;
  auto items = list->find("items");
  if (items != list->end() && items->is_array()) {
    for (nlohmann::json& item : *items) {
      auto meta = item.is_object() ? item.find("metadata") : item.end();
      if (!item.is_object() || meta == item.end() || !meta->is_object() ||
          !meta->contains("name") || !(*meta)["name"].is_string()) {
        std::cerr << "informer " << options_.resource.plural
                  << ": list item without metadata.name ignored\n";
        continue;
      }
      // Lists omit apiVersion/kind on items; the handler and the diff want them.
      if (!item.contains("kind")) item["kind"] = options_.resource.kind;
      if (!item.contains("apiVersion")) item["apiVersion"] = options_.resource.ApiVersion();
      std::string key = KeyOf(item);
      fresh.emplace(std::move(key), std::make_shared<const nlohmann::json>(std::move(item)));
    }
  }
  std::vector<ObjectPtr> changed;
  {
    MutexLock lock(&mu_);
    for (const auto& [key, object] : fresh) {
      auto old = cache_.find(key);
      if (old == cache_.end() || ResourceVersionOf(*old->second) != ResourceVersionOf(*object)) {
        changed.push_back(object);
      }
    }
    for (const auto& [key, object] : cache_) {
      if (fresh.count(key) == 0) changed.push_back(object);  // deleted while we were not watching
    }
    cache_ = std::move(fresh);
    resource_version_ = list->contains("metadata") ? ResourceVersionOf(*list) : "";
  }
  if (lists_.fetch_add(1) > 0 && options_.relists != nullptr) options_.relists->Inc();
  for (const ObjectPtr& object : changed) handler_(*object);
  {
    MutexLock lock(&mu_);
    synced_ = true;
    cv_.SignalAll();
  }
  return true;
}

k8s::ApiError Informer::WatchOnce(bool* saw_event, bool* gone) {
  k8s::WatchOptions watch_options;
  watch_options.label_selector = options_.label_selector;
  watch_options.resource_version = resource_version();
  watch_options.timeout_seconds = static_cast<int>(
      static_cast<double>(options_.watch_timeout.count()) * (1.0 + Jitter()));
  watch_options.bookmarks = true;
  k8s::ApiError stream_error;
  k8s::ApiError result = client_.Watch(
      options_.resource, options_.namespace_, watch_options,
      [&](const k8s::WatchEvent& event) {
        if (event.type == k8s::WatchEventType::kError) {
          stream_error = event.error;
          *gone = event.error.IsGone();
          return false;
        }
        *saw_event = true;
        if (event.type == k8s::WatchEventType::kBookmark) {
          MutexLock lock(&mu_);
          resource_version_ = event.resource_version;
          return true;
        }
        std::string key = KeyOf(*event.object);
        {
          MutexLock lock(&mu_);
          if (event.type == k8s::WatchEventType::kDeleted) {
            cache_.erase(key);
          } else {
            cache_[key] = event.object;
          }
          if (!event.resource_version.empty()) resource_version_ = event.resource_version;
        }
        handler_(*event.object);
        return !stopping_.load();
      },
      cancel_);
  if (!stream_error.ok()) return stream_error;
  if (result.IsGone()) *gone = true;
  return result;
}

void Informer::Run() {
  bool need_list = true;
  while (!stopping_) {
    if (need_list) {
      if (!ListOnce()) {
        SleepFor(NextBackoff());
        continue;
      }
      need_list = false;
      backoff_ = std::chrono::milliseconds(0);
    }
    auto started = std::chrono::steady_clock::now();
    bool saw_event = false;
    bool gone = false;
    k8s::ApiError error = WatchOnce(&saw_event, &gone);
    if (stopping_) break;
    if (gone) {
      // Our resourceVersion was compacted away: only a fresh list can tell what changed.
      std::cerr << "informer " << options_.resource.plural << ": resourceVersion expired ("
                << error.ToString() << "), relisting\n";
      need_list = true;
      continue;
    }
    if (!error.ok()) {
      if (options_.watch_errors != nullptr) options_.watch_errors->Inc();
      std::cerr << "informer " << options_.resource.plural << ": watch failed: "
                << error.ToString() << "\n";
      SleepFor(NextBackoff());
      continue;
    }
    // A clean end (timeout or the server closing the stream): resume from the last version.
    // A stream that ends at once without any event is treated as a failure, so a server that
    // keeps closing watches is not hammered.
    bool quick_empty = !saw_event && std::chrono::steady_clock::now() - started < std::chrono::seconds(1);
    if (quick_empty) {
      SleepFor(NextBackoff());
    } else {
      backoff_ = std::chrono::milliseconds(0);
    }
  }
}

}  // namespace kubemoe::op
