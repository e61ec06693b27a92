# netloom: build, test, lint and demo. `make help` lists the targets.
#
# Every recipe runs in bash with -eu -o pipefail, and with Go's and `go install`'s directories on PATH,
# so a fresh Debian machine with Go at /usr/local/go needs nothing else: `make deps` installs the rest.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

# Go where Debian CI installs it, then whatever go the caller has; tools that `go install` builds land in
# the first GOPATH entry's bin/, which the test harness and the demo also look in.
# ($(shell) does not see exported variables before GNU make 4.4, hence PATH="$(PATH)" there.)
export PATH := $(PATH):/usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin
GO ?= go
GOPATH_BIN := $(firstword $(subst :, ,$(shell PATH="$(PATH)" $(GO) env GOPATH 2>/dev/null)))/bin
export PATH := $(PATH):$(GOPATH_BIN)

MODULE := github.com/netloom/netloom
VERSION ?= $(shell git describe --always --dirty --tags 2>/dev/null || echo dev)
BIN := $(CURDIR)/bin
LDFLAGS := -s -w -X $(MODULE)/pkg/plugin.Version=$(VERSION)
# Every command: each folder under plugins/ and cmd/ that holds Go files.
COMMANDS := $(sort $(patsubst %/,./%,$(dir $(wildcard plugins/*/*.go cmd/*/*.go))))
# The binaries make build writes into $(BIN) (which may also hold the image tarball).
COMMAND_NAMES := $(notdir $(patsubst %/,%,$(COMMANDS)))

CNI_BIN_DIR ?= /opt/cni/bin
CNITOOL_MODULE := github.com/containernetworking/cni/cnitool@v1.3.1
# staticcheck 2026.2.2; the 2025.1 releases predate Go 1.26, which go.mod requires.
STATICCHECK_MODULE := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# command:Debian package for every program the tests and the demo run. `make deps` installs the package
# only when the command is missing. The BGP daemons (bird2, frr, gobgpd) are peers the tests start inside
# network namespaces: while apt installs them a policy-rc.d that refuses every start keeps their
# services from starting on the node itself. firewalld (with dbus-daemon for its private bus) is the
# same kind of guest: the firewall tests run it inside a test namespace (harness.StartFirewalld), and
# started on the node it would rewrite the node's own firewall, so `make deps` also masks
# firewalld.service before installing it (SYSTEMD_MASKED), for good: `systemctl unmask firewalld` on a
# node that should run it.
SYSTEM_DEPS := ip:iproute2 ping:iputils-ping iptables:iptables nft:nftables sysctl:procps socat:socat conntrack:conntrack iperf3:iperf3 /usr/bin/time:time bird:bird2 vtysh:frr gobgpd:gobgpd dnsmasq:dnsmasq dbus-daemon:dbus firewalld:firewalld
# package:unit for every service that must never start on the node: masked when `make deps` installs
# the package (a machine that has it already keeps it as it is).
SYSTEMD_MASKED := firewalld:firewalld.service

# Root tests must run, not skip, when root runs them (and always in CI): see harness.RequireRoot.
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo 1)
NETLOOM_REQUIRE_ROOT ?= $(if $(or $(IS_ROOT),$(filter true,$(CI))),1,0)
TEST_FLAGS ?= -count=1 -timeout 30m -p 2
# Packages that exercise built binaries in network namespaces; everything else is a unit package.
INTEGRATION_PATTERN := ./test/...

