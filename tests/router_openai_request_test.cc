// The OpenAI HTTP layer's pieces that need no network: request parsing and validation
// (router/openai_request.h), prompt preparation (openai_prepare.h), response bodies
// (openai_response.h) and streaming text assembly (stream_text.h).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"
#include "router/chat_template.h"
#include "router/openai_prepare.h"
#include "router/openai_request.h"
#include "router/openai_response.h"
#include "router/stream_text.h"

namespace kubemoe::router {
namespace {

using nlohmann::json;

OpenAIRequest Ok(const json& body, OpenAIEndpoint endpoint = OpenAIEndpoint::kCompletions) {
  OpenAIRequest r;
  ApiError e;
  EXPECT_TRUE(ParseOpenAIRequest(body.dump(), endpoint, &r, &e)) << body << ": " << e.message;
  return r;
}

ApiError Err(const std::string& body, OpenAIEndpoint endpoint = OpenAIEndpoint::kCompletions) {
  OpenAIRequest r;
  ApiError e;
  EXPECT_FALSE(ParseOpenAIRequest(body, endpoint, &r, &e)) << body;
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.type, "invalid_request_error");
  return e;
}
ApiError Err(const json& body, OpenAIEndpoint endpoint = OpenAIEndpoint::kCompletions) {
  return Err(body.dump(), endpoint);
}

constexpr auto kChat = OpenAIEndpoint::kChatCompletions;
const json kMessages = json::array({{{"role", "user"}, {"content", "hi"}}});

TEST(OpenAIRequest, PromptShapes) {
  OpenAIRequest r = Ok({{"prompt", "hello"}});
  EXPECT_FALSE(r.prompt_is_tokens);
  EXPECT_EQ(r.prompt_text, "hello");
  EXPECT_EQ(Ok({{"prompt", {"one"}}}).prompt_text, "one");
  r = Ok({{"prompt", {1, 2, 3}}});
  EXPECT_TRUE(r.prompt_is_tokens);
  EXPECT_EQ(r.prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(Ok({{"prompt", {{4, 5}}}}).prompt_tokens, (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(Ok({{"prompt", ""}}).prompt_text, "");

  EXPECT_EQ(Err(json{{"model", "m"}}).param, "prompt");
  EXPECT_EQ(Err(json{{"prompt", {"a", "b"}}}).param, "prompt");  // batched
  EXPECT_EQ(Err(json{{"prompt", json::array()}}).param, "prompt");
  EXPECT_EQ(Err(json{{"prompt", {json::array()}}}).param, "prompt");
  EXPECT_EQ(Err(json{{"prompt", {1, "a"}}}).param, "prompt");
  EXPECT_EQ(Err(json{{"prompt", {-1}}}).param, "prompt");
  EXPECT_EQ(Err(json{{"prompt", 7}}).param, "prompt");
}

TEST(OpenAIRequest, Messages) {
  json messages = json::array(
      {{{"role", "developer"}, {"content", "rules"}},
       {{"role", "user"},
        {"content", {{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}}}},
       {{"role", "assistant"}, {"content", "ok"}, {"name", "bot"}}});
  OpenAIRequest r = Ok({{"messages", messages}, {"add_generation_prompt", false}}, kChat);
  EXPECT_EQ(r.messages[0], (json{{"role", "system"}, {"content", "rules"}}));
  EXPECT_EQ(r.messages[1]["content"], "a\nb");  // text parts joined as vLLM joins them
  EXPECT_EQ(r.messages[2]["name"], "bot");
  EXPECT_FALSE(r.add_generation_prompt);

  EXPECT_EQ(Err(json::object(), kChat).param, "messages");
  EXPECT_EQ(Err(json{{"messages", json::array()}}, kChat).param, "messages");
  EXPECT_EQ(Err(json{{"messages", "hi"}}, kChat).param, "messages");
  EXPECT_EQ(Err(json{{"messages", {{{"role", "wizard"}, {"content", "x"}}}}}, kChat).param,
            "messages[0].role");
  EXPECT_EQ(Err(json{{"messages", {{{"role", "user"}}}}}, kChat).param, "messages[0].content");
  EXPECT_EQ(
      Err(json{{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}}}}, kChat)
          .param,
      "messages[0].content");
  EXPECT_EQ(
      Err(json{{"messages",
                {{{"role", "assistant"}, {"content", "x"}, {"tool_calls", {{{"id", "1"}}}}}}}},
          kChat)
          .param,
      "messages[0].tool_calls");
}

TEST(OpenAIRequest, SamplingAndLimits) {
  OpenAIRequest r = Ok({{"prompt", "x"},
                        {"temperature", 0},
                        {"top_p", 0.5},
                        {"top_k", 40},
                        {"seed", -1},
                        {"max_tokens", 7.0},
                        {"n", 1},
                        {"ignore_eos", true}});
  EXPECT_EQ(r.temperature, 0.0);
  EXPECT_EQ(r.top_p, 0.5);
  EXPECT_EQ(r.top_k, 40);
  EXPECT_EQ(r.seed, UINT64_MAX);  // -1 modulo 2^64
  EXPECT_EQ(r.max_tokens, 7);     // an integral float passes, as pydantic lets it
  EXPECT_TRUE(r.ignore_eos);
  r = Ok({{"prompt", "x"}});
  EXPECT_EQ(r.temperature, 1.0);  // OpenAI's default
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_FALSE(r.seed.has_value());
  EXPECT_EQ(Ok({{"prompt", "x"}, {"top_k", -1}}).top_k, 0);
  EXPECT_EQ(Ok({{"messages", kMessages}, {"max_tokens", 5}, {"max_completion_tokens", 9}}, kChat)
                .max_tokens,
            9);
  EXPECT_EQ(Ok({{"prompt", "x"}, {"temperature", nullptr}}).temperature, 1.0);  // null = absent

  EXPECT_EQ(Err(json{{"prompt", "x"}, {"temperature", "hot"}}).param, "temperature");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"temperature", 2.5}}).param, "temperature");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"temperature", true}}).param, "temperature");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"top_p", 0}}).param, "top_p");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"max_tokens", 0}}).param, "max_tokens");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"max_tokens", 1.5}}).param, "max_tokens");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"n", 2}}).param, "n");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"seed", "1"}}).param, "seed");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"model", 3}}).param, "model");
}

