// gRPC status codes as router and worker both need them: the canonical names (metric labels)
// and the mapping of our Status codes onto gRPC's.
#pragma once

#include <grpcpp/support/status_code_enum.h>

#include "common/status.h"

namespace kubemoe::transport {

// "OK", "CANCELLED", ... "UNAUTHENTICATED", as gRPC spells them; "UNKNOWN" for other values.
const char* GrpcCodeName(int code);

// The gRPC code a server answers a Status with. NotFound (an expert not held here: the caller's
// placement is stale) becomes FAILED_PRECONDITION.
grpc::StatusCode ToGrpcCode(StatusCode code);

}  // namespace kubemoe::transport
