// Test helper: runs tests/k8s/fake_apiserver.py (with the test venv's Python) for the lifetime of
// a FakeApiServer object and gives a k8s::Client for it. Every wait is bounded. Where the venv is
// missing, skipped() is true and error() says how to make it: KUBEMOE_REQUIRE_FAKE_APISERVER skips.
#pragma once

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "operator/k8s/client.h"

namespace kubemoe::testing {

class FakeApiServer {
 public:
  // Starts the server with `python` (the build's test venv by default); ok() is false (and error()
  // says why) when it did not come up in 15 s. skipped() is true, rather, when that Python or a
  // package the server imports is missing: the test should GTEST_SKIP with error().
  explicit FakeApiServer(double bookmark_interval = 1.0, std::string python = KUBEMOE_PYTHON) {
    dir_ = std::filesystem::temp_directory_path() /
           ("op-fake-apiserver-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::create_directories(dir_);
    std::string ready = (dir_ / "ready").string();
    std::string log = (dir_ / "server.log").string();
    if (python.empty() || ::access(python.c_str(), X_OK) != 0) {
      skipped_ = true;
      error_ = "the test venv's Python \"" + python + "\" is missing; make it with: " + kHowTo;
      return;
    }
    std::string script = std::string(KUBEMOE_SOURCE_DIR) + "/tests/k8s/fake_apiserver.py";
    std::string interval = std::to_string(bookmark_interval);
    pid_ = ::fork();
    if (pid_ == 0) {
      FILE* out = std::freopen(log.c_str(), "w", stdout);
      (void)out;
      ::dup2(::fileno(stdout), 2);
      ::execl(python.c_str(), python.c_str(), script.c_str(), "--host", "127.0.0.1", "--port", "0",
              "--ready-file", ready.c_str(), "--bookmark-interval", interval.c_str(),
              static_cast<char*>(nullptr));
      std::fprintf(stderr, "cannot run %s: %s\n", python.c_str(), std::strerror(errno));
      ::_exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (!std::filesystem::exists(ready) || std::filesystem::file_size(ready) == 0) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        error_ = "fake apiserver exited early; log: " + Log();
        if (error_.find("ModuleNotFoundError") != std::string::npos) {
          skipped_ = true;  // a venv made before a package was added to its requirements
          error_ = "the test venv lacks a package; update it with: " + std::string(kHowTo) + "\n" +
                   error_;
        }
        return;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        error_ = "fake apiserver did not start in 15 s; log: " + Log();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the URL is written in one go
    std::ifstream in(ready);
    std::getline(in, url_);
    k8s::ClientConfig config;
    config.server = url_;
    config.token = "test-token";
    auto client = k8s::Client::Create(config);
    if (!client.ok()) {
      error_ = client.status().ToString();
      return;
    }
    client_ = std::move(*client);
  }

  ~FakeApiServer() {
    client_.reset();
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      for (int i = 0; i < 100; ++i) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
      }
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  bool ok() const { return client_ != nullptr; }
  // The server could not start because its Python tool is missing; error() says how to get it.
  bool skipped() const { return skipped_; }
  const std::string& error() const { return error_; }
  const std::string& url() const { return url_; }
  k8s::Client& client() { return *client_; }

  std::string Log() const {
    std::ifstream in(dir_ / "server.log");
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    return s.size() > 3000 ? s.substr(s.size() - 3000) : s;
  }

  // Test control endpoints (see fake_apiserver.py).
  void AddFault(const nlohmann::json& spec) { Control("POST", "/_test/faults", &spec); }
  void ClearFaults() { Control("DELETE", "/_test/faults", nullptr); }
  void Compact() { Control("POST", "/_test/compact", nullptr); }
  void ClearRequests() { Control("DELETE", "/_test/requests", nullptr); }
  nlohmann::json Requests() { return Control("GET", "/_test/requests", nullptr); }
  // Requests in the log that change state (anything but GET), optionally only those whose path
  // contains `path_part`.
  int CountWrites(const std::string& path_part = "") {
    int n = 0;
    for (const nlohmann::json& r : Requests()) {
      if (r.value("method", "GET") == "GET") continue;
      if (!path_part.empty() && r.value("path", "").find(path_part) == std::string::npos) continue;
      ++n;
    }
    return n;
  }

 private:
  nlohmann::json Control(const char* method, const char* path, const nlohmann::json* body) {
    auto r = client_->Raw(method, path, body);
    return r.ok() ? *r : nlohmann::json();
  }
  static int& counter() {
    static int n = 0;
    return n;
  }

  static constexpr char kHowTo[] = "bash scripts/setup.sh";

  std::filesystem::path dir_;
  pid_t pid_ = -1;
  bool skipped_ = false;
  std::string url_;
  std::string error_;
  std::unique_ptr<k8s::Client> client_;
};

// In a test body or SetUp(): skips the test when `server`'s Python tool is missing, fails it when
// the server did not start for another reason.
#define KUBEMOE_REQUIRE_FAKE_APISERVER(server)                    \
  do {                                                            \
    if ((server).skipped()) GTEST_SKIP() << (server).error();     \
    ASSERT_TRUE((server).ok()) << (server).error();               \
  } while (0)

// A YAML node as JSON: plain scalars become null/bool/integer/float where they read as one,
// quoted scalars stay strings.
inline nlohmann::json YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : node) out[kv.first.Scalar()] = YamlToJson(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) out.push_back(YamlToJson(item));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() == "!") return s;
      if (s == "true") return true;
      if (s == "false") return false;
      if (s == "null" || s == "~") return nullptr;
      nlohmann::json number = nlohmann::json::parse(s, nullptr, false);
      if (!number.is_discarded() && number.is_number()) return number;
      return s;
    }
    default:
      return nullptr;
  }
}

// The first document of a YAML file under the source tree, as JSON.
inline nlohmann::json LoadYamlFile(const std::string& relative_path) {
  return YamlToJson(YAML::LoadFile(std::string(KUBEMOE_SOURCE_DIR) + "/" + relative_path));
}

// Polls `condition` every 20 ms until it holds or `timeout` passes; returns its last value.
template <typename F>
bool WaitUntil(F condition, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

}  // namespace kubemoe::testing