TEST(OpenAIRequest, StopAndStreaming) {
  EXPECT_EQ(Ok({{"prompt", "x"}, {"stop", "END"}}).stop, (std::vector<std::string>{"END"}));
  EXPECT_EQ(Ok({{"prompt", "x"}, {"stop", {"a", "b", "a"}}}).stop,
            (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Ok({{"prompt", "x"}, {"stop_token_ids", {1, 2}}}).stop_token_ids,
            (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"stop", {""}}}).param, "stop");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"stop", {1}}}).param, "stop");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"stop", std::string(kMaxStopBytes + 1, 'a')}}).param,
            "stop");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"stop", std::vector<std::string>(kMaxStopStrings + 1, "s")}})
                .param,
            "stop");
}

TEST(OpenAIRequest, StreamOptions) {
  OpenAIRequest r =
      Ok({{"prompt", "x"}, {"stream", true}, {"stream_options", {{"include_usage", true}}}});
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"stream_options", {{"include_usage", true}}}}).param,
            "stream_options");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"stream", "yes"}}).param, "stream");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"stream", true}, {"stream_options", {{"include_usage", 1}}}})
                .param,
            "stream_options.include_usage");
}

TEST(OpenAIRequest, UnsupportedFeaturesOnlyAtNeutralValues) {
  Ok({{"prompt", "x"},
      {"presence_penalty", 0},
      {"frequency_penalty", 0.0},
      {"logprobs", nullptr},
      {"echo", false},
      {"best_of", 1},
      {"logit_bias", json::object()},
      {"user", "u"},
      {"some_future_field", {1, 2}}});
  Ok({{"messages", kMessages},
      {"logprobs", false},
      {"tools", json::array()},
      {"tool_choice", "none"},
      {"response_format", {{"type", "text"}}}},
     kChat);
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"presence_penalty", 0.5}}).param, "presence_penalty");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"logprobs", 2}}).param, "logprobs");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"echo", true}}).param, "echo");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"suffix", "tail"}}).param, "suffix");
  EXPECT_EQ(Err(json{{"messages", kMessages}, {"logprobs", true}}, kChat).param, "logprobs");
  EXPECT_EQ(
      Err(json{{"messages", kMessages}, {"response_format", {{"type", "json_object"}}}}, kChat)
          .param,
      "response_format");
}

TEST(OpenAIRequest, MalformedBodies) {
  EXPECT_NE(Err(std::string("{not json")).message.find("not valid JSON"), std::string::npos);
  EXPECT_NE(Err(std::string("[1]")).message.find("JSON object"), std::string::npos);
  EXPECT_NE(Err(std::string("")).message.find("not valid JSON"), std::string::npos);
  EXPECT_NE(Err(std::string("{\"prompt\": \"\xff\"}")).message.find("not valid JSON"),
            std::string::npos);
}

TEST(OpenAIRequest, ErrorJson) {
  ApiError e;
  e.message = "bad";
  e.param = "top_p";
  EXPECT_EQ(ErrorJson(e), (json{{"error",
                                 {{"message", "bad"},
                                  {"type", "invalid_request_error"},
                                  {"param", "top_p"},
                                  {"code", nullptr}}}}));
}

class WithTokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = Tokenizer::FromFile(KUBEMOE_SOURCE_DIR "/tests/data/tokenizer/tokenizer.json");
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tokenizer_ = new Tokenizer(std::move(t).value());
  }
  static void TearDownTestSuite() { delete tokenizer_; }
  static Tokenizer* tokenizer_;
};
Tokenizer* WithTokenizer::tokenizer_ = nullptr;

TEST_F(WithTokenizer, PrepareCompletion) {
  auto chat = ChatTemplate::FromSource(kDefaultChatTemplate, "<B>", "<E>");
  ASSERT_TRUE(chat.ok());
  PrepareLimits limits{64, 16};
  GenerationParams p;
  ApiError e;
  OpenAIRequest r = Ok({{"prompt", "hello world"}, {"temperature", 0.5}, {"stop_token_ids", {9}}});
  ASSERT_TRUE(PrepareGeneration(r, *tokenizer_, *chat, limits, 1234, &p, &e)) << e.message;
  EXPECT_EQ(p.prompt, tokenizer_->Encode("hello world", true));
  EXPECT_EQ(p.prompt.front(), *tokenizer_->BosId());
  EXPECT_EQ(p.max_tokens, 16);
  EXPECT_EQ(p.sampling.seed, 1234u);  // no seed given: the caller's random one
  EXPECT_FLOAT_EQ(p.sampling.temperature, 0.5f);
  EXPECT_EQ(p.stop_tokens, (std::vector<int32_t>{9}));
  EXPECT_TRUE(p.stop_at_eos);

  r = Ok({{"prompt", {1, 2, 3}}, {"seed", 7}, {"max_tokens", 61}});
  ASSERT_TRUE(PrepareGeneration(r, *tokenizer_, *chat, limits, 1234, &p, &e)) << e.message;
  EXPECT_EQ(p.prompt, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(p.sampling.seed, 7u);
  EXPECT_EQ(p.max_tokens, 61);

  r = Ok({{"prompt", {1, 2, 3}}, {"max_tokens", 62}});  // 3 + 62 > 64
  EXPECT_FALSE(PrepareGeneration(r, *tokenizer_, *chat, limits, 0, &p, &e));
  EXPECT_EQ(e.http_status, 413);
  EXPECT_EQ(e.code, "context_length_exceeded");
  EXPECT_NE(e.message.find("maximum context length is 64 tokens"), std::string::npos);
  r = Ok({{"prompt", std::vector<int>(64, 5)}});
  EXPECT_FALSE(PrepareGeneration(r, *tokenizer_, *chat, limits, 0, &p, &e));
  EXPECT_EQ(e.http_status, 413);
  r = Ok({{"prompt", std::vector<int>(60, 5)}});  // the default shrinks to what is left
  ASSERT_TRUE(PrepareGeneration(r, *tokenizer_, *chat, limits, 0, &p, &e));
  EXPECT_EQ(p.max_tokens, 4);
}

TEST_F(WithTokenizer, PrepareChat) {
  auto chat = ChatTemplate::FromSource(kDefaultChatTemplate, "<｜begin▁of▁sentence｜>", "<E>");
  ASSERT_TRUE(chat.ok());
  PrepareLimits limits{128, 16};
  GenerationParams p;
  ApiError e;
  OpenAIRequest r = Ok({{"messages", kMessages}, {"ignore_eos", true}}, kChat);
  ASSERT_TRUE(PrepareGeneration(r, *tokenizer_, *chat, limits, 0, &p, &e)) << e.message;
  // The template supplies BOS; no second one is added.
  EXPECT_EQ(p.prompt, tokenizer_->Encode("<｜begin▁of▁sentence｜>User: hi\n\nAssistant:", false));
  EXPECT_EQ(p.max_tokens, 128 - static_cast<int64_t>(p.prompt.size()));  // chat: the rest
  EXPECT_FALSE(p.stop_at_eos);

  auto strict = ChatTemplate::FromSource(
      "{% if messages[0]['role'] != 'system' %}{{ raise_exception('a system message first') }}"
      "{% endif %}",
      "", "");
  ASSERT_TRUE(strict.ok());
  EXPECT_FALSE(PrepareGeneration(r, *tokenizer_, *strict, limits, 0, &p, &e));
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.param, "messages");
  EXPECT_NE(e.message.find("a system message first"), std::string::npos);
}

