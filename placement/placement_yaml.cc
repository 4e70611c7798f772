// Placement <-> YAML (the ConfigMap file). yaml-cpp throws; every exception stops here.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <string>

#include "placement/placement.h"

namespace kubemoe::placement {

std::string ToYaml(const Placement& p) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "kind" << YAML::Value << "ExpertPlacement";
  out << YAML::Key << "version" << YAML::Value << p.version;
  out << YAML::Key << "routedExperts" << YAML::Value << p.routed_experts;
  out << YAML::Key << "moeLayers" << YAML::Value << p.moe_layers;
  out << YAML::Key << "shards" << YAML::Value << p.shards;
  out << YAML::Key << "devicesPerShard" << YAML::Value << p.devices_per_shard;
  out << YAML::Key << "policy" << YAML::Value << PolicyName(p.policy);
  out << YAML::Key << "layers" << YAML::Value << YAML::BeginSeq;
  for (int32_t l = 0; l < static_cast<int32_t>(p.layers.size()); ++l) {
    out << YAML::BeginMap << YAML::Key << "layer" << YAML::Value << l;
    out << YAML::Key << "devices" << YAML::Value << YAML::BeginSeq;
    for (int32_t d = 0; d < p.num_devices(); ++d) {
      std::vector<int32_t> experts = ExpertsOnDevice(p, l, d);
      if (experts.empty()) continue;
      Slot s = p.SlotOf(d);
      out << YAML::Flow << YAML::BeginMap;
      out << YAML::Key << "shard" << YAML::Value << s.shard;
      out << YAML::Key << "device" << YAML::Value << s.device;
      out << YAML::Key << "experts" << YAML::Value << YAML::Flow << experts;
      out << YAML::EndMap;
    }
    out << YAML::EndSeq << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

namespace {

// Reads an integer scalar field of `node` into `out`, within [lo, hi].
Status ReadInt(const YAML::Node& node, const std::string& key, const std::string& where,
               int64_t lo, int64_t hi, int64_t& out) {
  YAML::Node v = node[key];
  if (!v) return InvalidArgument(where + ": missing field \"" + key + "\"");
  if (!v.IsScalar()) return InvalidArgument(where + ": \"" + key + "\" must be an integer");
  int64_t value = 0;
  if (!YAML::convert<int64_t>::decode(v, value)) {
    return InvalidArgument(where + ": \"" + key + "\" must be an integer, got \"" +
                           v.Scalar() + "\"");
  }
  if (value < lo || value > hi) {
    return InvalidArgument(where + ": \"" + key + "\" = " + std::to_string(value) +
                           " is out of range [" + std::to_string(lo) + ", " +
                           std::to_string(hi) + "]");
  }
  out = value;
  return Status::Ok();
}

StatusOr<Placement> Parse(const YAML::Node& root, const std::string& src) {
  if (!root.IsMap()) return InvalidArgument(src + ": placement must be a YAML mapping");
  if (!root["kind"] || !root["kind"].IsScalar() || root["kind"].Scalar() != "ExpertPlacement") {
    return InvalidArgument(src + ": kind must be ExpertPlacement");
  }
  Placement p;
  int64_t v = 0;
  KUBEMOE_RETURN_IF_ERROR(ReadInt(root, "routedExperts", src, 1, 4096, v));
  p.routed_experts = static_cast<int32_t>(v);
  KUBEMOE_RETURN_IF_ERROR(ReadInt(root, "moeLayers", src, 1, 1024, v));
  p.moe_layers = static_cast<int32_t>(v);
  KUBEMOE_RETURN_IF_ERROR(ReadInt(root, "shards", src, 1, 1024, v));
  p.shards = static_cast<int32_t>(v);
  KUBEMOE_RETURN_IF_ERROR(ReadInt(root, "devicesPerShard", src, 1, 64, v));
  p.devices_per_shard = static_cast<int32_t>(v);
  YAML::Node version = root["version"];
  if (!version || !version.IsScalar()) return InvalidArgument(src + ": missing field \"version\"");
  uint64_t claimed = 0;
  if (!YAML::convert<uint64_t>::decode(version, claimed) || claimed == 0) {
    return InvalidArgument(src + ": \"version\" must be a positive integer");
  }
  YAML::Node policy = root["policy"];
  if (policy) {
    if (!policy.IsScalar()) return InvalidArgument(src + ": \"policy\" must be a string");
    StatusOr<Policy> parsed = ParsePolicy(policy.Scalar());
    if (!parsed.ok()) return InvalidArgument(src + ": " + parsed.status().message());
    p.policy = *parsed;
  }
  if (static_cast<int64_t>(p.shards) * p.devices_per_shard > p.routed_experts) {
    return InvalidArgument(src + ": shards x devicesPerShard exceeds routedExperts");
  }

  YAML::Node layers = root["layers"];
  if (!layers || !layers.IsSequence()) {
    return InvalidArgument(src + ": \"layers\" must be a sequence");
  }
  if (layers.size() != static_cast<size_t>(p.moe_layers)) {
    return InvalidArgument(src + ": \"layers\" has " + std::to_string(layers.size()) +
                           " entries, moeLayers says " + std::to_string(p.moe_layers));
  }
  p.layers.assign(p.moe_layers, std::vector<std::vector<Slot>>(p.routed_experts));
  std::set<int64_t> seen_layers;
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string where = src + ": layers[" + std::to_string(i) + "]";
    YAML::Node layer = layers[i];
    if (!layer.IsMap()) return InvalidArgument(where + " must be a mapping");
    int64_t l = 0;
    KUBEMOE_RETURN_IF_ERROR(ReadInt(layer, "layer", where, 0, p.moe_layers - 1, l));
    if (!seen_layers.insert(l).second) {
      return InvalidArgument(where + ": layer " + std::to_string(l) + " appears twice");
    }
    YAML::Node devices = layer["devices"];
    if (!devices || !devices.IsSequence()) {
      return InvalidArgument(where + ": \"devices\" must be a sequence");
    }
    std::set<std::pair<int64_t, int64_t>> seen_slots;
    for (size_t j = 0; j < devices.size(); ++j) {
      const std::string dwhere = where + ".devices[" + std::to_string(j) + "]";
      YAML::Node dev = devices[j];
      if (!dev.IsMap()) return InvalidArgument(dwhere + " must be a mapping");
      int64_t shard = 0, device = 0;
      KUBEMOE_RETURN_IF_ERROR(ReadInt(dev, "shard", dwhere, 0, p.shards - 1, shard));
      KUBEMOE_RETURN_IF_ERROR(ReadInt(dev, "device", dwhere, 0, p.devices_per_shard - 1, device));
      if (!seen_slots.insert({shard, device}).second) {
        return InvalidArgument(dwhere + ": shard " + std::to_string(shard) + " device " +
                               std::to_string(device) + " listed twice in this layer");
      }
      YAML::Node experts = dev["experts"];
      if (!experts || !experts.IsSequence()) {
        return InvalidArgument(dwhere + ": \"experts\" must be a sequence");
      }
      for (size_t k = 0; k < experts.size(); ++k) {
        int64_t e = 0;
        if (!experts[k].IsScalar() || !YAML::convert<int64_t>::decode(experts[k], e) || e < 0 ||
            e >= p.routed_experts) {
          return InvalidArgument(dwhere + ".experts[" + std::to_string(k) +
                                 "] must be an expert index in [0, " +
                                 std::to_string(p.routed_experts) + ")");
        }
        std::vector<Slot>& slots = p.layers[l][e];
        Slot s{static_cast<int32_t>(shard), static_cast<int32_t>(device)};
        if (std::find(slots.begin(), slots.end(), s) != slots.end()) {
          return InvalidArgument(dwhere + ": expert " + std::to_string(e) + " listed twice");
        }
        slots.push_back(s);
      }
    }
  }
  for (auto& layer : p.layers) {
    for (auto& slots : layer) SortSlots(p, slots);
  }
  Status valid = ValidatePlacement(p);
  if (!valid.ok()) return InvalidArgument(src + ": " + valid.message());
  p.version = ComputeVersion(p);
  if (p.version != claimed) {
    return InvalidArgument(src + ": version " + std::to_string(claimed) +
                           " does not match the content (computed " + std::to_string(p.version) +
                           "); the file was edited or corrupted");
  }
  return p;
}

}  // namespace

StatusOr<Placement> ParsePlacementYaml(std::string_view text, std::string_view source) {
  const std::string src(source);
  try {
    YAML::Node root = YAML::Load(std::string(text));
    return Parse(root, src);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(src + ": invalid YAML: " + e.what());
  } catch (const std::exception& e) {
    return InvalidArgument(src + ": cannot parse placement: " + e.what());
  }
}

}  // namespace kubemoe::placement
