// Wiring of the generated protobuf + gRPC code (proto/): an ExpertBatch survives the wire, and an
// in-process ExpertService (callback API) with the default health service answers a real client
// over 127.0.0.1. The service here is a test double that validates requests the way a worker must
// and runs fake experts (expert e multiplies by e + 1); real expert math is tested elsewhere.
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "kubemoe/v1/expert_service.grpc.pb.h"
#include "kubemoe/v1/tensor.pb.h"
#include "model/dtype.h"

namespace kubemoe {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

constexpr int kHidden = 8;
constexpr uint64_t kPlacementVersion = 7;
constexpr int kLayer = 3;
const std::set<int> kHostedExperts = {0, 1, 5};

// ---- Tensor helpers (what router and worker code will do with the bytes field) ----

v1::Tensor Bf16Tensor(const std::vector<int64_t>& shape, const std::vector<float>& values) {
  v1::Tensor t;
  t.set_dtype(v1::DTYPE_BF16);
  for (int64_t d : shape) t.add_shape(d);
  std::string bytes(values.size() * 2, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t bits = FloatToBf16(values[i]);
    bytes[2 * i] = static_cast<char>(bits & 0xff);  // little-endian, as tensor.proto says
    bytes[2 * i + 1] = static_cast<char>(bits >> 8);
  }
  t.set_data(std::move(bytes));
  return t;
}

std::vector<float> Bf16Values(const v1::Tensor& t) {
  std::vector<float> out(t.data().size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const auto lo = static_cast<uint8_t>(t.data()[2 * i]);
    const auto hi = static_cast<uint8_t>(t.data()[2 * i + 1]);
    out[i] = Bf16ToFloat(static_cast<uint16_t>(lo | (hi << 8)));
  }
  return out;
}

size_t WireDTypeSize(v1::DType dtype) {
  switch (dtype) {
    case v1::DTYPE_F32:
      return 4;
    case v1::DTYPE_BF16:
    case v1::DTYPE_F16:
      return 2;
    default:
      return 0;
  }
}

// ---- The test double ----

grpc::Status Invalid(const std::string& m) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, m);
}

// Checks a batch as a worker must before touching its bytes.
grpc::Status Validate(const v1::ExpertBatch& b) {
  if (b.placement_version() != kPlacementVersion) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "placement_version " + std::to_string(b.placement_version()) +
                            " but this worker serves " + std::to_string(kPlacementVersion));
  }
  if (b.layer() != kLayer) return Invalid("layer " + std::to_string(b.layer()) + " not hosted");
  const v1::Tensor& h = b.hidden_states();
  if (h.dtype() != v1::DTYPE_BF16) return Invalid("hidden_states: dtype must be DTYPE_BF16");
  if (h.shape_size() != 2 || h.shape(1) != kHidden || h.shape(0) < 0 ||
      h.shape(0) > (int64_t{1} << 32)) {
    return Invalid("hidden_states: shape must be [num_tokens, " + std::to_string(kHidden) + "]");
  }
  const uint64_t want = static_cast<uint64_t>(h.shape(0)) * kHidden * WireDTypeSize(h.dtype());
  if (h.data().size() != want) {
    return Invalid("hidden_states: " + std::to_string(h.data().size()) + " bytes but shape needs " +
                   std::to_string(want));
  }
  if (b.routes_size() != h.shape(0)) {
    return Invalid("routes: " + std::to_string(b.routes_size()) + " routes for " +
                   std::to_string(h.shape(0)) + " tokens");
  }
  for (int t = 0; t < b.routes_size(); ++t) {
    const v1::TokenRoute& r = b.routes(t);
    if (r.expert_ids_size() != r.gate_weights_size() || r.expert_ids_size() == 0) {
      return Invalid("routes[" + std::to_string(t) + "]: expert_ids and gate_weights differ");
    }
    for (int e : r.expert_ids()) {
      if (!kHostedExperts.contains(e)) {
        return Invalid("routes[" + std::to_string(t) + "]: expert " + std::to_string(e) +
                       " is not hosted here");
      }
    }
  }
  return grpc::Status::OK;
}

