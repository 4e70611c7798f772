// Does a live object already carry what we would apply? The API server adds fields we never set
// (uid, resourceVersion, status, managedFields, defaulted spec fields) and rewrites resource
// quantities in canonical form ("1000m" comes back as "1"), so "equal" means: every field of the
// desired object is present in the live one with an equal value.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "common/status.h"

namespace kubemoe::op {

// True when `desired` is a semantic subset of `live`:
//   - objects: every key of `desired` is in `live` with a subset value (extra live keys are
//     ignored); a desired empty object, empty array or null also matches a missing key, since
//     the server drops empty optional fields;
//   - arrays: the same length, element by element subsets (order matters, as in Kubernetes
//     lists; the server keeps the order we send);
//   - resource quantities (the values of `resources.limits`, `resources.requests` and
//     `overhead`, and `sizeLimit`; strings or numbers): equal as quantities, so "1000m" matches
//     "1" and "1024Mi" matches "1Gi" (operator/k8s/quantity.h);
//   - numbers: equal as numbers (3 == 3.0); other scalars: equal.
// When it returns false and `where` is not null, *where is the JSON path of the first
// difference, e.g. ".spec.replicas", for logs. A quantity on either side that does not parse is
// an InvalidArgument error naming its path, never a silent textual comparison.
StatusOr<bool> IsSemanticSubset(const nlohmann::json& desired, const nlohmann::json& live,
                                std::string* where = nullptr);

}  // namespace kubemoe::op
