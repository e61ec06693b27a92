#!/usr/bin/env bash
# netloom demo: two "pods" (network namespaces) on a netloom bridge with netloom's host-local IPAM and
# portmap, attached with cnitool exactly as a runtime attaches a container, pinging each other, and a
# hostPort of the node reaching a server in one pod, netloom doctor reporting the node healthy,
# netloom ls listing both pods; then torn down.
#
# Run it through `make demo` (which builds bin/ and installs ip, ping and cnitool first), as root.
# Everything it creates has a random name and is removed on exit, whether the demo passed or not.
#
# Environment: NETLOOM_BIN  the plugin binaries (default: bin/ of this checkout)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${NETLOOM_BIN:-$root/bin}
example=$root/conflist-examples/bridge-host-local.conflist

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (it creates network namespaces and a bridge): sudo make demo"
for cmd in ip ping socat; do
	command -v "$cmd" >/dev/null || die "$cmd is missing: run make deps"
done
cnitool=$(command -v cnitool || true)
if [ -z "$cnitool" ]; then
	gopath=$( (PATH=$PATH:/usr/local/go/bin go env GOPATH 2>/dev/null || true) | cut -d: -f1)
	[ -n "$gopath" ] && [ -x "$gopath/bin/cnitool" ] && cnitool=$gopath/bin/cnitool
fi
[ -n "$cnitool" ] || die "cnitool is missing: run make deps"
for plugin in bridge host-local loopback portmap; do
	[ -x "$bin/$plugin" ] || die "$bin/$plugin is missing: run make build"
done

# Names: random, short enough for the kernel's 15-byte interface names, recognisable as the demo's.
id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
hostport=$((30000 + RANDOM % 20000))
net=nl-demo-$id
bridge=nldemo$id
pods=(nl-demo-a-"$id" nl-demo-b-"$id")

# A /24 inside the example's 10.88.0.0/16 that no route on this node covers or contains, so the demo
# never takes over addresses the node already uses (containerd's default network is 10.88.0.0/16).
subnet=""
for _ in $(seq 20); do
	candidate=10.88.$((RANDOM % 254 + 1)).0/24
	if [ -z "$(ip -4 route show root "$candidate")" ] &&
		[ -z "$(ip -4 route show match "$candidate" | grep -v '^default' || true)" ]; then
		subnet=$candidate
		break
	fi
done
[ -n "$subnet" ] || die "found no free /24 in 10.88.0.0/16 (a network on this node already uses it)"

work=$(mktemp -d /tmp/netloom-demo.XXXXXX)
cni_path=$work/cni-bin
conf_dir=$work/net.d
data_dir=$work/ipam
added=()
server_pid=""

