package harness

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeTool is the project's copy of the kube-apiserver-local recipe (test/kube/).
func kubeTool() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "kube", "kube-apiserver-local")
}

// KubeAPIServer is a real kube-apiserver backed by a real etcd, on the host's loopback, with RBAC on.
type KubeAPIServer struct {
	Dir    string
	URL    string // https://127.0.0.1:<port>
	Token  string // the admin's (system:masters)
	CA     string // path of the CA certificate
	Client kubernetes.Interface
}

// StartKubeAPIServer starts one for t (`make kube-apiserver` builds its binaries once; a start takes a
// few seconds) and stops it, by the PIDs it recorded, when t ends.
func StartKubeAPIServer(t testing.TB) *KubeAPIServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "nlkube-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dir); err != nil { // the tool creates it, and refuses a directory it did not make
		t.Fatal(err)
	}
	out, err := exec.Command(kubeTool(), "start", dir).CombinedOutput()
	t.Cleanup(func() {
		if out, err := exec.Command(kubeTool(), "stop", dir).CombinedOutput(); err != nil {
			t.Errorf("kube-apiserver-local stop %s: %v: %s", dir, err, out)
		}
	})
	if err != nil {
		t.Fatalf("kube-apiserver-local start (make kube-apiserver builds it): %v\n%s", err, out)
	}
	s := &KubeAPIServer{Dir: dir}
	env, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(env), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `'"`)
		switch k {
		case "KUBE_APISERVER_URL":
			s.URL = v
		case "KUBE_APISERVER_TOKEN":
			s.Token = v
		case "KUBE_APISERVER_CA":
			s.CA = v
		}
	}
	rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	rc.QPS, rc.Burst = 500, 1000 // the tests create Nodes by the thousand; client-go's default is 5 per second
	if s.Client, err = kubernetes.NewForConfig(rc); err != nil {
		t.Fatal(err)
	}
	return s
}

// StopAPIServer stops only the kube-apiserver process (by the PID the tool recorded): SIGTERM, then
// SIGKILL after grace (0: SIGKILL at once, a crash), as kubelet stops a static pod. On SIGTERM it
// refuses new connections at once but serves the watches already open until it exits (up to 60 s
// later), so for a watching client the outage starts with the kill. etcd and its data stay:
// StartAPIServer brings back the same objects on the same URL.
func (s *KubeAPIServer) StopAPIServer(t testing.TB, grace time.Duration) {
	t.Helper()
	if out, err := exec.Command(kubeTool(), "stop-apiserver", s.Dir, "--grace", fmt.Sprint(grace.Seconds())).CombinedOutput(); err != nil {
		t.Fatalf("kube-apiserver-local stop-apiserver %s: %v\n%s", s.Dir, err, out)
	}
}

// StartAPIServer starts the kube-apiserver StopAPIServer stopped, with the same flags and port, and
// returns once its /readyz is ok.
func (s *KubeAPIServer) StartAPIServer(t testing.TB) {
	t.Helper()
	if out, err := exec.Command(kubeTool(), "start-apiserver", s.Dir).CombinedOutput(); err != nil {
		t.Fatalf("kube-apiserver-local start-apiserver %s: %v\n%s", s.Dir, err, out)
	}
}

