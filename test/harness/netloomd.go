package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// StartNetloomd runs netloom's node daemon (netloomd from PluginDir) inside node with config, its JSON
// configuration as a map; api.socket and stateDir default to files in the daemon's Dir. It returns once
// the API socket exists. Logs are JSON lines in Dir/netloomd.log. Stop sends SIGTERM, which makes
// netloomd withdraw its kernel routes.
func StartNetloomd(t testing.TB, node NetNS, config map[string]any) *Daemon {
	t.Helper()
	d := newDaemon(t, "netloomd", node, false)
	api, _ := config["api"].(map[string]any)
	if api == nil {
		api = map[string]any{}
		config["api"] = api
	}
	if _, ok := api["socket"]; !ok {
		api["socket"] = filepath.Join(d.Dir, "netloomd.sock")
	}
	if _, ok := config["stateDir"]; !ok {
		config["stateDir"] = filepath.Join(d.Dir, "state")
	}
	d.apiAddr = "unix://" + api["socket"].(string)
	b, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := d.writeFile(t, "netloomd.json", string(b))
	d.add("netloomd", []string{filepath.Join(PluginDir(t), "netloomd"), "--config", cfg}, func() error {
		st, err := os.Stat(api["socket"].(string))
		if err != nil {
			return err
		}
		if st.Mode()&os.ModeSocket == 0 {
			return errors.New("api.socket is not a socket")
		}
		return nil
	})
	d.start(t)
	return d
}

// Speaker is the daemon's GoBGP API address as bgp-route's "speaker" key takes it: unix:///path for
// netloomd, host:port for gobgpd (reachable inside the daemon's node only).
func (d *Daemon) Speaker() string {
	if d.apiAddr == "" {
		panic(fmt.Sprintf("%s has no API", d.Kind))
	}
	return d.apiAddr
}
