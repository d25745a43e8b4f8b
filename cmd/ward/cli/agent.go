package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wardmesh/ward/agent/sidecar"
	"github.com/wardmesh/ward/cmd/internal/agentcli"
	"github.com/wardmesh/ward/internal/atomicfile"
	"github.com/wardmesh/ward/mesh"
)

// newAgentCmd is the agent command (package agentcli, shared with the
// slim ward-agent binary) plus `agent bootstrap`, which renders Envoy
// bootstraps and so stays out of ward-agent.
func newAgentCmd() *cobra.Command {
	cmd := agentcli.Command("agent")
	cmd.AddCommand(newAgentBootstrapCmd())
	return cmd
}

func newAgentBootstrapCmd() *cobra.Command {
	var id agentcli.IdentityFlags
	var envoy bool
	var ns, sa, stateDir, sdsSocket, outFile string
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Print or write (--out) a data-plane bootstrap (--envoy: Envoy with ADS to Ward and SDS from the agent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !envoy {
				return errors.New("agent bootstrap: choose a data plane (--envoy); proxyless gRPC bootstraps are written by `ward agent --output-dir`")
			}
			sid, err := id.ServerID()
			if err != nil {
				return err
			}
			b, err := sidecar.Bootstrap(sidecar.Config{
				Identity: mesh.Identity{TrustDomain: id.TrustDomain, Namespace: ns, ServiceAccount: sa},
				Name:     id.Name, IP: id.IP, Labels: id.Labels, XDSAddress: id.XDSAddr, ControlPlaneID: sid,
				SDSSocket: agentcli.Socket(stateDir, sdsSocket),
			})
			if err != nil {
				return err
			}
			out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(b)
			if err != nil {
				return err
			}
			out = append(out, '\n')
			if outFile != "" {
				// Atomic: Envoy, started after this init container, never
				// reads a half-written bootstrap, and a restarted init
				// container replaces it whole. No shell redirection needed.
				if err := atomicfile.Write(outFile, out, 0o644, 0o755); err != nil {
					return fmt.Errorf("agent bootstrap: write %s: %w", outFile, err)
				}
				return nil
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	id.AddFlags(cmd)
	f := cmd.Flags()
	f.BoolVar(&envoy, "envoy", false, "print an Envoy bootstrap (JSON)")
	f.StringVar(&outFile, "out", "", "write the bootstrap to this file (atomically) instead of stdout")
	f.StringVar(&ns, "ns", "default", "workload namespace")
	f.StringVar(&sa, "sa", "default", "workload service account")
	f.StringVar(&stateDir, "state", ".", "agent state directory (for the default SDS socket path)")
	f.StringVar(&sdsSocket, "sds-socket", "", "the agent's SDS socket (default <state>/var/run/ward/sds.sock)")
	return cmd
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
