#include "router/remote_expert_executor.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>

#include "common/mutex.h"
#include "kubemoe/v1/expert_service.grpc.pb.h"
#include "transport/grpc_status.h"

namespace kubemoe::router {
namespace {

using Clock = std::chrono::steady_clock;

// Bigger than any step's batch: a V2 token is 10 KiB in bf16, 20 KiB in f32.
constexpr int kMaxMessageBytes = 256 << 20;

// One RPC to one shard. Owned by its CallGroup, which callbacks keep alive.
struct ShardCall {
  int32_t shard = 0;
  grpc::ClientContext context;
  kubemoe::v1::ExpertBatch request;
  kubemoe::v1::ExpertBatchResult response;
  std::vector<int64_t> token_rows;  // dispatch rows, in the order of the request's tokens
  grpc::Status status;
  Clock::time_point started;
};

struct CallGroup {
  Mutex mu;
  CondVar done;
  int outstanding KUBEMOE_GUARDED_BY(mu) = 0;
  std::vector<std::unique_ptr<ShardCall>> calls;
};

Status FromGrpc(const grpc::Status& s, int32_t shard, const std::string& address) {
  const std::string what = "expert shard " + std::to_string(shard) + " (" + address + "): ";
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return Unavailable(what + "unavailable: " + s.error_message());
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return DeadlineExceeded(what + "no answer before the deadline");
    case grpc::StatusCode::FAILED_PRECONDITION:
      return FailedPrecondition(what + s.error_message());
    case grpc::StatusCode::INVALID_ARGUMENT:
      return InvalidArgument(what + s.error_message());
    case grpc::StatusCode::CANCELLED:
      return Unavailable(what + "call cancelled: " + s.error_message());
    default:
      return Internal(what + "gRPC code " + std::to_string(static_cast<int>(s.error_code())) +
                      ": " + s.error_message());
  }
}

}  // namespace

struct RemoteExpertExecutor::Impl {
  struct ShardMetrics {
    metrics::Counter* sent = nullptr;
    metrics::Counter* received = nullptr;
    metrics::Histogram* seconds = nullptr;
    metrics::Counter* tokens = nullptr;
  };
  RemoteExecutorOptions options;
  grpc::ChannelArguments channel_args;
  std::vector<std::unique_ptr<kubemoe::v1::ExpertService::Stub>> stubs;  // dispatch thread only
  // Set by a failed call: the next dispatch to that shard opens a fresh channel, so a restarted
  // shard is used at once instead of after the old channel's reconnect backoff.
  std::unique_ptr<std::atomic<bool>[]> reconnect;
  std::vector<ShardMetrics> shard_metrics;
  metrics::CounterFamily* errors = nullptr;
  std::function<void(int32_t, const Status&)> on_shard_failure;

  void Connect(size_t shard) {
    auto channel = grpc::CreateCustomChannel(
        options.shard_addresses[shard],
        options.credentials ? options.credentials : grpc::InsecureChannelCredentials(), channel_args);
    stubs[shard] = kubemoe::v1::ExpertService::NewStub(channel);
  }

  void CountError(int32_t shard, grpc::StatusCode code) {
    if (errors == nullptr) return;
    auto c = errors->WithLabels(
        {std::to_string(shard), transport::GrpcCodeName(static_cast<int>(code))});
    if (c.ok()) (*c)->Inc();
  }
};

namespace {

class RemotePending final : public engine::PendingExperts {
 public:
  RemotePending(RemoteExpertExecutor::Impl* impl, std::unique_ptr<CallGroup> group,
                int64_t hidden_size, Clock::time_point deadline)
      : impl_(impl), group_(std::move(group)), h_(hidden_size), deadline_(deadline) {}

  ~RemotePending() override {
    // The calls (contexts, messages) must outlive their callbacks and must not be destroyed from
    // inside one (gRPC's own state would be freed under it), so this thread waits for every
    // callback: calls still in flight (Combine not called, or given up on) are cancelled first,
    // outside the lock in case gRPC runs a callback (which takes the lock) inline.
    bool in_flight = false;
    {
      MutexLock lock(&group_->mu);
      in_flight = group_->outstanding > 0;
    }
    if (in_flight) {
      for (auto& call : group_->calls) call->context.TryCancel();
    }
    MutexLock lock(&group_->mu);
    while (group_->outstanding > 0) group_->done.Wait(&group_->mu);
  }

