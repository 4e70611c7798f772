// The expert-shard worker in-process on loopback: shard 1 of a 2-shard placement of the tiny
// model, started from a checkpoint that holds ONLY shard 1's expert tensors (no attention, no
// dense weights, no other expert), so a worker that read anything else could not start. Calls go
// through a real gRPC channel and outputs are compared with layers::RunRoutedExperts over every
// expert loaded from the full checkpoint.
#include "worker/worker_server.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/thread_pool.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "kubemoe/v1/expert_service.grpc.pb.h"
#include "kubemoe/v1/worker_info.grpc.pb.h"
#include "layers/grouped_experts.h"
#include "model/dtype.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "model/safetensors_writer.h"
#include "placement/placement.h"
#include "tests/temp_dir.h"
#include "transport/tensor_codec.h"
#include "worker/shard_index.h"

namespace kubemoe::worker {
namespace {

using transport::WireDType;

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// GET http://127.0.0.1:port/path; returns "CODE\nBODY" (enough for these checks).
std::string HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "connect failed";
  }
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  (void)!::write(fd, request.data(), request.size());
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
    response.append(buf, static_cast<size_t>(n));
  ::close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (response.size() < 12 || body == std::string::npos) return "bad response";
  return response.substr(9, 3) + "\n" + response.substr(body + 4);
}

// Everything the tests share, made once: the full checkpoint, the shard-1-only checkpoint, the
// placement, the reference experts and a running worker.
struct World {
  TempDir dir;
  ModelConfig config;
  placement::Placement placement;
  std::string full_dir, shard_dir, placement_file;
  std::shared_ptr<const Checkpoint> full;
  layers::ExpertStore reference;  // every expert of every MoE layer
  std::vector<int64_t> moe_layers;
  std::unique_ptr<WorkerServer> server;
  std::shared_ptr<grpc::Channel> channel;

  WorkerOptions Options(int32_t shard) const {
    WorkerOptions o;
    o.model_dir = shard_dir;
    o.placement_file = placement_file;
    o.placement_version = placement.version;
    o.shard_index = shard;
    o.devices = 1;
    o.grpc_address = "127.0.0.1";
    o.model_name = "tiny-test";
    return o;
  }
};

World* world = nullptr;

bool ShardOneExpertTensor(const std::string& name, const std::vector<int64_t>& moe_layers) {
  for (int64_t l : moe_layers) {
    for (int e = 8; e < 16; ++e) {
      const std::string prefix =
          "model.layers." + std::to_string(l) + ".mlp.experts." + std::to_string(e) + ".";
      if (name.rfind(prefix, 0) == 0) return true;
    }
  }
  return false;
}

void MakeWorld() {
  auto* w = new World;
  StatusOr<ModelConfig> config = PresetConfig("tiny", 1205, 1200, 1201);
  ASSERT_TRUE(config.ok());
  w->config = *config;
  w->config.initializer_range = 0.1;
  for (int64_t l = 0; l < w->config.num_hidden_layers; ++l) {
    if (w->config.IsMoeLayer(l)) w->moe_layers.push_back(l);
  }
  w->full_dir = w->dir.File("full");
  w->shard_dir = w->dir.File("shard1");
  RandomCheckpointOptions options;
  options.out_dir = w->full_dir;
  options.seed = 11;
  const std::string tokenizer =
      ReadText(std::string(KUBEMOE_SOURCE_DIR) + "/tests/data/tokenizer/tokenizer.json");
  ASSERT_TRUE(WriteRandomCheckpoint(w->config, tokenizer, options).ok());
  StatusOr<Checkpoint> full = Checkpoint::Open(w->full_dir);
  ASSERT_TRUE(full.ok());
  w->full = std::make_shared<const Checkpoint>(std::move(*full));

  SafetensorsWriter trimmed;  // shard 1's experts (8..15 of each MoE layer) and nothing else
  for (const std::string& name : w->full->TensorNames()) {
    if (!ShardOneExpertTensor(name, w->moe_layers)) continue;
    StatusOr<TensorInfo> info = w->full->Info(name);
    StatusOr<std::span<const uint8_t>> bytes = w->full->Tensor(name);
    ASSERT_TRUE(info.ok() && bytes.ok());
    ASSERT_TRUE(trimmed.Add(name, info->dtype, info->shape, {bytes->begin(), bytes->end()}).ok());
  }
  ASSERT_EQ(trimmed.size(), w->moe_layers.size() * 8 * 3);
  std::filesystem::create_directories(w->shard_dir);
  std::filesystem::copy_file(w->full_dir + "/config.json", w->shard_dir + "/config.json");
  ASSERT_TRUE(trimmed.WriteFile(w->shard_dir + "/model.safetensors").ok());

  std::vector<layers::ExpertKey> all;
  for (int64_t l : w->moe_layers) {
    for (int32_t e = 0; e < 16; ++e) all.push_back({l, e});
  }
  StatusOr<layers::ExpertStore> reference = layers::LoadExperts(w->full, w->config, all);
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  w->reference = std::move(*reference);

  placement::PlacementSpec spec;
  spec.routed_experts = 16;
  spec.moe_layers = static_cast<int32_t>(w->moe_layers.size());
  spec.shards = 2;
  spec.top_k = 4;
  StatusOr<placement::Placement> p = placement::ComputePlacement(spec);
  ASSERT_TRUE(p.ok());
  w->placement = *p;
  w->placement_file = w->dir.File("placement.yaml");
  std::ofstream(w->placement_file) << placement::ToYaml(w->placement);

  StatusOr<std::unique_ptr<WorkerServer>> server = WorkerServer::Start(w->Options(1));
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  w->server = std::move(*server);
  w->channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(w->server->grpc_port()),
                                   grpc::InsecureChannelCredentials());
  world = w;
}

class WorkerServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (world == nullptr) MakeWorld();
  }
  static void TearDownTestSuite() {
    delete world;  // stops the server, removes the files
    world = nullptr;
  }
  void SetUp() override { ASSERT_NE(world, nullptr) << "the shared world failed to build"; }

  static grpc::Status Call(const v1::ExpertBatch& batch, v1::ExpertBatchResult* result) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return v1::ExpertService::NewStub(world->channel)->RunExperts(&ctx, batch, result);
  }

  // `tokens` tokens of layer `layer`, each routed to 0..4 distinct experts of shard 1 (8..15) on
  // its device 0, with hidden states in [-2, 2].
  static v1::ExpertBatch RandomBatch(int64_t layer, int64_t tokens, WireDType dtype, uint32_t seed,
                                     std::vector<float>* hidden, layers::RaggedRoutes* routes) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> value(-2.0f, 2.0f), gate(0.05f, 1.0f);
    hidden->resize(static_cast<size_t>(tokens * world->config.hidden_size));
    for (float& x : *hidden) x = value(rng);
    *routes = layers::RaggedRoutes{};
    std::vector<int32_t> experts = {8, 9, 10, 11, 12, 13, 14, 15};
    for (int64_t t = 0; t < tokens; ++t) {
      std::shuffle(experts.begin(), experts.end(), rng);
      const size_t k = static_cast<size_t>(t % 5);
      std::vector<float> weights(k);
      for (float& g : weights) g = gate(rng);
      routes->AddToken(std::span(experts.data(), k), weights, std::vector<int32_t>(k, 1));
    }
    v1::ExpertBatch batch;
    batch.set_request_id("test");
    batch.set_layer(static_cast<int32_t>(layer));
    batch.set_placement_version(world->placement.version);
    transport::EncodeTensor(hidden->data(), tokens, world->config.hidden_size, dtype,
                            batch.mutable_hidden_states());
    // Global device 1 is shard 1's local device 0.
    transport::EncodeRoutes(*routes, /*devices_per_shard=*/1, &batch);
    return batch;
  }

  static std::vector<float> Reference(int64_t layer, const std::vector<float>& hidden,
                                      const layers::RaggedRoutes& routes,
                                      std::map<int32_t, int64_t>* counts) {
    std::vector<float> out(hidden.size());
    ThreadPool pool(1);
    EXPECT_TRUE(layers::RunRoutedExperts(pool, world->reference.LayerLookup(layer),
                                         world->config.hidden_size, hidden.data(), routes,
                                         out.data(), counts)
                    .ok());
    return out;
  }

  static void ExpectError(const v1::ExpertBatch& batch, grpc::StatusCode code,
                          const std::vector<std::string>& needles) {
    v1::ExpertBatchResult result;
    grpc::Status s = Call(batch, &result);
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    for (const std::string& n : needles) {
      EXPECT_NE(s.error_message().find(n), std::string::npos)
          << s.error_message() << " lacks " << n;
    }
  }
};

