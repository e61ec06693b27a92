// Command bgp-route is a chained CNI plugin that announces pods over BGP through a speaker (netloomd,
package main

import "github.com/netloom/netloom/pkg/plugin"

func main() {
	plugin.Main("bgp-route", plugin.Verbs[*NetConf]{Parse: parseArgs, Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus}.Funcs())
}
