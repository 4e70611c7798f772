// Watch-event decoding and line reassembly (operator/k8s/watch_decoder.h).
#include "operator/k8s/watch_decoder.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace kubemoe::k8s {
namespace {

TEST(WatchDecoderTest, DecodesEventTypes) {
  auto added = DecodeWatchEvent(
      R"({"type":"ADDED","object":{"kind":"ConfigMap","metadata":{"name":"a","resourceVersion":"17"}}})");
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_EQ(added->type, WatchEventType::kAdded);
  EXPECT_EQ(added->resource_version, "17");
  EXPECT_EQ((*added->object)["metadata"]["name"], "a");

  auto bookmark = DecodeWatchEvent(
      "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"metadata\":{\"resourceVersion\":\"99\"}}}\r");
  ASSERT_TRUE(bookmark.ok());
  EXPECT_EQ(bookmark->type, WatchEventType::kBookmark);
  EXPECT_EQ(bookmark->resource_version, "99");

  auto deleted = DecodeWatchEvent(R"({"type":"DELETED","object":{"metadata":{"name":"b"}}})");
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->type, WatchEventType::kDeleted);
}

TEST(WatchDecoderTest, ErrorEventCarriesStatus) {
  auto gone = DecodeWatchEvent(
      R"j({"type":"ERROR","object":{"kind":"Status","status":"Failure","reason":"Expired","code":410,"message":"too old resource version: 5 (40)"}})j");
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->type, WatchEventType::kError);
  EXPECT_TRUE(gone->error.IsGone());
  EXPECT_EQ(gone->error.http_code(), 410);
  EXPECT_EQ(gone->object, nullptr);
}

TEST(WatchDecoderTest, RejectsMalformedLines) {
  for (const char* bad : {"", "not json", "[1,2]", R"({"object":{}})", R"({"type":"ADDED"})",
                          R"({"type":"ADDED","object":"x"})", R"({"type":"WHAT","object":{}})",
                          R"({"type":"BOOKMARK","object":{"metadata":{}}})",
                          // Objects without metadata.name used to reach the handlers and throw
                          // on the informer thread, ending the operator.
                          R"({"type":"ADDED","object":{"kind":"ConfigMap"}})",
                          R"({"type":"MODIFIED","object":{"metadata":"x"}})",
                          R"({"type":"DELETED","object":{"metadata":{"namespace":"a"}}})",
                          R"({"type":"ADDED","object":{"metadata":{"name":7}}})",
                          R"({"type":"ADDED","object":{"metadata":{"name":""}}})"}) {
    auto e = DecodeWatchEvent(bad);
    EXPECT_FALSE(e.ok()) << bad;
    if (!e.ok()) {
      EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(WatchDecoderTest, LineSplitterReassemblesPieces) {
  LineSplitter lines;
  std::string line;
  ASSERT_TRUE(lines.Append("{\"a\":").ok());
  EXPECT_FALSE(lines.Next(&line));
  EXPECT_EQ(lines.pending_bytes(), 5u);
  ASSERT_TRUE(lines.Append("1}\n\n{\"b\":2}\n{\"c\"").ok());
  ASSERT_TRUE(lines.Next(&line));
  EXPECT_EQ(line, "{\"a\":1}");
  ASSERT_TRUE(lines.Next(&line));  // the blank line is skipped
  EXPECT_EQ(line, "{\"b\":2}");
  EXPECT_FALSE(lines.Next(&line));
  EXPECT_EQ(lines.pending_bytes(), 4u);
  ASSERT_TRUE(lines.Append(":3}\n").ok());
  ASSERT_TRUE(lines.Next(&line));
  EXPECT_EQ(line, "{\"c\":3}");
  EXPECT_EQ(lines.pending_bytes(), 0u);
}

TEST(WatchDecoderTest, LineSplitterBoundsLineLength) {
  LineSplitter lines(/*max_line_bytes=*/8);
  EXPECT_TRUE(lines.Append("12345678").ok());
  EXPECT_FALSE(lines.Append("9").ok());
  LineSplitter ok_lines(8);
  EXPECT_TRUE(ok_lines.Append("1234567\n1234567").ok());  // complete lines do not count
}

}  // namespace
}  // namespace kubemoe::k8s