TEST_F(WorkerServerTest, LoadsExactlyTheExpertsOfItsShard) {
  // Starting at all proves it read nothing outside shard 1's experts: nothing else is in its
  // checkpoint. Shard 0 of the same files cannot start, because its experts are missing.
  EXPECT_EQ(world->server->num_experts(), 16);  // 8 experts x 2 MoE layers
  const int64_t h = world->config.hidden_size, inter = world->config.moe_intermediate_size;
  EXPECT_EQ(world->server->expert_bytes(), 16 * 3 * h * inter * 4);
  StatusOr<std::unique_ptr<WorkerServer>> shard0 = WorkerServer::Start(world->Options(0));
  ASSERT_FALSE(shard0.ok());
  EXPECT_EQ(shard0.status().code(), StatusCode::kNotFound);
  EXPECT_NE(shard0.status().message().find("mlp.experts.0."), std::string::npos)
      << shard0.status().message();
}

TEST_F(WorkerServerTest, F32OutputsEqualTheReference) {
  for (int64_t layer : world->moe_layers) {
    std::vector<float> hidden;
    layers::RaggedRoutes routes;
    const v1::ExpertBatch batch = RandomBatch(layer, 37, WireDType::kF32, 5, &hidden, &routes);
    v1::ExpertBatchResult result;
    grpc::Status s = Call(batch, &result);
    ASSERT_TRUE(s.ok()) << s.error_message();
    std::map<int32_t, int64_t> counts;
    const std::vector<float> want = Reference(layer, hidden, routes, &counts);
    StatusOr<std::vector<float>> got =
        transport::DecodeTensor(result.outputs(), world->config.hidden_size, "outputs");
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(result.outputs().dtype(), v1::DTYPE_F32);
    ASSERT_EQ(got->size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_LE(std::fabs((*got)[i] - want[i]), 1e-6 * std::max(1e-3f, std::fabs(want[i]))) << i;
    }
    const std::map<int32_t, int64_t> got_counts(result.expert_token_counts().begin(),
                                                result.expert_token_counts().end());
    EXPECT_EQ(got_counts, counts);
    EXPECT_EQ(result.layer(), layer);
    EXPECT_EQ(result.placement_version(), world->placement.version);
    EXPECT_GE(result.compute_seconds(), 0.0);
  }
}

TEST_F(WorkerServerTest, Bf16OutputsAreTheReferenceRoundedToBf16) {
  const int64_t layer = world->moe_layers.back();
  std::vector<float> hidden;
  layers::RaggedRoutes routes;
  const v1::ExpertBatch batch = RandomBatch(layer, 64, WireDType::kBf16, 9, &hidden, &routes);
  v1::ExpertBatchResult result;
  grpc::Status s = Call(batch, &result);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(result.outputs().dtype(), v1::DTYPE_BF16);
  // The worker sees the inputs rounded to bf16, computes in f32 and rounds the outputs once.
  for (float& x : hidden) x = Bf16ToFloat(FloatToBf16(x));
  const std::vector<float> want = Reference(layer, hidden, routes, nullptr);
  StatusOr<std::vector<float>> got =
      transport::DecodeTensor(result.outputs(), world->config.hidden_size, "outputs");
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_LE(std::fabs((*got)[i] - want[i]), std::ldexp(std::fabs(want[i]), -8)) << i;
  }
}

TEST_F(WorkerServerTest, OtherPlacementVersionIsAFailedPrecondition) {
  std::vector<float> hidden;
  layers::RaggedRoutes routes;
  v1::ExpertBatch batch = RandomBatch(1, 3, WireDType::kF32, 1, &hidden, &routes);
  batch.set_placement_version(world->placement.version + 1);
  ExpectError(
      batch, grpc::StatusCode::FAILED_PRECONDITION,
      {std::to_string(world->placement.version), std::to_string(world->placement.version + 1)});
}

