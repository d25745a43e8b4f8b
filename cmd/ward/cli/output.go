package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// The output formats every data-printing command offers (some add more).
const (
	outTable = "table"
	outJSON  = "json"
	outYAML  = "yaml"
)

// stdFormats is table|json|yaml, table first (the default).
var stdFormats = []string{outTable, outJSON, outYAML}

// outputValue is the -o/--output flag: one of a fixed list of formats,
// checked when the flag is parsed, with aliases kept for compatibility.
type outputValue struct {
	p       *string
	formats []string
	aliases map[string]string
}

// addOutputFlag registers -o/--output on cmd, storing the chosen format in
// out. formats[0] is the default. The values complete in shells, and an
// unknown value fails flag parsing with the list of valid ones.
func addOutputFlag(cmd *cobra.Command, out *string, formats ...string) *outputValue {
	*out = formats[0]
	v := &outputValue{p: out, formats: formats, aliases: map[string]string{}}
	cmd.Flags().VarP(v, "output", "o", "output format: "+strings.Join(formats, "|"))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
	return v
}

// alias accepts from as another spelling of format to (e.g. text → table).
func (v *outputValue) alias(from, to string) *outputValue {
	v.aliases[from] = to
	return v
}

func (v *outputValue) String() string { return *v.p }
func (v *outputValue) Type() string   { return "format" }

func (v *outputValue) Set(s string) error {
	if to, ok := v.aliases[s]; ok {
		s = to
	}
	if !slices.Contains(v.formats, s) {
		return fmt.Errorf("unknown output format %q (valid: %s)", s, strings.Join(v.formats, ", "))
	}
	*v.p = s
	return nil
}

// writeData prints v as JSON or YAML (from the same struct and its json
// tags), or calls table for the table format.
func writeData(w io.Writer, format string, v any, table func(io.Writer) error) error {
	switch format {
	case outJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case outYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("render yaml: %w", err)
		}
		_, err = w.Write(b)
		return err
	case outTable, "":
		return table(w)
	}
	return fmt.Errorf("unknown output format %q", format)
}
