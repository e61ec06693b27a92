// Package nftexpr renders nftables rule expressions as text, one bracket per expression like
// `nft --debug=netlink`, so rules read back from the kernel compare with the ones netloom builds,
// whoever made them, and tests read as text. Both nftables backends (masquerade, portmap) use it.
package nftexpr

import (
	"fmt"
	"strings"

	"github.com/google/nftables/expr"
)

// Describe renders exprs.
func Describe(exprs []expr.Any) string {
	var b strings.Builder
	for _, e := range exprs {
		b.WriteString("[ ")
		switch e := e.(type) {
		case *expr.Meta:
			fmt.Fprintf(&b, "meta load %d => reg %d", e.Key, e.Register)
		case *expr.Payload:
			fmt.Fprintf(&b, "payload load %db @ base %d + %d => reg %d", e.Len, e.Base, e.Offset, e.DestRegister)
		case *expr.Bitwise:
			fmt.Fprintf(&b, "bitwise reg %d = ( reg %d & %x ) ^ %x", e.DestRegister, e.SourceRegister, e.Mask, e.Xor)
		case *expr.Cmp:
			op := map[expr.CmpOp]string{expr.CmpOpEq: "eq", expr.CmpOpNeq: "neq"}[e.Op]
			if op == "" {
				op = fmt.Sprintf("op%d", e.Op)
			}
			fmt.Fprintf(&b, "cmp %s reg %d %x", op, e.Register, e.Data)
		case *expr.Ct:
			fmt.Fprintf(&b, "ct load %d => reg %d", e.Key, e.Register)
		case *expr.Fib:
			fmt.Fprintf(&b, "fib daddr=%t type=%t => reg %d", e.FlagDADDR, e.ResultADDRTYPE, e.Register)
		case *expr.Lookup:
			fmt.Fprintf(&b, "lookup reg %d set %s", e.SourceRegister, e.SetName)
			if e.IsDestRegSet {
				fmt.Fprintf(&b, " dreg %d", e.DestRegister)
			}
		case *expr.NAT:
			// The kernel adds range flags of its own; the registers say all.
			fmt.Fprintf(&b, "nat %d family %d addr_min reg %d proto_min reg %d", e.Type, e.Family, e.RegAddrMin, e.RegProtoMin)
		case *expr.Masq:
			b.WriteString("masq")
			if e.Random || e.FullyRandom || e.Persistent || e.ToPorts {
				fmt.Fprintf(&b, " %+v", *e)
			}
		case *expr.Verdict:
			switch e.Kind {
			case expr.VerdictReturn:
				b.WriteString("return")
			case expr.VerdictGoto:
				b.WriteString("goto " + e.Chain)
			default:
				fmt.Fprintf(&b, "verdict %d %s", e.Kind, e.Chain)
			}
		default:
			fmt.Fprintf(&b, "%T %+v", e, e)
		}
		b.WriteString(" ]")
	}
	return b.String()
}