.PHONY: help
help:
	@echo "make build            static plugin binaries in bin/ (VERSION=$(VERSION))"
	@echo "make deps             install missing test tools (iproute2, ping, iptables, nftables, firewalld masked, cnitool)"
	@echo "make test             deps, build, go vet, unit, integration and VM-lane tests (as root)"
	@echo "make test-unit        tests of ./pkg/... ./plugins/... (root ones included when root)"
	@echo "make test-integration tests under ./test/ against bin/"
	@echo "make fuzz             every fuzz target for FUZZTIME (default 1m); make test runs 5 s each"
	@echo "make soak             SOAK_CYCLES (2000) ADD/DEL cycles at random concurrency, then nothing left"
	@echo "make test-vm          the tests needing ipvlan, ipip, ... in a qemu VM (test/vm/run; VM_TESTS=regexp)"
	@echo "make bench            netloom vs the reference plugins in one run, tables + JSON in bench-results/"
	@echo "make image            bin/netloom-image.tar, the DaemonSet's image, built without a daemon"
	@echo "make e2e              kubectl apply -f deploy/ on a real kubelet cluster (test/e2e/kubelet.sh)"
	@echo "make bench-cluster    the cluster agent among 1,000 Nodes in a real kube-apiserver"
	@echo "make bench-vm-cost    per-plugin CPU and peak RSS of ipvlan, vlan, dummy, vrf in the VM (make bench runs it)"
	@echo "make bench-overlay    pod-to-pod iperf3: overlays vs the underlay (same MTU too), bridge vs a bare veth (ipip in the VM)"
	@echo "make demo             two pods on a bridge, then two nodes over VXLAN: ping, teardown (test/demo/)"
	@echo "make lint             gofmt, go vet, staticcheck"
	@echo "make kube-apiserver   build the real kube-apiserver + etcd the cluster agent's tests start"
	@echo "make install          copy the binaries in bin/ to \$$(DESTDIR)$(CNI_BIN_DIR)"
	@echo "make clean            remove bin/"

.PHONY: build
build:
	@[ -n "$(COMMANDS)" ] || { echo "no commands under plugins/ or cmd/" >&2; exit 1; }
	mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ $(COMMANDS)

.PHONY: deps deps-system deps-tools
deps: deps-system deps-tools

deps-system:
	@missing=""; \
	for dep in $(SYSTEM_DEPS); do \
		command -v "$${dep%%:*}" >/dev/null 2>&1 || missing="$$missing $${dep#*:}"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "missing packages:$$missing; install them as root (or run make as root)" >&2; exit 1; \
	fi; \
	echo "installing:$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	for masked in $(SYSTEMD_MASKED); do \
		unit="$${masked#*:}"; \
		case " $$missing " in *" $${masked%%:*} "*) ;; *) continue ;; esac; \
		[ -e "/etc/systemd/system/$$unit" ] && continue; \
		echo "masking $$unit: it must not run on this machine (systemctl unmask $$unit to undo)"; \
		mkdir -p /etc/systemd/system; \
		if command -v systemctl >/dev/null 2>&1; then systemctl mask "$$unit" >/dev/null 2>&1 || true; fi; \
		[ -e "/etc/systemd/system/$$unit" ] || ln -s /dev/null "/etc/systemd/system/$$unit"; \
	done; \
	policy=/usr/sbin/policy-rc.d; \
	if [ -e "$$policy" ] && "$$policy" firewalld start >/dev/null 2>&1; [ "$$?" = 101 ]; then :; \
	else \
		if [ -e "$$policy" ]; then mv "$$policy" "$$policy.netloom-saved"; \
			trap 'mv -f "$$policy.netloom-saved" "$$policy"' EXIT; \
		else trap 'rm -f "$$policy"' EXIT; fi; \
		printf '#!/bin/sh\nexit 101\n' >"$$policy"; chmod 755 "$$policy"; \
	fi; \
	apt-get -o DPkg::Lock::Timeout=300 update -qq; \
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $$missing

deps-tools:
	@if command -v cnitool >/dev/null 2>&1 || [ -x "$(GOPATH_BIN)/cnitool" ]; then exit 0; fi; \
	echo "installing cnitool into $(GOPATH_BIN)"; \
	GOBIN="$(GOPATH_BIN)" CGO_ENABLED=0 $(GO) install $(CNITOOL_MODULE)

.PHONY: vet
vet:
	$(GO) vet ./...

.PHONY: test test-unit test-integration
# Make runs each target once, in this order: deps, build, vet, unit tests, integration tests, the VM lane.
test: deps build vet test-unit test-integration test-fuzz test-vm

test-unit: deps
	@[ -n "$(IS_ROOT)" ] || echo "make: not root: the tests that need root will skip (run as root to run them)" >&2
	@pkgs="$$($(GO) list ./... | grep -v '^$(MODULE)/test/')"; \
	echo "NETLOOM_REQUIRE_ROOT=$(NETLOOM_REQUIRE_ROOT) $(GO) test $(TEST_FLAGS) <every package outside test/>"; \
	NETLOOM_REQUIRE_ROOT=$(NETLOOM_REQUIRE_ROOT) $(GO) test $(TEST_FLAGS) $$pkgs

