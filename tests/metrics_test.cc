// The in-tree Prometheus registry: exact exposition text, escaping, name rules, concurrency and
// histogram bucket edges. tests/py/metrics_prometheus_test.py checks the same output with the
// official Python parser.
#include "common/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics_text.h"

namespace kubemoe::metrics {
namespace {

template <typename T>
T Must(StatusOr<T> v) {
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return std::move(v).value();
}

TEST(MetricsText, SmallRegistryRendersExactly) {
  Registry r;
  CounterFamily* requests =
      Must(r.AddCounter("kubemoe_requests_total", "Requests answered.", {"code", "route"}));
  GaugeFamily* kv = Must(r.AddGauge("kubemoe_kv_cache_usage_ratio", "Share of KV blocks in use."));
  HistogramFamily* step =
      Must(r.AddHistogram("kubemoe_step_seconds", "Engine step time.", {"layer"}, {0.125, 1, 8}));

  // Children are created out of order; output orders them by label values.
  Counter* err = Must(requests->WithLabels({"500", "/v1/chat/completions"}));
  Counter* ok = Must(requests->WithLabels({"200", "/v1/completions"}));
  ok->Inc();
  ok->Inc(2);
  err->Inc(0.5);
  kv->Unlabelled()->Set(0.25);
  Histogram* layer0 = Must(step->WithLabels({"0"}));
  // Binary fractions keep the sum exact: 0.0625 + 0.125 + 4 + 100 = 104.1875.
  for (double v : {0.0625, 0.125, 4.0, 100.0}) layer0->Observe(v);

  const std::string expected =
      "# HELP kubemoe_kv_cache_usage_ratio Share of KV blocks in use.\n"
      "# TYPE kubemoe_kv_cache_usage_ratio gauge\n"
      "kubemoe_kv_cache_usage_ratio 0.25\n"
      "# HELP kubemoe_requests_total Requests answered.\n"
      "# TYPE kubemoe_requests_total counter\n"
      "kubemoe_requests_total{code=\"200\",route=\"/v1/completions\"} 3\n"
      "kubemoe_requests_total{code=\"500\",route=\"/v1/chat/completions\"} 0.5\n"
      "# HELP kubemoe_step_seconds Engine step time.\n"
      "# TYPE kubemoe_step_seconds histogram\n"
      "kubemoe_step_seconds_bucket{layer=\"0\",le=\"0.125\"} 2\n"
      "kubemoe_step_seconds_bucket{layer=\"0\",le=\"1\"} 2\n"
      "kubemoe_step_seconds_bucket{layer=\"0\",le=\"8\"} 3\n"
      "kubemoe_step_seconds_bucket{layer=\"0\",le=\"+Inf\"} 4\n"
      "kubemoe_step_seconds_sum{layer=\"0\"} 104.1875\n"
      "kubemoe_step_seconds_count{layer=\"0\"} 4\n";
  EXPECT_EQ(r.Render(), expected);
  EXPECT_STREQ(kContentType, "text/plain; version=0.0.4; charset=utf-8");
}

TEST(MetricsText, EscapesHelpAndLabelValues) {
  Registry r;
  GaugeFamily* g = Must(r.AddGauge("odd", "a \\ b\nc \"q\"", {"v"}));
  Must(g->WithLabels({"x\\y\"z\nw"}))->Set(1);
  Must(g->WithLabels({"плюс ✓"}))->Set(-2);
  // Help escapes backslash and newline only; label values also escape the double quote. UTF-8
  // passes through unchanged (and sorts after ASCII by byte value).
  EXPECT_EQ(r.Render(),
            "# HELP odd a \\\\ b\\nc \"q\"\n"
            "# TYPE odd gauge\n"
            "odd{v=\"x\\\\y\\\"z\\nw\"} 1\n"
            "odd{v=\"плюс ✓\"} -2\n");
}

TEST(MetricsText, TrimsBlanksAroundHelp) {
  Registry r;
  ASSERT_TRUE(r.AddGauge("padded", " \t two  words\t ").ok());
  ASSERT_TRUE(r.AddGauge("blank", " \t ").ok());
  ASSERT_TRUE(r.AddGauge("newline_kept", "x\n ").ok());
  EXPECT_EQ(r.Render(),
            "# HELP blank \n# TYPE blank gauge\nblank 0\n"
            "# HELP newline_kept x\\n\n# TYPE newline_kept gauge\nnewline_kept 0\n"
            "# HELP padded two  words\n# TYPE padded gauge\npadded 0\n");
}

TEST(MetricsText, FormatsValuesAsPrometheusDoes) {
  EXPECT_EQ(FormatValue(3), "3");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(-2.5), "-2.5");
  EXPECT_EQ(FormatValue(1e21), "1e+21");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
  EXPECT_EQ(FormatValue(-std::nan("")), "NaN");
}

TEST(MetricsText, FormattedValuesRoundTrip) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<uint64_t> bits;
  int checked = 0;
  for (int i = 0; i < 20000; ++i) {
    const uint64_t b = bits(rng);
    double v;
    __builtin_memcpy(&v, &b, sizeof v);
    if (!std::isfinite(v)) continue;
    const std::string s = FormatValue(v);
    const double back = std::strtod(s.c_str(), nullptr);
    ASSERT_EQ(__builtin_memcmp(&back, &v, sizeof v), 0) << s;
    ++checked;
  }
  EXPECT_GT(checked, 19000);
}

