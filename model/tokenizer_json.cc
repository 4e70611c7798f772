// Loading tokenizer.json into Tokenizer::Impl. Every error names the source and the JSON field.
#include <algorithm>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "model/tokenizer_impl.h"

namespace kubemoe {
namespace {

using nlohmann::json;
using tokenizer_internal::AddedToken;
using tokenizer_internal::BpeOptions;
using tokenizer_internal::TokenMap;

// Builds messages of the form "<source>: <field>: <what>".
class Context {
 public:
  explicit Context(std::string_view source) : source_(source) {}
  Status Invalid(const std::string& field, const std::string& what) const {
    return InvalidArgument(source_ + ": " + field + ": " + what);
  }
  Status Unsupported(const std::string& field, const std::string& what) const {
    return Status(StatusCode::kUnimplemented, source_ + ": " + field + ": " + what);
  }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
};

const char* TypeName(const json& value) { return value.type_name(); }

// Reads an optional boolean member; absent or null leaves `*out` alone.
Status ReadBool(const Context& ctx, const json& object, const char* key, const std::string& field,
                bool* out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return Status::Ok();
  if (!it->is_boolean()) {
    return ctx.Invalid(field + "." + key, std::string("must be a boolean, not ") + TypeName(*it));
  }
  *out = it->get<bool>();
  return Status::Ok();
}

Status ReadId(const Context& ctx, const json& value, const std::string& field, int32_t* out) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0 ||
      value.get<int64_t>() > std::numeric_limits<int32_t>::max() - 1) {
    return ctx.Invalid(field, "must be a non-negative 32-bit integer id, not " + value.dump());
  }
  *out = static_cast<int32_t>(value.get<int64_t>());
  return Status::Ok();
}

// The "type" member of a component object.
StatusOr<std::string> ReadType(const Context& ctx, const json& object, const std::string& field) {
  if (!object.is_object()) {
    return ctx.Invalid(field, std::string("must be an object or null, not ") + TypeName(object));
  }
  auto it = object.find("type");
  if (it == object.end() || !it->is_string()) {
    return ctx.Invalid(field + ".type", "missing or not a string");
  }
  return it->get<std::string>();
}

