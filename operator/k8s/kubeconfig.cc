#include "operator/k8s/kubeconfig.h"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace kubemoe::k8s {
namespace {

// One named entry (cluster, user or context) and where it came from.
struct Entry {
  YAML::Node body;
  std::string file;   // file path
  std::string where;  // "users[2]" for messages
};

std::string Dir(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  return path.substr(0, slash + 1);
}

std::string Resolve(const std::string& file, const std::string& ref) {
  if (ref.empty() || ref.front() == '/') return ref;
  return Dir(file) + ref;
}

Status Bad(const std::string& file, const std::string& what) {
  return InvalidArgument("kubeconfig " + file + ": " + what);
}

// Reads an optional scalar field of a map as a string; "" when absent or null.
Status ScalarField(const YAML::Node& map, const char* key, const std::string& file,
                   const std::string& where, std::string* out) {
  out->clear();
  YAML::Node node = map[key];
  if (!node || node.IsNull()) return Status::Ok();
  if (!node.IsScalar()) return Bad(file, where + "." + key + " must be a string");
  *out = node.Scalar();
  return Status::Ok();
}

Status BoolField(const YAML::Node& map, const char* key, const std::string& file,
                 const std::string& where, bool* out) {
  *out = false;
  YAML::Node node = map[key];
  if (!node || node.IsNull()) return Status::Ok();
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    if (s == "true" || s == "True" || s == "TRUE") { *out = true; return Status::Ok(); }
    if (s == "false" || s == "False" || s == "FALSE") return Status::Ok();
  }
  return Bad(file, where + "." + key + " must be true or false");
}

Status DataField(const YAML::Node& map, const char* key, const std::string& file,
                 const std::string& where, std::string* out) {
  std::string encoded;
  KUBEMOE_RETURN_IF_ERROR(ScalarField(map, key, file, where, &encoded));
  out->clear();
  if (encoded.empty()) return Status::Ok();
  if (!Base64Decode(encoded, out)) return Bad(file, where + "." + key + " is not valid base64");
  return Status::Ok();
}

// Collects the named entries of one list (clusters, users, contexts); first definition wins.
Status CollectNamed(const YAML::Node& root, const char* list, const char* body_key,
                    const std::string& file, std::map<std::string, Entry>* into) {
  YAML::Node items = root[list];
  if (!items || items.IsNull()) return Status::Ok();
  if (!items.IsSequence()) return Bad(file, std::string(list) + " must be a list");
  for (size_t i = 0; i < items.size(); ++i) {
    std::string where = std::string(list) + "[" + std::to_string(i) + "]";
    YAML::Node item = items[i];
    if (!item.IsMap()) return Bad(file, where + " must be a map");
    std::string name;
    KUBEMOE_RETURN_IF_ERROR(ScalarField(item, "name", file, where, &name));
    if (name.empty()) return Bad(file, where + ".name is missing");
    YAML::Node body = item[body_key];
    if (body && !body.IsNull() && !body.IsMap()) {
      return Bad(file, where + "." + body_key + " must be a map");
    }
    if (into->count(name) == 0) {
      into->emplace(name, Entry{body ? body : YAML::Node(YAML::NodeType::Map), file,
                                where + "." + body_key});
    }
  }
  return Status::Ok();
}

