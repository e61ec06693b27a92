package conf

import (
	"fmt"
	"strings"
	"unicode"
)

// isSpecName is the CNI specification's rule for container IDs and network names: a letter or digit,
// then letters, digits, '_', '.' and '-' (the specification's ^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$, checked
// without a regexp compiled at start-up in every plugin process). Values that pass it are safe in file
// names, rule comments and nft object names.
func isSpecName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// ValidateContainerID checks CNI_CONTAINERID against the specification's character rules (code 4).
func ValidateContainerID(id string) error {
	if !isSpecName(id) || len(id) > 255 {
		return InvalidEnv("CNI_CONTAINERID", "%q is not a valid containerID: the CNI specification allows letters, digits, '_', '.' and '-', starting with a letter or digit", id)
	}
	return nil
}

// ValidateNetworkName checks a network's "name" against the specification's character rules (code 7).
func ValidateNetworkName(name string) error {
	if !isSpecName(name) || len(name) > 255 {
		return Invalid("name", "%q is not a network name: the CNI specification allows letters, digits, '_', '.' and '-', starting with a letter or digit", name)
	}
	return nil
}

// MaxIfNameLen is IFNAMSIZ-1: the kernel's limit on an interface name.
const MaxIfNameLen = 15

// ValidateIfName checks an interface name the way the kernel will (dev_valid_name), so a bad name fails
// at parse time with the field named instead of deep inside a netlink call.
func ValidateIfName(field, name string) error {
	switch {
	case name == "":
		return Invalid(field, "interface name is empty")
	case len(name) > MaxIfNameLen:
		return Invalid(field, "interface name %q is %d bytes; the kernel allows at most %d", name, len(name), MaxIfNameLen)
	case name == "." || name == "..":
		return Invalid(field, "interface name %q is not allowed", name)
	}
	for _, r := range name {
		if r == '/' || r == ':' || unicode.IsSpace(r) || r < 0x20 || r > 0x7e {
			return Invalid(field, "interface name %q contains %q; use letters, digits, '-', '_' or '.'", name, r)
		}
	}
	return nil
}

// ValidateFileComponent checks a value that netloom uses as one path component under a state directory
// (a network name, a container ID): it must not be empty, '.', '..', or contain '/' or NUL, so it can never
// name anything outside that directory.
func ValidateFileComponent(field, v string) error {
	switch {
	case v == "":
		return Invalid(field, "must not be empty")
	case v == "." || v == "..":
		return Invalid(field, "%q would escape the state directory", v)
	case strings.ContainsAny(v, "/\x00"):
		return Invalid(field, "%q contains '/' or NUL, which would escape the state directory", v)
	case len(v) > 255:
		return Invalid(field, "is %d bytes; a file name holds at most 255", len(v))
	}
	return nil
}

// Attachment identifies one CNI attachment: the key under which netloom stores and finds what it made.
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

func (a Attachment) String() string { return fmt.Sprintf("%s/%s", a.ContainerID, a.IfName) }
