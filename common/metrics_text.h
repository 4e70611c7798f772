// Pieces of the Prometheus text exposition format 0.0.4 that the metrics Registry writes with.
// Exposed so tests can check them one by one; components should call Registry::Render().
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.h"

namespace kubemoe::metrics {

// The shortest decimal that parses back to exactly `value` ("3", "0.25", "1e+21"), or "+Inf",
// "-Inf", "NaN" as Prometheus spells them.
std::string FormatValue(double value);
// # HELP text: backslash -> \\ and newline -> \n.
std::string EscapeHelp(std::string_view help);
// Label values: backslash -> \\, double quote -> \" and newline -> \n.
std::string EscapeLabelValue(std::string_view value);
// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or values past U+10FFFF).
bool IsValidUtf8(std::string_view text);
// True when `name` matches the metric-name or label-name grammar at the top of metrics.h
// (IsValidLabelName does not check the reserved "__" prefix or "le").
bool IsValidMetricName(std::string_view name);
bool IsValidLabelName(std::string_view name);

// Appends "# HELP name help\n# TYPE name type\n".
void AppendHeader(std::string* out, std::string_view name, std::string_view help, MetricType type);
// Appends one sample line `name{l1="v1",...} value\n`, with `extra_name="extra_value"` as the last
// label when extra_name is not empty (histograms pass le). Braces are left out when no labels.
// REQUIRES: label_values.size() == label_names.size().
void AppendSample(std::string* out, std::string_view name,
                  const std::vector<std::string>& label_names,
                  const std::vector<std::string>& label_values, std::string_view extra_name,
                  std::string_view extra_value, double value);

}  // namespace kubemoe::metrics
