#include "layers/grouped_experts.h"

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "layers/parallel_linear.h"

namespace kubemoe::layers {

Status RunRoutedExperts(ThreadPool& pool, const ExpertLookup& lookup, int64_t h,
                        const float* hidden, const RaggedRoutes& routes, float* out,
                        std::map<int32_t, int64_t>* expert_token_counts) {
  KUBEMOE_RETURN_IF_ERROR(ValidateRoutes(routes, /*num_experts=*/0, /*num_devices=*/0));
  const int64_t n_tokens = routes.num_tokens();
  const int64_t n_routes = routes.num_routes();
  std::vector<int64_t> route_token(static_cast<size_t>(n_routes));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = routes.begin(t); r < routes.end(t); ++r) route_token[r] = t;
  }
  // Routes grouped by expert, route order kept inside a group (stable sort).
  std::vector<int64_t> order(static_cast<size_t>(n_routes));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return routes.expert_ids[static_cast<size_t>(a)] < routes.expert_ids[static_cast<size_t>(b)];
  });
  struct Group {
    const FfnWeights* w;
    int64_t begin, end;  // into order
  };
  std::vector<Group> groups;
  for (int64_t i = 0; i < n_routes;) {
    const int32_t e = routes.expert_ids[static_cast<size_t>(order[i])];
    int64_t j = i;
    while (j < n_routes && routes.expert_ids[static_cast<size_t>(order[j])] == e) ++j;
    const FfnWeights* w = lookup(e);
    if (w == nullptr) return NotFound("routed expert " + std::to_string(e) + " is not held here");
    groups.push_back({w, i, j});
    i = j;
  }
  // Each group's outputs [its tokens x h], computed in parallel, then summed in a fixed order.
  std::vector<std::vector<float>> ys(groups.size());
  auto run_group = [&](int64_t gi) {
    const Group& g = groups[static_cast<size_t>(gi)];
    const int64_t n = g.end - g.begin;
    std::vector<float> x(static_cast<size_t>(n * h));
    for (int64_t i = 0; i < n; ++i) {
      std::copy_n(hidden + route_token[order[g.begin + i]] * h, h, x.data() + i * h);
    }
    ys[static_cast<size_t>(gi)].resize(static_cast<size_t>(n * h));
    ParallelSwiGluFfn(pool, x.data(), n, *g.w, ys[static_cast<size_t>(gi)].data());
  };
  const auto n_groups = static_cast<int64_t>(groups.size());
  if (n_groups >= pool.size()) {
    pool.ParallelFor(n_groups, run_group);  // one expert per task, each on one thread
  } else {
    for (int64_t gi = 0; gi < n_groups; ++gi) run_group(gi);  // each expert's rows split
  }
  std::fill(out, out + n_tokens * h, 0.0f);
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const Group& g = groups[gi];
    for (int64_t i = 0; i < g.end - g.begin; ++i) {
      const int64_t r = order[g.begin + i];
      const float gw = routes.weights[static_cast<size_t>(r)];
      float* dst = out + route_token[r] * h;
      const float* src = ys[gi].data() + i * h;
      for (int64_t j = 0; j < h; ++j) dst[j] += gw * src[j];
    }
    if (expert_token_counts != nullptr) {
      (*expert_token_counts)[routes.expert_ids[static_cast<size_t>(order[g.begin])]] +=
          g.end - g.begin;
    }
  }
  return Status::Ok();
}

}  // namespace kubemoe::layers
