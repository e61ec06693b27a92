package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// NodeClient is all the agent asks of the API server: list and watch Nodes, and merge-patch one Node's
// annotations (the deployment's ClusterRole grants nodes get/list/watch/patch, nothing else).
//
// It is a bare REST client over a scheme that knows core/v1 alone. client-go's typed clients, even
// the core group's, decode with k8s.io/client-go/kubernetes/scheme, which registers every API group
// and nearly tripled netloomd's size.
type NodeClient struct {
	rest *rest.RESTClient
}

// NewNodeClient returns a client for the core/v1 Nodes of the API server rc points at. It copies rc;
// it talks to the server only when the agent runs (no discovery).
func NewNodeClient(rc *rest.Config) (*NodeClient, error) {
	scheme := runtime.NewScheme()
	// corev1.AddToScheme also registers, in v1, the meta/v1 types a client decodes and encodes:
	// WatchEvent, Status, ListOptions, PatchOptions...
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("core/v1 scheme: %w", err)
	}
	c := rest.CopyConfig(rc)
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	r, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("REST client for Nodes: %w", err)
	}
	return &NodeClient{rest: r}, nil
}

// listWatch lists and watches every Node.
func (c *NodeClient) listWatch() *cache.ListWatch {
	return cache.NewListWatchFromClient(c.rest, "nodes", metav1.NamespaceAll, fields.Everything())
}

// patchAnnotations sets the annotations on the Node called name with a merge patch, which leaves its
// other annotations (and everything else) alone.
func (c *NodeClient) patchAnnotations(ctx context.Context, name string, annotations map[string]string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	if err != nil {
		return err
	}
	return c.rest.Patch(types.MergePatchType).
		Resource("nodes").
		Name(name).
		VersionedParams(&metav1.PatchOptions{}, metav1.ParameterCodec).
		Body(patch).
		Do(ctx).
		Error()
}
