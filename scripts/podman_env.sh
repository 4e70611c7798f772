# Sourced by scripts/build_images.sh and scripts/check_images.sh: podman as it works on this
# project's machines (Debian bookworm, root, hybrid cgroups, no CAP_SYS_RESOURCE, no iptables),
# with per-command flags instead of edits to /etc/containers:
#   - runc, because crun cannot set up containers on hybrid cgroup hosts;
#   - open-files and process limits no higher than this process may set: podman's defaults
#     (1048576 open files, a large nproc) are refused ("error setting rlimit") without
#     CAP_SYS_RESOURCE. Podman itself runs with nproc capped at kernel.pid_max, so that caps too.
# OCI_RUNTIME overrides the runtime.
# shellcheck shell=bash
podman_nofile=$(ulimit -Hn)
[[ $podman_nofile == unlimited ]] && podman_nofile=1048576
podman_nproc=$(ulimit -Hu)
pid_max=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 32768)
[[ $podman_nproc == unlimited || $podman_nproc -gt $pid_max ]] && podman_nproc=$pid_max
# shellcheck disable=SC2034 # used by the scripts that source this one
podman_limits=(--ulimit "nofile=$podman_nofile:$podman_nofile"
               --ulimit "nproc=$podman_nproc:$podman_nproc")
pm() { podman --runtime "${OCI_RUNTIME:-runc}" "$@"; }