TEST(MetricsText, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("\xc3\xbc \xe2\x9c\x93 \xf0\x9f\x98\x80"));  // ü ✓ 😀
  EXPECT_FALSE(IsValidUtf8("\xc3"));                                   // truncated
  EXPECT_FALSE(IsValidUtf8("\x80"));                                   // lone continuation byte
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));                               // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));                           // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));                       // U+110000
  EXPECT_FALSE(IsValidUtf8("\xe2\x9c"));                               // truncated at the end
}

void ExpectInvalid(const Status& s, const std::string& fragment) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
}

TEST(MetricsNames, RejectsBadNames) {
  Registry r;
  for (const char* bad : {"", "1abc", "a-b_total", "a b", "é"}) {
    ExpectInvalid(r.AddGauge(bad, "h").status(), "must match");
  }
  EXPECT_TRUE(r.AddGauge("ok:name_1", "h").ok());
  ExpectInvalid(r.AddCounter("kubemoe_requests", "h").status(), "_total");
  ExpectInvalid(r.AddCounter("_total", "h").status(), "_total");
  for (const char* bad : {"1a", "a-b", "a:b", ""}) {
    ExpectInvalid(r.AddGauge("g_bad_label", "h", {bad}).status(), "must match");
  }
  ExpectInvalid(r.AddGauge("g_reserved", "h", {"__name"}).status(), "__");
  ExpectInvalid(r.AddGauge("g_repeat", "h", {"a", "b", "a"}).status(), "repeated");
  ExpectInvalid(r.AddHistogram("h_le", "h", {"le"}).status(), "reserved");
  // Only histograms reserve le.
  EXPECT_TRUE(r.AddGauge("g_le", "h", {"le"}).ok());
  ExpectInvalid(r.AddGauge("g_help", "bad \xff help").status(), "UTF-8");
}

TEST(MetricsNames, RejectsDuplicatesAndSampleNameClashes) {
  Registry r;
  ASSERT_TRUE(r.AddCounter("x_total", "h").ok());
  ExpectInvalid(r.AddCounter("x_total", "h").status(), "already registered");
  ExpectInvalid(r.AddGauge("x_total", "h").status(), "already registered");
  ASSERT_TRUE(r.AddHistogram("lat_seconds", "h").ok());
  ExpectInvalid(r.AddGauge("lat_seconds_count", "h").status(), "lat_seconds_count");
  ExpectInvalid(r.AddGauge("lat_seconds_bucket", "h").status(), "lat_seconds_bucket");
  ASSERT_TRUE(r.AddGauge("q_sum", "h").ok());
  ExpectInvalid(r.AddHistogram("q", "h").status(), "q_sum");
  // A failed registration claims nothing: "q" is still free as a gauge.
  EXPECT_TRUE(r.AddGauge("q", "h").ok());
}

