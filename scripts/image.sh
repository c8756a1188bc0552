#!/usr/bin/env bash
# Builds the edgepier container image offline, from scratch (no base image, no
# download): a rootfs holding /usr/bin/edgepier, /usr/bin/epctl, exactly the
# shared libraries they load (found with ldd) and the dynamic loader, the packaged
# default config deploy/edgepier.ini as /etc/edgepier/edgepier.ini, minimal /etc files and the host's CA
# bundle (pull-through upstreams are HTTPS). umoci makes the OCI image from one
# layer; skopeo writes it as a single-file oci-archive:
#
#   scripts/image.sh [BUILD_DIR]     # BUILD_DIR defaults to build; writes BUILD_DIR/edgepier-image.tar
#   podman load -i build/edgepier-image.tar      # -> localhost/edgepier:VERSION
#   skopeo copy oci-archive:build/edgepier-image.tar docker://REGISTRY/edgepier:VERSION
#
# The image runs `edgepier --config-file=/etc/edgepier/edgepier.ini`; arguments
# given to the container replace that (so add --config-file again when overriding,
# e.g. `--config-file=/etc/edgepier/edgepier.ini --edgepier.node-name=edge-1`).
# Data lives in the volume /var/lib/edgepier. The node name defaults to the host
# name, which is the container's unless it runs with the host network (as the
# Kubernetes DaemonSet does); give --edgepier.node-name when it is not stable.
#
# The layer tar is sorted, owned by 0:0 and stamped with SOURCE_DATE_EPOCH (default:
# the last commit's time), as are the config and its one history entry, so the same
# binaries give the same digests.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "image.sh: $*" >&2; exit 1; }

build_dir=${1:-build}
bin_dir="$build_dir/bin"
for b in edgepier epctl; do
  [[ -x "$bin_dir/$b" ]] || die "$bin_dir/$b is missing: build first (scripts/build.sh, or cmake --build $build_dir)"
done
for tool in umoci skopeo ldd tar sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is needed (apt-get install -y --no-install-recommends umoci skopeo)"
done
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[[ -s "$ca_bundle" ]] || die "$ca_bundle is missing (apt-get install -y ca-certificates)"

version=$(sed -n 's/^project([^)]*VERSION \([0-9][0-9.]*\).*/\1/p' CMakeLists.txt | head -n1)
[[ -n "$version" ]] || die "no VERSION in the project() line of CMakeLists.txt"
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) die "unsupported machine $(uname -m)" ;;
esac
if [[ -z "${SOURCE_DATE_EPOCH:-}" ]]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
out="$build_dir/edgepier-image.tar"

