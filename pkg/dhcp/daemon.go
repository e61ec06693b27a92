package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// DaemonConfig is the daemon's command line: the reference's flags.
type DaemonConfig struct {
	PIDFile    string // -pidfile: absolute path to write the PID to
	HostPrefix string // -hostprefix: the host's root as the daemon sees it (in a container)
	SocketPath string // -socketpath: DefaultSocketPath when empty
	Broadcast  bool   // -broadcast: accepted as the reference does; requests ask for broadcast replies anyway
	Client     ClientConfig
}

// systemd socket activation (sd_listen_fds(3)): the first passed descriptor.
const (
	listenFDsStart = 3
	envListenPID   = "LISTEN_PID"
	envListenFDs   = "LISTEN_FDS"
	envListenNames = "LISTEN_FDNAMES"
)

// shutdownGrace bounds how long the daemon waits for RPCs in flight when told to stop.
const shutdownGrace = 5 * time.Second

// RunDaemon serves the RPC service until SIGTERM or SIGINT, then removes its socket and PID file and
// returns. The leases stay with the pods until they expire (no DHCPRELEASE), as with the reference:
// a restarted daemon picks each one up again at the attachment's next CHECK or ADD.
func RunDaemon(cfg DaemonConfig) error {
	if cfg.SocketPath == "" {
		cfg.SocketPath = DefaultSocketPath
	}
	socket := cfg.HostPrefix + cfg.SocketPath
	if cfg.PIDFile != "" {
		if !filepath.IsAbs(cfg.PIDFile) {
			return fmt.Errorf("-pidfile %q: want an absolute path", cfg.PIDFile)
		}
		if err := os.WriteFile(cfg.PIDFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("-pidfile: %w", err)
		}
		defer os.Remove(cfg.PIDFile)
	}
	ln, err := listener(socket)
	if err != nil {
		return err
	}
	svc := NewService(cfg.Client, cfg.HostPrefix)
	srv := svc.server()
	srv.HandshakeTimeout = cfg.Client.Timeout
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Printf("serving on %s (pid %d)", ln.Addr(), os.Getpid())
	select {
	case s := <-sig:
		log.Printf("%v: stopping; the leases stay with their pods until they expire", s)
	case err := <-served:
		return fmt.Errorf("serve %s: %w", socket, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	_ = srv.Shutdown(ctx)
	svc.abandonAll()
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Printf("remove %s: %v", socket, err)
	}
	return nil
}

// listener is the socket systemd passed (socket activation), else a new one at path. A socket file
// left by a daemon that died is replaced; one a live daemon answers on is an error.
func listener(path string) (net.Listener, error) {
	if ln, ok, err := activated(); ok || err != nil {
		return ln, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("-socketpath: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		if Ping(path) == nil {
			return nil, fmt.Errorf("-socketpath %s: another dhcp daemon is serving there", path)
		}
		log.Printf("%s: removing the socket of a daemon that is gone", path)
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("-socketpath %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("-socketpath: %w", err)
	}
	return ln, nil
}

// activated returns the listener systemd passed, if it passed this process exactly one.
func activated() (net.Listener, bool, error) {
	pid, fds := os.Getenv(envListenPID), os.Getenv(envListenFDs)
	if pid == "" || fds == "" || pid != strconv.Itoa(os.Getpid()) {
		return nil, false, nil
	}
	for _, k := range []string{envListenPID, envListenFDs, envListenNames} {
		os.Unsetenv(k)
	}
	switch n, err := strconv.Atoi(fds); {
	case err != nil:
		return nil, true, fmt.Errorf("socket activation: %s=%q is not a number", envListenFDs, fds)
	case n == 0:
		return nil, false, nil
	case n > 1:
		return nil, true, fmt.Errorf("socket activation: %d sockets passed; the dhcp daemon takes one", n)
	}
	syscall.CloseOnExec(listenFDsStart)
	f := os.NewFile(listenFDsStart, "systemd-socket")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, true, fmt.Errorf("socket activation: %w", err)
	}
	return ln, true, nil
}