StatusOr<ClientConfig> ParseUnchecked(const std::vector<KubeconfigFile>& files,
                                      std::string_view context_override) {
  if (files.empty()) return InvalidArgument("no kubeconfig files given");
  std::map<std::string, Entry> clusters, users, contexts;
  std::string current_context;
  std::string current_context_file;
  for (const KubeconfigFile& f : files) {
    YAML::Node root;
    try {
      root = YAML::Load(f.text);
    } catch (const YAML::Exception& e) {
      return Bad(f.path, std::string("not valid YAML: ") + e.what());
    }
    if (!root || root.IsNull()) continue;  // an empty file contributes nothing
    if (!root.IsMap()) return Bad(f.path, "the document must be a map");
    KUBEMOE_RETURN_IF_ERROR(CollectNamed(root, "clusters", "cluster", f.path, &clusters));
    KUBEMOE_RETURN_IF_ERROR(CollectNamed(root, "users", "user", f.path, &users));
    KUBEMOE_RETURN_IF_ERROR(CollectNamed(root, "contexts", "context", f.path, &contexts));
    std::string cc;
    KUBEMOE_RETURN_IF_ERROR(ScalarField(root, "current-context", f.path, "", &cc));
    if (current_context.empty() && !cc.empty()) {
      current_context = cc;
      current_context_file = f.path;
    }
  }
  std::string paths;
  for (const KubeconfigFile& f : files) paths += (paths.empty() ? "" : ":") + f.path;

  std::string context_name(context_override);
  if (context_name.empty()) context_name = current_context;
  if (context_name.empty()) {
    return InvalidArgument("kubeconfig " + paths + ": current-context is not set and no context was given");
  }
  auto ctx_it = contexts.find(context_name);
  if (ctx_it == contexts.end()) {
    return InvalidArgument("kubeconfig " + paths + ": context \"" + context_name +
                           "\" is not defined in contexts");
  }
  const Entry& ctx = ctx_it->second;
  std::string cluster_name, user_name;
  ClientConfig config;
  KUBEMOE_RETURN_IF_ERROR(ScalarField(ctx.body, "cluster", ctx.file, ctx.where, &cluster_name));
  KUBEMOE_RETURN_IF_ERROR(ScalarField(ctx.body, "user", ctx.file, ctx.where, &user_name));
  KUBEMOE_RETURN_IF_ERROR(ScalarField(ctx.body, "namespace", ctx.file, ctx.where, &config.namespace_));
  if (cluster_name.empty()) return Bad(ctx.file, ctx.where + ".cluster is missing");
  auto cl_it = clusters.find(cluster_name);
  if (cl_it == clusters.end()) {
    return Bad(ctx.file, ctx.where + ".cluster names \"" + cluster_name +
                             "\", which no kubeconfig file defines in clusters (" + paths + ")");
  }
  const Entry& cl = cl_it->second;
  KUBEMOE_RETURN_IF_ERROR(ScalarField(cl.body, "server", cl.file, cl.where, &config.server));
  if (config.server.empty()) return Bad(cl.file, cl.where + ".server is missing");
  if (config.server.rfind("https://", 0) != 0 && config.server.rfind("http://", 0) != 0) {
    return Bad(cl.file, cl.where + ".server must start with https:// or http://, got \"" +
                            config.server + "\"");
  }
  while (config.server.size() > 8 && config.server.back() == '/') config.server.pop_back();
  std::string ca_file;
  KUBEMOE_RETURN_IF_ERROR(ScalarField(cl.body, "certificate-authority", cl.file, cl.where, &ca_file));
  config.certificate_authority_file = Resolve(cl.file, ca_file);
  KUBEMOE_RETURN_IF_ERROR(DataField(cl.body, "certificate-authority-data", cl.file, cl.where,
                                    &config.certificate_authority_pem));
  KUBEMOE_RETURN_IF_ERROR(BoolField(cl.body, "insecure-skip-tls-verify", cl.file, cl.where,
                                    &config.insecure_skip_tls_verify));

  if (!user_name.empty()) {
    auto us_it = users.find(user_name);
    if (us_it == users.end()) {
      return Bad(ctx.file, ctx.where + ".user names \"" + user_name +
                               "\", which no kubeconfig file defines in users (" + paths + ")");
    }
    const Entry& us = us_it->second;
    for (const char* unsupported : {"exec", "auth-provider"}) {
      if (us.body[unsupported]) {
        return Bad(us.file, us.where + "." + unsupported +
                                " is not supported by kubemoe-operator; use a token, tokenFile or "
                                "client certificate");
      }
    }
    std::string file_ref;
    KUBEMOE_RETURN_IF_ERROR(ScalarField(us.body, "token", us.file, us.where, &config.token));
    KUBEMOE_RETURN_IF_ERROR(ScalarField(us.body, "tokenFile", us.file, us.where, &file_ref));
    config.token_file = Resolve(us.file, file_ref);
    KUBEMOE_RETURN_IF_ERROR(ScalarField(us.body, "client-certificate", us.file, us.where, &file_ref));
    config.client_certificate_file = Resolve(us.file, file_ref);
    KUBEMOE_RETURN_IF_ERROR(ScalarField(us.body, "client-key", us.file, us.where, &file_ref));
    config.client_key_file = Resolve(us.file, file_ref);
    KUBEMOE_RETURN_IF_ERROR(DataField(us.body, "client-certificate-data", us.file, us.where,
                                      &config.client_certificate_pem));
    KUBEMOE_RETURN_IF_ERROR(DataField(us.body, "client-key-data", us.file, us.where,
                                      &config.client_key_pem));
    bool has_cert = !config.client_certificate_file.empty() || !config.client_certificate_pem.empty();
    bool has_key = !config.client_key_file.empty() || !config.client_key_pem.empty();
    if (has_cert != has_key) {
      return Bad(us.file, us.where + (has_cert ? ".client-key(-data) is missing: a client certificate needs its key"
                                               : ".client-certificate(-data) is missing: a client key needs its certificate"));
    }
  }
  config.source = "kubeconfig " + paths + " (context " + context_name + ")";
  return config;
}

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