TEST_F(WithTokenizer, TextAssemblerHoldsBackSplitCharacters) {
  TextAssembler t(tokenizer_, {}, true);
  const std::string smile = "😀";  // 4 bytes
  EXPECT_EQ(t.AddBytes("a" + smile.substr(0, 1)), "a");
  EXPECT_EQ(t.AddBytes(smile.substr(1, 2)), "");
  EXPECT_EQ(t.AddBytes(smile.substr(3) + "b"), smile + "b");
  EXPECT_EQ(t.AddBytes(smile.substr(0, 2)), "");
  EXPECT_EQ(t.Finish(), smile.substr(0, 2));  // an unfinished tail is released at the end
  EXPECT_EQ(t.text(), "a" + smile + "b" + smile.substr(0, 2));

  // Token by token, the concatenation of what is released is the decoded text.
  TextAssembler u(tokenizer_, {}, true);
  std::string streamed;
  const std::string text = "Ünïcødé ✓ 😀 done";
  for (int32_t id : tokenizer_->Encode(text, false)) streamed += u.Add(id);
  streamed += u.Finish();
  EXPECT_EQ(streamed, text);
}

TEST_F(WithTokenizer, TextAssemblerStopStrings) {
  TextAssembler t(tokenizer_, {"STOP", "xyz"}, true);
  EXPECT_EQ(t.AddBytes("hello S"), "hello ");  // "S" may begin "STOP"
  EXPECT_EQ(t.AddBytes("T"), "");
  EXPECT_EQ(t.AddBytes("x"), "ST");  // not "STOP" after all; but "x" may begin "xyz"
  EXPECT_EQ(t.AddBytes("yz tail"), "");
  EXPECT_TRUE(t.stopped());
  EXPECT_EQ(t.text(), "hello ST");
  EXPECT_EQ(t.AddBytes("more"), "");
  EXPECT_EQ(t.Finish(), "");

  TextAssembler first(tokenizer_, {"bc", "ab"}, true);  // the earliest match wins
  EXPECT_EQ(first.AddBytes("zabc"), "z");
  TextAssembler at_start(tokenizer_, {"He"}, true);
  EXPECT_EQ(at_start.AddBytes("Hello"), "");
  EXPECT_TRUE(at_start.stopped());

  // Special tokens are skipped unless asked for.
  const int32_t bos = *tokenizer_->BosId();
  TextAssembler skip(tokenizer_, {}, true), keep(tokenizer_, {}, false);
  EXPECT_EQ(skip.Add(bos), "");
  EXPECT_EQ(keep.Add(bos), "<｜begin▁of▁sentence｜>");
}

TEST(OpenAIResponse, Shapes) {
  ResponseMeta meta{OpenAIEndpoint::kCompletions, "cmpl-1", 99, "m"};
  Usage usage{3, 2};
  json full = FullResponse(meta, "hi", "length", usage);
  EXPECT_EQ(full["object"], "text_completion");
  EXPECT_EQ(full["choices"][0]["text"], "hi");
  EXPECT_EQ(full["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(full["usage"],
            (json{{"prompt_tokens", 3}, {"completion_tokens", 2}, {"total_tokens", 5}}));

  ResponseMeta chat{OpenAIEndpoint::kChatCompletions, "chatcmpl-1", 99, "m"};
  full = FullResponse(chat, "hi", "stop", usage);
  EXPECT_EQ(full["object"], "chat.completion");
  EXPECT_EQ(full["choices"][0]["message"], (json{{"role", "assistant"}, {"content", "hi"}}));
  json first = StreamChunk(chat, "", true, "");
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"], (json{{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(StreamChunk(chat, "", false, "stop")["choices"][0]["delta"], json::object());
  json last = UsageChunk(chat, usage);
  EXPECT_EQ(last["choices"], json::array());
  EXPECT_EQ(last["usage"]["total_tokens"], 5);

  EXPECT_EQ(SseEvent(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(DumpJson(json("a\xff"
                          "b")),
            "\"a\xEF\xBF\xBD"
            "b\"");  // U+FFFD, never a throw
  EXPECT_STREQ(FinishReasonName(FinishReason::kLength), "length");
  EXPECT_STREQ(FinishReasonName(FinishReason::kStop), "stop");
}

TEST(OpenAIResponse, StatusMapping) {
  EXPECT_EQ(ApiErrorFromStatus(InvalidArgument("x")).http_status, 400);
  EXPECT_EQ(ApiErrorFromStatus(NotFound("x")).http_status, 404);
  EXPECT_EQ(ApiErrorFromStatus(OutOfRange("x")).http_status, 413);
  EXPECT_EQ(ApiErrorFromStatus(ResourceExhausted("x")).http_status, 429);
  EXPECT_EQ(ApiErrorFromStatus(Unavailable("x")).http_status, 503);
  EXPECT_EQ(ApiErrorFromStatus(DeadlineExceeded("x")).http_status, 504);
  ApiError internal = ApiErrorFromStatus(Internal("boom"));
  EXPECT_EQ(internal.http_status, 500);
  EXPECT_EQ(internal.type, "server_error");
}

}  // namespace
}  // namespace kubemoe::router
