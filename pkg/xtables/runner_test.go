package xtables

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/netloom/netloom/pkg/conf"
)

func TestBatch(t *testing.T) {
	f := NewFake()
	if err := f.Load(IPv4, `*nat
:POSTROUTING ACCEPT [0:0]
:CNI-SAME - [0:0]
:CNI-OLD - [0:0]
:CNI-GONE - [0:0]
-A POSTROUTING -s 10.0.0.1/32 -j CNI-GONE
-A POSTROUTING -s 10.0.0.2/32 -j CNI-GONE
-A CNI-SAME -d 10.0.0.0/8 -j ACCEPT
-A CNI-OLD -j RETURN
-A CNI-GONE -j MASQUERADE
COMMIT
`); err != nil {
		t.Fatal(err)
	}
	tb := f.Tables[IPv4]
	var b Batch
	if !b.Empty() {
		t.Error("a new batch is not empty")
	}
	b.SetChain(tb, "CNI-SAME", []Rule{{"-d", "10.0.0.0/8", "-j", "ACCEPT"}}) // nothing to do
	b.SetChain(tb, "CNI-OLD", []Rule{{"-j", "ACCEPT"}})
	b.SetChain(tb, "CNI-NEW", []Rule{{"-m", "comment", "--comment", "a b", "-j", "ACCEPT"}})
	b.RemoveChain(tb, "POSTROUTING", "CNI-GONE")
	b.RemoveChain(tb, "POSTROUTING", "CNI-NEVER") // nothing to do
	b.Insert("POSTROUTING", 1, Rule{"-j", "CNI-NEW"})
	b.Append("POSTROUTING", Rule{"-j", "CNI-OLD"})
	b.Delete("POSTROUTING", Rule{"-j", "CNI-OLD"})
	want := `*nat
-F CNI-OLD
-A CNI-OLD -j ACCEPT
-N CNI-NEW
-A CNI-NEW -m comment --comment "a b" -j ACCEPT
-D POSTROUTING -s 10.0.0.1/32 -j CNI-GONE
-D POSTROUTING -s 10.0.0.2/32 -j CNI-GONE
-F CNI-GONE
-X CNI-GONE
-I POSTROUTING 1 -j CNI-NEW
-A POSTROUTING -j CNI-OLD
-D POSTROUTING -j CNI-OLD
COMMIT
`
	if got := b.Script("nat"); got != want {
		t.Errorf("script:\n%s\nwant:\n%s", got, want)
	}
	if len(b.Lines()) != strings.Count(want, "\n")-2 {
		t.Errorf("Lines: %q", b.Lines())
	}
	if err := f.Restore(IPv4, b.Script("nat")); err != nil {
		t.Fatalf("the fake refuses the batch: %v", err)
	}
}

func TestRunnerApply(t *testing.T) {
	plan := func(tb Table) (Batch, error) {
		var b Batch
		b.SetChain(tb, "CNI-X", []Rule{{"-j", "ACCEPT"}})
		return b, nil
	}
	r := Runner{Table: "nat"}
	apply := func(f *Fake, fam Family) error {
		r.Tools = f
		tb, err := r.Read(fam)
		if err != nil {
			return err
		}
		return r.Apply(fam, tb, plan)
	}

	// A failed restore is planned again on a fresh read, once.
	f := NewFake()
	f.Fail[IPv6], f.FailN[IPv6] = errors.New("line 2 failed"), 1
	if err := apply(f, IPv6); err != nil {
		t.Fatal(err)
	}
	if f.Saves[IPv6] != 2 || len(f.Restores[IPv6]) != 2 || !f.Tables[IPv6].Chains["CNI-X"] {
		t.Errorf("%d reads, %d restores, want 2 each and the chain made", f.Saves[IPv6], len(f.Restores[IPv6]))
	}
	// Nothing to change: no restore.
	if err := apply(f, IPv6); err != nil || len(f.Restores[IPv6]) != 2 {
		t.Errorf("an empty batch: %v, %d restores", err, len(f.Restores[IPv6]))
	}
	// Twice failed is failed.
	f = NewFake()
	f.Fail[IPv4], f.FailN[IPv4] = errors.New("line 2 failed"), 2
	if err := apply(f, IPv4); err == nil || len(f.Restores[IPv4]) != 2 {
		t.Errorf("two failed restores: %v after %d restores", err, len(f.Restores[IPv4]))
	}
	// A lock timeout is code 11, naming the lock, and not tried again: the runtime retries the command.
	f = NewFake()
	f.Locked[IPv4] = true
	err := apply(f, IPv4)
	if !IsLockTimeout(err) || conf.Code(err) != conf.CodeTryAgainLater || !strings.Contains(err.Error(), LockFile) ||
		len(f.Restores[IPv4]) != 1 {
		t.Errorf("restore under the xtables lock: %v (code %d) after %d restores", err, conf.Code(err), len(f.Restores[IPv4]))
	}
	// Missing tools.
	f = NewFake()
	f.Missing[IPv6] = true
	if err := apply(f, IPv6); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("without ip6tables: %v", err)
	}
}

