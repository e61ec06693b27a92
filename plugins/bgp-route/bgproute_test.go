package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/netloom/netloom/pkg/plugin"
)

// hungWithdraw is a speaker that accepts announcements and never answers a withdrawal: a daemon stuck
// mid-way. (A unit-test stand-in; the real speakers are tested in test/integration.)
type hungWithdraw struct {
	api.UnimplementedGobgpApiServer
	mu        sync.Mutex
	announced int
	withdraws int
}

func (s *hungWithdraw) GetBgp(context.Context, *api.GetBgpRequest) (*api.GetBgpResponse, error) {
	return &api.GetBgpResponse{Global: &api.Global{Asn: 65001}}, nil
}

// AddPath accepts the first announcement and refuses the others.
func (s *hungWithdraw) AddPath(context.Context, *api.AddPathRequest) (*api.AddPathResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.announced++
	if s.announced > 1 {
		return nil, status.Error(codes.InvalidArgument, "refused")
	}
	return &api.AddPathResponse{}, nil
}

func (s *hungWithdraw) DeletePath(ctx context.Context, _ *api.DeletePathRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	s.withdraws++
	s.mu.Unlock()
	<-ctx.Done() // ends only when the client gives up
	return nil, ctx.Err()
}

// An ADD that fails after announcing rolls back by withdrawing, and every withdrawal is bounded like
// any other speaker call: a hung speaker fails the ADD in about callTimeout per path, never hangs it.
func TestAddRollbackWithdrawIsBounded(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "speaker.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	fake := &hungWithdraw{}
	api.RegisterGobgpApiServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	stateDir := filepath.Join(dir, "state")
	// Two paths (the pod's IPv4 and IPv6 addresses): the speaker takes the first, refuses the second.
	n, err := parseConfig([]byte(cfg(`,"speaker":"unix://` + sock + `","stateDir":"` + stateDir + `"` + prev)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- cmdAdd(n, &plugin.Args{ContainerID: "ctr1", IfName: "eth0", StdinData: []byte("{}")})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("ADD: %v; want the speaker's refusal", err)
		}
		t.Logf("ADD failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(6 * callTimeout):
		t.Fatalf("ADD still running after %v: the rollback's withdraw waits on the hung speaker without a deadline", 6*callTimeout)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.announced != 2 || fake.withdraws != 1 {
		t.Errorf("speaker saw %d announcements and %d withdrawals; want 2 and 1", fake.announced, fake.withdraws)
	}
	if left, _ := filepath.Glob(filepath.Join(stateDir, "pods", "*")); len(left) != 0 {
		t.Errorf("records left after the failed ADD: %v", left)
	}
}