Status ReadModel(const Context& ctx, const json& model, bool byte_level,
                 std::unique_ptr<tokenizer_internal::BpeModel>* out) {
  if (!model.is_object()) {
    return ctx.Invalid("model", std::string("must be an object, not ") + TypeName(model));
  }
  if (auto type = model.find("type"); type != model.end() && *type != "BPE") {
    return ctx.Unsupported("model.type", "only BPE models are supported, not " + type->dump());
  }
  auto vocab_json = model.find("vocab");
  if (vocab_json == model.end() || !vocab_json->is_object()) {
    return ctx.Invalid("model.vocab", "missing or not an object of token -> id");
  }
  TokenMap vocab;
  vocab.reserve(vocab_json->size());
  std::map<int32_t, std::string> by_id;
  for (const auto& [token, id_json] : vocab_json->items()) {
    int32_t id = 0;
    KUBEMOE_RETURN_IF_ERROR(ReadId(ctx, id_json, "model.vocab['" + token + "']", &id));
    auto [it, inserted] = by_id.emplace(id, token);
    if (!inserted) {
      return ctx.Invalid("model.vocab", "id " + std::to_string(id) + " is used by both '" +
                                            it->second + "' and '" + token + "'");
    }
    vocab.emplace(token, id);
  }

  auto merges_json = model.find("merges");
  std::vector<std::pair<std::string, std::string>> merges;
  if (merges_json != model.end() && !merges_json->is_null()) {
    if (!merges_json->is_array()) {
      return ctx.Invalid("model.merges",
                         std::string("must be an array, not ") + TypeName(*merges_json));
    }
    merges.reserve(merges_json->size());
    for (size_t i = 0; i < merges_json->size(); ++i) {
      const json& merge = (*merges_json)[i];
      const std::string field = "model.merges[" + std::to_string(i) + "]";
      if (merge.is_string()) {
        // The older spelling "left right": exactly one space separates the two tokens.
        const std::string text = merge.get<std::string>();
        const size_t space = text.find(' ');
        if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
          return ctx.Invalid(
              field,
              "a string merge must be two tokens separated by one space, not " + merge.dump());
        }
        merges.emplace_back(text.substr(0, space), text.substr(space + 1));
      } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
                 merge[1].is_string()) {
        merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
      } else {
        return ctx.Invalid(field, "must be \"a b\" or [\"a\", \"b\"], not " + merge.dump());
      }
    }
  }

  if (auto dropout = model.find("dropout"); dropout != model.end() && !dropout->is_null()) {
    if (!dropout->is_number()) return ctx.Invalid("model.dropout", "must be a number or null");
    if (dropout->get<double>() != 0.0) {
      return ctx.Unsupported("model.dropout", "BPE dropout is not supported (it is random)");
    }
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = model.find(key);
    if (it == model.end() || it->is_null()) continue;
    if (!it->is_string())
      return ctx.Invalid(std::string("model.") + key, "must be a string or null");
    if (!it->get<std::string>().empty()) {
      return ctx.Unsupported(std::string("model.") + key, "is not supported (set it to null)");
    }
  }
  BpeOptions options;
  options.byte_level = byte_level;
  if (auto unk = model.find("unk_token"); unk != model.end() && !unk->is_null()) {
    if (!unk->is_string()) return ctx.Invalid("model.unk_token", "must be a string or null");
    options.unk_token = unk->get<std::string>();
  }
  KUBEMOE_RETURN_IF_ERROR(ReadBool(ctx, model, "fuse_unk", "model", &options.fuse_unk));
  KUBEMOE_RETURN_IF_ERROR(ReadBool(ctx, model, "byte_fallback", "model", &options.byte_fallback));
  KUBEMOE_RETURN_IF_ERROR(ReadBool(ctx, model, "ignore_merges", "model", &options.ignore_merges));

  StatusOr<tokenizer_internal::BpeModel> bpe = tokenizer_internal::BpeModel::Build(
      std::move(vocab), merges, std::move(options), ctx.source());
  if (!bpe.ok()) return bpe.status();
  *out = std::make_unique<tokenizer_internal::BpeModel>(std::move(bpe).value());
  return Status::Ok();
}

Status ReadAddedTokens(const Context& ctx, const json& root, const TokenMap& vocab,
                       std::vector<AddedToken>* out) {
  auto list = root.find("added_tokens");
  if (list == root.end() || list->is_null()) return Status::Ok();
  if (!list->is_array()) {
    return ctx.Invalid("added_tokens", std::string("must be an array, not ") + TypeName(*list));
  }
  std::map<int32_t, size_t> seen;
  std::map<int32_t, std::string_view> vocab_by_id;
  for (const auto& [text, id] : vocab) vocab_by_id.emplace(id, text);
  for (size_t i = 0; i < list->size(); ++i) {
    const json& entry = (*list)[i];
    const std::string field = "added_tokens[" + std::to_string(i) + "]";
    if (!entry.is_object()) return ctx.Invalid(field, "must be an object");
    AddedToken token;
    auto id = entry.find("id");
    if (id == entry.end()) return ctx.Invalid(field + ".id", "missing");
    KUBEMOE_RETURN_IF_ERROR(ReadId(ctx, *id, field + ".id", &token.id));
    auto content = entry.find("content");
    if (content == entry.end() || !content->is_string() || content->get<std::string>().empty()) {
      return ctx.Invalid(field + ".content", "missing, empty or not a string");
    }
    token.content = content->get<std::string>();
    KUBEMOE_RETURN_IF_ERROR(ReadBool(ctx, entry, "special", field, &token.special));
    token.normalized = !token.special;  // the Python package's default
    KUBEMOE_RETURN_IF_ERROR(ReadBool(ctx, entry, "normalized", field, &token.normalized));
    KUBEMOE_RETURN_IF_ERROR(ReadBool(ctx, entry, "lstrip", field, &token.lstrip));
    KUBEMOE_RETURN_IF_ERROR(ReadBool(ctx, entry, "rstrip", field, &token.rstrip));
    KUBEMOE_RETURN_IF_ERROR(ReadBool(ctx, entry, "single_word", field, &token.single_word));
    if (auto [it, inserted] = seen.emplace(token.id, i); !inserted) {
      return ctx.Invalid(field + ".id", "id " + std::to_string(token.id) +
                                            " is already used by added_tokens[" +
                                            std::to_string(it->second) + "]");
    }
    if (auto it = vocab_by_id.find(token.id);
        it != vocab_by_id.end() && it->second != token.content) {
      return ctx.Invalid(field + ".id", "id " + std::to_string(token.id) + " of '" + token.content +
                                            "' belongs to '" + std::string(it->second) +
                                            "' in model.vocab");
    }
    out->push_back(std::move(token));
  }
  return Status::Ok();
}

