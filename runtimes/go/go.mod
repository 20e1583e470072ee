// The Go runtime for supervisor-sim: a dual-mode (parse / run) task runtime that speaks the
// coordinator protocol (--comm / --logs) the way the Go SDK's ADR 0003 describes.
//
// It builds offline from Debian's packaged Go sources (bookworm: Go 1.19):
//
//	apt-get install golang-go golang-github-vmihailenco-msgpack.v5-dev golang-golang-x-exp-dev
//	GOPROXY=off GOFLAGS=-mod=mod go build ./cmd/airflow-go-runtime
//
// tools/build_go_runtime.sh does both. Every dependency is a `replace` onto a local folder, so
// no go.sum and no module proxy are needed.
module supervisor-sim/goruntime

go 1.19

require (
	github.com/vmihailenco/msgpack/v5 v5.3.5
	golang.org/x/exp v0.0.0-20221028150844-83b7d23a625f
)

require github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect

replace (
	// Debian: golang-github-vmihailenco-msgpack.v5-dev (5.3.5) and its dependency
	// golang-github-vmihailenco-tagparser.v2-dev.
	github.com/vmihailenco/msgpack/v5 => /usr/share/gocode/src/github.com/vmihailenco/msgpack/v5
	github.com/vmihailenco/tagparser/v2 => /usr/share/gocode/src/github.com/vmihailenco/tagparser/v2
	// Debian: golang-golang-x-exp-dev, for golang.org/x/exp/slog (log/slog needs Go 1.21;
	// bookworm ships Go 1.19, and x/exp/slog is the same design before it moved to the
	// standard library).
	golang.org/x/exp => /usr/share/gocode/src/golang.org/x/exp
	// msgpack/v5's go.mod names testify (used only by its own tests), whose go.mod chain ends
	// in modules Debian does not ship. Nothing here imports testify, so an empty module
	// stands in for it and the module graph resolves offline.
	github.com/stretchr/testify => ./third_party/testify-stub
)
