// The scheduler's logprobs against the model itself: the logprobs of sampled tokens, their top-N
// alternatives and the prompt's logprobs equal log_softmax of the logits that one plain
// engine::Model::Forward over the same tokens gives (computed here independently, in long double),
// including in a batch where one sequence wants prompt logprobs (all rows' logits) and the others
// do not; logprobs are raw (independent of temperature and top-k); max_tokens 0 returns the
// prompt's logprobs only; a stop token is delivered, marked, only to requests that want logprobs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <numeric>

#include "router/logprobs.h"
#include "router/scheduler.h"
#include "tests/engine_test_util.h"

namespace kubemoe::router {
namespace {

constexpr double kTolerance = 1e-4;  // batched prefill / absorbed decode vs one plain prefill

class Recorder final : public TokenStream {
 public:
  void OnPromptLogprobs(std::span<const PositionLogprobs> logprobs) override {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_TRUE(tokens_.empty()) << "prompt logprobs must come before any token";
    ++prompt_calls_;
    prompt_.assign(logprobs.begin(), logprobs.end());
  }
  bool OnToken(const GeneratedToken& token) override {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.push_back(token);
    return true;
  }
  void OnFinish(const Status& status, FinishReason reason, const Usage& usage) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    reason_ = reason;
    usage_ = usage;
    done_ = true;
    cv_.notify_all();
  }

  // Waits (bounded) for OnFinish; true when it came with OK.
  bool Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(120), [&] { return done_; });
    EXPECT_TRUE(done_);
    EXPECT_TRUE(status_.ok()) << status_.ToString();
    return done_ && status_.ok();
  }
  std::vector<int32_t> Ids() const {
    std::vector<int32_t> ids;
    for (const auto& t : tokens_) ids.push_back(t.id);
    return ids;
  }

  int prompt_calls_ = 0;
  std::vector<PositionLogprobs> prompt_;
  std::vector<GeneratedToken> tokens_;
  FinishReason reason_ = FinishReason::kCancelled;
  Usage usage_;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  Status status_;
};