class FakeExpertService final : public v1::ExpertService::CallbackService {
  grpc::ServerUnaryReactor* RunExperts(grpc::CallbackServerContext* ctx,
                                       const v1::ExpertBatch* batch,
                                       v1::ExpertBatchResult* result) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    grpc::Status status = Validate(*batch);
    if (status.ok()) Run(*batch, result);
    reactor->Finish(status);
    return reactor;
  }

  // Expert e scales its input by (e + 1); a token's output is sum_k gate_k * (e_k + 1) * x.
  static void Run(const v1::ExpertBatch& batch, v1::ExpertBatchResult* result) {
    const std::vector<float> x = Bf16Values(batch.hidden_states());
    std::vector<float> y(x.size(), 0.0f);
    for (int t = 0; t < batch.routes_size(); ++t) {
      const v1::TokenRoute& r = batch.routes(t);
      float scale = 0;
      for (int k = 0; k < r.expert_ids_size(); ++k) {
        scale += r.gate_weights(k) * static_cast<float>(r.expert_ids(k) + 1);
        (*result->mutable_expert_token_counts())[r.expert_ids(k)] += 1;
      }
      for (int h = 0; h < kHidden; ++h) y[t * kHidden + h] = scale * x[t * kHidden + h];
    }
    result->set_layer(batch.layer());
    result->set_placement_version(batch.placement_version());
    *result->mutable_outputs() = Bf16Tensor({batch.hidden_states().shape(0), kHidden}, y);
  }
};

// ---- Fixtures ----

// Three tokens; every value and product is exact in bf16, so outputs compare exactly.
v1::ExpertBatch GoodBatch() {
  v1::ExpertBatch b;
  b.set_request_id("step-42");
  b.set_layer(kLayer);
  b.set_placement_version(kPlacementVersion);
  std::vector<float> x;
  for (int t = 0; t < 3; ++t) {
    for (int h = 0; h < kHidden; ++h) x.push_back(static_cast<float>(h - 4) * (t + 1) * 0.25f);
  }
  *b.mutable_hidden_states() = Bf16Tensor({3, kHidden}, x);
  auto add_route = [&b](std::vector<int> ids, std::vector<float> weights) {
    v1::TokenRoute* r = b.add_routes();
    for (int id : ids) r->add_expert_ids(id);
    for (float w : weights) r->add_gate_weights(w);
  };
  add_route({0, 5}, {0.5f, 0.25f});   // scale 0.5*1 + 0.25*6 = 2
  add_route({1}, {0.75f});            // scale 0.75*2 = 1.5
  add_route({5, 1}, {0.125f, 0.5f});  // scale 0.125*6 + 0.5*2 = 1.75
  b.set_deadline_budget_micros(0);
  return b;
}

TEST(ProtoWire, ExpertBatchRoundTripsWithBf16HiddenStates) {
  const v1::ExpertBatch in = GoodBatch();
  std::string wire;
  ASSERT_TRUE(in.SerializeToString(&wire));
  v1::ExpertBatch out;
  ASSERT_TRUE(out.ParseFromString(wire));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(in, out));
  EXPECT_EQ(out.request_id(), "step-42");
  EXPECT_EQ(out.placement_version(), kPlacementVersion);
  ASSERT_EQ(out.hidden_states().shape_size(), 2);
  EXPECT_EQ(out.hidden_states().data().size(), 3u * kHidden * 2);
  // Element 0 is (0 - 4) * 1 * 0.25 = -1.0, bf16 0xBF80, stored low byte first.
  EXPECT_EQ(static_cast<uint8_t>(out.hidden_states().data()[0]), 0x80);
  EXPECT_EQ(static_cast<uint8_t>(out.hidden_states().data()[1]), 0xBF);
  const std::vector<float> values = Bf16Values(out.hidden_states());
  EXPECT_EQ(values[0], -1.0f);
  EXPECT_EQ(values[2 * kHidden + 7], 3 * 3 * 0.25f);
  ASSERT_EQ(out.routes_size(), 3);
  EXPECT_EQ(out.routes(2).expert_ids(0), 5);
  EXPECT_EQ(out.routes(2).gate_weights(1), 0.5f);
  // A truncated message is refused, not half-read.
  v1::ExpertBatch broken;
  EXPECT_FALSE(broken.ParseFromString(wire.substr(0, wire.size() - 5)));
}

