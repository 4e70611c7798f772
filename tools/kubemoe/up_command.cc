// `kubemoe up`: the local cluster. Reads a MoEModel YAML, computes the placement and the pods'
// arguments with the operator's own functions (local/local_plan.h), starts one kubemoe-worker per
// expert shard and the kubemoe-router as processes on loopback, waits until the router is ready,
// prints the endpoint, then supervises them like a kubelet until Ctrl-C.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "common/free_port.h"
#include "local/local_plan.h"
#include "local/net_util.h"
#include "local/supervisor.h"
#include "tools/kubemoe/commands.h"

namespace kubemoe::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct UpFlags {
  std::string file;
  std::string model_dir;
  int port = 8000;
  std::string run_dir;
  std::string bin_dir;
  int ready_timeout_s = 300;
};

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop = true; }

int Fail(const std::string& message) {
  std::cerr << "kubemoe up: " << message << std::endl;
  return 1;
}

// Where the model lives on this machine: --model, else the sample's hostPath (+ path).
std::string LocalModelDir(const UpFlags& flags, const op::MoEModel& model) {
  if (!flags.model_dir.empty()) return flags.model_dir;
  const op::ModelSource& src = model.spec.model.source;
  if (src.host_path.empty()) return "";
  return src.path.empty() ? src.host_path : (fs::path(src.host_path) / src.path).string();
}

std::string BinDir(const UpFlags& flags) {
  if (!flags.bin_dir.empty()) return flags.bin_dir;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "." : self.parent_path().string();
}

int RunUp(const UpFlags& flags) {
  std::ifstream in(flags.file);
  if (!in) return Fail("cannot read " + flags.file);
  std::stringstream text;
  text << in.rdbuf();
  StatusOr<op::MoEModel> model = local::ParseMoEModelYaml(text.str(), flags.file);
  if (!model.ok()) return Fail(model.status().message());

  local::LocalSettings settings;
  settings.model_dir = LocalModelDir(flags, *model);
  if (settings.model_dir.empty()) {
    return Fail(flags.file + " names no hostPath model; give the checkpoint with --model DIR");
  }
  if (!fs::exists(fs::path(settings.model_dir) / "config.json")) {
    return Fail("no config.json in " + settings.model_dir +
                " (make one with: kubemoe make-model --preset tiny --out DIR)");
  }
  settings.model_dir = fs::absolute(settings.model_dir).string();
  settings.run_dir = flags.run_dir.empty()
                         ? (fs::temp_directory_path() / ("kubemoe-up-" + std::to_string(::getpid())))
                               .string()
                         : flags.run_dir;
  std::error_code ec;
  fs::create_directories(settings.run_dir, ec);
  if (ec) return Fail("cannot create " + settings.run_dir + ": " + ec.message());
  settings.http_port = flags.port;
  for (int i = 0; i < model->spec.experts.shards; ++i) {
    settings.worker_grpc_ports.push_back(PickFreePort("127.0.0.1"));
    settings.worker_metrics_ports.push_back(PickFreePort("127.0.0.1"));
  }
  StatusOr<local::LocalPlan> plan = local::PlanLocalCluster(*model, settings);
  if (!plan.ok()) return Fail(plan.status().message());
  {
    std::ofstream out(settings.run_dir + "/placement.yaml");
    out << plan->placement_yaml;
    if (!out) return Fail("cannot write " + settings.run_dir + "/placement.yaml");
  }
  std::cout << "kubemoe up: MoEModel " << model->metadata.name << ": "
            << model->spec.experts.shards << " expert shard(s), placement version "
            << plan->placement_version << ", run directory " << settings.run_dir << std::endl;

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  const std::string bin = BinDir(flags);
  local::Supervisor supervisor(std::cout, settings.run_dir + "/processes.json");
  for (size_t i = 0; i < plan->workers.size(); ++i) {
    const local::ProcessSpec& w = plan->workers[i];
    Status s = supervisor.Start(
        {w, bin + "/kubemoe-worker", settings.run_dir + "/" + w.name + ".log", true});
    if (!s.ok()) return Fail(s.message());
  }
  Status s = supervisor.Start({plan->router, bin + "/kubemoe-router",
                               settings.run_dir + "/router.log", /*restart=*/false});
  if (!s.ok()) return Fail(s.message());

  const std::string base = "http://127.0.0.1:" + std::to_string(flags.port);
  const auto ready_by = Clock::now() + std::chrono::seconds(flags.ready_timeout_s);
  bool ready = false;
  std::string why;
  while (!g_stop) {
    if (!supervisor.Poll(&why)) {
      supervisor.StopAll();
      return Fail("stopping: " + why);
    }
    if (!ready && local::HttpGetStatus(flags.port, "/readyz", std::chrono::milliseconds(500)) ==
                      200) {
      ready = true;
      std::cout << "kubemoe up: ready: " << base << "/v1 serves model \"" << model->spec.model.name
                << "\"\n"
                << "kubemoe up: try: curl -s " << base
                << "/v1/chat/completions -H 'Content-Type: application/json' -d '{\"model\": \""
                << model->spec.model.name
                << "\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], "
                   "\"max_tokens\": 16}'"
                << std::endl;
    }
    if (!ready && Clock::now() > ready_by) {
      supervisor.StopAll();
      return Fail("not ready after " + std::to_string(flags.ready_timeout_s) + " s; see the logs in " +
                  settings.run_dir);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::cout << "kubemoe up: stopping" << std::endl;
  supervisor.StopAll();
  return 0;
}

}  // namespace

void RegisterUp(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<UpFlags>();
  CLI::App* cmd = app.add_subcommand(
      "up", "Run a MoEModel as a local cluster of processes (router + one worker per shard)");
  cmd->add_option("-f,--file", flags->file, "MoEModel YAML (e.g. manifests/samples/tiny-cpu.yaml)")
      ->required();
  cmd->add_option("--model", flags->model_dir,
                  "checkpoint directory (default: the MoEModel's hostPath)");
  cmd->add_option("--port", flags->port, "router HTTP port on 127.0.0.1")->capture_default_str();
  cmd->add_option("--run-dir", flags->run_dir, "placement, logs and processes.json (default: a temp dir)");
  cmd->add_option("--bin-dir", flags->bin_dir,
                  "where kubemoe-router and kubemoe-worker are (default: beside kubemoe)");
  cmd->add_option("--ready-timeout", flags->ready_timeout_s, "seconds to wait for readiness")
      ->capture_default_str();
  cmd->callback([flags, exit_code] { *exit_code = RunUp(*flags); });
}

}  // namespace kubemoe::cli
