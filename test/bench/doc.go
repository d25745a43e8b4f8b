// Package bench holds Ward's load harnesses: loopback load generators that
// drive real Ward servers with many simulated clients and report
// throughput, latency percentiles, CPU and memory (see docs/benchmarks.md).
package bench
