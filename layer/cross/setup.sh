#!/usr/bin/env bash
# What building and running the arm64 layer on an x86_64 machine needs, installed into a
# cache folder (LAYER_CROSS_CACHE, default .build-cross/; git ignores .build*/):
#
#   setup.sh toolchain   the cross compiler: a Debian sid root (debootstrap --variant=minbase)
#                        with Debian's Swift 6.2.3 (amd64) and the arm64 C libraries, the arm64
#                        Swift runtime extracted from Debian's arm64 swiftlang package, and a
#                        Swift SDK bundle for aarch64-unknown-linux-gnu that points at both
#   setup.sh runner      qemu-aarch64 (trixie's qemu-user package) and arm64 glibc roots
#                        (bookworm's libc6 and libgcc-s1 for the tests, bullseye's for
#                        make test-compat) to run arm64 binaries here
#   setup.sh env         where these are, as shell assignments
#
# Why sid: the host's Swift 6.3.1 has no aarch64 Linux runtime, PyPI has no Swift SDK, and a
# compiler can only import modules built by its own version; Debian sid has swiftlang 6.2.3
# for both amd64 and arm64 (../../CONTRIBUTING.md, "The layer: build, publish, test"). The sid compiler is
# linked against sid's glibc, so it runs in the root (layer/cross/in-root.sh), not on the host.
#
# Every version is pinned below; the .deb files fetched directly are checked by SHA256. The
# mirror is the one apt uses on this machine (LAYER_DEBIAN_MIRROR overrides it); the pinned
# versions are those of the Debian archive of 2026-10-30 (SID_RELEASE_DATE), and sid moving
# on removes them from a live mirror: then use SNAPSHOT_URL.
# Each step is skipped once its stamp file exists; delete the cache folder to start over.
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="${LAYER_CROSS_CACHE:-.build-cross}"
mkdir -p "$CACHE/downloads"
CACHE="$(cd "$CACHE" && pwd)"
case "$CACHE" in
  "$PWD"/*) ;;
  *) echo "error: LAYER_CROSS_CACHE=$CACHE: keep it inside the project (the build sees only the project in the sid root)" >&2; exit 2 ;;
esac

# The pins. The archive they come from (sid's Release date), then the Debian version, pool
# path and SHA256 of each .deb fetched directly.
SID_RELEASE_DATE="Fri, 30 Oct 2026 08:08:01 UTC"
SNAPSHOT_URL="http://snapshot.debian.org/archive/debian/20261030T080801Z"
SWIFT_VERSION=6.2.3-1+b1
DEBOOTSTRAP_DEB="pool/main/d/debootstrap/debootstrap_1.0.141_all.deb 8c02cb8ad712eb67afb0d23fab175c562804cc97eda70b70cb0f3bc2a21732d7"
SWIFT_ARM64_DEB="pool/main/s/swiftlang/swiftlang_${SWIFT_VERSION}_arm64.deb bda5df23d26eec0cc7058924611b42bb27667252a0280fb490e4969dbbd975df"
SWIFT_AMD64_DEB="pool/main/s/swiftlang/swiftlang_${SWIFT_VERSION}_amd64.deb 7a02c790f6d74b0ea59ed315bed674165d9ca5703bb8c85f4aff38611d1b32fd"
QEMU_DEB="pool/main/q/qemu/qemu-user_10.0.13+ds-0+deb13u1_amd64.deb ca6ede739327a20ae5a3498230c8a3a9a072c586e131bc6bcc1201eb1725e336"
GLIBC_ARM64_DEBS=(
  "pool/main/g/glibc/libc6_2.36-9+deb12u14_arm64.deb 01f4330719fd4f65580e16ea5a0527f372fca750e8f588d26deaf09f2d3b1cf4"
  "pool/main/g/gcc-12/libgcc-s1_12.2.0-14+deb12u1_arm64.deb 576926b283613db80168ddf76380a3bd877602778cf0d226caa7bfbfa71eacf3"
)
# An older one for make test-compat ARCH=arm64: bullseye's glibc 2.31.
GLIBC_ARM64_BULLSEYE_DEBS=(
  "pool/main/g/glibc/libc6_2.31-13+deb11u11_arm64.deb baaa9aa184e2f21738c5819055e6740cc5b22f198e3f416e33f82b40ff6933d8"
  "pool/main/g/gcc-10/libgcc-s1_10.2.1-6_arm64.deb e2fcdb378d3c1ad1bcb64d4fb6b37aab44011152beca12a4944f435a2582df1f"
)
# Installed in the sid root with apt (apt checks them against the signed index). libc6-dev
# (amd64) links the build's host programs (Package.swift manifests). The arm64
# C side: headers and crt files (libc6-dev), libgcc.a/libgcc_eh.a (the unwinder linked into
# the layer), libstdc++.a (the Swift runtime's C++ parts) and libz.a.
SID_PACKAGES=(
  "swiftlang=$SWIFT_VERSION" "libswiftlang=$SWIFT_VERSION"
  "libc6-dev=2.43-7" "libc6-dev:arm64=2.43-7" "libgcc-16-dev:arm64=16.2.0-4" "libstdc++-16-dev:arm64=16.2.0-4"
  "zlib1g-dev:arm64=1:1.3.dfsg+really1.3.2-4"
  git python3-minimal
)

SID="$CACHE/sid"
SDK_BUNDLE="$CACHE/swift-sdks/swift-${SWIFT_VERSION%%-*}-debian-aarch64.artifactbundle"
SDK_ID="swift-${SWIFT_VERSION%%-*}-debian_aarch64"
QEMU_DIR="$CACHE/qemu"
GLIBC_ROOT="$CACHE/glibc-arm64-bookworm"
GLIBC_ROOT_BULLSEYE="$CACHE/glibc-arm64-bullseye"

step() { echo "== arm64 setup: $*"; }

# The mirror apt uses here: the first Debian archive (not -security) in its sources.
detect_mirror() {
  local uri
  uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -v '^\s*#' | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -1 | tr -d ' ' || true)"
  echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR="${LAYER_DEBIAN_MIRROR:-$(detect_mirror)}"
MIRROR="${MIRROR%/}"

# download "POOL_PATH SHA256": into downloads/, checked; prints progress every 10 s.
download() {
  local path="${1% *}" sum="${1#* }" file
  file="$CACHE/downloads/$(basename "$path")"
  if [ -f "$file" ] && sha256sum --quiet -c <<<"$sum  $file" 2>/dev/null; then
    echo "$file"
    return
  fi
  local total
  total="$(curl -fsSLI "$MIRROR/$path" | tr -d '\r' | awk 'tolower($1) == "content-length:" { n = $2 } END { print n + 0 }')"
  echo "   fetching $MIRROR/$path ($((total / 1048576)) MB)" >&2
  curl -fsSL -o "$file.partial" "$MIRROR/$path" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 10
    kill -0 "$pid" 2>/dev/null &&
      echo "   ... $(( $(stat -c %s "$file.partial" 2>/dev/null || echo 0) / 1048576 )) of $((total / 1048576)) MB" >&2
  done
  wait "$pid" || { echo "error: download of $MIRROR/$path failed" >&2; exit 1; }
  if ! sha256sum --quiet -c <<<"$sum  $file.partial"; then
    echo "error: $(basename "$path") does not have the pinned SHA256 $sum" >&2
    exit 1
  fi
  mv "$file.partial" "$file"
  echo "$file"
}

# extract DEB DIR [MEMBER...]: dpkg-deb's data, only the members named (tar patterns).
extract() {
  local deb="$1" dir="$2"
  shift 2
  mkdir -p "$dir"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir" --wildcards "$@"
}

toolchain() {
  command -v dpkg-deb curl chroot unshare >/dev/null ||
    { echo "error: the arm64 setup needs dpkg-deb, curl, chroot and unshare" >&2; exit 1; }
  [ "$(id -u)" = 0 ] || { echo "error: the sid root is made and entered as root (debootstrap, chroot)" >&2; exit 1; }
  echo "arm64 cross toolchain in $CACHE (Debian mirror $MIRROR)"

  if [ ! -f "$CACHE/debootstrap/.done" ]; then
    # bookworm's debootstrap is too old for today's sid; trixie's, unpacked, is not.
    step "debootstrap 1.0.141 (trixie)"
    rm -rf "$CACHE/debootstrap"
    local deb
    deb="$(download "$DEBOOTSTRAP_DEB")"
    extract "$deb" "$CACHE/debootstrap" ./usr/sbin/debootstrap './usr/share/debootstrap/*'
    touch "$CACHE/debootstrap/.done"
  fi

  if [ ! -f "$SID/.debootstrap-done" ]; then
    step "Debian sid root, debootstrap --variant=minbase (about 2 min; log: $CACHE/debootstrap.log)"
    rm -rf "$SID"
    local release_date
    release_date="$(curl -fsSL "$MIRROR/dists/sid/Release" | sed -n 's/^Date: //p')"
    echo "   sid Release of $release_date"
    if [ "$release_date" != "$SID_RELEASE_DATE" ]; then
      echo "warning: the pinned versions are those of sid's Release of $SID_RELEASE_DATE; where they are gone," >&2
      echo "  use LAYER_DEBIAN_MIRROR=$SNAPSHOT_URL" >&2
    fi
    # debootstrap's I: lines are its progress: the first of each phase (retrieving,
    # validating, extracting, unpacking, configuring) and how many followed.
    if ! DEBOOTSTRAP_DIR="$CACHE/debootstrap/usr/share/debootstrap" \
        "$CACHE/debootstrap/usr/sbin/debootstrap" --variant=minbase --arch=amd64 sid "$SID" "$MIRROR" \
        2>&1 | tee "$CACHE/debootstrap.log" | awk '
          /^I: / {
            if ($2 != phase) { if (count) printf "   ... and %d more\n", count; print "   " $0; phase = $2; count = 0 }
            else count++
            fflush()
          }'; then
      echo "error: debootstrap failed (log: $CACHE/debootstrap.log)" >&2
      exit 1
    fi
    [ -f "$SID/etc/debian_version" ] || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    # The mirror may be a frozen snapshot whose Release has expired.
    echo 'Acquire::Check-Valid-Until "false";' >"$SID/etc/apt/apt.conf.d/99snapshot"
    echo 'APT::Install-Recommends "false";' >"$SID/etc/apt/apt.conf.d/99no-recommends"
    echo "$release_date" >"$SID/.sid-release-date"
    touch "$SID/.debootstrap-done"
  fi

  if [ ! -f "$SID/.packages-done" ]; then
    step "Swift $SWIFT_VERSION (amd64) and the arm64 C libraries in the sid root (log: $CACHE/apt.log)"
    # The big one through curl (progress); apt takes it from its cache after checking it.
    local deb
    deb="$(download "$SWIFT_AMD64_DEB")"
    cp "$deb" "$SID/var/cache/apt/archives/"
    layer/cross/in-root.sh "$SID" sh -c 'dpkg --add-architecture arm64 && apt-get update -q' >"$CACHE/apt.log" 2>&1 ||
      { tail -20 "$CACHE/apt.log" >&2; exit 1; }
    echo "   apt-get install ${SID_PACKAGES[*]}"
    if ! layer/cross/in-root.sh "$SID" env DEBIAN_FRONTEND=noninteractive apt-get install -y -o Dpkg::Use-Pty=0 \
        "${SID_PACKAGES[@]}" 2>&1 | tee -a "$CACHE/apt.log" | awk '
          # Progress: downloads of a megabyte or more, the total, and the packages asked for
          # as they are set up.
          /^Get:/ && / MB\]$/ || /^Fetched / ||
            /^Setting up (swiftlang|libswiftlang|libc6-dev|libgcc-16-dev|libstdc\+\+-16-dev|zlib1g-dev|git|python3-minimal)[: ]/ {
            print "   " substr($0, 1, 110); fflush()
          }'; then
      echo "error: apt-get install failed (log: $CACHE/apt.log)" >&2
      exit 1
    fi
    layer/cross/in-root.sh "$SID" swift --version 2>&1 | grep -q "Swift version ${SWIFT_VERSION%%-*}" ||
      { echo "error: swift in the sid root is not ${SWIFT_VERSION%%-*}" >&2; tail -20 "$CACHE/apt.log" >&2; exit 1; }
    layer/cross/in-root.sh "$SID" apt-get clean
    rm -f "$CACHE/downloads/$(basename "${SWIFT_AMD64_DEB% *}")"
    touch "$SID/.packages-done"
  fi

  if [ ! -f "$SDK_BUNDLE/.done" ]; then
    step "arm64 Swift runtime from swiftlang_${SWIFT_VERSION}_arm64.deb, Swift SDK bundle $SDK_ID"
    rm -rf "$SDK_BUNDLE"
    local target="$SDK_BUNDLE/$SDK_ID"
    # Only the target's modules and libraries: the arm64 compiler itself is of no use here.
    echo "   extracting usr/libexec/swift/lib/swift{,_static}"
    local deb lib="usr/libexec/swift/lib"
    deb="$(download "$SWIFT_ARM64_DEB")"
    # Not needed: Embedded Swift, compiler plugins and the package manifest API for an arm64
    # host, the ABI baselines (about 770 MB).
    extract "$deb" "$target/runtime" --exclude="./$lib/swift/embedded" --exclude="./$lib/swift/host" \
      --exclude="./$lib/swift/pm" --exclude="./$lib/swift/FrameworkABIBaseline" --exclude="./$lib/swift/migrator" \
      --exclude="./$lib/swift_static/embedded" "./$lib/swift/*" "./$lib/swift_static/*"
    # clang's own headers (stddef.h ...) are the same for every target: the sid root's.
    ln -sfn "/$lib/clang/17" "$target/runtime/$lib/swift/clang"
    ln -sfn "/$lib/clang/17" "$target/runtime/$lib/swift_static/clang"
    rm -f "$CACHE/downloads/$(basename "${SWIFT_ARM64_DEB% *}")"
    write_sdk_bundle "$target"
    touch "$SDK_BUNDLE/.done"
  fi
  echo "arm64 cross toolchain ready: Swift SDK $SDK_ID in $CACHE/swift-sdks"
}

# The bundle (SwiftPM's Swift SDK format, schema 4.0). The sysroot holds links into the sid
# root's arm64 multiarch folders (absolute: they resolve inside the root, where swift runs)
# and into the extracted runtime, which is also the Swift resource folder.
write_sdk_bundle() {
  local target="$1" lib="runtime/usr/libexec/swift/lib"
  local sysroot="$target/sysroot"
  mkdir -p "$sysroot/usr/lib" "$sysroot/lib"
  ln -sfn /usr/include "$sysroot/usr/include"
  ln -sfn /usr/lib/aarch64-linux-gnu "$sysroot/usr/lib/aarch64-linux-gnu"
  ln -sfn /usr/lib/aarch64-linux-gnu "$sysroot/lib/aarch64-linux-gnu"
  ln -sfn /usr/lib/gcc "$sysroot/usr/lib/gcc"
  ln -sfn /usr/lib/ld-linux-aarch64.so.1 "$sysroot/lib/ld-linux-aarch64.so.1"
  ln -sfn "../../../$lib/swift" "$sysroot/usr/lib/swift"
  ln -sfn "../../../$lib/swift_static" "$sysroot/usr/lib/swift_static"
  cat >"$SDK_BUNDLE/info.json" <<JSON
{
  "schemaVersion": "1.0",
  "artifacts": {
    "$SDK_ID": {
      "type": "swiftSDK",
      "version": "${SWIFT_VERSION}",
      "variants": [{ "path": "$SDK_ID", "supportedTriples": ["x86_64-unknown-linux-gnu", "x86_64-pc-linux-gnu"] }]
    }
  }
}
JSON
  cat >"$target/swift-sdk.json" <<JSON
{
  "schemaVersion": "4.0",
  "targetTriples": {
    "aarch64-unknown-linux-gnu": {
      "sdkRootPath": "sysroot",
      "swiftResourcesPath": "$lib/swift",
      "swiftStaticResourcesPath": "$lib/swift_static",
      "toolsetPaths": ["toolset.json"]
    }
  }
}
JSON
  cat >"$target/toolset.json" <<JSON
{
  "schemaVersion": "1.0",
  "swiftCompiler": { "extraCLIOptions": ["-use-ld=lld"] }
}
JSON
}

# glibc_root DIR DESCRIPTION DEB...: the packages unpacked into DIR, a root for qemu -L.
glibc_root() {
  local dir="$1" description="$2" entry deb
  shift 2
  [ -f "$dir/.done" ] && return
  step "arm64 glibc root for qemu: $description"
  rm -rf "$dir"
  for entry in "$@"; do
    deb="$(download "$entry")"
    extract "$deb" "$dir" '*'
  done
  touch "$dir/.done"
}

runner() {
  command -v dpkg-deb curl >/dev/null || { echo "error: the arm64 runner setup needs dpkg-deb and curl" >&2; exit 1; }
  if [ ! -x "$QEMU_DIR/qemu-aarch64" ]; then
    step "qemu-aarch64 10.0.13 (trixie's qemu-user, unpacked; a static-pie binary)"
    local scratch="$CACHE/qemu.partial"
    rm -rf "$scratch"
    local deb
    deb="$(download "$QEMU_DEB")"
    extract "$deb" "$scratch" ./usr/bin/qemu-aarch64
    mkdir -p "$QEMU_DIR"
    mv "$scratch/usr/bin/qemu-aarch64" "$QEMU_DIR/qemu-aarch64"
    rm -rf "$scratch" "$CACHE/downloads/$(basename "${QEMU_DEB% *}")"
  fi
  # Without libgcc_s, glibc aborts at thread exit (pthread_exit unwinds with it); every
  # Lambda image has it.
  glibc_root "$GLIBC_ROOT" "bookworm's libc6 2.36 and libgcc-s1" "${GLIBC_ARM64_DEBS[@]}"
  glibc_root "$GLIBC_ROOT_BULLSEYE" "bullseye's libc6 2.31 and libgcc-s1 (make test-compat)" \
    "${GLIBC_ARM64_BULLSEYE_DEBS[@]}"
  echo "arm64 runner ready: $QEMU_DIR/qemu-aarch64 -L $GLIBC_ROOT"
}

# Where things are, as shell assignments (for eval) for the build and the tests.
paths() {
  printf 'CROSS_SID=%q\nCROSS_SDKS=%q\nCROSS_SDK_ID=%q\nCROSS_SWIFT_VERSION=%q\nCROSS_QEMU=%q\nCROSS_GLIBC_ROOT=%q\nCROSS_GLIBC_ROOT_BULLSEYE=%q\n' \
    "$SID" "$CACHE/swift-sdks" "$SDK_ID" "${SWIFT_VERSION%%-*}" "$QEMU_DIR/qemu-aarch64" "$GLIBC_ROOT" "$GLIBC_ROOT_BULLSEYE"
}

case "${1:-}" in
  toolchain) toolchain ;;
  runner) runner ;;
  env) paths ;;
  *) echo "usage: layer/cross/setup.sh toolchain|runner|env" >&2; exit 2 ;;
esac
