#include "router/openai_logprobs.h"

#include <algorithm>
#include <cmath>

namespace kubemoe::router {

using nlohmann::json;

namespace {

// `bytes` with every maximal invalid UTF-8 subsequence replaced by U+FFFD (Unicode's "maximal
// subpart" rule, as Python's errors="replace" and the tokenizer's Decode apply it).
std::string RepairUtf8(std::string_view bytes) {
  std::string out;
  size_t i = 0;
  while (i < bytes.size()) {
    const auto lead = static_cast<unsigned char>(bytes[i]);
    size_t length = 0;                   // 0: not a lead byte
    unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
    if (lead < 0x80) {
      length = 1;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) lo = 0xA0;  // no overlong forms
      if (lead == 0xED) hi = 0x9F;  // no surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) lo = 0x90;
      if (lead == 0xF4) hi = 0x8F;  // <= U+10FFFF
    }
    size_t n = 1;  // bytes of a well-formed prefix of a character
    while (n < length && i + n < bytes.size()) {
      const auto c = static_cast<unsigned char>(bytes[i + n]);
      if (c < (n == 1 ? lo : 0x80) || c > (n == 1 ? hi : 0xBF)) break;
      ++n;
    }
    if (length > 0 && n == length) {
      out.append(bytes.substr(i, n));
    } else {
      out += "\xEF\xBF\xBD";
    }
    i += n;
  }
  return out;
}

// Unicode code points of valid UTF-8 (Python's len()).
int64_t CodePoints(std::string_view text) {
  int64_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

double Finite(double logprob) { return std::isnan(logprob) ? -9999.0 : std::max(logprob, -9999.0); }

json ByteList(std::string_view bytes) {
  json out = json::array();
  for (char c : bytes) out.push_back(static_cast<unsigned char>(c));
  return out;
}

}  // namespace

std::string TokenString(std::string_view carry, std::string_view bytes, std::string* rest) {
  std::string all(carry);
  all.append(bytes);
  const size_t complete = CompleteUtf8Prefix(all);
  if (rest != nullptr) *rest = all.substr(complete);
  return RepairUtf8(std::string_view(all).substr(0, complete));
}

LogprobsBuilder::LogprobsBuilder(const Tokenizer* tokenizer, OpenAIEndpoint endpoint,
                                 bool tokens_as_ids)
    : tokenizer_(tokenizer),
      chat_(endpoint == OpenAIEndpoint::kChatCompletions),
      tokens_as_ids_(tokens_as_ids),
      json_(Reset()) {}

json LogprobsBuilder::Reset() const {
  if (chat_) return {{"content", json::array()}};
  return {{"tokens", json::array()},
          {"token_logprobs", json::array()},
          {"top_logprobs", json::array()},
          {"text_offset", json::array()}};
}

void LogprobsBuilder::Add(int32_t token, const PositionLogprobs* logprobs) {
  const std::string carry = carry_;
  const std::string bytes = tokenizer_->TokenBytes(token);
  std::string text = TokenString(carry, bytes, &carry_);
  auto alternative = [&](int32_t id) {
    if (tokens_as_ids_) return "token_id:" + std::to_string(id);
    return TokenString(carry, tokenizer_->TokenBytes(id), nullptr);
  };
  if (tokens_as_ids_) text = alternative(token);
  ++pending_;
  if (chat_) {
    json entry = {{"token", text},
                  {"logprob", logprobs ? json(Finite(logprobs->logprob)) : json(nullptr)},
                  {"bytes", ByteList(bytes)},
                  {"top_logprobs", json::array()}};
    if (logprobs != nullptr) {
      for (const TokenLogprob& t : logprobs->top) {
        entry["top_logprobs"].push_back({{"token", alternative(t.token)},
                                         {"logprob", Finite(t.logprob)},
                                         {"bytes", ByteList(tokenizer_->TokenBytes(t.token))}});
      }
    }
    json_["content"].push_back(std::move(entry));
    return;
  }
  json_["tokens"].push_back(text);
  json_["text_offset"].push_back(offset_);
  offset_ += CodePoints(text);
  if (logprobs == nullptr) {
    json_["token_logprobs"].push_back(nullptr);
    json_["top_logprobs"].push_back(nullptr);
    return;
  }
  json_["token_logprobs"].push_back(Finite(logprobs->logprob));
  json top = json::object();
  auto put = [&top](const std::string& key, double logprob) {
    auto it = top.find(key);
    if (it == top.end() || it->get<double>() < logprob) top[key] = logprob;
  };
  put(text, Finite(logprobs->logprob));
  for (const TokenLogprob& t : logprobs->top) put(alternative(t.token), Finite(t.logprob));
  json_["top_logprobs"].push_back(std::move(top));
}

json LogprobsBuilder::Take() {
  json out = std::move(json_);
  json_ = Reset();
  pending_ = 0;
  return out;
}

}  // namespace kubemoe::router