cleanup() {
	local rc=$? pod
	trap - EXIT INT TERM
	set +e
	say "tearing down"
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	for pod in "${added[@]}"; do
		echo "cnitool del $net /var/run/netns/$pod"
		if ! CNI_PATH=$cni_path NETCONFPATH=$conf_dir "$cnitool" del "$net" "/var/run/netns/$pod"; then
			echo "demo: DEL of $pod failed" >&2
			[ "$rc" = 0 ] && rc=1
		fi
	done
	if [ "${#added[@]}" -gt 0 ] && [ -d "$data_dir/$net" ]; then
		leases=$(find "$data_dir/$net" -name '10.*' | wc -l)
		if [ "$leases" != 0 ]; then
			echo "demo: $leases address leases left after DEL" >&2
			[ "$rc" = 0 ] && rc=1
		fi
	fi
	# Masquerade rules carry the network's name; DEL must have removed every one.
	rules=$( (iptables-save -t nat; ip6tables-save -t nat; nft list ruleset) 2>/dev/null | grep -c -F "$net" || true)
	if [ "$rules" != 0 ]; then
		echo "demo: $rules firewall rules of $net left after DEL" >&2
		[ "$rc" = 0 ] && rc=1
	fi
	for pod in "${pods[@]}"; do
		[ -e "/var/run/netns/$pod" ] && ip netns del "$pod"
	done
	ip link show "$bridge" >/dev/null 2>&1 && ip link del "$bridge"
	rm -f /var/lib/cni/results/"$net"-* # cnitool's result cache, normally emptied by DEL
	rm -rf "$work"
	if [ "$rc" = 0 ]; then say "demo passed: nothing left behind"; else say "demo FAILED (exit $rc)"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "installing netloom's plugins into a temporary CNI_PATH ($cni_path)"
install -d "$cni_path" "$conf_dir"
# Only the executables: bin/ may also hold the image tarball `make image` writes.
find "$bin" -maxdepth 1 -type f -perm -u+x -exec install -m 0755 -t "$cni_path" {} +
ls "$cni_path"
"$cni_path/bridge" 2>&1 | head -1 || true # prints "netloom bridge <version>"

say "network config: $example, made unique for this run"
# The example's bridge, subnet and network name are replaced, and a dataDir in the temporary directory
# is added, so the demo touches neither cni0 nor /var/lib/cni/networks.
sed -E \
	-e "s|\"name\"[[:space:]]*:[[:space:]]*\"[^\"]*\"|\"name\": \"$net\"|" \
	-e "s|\"bridge\"[[:space:]]*:[[:space:]]*\"[^\"]*\"|\"bridge\": \"$bridge\"|" \
	-e "s|\"subnet\"[[:space:]]*:[[:space:]]*\"[^\"]*\"|\"subnet\": \"$subnet\"|" \
	-e "s|(\"type\"[[:space:]]*:[[:space:]]*\"host-local\")|\1, \"dataDir\": \"$data_dir\"|" \
	"$example" >"$conf_dir/10-$net.conflist"
for want in "\"$net\"" "\"$bridge\"" "\"$subnet\"" "\"$data_dir\""; do
	[ "$(grep -c -F "$want" "$conf_dir/10-$net.conflist")" = 1 ] ||
		die "could not rewrite $example (its layout changed?): $want is not in the result once"
done
cat "$conf_dir/10-$net.conflist"

say "creating two pods (network namespaces): ${pods[*]}"
for pod in "${pods[@]}"; do
	ip netns add "$pod"
done

for pod in "${pods[@]}"; do
	say "cnitool add $net /var/run/netns/$pod"
	added+=("$pod")
	caps=""
	# The second pod asks for a hostPort, as `podman run -p` or a Kubernetes hostPort would.
	[ "$pod" = "${pods[1]}" ] && caps="{\"portMappings\":[{\"hostPort\":$hostport,\"containerPort\":8080,\"protocol\":\"tcp\"}]}"
	[ -n "$caps" ] && echo "CAP_ARGS=$caps"
	CAP_ARGS=$caps CNI_PATH=$cni_path NETCONFPATH=$conf_dir "$cnitool" add "$net" "/var/run/netns/$pod"
done

addr_of() { ip -n "$1" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1; }
for pod in "${pods[@]}"; do
	say "ip -n $pod addr show eth0"
	ip -n "$pod" addr show eth0
done
a=${pods[0]} b=${pods[1]}
addr_b=$(addr_of "$b")
[ -n "$addr_b" ] || die "$b has no IPv4 address on eth0"

say "cnitool check, for both pods"
for pod in "${pods[@]}"; do
	CNI_PATH=$cni_path NETCONFPATH=$conf_dir "$cnitool" check "$net" "/var/run/netns/$pod"
	echo "$pod: ok"
done

say "netloom doctor --conf-dir $conf_dir --cni-bin-dir $cni_path"
# The node's checks for this network: its plugins, each plugin's verdict on its config, forwarding,
# the firewall, routes, hairpin of the hostPort pod, MTU. Exit 0: nothing breaks the pods.
"$bin/netloom" doctor --conf-dir "$conf_dir" --cni-bin-dir "$cni_path" || die "netloom doctor reports a problem (exit $?)"

say "netloom ls --conf-dir $conf_dir"
# Every attachment of the node, from cnitool's result cache (libcni's default), the leases and the
# rules: both pods alive, the hostPort on one.
"$bin/netloom" ls --conf-dir "$conf_dir" || die "netloom ls failed (exit $?)"

say "ping from $a ($(addr_of "$a")) to $b ($addr_b)"
ip netns exec "$a" ping -c 3 -W 2 "$addr_b"

say "hostPort $hostport of the node -> port 8080 in $b"
ip netns exec "$b" socat TCP-LISTEN:8080,reuseaddr,fork SYSTEM:"echo hello from $b" &
server_pid=$!
for _ in $(seq 50); do
	ip netns exec "$b" ss -Hltn 'sport = :8080' | grep -q . && break
	sleep 0.1
done
echo "from the node: socat - TCP:127.0.0.1:$hostport"
reply=$(socat -T2 - TCP:127.0.0.1:"$hostport",connect-timeout=2 </dev/null)
echo "  $reply"
[ "$reply" = "hello from $b" ] || die "hostPort $hostport did not reach $b from the node"
gw=$(ip -4 -o addr show dev "$bridge" | awk '{print $4}' | cut -d/ -f1)
echo "from $a: socat - TCP:$gw:$hostport (the node's bridge address)"
reply=$(ip netns exec "$a" socat -T2 - TCP:"$gw":"$hostport",connect-timeout=2 </dev/null)
echo "  $reply"
[ "$reply" = "hello from $b" ] || die "hostPort $hostport did not reach $b from $a"
echo "the forwarding, as nft shows it:"
nft list table inet netloom_portmap 2>/dev/null | grep -F "$hostport" || iptables-save -t nat | grep -F "$hostport" || true

say "host side: bridge $bridge and its ports"
ip -br addr show dev "$bridge"
ip -br link show master "$bridge"
