#include "router/openai_request.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace kubemoe::router {
namespace {

using nlohmann::json;

std::string JsonTypeName(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    case json::value_t::number_float:
      return "a number";
    default:
      return "an integer";
  }
}

class RequestParser {
 public:
  RequestParser(const json& body, ApiError* error) : body_(body), error_(error) {}

  // Each getter leaves `out` unchanged when the field is absent or null, returns false after
  // filling the error when it has the wrong type or an invalid value.
  bool String(const char* name, std::string* out) {
    const json* v = Find(name);
    if (!v) return true;
    if (!v->is_string()) return TypeError(name, "a string", *v);
    *out = v->get<std::string>();
    return true;
  }

  bool Bool(const char* name, bool* out) {
    const json* v = Find(name);
    if (!v) return true;
    if (!v->is_boolean()) return TypeError(name, "a boolean", *v);
    *out = v->get<bool>();
    return true;
  }

  // A number in [lo, hi]; `lo_open` excludes lo.
  bool Number(const char* name, double lo, double hi, bool lo_open, double* out) {
    const json* v = Find(name);
    if (!v) return true;
    if (!v->is_number()) return TypeError(name, "a number", *v);
    double x = v->get<double>();
    if (!std::isfinite(x) || x > hi || x < lo || (lo_open && x == lo)) {
      return Invalid(name, "'" + std::string(name) + "' must be " + (lo_open ? "> " : ">= ") +
                               Format(lo) + " and <= " + Format(hi) + ", got " + v->dump());
    }
    *out = x;
    return true;
  }

  // An integer (a float with no fractional part passes, as pydantic lets it) in [lo, hi].
  bool Integer(const char* name, int64_t lo, int64_t hi, std::optional<int64_t>* out) {
    const json* v = Find(name);
    if (!v) return true;
    int64_t x = 0;
    if (!AsInteger(*v, &x)) return TypeError(name, "an integer", *v);
    if (x < lo || x > hi) {
      return Invalid(name, "'" + std::string(name) + "' must be between " + std::to_string(lo) +
                               " and " + std::to_string(hi) + ", got " + v->dump());
    }
    *out = x;
    return true;
  }

  // Features we do not implement: accepted only when absent, null or equal to `neutral`.
  bool Neutral(const char* name, const std::vector<json>& neutral) {
    const json* v = Find(name);
    if (!v) return true;
    for (const json& n : neutral) {
      if (*v == n) return true;
    }
    return Invalid(name, "'" + std::string(name) + "' is not supported by this server (got " +
                             Truncate(v->dump()) + ")");
  }

  bool Invalid(const std::string& param, const std::string& message) {
    error_->http_status = 400;
    error_->type = "invalid_request_error";
    error_->param = param;
    error_->message = message;
    error_->code.clear();
    return false;
  }

  bool TypeError(const std::string& name, const std::string& expected, const json& got) {
    return Invalid(name, "Invalid type for '" + name + "': expected " + expected + ", but got " +
                             JsonTypeName(got) + " instead.");
  }

  const json* Find(const char* name) const {
    auto it = body_.find(name);
    return it == body_.end() || it->is_null() ? nullptr : &*it;
  }

  static bool AsInteger(const json& v, int64_t* out) {
    if (v.is_number_integer()) {
      if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
        return false;
      }
      *out = v.get<int64_t>();
      return true;
    }
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e18) {
        *out = static_cast<int64_t>(d);
        return true;
      }
    }
    return false;
  }

  static std::string Format(double x) {
    json j = x;
    return j.dump();
  }
  static std::string Truncate(std::string s) {
    if (s.size() > 80) s = s.substr(0, 77) + "...";
    return s;
  }

 private:
  const json& body_;
  ApiError* error_;
};

