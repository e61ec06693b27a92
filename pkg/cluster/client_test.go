package cluster

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// fakeAPIServer answers the Node requests the agent makes, with the JSON a kube-apiserver sends, and
// records every request.
type fakeAPIServer struct {
	mu       sync.Mutex
	requests []string // method and URL path
	patches  []string // content type and body
}

func (f *fakeAPIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/nodes" && r.URL.Query().Get("watch") == "true":
		io.WriteString(w, `{"type":"ADDED","object":{"kind":"Node","apiVersion":"v1","metadata":{"name":"n2","resourceVersion":"8"}}}`+"\n")
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/nodes":
		io.WriteString(w, `{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[{"metadata":{"name":"n1"},"spec":{"podCIDRs":["10.244.1.0/24"]}}]}`)
	case r.Method == http.MethodPatch && r.URL.Path == "/api/v1/nodes/n1":
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.patches = append(f.patches, r.Header.Get("Content-Type")+" "+string(body))
		f.mu.Unlock()
		io.WriteString(w, `{"kind":"Node","apiVersion":"v1","metadata":{"name":"n1"}}`)
	default:
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,"message":"forbidden"}`)
	}
}

// The client's core/v1-only scheme decodes what the agent receives (a NodeList, watch events, a
// Status), its patch is a merge patch of the annotations alone, and it sends nothing else (no
// discovery: the agent's ServiceAccount may only get, list, watch and patch Nodes).
func TestNodeClient(t *testing.T) {
	f := &fakeAPIServer{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, err := NewNodeClient(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lw := c.listWatch()

	obj, err := lw.ListWithContext(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal("list:", err)
	}
	if l, ok := obj.(*corev1.NodeList); !ok || len(l.Items) != 1 || l.Items[0].Name != "n1" || !slices.Equal(l.Items[0].Spec.PodCIDRs, []string{"10.244.1.0/24"}) || l.ResourceVersion != "7" {
		t.Errorf("list: %#v", obj)
	}

	w, err := lw.WatchWithContext(ctx, metav1.ListOptions{ResourceVersion: "7"})
	if err != nil {
		t.Fatal("watch:", err)
	}
	select {
	case ev := <-w.ResultChan():
		if n, ok := ev.Object.(*corev1.Node); ev.Type != watch.Added || !ok || n.Name != "n2" {
			t.Errorf("watch event %s %#v", ev.Type, ev.Object)
		}
	case <-ctx.Done():
		t.Error("no watch event")
	}
	w.Stop()

	if err := c.patchAnnotations(ctx, "n1", map[string]string{AnnotationMode: ModeVXLAN}); err != nil {
		t.Fatal("patch:", err)
	}
	want := `application/merge-patch+json {"metadata":{"annotations":{"netloom.io/mode":"vxlan"}}}`
	if len(f.patches) != 1 || f.patches[0] != want {
		t.Errorf("patches %q, want [%q]", f.patches, want)
	}

	if err := c.patchAnnotations(ctx, "n9", map[string]string{AnnotationMode: ModeVXLAN}); !apierrors.IsForbidden(err) {
		t.Errorf("patch of a Node the server refuses: %v, want a Forbidden API error", err)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	wantReqs := []string{"GET /api/v1/nodes", "GET /api/v1/nodes", "PATCH /api/v1/nodes/n1", "PATCH /api/v1/nodes/n9"}
	if !slices.Equal(f.requests, wantReqs) {
		t.Errorf("requests %q, want %q", f.requests, wantReqs)
	}
}
