#include "engine/expert_executor.h"

#include <vector>

#include "layers/grouped_experts.h"

namespace kubemoe::engine {
namespace {

class InProcessPending final : public PendingExperts {
 public:
  InProcessPending(const layers::ExpertStore* store, ThreadPool* pool, const ExpertDispatch& d)
      : store_(store), pool_(pool), d_(d) {}

  Status Combine(float* out) override {
    const int64_t n = d_.routes->num_tokens() * d_.hidden_size;
    std::vector<float> routed(static_cast<size_t>(n));
    KUBEMOE_RETURN_IF_ERROR(layers::RunRoutedExperts(*pool_, store_->LayerLookup(d_.layer),
                                                     d_.hidden_size, d_.hidden, *d_.routes,
                                                     routed.data()));
    for (int64_t i = 0; i < n; ++i) out[i] += routed[static_cast<size_t>(i)];
    return Status::Ok();
  }

 private:
  const layers::ExpertStore* store_;
  ThreadPool* pool_;
  ExpertDispatch d_;
};

}  // namespace

StatusOr<std::unique_ptr<PendingExperts>> InProcessExpertExecutor::Dispatch(
    const ExpertDispatch& d) {
  if (d.hidden == nullptr || d.routes == nullptr || d.hidden_size <= 0) {
    return InvalidArgument("expert dispatch without hidden states or routes");
  }
  return std::unique_ptr<PendingExperts>(new InProcessPending(store_, pool_, d));
}

}  // namespace kubemoe::engine
