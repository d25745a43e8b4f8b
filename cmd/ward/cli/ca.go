package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh"
)

// caOptions are the flags shared by the `ward ca` subcommands.
type caOptions struct {
	stateDir    string
	trustDomain string
}

func (o *caOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.stateDir, "state", ".state", "control-plane state directory (as given to ward serve)")
}

func newCACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Operate Ward's certificate authority (join tokens, root rotation, trust bundle)",
		Long: "Operate the CA that `ward serve` runs, through its state directory. Only the\n" +
			"running CA writes its root state; these commands mint tokens, request a\n" +
			"rotation (applied at the CA's next reconcile) or read the bundle.",
	}
	cmd.AddCommand(newCATokenCmd(), newCARotateCmd(), newCABundleCmd(), newCAInitCmd(), newCAStatusCmd())
	return cmd
}

func newCATokenCmd() *cobra.Command {
	token := &cobra.Command{Use: "token", Short: "Manage one-time join tokens for file-mode workloads and VMs"}
	o := caOptions{}
	var ns, sa, nodeName string
	var ttl time.Duration
	var allowReserved []string
	create := &cobra.Command{
		Use:   "create",
		Short: "Mint a single-use join token for one namespace/service account, or for a node proxy",
		Long: "Mint a single-use join token. It is printed once and stored only as a SHA-256\n" +
			"hash in <state>/tokens; `ward agent --join-token-file` spends it on enrolment.\n" +
			"With --node it enrols the node proxy of that node instead (`ward node\n" +
			"--join-token-file`): the node identity spiffe://<td>/ns/ward-system/sa/ward-node/node/<node>,\n" +
			"which may obtain the certificates of the ambient workloads placed on that node.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := ca.NewReservation(mesh.ControlPlaneIdentity(""), allowReserved)
			if err != nil {
				return err
			}
			store := ca.NewTokenStore(ca.TokenDir(o.stateDir), nil).WithReservation(res)
			var t ca.JoinToken
			switch {
			case nodeName != "" && ns != "":
				return errors.New("ca token create: --node and --ns are exclusive")
			case nodeName != "":
				t, err = store.CreateNode(nodeName, ttl)
			case ns == "":
				return errors.New("ca token create: --ns or --node is required")
			default:
				t, err = store.Create(ns, sa, ttl)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.String())
			return nil
		},
	}
	o.addFlags(create)
	create.Flags().StringVar(&ns, "ns", "", "namespace of the identity (required)")
	create.Flags().StringVar(&sa, "sa", "default", "service account of the identity")
	create.Flags().StringVar(&nodeName, "node", "", "mint a token enrolling the node proxy of this node (the ward.io/node label of its workloads) instead of a workload")
	create.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token can be used")
	create.Flags().StringSliceVar(&allowReserved, "allow-reserved", nil, "namespace/serviceaccount in the control plane's namespace (ward-system) to mint a token for anyway; ward serve must allow it too (--ca-allow-reserved). The control plane's own identity is always refused")
	token.AddCommand(create)
	return token
}

func newCARotateCmd() *cobra.Command {
	o := caOptions{}
	var overlap time.Duration
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Stage a new root CA (the running CA applies it at its next reconcile)",
		Long: "Ask the CA to stage a new root. The new root is published in the trust bundle\n" +
			"at once, starts signing after the rotation overlap, and the old root stays in\n" +
			"the bundle until every leaf it signed has expired. Watch /debug/ca for the phase.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ca.RequestRotation(o.stateDir, overlap); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "root rotation requested; the CA stages it within its reconcile interval (see /debug/ca)")
			return nil
		},
	}
	o.addFlags(cmd)
	cmd.Flags().DurationVar(&overlap, "overlap", 0, "how long the new root is trusted before it signs (0 = the CA's configured overlap; must exceed the agents' renewal interval)")
	return cmd
}

func newCABundleCmd() *cobra.Command {
	o := caOptions{}
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Print the trust bundle (every current root, PEM) for agents' --ca-root",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := ca.LoadBundle(o.stateDir)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	o.addFlags(cmd)
	return cmd
}

func newCAInitCmd() *cobra.Command {
	o := caOptions{}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the root CA in the state directory if there is none (ward serve does this too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := ca.New(ca.Config{StateDir: o.stateDir, TrustDomain: o.trustDomain, Log: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))})
			if err != nil {
				return err
			}
			st := c.Status()
			fmt.Fprintf(cmd.OutOrStdout(), "trust domain %s, %d root(s), signer %s expires %s\n",
				st.TrustDomain, len(st.Roots), st.Signer.Serial, st.Signer.NotAfter.Format(time.RFC3339))
			return nil
		},
	}
	o.addFlags(cmd)
	cmd.Flags().StringVar(&o.trustDomain, "trust-domain", "cluster.local", "SPIFFE trust domain")
	return cmd
}
