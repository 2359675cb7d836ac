#!/usr/bin/env bash
# Builds vcsim (the vSphere API simulator) and govc into .cache/vcsim/bin/ from Debian's govmomi
# packages, offline apart from apt: the -dev package holds the library, the Debian *source* package
# of the same version holds vcsim/ and govc/. Idempotent: does nothing when both binaries exist and
# were built by this recipe (.cache/vcsim/bin/RECIPE).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/.cache/vcsim"
bin="$out/bin"
started=$(date +%s)

govmomi_version=0.24.2-3
# Bumped whenever the recipe (version, patches) changes, so an old build is replaced.
recipe="govmomi-$govmomi_version+revert-restores-hardware.1"
if [ -x "$bin/vcsim" ] && [ -x "$bin/govc" ] && [ "$(cat "$bin/RECIPE" 2>/dev/null)" = "$recipe" ]; then
  echo "vcsim: $bin/vcsim and $bin/govc already built ($recipe)"
  exit 0
fi

packages=(golang-go golang-github-vmware-govmomi-dev golang-github-kr-pretty-dev)

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "vcsim: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work="$out/build"
rm -rf "$work"
mkdir -p "$work/apt/lists/partial" "$work/apt/parts" "$work/src" "$work/gopath/src/github.com/vmware" "$bin"

# A private apt configuration with deb-src entries derived from the machine's own Debian sources;
# the system's apt configuration is left untouched.
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$work/apt/parts/debian-src.sources"
elif [ -f /etc/apt/sources.list ]; then
  sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >"$work/apt/parts/debian-src.list"
else
  echo "vcsim: no Debian apt source list found to derive deb-src entries from" >&2
  exit 1
fi
apt_options=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/apt/parts"
  -o "Dir::State::Lists=$work/apt/lists" -o Debug::NoLocking=1)
apt-get "${apt_options[@]}" update -qq
(cd "$work/src" && apt-get "${apt_options[@]}" source -qq --download-only "golang-github-vmware-govmomi=$govmomi_version")
tar -C "$work/src" -xf "$work/src"/golang-github-vmware-govmomi_*.orig.tar.xz
source_tree=$(find "$work/src" -maxdepth 1 -type d -name 'govmomi-*' | head -n 1)

# GOPATH overlay: the whole library tree plus vcsim/ and govc/ under one root (GOPATH mode checks
# internal-package visibility by directory).
cp -a /usr/share/gocode/src/github.com/vmware/govmomi "$work/gopath/src/github.com/vmware/"
cp -a "$source_tree/vcsim" "$source_tree/govc" "$work/gopath/src/github.com/vmware/govmomi/"

# One patch to the simulator: vcsim 0.24.2's RevertToSnapshot only moves currentSnapshot, while
# vSphere restores the VM's configuration from the snapshot. The snapshot already holds a copy
# of the config (CreateSnapshotTask: `snapshot.Config = *vm.Config`); the patch restores its CPU
# count and memory size on revert, which the Driver conformance suite checks.
snapshot_go="$work/gopath/src/github.com/vmware/govmomi/simulator/snapshot.go"
chmod -R u+w "$work/gopath/src/github.com/vmware/govmomi/simulator"
grep -q '{Name: "snapshot.currentSnapshot", Val: v.Self},' "$snapshot_go" || {
  echo "vcsim: snapshot.go does not look like govmomi 0.24.2; cannot apply the revert patch" >&2
  exit 1
}
sed -i 's|^\(\s*\){Name: "snapshot.currentSnapshot", Val: v.Self},|&\n\1{Name: "config.hardware.numCPU", Val: v.Config.Hardware.NumCPU},\n\1{Name: "config.hardware.memoryMB", Val: v.Config.Hardware.MemoryMB},|' "$snapshot_go"
grep -q '{Name: "config.hardware.numCPU", Val: v.Config.Hardware.NumCPU},' "$snapshot_go" || {
  echo "vcsim: the revert patch did not apply" >&2
  exit 1
}

gocache="${GOCACHE:-}"
if [ -z "$gocache" ]; then gocache="$out/gocache"; fi
GO111MODULE=off GOFLAGS= GOPROXY=off CGO_ENABLED=0 GOPATH="$work/gopath:/usr/share/gocode" GOCACHE="$gocache" \
  go build -o "$bin/" github.com/vmware/govmomi/vcsim github.com/vmware/govmomi/govc
rm -rf "$work"
echo "$recipe" >"$bin/RECIPE"

echo "vcsim: built $bin/vcsim and $bin/govc in $(( $(date +%s) - started ))s"
