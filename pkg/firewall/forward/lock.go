package forward

import (
	"errors"
	"time"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/filelock"
)

// DefaultLockFile is the lock a netloom firewall change holds while it adds what pods share (see
// Serialise).
const DefaultLockFile = "/run/netloom/firewall.lock"

// Serialise runs change holding file's lock, waiting for it at most wait. A change reads the table,
// plans and writes, and nothing else keeps a second process from reading between the two: iptables-nft
// takes no xtables lock, the legacy build's covers only the write, and an nf_tables transaction only its
// own messages. So of two first ADDs on a node, both found the forward chain's jumps missing and both
// added them (the jump to CNI-FORWARD twice). The iptables backend holds it only for a change that adds
// such shared rules (Plan.Change), the nftables one for every change (a transaction takes a millisecond
// or two). A wait that runs out is CNI code 11, try again later.
func Serialise(file string, wait time.Duration, change func() error) error {
	unlock, err := filelock.Create(file, wait)
	if errors.Is(err, filelock.ErrTimeout) {
		return conf.TryAgain("another netloom firewall change has held %s for over %v; try again", file, wait)
	}
	if err != nil {
		return err
	}
	defer unlock()
	return change()
}
