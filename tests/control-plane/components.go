package main

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/server/flagz"
	"k8s.io/client-go/rest"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
)

// serviceCIDR is the service cluster IP range; serviceIP is its first address,
// the ClusterIP of the "kubernetes" service (also put in the serving certificate).
const (
	serviceCIDR = "10.0.0.0/24"
	serviceIP   = "10.0.0.1"
	saIssuer    = "https://kubernetes.default.svc.cluster.local"
)

// startAPIServer configures kube-apiserver through its own command-line flags
// (the same options the kube-apiserver binary parses), serving on ln, and runs
// it until ctx is cancelled. The returned channel yields Run's result.
func startAPIServer(ctx context.Context, ln net.Listener, etcdURL string, p *pki, extraArgs []string) (<-chan error, error) {
	port := ln.Addr().(*net.TCPAddr).Port
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--tls-cert-file=" + p.ServingCert,
		"--tls-private-key-file=" + p.ServingKey,
		"--client-ca-file=" + p.CACert,
		"--authorization-mode=RBAC",
		"--service-account-issuer=" + saIssuer,
		"--service-account-signing-key-file=" + p.ServiceAccount,
		"--service-account-key-file=" + p.ServiceAccountP,
		"--api-audiences=" + saIssuer,
		"--service-cluster-ip-range=" + serviceCIDR,
		// No node or pod ever runs here: do not publish 127.0.0.1 as the
		// endpoints of the "kubernetes" service (loopback endpoints are invalid).
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}
	args = append(args, extraArgs...)

	s := apiserveroptions.NewServerRunOptions()
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	namedFlagSets := s.Flags()
	for _, f := range namedFlagSets.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("kube-apiserver flags: %w", err)
	}
	s.Flagz = flagz.NamedFlagSetsReader{FlagSets: namedFlagSets}
	// Serve on the listener we already hold, so the port cannot be taken meanwhile.
	s.SecureServing.Listener = ln
	s.SecureServing.BindPort = port

	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, err
	}
	// The apiserver's loopback clients should not log warnings about themselves.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})

	completed, err := s.Complete(ctx)
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver options: %w", err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return nil, fmt.Errorf("kube-apiserver options: %w", utilerrors.NewAggregate(errs))
	}
	done := make(chan error, 1)
	go func() {
		done <- apiserverapp.Run(ctx, completed)
	}()
	return done, nil
}

// startControllerManager configures kube-controller-manager through its own
// flags, running only the given controllers, and runs it until ctx is
// cancelled. It serves /healthz on ln (so readiness can be checked).
func startControllerManager(ctx context.Context, ln net.Listener, kubeconfig string, p *pki, controllers []string, extraArgs []string) (<-chan error, error) {
	port := ln.Addr().(*net.TCPAddr).Port
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--controllers=" + strings.Join(controllers, ","),
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--tls-cert-file=" + p.ServingCert,
		"--tls-private-key-file=" + p.ServingKey,
		"--root-ca-file=" + p.CACert,
		"--service-account-private-key-file=" + p.ServiceAccount,
		"--use-service-account-credentials=false",
		"--controller-shutdown-timeout=3s",
		"--profiling=false",
	}
	args = append(args, extraArgs...)

	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return nil, err
	}
	all, disabled, aliases := kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases()
	fs := pflag.NewFlagSet("kube-controller-manager", pflag.ContinueOnError)
	namedFlagSets := s.Flags(all, disabled, aliases)
	for _, f := range namedFlagSets.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("kube-controller-manager flags: %w", err)
	}
	s.ParsedFlags = &namedFlagSets
	s.SecureServing.Listener = ln
	s.SecureServing.BindPort = port
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, err
	}
	c, err := s.Config(ctx, all, disabled, aliases)
	if err != nil {
		return nil, fmt.Errorf("kube-controller-manager options: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- kcmapp.Run(ctx, c.Complete())
	}()
	return done, nil
}

// canonicalControllers maps the names given to --controllers (aliases such as
// "garbagecollector") to the names the controller manager's /healthz reports.
func canonicalControllers(names []string) []string {
	aliases := kcmapp.ControllerAliases()
	var out []string
	for _, n := range names {
		if n == "*" || strings.HasPrefix(n, "-") {
			continue
		}
		if c, ok := aliases[n]; ok {
			n = c
		}
		out = append(out, n)
	}
	return out
}
