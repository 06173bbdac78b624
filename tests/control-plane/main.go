// Command control-plane runs a local, development-only Kubernetes control plane
// for the end-to-end tests of passwordsafe-operator: an embedded etcd,
// kube-apiserver and kube-controller-manager (a few controllers only), all in
// this one process and all on 127.0.0.1.
//
// Usage:
//
//	control-plane --kubeconfig PATH [--state-dir DIR] [--ready-file PATH]
//
// When everything is up it prints exactly one line on stdout:
//
//	control-plane ready kubeconfig=<path> server=<url>
//
// SIGTERM or SIGINT stops everything and exits 0.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
)

const defaultControllers = "garbagecollector,namespace,serviceaccount,serviceaccount-token,root-ca-cert-publisher"

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("control-plane", flag.ContinueOnError)
	stateDir := fs.String("state-dir", "", "directory for certificates, kubeconfigs and etcd data (default: a new temporary directory, removed on exit)")
	kubeconfigPath := fs.String("kubeconfig", "", "where to write the admin kubeconfig (required)")
	readyFile := fs.String("ready-file", "", "optional file to write the ready line to once the control plane is ready")
	controllers := fs.String("controllers", defaultControllers, "kube-controller-manager controllers to run (comma-separated, as its --controllers flag)")
	logFile := fs.String("log-file", "", "write component logs to this file instead of stderr")
	verbosity := fs.Int("v", 0, "log verbosity of the Kubernetes components (klog -v)")
	exitOnStdinClose := fs.Bool("exit-on-stdin-close", false, "also shut down when standard input reaches end of file (e.g. the parent test process died)")
	var apiserverArgs, kcmArgs stringList
	fs.Var(&apiserverArgs, "apiserver-arg", "extra kube-apiserver flag, e.g. --apiserver-arg=--v=2 (repeatable)")
	fs.Var(&kcmArgs, "controller-manager-arg", "extra kube-controller-manager flag (repeatable)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *kubeconfigPath == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "control-plane: --kubeconfig PATH is required and no positional arguments are accepted")
		fs.Usage()
		return 2
	}

	if err := setupLogging(*verbosity, *logFile); err != nil {
		fmt.Fprintf(os.Stderr, "control-plane: %v\n", err)
		return 2
	}
	defer klog.Flush()

	// The first SIGTERM/SIGINT (or stdin EOF) cancels ctx and starts an orderly
	// shutdown; a second signal exits at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigCh := make(chan os.Signal, 2)
	signal.Notify(sigCh, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sigCh
		klog.Infof("control-plane: received %v, shutting down", s)
		cancel()
		s = <-sigCh
		fmt.Fprintf(os.Stderr, "control-plane: received %v again, exiting immediately\n", s)
		os.Exit(1)
	}()
	if *exitOnStdinClose {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			klog.Info("control-plane: standard input closed, shutting down")
			cancel()
		}()
	}

	cp := &controlPlane{}
	err := cp.start(ctx, *stateDir, *kubeconfigPath, splitList(*controllers), apiserverArgs, kcmArgs)
	if err != nil {
		// Not ready yet: do not attempt a graceful stop, since kube-apiserver
		// exits the process (klog.Fatal) when stopped while its post-start hooks
		// still run. Nothing depends on the components yet; just clean up.
		cp.abort()
		if ctx.Err() != nil {
			return 0 // interrupted during start-up: a clean stop
		}
		fmt.Fprintf(os.Stderr, "control-plane: %v\n", err)
		return 1
	}
	defer cp.stop()

	line := fmt.Sprintf("control-plane ready kubeconfig=%s server=%s", cp.kubeconfig, cp.server)
	if *readyFile != "" {
		if err := writeFileAtomic(*readyFile, []byte(line+"\n"), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "control-plane: write ready file: %v\n", err)
			return 1
		}
	}
	fmt.Fprintln(os.Stdout, line)
	_ = os.Stdout.Sync()

	select {
	case <-ctx.Done():
		return 0
	case err := <-cp.apiserverDone:
		cp.apiserverDone = nil
		fmt.Fprintf(os.Stderr, "control-plane: kube-apiserver stopped unexpectedly: %v\n", err)
	case err := <-cp.kcmDone:
		cp.kcmDone = nil
		fmt.Fprintf(os.Stderr, "control-plane: kube-controller-manager stopped unexpectedly: %v\n", err)
	case err := <-cp.etcd.Err():
		fmt.Fprintf(os.Stderr, "control-plane: etcd failed: %v\n", err)
	}
	return 1
}

type controlPlane struct {
	kubeconfig string // absolute path of the admin kubeconfig written for the caller
	server     string // https://127.0.0.1:PORT

	removeDir     string // temporary state dir to delete on stop
	etcd          etcdServer
	silenceEtcd   func()
	cancelAPI     context.CancelFunc
	cancelKCM     context.CancelFunc
	apiserverDone <-chan error
	kcmDone       <-chan error
}

