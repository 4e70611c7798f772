#include "worker/expert_service.h"

#include <chrono>
#include <exception>
#include <new>
#include <string>

#include "transport/grpc_status.h"

namespace kubemoe::worker {
namespace {

using Clock = std::chrono::steady_clock;

// Checks the two deadlines: the router's relative budget for queueing (clock skew between pods
// cannot affect it) and the gRPC call's absolute deadline.
grpc::Status CheckDeadlines(const grpc::CallbackServerContext& context,
                            const kubemoe::v1::ExpertBatch& batch, Clock::time_point received) {
  const int64_t budget = batch.deadline_budget_micros();
  const auto waited =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - received).count();
  if (budget < 0 || (budget > 0 && waited > budget)) {
    return {grpc::StatusCode::DEADLINE_EXCEEDED, "the batch waited " + std::to_string(waited) +
                                                     " us in the worker's queue; its budget was " +
                                                     std::to_string(budget) + " us"};
  }
  if (context.deadline() < std::chrono::system_clock::now()) {
    return {grpc::StatusCode::DEADLINE_EXCEEDED,
            "the call's deadline passed in the worker's queue"};
  }
  return grpc::Status::OK;
}

}  // namespace

grpc::ServerUnaryReactor* ExpertService::RunExperts(grpc::CallbackServerContext* context,
                                                    const kubemoe::v1::ExpertBatch* batch,
                                                    kubemoe::v1::ExpertBatchResult* result) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const Clock::time_point received = Clock::now();
  // context, batch and result stay valid until Finish; the task is the last to touch them.
  auto task = [this, context, batch, result, reactor, received] {
    grpc::Status status;
    if (context->IsCancelled()) {
      status = {grpc::StatusCode::CANCELLED, "the client cancelled the call"};
    } else {
      status = CheckDeadlines(*context, *batch, received);
    }
    if (status.ok()) {
      try {
        const Status s = runner_.Run(*batch, result);
        if (!s.ok()) status = {transport::ToGrpcCode(s.code()), s.message()};
      } catch (const std::bad_alloc&) {
        status = {grpc::StatusCode::RESOURCE_EXHAUSTED, "the batch does not fit in memory"};
      } catch (const std::exception& e) {
        status = {grpc::StatusCode::INTERNAL,
                  std::string("expert computation failed: ") + e.what()};
      }
    }
    if (status.ok()) {
      const std::map<int32_t, int64_t> counts(result->expert_token_counts().begin(),
                                              result->expert_token_counts().end());
      metrics_.RecordSuccess(batch->layer(), counts, batch->hidden_states().shape(0),
                             result->compute_seconds());
    } else {
      metrics_.RecordError(status.error_code());
    }
    reactor->Finish(status);
  };
  if (!queue_.Submit(std::move(task))) {
    metrics_.RecordError(grpc::StatusCode::UNAVAILABLE);
    reactor->Finish({grpc::StatusCode::UNAVAILABLE, "the worker is shutting down"});
  }
  return reactor;
}

}  // namespace kubemoe::worker
