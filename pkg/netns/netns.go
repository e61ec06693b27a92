// Package netns opens the network namespace a CNI call names, with errors a runtime can act on.
package netns

import (
	"errors"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netloom/netloom/pkg/conf"
)

// Open opens the namespace at path (CNI_NETNS). A path that does not exist or is not a network namespace
// is the caller's mistake and is reported as an invalid CNI_NETNS (code 4) naming the path.
func Open(path string) (ns.NetNS, error) {
	if path == "" {
		return nil, conf.InvalidEnv("CNI_NETNS", "is empty; the runtime must pass the path of the container's network namespace")
	}
	h, err := ns.GetNS(path)
	if err != nil {
		var missing ns.NSPathNotExistErr
		var notNS ns.NSPathNotNSErr
		switch {
		case errors.As(err, &missing):
			return nil, conf.InvalidEnv("CNI_NETNS", "%q does not exist; was the container's namespace already removed?", path)
		case errors.As(err, &notNS):
			return nil, conf.InvalidEnv("CNI_NETNS", "%q is not a network namespace", path)
		}
		return nil, conf.IOFailure("CNI_NETNS: open %q: %v", path, err)
	}
	return h, nil
}

// Gone reports whether err says the namespace no longer exists: DEL treats that as "nothing left to
// remove inside it".
func Gone(err error) bool {
	var missing ns.NSPathNotExistErr
	return errors.As(err, &missing) || (conf.Code(err) == conf.CodeInvalidEnvironment)
}

// With opens the namespace at path (as Open does), runs f with it, and closes it. f runs in the calling
// namespace; it enters the pod's with the handle's Do where it needs to.
func With(path string, f func(pod ns.NetNS) error) error {
	pod, err := Open(path)
	if err != nil {
		return err
	}
	defer pod.Close()
	return f(pod)
}
