#!/usr/bin/env bash
# Run a command inside the sid root (layer/cross/setup.sh), as root, in a private mount
# namespace: /proc, /dev and /tmp are mounted, and this project is mounted at its own path,
# so paths are the same inside and out. The mounts go away with the command.
# The Swift packages: when git reads github.com from a local folder (url.*.insteadOf in the
# system git config), that folder is mounted too and the same rule set in the root.
# Usage: layer/cross/in-root.sh ROOT COMMAND [ARGUMENTS...]   (the working folder is kept)
set -euo pipefail

ROOT="$(cd "${1:?usage: in-root.sh ROOT COMMAND...}" && pwd)"
shift
PROJECT="$(cd "$(dirname "$0")/../.." && pwd)"

cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

# The system git config's url rules, copied into the root; their local folders mounted.
mirrors=()
: >"$ROOT/etc/gitconfig"
while read -r key value; do
  git config --file "$ROOT/etc/gitconfig" --add "$key" "$value"
  folder="${key#url.}"
  folder="${folder%.insteadof}"
  [ -d "$folder" ] && mirrors+=("$folder")
done < <(git config --system --get-regexp '^url\..*\.insteadof$' 2>/dev/null || true)
git config --file "$ROOT/etc/gitconfig" --add safe.directory '*'

mounts='mount -t proc proc "$R/proc" && mount --rbind /dev "$R/dev" && mount -t tmpfs tmpfs "$R/tmp"'
mounts+=' && mkdir -p "$R$P" && mount --bind "$P" "$R$P"'
for folder in $(printf '%s\n' "${mirrors[@]}" | sort -u); do
  mounts+=" && mkdir -p \"\$R$folder\" && mount --bind -o ro \"$folder\" \"\$R$folder\""
done
# The working folder, when it is inside the project, is kept.
case "$PWD/" in "$PROJECT"/*) workdir="$PWD" ;; *) workdir=/ ;; esac

exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  TERM="${TERM:-dumb}" R="$ROOT" P="$PROJECT" W="$workdir" \
  "$(command -v unshare)" --mount --propagation private /bin/sh -c \
  "$mounts && exec chroot \"\$R\" /bin/sh -c 'cd \"\$0\" && exec \"\$@\"' \"\$W\" \"\$@\"" sh "$@"
