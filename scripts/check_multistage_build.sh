#!/usr/bin/env bash
# Builds one image the way users do (docker/Dockerfile.<component>'s default `runtime` target:
# the project compiled inside the `build` stage, on the locally made Debian base) and checks the
# result as check_images.sh checks the prebuilt ones: --help under the pods' security flags, and
# ldd finding every library. CI runs it for the operator, the quickest component to compile; the
# router and worker Dockerfiles share its stages. Needs root, podman and the base image
# (scripts/build_images.sh makes it).
#   scripts/check_multistage_build.sh [operator|router|worker]     (default operator)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
source "$root/scripts/podman_env.sh"
component=${1:-operator}
[[ $component =~ ^(operator|router|worker)$ ]] || { echo "unknown component $component" >&2; exit 2; }
base=${BASE_IMAGE:-localhost/debian:bookworm}
image=localhost/kubemoe-$component:multistage-check
say() { echo "check_multistage_build: $*"; }
fail() { echo "check_multistage_build: FAIL: $*" >&2; exit 1; }

pm image exists "$base" || fail "no base image $base; run scripts/build_images.sh first"
start=$(date +%s)
say "building $image from docker/Dockerfile.$component (target runtime, BASE=$base)"
pm build --network host "${podman_limits[@]}" --build-arg "BASE=$base" \
  -f "docker/Dockerfile.$component" -t "$image" "$root" >"${TMPDIR:-/tmp}/multistage-$component.log" 2>&1 ||
  { tail -30 "${TMPDIR:-/tmp}/multistage-$component.log" >&2; fail "podman build failed"; }
say "built in $(($(date +%s) - start)) s; $(pm images --format '{{.Size}}' "$image") "

secure=(--user 65532:65532 --read-only --read-only-tmpfs=false --cap-drop=ALL
        --security-opt no-new-privileges "${podman_limits[@]}")
usage=$(pm run --rm "${secure[@]}" "$image" --help 2>&1) || fail "$image --help failed: $usage"
grep -q "Usage: /usr/local/bin/kubemoe-$component" <<<"$usage" || fail "unexpected --help output: $usage"
say "--help: $(head -n1 <<<"$usage")"
libs=$(pm run --rm "${secure[@]}" --entrypoint ldd "$image" "/usr/local/bin/kubemoe-$component")
! grep -q "not found" <<<"$libs" || fail "missing libraries: $(grep "not found" <<<"$libs")"
say "ldd: $(wc -l <<<"$libs") libraries, none missing"
