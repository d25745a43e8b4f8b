// Package cli owns Ward's command line: flags, wiring of components and
// process lifecycle for every `ward` subcommand. It holds no mesh logic.
package cli
