// The OpenAI HTTP server in-process, over a service the test drives token by token, with a raw
// socket client: events reach the client while the request is still generating, a client that
// disconnects makes the stream report Cancelled(), and Stop() answers requests in flight instead
// of leaving them hanging. (tests/py/openai_client_test.py drives the same server with the
// official openai client and curl.)
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "router/openai_http.h"

namespace kubemoe::router {
namespace {

using Clock = std::chrono::steady_clock;

// Holds every submitted request so the test can play the scheduler.
class ManualService final : public GenerationService {
 public:
  Status Submit(GenerationParams params, std::shared_ptr<TokenStream> stream) override {
    std::lock_guard<std::mutex> lock(mu_);
    streams_.push_back(std::move(stream));
    params_.push_back(std::move(params));
    cv_.notify_all();
    return Status::Ok();
  }
  int64_t max_context() const override { return 128; }
  bool Ready(std::string*) const override { return true; }

  // Waits (bounded) for the n-th request.
  std::shared_ptr<TokenStream> WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return streams_.size() > n; });
    return streams_.size() > n ? streams_[n] : nullptr;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<TokenStream>> streams_;
  std::vector<GenerationParams> params_;
};

class Client {
 public:
  explicit Client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Client() { Close(); }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool connected() const { return connected_; }

