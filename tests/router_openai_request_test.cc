// The OpenAI HTTP layer's pieces that need no network: request parsing and validation
// (router/openai_request.h), prompt preparation (openai_prepare.h), response bodies
// (openai_response.h) and streaming text assembly (stream_text.h).
#include <gtest/gtest.h>

#include <limits>
#include <nlohmann/json.hpp>

#include "model/tokenizer.h"
#include "router/chat_template.h"
#include "router/openai_logprobs.h"
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
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"suffix", "tail"}}).param, "suffix");
  EXPECT_EQ(
      Err(json{{"messages", kMessages}, {"response_format", {{"type", "json_object"}}}}, kChat)
          .param,
      "response_format");
}

TEST(OpenAIRequest, CompletionLogprobsAndEcho) {
  OpenAIRequest r = Ok({{"prompt", "x"}});
  EXPECT_FALSE(r.logprobs.has_value());
  EXPECT_FALSE(r.echo);
  EXPECT_FALSE(Ok({{"prompt", "x"}, {"logprobs", nullptr}}).logprobs.has_value());
  EXPECT_EQ(Ok({{"prompt", "x"}, {"logprobs", 0}}).logprobs, 0);
  EXPECT_EQ(Ok({{"prompt", "x"}, {"logprobs", 20}}).logprobs, 20);
  EXPECT_EQ(Ok({{"prompt", "x"}, {"logprobs", 3.0}}).logprobs, 3);
  // lm-evaluation-harness's loglikelihood request, exactly.
  r = Ok(json::parse(R"({"model": "m", "prompt": [[1, 5, 9]], "temperature": 0, "max_tokens": 1,
                         "logprobs": 1, "seed": 1234, "echo": true})"));
  EXPECT_TRUE(r.echo);
  EXPECT_EQ(r.logprobs, 1);
  EXPECT_EQ(r.max_tokens, 1);
  EXPECT_EQ(r.prompt_tokens, (std::vector<int32_t>{1, 5, 9}));
  // max_tokens 0: only with echo (the prompt's logprobs, nothing generated).
  EXPECT_EQ(Ok({{"prompt", "x"}, {"echo", true}, {"max_tokens", 0}, {"logprobs", 0}}).max_tokens,
            0);
  EXPECT_EQ(Ok({{"prompt", "x"}, {"echo", true}, {"top_logprobs", 0}}).logprobs, std::nullopt);

  EXPECT_EQ(Err(json{{"prompt", "x"}, {"logprobs", -1}}).param, "logprobs");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"logprobs", 21}}).param, "logprobs");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"logprobs", true}}).param, "logprobs");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"logprobs", "3"}}).param, "logprobs");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"logprobs", 1.5}}).param, "logprobs");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"echo", 1}}).param, "echo");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"echo", "true"}}).param, "echo");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"max_tokens", 0}, {"logprobs", 1}}).param, "max_tokens");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"echo", true}, {"max_tokens", -1}}).param, "max_tokens");
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"top_logprobs", 2}}).param, "top_logprobs");
}

