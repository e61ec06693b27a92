package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/netloom/netloom/pkg/conf"
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

func (s *hungWithdraw) AddPath(context.Context, *api.AddPathRequest) (*api.AddPathResponse, error) {
	s.mu.Lock()
	s.announced++
	s.mu.Unlock()
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
	n, err := parseConfig([]byte(cfg(`,"speaker":"unix://` + sock + `","stateDir":"` + stateDir + `","nextHop":"10.77.1.11"` + prev)))
	if err != nil {
		t.Fatal(err)
	}
	// The record step fails: a directory stands where the record's temporary file goes.
	if err := os.MkdirAll(filepath.Join(stateDir, "pods", ".ctr1.eth0.tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- cmdAdd(n, &skel.CmdArgs{ContainerID: "ctr1", IfName: "eth0", StdinData: []byte("{}")})
	}()
	select {
	case err := <-done:
		if conf.Code(err) != conf.CodeIOFailure {
			t.Errorf("ADD: %v; want code %d (the record could not be written)", err, conf.CodeIOFailure)
		}
		t.Logf("ADD failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(6 * callTimeout):
		t.Fatalf("ADD still running after %v: the rollback's withdraw waits on the hung speaker without a deadline", 6*callTimeout)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.announced != 1 || fake.withdraws != 1 {
		t.Errorf("speaker saw %d announcements and %d withdrawals; want 1 and 1", fake.announced, fake.withdraws)
	}
}
