#!/usr/bin/env bash
# Link promtool and prometheus (Debian's `prometheus` package, 2.42) into .tools/bin of this checkout.
#
# The alert unit tests run `promtool test rules`; the alert benchmark runs a real Prometheus server
# against a sandbox's operator. Both binaries only need libc. Where they are installed already (apt-get
# install prometheus), they are linked; otherwise the package is downloaded with apt-get and unpacked
# into a cache outside the repository, keyed by its version: no root, and no system service started
# (installing the package would start one listening on :9090 where systemd runs).
set -euo pipefail
CACHE_ROOT=${PHALANX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phalanx}
BIN=${TOOLS_BIN:-$(pwd)/.tools/bin}
mkdir -p "$BIN"
say() { printf '[fetch-prometheus] %s\n' "$*" >&2; }

if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
  ln -sf "$(command -v promtool)" "$BIN/promtool"
  ln -sf "$(command -v prometheus)" "$BIN/prometheus"
  say "promtool, prometheus (installed) in $BIN"
  exit 0
fi

version=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  say "no candidate for Debian's prometheus package (run apt-get update?): the alert tests will be skipped"
  exit 0
fi
dest=$CACHE_ROOT/tools/prometheus-$version
if [ ! -x "$dest/promtool" ] || [ ! -x "$dest/prometheus" ]; then
  say "downloading Debian's prometheus=$version"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download -q "prometheus=$version" >/dev/null 2>&1) || {
    say "apt-get download prometheus=$version failed: the alert tests will be skipped"
    exit 0
  }
  dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
  mkdir -p "$CACHE_ROOT/tools"
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  cp "$work/root/usr/bin/promtool" "$work/root/usr/bin/prometheus" "$dest.tmp/"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
fi
ln -sf "$dest/promtool" "$BIN/promtool"
ln -sf "$dest/prometheus" "$BIN/prometheus"
say "promtool, prometheus $version in $BIN"
