#include "router/shard_health.h"

#include <grpcpp/grpcpp.h>

#include "common/mutex.h"
#include "kubemoe/v1/worker_info.grpc.pb.h"

namespace kubemoe::router {

ShardHealth::ShardHealth(std::vector<std::string> addresses, uint64_t placement_version,
                         std::chrono::milliseconds period, metrics::Registry* registry,
                         std::shared_ptr<grpc::ChannelCredentials> credentials)
    : addresses_(std::move(addresses)),
      credentials_(credentials ? std::move(credentials) : grpc::InsecureChannelCredentials()),
      version_(placement_version),
      period_(period),
      not_ready_(addresses_.size(), "not probed yet") {
  if (registry == nullptr) return;
  auto family = registry->AddGauge("kubemoe_router_shard_ready",
                                   "1 when the expert shard serves the router's placement version.",
                                   {"shard"});
  if (!family.ok()) return;
  for (size_t i = 0; i < addresses_.size(); ++i) {
    auto g = (*family)->WithLabels({std::to_string(i)});
    gauges_.push_back(g.ok() ? *g : nullptr);
  }
}

ShardHealth::~ShardHealth() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  wake_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

void ShardHealth::Start() { thread_ = std::thread([this] { Loop(); }); }

bool ShardHealth::AllReady(std::string* why_not) const {
  MutexLock lock(&mu_);
  for (size_t i = 0; i < not_ready_.size(); ++i) {
    if (!not_ready_[i].empty()) {
      if (why_not != nullptr) {
        *why_not = "expert shard " + std::to_string(i) + " (" + addresses_[i] +
                   ") is not ready: " + not_ready_[i];
      }
      return false;
    }
  }
  return true;
}

void ShardHealth::MarkFailed(int32_t shard, const Status& why) {
  if (shard < 0 || static_cast<size_t>(shard) >= addresses_.size()) return;
  MutexLock lock(&mu_);
  not_ready_[static_cast<size_t>(shard)] = why.message().empty() ? "dispatch failed" : why.message();
  if (gauges_.size() > static_cast<size_t>(shard) && gauges_[static_cast<size_t>(shard)]) {
    gauges_[static_cast<size_t>(shard)]->Set(0);
  }
}

void ShardHealth::ProbeAll() {
  for (size_t i = 0; i < addresses_.size(); ++i) {
    // A fresh channel per probe: a restarted shard is found at once, without reconnect backoff.
    auto channel = grpc::CreateChannel(addresses_[i], credentials_);
    auto stub = kubemoe::v1::WorkerInfoService::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    kubemoe::v1::WorkerInfo info;
    grpc::Status s = stub->GetWorkerInfo(&context, kubemoe::v1::WorkerInfoRequest(), &info);
    std::string problem;
    if (!s.ok()) {
      problem = "no answer (" + s.error_message() + ")";
    } else if (info.placement_version() != version_) {
      problem = "serves placement version " + std::to_string(info.placement_version()) +
                ", the router routes with " + std::to_string(version_);
    } else if (info.shard_index() != static_cast<int32_t>(i)) {
      problem = "answers as shard " + std::to_string(info.shard_index());
    }
    MutexLock lock(&mu_);
    not_ready_[i] = problem;
    if (i < gauges_.size() && gauges_[i] != nullptr) gauges_[i]->Set(problem.empty() ? 1 : 0);
  }
}

void ShardHealth::Loop() {
  while (true) {
    {
      MutexLock lock(&mu_);
      if (stop_) return;
    }
    ProbeAll();
    const auto deadline = std::chrono::steady_clock::now() + period_;
    MutexLock lock(&mu_);
    while (!stop_ && wake_.WaitUntil(&mu_, deadline)) {
    }
  }
}

}  // namespace kubemoe::router
