// Command airflow-go-runtime is the example bundle binary: the example_dag bundle served in
// coordinator mode (--comm / --logs), or described with --bundle-metadata.
package main

import (
	"os"
	"path/filepath"

	"supervisor-sim/goruntime/coord"
	"supervisor-sim/goruntime/example"
)

func main() {
	os.Exit(coord.Main(example.Bundle(), filepath.Base(os.Args[0]), os.Args[1:], coord.Env{}))
}