TEST_F(WorkerServerTest, ExpertsNotHostedHereAreFailedPreconditions) {
  std::vector<float> hidden;
  layers::RaggedRoutes routes;
  v1::ExpertBatch batch = RandomBatch(1, 3, WireDType::kF32, 1, &hidden, &routes);
  batch.mutable_routes(1)->set_expert_ids(0, 3);  // shard 0's expert
  ExpectError(batch, grpc::StatusCode::FAILED_PRECONDITION, {"layer 1", "expert 3", "device 0"});
  batch.mutable_routes(1)->clear_devices();  // no device named anywhere: still not hosted
  for (auto& r : *batch.mutable_routes()) r.clear_devices();
  ExpectError(batch, grpc::StatusCode::FAILED_PRECONDITION, {"expert 3", "any device"});
  batch = RandomBatch(0, 3, WireDType::kF32, 1, &hidden, &routes);  // layer 0 is dense
  ExpectError(batch, grpc::StatusCode::FAILED_PRECONDITION, {"layer 0", "not a MoE layer"});
  batch.set_layer(99);
  ExpectError(batch, grpc::StatusCode::FAILED_PRECONDITION, {"layer 99"});
}

TEST_F(WorkerServerTest, MalformedBatchesAreInvalidArguments) {
  std::vector<float> hidden;
  layers::RaggedRoutes routes;
  const v1::ExpertBatch good = RandomBatch(2, 4, WireDType::kBf16, 3, &hidden, &routes);
  const auto invalid = [](const v1::ExpertBatch& b, const std::string& needle) {
    ExpectError(b, grpc::StatusCode::INVALID_ARGUMENT, {needle});
  };
  v1::ExpertBatch b = good;
  b.mutable_hidden_states()->set_dtype(v1::DTYPE_F16);
  invalid(b, "DTYPE_F16");
  b = good;
  b.mutable_hidden_states()->set_shape(1, 63);
  invalid(b, "shape");
  b = good;
  b.mutable_hidden_states()->mutable_data()->pop_back();
  invalid(b, "bytes");
  b = good;
  b.mutable_hidden_states()->set_shape(0, int64_t{1} << 62);
  invalid(b, "bytes");
  b = good;
  b.add_routes();
  invalid(b, "5 token routes for 4 rows");
  b = good;
  b.mutable_routes(3)->add_gate_weights(1.0f);
  invalid(b, "routes[3]");
  b = good;
  b.mutable_routes(3)->set_expert_ids(0, 16);
  invalid(b, "expert 16");
  b = good;
  b.mutable_routes(3)->set_expert_ids(0, -1);
  invalid(b, "expert -1");
  b = good;
  b.mutable_routes(3)->set_devices(0, 1);  // the shard has one device
  invalid(b, "device 1");
  b = good;
  b.mutable_routes(2)->set_expert_ids(1, b.routes(2).expert_ids(0));
  invalid(b, "named twice");
  b = good;
  b.mutable_routes(1)->set_gate_weights(0, std::nanf(""));
  invalid(b, "not finite");
  b = good;
  b.clear_hidden_states();
  invalid(b, "hidden_states");
}

TEST_F(WorkerServerTest, SpentBudgetIsDeadlineExceeded) {
  std::vector<float> hidden;
  layers::RaggedRoutes routes;
  v1::ExpertBatch batch = RandomBatch(1, 2, WireDType::kF32, 1, &hidden, &routes);
  batch.set_deadline_budget_micros(-1);  // the router's budget was spent before it was sent
  ExpectError(batch, grpc::StatusCode::DEADLINE_EXCEEDED, {"budget"});
  batch.set_deadline_budget_micros(60'000'000);
  v1::ExpertBatchResult result;
  EXPECT_TRUE(Call(batch, &result).ok());
}

TEST_F(WorkerServerTest, HealthIsServing) {
  auto health = grpc::health::v1::Health::NewStub(world->channel);
  for (const char* service : {"", "kubemoe.v1.ExpertService"}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&ctx, request, &response).ok()) << service;
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
  EXPECT_EQ(HttpGet(world->server->metrics_port(), "/healthz").substr(0, 3), "200");
  EXPECT_EQ(HttpGet(world->server->metrics_port(), "/readyz").substr(0, 3), "200");
}

