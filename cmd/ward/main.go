// Command ward is the Ward control plane, workload agent and operator tool.
package main

import "github.com/wardmesh/ward/cmd/ward/cli"

func main() { cli.Main() }
