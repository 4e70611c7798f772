// Mutual TLS credentials (transport/grpc_tls.h): a gRPC server with the worker's credentials
// answers a client with the router's credentials, and refuses plaintext clients, clients without
// a certificate, certificates of another CA, and (on the client side) a server reached by a name
// its certificate does not carry. Certificates come from tests/tools/make_test_certs.sh (openssl).
#include "transport/grpc_tls.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"
#include "kubemoe/v1/expert_service.grpc.pb.h"
#include "tests/temp_dir.h"

namespace kubemoe::transport {
namespace {

class GrpcTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new TempDir();
    const std::string cmd = std::string("bash ") + KUBEMOE_SOURCE_DIR +
                            "/tests/tools/make_test_certs.sh " + certs_->path() + " worker.test";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }
  static std::string Dir(const std::string& name) { return certs_->File(name); }

  void StartServer(const std::string& tls_dir) {
    auto credentials = GrpcServerCredentials(tls_dir);
    ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *credentials, &port_);
    builder.RegisterService(&expert_service_);  // a server needs one service besides health
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_ && port_ > 0);
    server_->GetHealthCheckService()->SetServingStatus("", true);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  // A health check through `credentials` to `host`:port; the gRPC status code.
  grpc::StatusCode Check(const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                         const std::string& host = "localhost") {
    grpc::ChannelArguments args;
    // The certificates name worker.test/localhost; dialling 127.0.0.1 with an override keeps the
    // test independent of the machine's resolver.
    if (host != "127.0.0.1") args.SetSslTargetNameOverride(host);
    auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port_), credentials, args);
    auto stub = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status s = stub->Check(&context, grpc::health::v1::HealthCheckRequest(), &response);
    if (s.ok()) {
      EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
    }
    return s.error_code();
  }

  std::shared_ptr<grpc::ChannelCredentials> Client(const std::string& dir) {
    auto credentials = GrpcChannelCredentials(dir);
    EXPECT_TRUE(credentials.ok()) << credentials.status().ToString();
    return credentials.ok() ? *credentials : nullptr;
  }

  static TempDir* certs_;
  v1::ExpertService::Service expert_service_;  // every method UNIMPLEMENTED; never called
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TempDir* GrpcTlsTest::certs_ = nullptr;

TEST_F(GrpcTlsTest, ClientWithTheRoutersCertificateIsServed) {
  StartServer(Dir("server"));
  EXPECT_EQ(Check(Client(Dir("client"))), grpc::StatusCode::OK);
  EXPECT_EQ(Check(Client(Dir("client")), "worker.test"), grpc::StatusCode::OK);
}

TEST_F(GrpcTlsTest, PlaintextClientIsRefused) {
  StartServer(Dir("server"));
  EXPECT_EQ(Check(grpc::InsecureChannelCredentials(), "127.0.0.1"), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcTlsTest, ClientWithoutACertificateIsRefused) {
  StartServer(Dir("server"));
  grpc::SslCredentialsOptions only_ca;
  std::ifstream ca(Dir("client") + "/ca.crt");
  only_ca.pem_root_certs.assign(std::istreambuf_iterator<char>(ca), {});
  EXPECT_EQ(Check(grpc::SslCredentials(only_ca)), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcTlsTest, CertificateOfAnotherCaIsRefused) {
  StartServer(Dir("server"));
  // "other" trusts its own CA only and presents a certificate from it: each side refuses the other.
  EXPECT_EQ(Check(Client(Dir("other"))), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcTlsTest, ServerReachedByANameNotInItsCertificateIsRefused) {
  StartServer(Dir("server"));
  EXPECT_EQ(Check(Client(Dir("client")), "not-the-worker.test"), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcTlsTest, PlaintextWhenNoDirectoryIsGiven) {
  StartServer("");
  EXPECT_EQ(Check(Client(""), "127.0.0.1"), grpc::StatusCode::OK);
}

TEST_F(GrpcTlsTest, BadDirectoriesAreClearErrors) {
  TempDir bad;
  auto missing = GrpcServerCredentials(bad.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("tls.crt"), std::string::npos) << missing.status().ToString();

  for (const char* f : {"tls.crt", "tls.key", "ca.crt"}) {
    std::filesystem::copy_file(Dir("server") + "/" + f, bad.File(f));
  }
  EXPECT_TRUE(CheckTlsDir(bad.path()).ok());

  std::ofstream(bad.File("ca.crt")) << "not a certificate\n";
  Status not_pem = CheckTlsDir(bad.path());
  EXPECT_NE(not_pem.message().find("ca.crt is not PEM"), std::string::npos) << not_pem.ToString();

  std::filesystem::copy_file(Dir("server") + "/ca.crt", bad.File("ca.crt"),
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(Dir("client") + "/tls.key", bad.File("tls.key"),
                             std::filesystem::copy_options::overwrite_existing);
  Status mismatch = CheckTlsDir(bad.path());
  EXPECT_NE(mismatch.message().find("is not the key of the certificate"), std::string::npos)
      << mismatch.ToString();
  EXPECT_FALSE(GrpcChannelCredentials(bad.path()).ok());
}

}  // namespace
}  // namespace kubemoe::transport