// ---- In-process server ----

class ExpertServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::ExpertService::NewStub(channel_);
    health_ = grpc::health::v1::Health::NewStub(channel_);
  }

  void TearDown() override {
    if (server_) ShutDown();
  }

  void ShutDown() {
    server_->Shutdown(system_clock::now() + seconds(5));
    server_->Wait();
    server_.reset();
  }

  // Every call carries a deadline so a wedged server fails the test instead of hanging it.
  grpc::Status Call(const v1::ExpertBatch& batch, v1::ExpertBatchResult* result) {
    grpc::ClientContext ctx;
    ctx.set_deadline(system_clock::now() + seconds(10));
    return stub_->RunExperts(&ctx, batch, result);
  }

  grpc::Status Health(const std::string& service, grpc::health::v1::HealthCheckResponse* response) {
    grpc::ClientContext ctx;
    ctx.set_deadline(system_clock::now() + seconds(10));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    return health_->Check(&ctx, request, response);
  }

  FakeExpertService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ExpertService::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

TEST_F(ExpertServiceTest, RunsExpertsAndCombinesWithGateWeights) {
  const v1::ExpertBatch batch = GoodBatch();
  v1::ExpertBatchResult result;
  grpc::Status s = Call(batch, &result);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_EQ(result.layer(), kLayer);
  EXPECT_EQ(result.placement_version(), kPlacementVersion);
  ASSERT_EQ(result.outputs().dtype(), v1::DTYPE_BF16);
  ASSERT_EQ(result.outputs().shape_size(), 2);
  EXPECT_EQ(result.outputs().shape(0), 3);
  EXPECT_EQ(result.outputs().shape(1), kHidden);
  const std::vector<float> y = Bf16Values(result.outputs());
  ASSERT_EQ(y.size(), 3u * kHidden);
  // Scales worked out by hand from the routes in GoodBatch().
  const float scale[3] = {2.0f, 1.5f, 1.75f};
  for (int t = 0; t < 3; ++t) {
    for (int h = 0; h < kHidden; ++h) {
      const float x = static_cast<float>(h - 4) * (t + 1) * 0.25f;
      EXPECT_EQ(y[t * kHidden + h], scale[t] * x) << "token " << t << " h " << h;
    }
  }
  const auto& counts = result.expert_token_counts();
  ASSERT_EQ(counts.size(), 3u);
  EXPECT_EQ(counts.at(0), 1);
  EXPECT_EQ(counts.at(1), 2);
  EXPECT_EQ(counts.at(5), 2);
}

TEST_F(ExpertServiceTest, RejectsInvalidBatchesWithTheRightCode) {
  struct Case {
    const char* what;
    void (*mutate)(v1::ExpertBatch*);
    grpc::StatusCode code;
    const char* fragment;
  };
  const Case cases[] = {
      {"one byte short",
       [](v1::ExpertBatch* b) { b->mutable_hidden_states()->mutable_data()->pop_back(); },
       grpc::StatusCode::INVALID_ARGUMENT, "hidden_states: 47 bytes"},
      {"one byte extra",
       [](v1::ExpertBatch* b) { b->mutable_hidden_states()->mutable_data()->push_back('\0'); },
       grpc::StatusCode::INVALID_ARGUMENT, "49 bytes"},
      {"shape claims more tokens",
       [](v1::ExpertBatch* b) { b->mutable_hidden_states()->set_shape(0, 4); },
       grpc::StatusCode::INVALID_ARGUMENT, "hidden_states"},
      {"negative dimension",
       [](v1::ExpertBatch* b) { b->mutable_hidden_states()->set_shape(0, -3); },
       grpc::StatusCode::INVALID_ARGUMENT, "shape"},
      {"unspecified dtype",
       [](v1::ExpertBatch* b) { b->mutable_hidden_states()->set_dtype(v1::DTYPE_UNSPECIFIED); },
       grpc::StatusCode::INVALID_ARGUMENT, "dtype"},
      {"missing route", [](v1::ExpertBatch* b) { b->mutable_routes()->RemoveLast(); },
       grpc::StatusCode::INVALID_ARGUMENT, "2 routes for 3 tokens"},
      {"extra route", [](v1::ExpertBatch* b) { b->add_routes()->add_expert_ids(0); },
       grpc::StatusCode::INVALID_ARGUMENT, "4 routes for 3 tokens"},
      {"weights and ids differ",
       [](v1::ExpertBatch* b) { b->mutable_routes(1)->add_expert_ids(0); },
       grpc::StatusCode::INVALID_ARGUMENT, "routes[1]"},
      {"expert not hosted", [](v1::ExpertBatch* b) { b->mutable_routes(2)->set_expert_ids(0, 2); },
       grpc::StatusCode::INVALID_ARGUMENT, "expert 2 is not hosted"},
      {"old placement", [](v1::ExpertBatch* b) { b->set_placement_version(kPlacementVersion - 1); },
       grpc::StatusCode::FAILED_PRECONDITION, "placement_version 6"},
      {"new placement", [](v1::ExpertBatch* b) { b->set_placement_version(kPlacementVersion + 1); },
       grpc::StatusCode::FAILED_PRECONDITION, "serves 7"},
  };
  for (const Case& c : cases) {
    v1::ExpertBatch batch = GoodBatch();
    c.mutate(&batch);
    v1::ExpertBatchResult result;
    grpc::Status s = Call(batch, &result);
    EXPECT_EQ(s.error_code(), c.code) << c.what << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(c.fragment), std::string::npos)
        << c.what << ": " << s.error_message();
    EXPECT_FALSE(result.has_outputs()) << c.what;
  }
}