# A real kube-apiserver + etcd for the cluster agent's tests (test/kube/kube-apiserver-local, started per
# test on loopback): built once into ~/.cache/kube-apiserver-local, about 12 minutes on a cold 2-core
# machine, seconds when cached.
.PHONY: kube-apiserver
kube-apiserver:
	test/kube/kube-apiserver-local build

# The integration tests run the binaries in bin/ (harness.PluginDir reads NETLOOM_BIN).
test-integration: deps build kube-apiserver
	NETLOOM_REQUIRE_ROOT=$(NETLOOM_REQUIRE_ROOT) NETLOOM_BIN=$(BIN) \
		$(GO) test $(TEST_FLAGS) $(INTEGRATION_PATTERN)

# The tests that need kernel features this machine's kernel lacks (ipvlan, ipip, dummy, ...) run in a
# qemu VM booting Debian's kernel over this machine's root (test/vm/run; its first run installs qemu and
# the kernel as root). VM_TESTS is the -test.run regexp of those tests.
# VM_EXAMPLES selects the conflist-examples that need them (run from test/examples, as go test would).
VM_TESTS ?= TestVM|Ipvlan
VM_EXAMPLES ?= TestExamples/ipip|TestRuntimeConflists/multus-(ipvlan|vlan)
VM_TIMEOUT ?= 1200
# The VM's RAM: the cluster tests run a kube-apiserver and etcd inside it.
VM_MEM ?= 3G
.PHONY: test-vm
test-vm: deps build
	$(GO) test -c -o $(CURDIR)/test/vm/integration.test ./test/integration
	$(GO) test -c -o $(CURDIR)/test/vm/examples.test ./test/examples
	# The reference plugins some VM tests compare with, built on the host: the VM cannot download.
	$(CURDIR)/test/vm/integration.test -test.run '^TestReferencePluginsBuilt$$' -test.count=1
	test/vm/run --timeout $(VM_TIMEOUT) --mem $(VM_MEM) -- env NETLOOM_BIN=$(BIN) NETLOOM_REQUIRE_ROOT=1 bash -c '\
		$(CURDIR)/test/vm/integration.test -test.run "$(VM_TESTS)" -test.v -test.count=1 && \
		cd $(CURDIR)/test/examples && $(CURDIR)/test/vm/examples.test -test.run "$(VM_EXAMPLES)" -test.v -test.count=1'

# Every fuzz target for FUZZTIME each (test/fuzz/run): `make test` runs the short pass, `make fuzz` a
# longer one. A crash found lands in testdata/fuzz/<Target>/ and is a regular test case from then on.
FUZZ_PASS ?= 5s
FUZZTIME ?= 1m
.PHONY: test-fuzz fuzz
test-fuzz:
	FUZZTIME=$(FUZZ_PASS) bash test/fuzz/run
fuzz:
	FUZZTIME=$(FUZZTIME) bash test/fuzz/run

# The soak (test/soak): ADD/DEL cycles at random concurrency 1-32 over bridge + host-local + portmap,
# then nothing may be left. `make test` runs its short default; `make soak` SOAK_CYCLES of them.
SOAK_CYCLES ?= 2000
.PHONY: soak
soak: deps build
	NETLOOM_REQUIRE_ROOT=1 NETLOOM_BIN=$(BIN) NETLOOM_SOAK_CYCLES=$(SOAK_CYCLES) \
		$(GO) test -count=1 -v -timeout 120m -run Soak ./test/soak/

