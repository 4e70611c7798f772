#!/usr/bin/env bash
# Builds the three kubemoe images (operator, router, worker) with podman from binaries already
# built on this host (scripts/setup.sh), through the `prebuilt` stage of docker/Dockerfile.*, and
# tags them as the chart and the operator name them (ghcr.io/kubemoe/kubemoe-<c>:<appVersion>).
# Works without any container registry: the Debian bookworm base image is made with debootstrap
# and imported (once; the rootfs tarball is cached). Idempotent: a rerun reuses the base image and
# podman's layer cache, and only re-copies binaries that changed. See docs/containers.md.
#
#   scripts/build_images.sh                 build all three from build/
#   BIN_DIR=/path/to/build scripts/build_images.sh
#   scripts/build_images.sh router worker   build only these
#
# Environment (all optional):
#   BIN_DIR          where kubemoe-{operator,router,worker} are (default: <repo>/build)
#   IMAGE_REPO       repository prefix (default: ghcr.io/kubemoe)
#   IMAGE_TAG        tag (default: appVersion of charts/kubemoe/Chart.yaml)
#   BASE_IMAGE       base image (default: localhost/debian:bookworm, made with debootstrap if
#                    missing; a name outside localhost/ is pulled instead)
#   IMAGE_CACHE_DIR  where the base rootfs tarball is cached (default: <repo>/.image-cache)
#   DEBIAN_MIRROR    mirror for debootstrap (default: the first one in this host's apt sources)
#   OCI_RUNTIME      podman's OCI runtime (default: runc; crun fails on hosts with hybrid cgroups)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir=$(realpath -m "${BIN_DIR:-$root/build}")  # relative to where the script was called from
cd "$root"

die() { echo "build_images: error: $*" >&2; exit 1; }
say() { echo "build_images: $*"; }

components=("$@")
((${#components[@]})) || components=(operator router worker)
for c in "${components[@]}"; do
  [[ $c =~ ^(operator|router|worker)$ ]] || die "unknown image '$c' (expected operator, router or worker)"
done

repo=${IMAGE_REPO:-ghcr.io/kubemoe}
tag=${IMAGE_TAG:-$(awk -F'"' '/^appVersion:/{print $2}' charts/kubemoe/Chart.yaml)}
[[ -n $tag ]] || die "no IMAGE_TAG and no appVersion in charts/kubemoe/Chart.yaml"
base=${BASE_IMAGE:-localhost/debian:bookworm}
cache=${IMAGE_CACHE_DIR:-$root/.image-cache}
staging=$root/.image-staging  # inside the build context, git-ignored

[[ $(id -u) -eq 0 ]] || die "run as root (rootless podman is not set up on these machines)"
missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
((${#missing[@]} == 0)) || die "missing ${missing[*]}; install with:
  apt-get update && apt-get install -y podman runc debootstrap uidmap slirp4netns fuse-overlayfs"

# runc and rlimits this host allows (scripts/podman_env.sh). Build steps use the host's network:
# they only fetch Debian packages, as the host itself does, and need no bridge (netavark needs
# iptables, which only scripts/setup.sh installs).
source "$root/scripts/podman_env.sh"

# 1. The base image.
if pm image exists "$base"; then
  say "base image $base present"
elif [[ $base != localhost/* ]]; then
  say "pulling $base"
  pm pull "$base" || die "cannot pull $base (no registry reachable? leave BASE_IMAGE unset to make one)"
else
  mkdir -p "$cache"
  tarball=$cache/debian-bookworm-minbase.tar
  if [[ ! -s $tarball ]]; then
    mirror=${DEBIAN_MIRROR:-}
    if [[ -z $mirror ]]; then
      # The host's own Debian mirror: deb822 sources first, then the one-line format.
      mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '/^URIs:/{for (i = 2; i <= NF; i++) if ($i !~ /security/) {print $i; exit}}')
      [[ -n $mirror ]] || mirror=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' \
        /etc/apt/sources.list 2>/dev/null || true)
    fi
    [[ -n $mirror ]] || die "no Debian mirror found in /etc/apt; set DEBIAN_MIRROR"
    rootfs=$cache/rootfs.tmp
    rm -rf "$rootfs"
    say "making the base rootfs with debootstrap (minbase, bookworm, $mirror); takes a few minutes"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
      die "debootstrap failed; see $cache/debootstrap.log"
    # Image builds get the host's suites too (bookworm-updates, bookworm-security), so the
    # libraries in the images are the versions the host binaries were built and tested against.
    if [[ -z ${DEBIAN_MIRROR:-} && -f /etc/apt/sources.list.d/debian.sources ]]; then
      cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
      rm -f "$rootfs/etc/apt/sources.list"
    fi
    # Smaller: no package lists or downloaded .debs in the base.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  else
    say "using the cached base rootfs $tarball"
  fi
  pm import "$tarball" "$base" >/dev/null || die "podman import of $tarball failed"
  say "imported $base"
fi

# 2. Stage the binaries in the build context (a later rebuild of BIN_DIR cannot change an image
# build under way; unchanged files keep their timestamps, so podman's layer cache stays valid).
mkdir -p "$staging"
for c in "${components[@]}"; do
  src=$bin_dir/kubemoe-$c
  [[ -x $src ]] || die "$src missing or not executable; build it first (scripts/setup.sh) or set BIN_DIR"
  if [[ $(readlink -f "$src") != $(readlink -f "$staging/kubemoe-$c") ]]; then
    cmp -s "$src" "$staging/kubemoe-$c" || cp -p "$src" "$staging/kubemoe-$c"
  fi
done

# 3. The images.
for c in "${components[@]}"; do
  image=$repo/kubemoe-$c:$tag
  say "building $image"
  # The binary's digest as a label: tests compare it with build/ to catch a stale image.
  digest=$(sha256sum "$staging/kubemoe-$c" | cut -d' ' -f1)
  pm build --network host "${podman_limits[@]}" --target prebuilt \
    --build-arg "BINARY_SHA256=$digest" \
    --build-arg "BASE=$base" --build-arg BINARY_DIR=.image-staging \
    -f "docker/Dockerfile.$c" -t "$image" "$root" || die "building $image failed"
done

pm images --filter "reference=$repo/*" --filter "reference=$base"
