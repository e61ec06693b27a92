package conf

import "strings"

// CNIArg returns the value of key in CNI_ARGS ("K1=V1;K2=V2"), and whether it was given with a value.
// Keys match exactly, as the reference plugins' types.LoadArgs does; other keys (K8S_POD_NAME,
// IgnoreUnknown, ...) are the runtime's business and are ignored.
func CNIArg(cniArgs, key string) (string, bool) {
	for kv := range strings.SplitSeq(cniArgs, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) == key && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}