bool ParsePrompt(const json& body, RequestParser& p, OpenAIRequest* r) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return p.Invalid("prompt", "'prompt' is required");
  const json& prompt = *it;
  if (prompt.is_string()) {
    r->prompt_text = prompt.get<std::string>();
    return true;
  }
  const char* shape =
      "'prompt' must be a string, a list of one string, or a list of token ids (integers)";
  if (!prompt.is_array() || prompt.empty()) return p.Invalid("prompt", shape);
  const json* ids = &prompt;
  if (prompt[0].is_string() || prompt[0].is_array()) {
    if (prompt.size() != 1) {
      return p.Invalid("prompt", "batched prompts are not supported: send one prompt per request");
    }
    if (prompt[0].is_string()) {
      r->prompt_text = prompt[0].get<std::string>();
      return true;
    }
    ids = &prompt[0];
    if (ids->empty()) return p.Invalid("prompt", "'prompt' must not be an empty list of tokens");
  }
  r->prompt_is_tokens = true;
  for (const json& id : *ids) {
    int64_t x = 0;
    if (!RequestParser::AsInteger(id, &x)) return p.Invalid("prompt", shape);
    if (x < 0 || x > INT32_MAX) {
      return p.Invalid("prompt", "token id " + id.dump() + " in 'prompt' is out of range");
    }
    r->prompt_tokens.push_back(static_cast<int32_t>(x));
  }
  return true;
}

// One message's content as a string: a string, or text parts joined with "\n".
bool MessageContent(const json& content, size_t index, RequestParser& p, std::string* out) {
  const std::string param = "messages[" + std::to_string(index) + "].content";
  if (content.is_string()) {
    *out = content.get<std::string>();
    return true;
  }
  if (!content.is_array()) {
    return p.Invalid(param, "'" + param + "' must be a string or a list of text parts");
  }
  for (size_t k = 0; k < content.size(); ++k) {
    const json& part = content[k];
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
      return p.Invalid(param, "'" + param + "' parts must be objects with a string 'type'");
    }
    const std::string type = part["type"].get<std::string>();
    if (type != "text") {
      return p.Invalid(param, "content parts of type '" + type + "' are not supported");
    }
    if (!part.contains("text") || !part["text"].is_string()) {
      return p.Invalid(param, "text parts of '" + param + "' need a string 'text'");
    }
    if (k > 0) *out += "\n";
    *out += part["text"].get<std::string>();
  }
  return true;
}

bool ParseMessages(const json& body, RequestParser& p, OpenAIRequest* r) {
  static const std::set<std::string> kRoles = {"system", "developer", "user", "assistant", "tool"};
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) return p.Invalid("messages", "'messages' is required");
  if (!it->is_array()) return p.TypeError("messages", "an array", *it);
  if (it->empty()) return p.Invalid("messages", "'messages' must not be empty");
  r->messages = json::array();
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return p.TypeError(param, "an object", m);
    auto role = m.find("role");
    if (role == m.end() || !role->is_string() || !kRoles.count(role->get<std::string>())) {
      return p.Invalid(
          param + ".role",
          "'" + param + ".role' must be one of system, developer, user, assistant, tool");
    }
    auto tool_calls = m.find("tool_calls");
    if (tool_calls != m.end() && !tool_calls->is_null() && !tool_calls->empty()) {
      return p.Invalid(param + ".tool_calls", "tool calls are not supported");
    }
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      return p.Invalid(param + ".content", "'" + param + ".content' is required");
    }
    json out = json::object();
    std::string role_name = role->get<std::string>();
    out["role"] = role_name == "developer" ? "system" : role_name;
    std::string text;
    if (!MessageContent(*content, i, p, &text)) return false;
    out["content"] = std::move(text);
    auto name = m.find("name");
    if (name != m.end() && !name->is_null()) {
      if (!name->is_string()) return p.TypeError(param + ".name", "a string", *name);
      out["name"] = *name;
    }
    r->messages.push_back(std::move(out));
  }
  return true;
}

