package netns

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/filelock"
)

// Lock takes an exclusive flock(2) on the namespace file at path and returns the function that
// releases it: the lock the reference meta plugins (sbr, vrf) take on CNI_NETNS to serialise their
// instances in one pod, so netloom's and the reference's exclude each other too. Unlike the reference it
// never creates a file where the namespace is missing.
func Lock(path string) (unlock func(), err error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT {
			return nil, conf.InvalidEnv("CNI_NETNS", "%q does not exist; was the container's namespace already removed?", path)
		}
		return nil, conf.IOFailure("CNI_NETNS: open %q to lock it: %v", path, err)
	}
	if err := filelock.Lock(fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock %q: %w", path, err)
	}
	return func() { unix.Close(fd) }, nil
}