Status ReadNormalizer(const Context& ctx, const json& root) {
  auto normalizer = root.find("normalizer");
  if (normalizer == root.end() || normalizer->is_null()) return Status::Ok();
  StatusOr<std::string> type = ReadType(ctx, *normalizer, "normalizer");
  if (!type.ok()) return type.status();
  if (*type == "Sequence") {
    auto list = normalizer->find("normalizers");
    if (list != normalizer->end() && list->is_array() && list->empty()) return Status::Ok();
  }
  return ctx.Unsupported("normalizer",
                         "type '" + *type + "' is not supported (only null or an empty Sequence)");
}

// Sequences nest; real files use one level. The bound keeps a crafted file from overflowing the
// stack through the recursion below.
constexpr int kMaxSequenceDepth = 16;

Status ReadPreTokenizerStep(const Context& ctx, const json& step, const std::string& field,
                            tokenizer_internal::PreTokenizer* pre, int depth = 0) {
  if (depth > kMaxSequenceDepth) {
    return ctx.Invalid(field, "Sequence nested deeper than " + std::to_string(kMaxSequenceDepth) +
                                  " levels");
  }
  StatusOr<std::string> type = ReadType(ctx, step, field);
  if (!type.ok()) return type.status();
  if (pre->byte_level()) {
    return ctx.Unsupported(field, "steps after ByteLevel are not supported");
  }
  if (*type == "Sequence") {
    auto list = step.find("pretokenizers");
    if (list == step.end() || !list->is_array()) {
      return ctx.Invalid(field + ".pretokenizers", "missing or not an array");
    }
    for (size_t i = 0; i < list->size(); ++i) {
      KUBEMOE_RETURN_IF_ERROR(ReadPreTokenizerStep(
          ctx, (*list)[i], field + ".pretokenizers[" + std::to_string(i) + "]", pre, depth + 1));
    }
    return Status::Ok();
  }
  if (*type == "Split") {
    tokenizer_internal::SplitStep split{tokenizer_internal::SplitPattern::Literal(""),
                                        tokenizer_internal::SplitBehavior::kIsolated, false};
    auto pattern = step.find("pattern");
    if (pattern == step.end() || !pattern->is_object() || pattern->size() != 1) {
      return ctx.Invalid(field + ".pattern", "must be {\"Regex\": ...} or {\"String\": ...}");
    }
    const std::string kind = pattern->begin().key();
    const json& value = pattern->begin().value();
    if (!value.is_string()) return ctx.Invalid(field + ".pattern." + kind, "must be a string");
    if (kind == "Regex") {
      StatusOr<tokenizer_internal::SplitPattern> regex = tokenizer_internal::SplitPattern::Regex(
          value.get<std::string>(), ctx.source() + ": " + field + ".pattern.Regex");
      if (!regex.ok()) return regex.status();
      split.pattern = std::move(regex).value();
    } else if (kind == "String") {
      split.pattern = tokenizer_internal::SplitPattern::Literal(value.get<std::string>());
    } else {
      return ctx.Invalid(field + ".pattern", "kind '" + kind + "' is neither Regex nor String");
    }
    auto behavior = step.find("behavior");
    if (behavior == step.end() || !behavior->is_string()) {
      return ctx.Invalid(field + ".behavior", "missing or not a string");
    }
    auto parsed = tokenizer_internal::ParseSplitBehavior(behavior->get<std::string>());
    if (!parsed) return ctx.Invalid(field + ".behavior", "unknown behavior " + behavior->dump());
    split.behavior = *parsed;
    KUBEMOE_RETURN_IF_ERROR(ReadBool(ctx, step, "invert", field, &split.invert));
    pre->AddSplit(std::move(split));
    return Status::Ok();
  }
  if (*type == "ByteLevel") {
    bool add_prefix_space = true, use_regex = true;  // the Python package's defaults
    KUBEMOE_RETURN_IF_ERROR(ReadBool(ctx, step, "add_prefix_space", field, &add_prefix_space));
    KUBEMOE_RETURN_IF_ERROR(ReadBool(ctx, step, "use_regex", field, &use_regex));
    return pre->SetByteLevel(add_prefix_space, use_regex);
  }
  return ctx.Unsupported(
      field, "type '" + *type + "' is not supported (only Sequence, Split and ByteLevel)");
}