TEST_F(ExpertServiceTest, EmptyBatchIsValid) {
  v1::ExpertBatch batch = GoodBatch();
  batch.mutable_hidden_states()->set_shape(0, 0);
  batch.mutable_hidden_states()->clear_data();
  batch.clear_routes();
  v1::ExpertBatchResult result;
  ASSERT_TRUE(Call(batch, &result).ok());
  EXPECT_EQ(result.outputs().shape(0), 0);
  EXPECT_TRUE(result.outputs().data().empty());
  EXPECT_TRUE(result.expert_token_counts().empty());
}

TEST_F(ExpertServiceTest, ConcurrentCallsEachGetTheirOwnAnswer) {
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::vector<int> ok(kThreads, 0);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([this, i, &ok] {
      for (int n = 0; n < 10; ++n) {
        v1::ExpertBatch batch = GoodBatch();
        batch.set_request_id("thread-" + std::to_string(i));
        // Token 1 goes to expert 1 with weight i/8 (exact in bf16 and f32), so each thread's
        // answer differs: scale = 2 * i / 8.
        batch.mutable_routes(1)->set_gate_weights(0, static_cast<float>(i) / 8);
        v1::ExpertBatchResult result;
        if (!Call(batch, &result).ok()) continue;
        const std::vector<float> y = Bf16Values(result.outputs());
        const float x = static_cast<float>(7 - 4) * 2 * 0.25f;  // token 1, h 7
        if (y.size() == 3u * kHidden && y[kHidden + 7] == 2.0f * i / 8 * x) ++ok[i];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) EXPECT_EQ(ok[i], 10) << "thread " << i;
}

TEST_F(ExpertServiceTest, HealthServiceReportsServing) {
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status s = Health("", &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  // Per-service status is what a worker flips while it loads a new placement.
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  ASSERT_NE(health, nullptr);
  const std::string service = v1::ExpertService::service_full_name();
  EXPECT_EQ(service, "kubemoe.v1.ExpertService");
  health->SetServingStatus(service, false);
  ASSERT_TRUE(Health(service, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  health->SetServingStatus(service, true);
  ASSERT_TRUE(Health(service, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  EXPECT_EQ(Health("no.such.Service", &response).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ExpertServiceTest, CallsAfterShutdownFailFast) {
  v1::ExpertBatchResult result;
  ASSERT_TRUE(Call(GoodBatch(), &result).ok());
  ShutDown();
  grpc::ClientContext ctx;
  ctx.set_deadline(system_clock::now() + seconds(2));
  grpc::Status s = stub_->RunExperts(&ctx, GoodBatch(), &result);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

}  // namespace
}  // namespace kubemoe
