#include "local/yaml_json.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <regex>

namespace kubemoe::local {
namespace {

using nlohmann::json;

json Convert(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = Convert(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) out.push_back(Convert(item));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() == "!") return s;  // quoted
      if (s == "true") return true;
      if (s == "false") return false;
      if (s == "null" || s == "~" || s.empty()) return nullptr;
      static const std::regex kInt("[-+]?[0-9]+");
      static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
      if (std::regex_match(s, kInt)) {
        int64_t i = 0;
        if (YAML::convert<int64_t>::decode(node, i)) return i;
        return s;  // out of range: keep the text, the consumer reports it
      }
      if (std::regex_match(s, kFloat)) {
        double d = 0;
        if (YAML::convert<double>::decode(node, d) && std::isfinite(d)) return d;
      }
      return s;
    }
    default:
      return nullptr;
  }
}

}  // namespace

StatusOr<json> YamlToJson(const std::string& text, const std::string& source) {
  try {
    return Convert(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(source + ": not valid YAML: " + e.what());
  } catch (const std::exception& e) {
    return InvalidArgument(source + ": " + e.what());
  }
}

}  // namespace kubemoe::local
