package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/demo"
)

func newDemoCmd() *cobra.Command {
	var c demo.Config
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a loopback mesh of proxyless gRPC workloads and show mTLS, canary routing, ALLOW/DENY and JWT at work",
		Long: "Run the mission on one machine, no Kubernetes and no Envoy: `ward serve` on a bundled\n" +
			"Istio config, one `ward agent` per workload (join token, key made locally), and proxyless\n" +
			"grpc-go workloads frontend → reviews v1/v2/v3 → ratings that take listeners, routes and\n" +
			"mTLS from Ward over xDS and enforce AuthorizationPolicy through Ward's ext_authz.\n" +
			"Prints each kind of call with its outcome and deciding rule, shifts a canary live, checks\n" +
			"every expected outcome and ends with `ward audit` of the running control plane.\n" +
			"Everything listens on 127.0.0.1; exit status 1 if an expected outcome was not seen.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c.Out = cmd.OutOrStdout()
			_, err := demo.Run(cmd.Context(), c)
			return err
		},
	}
	f := cmd.Flags()
	f.DurationVar(&c.Duration, "duration", 10*time.Second, "least time traffic runs (the canary's two phases share it)")
	f.DurationVar(&c.Interval, "interval", 150*time.Millisecond, "pause between the frontend's rounds of calls")
	f.StringVar(&c.Dir, "dir", "", "work directory (config, CA state, logs); default a temporary one, removed at the end")
	f.BoolVar(&c.Keep, "keep", false, "keep the temporary work directory (its path is printed)")
	f.BoolVar(&c.NoAudit, "no-audit", false, "skip the closing audit report")
	f.DurationVar(&c.StartTimeout, "start-timeout", 60*time.Second, "bound on each start-up step")
	cmd.AddCommand(newDemoWorkloadCmd())
	return cmd
}

// newDemoWorkloadCmd is the workload program `ward demo` starts; hidden
// because it only makes sense under the demo's agents and config.
func newDemoWorkloadCmd() *cobra.Command {
	var c demo.WorkloadConfig
	var o logOptions
	cmd := &cobra.Command{
		Use:    "workload",
		Short:  "Run one demo workload (started by ward demo)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c.Out, c.Log = cmd.OutOrStdout(), o.logger(cmd.ErrOrStderr())
			return demo.RunWorkload(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Role, "role", "", "frontend, reviews or ratings")
	f.StringVar(&c.Version, "version", "", "reviews version label (v1, v2, v3)")
	f.StringVar(&c.Listen, "listen", "", "address to serve on (servers)")
	f.StringVar(&c.Bootstrap, "bootstrap", "", "the grpc xDS bootstrap written by ward agent")
	f.StringVar(&c.ExtAuthz, "ext-authz", "", "Ward's ext_authz over mTLS (ward serve --secure-addr)")
	f.StringVar(&c.TokenFile, "token-file", "", "frontend: JWT to present to ratings' admin method")
	f.DurationVar(&c.Interval, "interval", 150*time.Millisecond, "frontend: pause between rounds")
	o.addFlags(cmd)
	_ = cmd.MarkFlagRequired("role")
	return cmd
}
