// Package deploy checks the manifests in deploy/ without a cluster: every document decodes strictly into
// its k8s.io/api type (an unknown or misspelt field is an error), and what the agent relies on is there.
package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/netloom/netloom/pkg/cluster"
)

const manifest = "../../deploy/netloom.yaml"

// decodeStrict turns one YAML document into obj, refusing fields obj's type does not have.
func decodeStrict(t *testing.T, doc []byte, obj any) {
	t.Helper()
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		t.Fatalf("YAML: %v\n%s", err, doc)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		t.Fatalf("%T: %v\n%s", obj, err, doc)
	}
}

func TestManifests(t *testing.T) {
	raw, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	var (
		sa   corev1.ServiceAccount
		role rbacv1.ClusterRole
		bind rbacv1.ClusterRoleBinding
		cm   corev1.ConfigMap
		ds   appsv1.DaemonSet
	)
	kinds := map[string]any{"ServiceAccount": &sa, "ClusterRole": &role, "ClusterRoleBinding": &bind, "ConfigMap": &cm, "DaemonSet": &ds}
	seen := map[string]bool{}
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil || meta.Kind == "" {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			t.Fatalf("document without a kind: %v\n%s", err, doc)
		}
		obj, ok := kinds[meta.Kind]
		if !ok {
			t.Fatalf("unexpected kind %s", meta.Kind)
		}
		if seen[meta.Kind] {
			t.Fatalf("two %s documents", meta.Kind)
		}
		seen[meta.Kind] = true
		decodeStrict(t, []byte(doc), obj)
	}
	if len(seen) != len(kinds) {
		t.Fatalf("kinds %v, want every one of %v", seen, kinds)
	}

	// RBAC: exactly nodes get/list/watch/patch, bound to the DaemonSet's ServiceAccount.
	if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].APIGroups, []string{""}) || !slices.Equal(role.Rules[0].Resources, []string{"nodes"}) ||
		!slices.Equal(role.Rules[0].Verbs, []string{"get", "list", "watch", "patch"}) {
		t.Errorf("ClusterRole rules %+v: want nodes get, list, watch, patch only", role.Rules)
	}
	if bind.RoleRef.Name != role.Name || len(bind.Subjects) != 1 || bind.Subjects[0].Name != sa.Name || bind.Subjects[0].Namespace != sa.Namespace {
		t.Errorf("binding %+v does not bind %s to %s/%s", bind, role.Name, sa.Namespace, sa.Name)
	}

	// The agent's configuration parses as netloomd would read it.
	if _, err := cluster.ParseConfig([]byte(cm.Data["cluster.json"])); err != nil {
		t.Errorf("ConfigMap cluster.json: %v", err)
	}

	// The DaemonSet: every node, host network, the installer first, the agent with its node name.
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork || spec.ServiceAccountName != sa.Name || spec.PriorityClassName != "system-node-critical" {
		t.Errorf("pod spec: hostNetwork %v, serviceAccount %q, priority %q", spec.HostNetwork, spec.ServiceAccountName, spec.PriorityClassName)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(t corev1.Toleration) bool { return t.Operator == corev1.TolerationOpExists && t.Key == "" }) {
		t.Errorf("tolerations %+v: want {operator: Exists}, to run on every node", spec.Tolerations)
	}
	if len(spec.InitContainers) != 1 || !slices.Contains(spec.InitContainers[0].Command, "install-cni") {
		t.Errorf("init containers %+v: want the install-cni one", spec.InitContainers)
	}
	if len(spec.Containers) != 1 || !slices.Contains(spec.Containers[0].Command, "cluster") {
		t.Fatalf("containers %+v: want netloomd cluster", spec.Containers)
	}
	c := spec.Containers[0]
	if len(c.Env) == 0 || c.Env[0].Name != "NODE_NAME" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("env %+v: want NODE_NAME from spec.nodeName", c.Env)
	}
	// One image, the one make image tags (the Makefile reads it from this file).
	for _, cc := range append(spec.InitContainers, c) {
		if cc.Image != spec.InitContainers[0].Image || cc.ImagePullPolicy != corev1.PullIfNotPresent {
			t.Errorf("%s: image %q pull %q: want one image for both, IfNotPresent (loaded from a tarball)", cc.Name, cc.Image, cc.ImagePullPolicy)
		}
		if strings.Count(strings.Split(cc.Image, ":")[0], "/") > 1 || strings.Contains(strings.Split(cc.Image, "/")[0], ".") {
			t.Errorf("image %q names a registry host", cc.Image)
		}
	}
}

func stripComments(doc string) string {
	var keep []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
