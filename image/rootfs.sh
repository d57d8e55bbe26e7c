#!/usr/bin/env bash
# Assembles the image's root filesystem in image/rootfs: the release binary (stripped), nft, conntrackd,
# the shared libraries they link (as `ldd` names them, from this build machine, so binary and libc
# always match), /etc/passwd and /etc/group with root and nobody, and an empty /tmp. No shell,
# no package manager: the Dockerfile copies this tree onto `scratch`.
#
#   bash image/rootfs.sh [BINARY]    # default: builds target/release/kube-vrrp
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --release --locked --bin kube-vrrp
  bin=target/release/kube-vrrp
fi
root=image/rootfs
rm -rf "$root"
mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$bin" "$root/usr/local/bin/kube-vrrp"
strip "$root/usr/local/bin/kube-vrrp"
# Every library the dynamic loader resolves, and the loader itself, at the same paths.
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# nft (nftables), which the agent runs to program virtual servers (`nft -f -`), and conntrackd
# (conntrack-tools), which it runs with --sync-connections: separate programs (GPL-2.0) shipped
# beside ours, not linked; with the libraries they link.
mkdir -p "$root/usr/sbin"
for prog in nft conntrackd; do
  path=$(command -v "$prog" || echo "/usr/sbin/$prog")
  [ -x "$path" ] || { echo "$prog missing: install it (bash .ci/deps)"; exit 1; }
  cp -L "$path" "$root/usr/sbin/$prog"
  for lib in $(ldd "$path" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
printf 'root:x:0:0:root:/:/nonexistent\nnobody:x:65534:65534:nobody:/:/nonexistent\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
echo "image/rootfs: $(du -sh "$root" | cut -f1)"
