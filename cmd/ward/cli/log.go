package cli

import (
	"io"
	"log/slog"

	"github.com/spf13/cobra"
)

type logOptions struct {
	level  string
	format string
}

func (o *logOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.level, "log-level", "info", "log level: debug, info, warn, error")
	cmd.Flags().StringVar(&o.format, "log-format", "text", "log format: text or json")
}

func (o *logOptions) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.level)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if o.format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