func (cp *controlPlane) start(ctx context.Context, stateDir, kubeconfigPath string, controllers, apiserverArgs, kcmArgs []string) error {
	var err error
	if stateDir == "" {
		stateDir, err = os.MkdirTemp("", "control-plane-")
		if err != nil {
			return err
		}
		cp.removeDir = stateDir
	} else if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	if cp.kubeconfig, err = filepath.Abs(kubeconfigPath); err != nil {
		return err
	}

	p, err := generatePKI(filepath.Join(stateDir, "pki"))
	if err != nil {
		return fmt.Errorf("generate certificates: %w", err)
	}

	e, etcdURL, silenceEtcd, err := startEtcd(filepath.Join(stateDir, "etcd"))
	if err != nil {
		return err
	}
	cp.etcd = etcdServer{e}
	cp.silenceEtcd = silenceEtcd
	klog.Infof("control-plane: etcd serving on %s", etcdURL)

	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cp.server = fmt.Sprintf("https://127.0.0.1:%d", apiLn.Addr().(*net.TCPAddr).Port)

	// One admin kubeconfig for the controller manager (in the state dir) and
	// one for the caller, with the same content.
	kubeconfig, err := adminKubeconfig(cp.server, p)
	if err != nil {
		return err
	}
	internalKubeconfig := filepath.Join(stateDir, "admin.kubeconfig")
	for _, path := range []string{internalKubeconfig, cp.kubeconfig} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := writeFileAtomic(path, kubeconfig, 0o600); err != nil {
			return fmt.Errorf("write kubeconfig: %w", err)
		}
	}

	apiCtx, cancelAPI := context.WithCancel(context.Background())
	cp.cancelAPI = cancelAPI
	cp.apiserverDone, err = startAPIServer(apiCtx, apiLn, etcdURL, p, apiserverArgs)
	if err != nil {
		apiLn.Close()
		return err
	}

	client, err := adminHTTPClient(p)
	if err != nil {
		return err
	}
	if err := cp.waitFor(ctx, "kube-apiserver /readyz", 2*time.Minute, func() bool {
		return get(client, cp.server+"/readyz") == "ok"
	}); err != nil {
		return err
	}
	if err := cp.waitFor(ctx, "namespace default", time.Minute, func() bool {
		return get(client, cp.server+"/api/v1/namespaces/default") != ""
	}); err != nil {
		return err
	}
	klog.Infof("control-plane: kube-apiserver ready on %s", cp.server)

	kcmLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	kcmURL := fmt.Sprintf("https://127.0.0.1:%d", kcmLn.Addr().(*net.TCPAddr).Port)
	kcmCtx, cancelKCM := context.WithCancel(context.Background())
	cp.cancelKCM = cancelKCM
	cp.kcmDone, err = startControllerManager(kcmCtx, kcmLn, internalKubeconfig, p, controllers, kcmArgs)
	if err != nil {
		kcmLn.Close()
		return err
	}
	// The controller manager registers a health check per controller once it
	// has built them, just before starting them: wait until each one we asked
	// for is reported healthy.
	want := canonicalControllers(controllers)
	if err := cp.waitFor(ctx, "kube-controller-manager /healthz", 2*time.Minute, func() bool {
		body := get(client, kcmURL+"/healthz?verbose")
		if !strings.Contains(body, "healthz check passed") {
			return false
		}
		for _, name := range want {
			if !strings.Contains(body, "[+]"+name+" ok") {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	if contains(controllers, "serviceaccount") {
		if err := cp.waitFor(ctx, "default service account", time.Minute, func() bool {
			return get(client, cp.server+"/api/v1/namespaces/default/serviceaccounts/default") != ""
		}); err != nil {
			return err
		}
	}
	klog.Infof("control-plane: kube-controller-manager running controllers %v", want)
	return nil
}

// waitFor polls cond until it holds, ctx is cancelled, a component exits, or timeout.
func (cp *controlPlane) waitFor(ctx context.Context, what string, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-cp.apiserverDone:
			cp.apiserverDone = nil
			return fmt.Errorf("kube-apiserver exited while waiting for %s: %v", what, err)
		case err := <-cp.kcmDone:
			cp.kcmDone = nil
			return fmt.Errorf("kube-controller-manager exited while waiting for %s: %v", what, err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// stop shuts the components down in reverse order, each with a bound on how
// long it may take, and removes a temporary state dir.
func (cp *controlPlane) stop() {
	wait := func(name string, done <-chan error, d time.Duration) {
		if done == nil {
			return
		}
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				klog.Infof("control-plane: %s stopped: %v", name, err)
			}
		case <-time.After(d):
			klog.Warningf("control-plane: %s did not stop within %v", name, d)
		}
	}
	if cp.cancelKCM != nil {
		cp.cancelKCM()
		wait("kube-controller-manager", cp.kcmDone, 5*time.Second)
	}
	if cp.cancelAPI != nil {
		cp.cancelAPI()
		wait("kube-apiserver", cp.apiserverDone, 5*time.Second)
	}
	if cp.etcd.Etcd != nil {
		cp.silenceEtcd()
		done := make(chan error, 1)
		go func() { cp.etcd.Close(); done <- nil }()
		wait("etcd", done, 5*time.Second)
	}
	if cp.removeDir != "" {
		if err := os.RemoveAll(cp.removeDir); err != nil {
			klog.Warningf("control-plane: remove %s: %v", cp.removeDir, err)
		}
	}
	klog.Info("control-plane: stopped")
	klog.Flush()
}

// abort is the shutdown used when start-up did not complete: it removes a
// temporary state dir and leaves the components to die with the process.
func (cp *controlPlane) abort() {
	if cp.silenceEtcd != nil {
		cp.silenceEtcd()
	}
	if cp.removeDir != "" {
		_ = os.RemoveAll(cp.removeDir)
	}
	klog.Flush()
}

func adminKubeconfig(server string, p *pki) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["control-plane"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: p.CAPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: p.AdminCertPEM, ClientKeyData: p.AdminKeyPEM}
	cfg.Contexts["admin@control-plane"] = &clientcmdapi.Context{Cluster: "control-plane", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "admin@control-plane"
	return clientcmd.Write(*cfg)
}

func adminHTTPClient(p *pki) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.CAPEM) {
		return nil, fmt.Errorf("bad CA certificate")
	}
	cert, err := tls.X509KeyPair(p.AdminCertPEM, p.AdminKeyPEM)
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
			DisableKeepAlives: true,
		},
	}, nil
}

// get returns the body of a 200 response, or "" for anything else.
func get(c *http.Client, url string) string {
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(body)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
