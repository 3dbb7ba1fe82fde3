// lakeport-kube: the Kubernetes control plane and node binaries of the local cluster
// (scripts/local-cluster.sh), built as one executable from the pinned modules in go.mod.
//
// One binary, not seven: they share nearly all their packages, and on a 2-core machine
// linking each separately costs minutes. The first argument names the part:
//
//	lakeport-kube PART [flags]
//	PART: etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy coredns
//
// Each part is what its own upstream binary runs, so flags and behaviour are upstream's:
// k8s.io/kubernetes/cmd/<name>/<name>.go at v1.34.4 calls exactly these cobra constructors,
// etcd's server/main.go calls etcdmain.Main, and CoreDNS's coredns.go calls coremain.Run
// (with only the plugins the cluster's Corefile uses compiled in, not all of core/plugin).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	_ "time/tzdata" // CronJob time zones, as kube-apiserver and controller-manager import it

	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

var parts = map[string]func() *cobra.Command{
	"kube-apiserver":          apiserver.NewAPIServerCommand,
	"kube-controller-manager": controllermanager.NewControllerManagerCommand,
	"kube-scheduler":          func() *cobra.Command { return scheduler.NewSchedulerCommand() },
	"kubelet":                 func() *cobra.Command { return kubelet.NewKubeletCommand(context.Background()) },
	"kube-proxy":              proxy.NewProxyCommand,
}

func usage() {
	names := []string{"etcd", "coredns"}
	for name := range parts {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: %s PART [flags]; PART is one of %v\n", os.Args[0], names)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	name := os.Args[1]
	if name == "etcd" {
		// etcdmain reads os.Args itself (flags after the program name).
		etcdmain.Main(append([]string{"etcd"}, os.Args[2:]...))
		return
	}
	if name == "coredns" {
		// coremain parses the process's own flags (flag.Parse).
		os.Args = append([]string{"coredns"}, os.Args[2:]...)
		coremain.Run()
		return
	}
	newCommand, ok := parts[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown part %q\n", name)
		usage()
	}
	withoutCoreDNSFlags()
	command := newCommand()
	command.SetArgs(os.Args[2:])
	os.Exit(cli.Run(command))
}

// coremain registers its flags on the process-wide Go FlagSet in an init function
// (coredns v1.13.1 coremain/run.go). kube-proxy copies that FlagSet into its own
// (cmd/kube-proxy/app/server.go: fs.AddGoFlagSet(goflag.CommandLine)), where CoreDNS's
// -version would shadow kube-proxy's --version. The other parts get the Go flags
// without CoreDNS's.
func withoutCoreDNSFlags() {
	coreDNSFlags := map[string]bool{
		"conf": true, "plugins": true, "pidfile": true, "version": true, "quiet": true,
		"dns.port": true, "p": true,
	}
	kept := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	flag.CommandLine.VisitAll(func(f *flag.Flag) {
		if !coreDNSFlags[f.Name] {
			kept.Var(f.Value, f.Name, f.Usage)
		}
	})
	flag.CommandLine = kept
}
