package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/internal/version"
)

// Main runs the ward command and exits with its status.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := newRoot()
	if isCNIPlugin(os.Args[0]) {
		root.SetArgs([]string{"cni"}) // run by the container runtime as <bin dir>/ward-cni
	}
	err := root.ExecuteContext(ctx)
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
		newNodeCmd,
		newCNICmd,
		newRedirectCmd,
		newInstallCmd,
		newUninstallCmd,
		newManifestCmd,
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
	root.CompletionOptions.HiddenDefaultCmd = false
	for _, c := range root.Commands() {
		suggestSubcommands(c)
	}
	return root
}

// suggestSubcommands makes every command group under c (a command with
// subcommands and no action of its own) reject an unknown subcommand with
// cobra's "did you mean" suggestions instead of printing its help; cobra
// does this for the root only.
func suggestSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		suggestSubcommands(sub)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
		}
		return fmt.Errorf("%s\n\nRun '%s --help' for usage", msg, cmd.CommandPath())
	}
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

// versionInfo is what `ward version` prints: the version (stamped by the
// release build, see release/image), the VCS revision and time and the
// modules from the binary's build info, the Go version and the platform.
type versionInfo = version.Info

func newVersionCmd() *cobra.Command {
	var output string
	var long, asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the ward version (--long: revision, Go, platform, modules; -o json: all of it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON {
				output = outJSON
			}
			v := version.Get()
			return writeData(cmd.OutOrStdout(), output, v, func(w io.Writer) error {
				if long {
					return v.WriteText(w, true)
				}
				_, err := fmt.Fprintln(w, v.Version)
				return err
			})
		},
	}
	addOutputFlag(cmd, &output, stdFormats...)
	cmd.Flags().BoolVar(&long, "long", false, "print the revision, Go version, platform and every linked module")
	cmd.Flags().BoolVar(&asJSON, "json", false, "the same as -o json")
	return cmd
}