  void Send(const std::string& raw) {
    ASSERT_EQ(::send(fd_, raw.data(), raw.size(), MSG_NOSIGNAL), static_cast<ssize_t>(raw.size()));
  }
  void Post(const std::string& path, const std::string& body) {
    Send("POST " + path + " HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  }

  // Reads until `needle` has arrived (true) or 10 s passed / the connection closed (false).
  bool ReadUntil(const std::string& needle) {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (received_.find(needle) == std::string::npos) {
      int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
      pollfd p{fd_, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, left) <= 0) return false;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return received_.find(needle) != std::string::npos;
      received_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  const std::string& received() const { return received_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string received_;
};

class OpenAIHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = Tokenizer::FromFile(KUBEMOE_SOURCE_DIR "/tests/data/tokenizer/tokenizer.json");
    ASSERT_TRUE(t.ok());
    tokenizer_ = std::make_unique<Tokenizer>(std::move(t).value());
    auto c = ChatTemplate::FromSource(kDefaultChatTemplate, "<｜begin▁of▁sentence｜>", "<E>");
    ASSERT_TRUE(c.ok());
    chat_ = std::make_unique<ChatTemplate>(std::move(c).value());
    OpenAIHttpOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.served_model_name = "m";
    options.get_routes["/healthz"] = [] { return http::HttpReply{200, "text/plain", "ok\n"}; };
    options.get_routes["/boom"] = []() -> http::HttpReply { throw std::runtime_error("boom"); };
    auto server =
        OpenAIHttpServer::Start(options, &service_, tokenizer_.get(), chat_.get(), &registry_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
  }
  void TearDown() override { server_.reset(); }

  // Plays the scheduler: sends `text`'s tokens; false when the stream asked to stop.
  bool Say(TokenStream& stream, const std::string& text) {
    bool more = true;
    for (int32_t id : tokenizer_->Encode(text, false)) {
      GeneratedToken token;
      token.id = id;
      more = stream.OnToken(token) && more;
    }
    return more;
  }

  ManualService service_;
  metrics::Registry registry_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ChatTemplate> chat_;
  std::unique_ptr<OpenAIHttpServer> server_;
};

TEST_F(OpenAIHttpTest, StartChecksItsArguments) {
  OpenAIHttpOptions options;
  options.port = 0;
  EXPECT_EQ(OpenAIHttpServer::Start(options, &service_, tokenizer_.get(), chat_.get(), &registry_)
                .status()
                .code(),
            StatusCode::kInvalidArgument);  // no model name
  options.served_model_name = "m";
  auto clash =
      OpenAIHttpServer::Start(options, &service_, tokenizer_.get(), chat_.get(), &registry_);
  ASSERT_FALSE(clash.ok());  // the metrics are already in this registry
  EXPECT_NE(clash.status().message().find("kubemoe_router_"), std::string::npos);
}

TEST_F(OpenAIHttpTest, RoutesAndErrors) {
  struct Case {
    std::string request, status, body;
  };
  const std::vector<Case> cases = {
      {"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 200", "ok"},
      {"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 500", "boom"},
      {"GET /v1/models HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 200", "\"id\":\"m\""},
      {"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 404", "invalid_request_error"},
      {"DELETE /v1/completions HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 405", "not allowed"},
      {"POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 27\r\n\r\n"
       "{\"prompt\": \"x\", \"model\": 1}",
       "HTTP/1.1 400", "\"param\":\"model\""},
      {"POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 30\r\n\r\n"
       "{\"prompt\": \"x\", \"model\": \"zz\"}",
       "HTTP/1.1 404", "model_not_found"},
  };
  for (const Case& k : cases) {
    Client c(server_->port());
    ASSERT_TRUE(c.connected());
    c.Send(k.request);
    EXPECT_TRUE(c.ReadUntil(k.body)) << k.request << " -> " << c.received();
    EXPECT_EQ(c.received().rfind(k.status, 0), 0u) << k.request << " -> " << c.received();
  }
}

TEST_F(OpenAIHttpTest, StreamsWhileGeneratingAndEndsWithDone) {
  Client c(server_->port());
  ASSERT_TRUE(c.connected());
  c.Post("/v1/completions", R"({"prompt": "hi", "stream": true, "max_tokens": 10})");
  auto stream = service_.WaitFor(0);
  ASSERT_NE(stream, nullptr);
  EXPECT_TRUE(Say(*stream, "Hello"));
  // The first event reaches the client while the request is still generating.
  ASSERT_TRUE(c.ReadUntil("\"text\":\"lo\"")) << c.received();
  EXPECT_NE(c.received().find("text/event-stream"), std::string::npos);
  EXPECT_EQ(c.received().find("[DONE]"), std::string::npos);
  EXPECT_TRUE(Say(*stream, " world"));
  ASSERT_TRUE(c.ReadUntil("\"text\":\"ld\"")) << c.received();
  stream->OnFinish(Status::Ok(), FinishReason::kLength, Usage{2, 2});
  ASSERT_TRUE(c.ReadUntil("data: [DONE]")) << c.received();
  EXPECT_NE(c.received().find("\"finish_reason\":\"length\""), std::string::npos);
  EXPECT_FALSE(stream->Cancelled());
}

TEST_F(OpenAIHttpTest, ClientThatDisconnectsCancelsTheRequest) {
  auto c = std::make_unique<Client>(server_->port());
  c->Post("/v1/chat/completions",
          R"({"messages": [{"role": "user", "content": "hi"}], "stream": true})");
  auto stream = service_.WaitFor(0);
  ASSERT_NE(stream, nullptr);
  EXPECT_TRUE(Say(*stream, "Hello"));
  ASSERT_TRUE(c->ReadUntil("\"content\":\"lo\""));
  c.reset();  // the client goes away mid-stream
  // Writes to a closed connection fail within a few tokens; the stream then reports it.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  bool more = true;
  while (!stream->Cancelled() && Clock::now() < deadline) {
    more = Say(*stream, "x");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(stream->Cancelled());
  EXPECT_FALSE(Say(*stream, "x"));
  (void)more;
  stream->OnFinish(Status::Ok(), FinishReason::kCancelled, Usage{5, 3});
}

TEST_F(OpenAIHttpTest, StopAnswersRequestsInFlight) {
  Client streaming(server_->port()), whole(server_->port());
  streaming.Post("/v1/completions", R"({"prompt": "a", "stream": true})");
  auto s1 = service_.WaitFor(0);
  ASSERT_NE(s1, nullptr);
  EXPECT_TRUE(Say(*s1, "Hello"));
  ASSERT_TRUE(streaming.ReadUntil("\"text\":\"lo\""));
  whole.Post("/v1/completions", R"({"prompt": "b"})");
  auto s2 = service_.WaitFor(1);
  ASSERT_NE(s2, nullptr);

  server_->Stop();  // must return although the service never finishes these requests
  EXPECT_TRUE(s1->Cancelled());
  EXPECT_TRUE(s2->Cancelled());
  ASSERT_TRUE(streaming.ReadUntil("data: [DONE]")) << streaming.received();
  EXPECT_NE(streaming.received().find("shutting down"), std::string::npos);
  ASSERT_TRUE(whole.ReadUntil("shutting down")) << whole.received();
  EXPECT_EQ(whole.received().rfind("HTTP/1.1 503", 0), 0u) << whole.received();
  // The service finishing them later changes nothing on the HTTP side.
  s1->OnFinish(Status::Ok(), FinishReason::kCancelled, Usage{1, 1});
  s2->OnFinish(Status::Ok(), FinishReason::kCancelled, Usage{1, 0});
}

}  // namespace
}  // namespace kubemoe::router
