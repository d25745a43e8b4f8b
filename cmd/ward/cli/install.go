package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/deploy"
	"github.com/wardmesh/ward/install"
	"github.com/wardmesh/ward/internal/version"
	"github.com/wardmesh/ward/kube"
	"github.com/wardmesh/ward/release/image"
)

// manifestOptions are the flags that choose what to render.
type manifestOptions struct {
	namespace  string
	valueFiles []string
	images     string
}

func (o *manifestOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.namespace, "namespace", "n", deploy.DefaultNamespace, "Ward's namespace")
	f.StringArrayVarP(&o.valueFiles, "values", "f", nil, "values file in the Helm chart's shape (deploy/helm/ward/values.yaml); repeatable, later files win")
	f.StringVar(&o.images, "images", "", "images.json from `make images`: pin every Ward image reference (the Deployment and the injected agent) to repository@digest")
}

// values are the chart's defaults, the ward image at this binary's
// version (a released binary installs its own release), then the values
// files, then the pinned images.
func (o *manifestOptions) values() (deploy.Values, error) {
	v := deploy.Default()
	if tag := version.Released(); tag != "" {
		v.Images.Ward.Tag = tag
	}
	for _, f := range o.valueFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return deploy.Values{}, err
		}
		if v, err = v.Merge(b); err != nil {
			return deploy.Values{}, fmt.Errorf("%s: %w", f, err)
		}
	}
	if o.images != "" {
		l, err := image.LoadManifest(o.images)
		if err != nil {
			return deploy.Values{}, err
		}
		if v, err = v.Pin(l); err != nil {
			return deploy.Values{}, err
		}
	}
	return v, v.Validate()
}

func (o *manifestOptions) render() ([]deploy.Manifest, error) {
	v, err := o.values()
	if err != nil {
		return nil, err
	}
	return deploy.Render(v, o.namespace)
}

func newManifestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Ward's Kubernetes manifests",
	}
	cmd.AddCommand(newManifestGenerateCmd())
	return cmd
}

func newManifestGenerateCmd() *cobra.Command {
	var o manifestOptions
	var format, out string
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Print (or write) the manifests `ward install` applies",
		Long: "Render the Helm chart deploy/helm/ward with the given values: as one YAML stream\n" +
			"(the default), as a kustomize base (--format kustomize --out DIR), or as the chart itself\n" +
			"with these values as its defaults (--format helm --out DIR).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := o.values()
			if err != nil {
				return err
			}
			ms, err := deploy.Render(v, o.namespace)
			if err != nil {
				return err
			}
			switch format {
			case "yaml":
				if out != "" {
					return os.WriteFile(out, deploy.YAML(ms), 0o644)
				}
				_, err := cmd.OutOrStdout().Write(deploy.YAML(ms))
				return err
			case "kustomize":
				if out == "" {
					return fmt.Errorf("manifest generate: --format kustomize needs --out DIR")
				}
				return deploy.WriteKustomize(out, ms)
			case "helm":
				if out == "" {
					return fmt.Errorf("manifest generate: --format helm needs --out DIR")
				}
				return deploy.WriteChart(out, v)
			}
			return fmt.Errorf("manifest generate: unknown --format %q (valid: yaml, kustomize, helm)", format)
		},
	}
	o.addFlags(cmd)
	cmd.Flags().StringVar(&format, "format", "yaml", "yaml|kustomize|helm")
	cmd.Flags().StringVar(&out, "out", "", "output file (yaml) or directory (kustomize, helm)")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"yaml", "kustomize", "helm"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newInstallCmd() *cobra.Command {
	var o manifestOptions
	var kubeconfig, output string
	var ao install.ApplyOptions
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install or upgrade Ward in a cluster (server-side apply), and wait until it is ready",
		Long: "Apply the manifests of `ward manifest generate` with server-side apply (field manager\n" +
			"ward-install) in dependency order, wait for the CRDs and the control plane, prune objects\n" +
			"of an earlier version that this one no longer has, and report per object what changed.\n" +
			"Running it again changes nothing. --dry-run asks the API server to admit every change\n" +
			"without making it and prints the plan. Upgrades: docs/install.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms, err := o.render()
			if err != nil {
				return err
			}
			objs, err := deploy.Objects(ms)
			if err != nil {
				return err
			}
			in, err := newInstaller(kubeconfig, o.namespace)
			if err != nil {
				return err
			}
			rep, err := in.Apply(cmd.Context(), objs, ao)
			if werr := writeReport(cmd.OutOrStdout(), output, rep, ao.Wait > 0 && !ao.DryRun); werr != nil {
				return werr
			}
			return err
		},
	}
	o.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, then $KUBECONFIG)")
	f.BoolVar(&ao.DryRun, "dry-run", false, "server-side dry run: print the plan, change nothing")
	f.BoolVar(&ao.Force, "force-conflicts", true, "take over fields another field manager owns (e.g. an earlier kubectl apply)")
	f.BoolVar(&ao.Prune, "prune", true, "delete Ward objects (app.kubernetes.io/part-of=ward) these manifests no longer have; CRDs and the namespace are never pruned")
	f.DurationVar(&ao.Wait, "wait", 5*time.Minute, "how long to wait for the control plane to be ready; 0 skips the wait")
	addOutputFlag(cmd, &output, stdFormats...)
	return cmd
}

func newUninstallCmd() *cobra.Command {
	var namespace, kubeconfig, output string
	var uo install.UninstallOptions
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove Ward from a cluster, keeping the Istio CRDs (users' config) and Ward's namespace (its CA) unless --purge",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := newInstaller(kubeconfig, namespace)
			if err != nil {
				return err
			}
			rep, err := in.Uninstall(cmd.Context(), uo)
			if werr := writeReport(cmd.OutOrStdout(), output, rep, false); werr != nil {
				return werr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&namespace, "namespace", "n", deploy.DefaultNamespace, "Ward's namespace")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, then $KUBECONFIG)")
	f.BoolVar(&uo.DryRun, "dry-run", false, "server-side dry run: print what would be deleted")
	f.BoolVar(&uo.Purge, "purge", false, "also delete the Istio CRDs (and every Istio object in the cluster) and Ward's namespace (and its CA)")
	f.DurationVar(&uo.Wait, "wait", 2*time.Minute, "how long to wait for the deleted objects to be gone; 0 skips the wait")
	addOutputFlag(cmd, &output, stdFormats...)
	return cmd
}

func newInstaller(kubeconfig, namespace string) (*install.Installer, error) {
	c, err := kube.NewClients(kubeconfig)
	if err != nil {
		return nil, err
	}
	return install.New(install.Config{Dynamic: c.Dynamic, Namespace: namespace}), nil
}

func writeReport(w io.Writer, format string, rep install.Report, waited bool) error {
	return writeData(w, format, rep, func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACTION\tKIND\tNAME")
		for _, c := range rep.Changes {
			name := c.Name
			if c.Namespace != "" {
				name = c.Namespace + "/" + c.Name
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Action, c.Kind, name)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		var parts []string
		for _, a := range []install.Action{install.Created, install.Configured, install.Unchanged, install.Pruned, install.Deleted, install.Kept} {
			if n := rep.Count(a); n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, a))
			}
		}
		summary := fmt.Sprintf("%d objects: %s in %v", len(rep.Changes), strings.Join(parts, ", "), rep.Elapsed.Round(time.Millisecond))
		if rep.DryRun {
			summary += " (dry run: nothing changed)"
		}
		if waited && rep.Ready {
			summary += "; control plane ready"
		}
		_, err := fmt.Fprintln(w, summary)
		return err
	})
}