// log_softmax of every row of one plain Forward over `tokens` (row j: the distribution of the
// token after tokens[j]), in long double, without the code under test.
std::vector<std::vector<double>> ReferenceLogprobs(engine::Model& model,
                                                   const std::vector<int32_t>& tokens) {
  engine::LatentKvCache cache(model.config(), static_cast<int64_t>(tokens.size()));
  engine::SequenceInput in{&cache, tokens};
  std::vector<float> logits;
  Status s = model.Forward({&in, 1}, {.all_logits = true}, &logits);
  EXPECT_TRUE(s.ok()) << s.ToString();
  const auto vocab = static_cast<size_t>(model.config().vocab_size);
  std::vector<std::vector<double>> rows;
  for (size_t r = 0; r < tokens.size() && s.ok(); ++r) {
    long double sum = 0;
    for (size_t v = 0; v < vocab; ++v)
      sum += std::exp(static_cast<long double>(logits[r * vocab + v]));
    std::vector<double> row(vocab);
    for (size_t v = 0; v < vocab; ++v) {
      row[v] = static_cast<double>(static_cast<long double>(logits[r * vocab + v]) - std::log(sum));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<int32_t> TopIds(const std::vector<double>& row, size_t n) {
  std::vector<int32_t> ids(row.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
  ids.resize(n);
  return ids;
}

// `got` is the reference's logprob of `token` at `row`, with the reference's top `n`.
void ExpectMatches(const PositionLogprobs& got, const std::vector<double>& row, int32_t token,
                   size_t n, const std::string& where) {
  EXPECT_NEAR(got.logprob, row[static_cast<size_t>(token)], kTolerance) << where;
  ASSERT_EQ(got.top.size(), n) << where;
  const std::vector<int32_t> want = TopIds(row, n);
  for (size_t k = 0; k < n; ++k) {
    EXPECT_EQ(got.top[k].token, want[k]) << where << " rank " << k;
    EXPECT_NEAR(got.top[k].logprob, row[static_cast<size_t>(want[k])], kTolerance) << where;
    if (k > 0) {
      EXPECT_GE(got.top[k - 1].logprob, got.top[k].logprob) << where;
    }
  }
}

class SchedulerLogprobs : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = engine::testing::TinyModel();
    ASSERT_TRUE(model_);
  }
  std::unique_ptr<Scheduler> MakeScheduler() {
    SchedulerOptions options;
    options.max_queue_delay = std::chrono::milliseconds(0);
    return std::make_unique<Scheduler>(model_.get(), options, nullptr, nullptr);
  }
  static GenerationParams Params(std::vector<int32_t> prompt, int64_t max_tokens) {
    GenerationParams p;
    p.prompt = std::move(prompt);
    p.max_tokens = max_tokens;
    p.stop_at_eos = false;
    return p;
  }
  std::unique_ptr<engine::Model> model_;
};

TEST_F(SchedulerLogprobs, MixedBatchMatchesLogSoftmaxOfTheModel) {
  auto scheduler = MakeScheduler();
  // Queued before Start, so all three join the first step: one Forward with every row's logits
  // (A wants its prompt's logprobs), from which B and C take their last rows.
  GenerationParams a = Params({11, 500, 7, 64, 65, 66}, 4);
  a.logprobs = 3;
  a.prompt_logprobs = true;
  GenerationParams b = Params({1, 2, 3, 4, 5, 900, 1000}, 4);
  GenerationParams c = Params({64, 300, 12}, 4);
  c.logprobs = 0;
  c.sampling = {.temperature = 1.5f, .top_p = 0.9f, .top_k = 3, .seed = 5};
  std::vector<GenerationParams> params = {a, b, c};
  std::vector<std::shared_ptr<Recorder>> streams;
  for (const auto& p : params) {
    streams.push_back(std::make_shared<Recorder>());
    ASSERT_TRUE(scheduler->Submit(p, streams.back()).ok());
  }
  scheduler->Start();
  for (auto& s : streams) ASSERT_TRUE(s->Wait());
  scheduler->Stop();  // the model is ours again

  for (size_t i = 0; i < params.size(); ++i) {
    const GenerationParams& p = params[i];
    const Recorder& r = *streams[i];
    const std::string name = std::string(1, static_cast<char>('A' + i));
    ASSERT_EQ(r.tokens_.size(), 4u) << name;
    EXPECT_EQ(r.reason_, FinishReason::kLength) << name;
    std::vector<int32_t> all = p.prompt;
    for (const auto& t : r.tokens_) all.push_back(t.id);
    all.pop_back();  // the last token is never fed back
    const auto rows = ReferenceLogprobs(*model_, all);
    ASSERT_EQ(rows.size(), all.size());
    const size_t n = p.prompt.size();

    EXPECT_EQ(r.prompt_calls_, p.prompt_logprobs ? 1 : 0) << name;
    if (p.prompt_logprobs) {
      ASSERT_EQ(r.prompt_.size(), n - 1) << name;
      for (size_t j = 0; j + 1 < n; ++j) {
        ExpectMatches(r.prompt_[j], rows[j], p.prompt[j + 1], 3,
                      name + " prompt " + std::to_string(j + 1));
      }
    }
    for (size_t k = 0; k < r.tokens_.size(); ++k) {
      const GeneratedToken& t = r.tokens_[k];
      const std::vector<double>& row = rows[n - 1 + k];
      const std::string where = name + " token " + std::to_string(k);
      EXPECT_FALSE(t.stop) << where;
      if (p.sampling.temperature <= 0) {  // greedy: the reference's argmax
        EXPECT_EQ(t.id, TopIds(row, 1)[0]) << where;
      }
      ASSERT_EQ(t.logprobs.has_value(), p.logprobs.has_value()) << where;
      if (!t.logprobs) continue;
      // Raw logprobs: C samples at temperature 1.5 with top-k 3, its logprobs are still the
      // model's log_softmax.
      ExpectMatches(*t.logprobs, row, t.id, static_cast<size_t>(*p.logprobs), where);
      if (p.sampling.temperature <= 0) {
        EXPECT_EQ(t.logprobs->top[0].token, t.id) << where;
        EXPECT_EQ(t.logprobs->top[0].logprob, t.logprobs->logprob) << where;  // same computation
      }
    }
  }
}

TEST_F(SchedulerLogprobs, PromptOnlyStopTokensAndValidation) {
  const std::vector<int32_t> prompt = {64, 65, 66, 67, 300};
  const int32_t first = TopIds(ReferenceLogprobs(*model_, prompt).back(), 1)[0];
  auto scheduler = MakeScheduler();
  scheduler->Start();

  GenerationParams p = Params(prompt, 0);
  EXPECT_EQ(scheduler->Submit(p, std::make_shared<Recorder>()).code(),
            StatusCode::kInvalidArgument);  // max_tokens 0 needs prompt logprobs
  p.prompt_logprobs = true;
  p.logprobs = 21;
  EXPECT_EQ(scheduler->Submit(p, std::make_shared<Recorder>()).code(),
            StatusCode::kInvalidArgument);
  p.logprobs = -1;
  EXPECT_EQ(scheduler->Submit(p, std::make_shared<Recorder>()).code(),
            StatusCode::kInvalidArgument);

  // max_tokens 0: the prompt's logprobs, nothing sampled, "length".
  p.logprobs = 2;
  auto prompt_only = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(p, prompt_only).ok());
  ASSERT_TRUE(prompt_only->Wait());
  EXPECT_EQ(prompt_only->prompt_calls_, 1);
  EXPECT_EQ(prompt_only->prompt_.size(), prompt.size() - 1);
  EXPECT_TRUE(prompt_only->tokens_.empty());
  EXPECT_EQ(prompt_only->reason_, FinishReason::kLength);
  EXPECT_EQ(prompt_only->usage_.completion_tokens, 0);
  EXPECT_EQ(prompt_only->usage_.prompt_tokens, static_cast<int64_t>(prompt.size()));

  // A one-token prompt has no prompt logprobs at all, but still one (empty) call.
  GenerationParams single = Params({300}, 1);
  single.prompt_logprobs = true;
  auto one = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(single, one).ok());
  ASSERT_TRUE(one->Wait());
  EXPECT_EQ(one->prompt_calls_, 1);
  EXPECT_TRUE(one->prompt_.empty());
  EXPECT_EQ(one->tokens_.size(), 1u);
  EXPECT_FALSE(one->tokens_[0].logprobs.has_value());

  // A stop token: with logprobs it is delivered, marked, with its logprobs; not counted.
  GenerationParams stop = Params(prompt, 5);
  stop.stop_tokens = {first};
  stop.logprobs = 1;
  auto with = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(stop, with).ok());
  ASSERT_TRUE(with->Wait());
  ASSERT_EQ(with->tokens_.size(), 1u);
  EXPECT_TRUE(with->tokens_[0].stop);
  EXPECT_EQ(with->tokens_[0].id, first);
  ASSERT_TRUE(with->tokens_[0].logprobs.has_value());
  EXPECT_EQ(with->tokens_[0].logprobs->top.at(0).token, first);
  EXPECT_EQ(with->reason_, FinishReason::kStop);
  EXPECT_EQ(with->usage_.completion_tokens, 0);
  // Without logprobs it is not delivered at all, as before.
  stop.logprobs.reset();
  auto without = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(stop, without).ok());
  ASSERT_TRUE(without->Wait());
  EXPECT_TRUE(without->tokens_.empty());
  EXPECT_EQ(without->reason_, FinishReason::kStop);
  scheduler->Stop();
}

