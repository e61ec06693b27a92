package doctor

import "path/filepath"

// Defaults of a node, as containerd and CRI-O use them.
const (
	DefaultConfDir  = "/etc/cni/net.d"
	DefaultBinDir   = "/opt/cni/bin"
	DefaultCacheDir = "/var/lib/cni"
)

// BinDirs is the plugin search path: dir when set, else CNI_PATH (colon-separated), else the default.
func BinDirs(dir, cniPath string) []string {
	if dir != "" {
		return filepath.SplitList(dir)
	}
	if cniPath != "" {
		return filepath.SplitList(cniPath)
	}
	return []string{DefaultBinDir}
}