bool ParseStop(const json& body, RequestParser& p, OpenAIRequest* r) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return true;
  std::vector<std::string> stops;
  if (it->is_string()) {
    stops.push_back(it->get<std::string>());
  } else if (it->is_array()) {
    for (const json& s : *it) {
      if (!s.is_string()) return p.Invalid("stop", "'stop' must be a string or a list of strings");
      stops.push_back(s.get<std::string>());
    }
  } else {
    return p.TypeError("stop", "a string or a list of strings", *it);
  }
  // Bounds keep the per-token stop search cheap (router/stream_text.h).
  if (stops.size() > kMaxStopStrings) {
    return p.Invalid("stop", "at most " + std::to_string(kMaxStopStrings) + " stop strings");
  }
  for (const auto& s : stops) {
    if (s.empty()) return p.Invalid("stop", "stop strings must not be empty");
    if (s.size() > kMaxStopBytes) {
      return p.Invalid("stop",
                       "stop strings must be at most " + std::to_string(kMaxStopBytes) + " bytes");
    }
    if (std::find(r->stop.begin(), r->stop.end(), s) == r->stop.end()) r->stop.push_back(s);
  }
  return true;
}

bool ParseStopTokenIds(const json& body, RequestParser& p, OpenAIRequest* r) {
  auto it = body.find("stop_token_ids");
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_array()) return p.TypeError("stop_token_ids", "a list of integers", *it);
  for (const json& id : *it) {
    int64_t x = 0;
    if (!RequestParser::AsInteger(id, &x) || x < 0 || x > INT32_MAX) {
      return p.Invalid("stop_token_ids", "'stop_token_ids' must be token ids (integers >= 0)");
    }
    r->stop_token_ids.push_back(static_cast<int32_t>(x));
  }
  return true;
}

bool ParseSampling(RequestParser& p, OpenAIRequest* r) {
  std::optional<int64_t> top_k, seed;
  if (!p.Number("temperature", 0.0, 2.0, false, &r->temperature) ||
      !p.Number("top_p", 0.0, 1.0, true, &r->top_p) || !p.Integer("top_k", -1, INT32_MAX, &top_k) ||
      !p.Integer("seed", INT64_MIN, INT64_MAX, &seed)) {
    return false;
  }
  if (top_k && *top_k > 0) r->top_k = static_cast<int32_t>(*top_k);
  if (seed) r->seed = static_cast<uint64_t>(*seed);
  return true;
}

bool ParseStreaming(const json& body, RequestParser& p, OpenAIRequest* r) {
  if (!p.Bool("stream", &r->stream)) return false;
  auto it = body.find("stream_options");
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_object()) return p.TypeError("stream_options", "an object", *it);
  if (!r->stream) {
    return p.Invalid("stream_options", "'stream_options' is only allowed when 'stream' is true");
  }
  auto usage = it->find("include_usage");
  if (usage != it->end() && !usage->is_null()) {
    if (!usage->is_boolean()) {
      return p.TypeError("stream_options.include_usage", "a boolean", *usage);
    }
    r->include_usage = usage->get<bool>();
  }
  return true;
}