.PHONY: bench
# netloom against the reference plugins v1.9.1 (built with go install by the benchmarks) in the same run,
# as root: pod churn through libcni (latency percentiles, 8 and 32 concurrent workers, leftovers), host-local
# with 0 and 10,000 leases, CPU and peak RSS per plugin process, binary sizes; then portmap ADD/DEL with
# 0, 100 and 1,000 existing mappings; then pod-to-pod TCP throughput across a bridge and vxlan-overlay
# against their floors (DATAPLANE_BENCHTIME rounds). Tables on stdout, JSON in $(BENCH_OUT)/.
# The plugins whose links this kernel cannot make are measured first in the VM lane (bench-vm-cost) and
# folded into the report, labelled "(VM)"; if the VM lane fails, the report lists them as NOT RUN and
# make bench fails at its end.
BENCH_OUT ?= $(CURDIR)/bench-results
PORTMAP_BENCHTIME ?= 20x
DATAPLANE_BENCHTIME ?= 5x
# BenchmarkFilledNode fills a node with 1,000 pods per backend and suite: netloom's fill takes minutes,
# the reference's over 25 (its iptables rules grow with every pod), so by default only netloom is
# filled (goal 1 compares netloom full with netloom empty); FILL_SUITES= fills both.
FILL_SUITES ?= netloom
bench: deps build
	mkdir -p $(BENCH_OUT)
	@# Its own line: make runs a line holding $$(MAKE) even under -n, so nothing else may share it.
	vm=0; $(MAKE) --no-print-directory bench-vm-cost || vm=$$?; echo "$$vm" >$(BENCH_OUT)/cost-vm.status
	NETLOOM_BIN=$(BIN) NETLOOM_BENCH_JSON=$(BENCH_OUT)/report.json NETLOOM_BENCH_VM_JSON=$(BENCH_OUT)/cost-vm.json \
		$(GO) test ./test/bench -run '^$$' -bench 'Churn|HostLocalLeases|PluginCost|Floor' -benchtime 1x -timeout 60m
	NETLOOM_BIN=$(BIN) NETLOOM_BENCH_JSON=$(BENCH_OUT)/portmap.json \
		$(GO) test ./test/bench -run '^$$' -bench Portmap -benchtime $(PORTMAP_BENCHTIME) -timeout 60m
	NETLOOM_BIN=$(BIN) NETLOOM_BENCH_JSON=$(BENCH_OUT)/dataplane.json \
		$(GO) test ./test/bench -run '^$$' -bench Dataplane -benchtime $(DATAPLANE_BENCHTIME) -timeout 30m
	NETLOOM_BIN=$(BIN) NETLOOM_BENCH_JSON=$(BENCH_OUT)/filled.json NETLOOM_BENCH_FILL_SUITES=$(FILL_SUITES) \
		$(GO) test ./test/bench -run '^$$' -bench FilledNode -benchtime 1x -timeout 150m
	@vm=$$(cat $(BENCH_OUT)/cost-vm.status); [ "$$vm" = 0 ] || \
		{ echo "make bench: the VM lane (bench-vm-cost) failed with status $$vm: its plugins are NOT RUN above" >&2; exit 1; }

# BenchmarkPluginCost's plugins whose link kinds this kernel lacks (VM_COST_PLUGINS), in the VM lane
# (test/vm/run): netloom against the reference inside the VM, written to $(BENCH_OUT)/cost-vm.json, which
# make bench folds into its report. BENCH_OUT must be under this directory: the VM writes only there.
# The reference plugins are built on the host first: the VM cannot download.
VM_COST_PLUGINS ?= ipvlan|vlan|dummy|vrf
.PHONY: bench-vm-cost
bench-vm-cost: deps build
	mkdir -p $(BENCH_OUT)
	rm -f $(BENCH_OUT)/cost-vm.json
	$(GO) test -c -o $(CURDIR)/test/vm/integration.test ./test/integration
	$(GO) test -c -o $(CURDIR)/test/vm/bench.test ./test/bench
	$(CURDIR)/test/vm/integration.test -test.run '^TestReferencePluginsBuilt$$' -test.count=1
	test/vm/run --timeout $(VM_TIMEOUT) --mem $(VM_MEM) -- env NETLOOM_BIN=$(BIN) NETLOOM_REQUIRE_ROOT=1 \
		NETLOOM_BENCH_JSON=$(BENCH_OUT)/cost-vm.json $(CURDIR)/test/vm/bench.test \
		-test.run '^$$' -test.bench 'PluginCost/^($(VM_COST_PLUGINS))$$' -test.benchtime 1x