bool Base64Decode(std::string_view in, std::string* out) {
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  size_t padding = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else if (c == '=') { ++padding; continue; }
    else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    else return false;
    if (padding > 0) return false;  // data after padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return padding <= 2 && bits < 6;
}

StatusOr<ClientConfig> ParseKubeconfig(const std::vector<KubeconfigFile>& files,
                                       std::string_view context) {
  try {
    return ParseUnchecked(files, context);
  } catch (const std::exception& e) {  // yaml-cpp conversions; never let them escape
    return InvalidArgument(std::string("kubeconfig: ") + e.what());
  }
}

std::vector<std::string> SplitKubeconfigPaths(std::string_view value) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= value.size()) {
    size_t colon = value.find(':', start);
    if (colon == std::string_view::npos) colon = value.size();
    if (colon > start) out.emplace_back(value.substr(start, colon - start));
    start = colon + 1;
  }
  return out;
}

StatusOr<ClientConfig> LoadKubeconfig(std::string_view paths, std::string_view context) {
  std::vector<KubeconfigFile> files;
  for (const std::string& path : SplitKubeconfigPaths(paths)) {
    StatusOr<std::string> text = ReadFile(path);
    if (!text.ok()) continue;  // kubectl ignores missing entries of KUBECONFIG
    files.push_back({path, std::move(*text)});
  }
  if (files.empty()) return NotFound("no readable kubeconfig file in \"" + std::string(paths) + "\"");
  return ParseKubeconfig(files, context);
}

StatusOr<ClientConfig> InClusterConfig(std::string_view service_account_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || port == nullptr || *host == '\0' || *port == '\0') {
    return FailedPrecondition(
        "not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset "
        "(pass --kubeconfig)");
  }
  std::string h(host);
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  std::string dir(service_account_dir);
  ClientConfig config;
  config.server = "https://" + h + ":" + port;
  config.token_file = dir + "/token";
  StatusOr<std::string> token = ReadFile(config.token_file);
  if (!token.ok()) {
    return FailedPrecondition("in-cluster: cannot read the service-account token " + config.token_file);
  }
  config.certificate_authority_file = dir + "/ca.crt";
  if (StatusOr<std::string> ns = ReadFile(dir + "/namespace"); ns.ok()) {
    config.namespace_ = *ns;
    while (!config.namespace_.empty() && std::isspace(static_cast<unsigned char>(config.namespace_.back()))) {
      config.namespace_.pop_back();
    }
  }
  config.source = "in-cluster";
  return config;
}

StatusOr<ClientConfig> LoadClientConfig(std::string_view kubeconfig_flag) {
  if (!kubeconfig_flag.empty()) return LoadKubeconfig(kubeconfig_flag);
  const char* service_host = std::getenv("KUBERNETES_SERVICE_HOST");
  if (service_host != nullptr && *service_host != '\0') return InClusterConfig();
  const char* env = std::getenv("KUBECONFIG");
  if (env != nullptr && *env != '\0') return LoadKubeconfig(env);
  const char* home = std::getenv("HOME");
  if (home != nullptr) return LoadKubeconfig(std::string(home) + "/.kube/config");
  return FailedPrecondition("no cluster config: pass --kubeconfig, set KUBECONFIG, or run in a pod");
}

}  // namespace kubemoe::k8s
