package main

import (
	"testing"

	"github.com/netloom/netloom/pkg/conf"
)

func TestParseConf(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stdin    string
		wantCode uint // 0: no error
		wantPrev bool
	}{
		{name: "minimal", stdin: `{"cniVersion":"1.1.0","name":"lo","type":"loopback"}`},
		{name: "old version", stdin: `{"cniVersion":"0.3.1","name":"lo","type":"loopback"}`},
		{name: "with prevResult", wantPrev: true, stdin: `{"cniVersion":"1.0.0","name":"n","type":"loopback",
			"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.1.2.3/24","interface":0}]}}`},
		{name: "empty", stdin: ``, wantCode: conf.CodeDecodingFailure},
		{name: "not JSON", stdin: `{"cniVersion":`, wantCode: conf.CodeDecodingFailure},
		{name: "name of the wrong type", stdin: `{"cniVersion":"1.1.0","name":7}`, wantCode: conf.CodeInvalidConfig},
		{name: "prevResult that does not parse", stdin: `{"cniVersion":"1.0.0","name":"n","prevResult":{"ips":[{"address":"bogus"}]}}`, wantCode: conf.CodeInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := parseConf([]byte(tc.stdin))
			if got := conf.Code(err); got != tc.wantCode || (tc.wantCode != 0) != (err != nil) {
				t.Fatalf("parseConf: code %d (%v), want %d", got, err, tc.wantCode)
			}
			if err == nil && (nc.PrevResult != nil) != tc.wantPrev {
				t.Errorf("prevResult parsed = %v, want %v", nc.PrevResult != nil, tc.wantPrev)
			}
		})
	}
}
