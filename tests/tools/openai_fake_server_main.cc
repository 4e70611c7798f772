// openai_fake_server: the router's OpenAI HTTP layer (router/openai_http.h) over a FAKE
// GenerationService, for tests/py/openai_client_test.py (the official openai client and curl).
//
//   openai_fake_server [--port 0] [--host 127.0.0.1] [--model NAME] [--tokenizer tokenizer.json]
//                      [--token-delay-ms 20] [--max-context 256] [--reply TEXT]
// Prints "port N" on stdout once it listens; stops on SIGTERM / SIGINT.
//
// The fake generates the tokens of --reply (tokenized with the same tokenizer), one every
// --token-delay-ms, ending with "stop" at the end of the reply (as if EOS) or "length" at
// max_tokens. Words in the prompt select behaviours the tests need:
//   KM_QUEUE_FULL    Submit fails with ResourceExhausted (HTTP 429)
//   KM_NOT_READY     Submit fails with Unavailable (HTTP 503)
//   KM_FAIL_AFTER_3  three tokens, then the request fails with Unavailable (an error mid-stream)
//   KM_ENDLESS       the reply repeats until max_tokens (for disconnect tests)
// Like the real scheduler it checks the request (empty prompt, ids outside the vocabulary,
// max_tokens, the context), honours stop_tokens, and polls Cancelled() before every token.
// Logprobs are made up but well-formed: token k of a sequence (prompt or reply) has logprob
// -(1 + k % 4) / 4, its alternatives are the next ids with logprobs 1, 2, ... lower.
// GET /debug/cancelled answers {"submitted", "finished", "cancelled", "stopped_by_stream",
// "active"}: "cancelled" counts requests dropped because their stream reported Cancelled() (a
// client gone); "stopped_by_stream" those whose OnToken returned false otherwise (a stop string).
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "common/shutdown_signal.h"
#include "model/tokenizer.h"
#include "router/chat_template.h"
#include "router/generation_service.h"
#include "router/openai_http.h"

namespace km = kubemoe;
namespace router = kubemoe::router;

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string model = "kubemoe-fake";
  std::string tokenizer = KUBEMOE_SOURCE_DIR "/tests/data/tokenizer/tokenizer.json";
  int token_delay_ms = 20;
  int64_t max_context = 256;
  std::string reply =
      "Hello! The answer is 42. Ünïcødé ✓ 😀 ok. A STOP marker, then more words follow here.";
};

class FakeService final : public router::GenerationService {
 public:
  FakeService(const km::Tokenizer* tokenizer, const Options& options)
      : tokenizer_(tokenizer),
        options_(options),
        script_(tokenizer->Encode(options.reply, /*add_special_tokens=*/false)) {}

  ~FakeService() override { JoinAll(); }

  km::Status Submit(router::GenerationParams params,
                    std::shared_ptr<router::TokenStream> stream) override {
    if (params.prompt.empty()) return km::InvalidArgument("empty prompt");
    for (int32_t id : params.prompt) {
      if (id < 0 || id >= tokenizer_->VocabSize()) {
        return km::InvalidArgument("token id " + std::to_string(id) + " is outside the vocabulary");
      }
    }
    if (params.max_tokens < (params.prompt_logprobs ? 0 : 1)) {
      return km::InvalidArgument("max_tokens must be >= 1");
    }
    if (static_cast<int64_t>(params.prompt.size()) + params.max_tokens > options_.max_context) {
      return km::OutOfRange("prompt + max_tokens exceed the context");
    }
    const std::string prompt = tokenizer_->Decode(params.prompt, false);
    if (prompt.find("KM_QUEUE_FULL") != std::string::npos) {
      return km::ResourceExhausted("request queue is full (fake)");
    }
    if (prompt.find("KM_NOT_READY") != std::string::npos) {
      return km::Unavailable("expert shards are not ready (fake)");
    }
    const bool fail = prompt.find("KM_FAIL_AFTER_3") != std::string::npos;
    const bool endless = prompt.find("KM_ENDLESS") != std::string::npos;
    std::lock_guard<std::mutex> lock(mu_);
    ++counts_["submitted"];
    ++counts_["active"];
    threads_.emplace_back([this, params = std::move(params), stream, fail, endless] {
      Run(params, *stream, fail, endless);
    });
    return km::Status::Ok();
  }

  int64_t max_context() const override { return options_.max_context; }
  bool Ready(std::string*) const override { return true; }

  nlohmann::json Counts() {
    std::lock_guard<std::mutex> lock(mu_);
    return nlohmann::json(counts_);
  }

  void JoinAll() {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }

 private:
  void Count(const char* what) {
    std::lock_guard<std::mutex> lock(mu_);
    ++counts_[what];
    --counts_["active"];
  }

  router::PositionLogprobs MadeUpLogprobs(int32_t token, size_t k, int32_t top) const {
    router::PositionLogprobs out;
    out.logprob = -static_cast<double>(1 + k % 4) / 4;
    for (int32_t j = 0; j < top; ++j) {
      out.top.push_back({(token + 1 + j) % tokenizer_->VocabSize(), out.logprob - 1 - j});
    }
    return out;
  }