// A lock timeout keeps its code through the context the backends wrap around it.
func TestLockTimeoutWrapped(t *testing.T) {
	err := fmt.Errorf("ipmasq n/c/e: %w", errors.Join(errors.New("boom"), fmt.Errorf("ip6tables: %w", LockTimeout("ip6tables-restore", time.Second))))
	if !IsLockTimeout(err) || conf.Code(err) != conf.CodeTryAgainLater || !strings.Contains(err.Error(), LockFile) {
		t.Errorf("wrapped lock timeout: %v (code %d)", err, conf.Code(err))
	}
	if IsLockTimeout(errors.New("boom")) {
		t.Error("a plain error is a lock timeout")
	}
}

func TestBinaries(t *testing.T) {
	for _, tc := range []struct {
		v             Variant
		f             Family
		save, restore string
	}{
		{VariantSystem, IPv4, "iptables-save", "iptables-restore"},
		{VariantLegacy, IPv6, "ip6tables-legacy-save", "ip6tables-legacy-restore"},
		{VariantNFT, IPv4, "iptables-nft-save", "iptables-nft-restore"},
	} {
		if s, r := (Config{Variant: tc.v}).Binaries(tc.f); s != tc.save || r != tc.restore {
			t.Errorf("%q %v: %s, %s", tc.v, tc.f, s, r)
		}
	}
	if x := NewExec(Config{}); x.cfg.Wait != DefaultWait {
		t.Errorf("default wait %v", x.cfg.Wait)
	}
}

func TestRunnerReadChains(t *testing.T) {
	f := NewFake()
	if err := f.Load(IPv4, `*nat
:POSTROUTING ACCEPT [0:0]
:CNI-A - [0:0]
:CNI-B - [0:0]
-A POSTROUTING -s 10.0.0.1/32 -j CNI-A
-A POSTROUTING -s 10.0.0.2/32 -j CNI-B
-A CNI-A -j MASQUERADE
-A CNI-B -j MASQUERADE
COMMIT
`); err != nil {
		t.Fatal(err)
	}
	r := Runner{Tools: f, Table: "nat"}
	tb, err := r.ReadChains(IPv4, "CNI-A", "CNI-NONE", "POSTROUTING")
	if err != nil {
		t.Fatal(err)
	}
	if !tb.Chains["CNI-A"] || !tb.Chains["POSTROUTING"] || tb.Chains["CNI-NONE"] || tb.Chains["CNI-B"] {
		t.Errorf("chains %v, want CNI-A and POSTROUTING", tb.Chains)
	}
	if len(tb.Rules["CNI-A"]) != 1 || len(tb.JumpsTo("POSTROUTING", "CNI-B")) != 1 || tb.Rules["CNI-B"] != nil {
		t.Errorf("rules %v", tb.Rules)
	}
	if f.Saves[IPv4] != 0 || f.Lists[IPv4] != 3 {
		t.Errorf("%d saves, %d lists, want 0 and 3", f.Saves[IPv4], f.Lists[IPv4])
	}
	f.Locked[IPv4] = true
	if _, err := r.ReadChains(IPv4, "CNI-A"); !IsLockTimeout(err) {
		t.Errorf("listing under the lock: %v", err)
	}
}

func TestRunnerApplyGuess(t *testing.T) {
	plan := func(tb Table) (Batch, error) {
		var b Batch
		b.SetChain(tb, "CNI-X", []Rule{{"-j", "ACCEPT"}})
		return b, nil
	}
	r := Runner{Table: "nat"}
	guess := NewTable()
	// Right guess: one restore, no read.
	f := NewFake()
	r.Tools = f
	if err := r.ApplyGuess(IPv4, guess, plan); err != nil {
		t.Fatal(err)
	}
	if f.Saves[IPv4] != 0 || len(f.Restores[IPv4]) != 1 || !f.Tables[IPv4].Chains["CNI-X"] {
		t.Errorf("%d reads, %d restores, want none and one", f.Saves[IPv4], len(f.Restores[IPv4]))
	}
	// Wrong guess (the chain exists, with other rules): the restore is refused, the table read, the chain
	// written again.
	if err := f.Restore(IPv4, "*nat\n-F CNI-X\n-A CNI-X -j RETURN\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	if err := r.ApplyGuess(IPv4, guess, plan); err != nil {
		t.Fatal(err)
	}
	if got := f.Tables[IPv4].Rules["CNI-X"]; len(got) != 1 || got[0].String() != "-j ACCEPT" || f.Saves[IPv4] != 1 {
		t.Errorf("after a wrong guess: %v, %d reads", got, f.Saves[IPv4])
	}
	// A lock timeout is not tried again.
	f = NewFake()
	f.Locked[IPv4] = true
	r.Tools = f
	if err := r.ApplyGuess(IPv4, guess, plan); !IsLockTimeout(err) || len(f.Restores[IPv4]) != 1 || f.Saves[IPv4] != 0 {
		t.Errorf("guess under the lock: %v, %d restores, %d reads", err, len(f.Restores[IPv4]), f.Saves[IPv4])
	}
}

func TestNoChain(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{"iptables: No chain/target/match by that name.", true},
		{"ip6tables v1.8.9 (nf_tables): chain `CNI-x' in table `nat' is incompatible, use 'nft' tool.", true},
		{"ip6tables v1.8.9 (nf_tables): chain `CNI-y' in table `nat' is incompatible, use 'nft' tool.", false},
		{"iptables v1.8.9 (nf_tables): Couldn't initialize kernel socket", false},
	} {
		if got := noChain(tc.msg, "CNI-x"); got != tc.want {
			t.Errorf("noChain(%q) = %v", tc.msg, got)
		}
	}
}
