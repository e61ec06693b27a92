package ipamexec

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// delegate runs plugin, found in CNI_PATH, for command with stdin and the caller's environment (its
// CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH), as the CNI spec has a plugin run its
// delegate. It returns the plugin's stdout; a plugin that fails returns its CNI error (*types.Error)
// when it printed one, and its stderr passes through to ours.
func delegate(ctx context.Context, plugin, command string, stdin []byte) ([]byte, error) {
	path, err := find(plugin, os.Getenv("CNI_PATH"))
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = withCommand(os.Environ(), command)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var e types.Error
		if jerr := json.Unmarshal(stdout.Bytes(), &e); jerr == nil && (e.Code != 0 || e.Msg != "") {
			return nil, &e
		}
		if stdout.Len() > 0 {
			return nil, fmt.Errorf("%s failed: %v: %s", path, err, strings.TrimSpace(stdout.String()))
		}
		return nil, fmt.Errorf("%s failed with no error message: %v", path, err)
	}
	return stdout.Bytes(), nil
}

// run is delegate for the commands whose output is not used.
func run(ctx context.Context, plugin, command string, stdin []byte) error {
	_, err := delegate(ctx, plugin, command, stdin)
	return err
}

// find returns the executable called plugin in the directories of cniPath, in order.
func find(plugin, cniPath string) (string, error) {
	if plugin == "" || strings.ContainsRune(plugin, '/') {
		return "", fmt.Errorf("%q is not a plugin name (a file name in CNI_PATH)", plugin)
	}
	dirs := filepath.SplitList(cniPath)
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, plugin)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("failed to find plugin %q in path %v", plugin, dirs)
}

// withCommand is env with CNI_COMMAND set to command.
func withCommand(env []string, command string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CNI_COMMAND=") {
			out = append(out, kv)
		}
	}
	return append(out, "CNI_COMMAND="+command)
}
