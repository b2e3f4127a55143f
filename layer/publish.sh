#!/usr/bin/env bash
# make publish-layer: publish a layer zip with the AWS CLI, one layer version per region.
# Usage: layer/publish.sh ZIP, with the environment:
#   LAYER_NAME  layer name (default pyroscope-lambda-extension-ARCH)
#   REGIONS     space-separated regions (default: us-east-1)
#   ARCH        x86_64 | arm64, the layer's compatible architecture (default x86_64)
#   PUBLIC=1    also grant lambda:GetLayerVersion to every AWS account
#   DRY_RUN=1   print each aws command instead of running it (needs neither aws nor credentials)
# The CLI takes credentials and AWS_ENDPOINT_URL (an emulator, in the tests) from the
# environment as usual. Prints each published version's ARN.
set -euo pipefail

ZIP="${1:?usage: layer/publish.sh ZIP}"
ARCH="${ARCH:-x86_64}"
LAYER_NAME="${LAYER_NAME:-pyroscope-lambda-extension-$ARCH}"
REGIONS="${REGIONS:-us-east-1}"
DESCRIPTION="${DESCRIPTION:-Pyroscope Lambda extension (Swift): relays profile uploads from localhost:4040}"

case "$ARCH" in
  x86_64 | arm64) ;;
  *) echo "error: ARCH=$ARCH: use x86_64 or arm64" >&2; exit 2 ;;
esac
case "$ZIP" in
  *"$ARCH"*) ;;
  *) echo "error: $ZIP does not name ARCH=$ARCH: publish the zip built for that architecture" >&2; exit 2 ;;
esac
if [ ! -f "$ZIP" ]; then
  echo "error: $ZIP not found: run make layer ARCH=$ARCH first" >&2
  exit 1
fi
if [ -z "${DRY_RUN:-}" ] && ! command -v aws >/dev/null; then
  echo "error: aws (the AWS CLI) not found: make publish-layer installs it in .venv-layer" >&2
  exit 1
fi

# A command as a shell line (single quotes where needed), for the dry run.
show() {
  local line="+" word
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_./:=,@+-]+$ ]]; then line+=" $word"; else line+=" '${word//\'/\'\\\'\'}'"; fi
  done
  echo "$line"
}

for region in $REGIONS; do
  publish=(aws lambda publish-layer-version --region "$region" --layer-name "$LAYER_NAME"
    --description "$DESCRIPTION" --zip-file "fileb://$ZIP" --compatible-architectures "$ARCH"
    --query '[LayerVersionArn,Version]' --output text)
  if [ -n "${DRY_RUN:-}" ]; then
    show "${publish[@]}"
    version='<version>'
    arn="arn:aws:lambda:$region:<account>:layer:$LAYER_NAME:<version>"
  else
    read -r arn version < <("${publish[@]}")
    [ -n "$version" ] || { echo "error: publish-layer-version in $region returned no version" >&2; exit 1; }
  fi
  if [ -n "${PUBLIC:-}" ] && [ "${PUBLIC}" != 0 ]; then
    permission=(aws lambda add-layer-version-permission --region "$region" --layer-name "$LAYER_NAME"
      --version-number "$version" --statement-id public --action lambda:GetLayerVersion
      --principal '*' --output text --query Statement)
    if [ -n "${DRY_RUN:-}" ]; then
      show "${permission[@]}"
    else
      "${permission[@]}" >/dev/null
    fi
  fi
  echo "$region: $arn"
done
