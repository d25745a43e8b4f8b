// Command ward-agent is the workload agent alone, the same as `ward
// agent`, in a binary that links only what the agent runs (no control
// plane, OPA, Kubernetes client or operator tools), so that the process
// beside every workload stays small. `make build` builds it with ward.
package main

import "github.com/wardmesh/ward/cmd/internal/agentcli"

func main() { agentcli.Main() }
