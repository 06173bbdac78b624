package main

import (
	"flag"
	"fmt"

	"google.golang.org/grpc/grpclog"
	"k8s.io/klog/v2"
)

// setupLogging configures klog, which all Kubernetes components log through:
// verbosity, and optionally a log file instead of stderr.
func setupLogging(verbosity int, logFile string) error {
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	set := map[string]string{"v": fmt.Sprint(verbosity)}
	if logFile != "" {
		set["logtostderr"] = "false"
		set["alsologtostderr"] = "false"
		set["log_file"] = logFile
		set["stderrthreshold"] = "FATAL"
	}
	for k, v := range set {
		if err := klogFlags.Set(k, v); err != nil {
			return fmt.Errorf("klog flag %s: %w", k, err)
		}
	}
	// kube-apiserver routes gRPC's logs (its etcd client) to klog, warnings
	// included; at start-up these are dozens of harmless "operation was
	// canceled" dial warnings. Keep gRPC errors, show warnings only at -v>=2.
	grpclog.SetLoggerV2(grpcLogger{})
	return nil
}

type grpcLogger struct{}

const grpcDepth = 4

func (grpcLogger) Info(args ...any) {
	if v := klog.V(5); v.Enabled() {
		v.InfoSDepth(grpcDepth, fmt.Sprint(args...))
	}
}
func (grpcLogger) Infoln(args ...any) {
	if v := klog.V(5); v.Enabled() {
		v.InfoSDepth(grpcDepth, fmt.Sprintln(args...))
	}
}
func (grpcLogger) Infof(format string, args ...any) {
	if v := klog.V(5); v.Enabled() {
		v.InfoSDepth(grpcDepth, fmt.Sprintf(format, args...))
	}
}
func (grpcLogger) Warning(args ...any) {
	if klog.V(2).Enabled() {
		klog.WarningDepth(grpcDepth, args...)
	}
}
func (grpcLogger) Warningln(args ...any) {
	if klog.V(2).Enabled() {
		klog.WarningDepth(grpcDepth, fmt.Sprintln(args...))
	}
}
func (grpcLogger) Warningf(format string, args ...any) {
	if klog.V(2).Enabled() {
		klog.WarningDepth(grpcDepth, fmt.Sprintf(format, args...))
	}
}
func (grpcLogger) Error(args ...any)   { klog.ErrorDepth(grpcDepth, args...) }
func (grpcLogger) Errorln(args ...any) { klog.ErrorDepth(grpcDepth, fmt.Sprintln(args...)) }
func (grpcLogger) Errorf(format string, args ...any) {
	klog.ErrorDepth(grpcDepth, fmt.Sprintf(format, args...))
}
func (grpcLogger) Fatal(args ...any)   { klog.FatalDepth(grpcDepth, args...) }
func (grpcLogger) Fatalln(args ...any) { klog.FatalDepth(grpcDepth, fmt.Sprintln(args...)) }
func (grpcLogger) Fatalf(format string, args ...any) {
	klog.FatalDepth(grpcDepth, fmt.Sprintf(format, args...))
}
func (grpcLogger) V(l int) bool { return klog.V(klog.Level(l)).Enabled() }
