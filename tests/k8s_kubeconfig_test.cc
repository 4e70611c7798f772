// Kubeconfig parsing and merging (operator/k8s/kubeconfig.h).
#include "operator/k8s/kubeconfig.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace kubemoe::k8s {
namespace {

constexpr char kMain[] = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster:
    server: https://10.0.0.1:6443/
    certificate-authority: certs/ca.pem
users:
- name: dev-user
  user:
    token: abc123
contexts:
- name: dev
  context:
    cluster: dev-cluster
    user: dev-user
    namespace: team-a
- name: other
  context:
    cluster: second-cluster
    user: cert-user
)";

constexpr char kSecond[] = R"(
current-context: other
clusters:
- name: dev-cluster
  cluster:
    server: https://shadowed.example:1
- name: second-cluster
  cluster:
    server: http://127.0.0.1:8080
    insecure-skip-tls-verify: true
    certificate-authority-data: aGVsbG8=
users:
- name: cert-user
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
    tokenFile: /var/run/token
)";

TEST(KubeconfigTest, CurrentContextWithRelativeCaPath) {
  auto config = ParseKubeconfig({{"/home/u/.kube/config", kMain}});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server, "https://10.0.0.1:6443");
  EXPECT_EQ(config->certificate_authority_file, "/home/u/.kube/certs/ca.pem");
  EXPECT_EQ(config->token, "abc123");
  EXPECT_EQ(config->namespace_, "team-a");
  EXPECT_FALSE(config->insecure_skip_tls_verify);
}

TEST(KubeconfigTest, MergeFirstFileWinsPerNameAndForCurrentContext) {
  auto config = ParseKubeconfig({{"/a", kMain}, {"/b", kSecond}});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  // current-context "dev" from the first file, and dev-cluster from the first file too.
  EXPECT_EQ(config->server, "https://10.0.0.1:6443");
  // The same files in the other order: the second file's current-context and cluster win.
  auto swapped = ParseKubeconfig({{"/b", kSecond}, {"/a", kMain}});
  ASSERT_TRUE(swapped.ok()) << swapped.status().ToString();
  EXPECT_EQ(swapped->server, "http://127.0.0.1:8080");
}

TEST(KubeconfigTest, ContextAcrossFilesWithDataFields) {
  auto config = ParseKubeconfig({{"/a", kMain}, {"/b", kSecond}}, "other");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server, "http://127.0.0.1:8080");
  EXPECT_TRUE(config->insecure_skip_tls_verify);
  EXPECT_EQ(config->certificate_authority_pem, "hello");
  EXPECT_EQ(config->client_certificate_pem, "cert");
  EXPECT_EQ(config->client_key_pem, "key");
  EXPECT_EQ(config->token_file, "/var/run/token");
  EXPECT_EQ(config->namespace_, "");
}

TEST(KubeconfigTest, ErrorsNameFileAndField) {
  std::string bad_data = std::string(kMain) + R"(- name: broken
  context:
    cluster: dev-cluster
    user: bad
)";
  bad_data.replace(bad_data.find("users:\n"), 7, "users:\n- name: bad\n  user:\n    client-key-data: '%%%'\n");
  auto config = ParseKubeconfig({{"/etc/kc", bad_data}}, "broken");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("/etc/kc"), std::string::npos) << config.status().message();
  EXPECT_NE(config.status().message().find("users[0].user.client-key-data"), std::string::npos)
      << config.status().message();

  auto missing = ParseKubeconfig({{"/a", kMain}}, "other");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("second-cluster"), std::string::npos);
  EXPECT_NE(missing.status().message().find("contexts[1].context.cluster"), std::string::npos)
      << missing.status().message();

  auto no_ctx = ParseKubeconfig({{"/a", kMain}}, "nope");
  ASSERT_FALSE(no_ctx.ok());
  EXPECT_NE(no_ctx.status().message().find("\"nope\""), std::string::npos);

  auto not_yaml = ParseKubeconfig({{"/x", "clusters: [unclosed"}});
  ASSERT_FALSE(not_yaml.ok());
  EXPECT_NE(not_yaml.status().message().find("/x"), std::string::npos);

  auto bad_server = ParseKubeconfig({{"/y", "current-context: c\nclusters:\n- name: k\n  cluster:\n"
                                            "    server: ftp://x\ncontexts:\n- name: c\n  context:\n"
                                            "    cluster: k\n"}});
  ASSERT_FALSE(bad_server.ok());
  EXPECT_NE(bad_server.status().message().find("clusters[0].cluster.server"), std::string::npos)
      << bad_server.status().message();

  auto exec = ParseKubeconfig({{"/z", "current-context: c\nclusters:\n- name: k\n  cluster:\n"
                                      "    server: https://x\nusers:\n- name: u\n  user:\n    exec: {}\n"
                                      "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n"}});
  ASSERT_FALSE(exec.ok());
  EXPECT_NE(exec.status().message().find("users[0].user.exec"), std::string::npos);
}

TEST(KubeconfigTest, SplitPathList) {
  EXPECT_EQ(SplitKubeconfigPaths("/a::/b:"), (std::vector<std::string>{"/a", "/b"}));
  EXPECT_TRUE(SplitKubeconfigPaths("").empty());
}

TEST(KubeconfigTest, LoadSkipsMissingFilesButNeedsOne) {
  auto none = LoadKubeconfig("/nonexistent/a:/nonexistent/b");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
}

TEST(KubeconfigTest, InClusterFromServiceAccountFiles) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("k8s-kubeconfig-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "token") << "sa-token\n";
  std::ofstream(dir / "namespace") << "kubemoe-system\n";
  ::setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto config = InClusterConfig(dir.string());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server, "https://[fd00::1]:443");
  EXPECT_EQ(config->token_file, (dir / "token").string()) << "read by the client, and re-read";
  EXPECT_EQ(config->certificate_authority_file, (dir / "ca.crt").string());
  EXPECT_EQ(config->namespace_, "kubemoe-system");

  ::unsetenv("KUBERNETES_SERVICE_HOST");
  auto outside = InClusterConfig(dir.string());
  ASSERT_FALSE(outside.ok());
  EXPECT_NE(outside.status().message().find("KUBERNETES_SERVICE_HOST"), std::string::npos);
  ::unsetenv("KUBERNETES_SERVICE_PORT");
  std::filesystem::remove_all(dir);
}

TEST(KubeconfigTest, Base64) {
  std::string out;
  ASSERT_TRUE(Base64Decode("aGVsbG8gd29ybGQ=", &out));
  EXPECT_EQ(out, "hello world");
  ASSERT_TRUE(Base64Decode("YQ", &out));  // unpadded
  EXPECT_EQ(out, "a");
  EXPECT_FALSE(Base64Decode("a$==", &out));
  EXPECT_FALSE(Base64Decode("YQ==YQ==", &out));
}

}  // namespace
}  // namespace kubemoe::k8s