TEST(MetricsNames, ChecksLabelValues) {
  Registry r;
  CounterFamily* f = Must(r.AddCounter("c_total", "h", {"a", "b"}));
  ExpectInvalid(f->WithLabels({"1"}).status(), "2 label(s) but 1 value(s)");
  ExpectInvalid(f->WithLabels({"1", "2", "3"}).status(), "c_total");
  ExpectInvalid(f->WithLabels({"1", "\xc3("}).status(), "label b is not valid UTF-8");
  EXPECT_EQ(f->Unlabelled(), nullptr);
  // Lookups return the same child, so hot paths may keep the pointer.
  Counter* first = Must(f->WithLabels({"1", "2"}));
  EXPECT_EQ(Must(f->WithLabels({"1", "2"})), first);
  EXPECT_NE(Must(f->WithLabels({"2", "1"})), first);
  // The empty string is a valid label value, distinct from the others.
  EXPECT_NE(Must(f->WithLabels({"", "2"})), first);
}

TEST(MetricsNames, ChecksBuckets) {
  Registry r;
  ExpectInvalid(r.AddHistogram("h1", "h", {}, {1, 1}).status(), "strictly increasing");
  ExpectInvalid(r.AddHistogram("h2", "h", {}, {2, 1}).status(), "strictly increasing");
  ExpectInvalid(r.AddHistogram("h3", "h", {}, {1, std::nan(""), 3}).status(), "NaN");
  ExpectInvalid(r.AddHistogram("h4", "h", {}, {-INFINITY, 0}).status(), "-Inf");
  ExpectInvalid(r.AddHistogram("h5", "h", {}, {1, INFINITY, 3}).status(), "+Inf");
  // A trailing +Inf is the implicit bucket, so it is accepted and not written twice.
  HistogramFamily* h = Must(r.AddHistogram("h6", "h", {}, {1, INFINITY}));
  h->Unlabelled()->Observe(0.5);
  EXPECT_EQ(r.Render(),
            "# HELP h6 h\n# TYPE h6 histogram\n"
            "h6_bucket{le=\"1\"} 1\nh6_bucket{le=\"+Inf\"} 1\nh6_sum 0.5\nh6_count 1\n");

  EXPECT_EQ(Must(ExponentialBuckets(0.5, 4, 4)), (std::vector<double>{0.5, 2, 8, 32}));
  EXPECT_EQ(Must(LinearBuckets(-1, 0.5, 3)), (std::vector<double>{-1, -0.5, 0}));
  EXPECT_FALSE(ExponentialBuckets(0, 2, 3).ok());
  EXPECT_FALSE(ExponentialBuckets(1, 1, 3).ok());
  EXPECT_FALSE(ExponentialBuckets(1, 2, 0).ok());
  EXPECT_FALSE(ExponentialBuckets(1e300, 1e10, 3).ok());  // overflows to +Inf
  EXPECT_FALSE(LinearBuckets(0, 0, 3).ok());
  EXPECT_EQ(DefaultBuckets().size(), 11u);
  EXPECT_EQ(DefaultBuckets().front(), 0.005);
  EXPECT_EQ(DefaultBuckets().back(), 10);
}

TEST(MetricsHistogram, ValueOnABoundLandsInThatBucket) {
  auto bounds = std::make_shared<const std::vector<double>>(std::vector<double>{1, 2, 4});
  Histogram h(bounds);
  h.Observe(1);                         // le=1
  h.Observe(std::nextafter(1.0, 2.0));  // le=2
  h.Observe(2);                         // le=2
  h.Observe(4);                         // le=4
  h.Observe(std::nextafter(4.0, 5.0));  // +Inf
  h.Observe(-INFINITY);                 // le=1
  Histogram::Snapshot s = h.Snap();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 4, 5, 6}));
  EXPECT_EQ(s.count, 6u);
  EXPECT_EQ(s.sum, -INFINITY);

  Histogram n(bounds);
  n.Observe(0.5);
  n.Observe(std::nan(""));  // +Inf bucket, and the sum becomes NaN
  s = n.Snap();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{1, 1, 1, 2}));
  EXPECT_TRUE(std::isnan(s.sum));
}

