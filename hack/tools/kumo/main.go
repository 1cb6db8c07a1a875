// Command kumo is the Secrets Manager emulator that the tests, the benchmarks and `make demo`
// run: kumo's server (github.com/sivchari/kumo, pinned in go.mod) with two of its services,
// Secrets Manager and STS. kumo's own command registers every service it emulates (about 90) and
// a client CLI for each; building those took 4.7 minutes of a 49-minute cold `make test`.
//
// It is configured as kumo is, by the environment: KUMO_HOST, KUMO_PORT, KUMO_LOG_LEVEL and
// KUMO_DATA_DIR.
package main

import (
	"fmt"
	"os"

	"github.com/sivchari/kumo/internal/server"
	_ "github.com/sivchari/kumo/internal/service/secretsmanager"
	_ "github.com/sivchari/kumo/internal/service/sts"
)

func main() {
	if len(os.Args) > 2 || len(os.Args) == 2 && os.Args[1] != "serve" {
		fmt.Fprintln(os.Stderr, "usage: kumo [serve] (configured by KUMO_HOST, KUMO_PORT, KUMO_LOG_LEVEL and KUMO_DATA_DIR)")
		os.Exit(2)
	}
	if err := server.New(server.DefaultConfig()).Run(); err != nil {
		fmt.Fprintln(os.Stderr, "kumo:", err)
		os.Exit(1)
	}
}
