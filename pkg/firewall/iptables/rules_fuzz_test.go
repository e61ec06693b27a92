package iptables

import "testing"

// FuzzComment holds parseComment to invert Comment for any network name and container ID.
func FuzzComment(f *testing.F) {
	f.Add("netloom", "0123abcd")
	f.Add(`a"b\c`, "id with spaces")
	f.Add("\xff\x00", "")
	f.Fuzz(func(t *testing.T, network, containerID string) {
		c := Comment(network, containerID)
		n, id, ok := parseComment(c)
		if !ok || n != network || id != containerID {
			t.Fatalf("parseComment(Comment(%q, %q)) = %q, %q, %v", network, containerID, n, id, ok)
		}
		if name := ChainName(network, containerID); !isChainName(name) {
			t.Fatalf("ChainName = %q", name)
		}
	})
}
