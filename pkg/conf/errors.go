// Package conf holds what every netloom plugin needs to turn its stdin into a validated configuration:
// JSON decoding with errors that point at the offending field, name validation following the CNI spec's
// character rules, and the mapping of failures to CNI error codes.
package conf

import (
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// CNI error codes used by netloom, named as in the CNI specification.
const (
	CodeIncompatibleVersion = types.ErrIncompatibleCNIVersion      // 1
	CodeUnsupportedField    = types.ErrUnsupportedField            // 2
	CodeUnknownContainer    = types.ErrUnknownContainer            // 3
	CodeInvalidEnvironment  = types.ErrInvalidEnvironmentVariables // 4
	CodeIOFailure           = types.ErrIOFailure                   // 5
	CodeDecodingFailure     = types.ErrDecodingFailure             // 6
	CodeInvalidConfig       = types.ErrInvalidNetworkConfig        // 7
	CodeTryAgainLater       = types.ErrTryAgainLater               // 11
	CodeNotAvailable        = types.ErrPluginNotAvailable          // 50
	CodeLimitedConnectivity = types.ErrLimitedConnectivity         // 51
	CodeInternal            = types.ErrInternal                    // 999
)

// Invalid reports a bad value in the network configuration (CNI code 7). field is the JSON path of the
// key as a user writes it ("ipam.ranges[0][1].gateway"); the message should say what would be valid.
func Invalid(field, format string, args ...any) *types.Error {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = fmt.Sprintf("%s: %s", field, msg)
	}
	return types.NewError(CodeInvalidConfig, msg, "")
}

// InvalidEnv reports a bad or missing CNI_* environment variable (CNI code 4).
func InvalidEnv(variable, format string, args ...any) *types.Error {
	return types.NewError(CodeInvalidEnvironment, variable+": "+fmt.Sprintf(format, args...), "")
}

// TryAgain reports a transient condition the runtime should retry (CNI code 11).
func TryAgain(format string, args ...any) *types.Error {
	return types.NewError(CodeTryAgainLater, fmt.Sprintf(format, args...), "")
}

// IOFailure reports a failure to read or write node state (CNI code 5).
func IOFailure(format string, args ...any) *types.Error {
	return types.NewError(CodeIOFailure, fmt.Sprintf(format, args...), "")
}

// NotAvailable reports, for STATUS, that the plugin cannot serve ADDs right now (CNI code 50).
func NotAvailable(format string, args ...any) *types.Error {
	return types.NewError(CodeNotAvailable, fmt.Sprintf(format, args...), "")
}

// Internal wraps an unexpected failure: code 999 with the cause's text, or the code of a CNI error
// inside it (see ForRuntime).
func Internal(err error) *types.Error { return ForRuntime(err) }

// ForRuntime is what the runtime reads for a command's error: the code of the first CNI error in err's
// tree (999 when there is none), with the whole message, including the context that wrapping added
// around it ("bridge \"cni0\": ..."), and the inner error's details, where keeping only the inner
// error (as the CNI library's skeleton does) would drop that context. A joined error reads as its
// parts separated by "; ".
func ForRuntime(err error) *types.Error {
	var te *types.Error
	if !errors.As(err, &te) {
		return types.NewError(CodeInternal, oneLine(err.Error()), "")
	}
	if te == err {
		return te
	}
	msg := err.Error()
	if te.Details != "" {
		// types.Error's text is "msg; details": keep the details in their own field only.
		msg = strings.Replace(msg, te.Error(), te.Msg, 1)
	}
	return types.NewError(te.Code, oneLine(msg), te.Details)
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// Code returns the CNI code carried by err, or 0 when err carries none.
func Code(err error) uint {
	var te *types.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}