// Before ParseLimits: max_tokens 0 depends on echo.
bool ParseLogprobs(RequestParser& p, OpenAIRequest* r) {
  if (!p.Bool("return_tokens_as_token_ids", &r->return_tokens_as_token_ids)) return false;
  std::optional<int64_t> n;
  if (r->endpoint == OpenAIEndpoint::kCompletions) {
    if (!p.Integer("logprobs", 0, kMaxTopLogprobs, &n) || !p.Bool("echo", &r->echo)) return false;
    if (n) r->logprobs = static_cast<int32_t>(*n);
    return p.Neutral("top_logprobs", {json(0)});
  }
  bool wanted = false;
  if (!p.Bool("logprobs", &wanted) || !p.Integer("top_logprobs", 0, kMaxTopLogprobs, &n)) {
    return false;
  }
  if (n && !wanted) {
    return p.Invalid("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
  }
  if (wanted) r->logprobs = static_cast<int32_t>(n.value_or(0));
  const json* echo = p.Find("echo");
  if (echo && *echo != false) {
    return p.Invalid("echo", "'echo' is only supported by /v1/completions");
  }
  return true;
}

bool ParseLimits(RequestParser& p, OpenAIRequest* r) {
  std::optional<int64_t> n;
  if (!p.Integer("n", 1, INT32_MAX, &n)) return false;
  if (n && *n != 1) return p.Invalid("n", "'n' must be 1: one choice per request is supported");
  std::optional<int64_t> max_tokens, max_completion_tokens;
  if (!p.Integer("max_tokens", 0, INT32_MAX, &max_tokens)) return false;
  if (max_tokens && *max_tokens == 0 && !r->echo) {
    return p.Invalid("max_tokens", "'max_tokens' must be at least 1 (0 only with 'echo': true)");
  }
  if (r->endpoint == OpenAIEndpoint::kChatCompletions &&
      !p.Integer("max_completion_tokens", 1, INT32_MAX, &max_completion_tokens)) {
    return false;
  }
  r->max_tokens = max_completion_tokens ? max_completion_tokens : max_tokens;
  return true;
}

bool ParseUnsupported(RequestParser& p, OpenAIEndpoint endpoint) {
  const json zero = 0, one = 1;
  if (!p.Neutral("presence_penalty", {zero}) || !p.Neutral("frequency_penalty", {zero}) ||
      !p.Neutral("repetition_penalty", {one}) || !p.Neutral("min_p", {zero}) ||
      !p.Neutral("min_tokens", {zero}) || !p.Neutral("logit_bias", {json::object()}) ||
      !p.Neutral("best_of", {one}) || !p.Neutral("response_format", {json{{"type", "text"}}}) ||
      !p.Neutral("tools", {json::array()}) || !p.Neutral("tool_choice", {"none", "auto"})) {
    return false;
  }
  return endpoint != OpenAIEndpoint::kCompletions || p.Neutral("suffix", {""});
}

}  // namespace

json ErrorJson(const ApiError& error) {
  json e = {
      {"message", error.message}, {"type", error.type}, {"param", nullptr}, {"code", nullptr}};
  if (!error.param.empty()) e["param"] = error.param;
  if (!error.code.empty()) e["code"] = error.code;
  return {{"error", std::move(e)}};
}

bool ParseOpenAIRequest(std::string_view body_text, OpenAIEndpoint endpoint, OpenAIRequest* request,
                        ApiError* error) {
  *request = OpenAIRequest();
  request->endpoint = endpoint;
  json body = json::parse(body_text, nullptr, /*allow_exceptions=*/false);
  RequestParser p(body, error);
  if (body.is_discarded()) return p.Invalid("", "the request body is not valid JSON");
  if (!body.is_object()) return p.Invalid("", "the request body must be a JSON object");
  try {
    if (!p.String("model", &request->model)) return false;
    if (endpoint == OpenAIEndpoint::kCompletions) {
      if (!ParsePrompt(body, p, request)) return false;
    } else {
      if (!ParseMessages(body, p, request)) return false;
      if (!p.Bool("add_generation_prompt", &request->add_generation_prompt)) return false;
    }
    std::string user;
    return ParseLogprobs(p, request) && ParseLimits(p, request) && ParseSampling(p, request) &&
           ParseStop(body, p, request) && ParseStopTokenIds(body, p, request) &&
           p.Bool("ignore_eos", &request->ignore_eos) &&
           p.Bool("skip_special_tokens", &request->skip_special_tokens) &&
           ParseStreaming(body, p, request) && p.String("user", &user) &&
           ParseUnsupported(p, endpoint);
  } catch (const json::exception& e) {  // a bug here must not take the server down
    return p.Invalid("", std::string("invalid request: ") + e.what());
  }
}

}  // namespace kubemoe::router
