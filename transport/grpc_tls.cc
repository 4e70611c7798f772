#include "transport/grpc_tls.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

namespace kubemoe::transport {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

StatusOr<std::string> ReadPem(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return InvalidArgument(path + " is not PEM (no -----BEGIN line)");
  }
  return text.str();
}

std::unique_ptr<BIO, BioFree> MemoryBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::string Path(const std::string& dir, const char* file) { return dir + "/" + file; }

}  // namespace

Status CheckTlsDir(const std::string& dir) {
  StatusOr<std::string> cert = ReadPem(Path(dir, kTlsCertFile));
  if (!cert.ok()) return cert.status();
  StatusOr<std::string> key = ReadPem(Path(dir, kTlsKeyFile));
  if (!key.ok()) return key.status();
  StatusOr<std::string> ca = ReadPem(Path(dir, kTlsCaFile));
  if (!ca.ok()) return ca.status();

  std::unique_ptr<X509, X509Free> x509(PEM_read_bio_X509(MemoryBio(*cert).get(), nullptr, nullptr, nullptr));
  if (!x509) return InvalidArgument(Path(dir, kTlsCertFile) + " holds no PEM certificate");
  std::unique_ptr<EVP_PKEY, KeyFree> pkey(
      PEM_read_bio_PrivateKey(MemoryBio(*key).get(), nullptr, nullptr, nullptr));
  if (!pkey) return InvalidArgument(Path(dir, kTlsKeyFile) + " holds no unencrypted PEM private key");
  if (X509_check_private_key(x509.get(), pkey.get()) != 1) {
    return InvalidArgument(Path(dir, kTlsKeyFile) + " is not the key of the certificate in " +
                           Path(dir, kTlsCertFile));
  }
  std::unique_ptr<X509, X509Free> ca_x509(PEM_read_bio_X509(MemoryBio(*ca).get(), nullptr, nullptr, nullptr));
  if (!ca_x509) return InvalidArgument(Path(dir, kTlsCaFile) + " holds no PEM certificate");
  return Status::Ok();
}

namespace {

std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider> Provider(const std::string& dir,
                                                                             unsigned refresh_seconds) {
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      Path(dir, kTlsKeyFile), Path(dir, kTlsCertFile), Path(dir, kTlsCaFile), refresh_seconds);
}

}  // namespace

StatusOr<std::shared_ptr<grpc::ServerCredentials>> GrpcServerCredentials(const std::string& tls_dir,
                                                                         unsigned refresh_seconds) {
  if (tls_dir.empty()) return grpc::InsecureServerCredentials();
  KUBEMOE_RETURN_IF_ERROR(CheckTlsDir(tls_dir));
  grpc::experimental::TlsServerCredentialsOptions options(Provider(tls_dir, refresh_seconds));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::experimental::TlsServerCredentials(options);
  if (!credentials) return InvalidArgument("gRPC rejected the TLS server options of " + tls_dir);
  return credentials;
}

StatusOr<std::shared_ptr<grpc::ChannelCredentials>> GrpcChannelCredentials(const std::string& tls_dir,
                                                                           unsigned refresh_seconds) {
  if (tls_dir.empty()) return grpc::InsecureChannelCredentials();
  KUBEMOE_RETURN_IF_ERROR(CheckTlsDir(tls_dir));
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(Provider(tls_dir, refresh_seconds));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  // Server certificates are checked against ca.crt and the dialled host name (gRPC's default
  // verifier for TLS credentials).
  options.set_verify_server_certs(true);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::experimental::TlsCredentials(options);
  if (!credentials) return InvalidArgument("gRPC rejected the TLS channel options of " + tls_dir);
  return credentials;
}

}  // namespace kubemoe::transport
