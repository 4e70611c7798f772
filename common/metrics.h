// A small in-tree Prometheus metrics library (no Prometheus C++ client is packaged on Debian).
//
// A Registry owns metric families; a family has a fixed list of label names and one child metric
// per tuple of label values. Hot paths look a child up once and keep the pointer: counters and
// gauges then update with one lock-free atomic, histograms with two (bucket and sum).
// Registry::Render() writes the text exposition format 0.0.4 (see metrics_text.h).
//
// Naming rules (checked at registration, errors are Status values):
//   metric names  [a-zA-Z_:][a-zA-Z0-9_:]*; counters must end in "_total" (DESIGN.md);
//   label names   [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", unique within a family;
//                 "le" is reserved for histogram buckets;
//   no two families may expose the same sample name (a histogram `x` owns x_bucket, x_sum,
//   x_count); help text and label values must be valid UTF-8.
// Help text is stored without leading and trailing blanks (spaces, tabs): the text format cannot
// carry them, and parsers drop them, so trimming keeps Render() equal to what a scraper reads.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"

namespace kubemoe::metrics {

// The Content-Type of Registry::Render()'s output, for the HTTP /metrics handler.
inline constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType { kCounter, kGauge, kHistogram };
// "counter", "gauge" or "histogram", as the # TYPE line spells it.
const char* MetricTypeName(MetricType type);

// A monotonically increasing value. Thread-safe; Inc is lock-free.
class Counter {
 public:
  // Adds `amount`. Counters never go down, so a negative or NaN amount is ignored.
  void Inc(double amount = 1.0) {
    if (!(amount >= 0.0)) return;
    value_.fetch_add(amount, std::memory_order_relaxed);
  }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down. Thread-safe; every method is lock-free.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  void Inc() { Add(1.0); }
  void Dec() { Add(-1.0); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Counts observations into buckets with fixed upper bounds (inclusive: a value equal to a bound
// lands in that bound's bucket) plus an implicit +Inf bucket, and sums them. Thread-safe and
// lock-free; a scrape that races with Observe may see _sum lag the bucket counts by that one
// observation, but _count always equals the +Inf bucket.
class Histogram {
 public:
  // REQUIRES: `bounds` is strictly increasing and finite (Registry::AddHistogram checks this).
  explicit Histogram(std::shared_ptr<const std::vector<double>> bounds);

  // Records `value`. NaN counts in the +Inf bucket and makes the sum NaN, as the Go client does.
  void Observe(double value);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then the +Inf bucket (== count)
    double sum = 0.0;
    uint64_t count = 0;
  };
  Snapshot Snap() const;
  const std::vector<double>& bounds() const { return *bounds_; }

 private:
  std::shared_ptr<const std::vector<double>> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative; +Inf last
  std::atomic<double> sum_{0.0};
};

// Bucket bounds. The default is the Prometheus clients' latency default, in seconds.
std::vector<double> DefaultBuckets();
// `count` bounds start, start*factor, ...; InvalidArgument unless start > 0, factor > 1, count >= 1
// and every bound is finite.
StatusOr<std::vector<double>> ExponentialBuckets(double start, double factor, int count);
// `count` bounds start, start+width, ...; InvalidArgument unless start is finite, width > 0 and
// finite, and count >= 1.
StatusOr<std::vector<double>> LinearBuckets(double start, double width, int count);

// The parts of a family that do not depend on the metric type.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Appends this family's # HELP, # TYPE and sample lines, children ordered by label values.
  virtual void AppendText(std::string* out) const = 0;

 protected:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names);
  // InvalidArgument unless `values` has one valid UTF-8 value per label name.
  Status CheckLabelValues(const std::vector<std::string>& values) const;

 private:
  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<std::string> label_names_;
};

// One family of Counter, Gauge or Histogram children. Thread-safe.
template <typename M>
class Family final : public FamilyBase {
 public:
  // Returns the child for `values` (one per label name, in the order of label_names()), creating
  // it at zero on first use. The pointer stays valid as long as the Registry; keep it on hot
  // paths instead of looking it up per event. InvalidArgument on a wrong number of values or a
  // value that is not valid UTF-8.
  StatusOr<M*> WithLabels(const std::vector<std::string>& values);
  // The single child of a family with no labels; it exists (at zero) from registration so the
  // sample is exported before first use. Returns nullptr when the family has labels.
  M* Unlabelled();

  void AppendText(std::string* out) const override;

 private:
  friend class Registry;
  Family(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
         std::shared_ptr<const std::vector<double>> bounds);
  std::unique_ptr<M> MakeChild() const;

  std::shared_ptr<const std::vector<double>> bounds_;  // histograms only
  mutable Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_ KUBEMOE_GUARDED_BY(mu_);
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Owns metric families. Thread-safe: registration, lookups and Render may run concurrently.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Each Add* validates the names (see the top of this file) and returns a family that lives as
  // long as the Registry. InvalidArgument on a bad name or help text, and InvalidArgument naming
  // the clash when a registered family already exposes one of the new family's sample names.
  StatusOr<CounterFamily*> AddCounter(std::string_view name, std::string_view help,
                                      std::vector<std::string> label_names = {});
  StatusOr<GaugeFamily*> AddGauge(std::string_view name, std::string_view help,
                                  std::vector<std::string> label_names = {});
  // `bounds` must be strictly increasing with no NaN; a trailing +Inf is accepted and dropped
  // (the +Inf bucket is always present); any other infinite bound is InvalidArgument.
  StatusOr<HistogramFamily*> AddHistogram(std::string_view name, std::string_view help,
                                          std::vector<std::string> label_names = {},
                                          std::vector<double> bounds = DefaultBuckets());

  // The text exposition (format 0.0.4, Content-Type kContentType), families sorted by name.
  std::string Render() const;

 private:
  // Validates a new family's names and, when they are free, claims its sample names.
  Status Reserve(std::string_view name, MetricType type, std::string_view help,
                 const std::vector<std::string>& label_names) KUBEMOE_REQUIRES(mu_);
  template <typename M>
  StatusOr<Family<M>*> Add(std::string_view name, std::string_view help, MetricType type,
                           std::vector<std::string> label_names,
                           std::shared_ptr<const std::vector<double>> bounds);

  mutable Mutex mu_;
  std::map<std::string, std::unique_ptr<FamilyBase>, std::less<>> families_ KUBEMOE_GUARDED_BY(mu_);
  std::set<std::string, std::less<>> sample_names_ KUBEMOE_GUARDED_BY(mu_);
};

// Registers the gauge kubemoe_build_info{version="..."} = 1, so dashboards can tell builds apart.
Status RegisterBuildInfo(Registry& registry, std::string_view version);

}  // namespace kubemoe::metrics