// Kubeconfig writes a kubeconfig for server url authenticating with token, and returns its path.
func (s *KubeAPIServer) Kubeconfig(t testing.TB, url, token string) string {
	t.Helper()
	ca, err := os.ReadFile(s.CA)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: test
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: test}
current-context: test
`, url, base64.StdEncoding.EncodeToString(ca), token)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ServiceAccountToken creates the ServiceAccount namespace/name bound to a ClusterRole with rules (the
// deployment's), and returns a token for it: the agent then has exactly that role's rights.
func (s *KubeAPIServer) ServiceAccountToken(t testing.TB, namespace, name string, rules []rbacv1.PolicyRule) string {
	t.Helper()
	ctx := context.Background()
	c := s.Client
	// Created once per server: a test that starts agents in several rounds asks again.
	created := func(_ any, err error) {
		t.Helper()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	created(c.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}))
	created(c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}))
	created(c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: namespace, Name: name}},
	}, metav1.CreateOptions{}))
	exp := int64(3600)
	tr, err := c.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// APIForward makes the API server reachable inside a node's namespace, whose loopback is its own: the
// test process listens on 127.0.0.1 in the node (the socket stays in the namespace it was made in) and
// connects each accepted connection to the server on the host's loopback. Cut stops it (the API server
// is unreachable from that node: every connection drops, new ones are refused) and Restore brings it
// back, as a network outage between the node and the API server looks from the node.
//
// When the API server itself is stopped (KubeAPIServer.StopAPIServer), the forward by default passes
// that on as the node would see it connecting to the server directly or through kube-proxy's DNAT:
// open connections end when the server's do, new ones are refused until it listens again. With
// LoadBalancer set it instead accepts and at once closes each connection meanwhile, as a TCP load
// balancer (HAProxy, a cloud one) whose every backend is down does: clients then read EOF, which
// client-go treats differently (its REST layer retries those itself, once a second).
type APIForward struct {
	URL string // https://127.0.0.1:<port>, valid inside the node

	node   NetNS
	target string
	mu     sync.Mutex
	ln     net.Listener
	port   int
	conns  map[net.Conn]bool
	lb     bool
	cut    bool // by Cut: only Restore listens again
	down   bool // the server refused: listening again once it answers
	closed bool
}

// apiProbePeriod is how often a forward whose server refused connections tries it again.
const apiProbePeriod = 100 * time.Millisecond

// ForwardInto starts a forward into node, stopped when t ends.
func (s *KubeAPIServer) ForwardInto(t testing.TB, node NetNS) *APIForward {
	t.Helper()
	f := &APIForward{node: node, target: strings.TrimPrefix(s.URL, "https://"), conns: map[net.Conn]bool{}}
	if err := f.listen(0); err != nil {
		t.Fatal(err)
	}
	f.URL = fmt.Sprintf("https://127.0.0.1:%d", f.port)
	t.Cleanup(func() { f.Cut(); f.mu.Lock(); f.closed = true; f.mu.Unlock() })
	return f
}

// LoadBalancer makes the forward accept and close connections while the API server is stopped,
// instead of refusing them.
func (f *APIForward) LoadBalancer() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lb = true
}

func (f *APIForward) listen(port int) error {
	var ln net.Listener
	err := f.node.Do(func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		return err
	})
	if err != nil {
		return fmt.Errorf("listen in %s: %w", f.node.Name, err)
	}
	f.mu.Lock()
	f.ln, f.port = ln, ln.Addr().(*net.TCPAddr).Port
	f.mu.Unlock()
	go f.serve(ln)
	return nil
}

func (f *APIForward) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", f.target, 5*time.Second) // from the host's namespace
		if err != nil {
			f.serverGone(err) // the first connection after the server went: closed, not refused
			c.Close()
			continue
		}
		f.mu.Lock()
		f.conns[c], f.conns[up] = true, true
		f.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() {
			_, _ = io.Copy(c, up)
			if probe, err := net.DialTimeout("tcp", f.target, time.Second); err != nil {
				f.serverGone(err) // before c closes: its client's next connection is already refused
			} else {
				probe.Close()
			}
			c.Close()
		}()
	}
}

// serverGone stops listening when the server refused a connection (unless the forward stands for a
// load balancer) and listens again, on the same port, once the server accepts connections.
func (f *APIForward) serverGone(err error) {
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lb || f.down || f.ln == nil {
		return
	}
	f.down = true
	f.ln.Close()
	f.ln = nil
	go func() {
		for {
			time.Sleep(apiProbePeriod)
			f.mu.Lock()
			stop := f.cut || f.closed || f.ln != nil // cut, or restored meanwhile
			f.mu.Unlock()
			if stop {
				break
			}
			if probe, err := net.DialTimeout("tcp", f.target, time.Second); err == nil {
				probe.Close()
				if f.listen(f.port) == nil {
					break
				}
			}
		}
		f.mu.Lock()
		f.down = false
		f.mu.Unlock()
	}()
}

// Cut makes the API server unreachable from the node.
func (f *APIForward) Cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = true
	if f.ln != nil {
		f.ln.Close()
		f.ln = nil
	}
	for c := range f.conns {
		c.Close()
	}
	f.conns = map[net.Conn]bool{}
}

// Restore makes it reachable again, on the same address.
func (f *APIForward) Restore(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	closed := f.closed
	f.cut = false
	f.mu.Unlock()
	if closed {
		return
	}
	if err := f.listen(f.port); err != nil {
		t.Fatal(err)
	}
}

// StartClusterAgent runs `netloomd cluster` (from PluginDir) in node as the Node called nodeName, with
// config (its JSON configuration as a map; listen defaults to 127.0.0.1:9402 inside the node) and
// kubeconfig. It returns once /healthz answers. Logs are JSON lines in Dir/netloomd.log. Stop sends
// SIGTERM.
func StartClusterAgent(t testing.TB, node NetNS, nodeName, kubeconfig string, config map[string]any) *Daemon {
	t.Helper()
	d := newDaemon(t, "netloomd-cluster", node, false)
	if _, ok := config["listen"]; !ok {
		config["listen"] = "127.0.0.1:9402"
	}
	d.apiAddr = "http://" + config["listen"].(string)
	b, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := d.writeFile(t, "cluster.json", string(b))
	d.add("netloomd", []string{filepath.Join(PluginDir(t), "netloomd"), "cluster", "--config", cfg, "--kubeconfig", kubeconfig, "--node-name", nodeName}, func() error {
		code, _, err := HTTPGet(node, d.apiAddr+"/healthz")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("/healthz: %d", code)
		}
		return err
	})
	d.start(t)
	return d
}

// AgentGet fetches path from a cluster agent's HTTP server.
func (d *Daemon) AgentGet(path string) (int, string, error) {
	return HTTPGet(d.Node, d.apiAddr+path)
}

// HTTPGet fetches url (plain http) from inside node: the connection is made in its namespace.
func HTTPGet(node NetNS, url string) (int, string, error) {
	host := strings.TrimPrefix(url, "http://")
	host, _, _ = strings.Cut(host, "/")
	var c net.Conn
	err := node.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", host, 2*time.Second)
		return err
	})
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if err := req.Write(c); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// RSS is the resident memory of the daemon's first process, in bytes (from /proc/<pid>/status).
func (d *Daemon) RSS() (int64, error) {
	if len(d.procs) == 0 || d.procs[0].pid == 0 {
		return 0, fmt.Errorf("%s is not running", d.Kind)
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.procs[0].pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			_, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", d.procs[0].pid)
}
