#!/usr/bin/env bash
# End-to-end on real kubelets (make e2e): a kubelet-local cluster (test/kube/kubelet-local: a real control
# plane whose controller-manager allocates the pod CIDRs, and per node a network namespace running containerd
# and kubelet 1.37; the nodes stay NotReady until a conflist appears), netloom's image imported from
# bin/netloom-image.tar, then `kubectl apply` of deploy/netloom.yaml exactly as the README says, with one
# change: the ConfigMap's clusterCIDR is set to this cluster's (kubelet-local allocates from 10.211.0.0/16).
# Proves: the nodes become Ready because netloomd wrote the conflist; pods of a Deployment spread over the
# nodes get addresses from their node's pod CIDR and reach each other across nodes and a hostPort; deleting
# the pods leaves no veth or lease on the nodes; deleting the DaemonSet leaves the pods running and talking.
# E2E_MODE=bgp, vxlan (or ipip where the kernel has it) sets the ConfigMap's mode instead of the default
# routed, with "stateDir" (the peers file, the speaker's socket) under /var/lib/cni, because kubelet-local's
# nodes share the host's /run (on real nodes /run/netloom is each node's own); in bgp mode each node must
# route the other's pod CIDR with a BGP-learned route.
# Usage: test/e2e/kubelet.sh [DIR] (default: a new folder under /tmp). Needs root. Prints PASS/FAIL lines and
# the figures; exits non-zero on any failure. Everything it starts is stopped by `kubelet-local down`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
KL=$PWD/test/kube/kubelet-local/kubelet-local
DIR=${1:-$(mktemp -u /tmp/nle2e.XXXXXX)}
IMAGE_TAR=${IMAGE_TAR:-$PWD/bin/netloom-image.tar}
MANIFEST=$PWD/deploy/netloom.yaml
MODE=${E2E_MODE:-routed}
NODES=(klnode1 klnode2)
fails=0
say() { echo "== $*" >&2; }
ok() { echo "PASS: $*" >&2; }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
k() { "$KL" kubectl "$DIR" "$@"; }
in_cidr() { python3 -c 'import ipaddress,sys; sys.exit(0 if ipaddress.ip_address(sys.argv[1]) in ipaddress.ip_network(sys.argv[2]) else 1)' "$1" "$2"; }

[[ -f $IMAGE_TAR ]] || { echo "no $IMAGE_TAR: run make image first" >&2; exit 2; }
t0=$(now)
exports=$("$KL" up "$DIR" --nodes ${#NODES[@]}) || { echo "FAIL: kubelet-local up" >&2; exit 1; }
eval "$exports"
trap 'rc=$?; "$KL" down "$DIR" || rc=1; exit $rc' EXIT
say "cluster up in $(since "$t0")s"
"$KL" import-image "$DIR" "$IMAGE_TAR"

# --- install, as the README says (clusterCIDR set to this cluster's; the mode when E2E_MODE says)
extra=
[[ $MODE != routed ]] && extra='"stateDir": "/var/lib/cni/netloom-state",'
sed -e 's#"clusterCIDR": *"[^"]*"#"clusterCIDR": "10.211.0.0/16"#' \
  -e "s#\"mode\": *\"[^\"]*\",#\"mode\": \"$MODE\", $extra#" "$MANIFEST" >"$DIR/netloom.yaml"
say "mode $MODE"
t1=$(now)
k apply -f "$DIR/netloom.yaml" >&2
if k wait --for=condition=Ready node --all --timeout=180s >&2; then
  ok "nodes Ready $(since "$t1")s after kubectl apply (netloomd wrote the conflists)"
else
  bad "nodes not Ready"; k get pods -n kube-system -o wide >&2; k logs -n kube-system -l app=netloom --all-containers --tail=50 >&2 || true
fi
for n in "${NODES[@]}"; do
  [[ -f $DIR/nodes/$n/cni-conf/10-netloom.conflist ]] && ok "$n: conflist written" || bad "$n: no conflist"
  [[ -x $DIR/nodes/$n/cni-bin/bridge && -x $DIR/nodes/$n/cni-bin/portmap ]] && ok "$n: plugins installed" || bad "$n: plugins missing"
done

# --- a Deployment spread over the nodes, and a pod with a hostPort
cat <<'EOF' | k apply -f - >&2
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 4
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: app}}}
      containers:
      - {name: app, image: kl.local/app:1, imagePullPolicy: Never}
---
apiVersion: v1
kind: Pod
metadata: {name: hostport, labels: {app: hostport}}
spec:
  nodeName: klnode2
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: kl.local/app:1
    imagePullPolicy: Never
    ports: [{containerPort: 8080, hostPort: 18080, protocol: TCP}]
