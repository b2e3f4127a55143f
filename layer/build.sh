#!/usr/bin/env bash
# make layer: the extension as a Lambda layer zip, dist/pyroscope-lambda-extension-ARCH.zip,
# holding extensions/pyroscope-lambda-extension (Lambda starts every executable in
# /opt/extensions). Usage: layer/build.sh ARCH PYTHON   (ARCH: x86_64 | arm64)
#
# Native (x86_64 here, or arm64 on an arm64 machine): swift build as usual (Swift runtime
# linked statically), but the final link goes through layer/toolchain/clang, which links a
# static executable: glibc, libstdc++, libgcc's unwinder and zlib inside, no shared library,
# so it runs beside any runtime image's glibc (Amazon Linux 2's 2.26 included) and skips the
# dynamic loader's work at every start.
# arm64 on x86_64: the same with Debian sid's Swift 6.2.3 as cross compiler, run inside a sid
# root with a Swift SDK bundle for aarch64 (layer/cross/setup.sh installs both into
# .build-cross/; the build's own folder is .build-arm64/).
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
LOG=".build/layer-$ARCH.log"

# swift build with its output in $LOG; on the terminal, one line per tenth of the build's
# steps and the last lines when it fails.
run_build() {
  local started=$SECONDS
  if ! "$@" 2>&1 | tee "$LOG" | awk '
      match($0, /^\[[0-9]+\/[0-9]+\]/) {
        split(substr($0, 2, RLENGTH - 2), step, "/")
        tenth = int(10 * step[1] / step[2])
        if (tenth > shown) { shown = tenth; printf "   %s\n", substr($0, 1, 100); fflush() }
      }
      /^Build (complete|of product)/ { print "   " $0; fflush() }'; then
    tail -40 "$LOG" >&2
    echo "error: the release build failed (full log: $LOG)" >&2
    exit 1
  fi
  echo "   $((SECONDS - started)) s"
}

# Every module, the dependencies' too, gets direct metadata accessors for the generic types
# its code names (Array<Upload>, a task group's child type), instead of finding their
# metadata from mangled names: the runtime demangles each of those at first use and checks
# its generic requirements, and every conformance it has not seen yet is a scan of all of
# the binary's ~2,900 conformance records. Before the first /event/next that was 3.0 of
# 6.5 million instructions (callgrind); a SHUTDOWN-only life takes 0.7 ms less CPU
# (CONTRIBUTING "What it costs the function"), for 0.1 MB more binary. make passes the
# Makefile's RELEASE_FLAGS (make bench's release builds use them too: one build cache).
read -r -a RELEASE_FLAGS <<<"${SWIFT_RELEASE_FLAGS:--Xswiftc -Xfrontend -Xswiftc -disable-concrete-type-metadata-mangled-name-accessors}"

# The Swift toolchain's LLVM tools read both architectures (the host's binutils cannot
# read aarch64 files): they strip the built binary below.
llvm_bin="$(dirname "$(readlink -f "$(command -v "$SWIFT")")")"
for tool in llvm-nm llvm-objcopy; do
  [ -x "$llvm_bin/$tool" ] || { echo "error: $llvm_bin/$tool not found ($tool of the Swift toolchain)" >&2; exit 1; }
done

if [ "$ARCH" = "$HOST" ]; then
  # A static executable (layer/toolchain/clang): the build machine's
  # static glibc, libstdc++, libgcc's unwinder and zlib (libc6-dev, g++, zlib1g-dev).
  for archive in libc.a libstdc++.a libz.a libgcc_eh.a crtbegin.o; do
    [ -f "$(gcc -print-file-name=$archive)" ] || { echo "error: $archive not found: install libc6-dev, g++ and zlib1g-dev" >&2; exit 1; }
  done
  export LAYER_PRODUCT="$PRODUCT"
  # The link is redone on every call: the same output path may hold a normally linked
  # binary from another `swift build -c release`, which swift build would call up to date.
  bin_path="$("$SWIFT" build -c release "${RELEASE_FLAGS[@]}" --show-bin-path)"
  rm -f "$bin_path/$PRODUCT"
  echo "== swift build -c release --static-swift-stdlib (linked as a static executable: layer/toolchain/clang; log: $LOG)"
  SWIFT_DRIVER_CLANG_EXEC="$PWD/layer/toolchain/clang" \
    run_build "$SWIFT" build -c release "${RELEASE_FLAGS[@]}" --static-swift-stdlib --product "$PRODUCT"
  built="$bin_path/$PRODUCT"
