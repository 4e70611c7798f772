// Kubernetes resource quantities (operator/k8s/quantity.h): parsing, value equality across
// suffixes, the API server's canonical text, rounding and capping, and clear errors.
#include "operator/k8s/quantity.h"

#include <gtest/gtest.h>

namespace kubemoe::k8s {
namespace {

Quantity Q(const char* text) {
  StatusOr<Quantity> q = Quantity::Parse(text);
  EXPECT_TRUE(q.ok()) << text << ": " << q.status().ToString();
  return q.ok() ? *q : Quantity();
}

TEST(QuantityTest, CanonicalFormsMatchTheApiServer) {
  // Pairs as kube-apiserver writes them back (apimachinery's CanonicalizeBytes).
  const std::pair<const char*, const char*> cases[] = {
      {"0", "0"},          {"-0", "0"},          {"0Gi", "0"},          {"1000m", "1"},
      {"1", "1"},          {"1000", "1k"},       {"1500", "1500"},      {"0.5", "500m"},
      {".5", "500m"},      {"1.", "1"},          {"100m", "100m"},      {"0.1", "100m"},
      {"1n", "1n"},        {"1u", "1u"},         {"1000u", "1m"},       {"1024Mi", "1Gi"},
      {"1536Mi", "1536Mi"}, {"1.5Gi", "1536Mi"}, {"1Ki", "1Ki"},        {"0.5Ki", "512"},
      {"1.5Ki", "1536"},   {"1023Ki", "1023Ki"}, {"1Ei", "1Ei"},        {"1e3", "1e3"},
      {"1E3", "1e3"},      {"1000e0", "1e3"},    {"1e+3", "1e3"},       {"1.5e-3", "1500e-6"},
      {"12e6", "12e6"},    {"1M", "1M"},         {"1000k", "1M"},       {"+1k", "1k"},
      {"-1500m", "-1500m"}, {"007", "7"},        {"1.000", "1"},        {"2E", "2E"},
      {"0.0000000001", "1n"},    // rounded up to the smallest unit, never to zero
      {"-0.0000000001", "-1n"},  // magnitude rounded up
      {"1.0000000001", "1000000001n"},
      {"9223372036854775807", "9223372036854775807"},
      {"9223372036854775808", "9223372036854775807"},  // capped at 2^63 - 1
      {"10Ei", "9223372036854775807"},
      {"1e1000", "9223372036854775807"},
      {"1e-1000", "1e-9"},
  };
  for (const auto& [text, canonical] : cases) {
    StatusOr<Quantity> q = Quantity::Parse(text);
    ASSERT_TRUE(q.ok()) << text << ": " << q.status().ToString();
    EXPECT_EQ(q->Canonical(), canonical) << text;
    // The canonical text reads back as the same value.
    StatusOr<Quantity> again = Quantity::Parse(q->Canonical());
    ASSERT_TRUE(again.ok()) << q->Canonical();
    EXPECT_EQ(*again, *q) << text;
  }
}

TEST(QuantityTest, EqualValuesCompareEqualWhateverTheSuffix) {
  EXPECT_EQ(Q("1000m"), Q("1"));
  EXPECT_EQ(Q("1024Mi"), Q("1Gi"));
  EXPECT_EQ(Q("1Gi"), Q("1073741824"));
  EXPECT_EQ(Q("1e3"), Q("1k"));
  EXPECT_EQ(Q("0.5"), Q("500m"));
  EXPECT_EQ(Q("-0"), Q("0"));
  EXPECT_EQ(Q("1e-12"), Q("1n")) << "both round up to one nano";
  EXPECT_NE(Q("1G"), Q("1Gi"));
  EXPECT_NE(Q("1500m"), Q("1"));
  EXPECT_NE(Q("-1"), Q("1"));
  EXPECT_EQ(Q("1Ki").format(), Quantity::Format::kBinarySI);
  EXPECT_EQ(Q("1e3").format(), Quantity::Format::kDecimalExponent);
  Quantity half = Q("1.5");
  EXPECT_EQ(half.units(), 1u);
  EXPECT_EQ(half.nanos(), 500000000u);
}

TEST(QuantityTest, MalformedQuantitiesAreErrorsThatNameTheText) {
  for (const char* text : {"", "+", "-", ".", "abc", "1.2.3", "1Ki1", "1e", "1e1.5", "1ki", "1 ",
                           " 1", "1m1", "1i", "Gi", "1e99999999999", "1e2147483648", "0x10",
                           "1,5", "--1"}) {
    StatusOr<Quantity> q = Quantity::Parse(text);
    EXPECT_FALSE(q.ok()) << "\"" << text << "\" parsed as " << (q.ok() ? q->Canonical() : "");
    if (!q.ok()) {
      EXPECT_NE(q.status().message().find("invalid quantity \"" + std::string(text) + "\""),
                std::string::npos)
          << q.status().message();
    }
  }
  EXPECT_TRUE(Quantity::Parse("1e2147483647").ok());
  EXPECT_TRUE(Quantity::Parse("1e-2147483648").ok());
}

}  // namespace
}  // namespace kubemoe::k8s
