#!/usr/bin/env bash
# Builds a real kube-apiserver and kube-controller-manager (Kubernetes 1.20.2) from Debian's
# archive alone, for the real-control-plane stage of tests/run.sh (docs/testing.md):
#   - Debian's `kubernetes` source package of bookworm (upstream tree with vendor/), fetched with
#     `apt-get source` through a private apt configuration (the system's sources stay untouched),
#   - Debian's Go (golang-go, 1.19) in GOPATH mode, as 1.20's own scripts build,
#   - two fixes: the vendored modern-go/reflect2 1.0.1 crashes under Go >= 1.18 ("fatal error:
#     fault" in UnsafeIterate on the first custom-resource write), so it is replaced by Debian's
#     1.0.2 sources; and pkg/generated/openapi/zz_generated.openapi.go, which the source package
#     lacks, is generated with the vendored openapi-gen as 1.20's Makefile.generated_files does.
# etcd comes from Debian's etcd-server package (3.4).
#
# The binaries are cached in ${XDG_CACHE_HOME:-$HOME/.cache}/keyway/kube-1.20.2/bin with the Go
# build cache beside them, so a kept machine skips this (a second run prints "cached" and exits);
# the first build takes about 7-10 minutes on two idle cores. It runs at low priority (nice 19,
# one package at a time) so that it shares the machine politely.
#
# Usage: bash tests/controlplane/build.sh     (prints the bin directory on its last line)
set -euo pipefail

# The Debian source package version; bump RECIPE when this script changes what it builds.
KUBE_DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
KUBE_VERSION="v1.20.2"
RECIPE=2

cache="${XDG_CACHE_HOME:-$HOME/.cache}/keyway/kube-1.20.2"
bin="$cache/bin"
stamp="$bin/.recipe"
if [[ -x "$bin/kube-apiserver" && -x "$bin/kube-controller-manager" && -f "$stamp" ]] &&
  [[ "$(cat "$stamp")" == "$KUBE_DEB_VERSION recipe $RECIPE" ]]; then
  echo "kube-apiserver $KUBE_VERSION: cached"
  echo "$bin"
  exit 0
fi

need_apt=()
for pkg in golang-go etcd-server golang-github-modern-go-reflect2-dev dpkg-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  echo "controlplane: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

started=$SECONDS
mkdir -p "$cache"

# 1. The source package, through a private apt configuration with deb-src entries derived from
#    the machine's own deb822 sources (same archive, same suites).
aptdir="$cache/apt"
src="$cache/src"
dsc="$src/kubernetes_${KUBE_DEB_VERSION}.dsc"
if [[ ! -f "$dsc" ]]; then
  rm -rf "$aptdir"
  mkdir -p "$aptdir/sources.list.d" "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$src"
  if ! compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    echo "controlplane: no deb822 sources in /etc/apt/sources.list.d to derive deb-src from" >&2
    exit 1
  fi
  cat /etc/apt/sources.list.d/*.sources | sed 's/^Types: deb$/Types: deb-src/' \
    >"$aptdir/sources.list.d/keyway-src.sources"
  apt_opts=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$aptdir/sources.list.d"
    -o "Dir::State::Lists=$aptdir/lists"
    -o "Dir::Cache=$aptdir/cache"
    -o "APT::Sandbox::User=root"
  )
  echo "controlplane: apt-get source kubernetes=$KUBE_DEB_VERSION"
  apt-get "${apt_opts[@]}" update -qq
  (cd "$src" && apt-get "${apt_opts[@]}" source --download-only -qq "kubernetes=$KUBE_DEB_VERSION")
fi

# 2. The tree in a GOPATH, as 1.20 builds (GO111MODULE=off): $GOPATH/src/k8s.io/kubernetes.
work="$cache/work"
rm -rf "$work"
gopath="$work/gopath"
tree="$gopath/src/k8s.io/kubernetes"
mkdir -p "$(dirname "$tree")"
echo "controlplane: unpacking the source package"
dpkg-source --no-check -x "$dsc" "$tree" >/dev/null

# 3. Fix 1: reflect2 1.0.2 from Debian instead of the vendored 1.0.1.
reflect2="$tree/vendor/github.com/modern-go/reflect2"
rm -rf "$reflect2"
mkdir -p "$reflect2"
find /usr/share/gocode/src/github.com/modern-go/reflect2 -maxdepth 1 -type f -name '*.go' \
  ! -name '*_test.go' -exec cp {} "$reflect2/" \;
find /usr/share/gocode/src/github.com/modern-go/reflect2 -maxdepth 1 -type f -name '*.s' \
  -exec cp {} "$reflect2/" \;

export GOPATH="$gopath" GO111MODULE=off CGO_ENABLED=0 GOFLAGS= GOPROXY=off
export GOCACHE="$cache/go-cache"
build=(nice -n 19 go build -p 1)

# 4. Fix 2: pkg/generated/openapi/zz_generated.openapi.go, over every package of the tree (staging
#    named as vendor/, as Makefile.generated_files does) that carries a +k8s:openapi-gen= tag,
#    except code-generator and sample-apiserver (they have their own outputs).
echo "controlplane: generating pkg/generated/openapi"
(cd "$tree" && "${build[@]}" -o "$work/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen)
openapi_dirs="$(
  cd "$tree" && {
    # shellcheck disable=SC2046 # the tree's own top-level folders, as words
    grep -rl --include='*.go' --exclude-dir=vendor -e '+k8s:openapi-gen=' \
      $(find . -mindepth 1 -maxdepth 1 -type d ! -name vendor ! -name staging ! -name '_*' ! -name '.*' -printf '%P\n')
    grep -rl --include='*.go' -e '+k8s:openapi-gen=' staging/src
  } | xargs grep -l '^// *+k8s:' |
    sed 's|^\./||; s|^staging/src/|vendor/|' |
    grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' |
    xargs -n1 dirname | LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -
)"
(cd "$tree" && nice -n 19 "$work/openapi-gen" --logtostderr \
  -i "$openapi_dirs" \
  -p k8s.io/kubernetes/pkg/generated/openapi \
  -O zz_generated.openapi \
  -h hack/boilerplate/boilerplate.generatego.txt \
  -r "$work/openapi-violations.txt" >/dev/null 2>"$work/openapi-gen.log") || {
  tail -20 "$work/openapi-gen.log" >&2
  exit 1
}
test -s "$tree/pkg/generated/openapi/zz_generated.openapi.go"

# 5. The two binaries, with their version set as 1.20's release scripts set it.
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  for kv in "gitVersion=$KUBE_VERSION" gitMajor=1 gitMinor=20 gitTreeState=clean; do
    ldflags+=" -X k8s.io/kubernetes/vendor/$pkg.$kv"
  done
done
mkdir -p "$work/bin"
for cmd in kube-apiserver kube-controller-manager; do
  echo "controlplane: go build $cmd (nice 19, -p 1)"
  (cd "$tree" && "${build[@]}" -ldflags "$ldflags" -o "$work/bin/$cmd" "k8s.io/kubernetes/cmd/$cmd")
done

rm -rf "$bin"
mv "$work/bin" "$bin"
echo "$KUBE_DEB_VERSION recipe $RECIPE" >"$stamp"
rm -rf "$work"
echo "kube-apiserver $KUBE_VERSION: built in $((SECONDS - started)) s"
echo "$bin"