TEST_F(WorkerServerTest, WorkerInfoDescribesTheShardAndItsLoad) {
  std::vector<float> hidden;
  layers::RaggedRoutes routes;
  const v1::ExpertBatch batch = RandomBatch(2, 10, WireDType::kF32, 21, &hidden, &routes);
  grpc::ClientContext before_ctx;
  v1::WorkerInfo before;
  auto stub = v1::WorkerInfoService::NewStub(world->channel);
  ASSERT_TRUE(stub->GetWorkerInfo(&before_ctx, v1::WorkerInfoRequest(), &before).ok());
  v1::ExpertBatchResult result;
  ASSERT_TRUE(Call(batch, &result).ok());
  grpc::ClientContext ctx;
  v1::WorkerInfo info;
  ASSERT_TRUE(stub->GetWorkerInfo(&ctx, v1::WorkerInfoRequest(), &info).ok());
  EXPECT_EQ(info.model(), "tiny-test");
  EXPECT_EQ(info.shard_index(), 1);
  EXPECT_EQ(info.placement_version(), world->placement.version);
  ASSERT_EQ(info.devices_size(), 1);
  EXPECT_EQ(info.devices(0).kind(), "cpu");
  ASSERT_EQ(info.devices(0).experts_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(info.devices(0).experts(i).layer(), world->moe_layers[static_cast<size_t>(i)]);
    EXPECT_EQ(std::vector<int32_t>(info.devices(0).experts(i).expert_ids().begin(),
                                   info.devices(0).experts(i).expert_ids().end()),
              (std::vector<int32_t>{8, 9, 10, 11, 12, 13, 14, 15}));
  }
  ASSERT_EQ(info.expert_loads_size(), 16);
  for (int i = 0; i < 16; ++i) {
    const v1::ExpertLoad& load = info.expert_loads(i);
    const auto it = result.expert_token_counts().find(load.expert_id());
    const int64_t added =
        load.layer() == 2 && it != result.expert_token_counts().end() ? it->second : 0;
    EXPECT_EQ(load.tokens_total(), before.expert_loads(i).tokens_total() + added) << i;
  }
}