# Pod-to-pod TCP throughput (iperf3) over vxlan-overlay, vxlan with directRouting and the bare underlay on
# this kernel; then the dataplane goal with more rounds than `make bench` gives it (a bridge against a bare
# veth pair, vxlan-overlay against the underlay at the same MTU, min/median/max each, JSON in
# $(BENCH_OUT)/dataplane.json); then ipip-overlay against the underlay in the VM (its figures compare
# only with each other).
OVERLAY_BENCHTIME ?= 3x
OVERLAY_DATAPLANE_BENCHTIME ?= 15x
.PHONY: bench-overlay
bench-overlay: deps build
	NETLOOM_BIN=$(BIN) $(GO) test ./test/bench -run '^$$' -bench OverlayThroughput -benchtime $(OVERLAY_BENCHTIME) -timeout 30m
	mkdir -p $(BENCH_OUT)
	NETLOOM_BIN=$(BIN) NETLOOM_BENCH_JSON=$(BENCH_OUT)/dataplane.json \
		$(GO) test ./test/bench -run '^$$' -bench Dataplane -benchtime $(OVERLAY_DATAPLANE_BENCHTIME) -timeout 60m
	$(GO) test -c -o $(CURDIR)/test/vm/bench.test ./test/bench
	test/vm/run --timeout $(VM_TIMEOUT) --mem $(VM_MEM) -- env NETLOOM_BIN=$(BIN) $(CURDIR)/test/vm/bench.test \
		-test.run '^$$' -test.bench 'OverlayThroughput/(underlay|ipip)' -test.benchtime $(OVERLAY_BENCHTIME)

# netloomd's cluster agent among 1,000 Node objects in a real kube-apiserver: convergence from start, one
# Node added (time and kernel route changes: one), the agent's memory.
.PHONY: bench-cluster
bench-cluster: deps build kube-apiserver
	NETLOOM_BIN=$(BIN) $(GO) test ./test/integration -run '^$$' -bench ClusterScale -benchtime 1x -timeout 30m

# The container image the DaemonSet in deploy/ runs, as a docker-archive tarball written without any
# container daemon (test/image), tagged with the image deploy/netloom.yaml names (read from it, so the two
# cannot differ): `ctr -n k8s.io images import`, `kind load image-archive` and `docker load` take it as is.
# With docker on PATH it is also loaded there.
IMAGE = $(shell sed -n 's/^ *image: *//p' deploy/netloom.yaml | head -1)
.PHONY: image
image: build
	$(GO) run ./test/image -bin $(BIN) -name $(IMAGE) -o $(BIN)/netloom-image.tar
	@echo "wrote $(BIN)/netloom-image.tar ($(IMAGE))"
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then docker load -i $(BIN)/netloom-image.tar; fi

# End to end on real kubelets (test/e2e/kubelet.sh on test/kube/kubelet-local: control plane, containerd
# and kubelet 1.37 per node namespace): kubectl apply -f deploy/, nodes Ready, pods across nodes, hostPort,
# nothing left. The first run builds Kubernetes (about 30 minutes and 6 GiB of Go caches); then ~2 minutes.
# E2E_MODE=bgp runs the agents in bgp mode (routes over BGP between the nodes) instead of routed.
.PHONY: e2e
e2e: image
	test/kube/kubelet-local/kubelet-local build
	IMAGE_TAR=$(BIN)/netloom-image.tar test/e2e/kubelet.sh

.PHONY: demo
demo: deps build
	NETLOOM_BIN=$(BIN) bash test/demo/demo.sh
	NETLOOM_BIN=$(BIN) bash test/demo/overlay.sh

.PHONY: lint
# staticcheck is installed at the pinned version every time (a no-op build when it is cached), so a
# different staticcheck on PATH cannot change the verdict.
lint: vet
	@out="$$(gofmt -l .)"; \
	if [ -n "$$out" ]; then echo "gofmt -l: these files are not formatted (run gofmt -w):"; echo "$$out"; exit 1; fi
	GOBIN="$(GOPATH_BIN)" $(GO) install $(STATICCHECK_MODULE)
	$(GOPATH_BIN)/staticcheck ./...

.PHONY: install
install: build
	install -d -m 0755 $(DESTDIR)$(CNI_BIN_DIR)
	install -m 0755 $(addprefix $(BIN)/,$(COMMAND_NAMES)) $(DESTDIR)$(CNI_BIN_DIR)/

.PHONY: clean
clean:
	rm -rf $(BIN)
