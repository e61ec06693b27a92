package ipamroute

import (
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/conf"
)

func TestParse(t *testing.T) {
	table := 100
	for _, tc := range []struct {
		name  string
		in    Conf
		want  string // the route's String(); "" with field set: an error naming field
		field string
	}{
		{name: "default v4", in: Conf{Dst: "0.0.0.0/0"}, want: "{Dst:{IP:0.0.0.0 Mask:00000000} GW:<nil> MTU:0 AdvMSS:0 Priority:0 Table:<nil> Scope:<nil>}"},
		{name: "v6 with gw", in: Conf{Dst: "::/0", GW: "fd00::1"}},
		{name: "mapped dst", in: Conf{Dst: "::ffff:10.0.0.0/104"}},
		{name: "table", in: Conf{Dst: "10.0.0.0/8", GW: "10.0.0.1", Table: &table}},
		{name: "missing dst", in: Conf{}, field: "r[0].dst"},
		{name: "bad dst", in: Conf{Dst: "10.0.0.1"}, field: "r[0].dst"},
		{name: "short mapped dst", in: Conf{Dst: "::ffff:10.0.0.0/90"}, field: "r[0].dst"},
		{name: "bad gw", in: Conf{Dst: "0.0.0.0/0", GW: "x"}, field: "r[0].gw"},
		{name: "gw with prefix", in: Conf{Dst: "0.0.0.0/0", GW: "10.0.0.1/24"}, field: "r[0].gw"},
		{name: "gw of other family", in: Conf{Dst: "0.0.0.0/0", GW: "fd00::1"}, field: "r[0].gw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Parse("r", []Conf{tc.in})
			if tc.field != "" {
				if conf.Code(err) != conf.CodeInvalidConfig || !strings.Contains(err.Error(), tc.field) {
					t.Fatalf("err %v, want code 7 naming %s", err, tc.field)
				}
				return
			}
			if err != nil || len(rs) != 1 {
				t.Fatalf("Parse: %v %v", rs, err)
			}
			if tc.name == "mapped dst" && rs[0].Dst.String() != "10.0.0.0/8" {
				t.Errorf("dst %s, want 10.0.0.0/8", rs[0].Dst.String())
			}
			if tc.want != "" && rs[0].String() != tc.want {
				t.Errorf("got %s", rs[0])
			}
		})
	}
}