EOF
t1=$(now)
if k wait --for=condition=Ready pod -l app=app --timeout=180s >&2 && k wait --for=condition=Ready pod/hostport --timeout=120s >&2; then
  ok "5 pods Ready in $(since "$t1")s"
else
  bad "pods not Ready"; k describe pods >&2
fi
k get pods -o wide >&2
mapfile -t pods < <(k get pods -l app=app -o jsonpath='{range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP}{"\n"}{end}')
for line in "${pods[@]}"; do
  read -r name node ip <<<"$line"
  cidr=$("$KL" pod-cidr "$DIR" "$node")
  in_cidr "$ip" "$cidr" && ok "$name on $node has $ip from $cidr" || bad "$name on $node: $ip not in $cidr"
done
if [[ $MODE == bgp ]]; then # each node routes the other's pod CIDR with a route learned over BGP
  for n in "${NODES[@]}"; do
    for o in "${NODES[@]}"; do
      [[ $n == "$o" ]] && continue
      cidr=$("$KL" pod-cidr "$DIR" "$o")
      r=$("$KL" node-exec "$DIR" "$n" ip route show proto 79 2>&1)
      [[ $r == *"$cidr via "* ]] && ok "$n routes $o's $cidr over BGP" || bad "$n: no BGP route to $o's $cidr: $r"
    done
  done
fi
# every pod reaches every other pod (TCP echo), across nodes included
for a in "${pods[@]}"; do
  read -r an anode aip <<<"$a"
  for b in "${pods[@]}"; do
    read -r bn bnode bip <<<"$b"
    [[ $an == "$bn" ]] && continue
    r=$(k exec "$an" -- /kl-tool dial tcp "$bip:8080" hi 2>&1) && [[ $r == *"$aip"*hi* ]] &&
      ok "$an($anode) -> $bn($bnode): $r" || bad "$an($anode) -> $bn($bnode) $bip: $r"
  done
done
# the hostPort on klnode2, from a pod on klnode1 and from klnode1 itself
node2ip=$(k get node klnode2 -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
read -r first _ _ <<<"$(printf '%s\n' "${pods[@]}" | grep ' klnode1 ' | head -1)"
r=$(k exec "$first" -- /kl-tool dial tcp "$node2ip:18080" via-hostport 2>&1) && [[ $r == *via-hostport* ]] &&
  ok "hostPort $node2ip:18080 from a pod on klnode1: $r" || bad "hostPort from a pod on klnode1: $r"
r=$("$KL" node-exec "$DIR" klnode1 sh -c "echo from-node | socat -T3 - TCP:$node2ip:18080" 2>&1) && [[ $r == *from-node* ]] &&
  ok "hostPort $node2ip:18080 from klnode1: $r" || bad "hostPort from klnode1: $r"

# --- deleting the DaemonSet leaves the pods running and talking
k delete daemonset -n kube-system netloom --wait=true >&2
sleep 3
read -r a _ _ <<<"${pods[0]}"
read -r _ _ bip <<<"${pods[-1]}"
r=$(k exec "$a" -- /kl-tool dial tcp "$bip:8080" after-ds 2>&1) && [[ $r == *after-ds* ]] &&
  ok "pods still talk after the DaemonSet is deleted: $r" || bad "pods after the DaemonSet is deleted: $r"

# --- deleting the pods leaves nothing on the nodes (the plugins run without the agent)
k delete deployment app --wait=true >&2
k delete pod hostport --wait=true >&2
k wait --for=delete pod -l app=app --timeout=60s >&2 || true
sleep 2
for n in "${NODES[@]}"; do
  veths=$("$KL" node-exec "$DIR" "$n" ip -o link show type veth | grep -v ' eth0' || true)
  [[ -z $veths ]] && ok "$n: no pod veth left" || bad "$n: veths left: $veths"
  leases=$(find "$DIR/nodes/$n/var-lib-cni/networks" -type f ! -name lock ! -name 'last_reserved_ip*' ! -name .netloom-index 2>/dev/null || true)
  [[ -z $leases ]] && ok "$n: no lease left" || bad "$n: leases left: $leases"
  dnat=$("$KL" node-exec "$DIR" "$n" nft list ruleset 2>/dev/null | grep -c 18080 || true)
  [[ $dnat == 0 ]] && ok "$n: no hostPort rule left" || bad "$n: $dnat hostPort rules left"
done

echo "e2e: $fails failure(s), $(since "$t0")s in all" >&2
((fails == 0))
