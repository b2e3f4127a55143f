#!/usr/bin/env bash
# make layer: the extension as a Lambda layer zip, dist/pyroscope-lambda-extension-ARCH.zip,
# holding extensions/pyroscope-lambda-extension (Lambda starts every executable in
# /opt/extensions). Usage: layer/build.sh ARCH PYTHON   (ARCH: x86_64 | arm64)
#
# x86_64 on an x86_64 host: swift build as usual (Swift runtime linked statically), but
# the final link goes through layer/toolchain/clang, i.e. zig cc against glibc 2.26 with
# libstdc++, libunwind and zlib linked in. Other architectures: a Swift SDK for them.
set -euo pipefail
cd "$(dirname "$0")/.."

ARCH="${1:-x86_64}"
PYTHON="${2:-python3}"
PRODUCT=pyroscope-lambda-extension
MAX_GLIBC=2.26
SWIFT="${SWIFT:-swift}"

case "$ARCH" in
  x86_64 | amd64) ARCH=x86_64 ;;
  arm64 | aarch64) ARCH=arm64 ;;
  *) echo "error: ARCH=$ARCH: use x86_64 or arm64" >&2; exit 2 ;;
esac
case "$(uname -m)" in
  x86_64) HOST=x86_64 ;;
  aarch64 | arm64) HOST=arm64 ;;
  *) HOST="$(uname -m)" ;;
esac

STAGE="dist/$ARCH"
ZIP="dist/$PRODUCT-$ARCH.zip"
rm -rf "$STAGE" "$ZIP"
mkdir -p "$STAGE/extensions" .build

if [ "$ARCH" = "$HOST" ]; then
  # The static archives replacing shared libraries outside glibc (g++ and zlib1g-dev).
  libstdcxx="$(gcc -print-file-name=libstdc++.a)"
  libz="$(gcc -print-file-name=libz.a)"
  for archive in "$libstdcxx" "$libz"; do
    [ -f "$archive" ] || { echo "error: $(basename "$archive") not found: install g++ and zlib1g-dev" >&2; exit 1; }
  done
  zig_arch=$([ "$ARCH" = arm64 ] && echo aarch64 || echo x86_64)
  export LAYER_ZIG="$PYTHON -m ziglang"
  export LAYER_ZIG_TARGET="$zig_arch-linux-gnu.$MAX_GLIBC"
  export LAYER_STATIC_LIBS="stdc++=$libstdcxx,-lunwind z=$libz"
  # The link is redone on every call: the same output path may hold a normally linked
  # binary from another `swift build -c release`, which swift build would call up to date.
  bin_path="$("$SWIFT" build -c release --show-bin-path)"
  rm -f "$bin_path/$PRODUCT"
  echo "swift build -c release --static-swift-stdlib (link: zig cc -target $LAYER_ZIG_TARGET; log: .build/layer-$ARCH.log)"
  if ! SWIFT_DRIVER_CLANG_EXEC="$PWD/layer/toolchain/clang" \
      "$SWIFT" build -c release --static-swift-stdlib --product "$PRODUCT" >".build/layer-$ARCH.log" 2>&1; then
    tail -40 ".build/layer-$ARCH.log" >&2
    echo "error: the release build failed (full log: .build/layer-$ARCH.log)" >&2
    exit 1
  fi
  built="$bin_path/$PRODUCT"
else
  # Cross builds need a Swift SDK for the target; the Static Linux SDK (musl) gives a
  # fully static binary, which needs no glibc at all.
  sdks="$("$SWIFT" sdk list 2>&1 || true)"
  if [ -z "$sdks" ] || grep -qi "no swift sdks" <<<"$sdks"; then
    cat >&2 <<MSG
error: ARCH=$ARCH needs a Swift SDK for $ARCH Linux, and \`swift sdk list\` shows none.
Install the Swift Static Linux SDK for this toolchain ($("$SWIFT" --version 2>/dev/null | head -1)):
  swift sdk install <URL of swift-<version>-RELEASE_static-linux-<n>.artifactbundle.tar.gz> --checksum <sha256>
(the URL and checksum are on swift.org, Install > Static Linux SDK), or build on an arm64
machine (Graviton), where \`make layer ARCH=arm64\` takes the native path.
Then: make layer ARCH=$ARCH [SWIFT_SDK=<id or triple from swift sdk list>]
MSG
    exit 2
  fi
  sdk="${SWIFT_SDK:-aarch64-swift-linux-musl}"
  echo "swift build -c release --swift-sdk $sdk (log: .build/layer-$ARCH.log)"
  if ! "$SWIFT" build -c release --swift-sdk "$sdk" --static-swift-stdlib --product "$PRODUCT" \
      >".build/layer-$ARCH.log" 2>&1; then
    tail -40 ".build/layer-$ARCH.log" >&2
    echo "error: the cross build with SDK $sdk failed (full log: .build/layer-$ARCH.log)" >&2
    exit 1
  fi
  built="$("$SWIFT" build -c release --swift-sdk "$sdk" --show-bin-path)/$PRODUCT"
fi

# Debug info goes; the symbol table (.symtab) stays, for self-profiling's symbolization.
binary="$STAGE/extensions/$PRODUCT"
strip --strip-debug -o "$binary" "$built"
chmod 0755 "$binary"

echo "checking $binary against glibc $MAX_GLIBC:"
"$PYTHON" layer/check_binary.py --max-glibc "$MAX_GLIBC" "$binary"

(cd "$STAGE" && zip -q -X -r "../$(basename "$ZIP")" extensions)

# The same without .symtab, measured only: what self-profiling costs in size.
nosym="$(mktemp)"
nosym_dir="$(mktemp -d)"
trap 'rm -rf "$nosym" "$nosym_dir"' EXIT
strip --strip-all -o "$nosym" "$binary"
mkdir -p "$nosym_dir/extensions" && cp "$nosym" "$nosym_dir/extensions/$PRODUCT"
(cd "$nosym_dir" && zip -q -X -r layer.zip extensions)
size() { stat -c %s "$1" | awk '{printf "%.1f MB (%d bytes)", $1 / 1048576, $1}'; }
echo "built $ZIP ($ARCH):"
echo "  binary with .symtab:    $(size "$binary")   (unstripped: $(size "$built"))"
echo "  binary without .symtab: $(size "$nosym")"
echo "  zip:                    $(size "$ZIP")   (without .symtab: $(size "$nosym_dir/layer.zip"))"
