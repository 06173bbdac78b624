package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// startEtcd runs a single-member etcd inside this process, listening on
// 127.0.0.1 with two free ports, storing its data in dataDir.
// Errors are logged to stderr until silence is called (at shutdown, where
// etcd reports its closed listeners as errors).
func startEtcd(dataDir string) (e *embed.Etcd, clientURLString string, silence func(), err error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, "", nil, err
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return nil, "", nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, "", nil, err
	}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))}

	cfg := embed.NewConfig()
	cfg.Name = "control-plane"
	cfg.Dir = dataDir
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A throw-away test store: skip fsync (as Kubernetes' own etcd test server does).
	cfg.UnsafeNoFsync = true
	out := &switchableWriter{w: os.Stderr}
	encoder := zapcore.NewConsoleEncoder(zap.NewProductionEncoderConfig())
	logger := zap.New(zapcore.NewCore(encoder, zapcore.AddSync(out), zap.ErrorLevel)).Named("etcd")
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger)

	e, err = embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", nil, fmt.Errorf("start etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, "", nil, fmt.Errorf("etcd failed: %w", err)
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		e.Close()
		return nil, "", nil, fmt.Errorf("etcd took too long to start")
	}
	return e, clientURL.String(), out.silence, nil
}

// switchableWriter forwards to w until silence is called.
type switchableWriter struct {
	mu sync.Mutex
	w  *os.File
}

func (s *switchableWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return len(p), nil
	}
	return s.w.Write(p)
}

func (s *switchableWriter) Sync() error { return nil }

func (s *switchableWriter) silence() {
	s.mu.Lock()
	s.w = nil
	s.mu.Unlock()
}

// freePorts asks the kernel for n distinct free TCP ports on 127.0.0.1. The
// ports are released before returning, so another process could in theory take
// one first; this is the usual trade-off for servers that only accept URLs.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// etcdServer wraps the embedded etcd so a zero value means "not started".
type etcdServer struct{ *embed.Etcd }