Status ReadDecoder(const Context& ctx, const json& root, bool* byte_level) {
  auto decoder = root.find("decoder");
  *byte_level = false;
  if (decoder == root.end() || decoder->is_null()) return Status::Ok();
  StatusOr<std::string> type = ReadType(ctx, *decoder, "decoder");
  if (!type.ok()) return type.status();
  if (*type != "ByteLevel") {
    return ctx.Unsupported("decoder", "type '" + *type + "' is not supported (only ByteLevel)");
  }
  *byte_level = true;
  return Status::Ok();
}

// Collects the single-sequence template around $A; ByteLevel post-processing leaves ids alone.
Status ReadPostProcessor(const Context& ctx, const json& processor, const std::string& field,
                         const std::vector<int32_t>& known_ids, bool* have_template,
                         std::vector<int32_t>* prefix, std::vector<int32_t>* suffix,
                         int depth = 0) {
  if (processor.is_null()) return Status::Ok();
  if (depth > kMaxSequenceDepth) {
    return ctx.Invalid(field, "Sequence nested deeper than " + std::to_string(kMaxSequenceDepth) +
                                  " levels");
  }
  StatusOr<std::string> type = ReadType(ctx, processor, field);
  if (!type.ok()) return type.status();
  if (*type == "ByteLevel") return Status::Ok();
  if (*type == "Sequence") {
    auto list = processor.find("processors");
    if (list == processor.end() || !list->is_array()) {
      return ctx.Invalid(field + ".processors", "missing or not an array");
    }
    for (size_t i = 0; i < list->size(); ++i) {
      KUBEMOE_RETURN_IF_ERROR(ReadPostProcessor(ctx, (*list)[i],
                                                field + ".processors[" + std::to_string(i) + "]",
                                                known_ids, have_template, prefix, suffix,
                                                depth + 1));
    }
    return Status::Ok();
  }
  if (*type != "TemplateProcessing") {
    return ctx.Unsupported(field, "type '" + *type +
                                      "' is not supported (only TemplateProcessing, ByteLevel, "
                                      "Sequence)");
  }
  if (*have_template) return ctx.Unsupported(field, "more than one TemplateProcessing");
  *have_template = true;
  auto specials = processor.find("special_tokens");
  if (specials != processor.end() && !specials->is_null() && !specials->is_object()) {
    return ctx.Invalid(field + ".special_tokens", "must be an object");
  }
  auto single = processor.find("single");
  if (single == processor.end() || !single->is_array()) {
    return ctx.Invalid(field + ".single", "missing or not an array");
  }
  bool seen_sequence = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const json& piece = (*single)[i];
    const std::string item = field + ".single[" + std::to_string(i) + "]";
    if (piece.is_object() && piece.contains("Sequence")) {
      const json& sequence = piece["Sequence"];
      if (!sequence.is_object() || sequence.value("id", json()) != "A" || seen_sequence) {
        return ctx.Invalid(item, "the single template must name sequence A exactly once");
      }
      seen_sequence = true;
      continue;
    }
    if (!piece.is_object() || !piece.contains("SpecialToken") ||
        !piece["SpecialToken"].is_object() || !piece["SpecialToken"].contains("id") ||
        !piece["SpecialToken"]["id"].is_string()) {
      return ctx.Invalid(item, "must be {\"SpecialToken\": {\"id\": ...}} or {\"Sequence\": ...}");
    }
    const std::string name = piece["SpecialToken"]["id"].get<std::string>();
    if (specials == processor.end() || !specials->is_object() || !specials->contains(name)) {
      return ctx.Invalid(item,
                         "special token '" + name + "' is not in " + field + ".special_tokens");
    }
    // find(), not operator[]: on a const json a missing key is undefined behaviour (the fuzzer
    // found a use-after-free here).
    const json& special = (*specials)[name];
    const auto ids_it = special.is_object() ? special.find("ids") : special.end();
    if (!special.is_object() || ids_it == special.end() || !ids_it->is_array()) {
      return ctx.Invalid(field + ".special_tokens['" + name + "'].ids", "missing or not an array");
    }
    for (const json& id_json : *ids_it) {
      int32_t id = 0;
      KUBEMOE_RETURN_IF_ERROR(
          ReadId(ctx, id_json, field + ".special_tokens['" + name + "'].ids", &id));
      if (!std::binary_search(known_ids.begin(), known_ids.end(), id)) {
        return ctx.Invalid(field + ".special_tokens['" + name + "'].ids",
                           "id " + std::to_string(id) + " is neither in model.vocab nor added");
      }
      (seen_sequence ? suffix : prefix)->push_back(id);
    }
  }
  if (!seen_sequence) return ctx.Invalid(field + ".single", "does not contain sequence A");
  return Status::Ok();
}