elif [ "$ARCH" = arm64 ] && [ "$HOST" = x86_64 ]; then
  layer/cross/setup.sh toolchain
  eval "$(layer/cross/setup.sh env)"
  # A static executable as on x86_64, from the sid root's arm64 archives: glibc 2.43's
  # libc.a, GCC 16's libstdc++ and libgcc's unwinder (libgcc_eh: zig's libunwind crashed
  # unwinding through qemu's signal frame, libgcc's does not; README "Self-profiling"), zlib.
  # .build-arm64 holds this build only: an up-to-date binary there is the layer's, unless
  # the link itself (layer/toolchain) changed since.
  built=".build-arm64/aarch64-unknown-linux-gnu/release/$PRODUCT"
  if [ -f "$built" ] && [ -n "$(find layer/toolchain -newer "$built" -type f)" ]; then rm -f "$built"; fi
  echo "== swift build -c release --swift-sdk $CROSS_SDK_ID --static-swift-stdlib, Swift $CROSS_SWIFT_VERSION in the sid root (linked as a static executable; log: $LOG)"
  run_build layer/cross/in-root.sh "$CROSS_SID" env SWIFT_DRIVER_CLANG_EXEC="$PWD/layer/toolchain/clang" \
    LAYER_PRODUCT="$PRODUCT" LAYER_HOST_CLANG=/usr/libexec/swift/bin/clang \
    swift build -c release "${RELEASE_FLAGS[@]}" --scratch-path .build-arm64 --swift-sdks-path "$CROSS_SDKS" \
    --swift-sdk "$CROSS_SDK_ID" --static-swift-stdlib --product "$PRODUCT"
else
  echo "error: ARCH=$ARCH on a $HOST machine: build on $ARCH, or arm64 on x86_64" >&2
  exit 2
fi

# Debug info goes; of the symbol table (.symtab) the code symbols stay, for self-profiling's
# symbolization (it reads function symbols only). The data symbols (69,000 of 180,000 on
# x86_64) went: 5.5 MB less binary on disk, 0.26 MB less zip. So do the functions under 32
# bytes (thunks, outlined copies, witness accessors: 33,000 of 62,000 code symbols, half the
# names): 0.5 MB less zip. A sample in one is named by module and offset, as in any
# unnamed code, and they are rarely where time goes: they call on at once.
binary="$STAGE/extensions/$PRODUCT"
code_symbols="$(mktemp)"
"$llvm_bin/llvm-nm" --defined-only --print-size "$built" | awk 'NF == 4 && $3 ~ /^[tTwWi]$/ && length($2) > 0 {
    size = 0; hex = tolower($2)
    for (i = 1; i <= length(hex); i++) size = size * 16 + index("0123456789abcdef", substr(hex, i, 1)) - 1
    if (size >= 32) print $4 }' | sort -u >"$code_symbols"
"$llvm_bin/llvm-objcopy" --strip-all --keep-symbols="$code_symbols" "$built" "$binary"
rm -f "$code_symbols"
chmod 0755 "$binary"

echo "checking $binary ($ARCH, glibc $MAX_GLIBC):"
# The cost checks (issue 22): nothing of async-http-client, Foundation or the regex library
# linked again, and the conformance records every start-up lookup scans under a ceiling
# (3,134 on x86_64 when it was set; 6,392 with async-http-client).
"$PYTHON" layer/check_binary.py --arch "$ARCH" --max-glibc "$MAX_GLIBC" --forbid-modules --max-conformances 3400 \
  --require-static "$binary"

(cd "$STAGE" && zip -q -X -r "../$(basename "$ZIP")" extensions)
# The same zip with its deflate streams redone by 7-Zip's deflater (advancecomp's advzip):
# any unzip reads it, Lambda's included, and it is 0.27 MB (4 %) smaller on x86_64 for about
# 30 s of one core per build. The layer is downloaded into every new execution environment.
command -v advzip >/dev/null || { echo "error: advzip not found: install advancecomp (make layer-tools)" >&2; exit 1; }
advzip -z -3 -q "$ZIP"

# The same without .symtab, measured only: what self-profiling costs in size.
nosym="$(mktemp)"
nosym_dir="$(mktemp -d)"
trap 'rm -rf "$nosym" "$nosym_dir"' EXIT
"$llvm_bin/llvm-objcopy" --strip-all "$binary" "$nosym"
mkdir -p "$nosym_dir/extensions" && cp "$nosym" "$nosym_dir/extensions/$PRODUCT"
(cd "$nosym_dir" && zip -q -X -r layer.zip extensions)
size() { stat -c %s "$1" | awk '{printf "%.1f MB (%d bytes)", $1 / 1048576, $1}'; }
echo "built $ZIP ($ARCH):"
echo "  binary with .symtab:    $(size "$binary")   (unstripped: $(size "$built"))"
echo "  binary without .symtab: $(size "$nosym")"
echo "  zip:                    $(size "$ZIP")   (without .symtab: $(size "$nosym_dir/layer.zip"))"
