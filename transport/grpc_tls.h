// Mutual TLS between the router and the expert-shard workers.
//
// Both sides take a directory laid out like a Kubernetes TLS Secret as cert-manager writes it:
//   tls.crt  this side's certificate (chain), PEM
//   tls.key  its private key, PEM
//   ca.crt   the CA certificate(s) the peer's certificate must chain to, PEM
// The worker (server) requires a client certificate signed by ca.crt; the router (client) checks
// the worker's certificate against ca.crt and the name it dialled (so a worker certificate needs
// the subject alternative names the router dials, e.g. *.NAME-experts.NS.svc). The files are read
// again every `refresh_seconds`, so a rotated Secret (the kubelet swaps the volume's files
// atomically) takes effect without a restart.
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "common/status.h"

namespace kubemoe::transport {

inline constexpr char kTlsCertFile[] = "tls.crt";
inline constexpr char kTlsKeyFile[] = "tls.key";
inline constexpr char kTlsCaFile[] = "ca.crt";

// Ok when `dir` holds the three files, each parses as PEM, and tls.key is the key of tls.crt's
// first certificate; otherwise InvalidArgument/NotFound naming the file and what is wrong.
Status CheckTlsDir(const std::string& dir);

// Server credentials for a worker. An empty `tls_dir` means plaintext (insecure) credentials.
StatusOr<std::shared_ptr<grpc::ServerCredentials>> GrpcServerCredentials(const std::string& tls_dir,
                                                                         unsigned refresh_seconds = 60);

// Channel credentials for the router's connections to workers. Empty `tls_dir`: plaintext.
StatusOr<std::shared_ptr<grpc::ChannelCredentials>> GrpcChannelCredentials(const std::string& tls_dir,
                                                                           unsigned refresh_seconds = 60);

}  // namespace kubemoe::transport