TEST(ComputeLogprobs, StableTiesAndSmallVocabularies) {
  const std::vector<float> logits = {1000.0f, 1000.0f, -1000.0f, 999.0f};
  const double log_sum = std::log(2.0 + std::exp(-1.0) + std::exp(-2000.0));  // after the max
  PositionLogprobs p = ComputeLogprobs(logits, 2, 3);
  EXPECT_NEAR(p.logprob, -2000.0 - log_sum, 1e-9);  // no overflow, finite far below
  ASSERT_EQ(p.top.size(), 3u);
  EXPECT_EQ(p.top[0].token, 0);  // equal logits: lower id first
  EXPECT_EQ(p.top[1].token, 1);
  EXPECT_EQ(p.top[2].token, 3);
  EXPECT_NEAR(p.top[0].logprob, -log_sum, 1e-12);
  EXPECT_NEAR(p.top[2].logprob, -1.0 - log_sum, 1e-12);
  EXPECT_EQ(ComputeLogprobs(logits, 0, 10).top.size(), 4u);  // the whole (small) vocabulary
  p = ComputeLogprobs(logits, 3, 0);
  EXPECT_NEAR(p.logprob, -1.0 - log_sum, 1e-12);
  EXPECT_TRUE(p.top.empty());
}

}  // namespace
}  // namespace kubemoe::router
