// Does a live object already carry what we would apply? The API server adds fields we never set
// (uid, resourceVersion, status, managedFields, defaulted spec fields), so "equal" means: every
// field of the desired object is present in the live one with an equal value.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

namespace kubemoe::op {

// True when `desired` is a semantic subset of `live`:
//   - objects: every key of `desired` is in `live` with a subset value (extra live keys are
//     ignored); a desired empty object, empty array or null also matches a missing key, since
//     the server drops empty optional fields;
//   - arrays: the same length, element by element subsets (order matters, as in Kubernetes
//     lists; the server keeps the order we send);
//   - numbers: equal as numbers (3 == 3.0); other scalars: equal.
// When it returns false and `where` is not null, *where is the JSON path of the first
// difference, e.g. ".spec.replicas", for logs.
bool IsSemanticSubset(const nlohmann::json& desired, const nlohmann::json& live,
                      std::string* where = nullptr);

}  // namespace kubemoe::op
