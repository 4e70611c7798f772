// Runs the routed experts of one layer for a batch of tokens: every route is grouped by expert,
// each expert runs once as three matrix products over all its tokens (SwiGLU), and the outputs
// are combined per token with the gate weights. The in-process executor and the expert-shard
// worker both run experts through here.
#pragma once

#include <cstdint>
#include <map>

#include "common/status.h"
#include "common/thread_pool.h"
#include "layers/expert_store.h"
#include "layers/routes.h"

namespace kubemoe::layers {

// out [num_tokens x hidden_size] = for every token t, sum over its routes r of
//   weights[r] * Expert_{expert_ids[r]}(hidden[t])
// overwriting out (a token with no routes gets zeros). Each expert's tokens are summed in route
// order, experts in ascending id, so the result does not depend on the pool's size. Experts run
// in parallel on `pool` (one per thread), or one after another with their rows split across it
// when there are fewer experts than threads. Every expert is looked up before anything runs:
// NotFound names the first one `lookup` lacks. InvalidArgument for malformed routes. When
// expert_token_counts is not null, the number of tokens each expert ran is added to it. REQUIRES:
// hidden holds num_tokens x hidden_size floats, out as many.
Status RunRoutedExperts(ThreadPool& pool, const ExpertLookup& lookup, int64_t hidden_size,
                        const float* hidden, const RaggedRoutes& routes, float* out,
                        std::map<int32_t, int64_t>* expert_token_counts = nullptr);

}  // namespace kubemoe::layers
