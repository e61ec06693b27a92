package bgp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// DefaultSocket is where netloomd serves the GoBGP API unless its config says otherwise.
const DefaultSocket = "/run/netloom/netloomd.sock"

// Client talks to a BGP speaker over GoBGP's gRPC API: netloomd on its unix socket, or a stock gobgpd.
type Client struct {
	conn *grpc.ClientConn
	api  api.GobgpApiClient
}

// ErrUnreachable is returned (wrapped) when the speaker does not answer.
var ErrUnreachable = errors.New("speaker unreachable")

// Dial connects to speaker: "unix:///path", a bare absolute path (a unix socket), or "host:port".
// Nothing is sent until the first call, which fails with ErrUnreachable if the speaker is down.
func Dial(speaker string) (*Client, error) {
	target := speaker
	if strings.HasPrefix(speaker, "/") {
		target = "unix://" + speaker
	} else if !strings.HasPrefix(speaker, "unix://") {
		target = "passthrough:///" + speaker
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("speaker %q: %w", speaker, err)
	}
	return &Client{conn: conn, api: api.NewGobgpApiClient(conn)}, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

func unreachable(err error) error {
	if err == nil {
		return nil
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return fmt.Errorf("%w: %v", ErrUnreachable, status.Convert(err).Message())
	}
	return err
}

// Ping asks the speaker for its global configuration: nil when it is up and running BGP.
func (c *Client) Ping(ctx context.Context) error {
	r, err := c.api.GetBgp(ctx, &api.GetBgpRequest{})
	if err != nil {
		return unreachable(err)
	}
	if r.GetGlobal().GetAsn() == 0 {
		return fmt.Errorf("%w: BGP is not started", ErrUnreachable)
	}
	return nil
}

// Announce originates a.
func (c *Client) Announce(ctx context.Context, a Announcement) error {
	p, err := a.Path()
	if err != nil {
		return err
	}
	_, err = c.api.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p})
	return unreachable(err)
}

// Withdraw stops originating a; withdrawing a path that is not there is not an error.
func (c *Client) Withdraw(ctx context.Context, a Announcement) error {
	p, err := a.Path()
	if err != nil {
		return err
	}
	_, err = c.api.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: p.Family, Path: p})
	if err != nil && strings.Contains(err.Error(), "can't find") {
		return nil
	}
	return unreachable(err)
}

// Originated reports whether the speaker's RIB holds a path to prefix that it originated itself.
func (c *Client) Originated(ctx context.Context, prefix netip.Prefix) (bool, error) {
	stream, err := c.api.ListPath(ctx, &api.ListPathRequest{
		TableType: api.TableType_GLOBAL, Family: Family(prefix),
		Prefixes: []*api.TableLookupPrefix{{Prefix: prefix.String(), Type: api.TableLookupPrefix_EXACT}},
	})
	if err != nil {
		return false, unreachable(err)
	}
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, unreachable(err)
		}
		for _, p := range r.GetDestination().GetPaths() {
			if rt, err := DecodePath(p); err == nil && rt.Local && rt.Prefix == prefix && !p.GetIsWithdraw() {
				return true, nil
			}
		}
	}
}

// Peer is one BGP session of the speaker.
type Peer struct {
	Address string
	ASN     uint32
	// State is the session's state in GoBGP's words ("established", "active", "connect", ...).
	State string
	// Established says whether it is up.
	Established bool
}

// Peers lists the speaker's sessions and their state.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	stream, err := c.api.ListPeer(ctx, &api.ListPeerRequest{})
	if err != nil {
		return nil, unreachable(err)
	}
	var out []Peer
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, unreachable(err)
		}
		p := r.GetPeer()
		st := p.GetState().GetSessionState()
		out = append(out, Peer{
			Address:     p.GetConf().GetNeighborAddress(),
			ASN:         p.GetConf().GetPeerAsn(),
			State:       strings.ToLower(st.String()),
			Established: st == api.PeerState_ESTABLISHED,
		})
	}
}
