#!/usr/bin/env bash
# Builds a `docker save` archive of a busybox image from Debian's busybox-static, with only
# coreutils, GNU tar and sha256sum: no docker, no registry.
#
#   scripts/make-busybox-image.sh OUT.tar [--tag busybox:latest] [--oci]
#
# The image: /bin/busybox and a symlink for each of its applets (bin/sh, usr/bin/env, ...),
# /etc/passwd (root, daemon, nobody, berth uid 1000) and /etc/group, /tmp (1777), /root,
# /home/berth, /var, /proc, /sys, /dev; config Cmd ["sh"] and the usual PATH.
#
# Layout: Docker <= 24's by default (manifest.json, repositories, <id>.json,
# <dir>/layer.tar); with --oci, Docker >= 25's OCI image layout (oci-layout, index.json,
# blobs/sha256/..., plus manifest.json and repositories).
#
# Deterministic: fixed times, sorted entries, numeric owners, so the same busybox binary
# always gives the same image ID. BUSYBOX=/path overrides the binary.
set -euo pipefail

usage() {
  echo "usage: $0 OUT.tar [--tag NAME[:TAG]] [--oci]" >&2
  exit 2
}

out=""
tag="busybox:latest"
oci=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || usage; tag="$2"; shift 2 ;;
    --tag=*) tag="${1#--tag=}"; shift ;;
    --oci) oci=1; shift ;;
    -h | --help) usage ;;
    -*) echo "unknown option: $1" >&2; usage ;;
    *) [ -z "$out" ] || usage; out="$1"; shift ;;
  esac
done
[ -n "$out" ] || usage

busybox="${BUSYBOX:-/bin/busybox}"
if [ ! -x "$busybox" ]; then
  echo "$busybox is missing: apt-get install busybox-static" >&2
  exit 1
fi

# The reference, split and normalised as docker does: the tag is after the last '/'.
last="${tag##*/}"
if [[ "$last" == *:* ]]; then
  name="${tag%:*}"
  version="${tag##*:}"
else
  name="$tag"
  version=latest
fi
first="${name%%/*}"
if [[ "$name" != */* ]]; then
  full="docker.io/library/$name"
elif [[ "$first" == *.* || "$first" == *:* || "$first" == localhost ]]; then
  full="$name"
else
  full="docker.io/$name"
fi
case "$full" in
  docker.io/library/*/*) familiar="${full#docker.io/}" ;;
  docker.io/library/*) familiar="${full#docker.io/library/}" ;;
  docker.io/*) familiar="${full#docker.io/}" ;;
  *) familiar="$full" ;;
esac

case "$(dpkg --print-architecture 2>/dev/null || echo amd64)" in
  i386) arch=386 ;;
  armhf | armel) arch=arm ;;
  ppc64el) arch=ppc64le ;;
  *) arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)" ;;
esac

created="2024-01-01T00:00:00Z"
epoch=1704067200
tar_opts=(--format=gnu --sort=name --numeric-owner --mtime="@$epoch")

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 022

# The root file system.
root="$work/rootfs"
mkdir -p "$root"/{bin,dev,etc,home/berth,proc,root,sbin,sys,tmp,usr/bin,usr/sbin,var}
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
"$busybox" --list-full | while read -r applet; do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$root/$(dirname "$applet")"
  ln -sfn /bin/busybox "$root/$applet"
done
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
berth:x:1000:1000:berth:/home/berth:/bin/sh
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
nogroup:x:65534:
berth:x:1000:
EOF
chmod 0644 "$root/etc/passwd" "$root/etc/group"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"

# The layer: everything root's, then berth's home appended as berth's.
(cd "$root" && find . -mindepth 1 ! -path ./home/berth | sed 's|^\./||' | LC_ALL=C sort) >"$work/files"
tar "${tar_opts[@]}" --owner=0 --group=0 --no-recursion -C "$root" -cf "$work/layer.tar" -T "$work/files"
tar "${tar_opts[@]}" --owner=1000 --group=1000 --no-recursion -C "$root" -rf "$work/layer.tar" home/berth

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
layer="$(sha "$work/layer.tar")"
version_line="$("$busybox" --help 2>&1 | head -n 1 || true)"
version_line="${version_line//\"/}"

printf '%s' "{\"architecture\":\"$arch\",\"config\":{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],\"Cmd\":[\"sh\"]},\"created\":\"$created\",\"history\":[{\"created\":\"$created\",\"created_by\":\"make-busybox-image.sh: $version_line\"}],\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$layer\"]}}" >"$work/config.json"
config="$(sha "$work/config.json")"

dest="$work/archive"
mkdir -p "$dest"
printf '%s' "{\"$familiar\":{\"$version\":\"$layer\"}}" >"$dest/repositories"
if [ "$oci" = 1 ]; then
  mkdir -p "$dest/blobs/sha256"
  cp "$work/layer.tar" "$dest/blobs/sha256/$layer"
  cp "$work/config.json" "$dest/blobs/sha256/$config"
  printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$config\",\"size\":$(size "$work/config.json")},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$layer\",\"size\":$(size "$work/layer.tar")}]}" >"$work/manifest"
  manifest="$(sha "$work/manifest")"
  cp "$work/manifest" "$dest/blobs/sha256/$manifest"
  printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$dest/oci-layout"
  printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$manifest\",\"size\":$(size "$work/manifest"),\"annotations\":{\"io.containerd.image.name\":\"$full:$version\",\"org.opencontainers.image.ref.name\":\"$version\"},\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"}}]}" >"$dest/index.json"
  printf '%s' "[{\"Config\":\"blobs/sha256/$config\",\"RepoTags\":[\"$familiar:$version\"],\"Layers\":[\"blobs/sha256/$layer\"]}]" >"$dest/manifest.json"
else
  mkdir -p "$dest/$layer"
  cp "$work/layer.tar" "$dest/$layer/layer.tar"
  printf '1.0' >"$dest/$layer/VERSION"
  printf '%s' "{\"id\":\"$layer\",\"created\":\"$created\",\"container_config\":{\"Cmd\":null},\"os\":\"linux\"}" >"$dest/$layer/json"
  cp "$work/config.json" "$dest/$config.json"
  printf '%s' "[{\"Config\":\"$config.json\",\"RepoTags\":[\"$familiar:$version\"],\"Layers\":[\"$layer/layer.tar\"]}]" >"$dest/manifest.json"
fi

# shellcheck disable=SC2046 # the entry names are hex digests and fixed names
(cd "$dest" && tar "${tar_opts[@]}" --owner=0 --group=0 -cf "$work/out.tar" $(ls -A | LC_ALL=C sort))
mv "$work/out.tar" "$out"
echo "sha256:$config $familiar:$version"
