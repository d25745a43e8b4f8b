package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/node/cni"
)

// isCNIPlugin reports whether the binary runs as the CNI plugin: the
// runtime executes <bin dir>/ward-cni without arguments.
func isCNIPlugin(argv0 string) bool { return filepath.Base(argv0) == cni.PluginType }

// runCNIPlugin performs one CNI call from the process environment; the
// result or CNI error is on stdout, as the spec asks.
func runCNIPlugin(cmd *cobra.Command) error {
	err := cni.Plugin{}.Run(cmd.Context(), cni.EnvFrom(os.Getenv), cmd.InOrStdin(), cmd.OutOrStdout())
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	return nil
}

func newCNICmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cni",
		Short: "The CNI plugin that hands each pod's network namespace to the node proxy (run by the container runtime as " + cni.PluginType + ")",
		Long: "Run as a chained CNI plugin (installed as <cni bin dir>/" + cni.PluginType + " by `ward cni install`; the runtime\n" +
			"sets CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS and CNI_ARGS and writes the network config on stdin).\n" +
			"On ADD it sends the pod's namespace, name, UID, container ID and netns path to the node proxy's\n" +
			"socket (the config's \"socket\", default " + cni.DefaultSocket + ", `ward node --cni-socket`), waits for\n" +
			"its acknowledgement and prints the previous plugin's result unchanged. If the node proxy cannot be\n" +
			"reached the ADD fails (\"failClosed\": true, the default), so no pod starts uncaptured; namespaces in\n" +
			"\"excludeNamespaces\" are not reported. DEL is reported best effort and never fails.",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE:         func(cmd *cobra.Command, _ []string) error { return runCNIPlugin(cmd) },
	}
	cmd.AddCommand(newCNIInstallCmd())
	return cmd
}

func newCNIInstallCmd() *cobra.Command {
	cfg := cni.InstallConfig{}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Copy this binary to <--bin-dir>/" + cni.PluginType + " and chain it in the runtime's CNI network config (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("cni install: %w", err)
			}
			cfg.Binary = exe
			conf, err := cni.Install(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "installed %s, chained in %s\n", filepath.Join(cfg.BinDir, cni.PluginType), conf)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.BinDir, "bin-dir", "/opt/cni/bin", "the runtime's CNI plugin directory")
	f.StringVar(&cfg.ConfDir, "conf-dir", "/etc/cni/net.d", "the runtime's CNI network config directory (its first config is patched)")
	f.StringVar(&cfg.Socket, "socket", cni.DefaultSocket, "the node proxy's socket (ward node --cni-socket), as seen from the host")
	f.BoolVar(&cfg.FailClosed, "fail-closed", true, "fail a pod's ADD when the node proxy cannot be reached")
	f.StringSliceVar(&cfg.ExcludeNamespaces, "exclude-namespaces", []string{"kube-system"}, "namespaces whose pods are not reported (include the node proxy's own: its pods start before it runs)")
	return cmd
}