// The value of the sample `name{labels}` in a text exposition; -1 when absent.
double Sample(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

TEST_F(WorkerServerTest, MetricsCountTokensPerExpert) {
  const int port = world->server->metrics_port();
  const std::string before = HttpGet(port, "/metrics");
  ASSERT_EQ(before.substr(0, 3), "200");
  std::vector<float> hidden;
  layers::RaggedRoutes routes;
  const v1::ExpertBatch batch = RandomBatch(1, 12, WireDType::kF32, 33, &hidden, &routes);
  v1::ExpertBatchResult result;
  ASSERT_TRUE(Call(batch, &result).ok());
  v1::ExpertBatch bad = batch;
  bad.set_placement_version(1);
  ASSERT_FALSE(Call(bad, &result).ok());
  const std::string after = HttpGet(port, "/metrics");
  for (int32_t e = 8; e < 16; ++e) {
    const std::string series =
        "kubemoe_worker_expert_tokens_total{layer=\"1\",expert=\"" + std::to_string(e) + "\"}";
    int64_t sent = 0;
    for (int32_t id : routes.expert_ids) sent += id == e ? 1 : 0;
    EXPECT_EQ(Sample(after, series) - Sample(before, series), static_cast<double>(sent)) << series;
  }
  EXPECT_EQ(Sample(after, "kubemoe_worker_expert_tokens_total{layer=\"1\",expert=\"0\"}"), -1);
  EXPECT_GE(Sample(after, "kubemoe_worker_request_errors_total{code=\"FAILED_PRECONDITION\"}"), 1);
  EXPECT_GE(Sample(after, "kubemoe_worker_requests_total") -
                Sample(before, "kubemoe_worker_requests_total"),
            2);
  EXPECT_EQ(Sample(after, "kubemoe_worker_batch_tokens_count") -
                Sample(before, "kubemoe_worker_batch_tokens_count"),
            1);
  EXPECT_GE(Sample(after, "kubemoe_worker_compute_seconds_count"), 1);
  EXPECT_EQ(Sample(after, "kubemoe_worker_expert_weight_bytes"),
            static_cast<double>(world->server->expert_bytes()));
  EXPECT_NE(after.find("kubemoe_build_info{version="), std::string::npos);
  EXPECT_NE(after.find("# TYPE kubemoe_worker_batch_tokens histogram"), std::string::npos);
}

// ---- Start-up errors (no server needed beyond the shared files) ----

TEST_F(WorkerServerTest, StartRefusesWhatItCannotServe) {
  const auto fails = [](WorkerOptions o, StatusCode code, const std::string& needle) {
    o.grpc_port = 0;
    o.metrics_port = -1;
    StatusOr<std::unique_ptr<WorkerServer>> s = WorkerServer::Start(o);
    ASSERT_FALSE(s.ok()) << needle;
    EXPECT_EQ(s.status().code(), code) << s.status().ToString();
    EXPECT_NE(s.status().message().find(needle), std::string::npos) << s.status().message();
  };
  WorkerOptions o = world->Options(1);
  o.device_type = "gpu";
  fails(o, StatusCode::kUnimplemented, "no GPU expert backend");
  o = world->Options(1);
  o.transport = "nccl";
  fails(o, StatusCode::kUnimplemented, "no NCCL transport");
  o = world->Options(1);
  o.placement_version = world->placement.version + 1;
  fails(o, StatusCode::kFailedPrecondition, std::to_string(world->placement.version + 1));
  o = world->Options(1);
  o.devices = 2;
  fails(o, StatusCode::kInvalidArgument, "devicesPerShard 1");
  o = world->Options(2);
  fails(o, StatusCode::kInvalidArgument, "shard index 2");
  o = world->Options(1);
  o.placement_file = world->dir.File("missing.yaml");
  fails(o, StatusCode::kNotFound, "missing.yaml");

  // A placement computed for 32 experts does not fit a 16-expert checkpoint.
  placement::PlacementSpec spec;
  spec.routed_experts = 32;
  spec.moe_layers = 2;
  spec.shards = 2;
  StatusOr<placement::Placement> other = placement::ComputePlacement(spec);
  ASSERT_TRUE(other.ok());
  o = world->Options(1);
  o.placement_file = world->dir.File("other.yaml");
  o.placement_version = 0;  // take the file's
  std::ofstream(o.placement_file) << placement::ToYaml(*other);
  fails(o, StatusCode::kInvalidArgument, "routedExperts 32");
}

TEST(ShardIndex, FlagThenEnvThenPodOrdinal) {
  EXPECT_EQ(*ResolveShardIndex("2", "5", "tiny-experts-7"), 2);
  EXPECT_EQ(*ResolveShardIndex("", "5", "tiny-experts-7"), 5);
  EXPECT_EQ(*ResolveShardIndex("$(KUBEMOE_SHARD_INDEX)", "", "tiny-experts-3"), 3);
  EXPECT_EQ(*ResolveShardIndex("", "", "tiny-experts-0"), 0);
  EXPECT_EQ(ResolveShardIndex("x", "", "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveShardIndex("-1", "", "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveShardIndex("", "", "worker").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveShardIndex("", "", "tiny-experts-x").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(WorkerServerTest, ConcurrentCallsAllGetTheirOwnAnswers) {
  std::vector<std::thread> clients;
  std::atomic<int> right{0};
  for (uint32_t c = 0; c < 4; ++c) {
    clients.emplace_back([c, &right] {
      for (uint32_t i = 0; i < 5; ++i) {
        std::vector<float> hidden;
        layers::RaggedRoutes routes;
        const int64_t layer = world->moe_layers[i % 2];
        const v1::ExpertBatch batch =
            RandomBatch(layer, 8 + c, WireDType::kF32, 100 * c + i, &hidden, &routes);
        v1::ExpertBatchResult result;
        if (!Call(batch, &result).ok()) continue;
        auto got = transport::DecodeTensor(result.outputs(), world->config.hidden_size, "out");
        if (got.ok() && *got == Reference(layer, hidden, routes, nullptr)) ++right;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(right.load(), 20);
}

TEST_F(WorkerServerTest, ShutdownWakesWaitAndRefusesNewCalls) {
  StatusOr<std::unique_ptr<WorkerServer>> server = WorkerServer::Start(world->Options(1));
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string((*server)->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  std::thread waiter([&] { (*server)->Wait(); });
  (*server)->Shutdown();
  waiter.join();
  (*server)->Shutdown();  // idempotent
  std::vector<float> hidden;
  layers::RaggedRoutes routes;
  const v1::ExpertBatch batch = RandomBatch(1, 2, WireDType::kF32, 1, &hidden, &routes);
  v1::ExpertBatchResult result;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  EXPECT_FALSE(v1::ExpertService::NewStub(channel)->RunExperts(&ctx, batch, &result).ok());
}

}  // namespace
}  // namespace kubemoe::worker
