// Metric types, families, name validation and the Registry.
#include "common/metrics.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <utility>

#include "common/metrics_text.h"
#include "common/mutex.h"

namespace kubemoe::metrics {

const char* MetricTypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// ---- Histogram ----

Histogram::Histogram(std::shared_ptr<const std::vector<double>> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds_->size() + 1)) {}

void Histogram::Observe(double value) {
  const std::vector<double>& b = *bounds_;
  // First bound >= value: bounds are inclusive upper limits. NaN compares false with every bound,
  // so it is sent to +Inf explicitly rather than landing in the first bucket.
  size_t bucket = b.size();
  if (!std::isnan(value)) {
    bucket = static_cast<size_t>(std::lower_bound(b.begin(), b.end(), value) - b.begin());
  }
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Snap() const {
  Snapshot s;
  s.cumulative.resize(bounds_->size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i < s.cumulative.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

// ---- Buckets ----

std::vector<double> DefaultBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

StatusOr<std::vector<double>> ExponentialBuckets(double start, double factor, int count) {
  if (!(start > 0) || !(factor > 1) || count < 1) {
    return InvalidArgument(
        "exponential buckets need start > 0, factor > 1 and count >= 1 (got start " +
        FormatValue(start) + ", factor " + FormatValue(factor) + ", count " +
        std::to_string(count) + ")");
  }
  std::vector<double> bounds;
  bounds.reserve(count);
  double bound = start;
  for (int i = 0; i < count; ++i, bound *= factor) {
    if (!std::isfinite(bound)) {
      return InvalidArgument("exponential bucket " + std::to_string(i) + " overflows to +Inf");
    }
    bounds.push_back(bound);
  }
  return bounds;
}

StatusOr<std::vector<double>> LinearBuckets(double start, double width, int count) {
  if (!std::isfinite(start) || !(width > 0) || !std::isfinite(width) || count < 1) {
    return InvalidArgument(
        "linear buckets need a finite start, width > 0 and count >= 1 (got start " +
        FormatValue(start) + ", width " + FormatValue(width) + ", count " + std::to_string(count) +
        ")");
  }
  std::vector<double> bounds;
  bounds.reserve(count);
  for (int i = 0; i < count; ++i) bounds.push_back(start + width * i);
  return bounds;
}

// ---- Families ----

FamilyBase::FamilyBase(std::string name, std::string help, MetricType type,
                       std::vector<std::string> label_names)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)) {}

Status FamilyBase::CheckLabelValues(const std::vector<std::string>& values) const {
  if (values.size() != label_names_.size()) {
    return InvalidArgument("metric " + name_ + " has " + std::to_string(label_names_.size()) +
                           " label(s) but " + std::to_string(values.size()) +
                           " value(s) were given");
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (!IsValidUtf8(values[i])) {
      return InvalidArgument("metric " + name_ + ": value of label " + label_names_[i] +
                             " is not valid UTF-8");
    }
  }
  return Status::Ok();
}

template <typename M>
Family<M>::Family(std::string name, std::string help, MetricType type,
                  std::vector<std::string> label_names,
                  std::shared_ptr<const std::vector<double>> bounds)
    : FamilyBase(std::move(name), std::move(help), type, std::move(label_names)),
      bounds_(std::move(bounds)) {
  if (this->label_names().empty()) children_.emplace(std::vector<std::string>{}, MakeChild());
}

template <typename M>
std::unique_ptr<M> Family<M>::MakeChild() const {
  if constexpr (std::is_same_v<M, Histogram>) {
    return std::make_unique<Histogram>(bounds_);
  } else {
    return std::make_unique<M>();
  }
}

template <typename M>
StatusOr<M*> Family<M>::WithLabels(const std::vector<std::string>& values) {
  KUBEMOE_RETURN_IF_ERROR(CheckLabelValues(values));
  MutexLock lock(&mu_);
  auto it = children_.find(values);
  if (it == children_.end()) it = children_.emplace(values, MakeChild()).first;
  return it->second.get();
}

template <typename M>
M* Family<M>::Unlabelled() {
  if (!label_names().empty()) return nullptr;
  MutexLock lock(&mu_);
  return children_.begin()->second.get();
}

namespace {

void AppendChild(std::string* out, const FamilyBase& f, const std::vector<std::string>& values,
                 const Counter& c) {
  AppendSample(out, f.name(), f.label_names(), values, {}, {}, c.Value());
}

void AppendChild(std::string* out, const FamilyBase& f, const std::vector<std::string>& values,
                 const Gauge& g) {
  AppendSample(out, f.name(), f.label_names(), values, {}, {}, g.Value());
}

void AppendChild(std::string* out, const FamilyBase& f, const std::vector<std::string>& values,
                 const Histogram& h) {
  const Histogram::Snapshot s = h.Snap();
  const std::string bucket_name = f.name() + "_bucket";
  const std::vector<double>& bounds = h.bounds();
  for (size_t i = 0; i <= bounds.size(); ++i) {
    const double le = i < bounds.size() ? bounds[i] : INFINITY;
    AppendSample(out, bucket_name, f.label_names(), values, "le", FormatValue(le),
                 static_cast<double>(s.cumulative[i]));
  }
  AppendSample(out, f.name() + "_sum", f.label_names(), values, {}, {}, s.sum);
  AppendSample(out, f.name() + "_count", f.label_names(), values, {}, {},
               static_cast<double>(s.count));
}

}  // namespace

template <typename M>
void Family<M>::AppendText(std::string* out) const {
  AppendHeader(out, name(), help(), type());
  MutexLock lock(&mu_);
  for (const auto& [values, child] : children_) AppendChild(out, *this, values, *child);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---- Registry ----

namespace {

std::vector<std::string> SampleNames(std::string_view name, MetricType type) {
  const std::string n(name);
  if (type == MetricType::kHistogram) return {n, n + "_bucket", n + "_sum", n + "_count"};
  return {n};
}

}  // namespace

Status Registry::Reserve(std::string_view name, MetricType type, std::string_view help,
                         const std::vector<std::string>& label_names) {
  const std::string what = std::string(MetricTypeName(type)) + " '" + std::string(name) + "'";
  if (!IsValidMetricName(name)) {
    return InvalidArgument(what + ": metric names must match [a-zA-Z_:][a-zA-Z0-9_:]*");
  }
  constexpr std::string_view kTotal = "_total";
  if (type == MetricType::kCounter && (name.size() <= kTotal.size() || !name.ends_with(kTotal))) {
    return InvalidArgument(what + ": counter names must end in _total");
  }
  if (!IsValidUtf8(help)) return InvalidArgument(what + ": help text is not valid UTF-8");
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string& l = label_names[i];
    if (!IsValidLabelName(l)) {
      return InvalidArgument(what + ": label name '" + l + "' must match [a-zA-Z_][a-zA-Z0-9_]*");
    }
    if (l.starts_with("__")) {
      return InvalidArgument(what + ": label name '" + l + "' starts with __ (reserved)");
    }
    if (type == MetricType::kHistogram && l == "le") {
      return InvalidArgument(what + ": label name 'le' is reserved for histogram buckets");
    }
    if (std::find(label_names.begin(), label_names.begin() + i, l) != label_names.begin() + i) {
      return InvalidArgument(what + ": label name '" + l + "' is repeated");
    }
  }
  const std::vector<std::string> samples = SampleNames(name, type);
  for (const std::string& s : samples) {
    if (sample_names_.contains(s)) {
      return InvalidArgument(what + ": the name '" + s + "' is already registered");
    }
  }
  sample_names_.insert(samples.begin(), samples.end());
  return Status::Ok();
}

template <typename M>
StatusOr<Family<M>*> Registry::Add(std::string_view name, std::string_view help, MetricType type,
                                   std::vector<std::string> label_names,
                                   std::shared_ptr<const std::vector<double>> bounds) {
  const size_t first = help.find_first_not_of(" \t");
  help = first == std::string_view::npos
             ? std::string_view()
             : help.substr(first, help.find_last_not_of(" \t") - first + 1);
  MutexLock lock(&mu_);
  KUBEMOE_RETURN_IF_ERROR(Reserve(name, type, help, label_names));
  auto family = std::unique_ptr<Family<M>>(new Family<M>(
      std::string(name), std::string(help), type, std::move(label_names), std::move(bounds)));
  Family<M>* raw = family.get();
  families_.emplace(std::string(name), std::move(family));
  return raw;
}

StatusOr<CounterFamily*> Registry::AddCounter(std::string_view name, std::string_view help,
                                              std::vector<std::string> label_names) {
  return Add<Counter>(name, help, MetricType::kCounter, std::move(label_names), nullptr);
}

StatusOr<GaugeFamily*> Registry::AddGauge(std::string_view name, std::string_view help,
                                          std::vector<std::string> label_names) {
  return Add<Gauge>(name, help, MetricType::kGauge, std::move(label_names), nullptr);
}

StatusOr<HistogramFamily*> Registry::AddHistogram(std::string_view name, std::string_view help,
                                                  std::vector<std::string> label_names,
                                                  std::vector<double> bounds) {
  const std::string what = "histogram '" + std::string(name) + "'";
  if (!bounds.empty() && bounds.back() == INFINITY) bounds.pop_back();
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) {
      return InvalidArgument(what + ": bucket bound " + std::to_string(i) + " is " +
                             FormatValue(bounds[i]) + "; only a last bound may be +Inf");
    }
    if (i > 0 && !(bounds[i] > bounds[i - 1])) {
      return InvalidArgument(what + ": bucket bounds must be strictly increasing (bound " +
                             std::to_string(i) + " is " + FormatValue(bounds[i]) + " after " +
                             FormatValue(bounds[i - 1]) + ")");
    }
  }
  return Add<Histogram>(name, help, MetricType::kHistogram, std::move(label_names),
                        std::make_shared<const std::vector<double>>(std::move(bounds)));
}

std::string Registry::Render() const {
  std::string out;
  MutexLock lock(&mu_);
  for (const auto& [name, family] : families_) family->AppendText(&out);
  return out;
}

Status RegisterBuildInfo(Registry& registry, std::string_view version) {
  StatusOr<GaugeFamily*> family = registry.AddGauge(
      "kubemoe_build_info", "A constant 1 labelled with the kubemoe version that is running.",
      {"version"});
  if (!family.ok()) return family.status();
  StatusOr<Gauge*> gauge = (*family)->WithLabels({std::string(version)});
  if (!gauge.ok()) return gauge.status();
  (*gauge)->Set(1);
  return Status::Ok();
}

}  // namespace kubemoe::metrics
