package link

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// CreateDummy creates a dummy link called name in the calling thread's namespace, down, and returns it.
func CreateDummy(name string) (netlink.Link, error) {
	la := netlink.NewLinkAttrs()
	la.Name = name
	if err := netlink.LinkAdd(&netlink.Dummy{LinkAttrs: la}); err != nil {
		return nil, fmt.Errorf("create dummy %q: %w", name, err)
	}
	return ByName(name)
}