TEST(OpenAIRequest, ChatLogprobs) {
  EXPECT_FALSE(Ok({{"messages", kMessages}}, kChat).logprobs.has_value());
  EXPECT_FALSE(Ok({{"messages", kMessages}, {"logprobs", false}}, kChat).logprobs.has_value());
  EXPECT_EQ(Ok({{"messages", kMessages}, {"logprobs", true}}, kChat).logprobs, 0);
  EXPECT_EQ(Ok({{"messages", kMessages}, {"logprobs", true}, {"top_logprobs", 20}}, kChat).logprobs,
            20);
  EXPECT_FALSE(
      Ok({{"messages", kMessages}, {"logprobs", nullptr}, {"top_logprobs", nullptr}}, kChat)
          .logprobs.has_value());
  Ok({{"messages", kMessages}, {"echo", false}}, kChat);

  EXPECT_EQ(Err(json{{"messages", kMessages}, {"logprobs", 2}}, kChat).param, "logprobs");
  EXPECT_EQ(Err(json{{"messages", kMessages}, {"logprobs", "true"}}, kChat).param, "logprobs");
  EXPECT_EQ(Err(json{{"messages", kMessages}, {"top_logprobs", 2}}, kChat).param, "top_logprobs");
  EXPECT_EQ(
      Err(json{{"messages", kMessages}, {"logprobs", false}, {"top_logprobs", 0}}, kChat).param,
      "top_logprobs");
  EXPECT_EQ(
      Err(json{{"messages", kMessages}, {"logprobs", true}, {"top_logprobs", 21}}, kChat).param,
      "top_logprobs");
  EXPECT_EQ(
      Err(json{{"messages", kMessages}, {"logprobs", true}, {"top_logprobs", -1}}, kChat).param,
      "top_logprobs");
  EXPECT_EQ(
      Err(json{{"messages", kMessages}, {"logprobs", true}, {"top_logprobs", 2.5}}, kChat).param,
      "top_logprobs");
  EXPECT_EQ(Err(json{{"messages", kMessages}, {"echo", true}}, kChat).param, "echo");
  EXPECT_EQ(Err(json{{"messages", kMessages}, {"max_tokens", 0}}, kChat).param, "max_tokens");
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

TEST_F(WithTokenizer, PrepareLogprobs) {
  auto chat = ChatTemplate::FromSource(kDefaultChatTemplate, "<B>", "<E>");
  ASSERT_TRUE(chat.ok());
  PrepareLimits limits{64, 16};
  GenerationParams p;
  ApiError e;
  OpenAIRequest r = Ok({{"prompt", "x"}});
  ASSERT_TRUE(PrepareGeneration(r, *tokenizer_, *chat, limits, 0, &p, &e)) << e.message;
  EXPECT_FALSE(p.logprobs.has_value());
  EXPECT_FALSE(p.prompt_logprobs);

  r = Ok({{"prompt", "x"}, {"logprobs", 3}});
  ASSERT_TRUE(PrepareGeneration(r, *tokenizer_, *chat, limits, 0, &p, &e)) << e.message;
  EXPECT_EQ(p.logprobs, 3);
  EXPECT_FALSE(p.prompt_logprobs);  // no echo: the prompt's are not reported

  r = Ok({{"prompt", {1, 2, 3}}, {"logprobs", 1}, {"echo", true}, {"max_tokens", 1}});
  ASSERT_TRUE(PrepareGeneration(r, *tokenizer_, *chat, limits, 0, &p, &e)) << e.message;
  EXPECT_EQ(p.logprobs, 1);
  EXPECT_TRUE(p.prompt_logprobs);
  EXPECT_EQ(p.max_tokens, 1);

  // max_tokens 0: prefill only; the prompt may then fill the whole context.
  r = Ok({{"prompt", std::vector<int>(64, 5)}, {"echo", true}, {"max_tokens", 0}});
  ASSERT_TRUE(PrepareGeneration(r, *tokenizer_, *chat, limits, 0, &p, &e)) << e.message;
  EXPECT_EQ(p.max_tokens, 0);
  EXPECT_TRUE(p.prompt_logprobs);
  r = Ok({{"prompt", std::vector<int>(65, 5)}, {"echo", true}, {"max_tokens", 0}});
  EXPECT_FALSE(PrepareGeneration(r, *tokenizer_, *chat, limits, 0, &p, &e));
  EXPECT_EQ(e.http_status, 413);

  r = Ok({{"messages", kMessages}, {"logprobs", true}, {"top_logprobs", 4}}, kChat);
  ASSERT_TRUE(PrepareGeneration(r, *tokenizer_, *chat, limits, 0, &p, &e)) << e.message;
  EXPECT_EQ(p.logprobs, 4);
  EXPECT_FALSE(p.prompt_logprobs);
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

TEST(OpenAILogprobs, TokenStringsCarryIncompleteCharacters) {
  std::string rest = "unchanged";
  EXPECT_EQ(TokenString("", "abc", &rest), "abc");
  EXPECT_EQ(rest, "");
  EXPECT_EQ(TokenString("", "a\xE2\x9C", &rest), "a");  // "✓" = E2 9C 93, cut after 2 bytes
  EXPECT_EQ(rest, "\xE2\x9C");
  EXPECT_EQ(TokenString(rest, "\x93!", &rest), "✓!");
  EXPECT_EQ(rest, "");
  EXPECT_EQ(TokenString("", "\xF0\x9F\x98", &rest), "");  // 3 of 😀's 4 bytes
  EXPECT_EQ(rest, "\xF0\x9F\x98");
  // Bytes that can never become a character read as U+FFFD, one per maximal invalid part.
  EXPECT_EQ(TokenString("", "\x93", nullptr), "\uFFFD");
  EXPECT_EQ(TokenString("", std::string("a\xFF\xFE") + "b", nullptr), "a\uFFFD\uFFFDb");
  EXPECT_EQ(TokenString("", "\xE2\x28", nullptr), "\uFFFD(");
  EXPECT_EQ(TokenString("", "\xE2\x9C\x28", nullptr), "\uFFFD(");
  EXPECT_EQ(TokenString("", "\xED\xA0\x80", nullptr), "\uFFFD\uFFFD\uFFFD");  // a surrogate
}

TEST_F(WithTokenizer, CompletionLogprobsJson) {
  const std::string text = "Hi ✓ 😀 ok";
  const std::vector<int32_t> ids = tokenizer_->Encode(text, false);
  LogprobsBuilder b(tokenizer_, OpenAIEndpoint::kCompletions);
  EXPECT_FALSE(b.pending());
  b.Add(ids[0], nullptr);  // an echoed first prompt token
  for (size_t i = 1; i < ids.size(); ++i) {
    PositionLogprobs lp{-0.5 - static_cast<double>(i), {{ids[i], -0.5 - static_cast<double>(i)}}};
    lp.top.push_back({0, -std::numeric_limits<double>::infinity()});
    b.Add(ids[i], &lp);
  }
  EXPECT_TRUE(b.pending());
  json out = b.Take();
  EXPECT_FALSE(b.pending());
  ASSERT_EQ(out["tokens"].size(), ids.size());
  std::string joined;
  int64_t offset = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string token = out["tokens"][i].get<std::string>();
    EXPECT_EQ(out["text_offset"][i], offset) << i;
    joined += token;
    for (unsigned char c : token) offset += (c & 0xC0) != 0x80;  // code points
  }
  EXPECT_EQ(joined, text);  // split characters appear whole on the token that completes them
  EXPECT_TRUE(out["token_logprobs"][0].is_null());
  EXPECT_TRUE(out["top_logprobs"][0].is_null());
  for (size_t i = 1; i < ids.size(); ++i) {
    const json& top = out["top_logprobs"][i];
    const std::string token = out["tokens"][i].get<std::string>();
    EXPECT_DOUBLE_EQ(out["token_logprobs"][i].get<double>(), -0.5 - static_cast<double>(i));
    ASSERT_TRUE(top.contains(token)) << top;
    EXPECT_DOUBLE_EQ(top[token].get<double>(), -0.5 - static_cast<double>(i));
    ASSERT_LE(top.size(), 2u);
    bool clamped = false;  // -inf is sent as -9999.0, as vLLM does
    for (const auto& entry : top.items()) clamped = clamped || entry.value() == -9999.0;
    EXPECT_TRUE(clamped || top.size() == 1) << top;  // 1: token 0's string is the token's
  }

  // The next Take holds only what came after, with offsets continuing.
  PositionLogprobs lp{-1.0, {}};
  b.Add(ids[1], &lp);
  json next = b.Take();
  EXPECT_EQ(next["tokens"].size(), 1u);
  EXPECT_EQ(next["text_offset"][0], offset);
  EXPECT_EQ(next["top_logprobs"][0].size(), 1u);  // logprobs 0: the token itself
}

TEST_F(WithTokenizer, CompletionTopLogprobsKeepTheHigherOfEqualStrings) {
  // Two single-byte tokens that are lone UTF-8 continuation bytes both read as U+FFFD.
  std::vector<int32_t> lone;
  for (int32_t id = 0; id < tokenizer_->VocabSize() && lone.size() < 2; ++id) {
    const std::string bytes = tokenizer_->TokenBytes(id);
    if (bytes.size() == 1 && (static_cast<unsigned char>(bytes[0]) & 0xC0) == 0x80) {
      lone.push_back(id);
    }
  }
  ASSERT_EQ(lone.size(), 2u);
  const int32_t a = tokenizer_->Encode("a", false).at(0);
  LogprobsBuilder b(tokenizer_, OpenAIEndpoint::kCompletions);
  PositionLogprobs lp{-3.0, {{lone[0], -1.0}, {lone[1], -0.5}}};
  b.Add(a, &lp);
  json top = b.Take()["top_logprobs"][0];
  EXPECT_EQ(top, (json{{"a", -3.0}, {"\uFFFD", -0.5}}));
}

TEST_F(WithTokenizer, ChatLogprobsJson) {
  const std::vector<int32_t> ids = tokenizer_->Encode("✓", false);
  ASSERT_GE(ids.size(), 1u);
  LogprobsBuilder b(tokenizer_, OpenAIEndpoint::kChatCompletions);
  std::string bytes;
  for (int32_t id : ids) {
    PositionLogprobs lp{-0.25, {{id, -0.25}, {7, -2.0}}};
    b.Add(id, &lp);
  }
  json out = b.Take();
  ASSERT_EQ(out["content"].size(), ids.size());
  std::string joined;
  for (size_t i = 0; i < ids.size(); ++i) {
    const json& e = out["content"][i];
    joined += e["token"].get<std::string>();
    EXPECT_EQ(e["logprob"], -0.25);
    for (const json& byte : e["bytes"]) bytes.push_back(static_cast<char>(byte.get<int>()));
    ASSERT_EQ(e["top_logprobs"].size(), 2u);
    EXPECT_EQ(e["top_logprobs"][0]["logprob"], -0.25);
    EXPECT_EQ(e["top_logprobs"][0]["token"], e["token"]);
    EXPECT_EQ(e["top_logprobs"][1]["logprob"], -2.0);
    EXPECT_TRUE(e["top_logprobs"][1]["bytes"].is_array());
  }
  EXPECT_EQ(joined, "✓");
  EXPECT_EQ(bytes, "✓");  // the raw bytes of each token, joined
  EXPECT_EQ(LogprobsBuilder(tokenizer_, OpenAIEndpoint::kChatCompletions).Take(),
            (json{{"content", json::array()}}));
}

TEST_F(WithTokenizer, TokensAsTokenIds) {
  EXPECT_TRUE(
      Ok({{"prompt", "x"}, {"return_tokens_as_token_ids", true}}).return_tokens_as_token_ids);
  EXPECT_EQ(Err(json{{"prompt", "x"}, {"return_tokens_as_token_ids", 1}}).param,
            "return_tokens_as_token_ids");
  LogprobsBuilder b(tokenizer_, OpenAIEndpoint::kCompletions, /*tokens_as_ids=*/true);
  PositionLogprobs lp{-1.0, {{12, -0.5}}};
  b.Add(7, nullptr);
  b.Add(9, &lp);
  json out = b.Take();
  EXPECT_EQ(out["tokens"], (json{"token_id:7", "token_id:9"}));
  EXPECT_EQ(out["top_logprobs"][1], (json{{"token_id:9", -1.0}, {"token_id:12", -0.5}}));
  EXPECT_EQ(out["text_offset"], (json{0, 10}));
}

TEST(OpenAIResponse, LogprobsInResponses) {
  ResponseMeta meta{OpenAIEndpoint::kCompletions, "cmpl-1", 99, "m"};
  const json lp = {{"tokens", {"a"}}};
  EXPECT_TRUE(FullResponse(meta, "a", "stop", {})["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(FullResponse(meta, "a", "stop", {}, lp)["choices"][0]["logprobs"], lp);
  EXPECT_EQ(StreamChunk(meta, "a", false, "", lp)["choices"][0]["logprobs"], lp);
  ResponseMeta chat{OpenAIEndpoint::kChatCompletions, "chatcmpl-1", 99, "m"};
  // A chunk with logprobs carries "content" even when its text is held back.
  json chunk = StreamChunk(chat, "", false, "", {{"content", json::array()}});
  EXPECT_EQ(chunk["choices"][0]["delta"], (json{{"content", ""}}));
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
