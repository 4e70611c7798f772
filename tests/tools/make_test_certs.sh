#!/usr/bin/env bash
# Makes throw-away certificates for the mutual-TLS tests, laid out like Kubernetes TLS Secrets
# (tls.crt, tls.key, ca.crt), with the openssl CLI. Valid for two days from now.
#   tests/tools/make_test_certs.sh OUT [NAME...]     (NAME: a DNS name, or IP:ADDRESS)
# writes
#   OUT/server/  a server certificate for DNS:localhost, IP:127.0.0.1 and every NAME given,
#                also good as a client certificate (one Secret can serve router and workers)
#   OUT/client/  a router (client) certificate from the same CA
#   OUT/other/   a certificate for the same names from a different CA, with that CA as ca.crt
# Keys are EC P-256. Files are world-readable (as a Secret volume's default mode makes them), so
# containers running as a non-root user can read them.
set -euo pipefail
out=${1:?usage: make_test_certs.sh OUT [NAME...]}
shift
names="DNS:localhost,IP:127.0.0.1"
for n in "$@"; do [[ $n == IP:* ]] && names+=",$n" || names+=",DNS:$n"; done
mkdir -p "$out"/{ca,other-ca,server,client,other}

ca() {  # dir cn
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$2" -keyout "$1/ca.key" -out "$1/ca.crt" 2>/dev/null
}
leaf() {  # dir cn ca-dir extensions
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" \
    -keyout "$1/tls.key" -out "$1/tls.csr" 2>/dev/null
  printf '%s\n' "$4" >"$1/ext.cnf"
  openssl x509 -req -in "$1/tls.csr" -CA "$3/ca.crt" -CAkey "$3/ca.key" -CAcreateserial -days 2 \
    -extfile "$1/ext.cnf" -out "$1/tls.crt" 2>/dev/null
  cp "$3/ca.crt" "$1/ca.crt"
  rm -f "$1/tls.csr" "$1/ext.cnf"
}

ca "$out/ca" kubemoe-test-ca
ca "$out/other-ca" kubemoe-other-ca
leaf "$out/server" kubemoe-worker "$out/ca" "subjectAltName=$names
extendedKeyUsage=serverAuth,clientAuth"
leaf "$out/client" kubemoe-router "$out/ca" "extendedKeyUsage=clientAuth"
leaf "$out/other" kubemoe-worker "$out/other-ca" "subjectAltName=$names
extendedKeyUsage=serverAuth,clientAuth"
chmod -R a+rX "$out"