  Status Combine(float* out) override {
    {
      MutexLock lock(&group_->mu);
      // gRPC ends every call by its deadline; the extra margin only guards against a stuck
      // completion, after which the calls are cancelled.
      const bool unbounded = deadline_ == Clock::time_point::max();
      const auto limit = unbounded ? deadline_ : deadline_ + std::chrono::seconds(5);
      while (group_->outstanding > 0) {
        if (unbounded) {
          group_->done.Wait(&group_->mu);
        } else if (!group_->done.WaitUntil(&group_->mu, limit) && group_->outstanding > 0) {
          return DeadlineExceeded("expert shards did not answer before the deadline");
        }
      }
    }
    Status first_error = Status::Ok();
    for (const auto& call : group_->calls) {
      const std::string& address = impl_->options.shard_addresses[static_cast<size_t>(call->shard)];
      if (!call->status.ok()) {
        Status s = FromGrpc(call->status, call->shard, address);
        if (first_error.ok()) first_error = s;
        continue;
      }
      const auto& r = call->response;
      if (r.layer() != call->request.layer() ||
          r.placement_version() != call->request.placement_version()) {
        if (first_error.ok()) {
          first_error = Internal("expert shard " + std::to_string(call->shard) +
                                 " answered for another layer or placement version");
        }
        continue;
      }
      StatusOr<std::vector<float>> rows = transport::DecodeTensor(
          r.outputs(), h_, "expert shard " + std::to_string(call->shard) + " outputs");
      if (!rows.ok()) {
        if (first_error.ok()) first_error = rows.status();
        continue;
      }
      if (rows->size() != call->token_rows.size() * static_cast<size_t>(h_)) {
        if (first_error.ok()) {
          first_error = Internal("expert shard " + std::to_string(call->shard) + " returned " +
                                 std::to_string(rows->size() / static_cast<size_t>(h_)) +
                                 " rows for " + std::to_string(call->token_rows.size()) +
                                 " tokens");
        }
        continue;
      }
      if (!first_error.ok()) continue;
      for (size_t i = 0; i < call->token_rows.size(); ++i) {
        float* dst = out + call->token_rows[i] * h_;
        const float* src = rows->data() + i * static_cast<size_t>(h_);
        for (int64_t j = 0; j < h_; ++j) dst[j] += src[j];
      }
    }
    return first_error;
  }

 private:
  RemoteExpertExecutor::Impl* impl_;
  std::unique_ptr<CallGroup> group_;
  int64_t h_;
  Clock::time_point deadline_;
};

}  // namespace

RemoteExpertExecutor::RemoteExpertExecutor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RemoteExpertExecutor::~RemoteExpertExecutor() = default;

int32_t RemoteExpertExecutor::num_shards() const {
  return static_cast<int32_t>(impl_->stubs.size());
}

StatusOr<std::unique_ptr<RemoteExpertExecutor>> RemoteExpertExecutor::Create(
    RemoteExecutorOptions options, metrics::Registry* registry,
    std::function<void(int32_t, const Status&)> on_shard_failure) {
  if (options.shard_addresses.empty()) return InvalidArgument("no expert shard addresses");
  if (options.devices_per_shard < 1) return InvalidArgument("devices per shard must be >= 1");
  auto impl = std::make_unique<Impl>();
  impl->on_shard_failure = std::move(on_shard_failure);
  grpc::ChannelArguments& args = impl->channel_args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // Reconnect quickly after a shard restarts (the default backoff grows to 2 minutes).
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  const size_t n = options.shard_addresses.size();
  impl->stubs.resize(n);
  impl->reconnect.reset(new std::atomic<bool>[n]);
  for (size_t i = 0; i < n; ++i) impl->reconnect[i] = false;
  impl->shard_metrics.resize(n);
  if (registry != nullptr) {
    auto bytes = registry->AddCounter("kubemoe_router_dispatch_bytes_total",
                                      "Bytes of expert dispatch messages, by shard and direction.",
                                      {"shard", "direction"});
    auto seconds = registry->AddHistogram(
        "kubemoe_router_dispatch_seconds",
        "Duration of one expert dispatch RPC to a shard (send, compute, receive).", {"shard"});
    auto tokens = registry->AddCounter("kubemoe_router_dispatch_tokens_total",
                                       "Token rows sent to each shard.", {"shard"});
    auto errors = registry->AddCounter("kubemoe_router_dispatch_errors_total",
                                       "Failed expert dispatch RPCs, by shard and gRPC code.",
                                       {"shard", "code"});
    for (const Status& s : {bytes.status(), seconds.status(), tokens.status(), errors.status()}) {
      if (!s.ok()) return s;
    }
    impl->errors = *errors;
    for (size_t i = 0; i < options.shard_addresses.size(); ++i) {
      const std::string shard = std::to_string(i);
      Impl::ShardMetrics& m = impl->shard_metrics[i];
      m.sent = *(*bytes)->WithLabels({shard, "sent"});
      m.received = *(*bytes)->WithLabels({shard, "received"});
      m.seconds = *(*seconds)->WithLabels({shard});
      m.tokens = *(*tokens)->WithLabels({shard});
    }
  }
  impl->options = std::move(options);
  for (size_t i = 0; i < n; ++i) impl->Connect(i);
  return std::unique_ptr<RemoteExpertExecutor>(new RemoteExpertExecutor(std::move(impl)));
}