Status Load(const Context& ctx, const json& root, Tokenizer::Impl* impl) {
  if (!root.is_object()) {
    return ctx.Invalid("(top level)", std::string("must be an object, not ") + TypeName(root));
  }
  for (const char* key : {"truncation", "padding"}) {
    if (auto it = root.find(key); it != root.end() && !it->is_null()) {
      return ctx.Unsupported(key, "must be null (truncation and padding are the server's job)");
    }
  }
  KUBEMOE_RETURN_IF_ERROR(ReadNormalizer(ctx, root));
  if (auto pre = root.find("pre_tokenizer"); pre != root.end() && !pre->is_null()) {
    KUBEMOE_RETURN_IF_ERROR(ReadPreTokenizerStep(ctx, *pre, "pre_tokenizer", &impl->pre_tokenizer));
  }
  auto model = root.find("model");
  if (model == root.end()) return ctx.Invalid("model", "missing");
  KUBEMOE_RETURN_IF_ERROR(ReadModel(ctx, *model, impl->pre_tokenizer.byte_level(), &impl->bpe));
  KUBEMOE_RETURN_IF_ERROR(ReadAddedTokens(ctx, root, impl->bpe->vocab(), &impl->added));
  KUBEMOE_RETURN_IF_ERROR(ReadDecoder(ctx, root, &impl->byte_level_decoder));

  std::vector<int32_t> known_ids;
  for (const auto& [text, id] : impl->bpe->vocab()) known_ids.push_back(id);
  for (const AddedToken& token : impl->added) known_ids.push_back(token.id);
  std::sort(known_ids.begin(), known_ids.end());
  if (auto post = root.find("post_processor"); post != root.end()) {
    bool have_template = false;
    KUBEMOE_RETURN_IF_ERROR(ReadPostProcessor(ctx, *post, "post_processor", known_ids,
                                              &have_template, &impl->template_prefix,
                                              &impl->template_suffix));
  }
  impl->raw_matcher =
      std::make_unique<tokenizer_internal::AddedTokenMatcher>(&impl->added, /*normalized=*/false);
  impl->normalized_matcher =
      std::make_unique<tokenizer_internal::AddedTokenMatcher>(&impl->added, /*normalized=*/true);
  impl->BuildTables();
  return Status::Ok();
}

}  // namespace

StatusOr<Tokenizer> Tokenizer::FromJson(std::string_view text, std::string_view source_name) {
  const Context ctx(source_name);
  auto impl = std::make_unique<Impl>();
  impl->source = std::string(source_name);
  try {
    const json root = json::parse(text.begin(), text.end());
    KUBEMOE_RETURN_IF_ERROR(Load(ctx, root, impl.get()));
  } catch (const json::exception& e) {
    // Parse errors carry the byte offset; other json errors mean a member had an unexpected type.
    return InvalidArgument(ctx.source() + ": not a valid tokenizer.json: " + e.what());
  } catch (const std::bad_alloc&) {
    return InvalidArgument(ctx.source() + ": too large to load");
  }
  return Tokenizer(std::move(impl));
}

}  // namespace kubemoe
