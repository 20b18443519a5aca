#!/usr/bin/env bash
# Make a local stand-in for the official `python:3.11-slim` image, from scratch, for hosts that cannot pull
# from a container registry (no Docker Hub) but can reach Debian's package mirror.
#
#   sudo deploy/image/build-base.sh        # needs: root, debootstrap, podman
#
# What it does: debootstrap a minimal Debian bookworm (variant minbase), install Debian's Python 3.11
# (bookworm's python3 *is* 3.11) with venv and pip through apt inside the chroot, lay out the paths the
# official image has (/usr/local/bin/python, python3, pip, ...), then `podman import` the tree as
# docker.io/library/python:3.11-slim with the official image's ENV (PATH, LANG) and CMD ["python3"].
# Idempotent: does nothing if that image already exists (FORCE=1 rebuilds it).
#
# Differences from the official image, none of which the project's Dockerfile relies on: Python is
# Debian's 3.11.2 build (prefix /usr, symlinked from /usr/local/bin) rather than a source build in
# /usr/local; CA certificates the host added locally (/usr/local/share/ca-certificates/*.crt, e.g. a
# corporate or sandbox TLS-inspecting proxy) are trusted too, so `pip install` in `RUN` steps works behind
# such a proxy (EXTRA_CA_DIR= to skip). This image is for local builds and smoke tests, never for a registry.
#
# Settings (environment): DEBIAN_MIRROR (default http://deb.debian.org/debian), DEBIAN_SUITE (bookworm),
# BASE_IMAGE (docker.io/library/python:3.11-slim), EXTRA_CA_DIR (/usr/local/share/ca-certificates),
# WORKDIR (a new temporary folder under /var/tmp), FORCE (1 to replace an existing image).
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-docker.io/library/python:3.11-slim}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
EXTRA_CA_DIR=${EXTRA_CA_DIR-/usr/local/share/ca-certificates}
FORCE=${FORCE:-0}

log() { printf 'build-base: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it)"
for tool in debootstrap podman chroot tar; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install debootstrap podman)"
done

if podman image exists "$BASE_IMAGE"; then
  if [ "$FORCE" != 1 ]; then
    log "$BASE_IMAGE already exists; nothing to do (FORCE=1 to rebuild)"
    exit 0
  fi
  log "FORCE=1: replacing $BASE_IMAGE"
fi

work=${WORKDIR:-$(mktemp -d /var/tmp/jumpgate-base.XXXXXX)}
root="$work/rootfs"
mkdir -p "$root"

cleanup() {
  # Unmount anything still mounted inside the tree before removing it (never rm -rf across a bind mount).
  for m in "$root/dev/pts" "$root/proc" "$root/sys"; do
    if mountpoint -q "$m" 2>/dev/null; then umount -l "$m" || true; fi
  done
  if [ -z "${WORKDIR:-}" ] && [ -d "$work" ]; then
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT

log "debootstrap --variant=minbase $DEBIAN_SUITE from $DEBIAN_MIRROR into $root"
debootstrap --variant=minbase "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# The same suites the official image's apt sees: the release, its updates, and the security archive.
security_mirror=${DEBIAN_SECURITY_MIRROR:-${DEBIAN_MIRROR%/debian}/debian-security}
cat >"$root/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR $DEBIAN_SUITE main
deb $DEBIAN_MIRROR $DEBIAN_SUITE-updates main
deb $security_mirror $DEBIAN_SUITE-security main
EOF
# Like the official slim images: no documentation, no recommends.
mkdir -p "$root/etc/dpkg/dpkg.cfg.d" "$root/etc/apt/apt.conf.d"
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/99no-recommends"

cp /etc/resolv.conf "$root/etc/resolv.conf"  # for apt inside the chroot; emptied again before the import
mount -t proc proc "$root/proc"
mount --bind /dev/pts "$root/dev/pts"

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  LANG=C.UTF-8 "$@"; }

log "apt-get install python3 python3-venv python3-pip ca-certificates (in the chroot)"
in_root apt-get update -qq
in_root apt-get install -y -qq --no-install-recommends python3 python3-venv python3-pip ca-certificates \
  >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; die "apt-get install in the chroot failed"; }

if [ -n "$EXTRA_CA_DIR" ] && compgen -G "$EXTRA_CA_DIR/*.crt" >/dev/null; then
  log "trusting the host's locally added CA certificates from $EXTRA_CA_DIR"
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp "$EXTRA_CA_DIR"/*.crt "$root/usr/local/share/ca-certificates/"
  in_root update-ca-certificates >/dev/null
fi

# The official image's paths: its Python lives in /usr/local, so Dockerfiles say `python`, `python3`, `pip`.
py=$(in_root python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$py" = 3.11 ] || die "expected Python 3.11 in $DEBIAN_SUITE, got $py"
mkdir -p "$root/usr/local/bin"
for name in python python3 "python$py"; do ln -sf "/usr/bin/python$py" "$root/usr/local/bin/$name"; done
for name in pip pip3 "pip$py"; do ln -sf /usr/bin/pip3 "$root/usr/local/bin/$name"; done
# The official image has no PEP 668 marker: `pip install` outside a venv is allowed there, so here too.
rm -f "$root/usr/lib/python$py/EXTERNALLY-MANAGED"
full_version=$(in_root python3 -c 'import platform; print(platform.python_version())')

in_root apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log "$root"/tmp/* \
  "$root"/root/.cache
: >"$root/etc/resolv.conf"
umount -l "$root/dev/pts"
umount -l "$root/proc"

log "podman import -> $BASE_IMAGE (Python $full_version)"
if podman image exists "$BASE_IMAGE"; then podman rmi -f "$BASE_IMAGE" >/dev/null; fi
tar -C "$root" --numeric-owner -cf - . | podman import \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "ENV PYTHON_VERSION=$full_version" \
  --change 'CMD ["python3"]' \
  --message "local stand-in for python:3.11-slim: debootstrap $DEBIAN_SUITE minbase + Debian python3" \
  - "$BASE_IMAGE" >/dev/null

# A first container from it. The ulimits: see smoke.sh (podman's defaults can exceed a sandbox's hard limits).
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
podman run --rm --runtime "${OCI_RUNTIME:-runc}" --network none \
  --ulimit "nofile=$nofile:$nofile" --ulimit nproc=4096:4096 "$BASE_IMAGE" \
  python -c 'import sys, venv, ensurepip; print("base ok:", sys.version.split()[0], sys.executable)' \
  || log "warning: imported, but could not run a container from it (see the error above)"
podman image ls "$BASE_IMAGE"