StatusOr<std::unique_ptr<engine::PendingExperts>> RemoteExpertExecutor::Dispatch(
    const engine::ExpertDispatch& d) {
  const layers::RaggedRoutes& routes = *d.routes;
  const int64_t n_tokens = routes.num_tokens();
  const int32_t per_shard = impl_->options.devices_per_shard;
  const auto n_shards = static_cast<int32_t>(impl_->stubs.size());
  if (routes.devices.size() != routes.expert_ids.size()) {
    return InvalidArgument("remote dispatch needs a device for every route (route with a placement)");
  }
  // Bucket each token's routes by shard, keeping the route order.
  std::vector<layers::RaggedRoutes> shard_routes(static_cast<size_t>(n_shards));
  std::vector<std::vector<int64_t>> shard_rows(static_cast<size_t>(n_shards));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int32_t s = 0; s < n_shards; ++s) {
      std::vector<int32_t> ids, devices;
      std::vector<float> weights;
      for (int64_t r = routes.begin(t); r < routes.end(t); ++r) {
        const int32_t device = routes.devices[static_cast<size_t>(r)];
        if (device < 0 || device / per_shard >= n_shards) {
          return InvalidArgument("route to device " + std::to_string(device) + ", outside the " +
                                 std::to_string(n_shards * per_shard) + " devices of the shards");
        }
        if (device / per_shard != s) continue;
        ids.push_back(routes.expert_ids[static_cast<size_t>(r)]);
        weights.push_back(routes.weights[static_cast<size_t>(r)]);
        devices.push_back(device);
      }
      if (ids.empty()) continue;
      shard_routes[static_cast<size_t>(s)].AddToken(ids, weights, devices);
      shard_rows[static_cast<size_t>(s)].push_back(t);
    }
  }
  const Clock::time_point now = Clock::now();
  const Clock::time_point deadline = std::min(d.deadline, now + impl_->options.dispatch_timeout);
  auto group = std::make_unique<CallGroup>();
  const int64_t h = d.hidden_size;
  std::vector<float> rows;
  for (int32_t s = 0; s < n_shards; ++s) {
    const std::vector<int64_t>& token_rows = shard_rows[static_cast<size_t>(s)];
    if (token_rows.empty()) continue;
    auto call = std::make_unique<ShardCall>();
    call->shard = s;
    call->token_rows = token_rows;
    kubemoe::v1::ExpertBatch& req = call->request;
    req.set_request_id("layer-" + std::to_string(d.layer));
    req.set_layer(static_cast<int32_t>(d.layer));
    req.set_placement_version(d.placement_version);
    req.set_deadline_budget_micros(
        std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count());
    rows.resize(token_rows.size() * static_cast<size_t>(h));
    for (size_t i = 0; i < token_rows.size(); ++i) {
      std::copy_n(d.hidden + token_rows[i] * h, h, rows.data() + i * static_cast<size_t>(h));
    }
    transport::EncodeTensor(rows.data(), static_cast<int64_t>(token_rows.size()), h,
                            impl_->options.wire_dtype, req.mutable_hidden_states());
    transport::EncodeRoutes(shard_routes[static_cast<size_t>(s)], per_shard, &req);
    // gRPC takes wall-clock deadlines; the budget is the same.
    call->context.set_deadline(std::chrono::system_clock::now() + (deadline - now));
    group->calls.push_back(std::move(call));
  }
  {
    MutexLock lock(&group->mu);  // no call started yet; taken so every access is provably locked
    group->outstanding = static_cast<int>(group->calls.size());
  }
  Impl* impl = impl_.get();
  CallGroup* calls = group.get();  // owned by the RemotePending, which outlives every callback
  for (auto& owned : group->calls) {
    ShardCall* call = owned.get();
    Impl::ShardMetrics& m = impl->shard_metrics[static_cast<size_t>(call->shard)];
    if (m.sent != nullptr) {
      m.sent->Inc(static_cast<double>(call->request.ByteSizeLong()));
      m.tokens->Inc(static_cast<double>(call->token_rows.size()));
    }
    if (impl->reconnect[static_cast<size_t>(call->shard)].exchange(false)) {
      impl->Connect(static_cast<size_t>(call->shard));
    }
    call->started = Clock::now();
    impl->stubs[static_cast<size_t>(call->shard)]->async()->RunExperts(
        &call->context, &call->request, &call->response,
        [impl, calls, call](grpc::Status status) {
          Impl::ShardMetrics& sm = impl->shard_metrics[static_cast<size_t>(call->shard)];
          if (sm.seconds != nullptr) {
            sm.seconds->Observe(
                std::chrono::duration<double>(Clock::now() - call->started).count());
            if (status.ok()) sm.received->Inc(static_cast<double>(call->response.ByteSizeLong()));
          }
          if (!status.ok()) {
            impl->CountError(call->shard, status.error_code());
            impl->reconnect[static_cast<size_t>(call->shard)] = true;
            if (impl->on_shard_failure &&
                (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                 status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)) {
              impl->on_shard_failure(
                  call->shard,
                  FromGrpc(status, call->shard,
                           impl->options.shard_addresses[static_cast<size_t>(call->shard)]));
            }
          }
          MutexLock lock(&calls->mu);
          call->status = std::move(status);
          if (--calls->outstanding == 0) calls->done.SignalAll();
        });
  }
  return std::unique_ptr<engine::PendingExperts>(
      new RemotePending(impl, std::move(group), h, deadline));
}

}  // namespace kubemoe::router