work=$(mktemp -d /tmp/edgepier-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
root="$work/rootfs"

# ------------------------------------------------------------------ the rootfs
# Debian 12's merged /usr: /bin, /lib, /lib64, /sbin are links into /usr, so the
# library paths ldd prints (/lib/x86_64-linux-gnu/...) land in /usr/lib.
mkdir -p "$root"/usr/{bin,sbin,lib,lib64}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done

declare -A copied=()
# copy_file PATH: PATH into the rootfs at the same path; a symlink is recreated as
# it is and its target copied too, down the chain to the file.
copy_file() {
  local p=$1 t
  while [[ -z "${copied[$p]:-}" ]]; do
    copied[$p]=1
    mkdir -p "$root$(dirname "$p")"
    if [[ -L "$p" ]]; then
      t=$(readlink "$p")
      ln -sfn "$t" "$root$p"
      [[ "$t" == /* ]] || t="$(dirname "$p")/$t"
      p=$t
    else
      # --remove-destination: never write through a link into the host
      cp -L --remove-destination "$p" "$root$p"
      chmod 0755 "$root$p"
      return
    fi
  done
}
# libs_of FILE: every shared library and the loader FILE needs, one path a line.
libs_of() {
  ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
  ldd "$1" | grep -q 'not found' && die "$1: a library is not found: $(ldd "$1" | grep 'not found' | tr -s ' \t' ' ')"
  return 0
}

# Stripped: symbols are for the build tree, not the image.
install -m 0755 --strip "$bin_dir/edgepier" "$root/usr/bin/edgepier"
install -m 0755 --strip "$bin_dir/epctl" "$root/usr/bin/epctl"
libs=$( { libs_of "$bin_dir/edgepier"; libs_of "$bin_dir/epctl"; } | sort -u)
# Name lookups: glibc 2.36 has files and dns inside libc.so.6; Debian still ships
# the libnss_files/libnss_dns stubs, copied so an NSS that dlopens them finds them.
libc_dir=$(dirname "$(grep '/libc\.so\.6$' <<<"$libs" | head -n1)")
for nss in libnss_files.so.2 libnss_dns.so.2; do
  if [[ -e "$libc_dir/$nss" ]]; then
    libs+=$'\n'"$libc_dir/$nss"$'\n'"$(libs_of "$libc_dir/$nss")"
  fi
done
while read -r lib; do
  [[ -n "$lib" ]] && copy_file "$lib"
done < <(sort -u <<<"$libs")

mkdir -p "$root"/etc/edgepier "$root"/etc/ssl/certs "$root"/usr/lib/ssl \
  "$root"/var/lib/edgepier "$root"/tmp "$root"/root "$root"/dev "$root"/proc "$root"/sys
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
# The packaged default config (the .deb installs the same file): data in the
# volume /var/lib/edgepier, the registry, cluster and data ports on every
# address, the admin API on the container's loopback.
install -m 0644 deploy/edgepier.ini "$root/etc/edgepier/edgepier.ini"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
EOF
cp -L "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
# OpenSSL's default verify paths (OPENSSLDIR /usr/lib/ssl), as on Debian.
ln -s /etc/ssl/certs/ca-certificates.crt "$root/usr/lib/ssl/cert.pem"
ln -s /etc/ssl/certs "$root/usr/lib/ssl/certs"
chmod 0644 "$root"/etc/edgepier/edgepier.ini "$root"/etc/{passwd,group,nsswitch.conf,hosts} \
  "$root/etc/ssl/certs/ca-certificates.crt"

# ------------------------------------------------------------------ the image
layer="$work/layer.tar"
# Every path listed, sorted, so the tar is the same for the same files.
(cd "$root" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) |
  tar -C "$root" --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    --no-recursion -cf "$layer" --files-from=-

oci="$work/oci"
ref="$oci:edgepier"
umoci init --layout "$oci"
umoci new --image "$ref"
umoci raw add-layer --image "$ref" --history.created="$created" \
  --history.created_by="scripts/image.sh: edgepier, epctl, their libraries, /etc" "$layer"
umoci config --no-history --image "$ref" \
  --created="$created" --os=linux --architecture="$arch" \
  --config.entrypoint=/usr/bin/edgepier \
  --config.cmd=--config-file=/etc/edgepier/edgepier.ini \
  --config.env=PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  --config.exposedports=5000/tcp --config.exposedports=7946/tcp --config.exposedports=7947/tcp \
  --config.volume=/var/lib/edgepier \
  --config.workingdir=/ \
  --config.label=org.opencontainers.image.title=edgepier \
  --config.label=org.opencontainers.image.version="$version" \
  --config.label=org.opencontainers.image.description="EdgePier peer-to-peer OCI registry node"
umoci gc --layout "$oci"

# The one image in index.json: its manifest's digest.
digest=$(grep -o '"digest":"sha256:[0-9a-f]*"' "$oci/index.json" | head -n1 | cut -d'"' -f4)
[[ -n "$digest" ]] || die "no manifest in $oci/index.json"

skopeo copy --quiet "oci:$ref" "oci-archive:$work/edgepier-image.tar:edgepier:$version"
mkdir -p "$(dirname "$out")"
mv -f "$work/edgepier-image.tar" "$out"

size=$(stat -c %s "$out")
echo "image:  $out (oci-archive, edgepier:$version, linux/$arch)"
echo "size:   $size bytes ($(( (size + 1048575) / 1048576 )) MiB), layer uncompressed $(( $(stat -c %s "$layer") / 1048576 )) MiB"
echo "digest: $digest"
