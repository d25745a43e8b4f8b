package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Main runs the ward command and exits with its status.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ward:", err)
		os.Exit(exitCode(err))
	}
}

// subcommands lists every ward subcommand constructor.
func subcommands() []func() *cobra.Command {
	return []func() *cobra.Command{
		newServeCmd,
		newVersionCmd,
		newCACmd,
		newAgentCmd,
		newAuthzCmd,
		newInjectCmd,
		newAuditCmd,
		newAnalyzeCmd,
		newProxyConfigCmd,
		newDemoCmd,
		newProxyStatusCmd,
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "ward",
		Short:         "Ward: a security- and identity-first service mesh control plane",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, c := range subcommands() {
		root.AddCommand(c())
	}
	return root
}

// ExitError carries a specific process exit status.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

func exitCode(err error) int {
	if e, ok := err.(*ExitError); ok {
		return e.Code
	}
	return 1
}

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the ward version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), Version)
			return nil
		},
	}
}
