// Package rpcwire speaks the wire protocol of Go's net/rpc over HTTP, as rpc.DialHTTP and the
// rpc.Server's HTTP handler do: the client sends an HTTP/1.0 CONNECT, the server answers "200
// Connected to Go RPC", and from then on each side writes one gob stream: a request header
// (service.method, sequence number) followed by the arguments, a response header (the same, and an
// error text) followed by the reply.
//
// The dhcp plugin and its daemon talk this protocol, as the reference's do, so either side can be the
// reference's. net/rpc itself links net/http (with crypto/tls) and html/template for its debug page:
// about 5 MiB that every dhcp plugin process, run once per pod ADD, CHECK and DEL, maps in. This
// package links only encoding/gob. Its tests hold it to net/rpc's client and server in both directions.
package rpcwire

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Path is the HTTP path rpc.DialHTTP connects to (rpc.DefaultRPCPath).
const Path = "/_goRPC_"

// connected is the HTTP status the server answers a CONNECT with, after "HTTP/1.0 ".
const connected = "200 Connected to Go RPC"

// maxHandshake bounds the HTTP request or response header read before the gob streams begin.
const maxHandshake = 8 << 10

var errHeaderTooLong = fmt.Errorf("HTTP header longer than %d bytes", maxHandshake)

// request and response are net/rpc's Request and Response headers. gob matches struct fields by name,
// so these are encoded and decoded exactly as those are.
type request struct {
	ServiceMethod string
	Seq           uint64
}

type response struct {
	ServiceMethod string
	Seq           uint64
	Error         string
}

// invalid is the body the server sends with an error response (net/rpc's invalidRequest).
var invalid = struct{}{}

// ServerError is an error the server reported for a call: the method's error text, or the server's
// own (such as "rpc: can't find method ..."). net/rpc's client returns rpc.ServerError for the same.
type ServerError string

func (e ServerError) Error() string { return string(e) }

// readHeader reads an HTTP header block (a first line, then fields up to an empty line) and returns
// its first line without the line end. It reads at most maxHandshake bytes.
func readHeader(r *bufio.Reader) (string, error) {
	var first string
	n := 0
	for i := 0; ; i++ {
		line, err := r.ReadSlice('\n')
		n += len(line)
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) || n > maxHandshake {
				return "", errHeaderTooLong
			}
			return "", err
		}
		if n > maxHandshake {
			return "", errHeaderTooLong
		}
		text := strings.TrimRight(string(line), "\r\n")
		if i == 0 {
			first = text
			continue
		}
		if text == "" {
			return first, nil
		}
	}
}

// discard reads the next value of the stream and drops it.
func discard(dec *gob.Decoder) error { return dec.DecodeValue(reflect.Value{}) }