TEST(MetricsValues, CountersOnlyGoUpAndEmptyFamiliesShowOnlyHeaders) {
  Registry r;
  Counter* c = Must(r.AddCounter("c_total", "h"))->Unlabelled();
  ASSERT_NE(c, nullptr);
  c->Inc(2);
  c->Inc(-1);
  c->Inc(std::nan(""));
  EXPECT_EQ(c->Value(), 2);
  Gauge* g = Must(r.AddGauge("g", "h"))->Unlabelled();
  g->Inc();
  g->Inc();
  g->Dec();
  g->Add(-3.5);
  EXPECT_EQ(g->Value(), -2.5);
  ASSERT_TRUE(r.AddGauge("g_labelled", "h", {"k"}).ok());
  EXPECT_EQ(r.Render(),
            "# HELP c_total h\n# TYPE c_total counter\nc_total 2\n"
            "# HELP g h\n# TYPE g gauge\ng -2.5\n"
            "# HELP g_labelled h\n# TYPE g_labelled gauge\n");
}

TEST(MetricsValues, BuildInfo) {
  Registry r;
  ASSERT_TRUE(RegisterBuildInfo(r, "0.1.0").ok());
  EXPECT_EQ(r.Render(),
            "# HELP kubemoe_build_info A constant 1 labelled with the kubemoe version that is "
            "running.\n# TYPE kubemoe_build_info gauge\nkubemoe_build_info{version=\"0.1.0\"} 1\n");
  EXPECT_FALSE(RegisterBuildInfo(r, "0.1.0").ok());
}

TEST(MetricsConcurrency, ConcurrentUpdatesAreExact) {
  Registry r;
  CounterFamily* tokens = Must(r.AddCounter("tokens_total", "h", {"expert"}));
  GaugeFamily* inflight = Must(r.AddGauge("inflight", "h"));
  HistogramFamily* sizes = Must(r.AddHistogram("batch_size", "h", {}, {1, 10, 100}));
  constexpr int kThreads = 8;
  constexpr int kIters = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Half the threads keep the pointer, half look the child up each time; both must count.
      Counter* kept = Must(tokens->WithLabels({"shared"}));
      for (int i = 0; i < kIters; ++i) {
        if (t % 2 == 0) {
          kept->Inc();
        } else {
          Must(tokens->WithLabels({"shared"}))->Inc();
        }
        Must(tokens->WithLabels({std::to_string(i % 16)}))->Inc(2);
        inflight->Unlabelled()->Inc();
        sizes->Unlabelled()->Observe(i % 200);
        inflight->Unlabelled()->Dec();
      }
    });
  }
  // Scrapes race with the writers; each must still be well formed.
  threads.emplace_back([&] {
    for (int i = 0; i < 50; ++i)
      EXPECT_NE(r.Render().find("# TYPE tokens_total counter"), std::string::npos);
  });
  for (std::thread& th : threads) th.join();

  EXPECT_EQ(Must(tokens->WithLabels({"shared"}))->Value(), kThreads * kIters);
  double per_expert = 0;
  for (int e = 0; e < 16; ++e) per_expert += Must(tokens->WithLabels({std::to_string(e)}))->Value();
  EXPECT_EQ(per_expert, 2.0 * kThreads * kIters);
  EXPECT_EQ(inflight->Unlabelled()->Value(), 0);

  // Expected histogram computed from the same loop, single-threaded.
  std::vector<uint64_t> expected(4, 0);
  double expected_sum = 0;
  for (int i = 0; i < kIters; ++i) {
    const int v = i % 200;
    const size_t bucket = v <= 1 ? 0 : v <= 10 ? 1 : v <= 100 ? 2 : 3;
    for (size_t b = bucket; b < expected.size(); ++b) expected[b] += kThreads;
    expected_sum += kThreads * v;
  }
  Histogram::Snapshot s = sizes->Unlabelled()->Snap();
  EXPECT_EQ(s.cumulative, expected);
  EXPECT_EQ(s.count, static_cast<uint64_t>(kThreads) * kIters);
  EXPECT_EQ(s.sum, expected_sum);
}

TEST(MetricsConcurrency, ConcurrentRegistrationClaimsEachNameOnce) {
  Registry r;
  std::vector<std::thread> threads;
  std::atomic<int> wins{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        std::string name = "g";  // appended: "g" + std::string trips GCC 12's -O3 -Wrestrict
        name += std::to_string(i);
        if (r.AddGauge(name, "h").ok()) wins.fetch_add(1);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(wins.load(), 50);
}

}  // namespace
}  // namespace kubemoe::metrics
