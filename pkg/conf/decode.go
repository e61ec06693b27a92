package conf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// Load decodes a plugin's stdin over n, which holds the defaults, then validates it: the first step of
// every plugin's parsing. It returns n, or the first error (Decode's, or validate's).
func Load[T any](stdin []byte, n *T, validate func(*T) error) (*T, error) {
	if err := Decode(stdin, n); err != nil {
		return nil, err
	}
	if err := validate(n); err != nil {
		return nil, err
	}
	return n, nil
}

// Decode unmarshals a plugin's stdin into v. Syntax errors are reported with the byte offset and code 6;
// a value of the wrong JSON type is reported with the key's path and code 7, so a user sees
// `"mtu": want a number, got string` rather than a Go type name.
func Decode(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return types.NewError(CodeDecodingFailure, "network configuration on stdin is empty", "")
	}
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return types.NewError(CodeDecodingFailure,
			fmt.Sprintf("network configuration is not valid JSON: %v (at byte %d)", syn, syn.Offset), "")
	}
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		field := ute.Field
		if field == "" {
			field = "(top level)"
		}
		return Invalid(field, "want %s, got JSON %s", jsonKind(ute.Type), ute.Value)
	}
	// Errors from custom UnmarshalJSON methods (CIDRs, addresses) already name what is wrong.
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	return types.NewError(CodeInvalidConfig, "network configuration: "+err.Error(), "")
}

func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return strings.ToLower(t.Kind().String())
}
