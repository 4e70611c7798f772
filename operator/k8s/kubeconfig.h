// Where the API server is and how to authenticate to it: from kubeconfig files (merged as kubectl
// merges them) or from the in-cluster service account.
//
// ParseKubeconfig is a pure function of the files' text (fuzzed by tests/fuzz/kubeconfig_fuzz.cc);
// the Load* functions read files and the environment and then call it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kubemoe::k8s {

// Everything the REST client needs. File fields name files that are read when the client is
// built (the token file also periodically, so rotated service-account tokens keep working);
// *_pem fields hold PEM text given inline (kubeconfig *-data fields, base64-decoded).
struct ClientConfig {
  std::string server;  // "https://host:port" or "http://host:port", no trailing '/'
  std::string certificate_authority_file;
  std::string certificate_authority_pem;
  bool insecure_skip_tls_verify = false;
  std::string token;
  std::string token_file;
  std::string client_certificate_file;
  std::string client_certificate_pem;
  std::string client_key_file;
  std::string client_key_pem;
  std::string namespace_;  // the context's namespace; "" when it sets none
  std::string source;      // "kubeconfig PATH (context NAME)" or "in-cluster", for messages
};

struct KubeconfigFile {
  std::string path;  // used to resolve relative file references and in error messages
  std::string text;  // YAML
};

// Merges `files` as kubectl does (the first file that defines a cluster, user or context name
// wins; current-context comes from the first file that sets it) and resolves `context` (""
// = current-context) to a ClientConfig. Relative file references are resolved against the
// directory of the file that holds them. Errors are InvalidArgument naming the file and the
// field, e.g. "kubeconfig /home/a/.kube/config: users[0].user.client-key-data is not valid base64".
// Never throws.
StatusOr<ClientConfig> ParseKubeconfig(const std::vector<KubeconfigFile>& files,
                                       std::string_view context = "");

// Splits a KUBECONFIG value on ':' (empty entries dropped).
std::vector<std::string> SplitKubeconfigPaths(std::string_view value);

// Reads the ':'-separated `paths` and parses them. Missing files are skipped as kubectl skips
// them, but NotFound when none exists.
StatusOr<ClientConfig> LoadKubeconfig(std::string_view paths, std::string_view context = "");

// The in-cluster config: https://HOST:PORT from KUBERNETES_SERVICE_HOST/PORT (IPv6 hosts are
// bracketed), the token file, CA bundle and namespace from `service_account_dir`.
// FailedPrecondition when the variables are unset or the token file cannot be read.
StatusOr<ClientConfig> InClusterConfig(
    std::string_view service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

// The operator's choice: `kubeconfig_flag` when set, else in-cluster when
// KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG, else ~/.kube/config.
StatusOr<ClientConfig> LoadClientConfig(std::string_view kubeconfig_flag);

// Standard base64 (padding optional, whitespace ignored); false on any other character.
bool Base64Decode(std::string_view in, std::string* out);

}  // namespace kubemoe::k8s
