#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2 from Debian's source
# package and cache the binaries outside the repository, keyed by version.
#
# Why from source: no registry ships these binaries and no container engine runs here; Debian's
# orig tarball is the complete upstream tree with vendor/. A second run finds the cache and returns
# at once. A failure names its step and leaves no half-written cache (the cache is filled through a
# temporary directory renamed into place only when every binary is there).
set -euo pipefail

VERSION=v1.20.2
DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
CACHE_ROOT=${PHALANX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phalanx}
DEST=$CACHE_ROOT/kubernetes-$VERSION
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)

step() { STEP="$1"; printf '[build-kubernetes] %s\n' "$1"; }
trap 'rc=$?; [ $rc -eq 0 ] || printf "[build-kubernetes] FAILED at step: %s (exit %s)\n" "${STEP:-start}" "$rc" >&2' EXIT

have_cache() { for b in "${BINARIES[@]}"; do [ -x "$DEST/$b" ] || return 1; done; }
if have_cache; then
  echo "[build-kubernetes] cached: $DEST"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

WORK=$(mktemp -d "${TMPDIR:-/tmp}/phalanx-kube-build.XXXXXX")
STAGE=""
cleanup() { rm -rf "$WORK"; [ -z "$STAGE" ] || rm -rf "$STAGE"; }
trap 'rc=$?; cleanup; [ $rc -eq 0 ] || printf "[build-kubernetes] FAILED at step: %s (exit %s)\n" "${STEP:-start}" "$rc" >&2' EXIT

step "install toolchain (golang-go, reflect2 1.0.2, make, rsync, dpkg-dev)"
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] \
   || ! command -v rsync >/dev/null || ! command -v dpkg-source >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    golang-go golang-github-modern-go-reflect2-dev make rsync dpkg-dev >/dev/null
fi

step "download Debian source package kubernetes=$DEB_VERSION"
APT=$WORK/apt
mkdir -p "$APT/sources" "$APT/lists/partial" "$APT/cache/archives/partial"
sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$APT/sources/debian-src.sources"
APT_OPTS=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$APT/sources"
          -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache")
apt-get "${APT_OPTS[@]}" update -qq
(cd "$WORK" && apt-get "${APT_OPTS[@]}" source --download-only "kubernetes=$DEB_VERSION" >/dev/null)

step "unpack upstream tree"
ORIG=$(ls "$WORK"/kubernetes_*.orig.tar.gz)
mkdir -p "$WORK/src"
tar -xzf "$ORIG" -C "$WORK/src" --strip-components=1

step "replace vendored reflect2 1.0.1 with Debian's 1.0.2 (memory corruption on Go >= 1.18)"
R2=$WORK/src/vendor/github.com/modern-go/reflect2
rm -f "$R2"/*.go "$R2"/*.s
for f in /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/modern-go/reflect2/*.s; do
  [ -e "$f" ] || continue
  case "$f" in *_test.go) continue ;; esac
  cp "$f" "$R2/"
done

step "go build (about 5 minutes on 2 cores)"
(
  cd "$WORK/src"
  export KUBE_GIT_VERSION=$VERSION KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean \
         KUBE_GIT_COMMIT=faecb196815e248d3ecfb03c680a4507229c2a56 GOFLAGS= GOLDFLAGS="-s -w"
  # A heartbeat so that a long quiet build is visibly alive.
  ( while sleep 30; do echo "[build-kubernetes] ... still building ($(date +%T))"; done ) &
  beat=$!
  trap 'kill $beat 2>/dev/null || true' EXIT
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler"
)

step "install into cache $DEST"
mkdir -p "$CACHE_ROOT"
STAGE=$(mktemp -d "$CACHE_ROOT/.kubernetes-$VERSION.XXXXXX")
for b in "${BINARIES[@]}"; do cp "$WORK/src/_output/local/go/bin/$b" "$STAGE/$b"; done
"$STAGE/kube-apiserver" --version
rm -rf "$DEST"
mv "$STAGE" "$DEST"
STAGE=""
step "done"
echo "[build-kubernetes] built: $DEST"