  void Run(const router::GenerationParams& params, router::TokenStream& stream, bool fail,
           bool endless) {
    router::Usage usage{static_cast<int64_t>(params.prompt.size()), 0};
    const int32_t top = params.logprobs.value_or(0);
    if (params.prompt_logprobs) {
      std::vector<router::PositionLogprobs> prompt;
      for (size_t k = 1; k < params.prompt.size(); ++k) {
        prompt.push_back(MadeUpLogprobs(params.prompt[k], k, top));
      }
      stream.OnPromptLogprobs(prompt);
      if (params.max_tokens == 0) {
        Count("finished");
        stream.OnFinish(km::Status::Ok(), router::FinishReason::kLength, usage);
        return;
      }
    }
    for (size_t i = 0;; ++i) {
      if (stream.Cancelled()) {
        Count("cancelled");
        stream.OnFinish(km::Status::Ok(), router::FinishReason::kCancelled, usage);
        return;
      }
      if (fail && usage.completion_tokens == 3) {
        Count("finished");
        stream.OnFinish(km::Unavailable("expert shard 1 stopped answering (fake)"),
                        router::FinishReason::kStop, usage);
        return;
      }
      if (i >= script_.size() && !endless) break;
      const int32_t token = script_[i % script_.size()];
      bool stop_token = false;
      for (int32_t s : params.stop_tokens) stop_token = stop_token || s == token;
      if (stop_token) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.token_delay_ms));
      ++usage.completion_tokens;
      router::GeneratedToken out;
      out.id = token;
      if (params.logprobs) out.logprobs = MadeUpLogprobs(token, params.prompt.size() + i, top);
      if (!stream.OnToken(out)) {
        Count(stream.Cancelled() ? "cancelled" : "stopped_by_stream");
        stream.OnFinish(km::Status::Ok(), router::FinishReason::kCancelled, usage);
        return;
      }
      if (usage.completion_tokens >= params.max_tokens) {
        Count("finished");
        stream.OnFinish(km::Status::Ok(), router::FinishReason::kLength, usage);
        return;
      }
    }
    Count("finished");
    stream.OnFinish(km::Status::Ok(), router::FinishReason::kStop, usage);
  }

  const km::Tokenizer* tokenizer_;
  Options options_;
  std::vector<int32_t> script_;
  std::mutex mu_;
  std::map<std::string, int64_t> counts_ = {
      {"submitted", 0}, {"finished", 0}, {"cancelled", 0}, {"stopped_by_stream", 0}, {"active", 0}};
  std::vector<std::thread> threads_;
};

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--port")
      o->port = std::atoi(value.c_str());
    else if (flag == "--host")
      o->host = value;
    else if (flag == "--model")
      o->model = value;
    else if (flag == "--tokenizer")
      o->tokenizer = value;
    else if (flag == "--token-delay-ms")
      o->token_delay_ms = std::atoi(value.c_str());
    else if (flag == "--max-context")
      o->max_context = std::atoll(value.c_str());
    else if (flag == "--reply")
      o->reply = value;
    else
      return false;
  }
  return argc % 2 == 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!ParseArgs(argc, argv, &options)) {
    std::cerr << "usage: openai_fake_server [--port N] [--host H] [--model NAME] "
                 "[--tokenizer FILE] [--token-delay-ms N] [--max-context N] [--reply TEXT]\n";
    return 2;
  }
  auto tokenizer = km::Tokenizer::FromFile(options.tokenizer);
  if (!tokenizer.ok()) {
    std::cerr << tokenizer.status().ToString() << "\n";
    return 1;
  }
  auto chat = router::ChatTemplate::FromSource(router::kDefaultChatTemplate,
                                               "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>");
  if (!chat.ok()) {
    std::cerr << chat.status().ToString() << "\n";
    return 1;
  }
  // A handler, not sigwait: OpenBLAS (linked through the tokenizer's library) starts threads
  // before main that would take the signal's default action.
  if (km::Status installed = km::InstallShutdownSignalHandler(); !installed.ok()) {
    std::cerr << installed.ToString() << "\n";
    return 1;
  }
  FakeService service(&*tokenizer, options);
  km::metrics::Registry registry;
  router::OpenAIHttpOptions http;
  http.host = options.host;
  http.port = options.port;
  http.served_model_name = options.model;
  http.get_routes["/healthz"] = [] { return km::http::HttpReply{200, "text/plain", "ok\n"}; };
  http.get_routes["/readyz"] = [] { return km::http::HttpReply{200, "text/plain", "ready\n"}; };
  http.get_routes["/metrics"] = [&registry] {
    return km::http::HttpReply{200, km::metrics::kContentType, registry.Render()};
  };
  http.get_routes["/debug/cancelled"] = [&service] {
    return km::http::HttpReply{200, "application/json", service.Counts().dump()};
  };
  auto server = router::OpenAIHttpServer::Start(http, &service, &*tokenizer, &*chat, &registry);
  if (!server.ok()) {
    std::cerr << server.status().ToString() << "\n";
    return 1;
  }
  std::cout << "port " << (*server)->port() << std::endl;
  km::WaitForShutdownSignal();
  (*server)->Stop();
  service.JoinAll();
  return 0;
}
