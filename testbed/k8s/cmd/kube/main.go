// Command kube is a multi-call binary bundling a Kubernetes control plane for
// the test bed: embedded etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler. Linking them into one binary compiles the shared packages
// once (k3s does the same).
//
//	kube etcd --data-dir DIR --listen 127.0.0.1:PORT [--peer-listen 127.0.0.1:PORT]
//	kube apiserver ARGS...           (kube-apiserver flags)
//	kube controller-manager ARGS...  (kube-controller-manager flags)
//	kube scheduler ARGS...           (kube-scheduler flags)
//	kube version
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	_ "time/tzdata" // CronJob time zones

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"

	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func usage() {
	fmt.Fprintf(os.Stderr, "usage: %s etcd|apiserver|controller-manager|scheduler|version [args...]\n", filepath.Base(os.Args[0]))
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	sub := os.Args[1]
	args := os.Args[2:]
	var cmd *cobra.Command
	switch sub {
	case "etcd":
		os.Exit(runEtcd(args))
	case "apiserver", "kube-apiserver":
		cmd = apiserver.NewAPIServerCommand()
	case "controller-manager", "kube-controller-manager":
		cmd = controllermanager.NewControllerManagerCommand()
	case "scheduler", "kube-scheduler":
		cmd = scheduler.NewSchedulerCommand()
	case "version", "--version":
		printVersion()
		return
	default:
		usage()
	}
	cmd.SetArgs(args)
	os.Exit(cli.Run(cmd))
}

func printVersion() {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Println("unknown")
		return
	}
	fmt.Println(bi.GoVersion)
	for _, d := range bi.Deps {
		switch d.Path {
		case "k8s.io/kubernetes", "go.etcd.io/etcd/server/v3", "sigs.k8s.io/kwok":
			fmt.Printf("%s %s\n", d.Path, d.Version)
		}
	}
}
