#!/usr/bin/env bash
# netloom overlay demo: two "nodes" (network namespaces joined by a veth, as two machines on one
# link), each running vxlan-overlay from conflist-examples/vxlan-overlay.conflist through cnitool inside
# the node, one pod on each; the pods ping each other across the VXLAN tunnel; then torn down.
#
# Run it through `make demo` (after test/demo/demo.sh), as root. Everything it creates has a random name
# and is removed on exit, whether the demo passed or not.
#
# Environment: NETLOOM_BIN  the plugin binaries (default: bin/ of this checkout)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${NETLOOM_BIN:-$root/bin}
example=$root/conflist-examples/vxlan-overlay.conflist

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "overlay demo: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root: sudo make demo"
cnitool=$(command -v cnitool || true)
if [ -z "$cnitool" ]; then
	gopath=$( (PATH=$PATH:/usr/local/go/bin go env GOPATH 2>/dev/null || true) | cut -d: -f1)
	[ -n "$gopath" ] && [ -x "$gopath/bin/cnitool" ] && cnitool=$gopath/bin/cnitool
fi
[ -n "$cnitool" ] || die "cnitool is missing: run make deps"
for b in vxlan-overlay host-local portmap netloom; do
	[ -x "$bin/$b" ] || die "$bin/$b is missing: run make build"
done

id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
net=nl-ovl-$id
nodes=(nl-node1-"$id" nl-node2-"$id")
node_ips=(192.168.250.1 192.168.250.2)
pod_cidrs=(10.244.1.0/24 10.244.2.0/24)
pods=(nl-opod1-"$id" nl-opod2-"$id")
work=$(mktemp -d /tmp/netloom-overlay-demo.XXXXXX)
added=()

# cnitool and the plugins run inside node i, with node i's config directory.
on_node() { local i=$1; shift; ip netns exec "${nodes[$i]}" env CNI_PATH="$bin" NETCONFPATH="$work/node$i" "$@"; }

cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	set +e
	say "tearing down"
	for i in "${added[@]}"; do
		echo "node $((i + 1)): cnitool del $net /var/run/netns/${pods[$i]}"
		on_node "$i" "$cnitool" del "$net" "/var/run/netns/${pods[$i]}" || { echo "overlay demo: DEL failed" >&2; rc=1; }
		left=$(find "$work/ipam$i/$net" -name '10.*' 2>/dev/null | wc -l)
		[ "$left" = 0 ] || { echo "overlay demo: $left leases left on node $((i + 1))" >&2; rc=1; }
	done
	for n in "${pods[@]}" "${nodes[@]}"; do
		[ -e "/var/run/netns/$n" ] && ip netns del "$n"
	done
	rm -f /var/lib/cni/results/"$net"-*
	rm -rf "$work"
	if [ "$rc" = 0 ]; then say "overlay demo passed: nothing left behind"; else say "overlay demo FAILED (exit $rc)"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "two nodes ${nodes[*]}, joined by a veth: ${node_ips[*]}"
for i in 0 1; do ip netns add "${nodes[$i]}"; ip -n "${nodes[$i]}" link set lo up; done
ip -n "${nodes[0]}" link add eth0 type veth peer name eth0 netns "${nodes[1]}"
for i in 0 1; do
	ip -n "${nodes[$i]}" addr add "${node_ips[$i]}/24" dev eth0
	ip -n "${nodes[$i]}" link set eth0 up
	ip -n "${nodes[$i]}" route add default via 192.168.250.254 dev eth0 onlink
done

say "the peers file both nodes read, and each node's copy of $example"
printf '[{"nodeIP": "%s", "podCIDR": "%s"}, {"nodeIP": "%s", "podCIDR": "%s"}]\n' \
	"${node_ips[0]}" "${pod_cidrs[0]}" "${node_ips[1]}" "${pod_cidrs[1]}" >"$work/peers.json"
cat "$work/peers.json"
for i in 0 1; do
	mkdir -p "$work/node$i"
	sed -E \
		-e "s|\"name\"[[:space:]]*:[[:space:]]*\"[^\"]*\"|\"name\": \"$net\"|" \
		-e "s|\"podCIDR\"[[:space:]]*:[[:space:]]*\"[^\"]*\"|\"podCIDR\": \"${pod_cidrs[$i]}\"|" \
		-e "s|\"peersFile\"[[:space:]]*:[[:space:]]*\"[^\"]*\"|\"peersFile\": \"$work/peers.json\"|" \
		-e "s|(\"type\"[[:space:]]*:[[:space:]]*\"host-local\")|\1, \"dataDir\": \"$work/ipam$i\"|" \
		"$example" >"$work/node$i/10-$net.conflist"
	grep -q -F "$work/ipam$i" "$work/node$i/10-$net.conflist" || die "could not rewrite $example"
done
cat "$work/node0/10-$net.conflist"

for i in 0 1; do
	ip netns add "${pods[$i]}"
	say "node $((i + 1)): cnitool add $net /var/run/netns/${pods[$i]}"
	added+=("$i")
	on_node "$i" "$cnitool" add "$net" "/var/run/netns/${pods[$i]}"
done

addr_of() { ip -n "$1" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1; }
say "node 1: the tunnel and its peer (routes of protocol 78, FDB)"
ip -n "${nodes[0]}" -d link show "nlvx.1" | sed -n '1,3p'
ip -n "${nodes[0]}" route show proto 78
ip netns exec "${nodes[0]}" bridge fdb show dev nlvx.1
say "node 1: netloom overlay sync --dry-run (no differences)"
on_node 0 "$bin/netloom" overlay sync --conflist "$work/node0/10-$net.conflist" --dry-run && echo "in sync"

b=$(addr_of "${pods[1]}")
say "ping from the pod on node 1 ($(addr_of "${pods[0]}")) to the pod on node 2 ($b), through VXLAN"
ip netns exec "${pods[0]}" ping -c 3 -W 2 "$b"
