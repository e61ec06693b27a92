// Package doccheck keeps plugin READMEs honest: a test lists every JSON key a config struct accepts
// and fails when the README does not mention one of them.
package doccheck

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// JSONKeys returns the JSON keys of v's struct type and of the structs it nests (fields, pointers,
// slices, maps), skipping fields tagged "-" and embedded types from outside the module whose keys the
// README documents once (e.g. types.NetConf's cniVersion, name, type).
func JSONKeys(v any, skip ...string) []string {
	skipped := map[string]bool{}
	for _, s := range skip {
		skipped[s] = true
	}
	seen := map[reflect.Type]bool{}
	var keys []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && name == "" {
				if strings.HasPrefix(f.Type.PkgPath(), "github.com/netloom/") {
					walk(f.Type)
				}
				continue
			}
			if !f.IsExported() || name == "" {
				continue
			}
			if !skipped[name] {
				keys = append(keys, name)
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeOf(v))
	return keys
}

// RequireKeysInREADME fails t for each key of v (see JSONKeys) that readme does not mention as `key`.
func RequireKeysInREADME(t *testing.T, readme string, v any, skip ...string) {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range JSONKeys(v, skip...) {
		if !strings.Contains(string(b), "`"+k+"`") {
			t.Errorf("%s does not document the config key `%s`", readme, k)
		}
	}
}
