package expr

import (
	"fmt"
	"strings"
)

// Describe renders exprs as text, one bracket per expression like `nft --debug=netlink`, so rules
// read back from the kernel compare with the ones netloom builds, whoever made them, and tests read as
// text. An Unknown renders as its name and raw attributes: never as anything netloom builds.
func Describe(exprs []Any) string {
	var b strings.Builder
	for _, e := range exprs {
		b.WriteString("[ ")
		switch e := e.(type) {
		case *Meta:
			if e.SourceRegister {
				fmt.Fprintf(&b, "meta set %d with reg %d", e.Key, e.Register)
			} else {
				fmt.Fprintf(&b, "meta load %d => reg %d", e.Key, e.Register)
			}
		case *Payload:
			fmt.Fprintf(&b, "payload load %db @ base %d + %d => reg %d", e.Len, e.Base, e.Offset, e.DestRegister)
		case *Bitwise:
			fmt.Fprintf(&b, "bitwise reg %d = ( reg %d & %x ) ^ %x", e.DestRegister, e.SourceRegister, e.Mask, e.Xor)
		case *Cmp:
			op := map[CmpOp]string{CmpOpEq: "eq", CmpOpNeq: "neq"}[e.Op]
			if op == "" {
				op = fmt.Sprintf("op%d", e.Op)
			}
			fmt.Fprintf(&b, "cmp %s reg %d %x", op, e.Register, e.Data)
		case *Ct:
			switch {
			case e.SourceRegister:
				fmt.Fprintf(&b, "ct set %d with reg %d", e.Key, e.Register)
			case e.Direction != 0:
				fmt.Fprintf(&b, "ct load %d dir %d => reg %d", e.Key, e.Direction, e.Register)
			default:
				fmt.Fprintf(&b, "ct load %d => reg %d", e.Key, e.Register)
			}
		case *Fib:
			fmt.Fprintf(&b, "fib daddr=%t type=%t => reg %d", e.FlagDADDR, e.ResultADDRTYPE, e.Register)
		case *Lookup:
			fmt.Fprintf(&b, "lookup reg %d set %s", e.SourceRegister, e.SetName)
			if e.IsDestRegSet {
				fmt.Fprintf(&b, " dreg %d", e.DestRegister)
			}
			if e.Invert {
				b.WriteString(" inverted")
			}
		case *NAT:
			// The kernel adds range flags of its own; the registers say all.
			fmt.Fprintf(&b, "nat %d family %d addr_min reg %d proto_min reg %d", e.Type, e.Family, e.RegAddrMin, e.RegProtoMin)
		case *Masq:
			b.WriteString("masq")
			if e.Random || e.FullyRandom || e.Persistent || e.ToPorts {
				fmt.Fprintf(&b, " %+v", *e)
			}
		case *Verdict:
			switch e.Kind {
			case VerdictReturn:
				b.WriteString("return")
			case VerdictGoto:
				b.WriteString("goto " + e.Chain)
			default:
				fmt.Fprintf(&b, "verdict %d %s", e.Kind, e.Chain)
			}
		case *Match:
			fmt.Fprintf(&b, "match name %s rev %d info %x", e.Name, e.Rev, e.Info)
		case *Target:
			fmt.Fprintf(&b, "target name %s rev %d info %x", e.Name, e.Rev, e.Info)
		case *Unknown:
			fmt.Fprintf(&b, "%s (not modelled) %x", e.Name, e.Data)
		default:
			fmt.Fprintf(&b, "%T %+v", e, e)
		}
		b.WriteString(" ]")
	}
	return b.String()
}
