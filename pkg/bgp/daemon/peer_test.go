package daemon

import "testing"

// TestPeerSettings: a neighbour's keys reach GoBGP's peer: graceful restart on the session and on each
// family it carries, the families asked for only, own-AS acceptance.
func TestPeerSettings(t *testing.T) {
	p := peer(Neighbor{Address: "10.0.0.2", ASN: 64512, HoldTime: 9, GracefulRestart: 120, AllowOwnAS: 1, AddressFamilies: []string{FamilyIPv4}})
	if gr := p.GetGracefulRestart(); !gr.GetEnabled() || gr.GetRestartTime() != 120 {
		t.Errorf("graceful restart %+v", gr)
	}
	if p.GetConf().GetAllowOwnAsn() != 1 {
		t.Errorf("allowOwnAS %d", p.GetConf().GetAllowOwnAsn())
	}
	if len(p.AfiSafis) != 1 || p.AfiSafis[0].GetConfig().GetFamily().GetAfi().String() != "AFI_IP" || !p.AfiSafis[0].GetMpGracefulRestart().GetConfig().GetEnabled() {
		t.Errorf("families %+v", p.AfiSafis)
	}
	both := peer(Neighbor{Address: "10.0.0.2", ASN: 64512, HoldTime: 90})
	if both.GetGracefulRestart() != nil || len(both.AfiSafis) != 2 || both.AfiSafis[0].GetMpGracefulRestart() != nil {
		t.Errorf("defaults: graceful restart %+v, families %+v", both.GetGracefulRestart(), both.AfiSafis)
	}
}

// TestNeighborEqual: any changed key makes a session differ (SetNeighbor then replaces it).
func TestNeighborEqual(t *testing.T) {
	base := Neighbor{Address: "10.0.0.2", ASN: 1, AddressFamilies: []string{FamilyIPv4}}
	if !base.equal(base) {
		t.Error("a neighbour differs from itself")
	}
	for _, n := range []Neighbor{
		{Address: "10.0.0.3", ASN: 1, AddressFamilies: []string{FamilyIPv4}},
		{Address: "10.0.0.2", ASN: 2, AddressFamilies: []string{FamilyIPv4}},
		{Address: "10.0.0.2", ASN: 1},
		{Address: "10.0.0.2", ASN: 1, AddressFamilies: []string{FamilyIPv4}, GracefulRestart: 1},
		{Address: "10.0.0.2", ASN: 1, AddressFamilies: []string{FamilyIPv4}, Password: "x"},
	} {
		if base.equal(n) {
			t.Errorf("%+v equals %+v", n, base)
		}
	}
	if neighborKey("::ffff:10.0.0.2") != neighborKey("10.0.0.2") {
		t.Error("an IPv4-mapped address is another neighbour")
	}
}
