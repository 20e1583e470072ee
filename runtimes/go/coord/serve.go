// Package coord is the coordinator-mode server of a Go bundle binary (the Go SDK's ADR 0003,
// "dual-mode bundle binary: msgpack-over-IPC coordinator protocol"): command-line handling,
// the comm and logs channels, and the two workloads chosen by the first comm frame —
// DagFileParseRequest (parse, reply DagFileParsingResult, exit) and StartupDetails (run one
// task try, send one terminal message, exit).
package coord

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"golang.org/x/exp/slog"

	"supervisor-sim/goruntime/protocol"
	"supervisor-sim/goruntime/sdk"
)

// Exit codes.
const (
	ExitOK    = 0 // the workload finished (whatever the task's outcome: it travels in a message)
	ExitFatal = 1 // bad first frame, protocol violation, terminal message rejected, ...
	ExitUsage = 2 // bad command line
)

// connectTimeout bounds each dial; the supervisor gives the whole handshake 10 s.
const connectTimeout = 10 * time.Second

// Options are the parsed command line.
type Options struct {
	Comm           string
	Logs           string
	BundleMetadata bool
	DumpBundleSpec bool
}

// ErrCoordinatorFlagsIncomplete is returned when only one of --comm / --logs is given.
var ErrCoordinatorFlagsIncomplete = errors.New("--comm and --logs must be given together")

const usageText = `usage: %[1]s --comm=HOST:PORT --logs=HOST:PORT
       %[1]s --bundle-metadata
       %[1]s --dump-bundle-spec

A Go task runtime for Apache Airflow's coordinator protocol. It connects to the supervisor's
comm and logs addresses, then parses the bundle's DAGs or runs one task, as the supervisor's
first frame (DagFileParseRequest or StartupDetails) asks.

  --comm=HOST:PORT     address of the comm channel (length-prefixed msgpack frames)
  --logs=HOST:PORT     address of the logs channel (JSON log lines)
  --bundle-metadata    print the bundle's DAGs and tasks as JSON and exit
  --dump-bundle-spec   print the bundle spec JSON airflow-go-pack reads (format_version,
                       sdk, dags) and exit
`

// ParseArgs parses the command line. It returns flag.ErrHelp for -h/--help.
func ParseArgs(prog string, args []string) (Options, error) {
	var o Options
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.Comm, "comm", "", "")
	fs.StringVar(&o.Logs, "logs", "", "")
	fs.BoolVar(&o.BundleMetadata, "bundle-metadata", false, "")
	fs.BoolVar(&o.DumpBundleSpec, "dump-bundle-spec", false, "")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.BundleMetadata || o.DumpBundleSpec {
		return o, nil
	}
	switch {
	case o.Comm == "" && o.Logs == "":
		return o, errors.New("--comm=HOST:PORT and --logs=HOST:PORT are required")
	case o.Comm == "":
		return o, fmt.Errorf("%w: --comm is missing", ErrCoordinatorFlagsIncomplete)
	case o.Logs == "":
		return o, fmt.Errorf("%w: --logs is missing", ErrCoordinatorFlagsIncomplete)
	}
	for _, a := range []struct{ name, value string }{{"--comm", o.Comm}, {"--logs", o.Logs}} {
		if err := checkAddress(a.value); err != nil {
			return o, fmt.Errorf("%s: %v", a.name, err)
		}
	}
	return o, nil
}

func checkAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("expected HOST:PORT, got %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n >= 65536 {
		return fmt.Errorf("expected HOST:PORT with a port in 1-65535, got %q", addr)
	}
	return nil
}

// Env is what Main takes from its process, so that tests can run it in-process.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// Exit ends the process without returning (TI.ExitWithoutTerminal). Default os.Exit.
	Exit func(code int)
}

// Main runs the binary and returns its exit code.
func Main(bundle *sdk.Bundle, prog string, args []string, env Env) int {
	if env.Stdout == nil {
		env.Stdout = os.Stdout
	}
	if env.Stderr == nil {
		env.Stderr = os.Stderr
	}
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Exit == nil {
		env.Exit = os.Exit
	}
	opts, err := ParseArgs(prog, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(env.Stdout, usageText, prog)
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: usage error: %v\n\n", prog, err)
		fmt.Fprintf(env.Stderr, usageText, prog)
		return ExitUsage
	}
	if err := bundle.Validate(); err != nil {
		fmt.Fprintf(env.Stderr, "%s: %v\n", prog, err)
		return ExitFatal
	}
	// The Go SDK's order (ADR 0003's invocation matrix): --bundle-metadata wins over
	// --dump-bundle-spec, and either over coordinator mode.
	if opts.BundleMetadata || opts.DumpBundleSpec {
		var out any = BundleMetadata(bundle)
		indent := "  "
		if !opts.BundleMetadata {
			out, indent = BundleSpec(bundle), "    "
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", indent)
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(env.Stderr, "%s: %v\n", prog, err)
			return ExitFatal
		}
		return ExitOK
	}
	return serveCoordinator(bundle, opts, env)
}

// runtime is one coordinator-mode process: its channels, loggers and bundle.
type runtime struct {
	bundle *sdk.Bundle
	comms  *Comms
	sink   *LogSink
	levels Levels
	log    *sdk.Logger // the runtime's own logger
	env    Env
}

func serveCoordinator(bundle *sdk.Bundle, opts Options, env Env) int {
	sink := NewLogSink(env.Stderr)
	levels := LevelsFromEnv(env.Getenv)
	rt := &runtime{bundle: bundle, sink: sink, levels: levels, env: env,
		log: NewLogger(sink, levels, RuntimeLogger)}
	// Before any user code runs, slog's default logger (and so the standard "log" package)
	// writes to the logs channel too.
	slog.SetDefault(slog.New(NewJSONHandler(sink, levels, TaskLogger)))

	// Both connections before any read: the supervisor sends its first frame only once both
	// are accepted. Records logged meanwhile are buffered by the sink.
	commConn, err := net.DialTimeout("tcp", opts.Comm, connectTimeout)
	if err != nil {
		fmt.Fprintf(env.Stderr, "go runtime: cannot connect to the supervisor's comm channel: %v\n", err)
		sink.Close()
		return ExitFatal
	}
	logsConn, err := net.DialTimeout("tcp", opts.Logs, connectTimeout)
	if err != nil {
		fmt.Fprintf(env.Stderr, "go runtime: cannot connect to the supervisor's logs channel: %v\n", err)
		_ = commConn.Close()
		sink.Close()
		return ExitFatal
	}
	sink.Attach(logsConn)
	rt.comms = NewComms(commConn)
	code := rt.serve()
	// Comm first: every request was answered by now, so closing cannot lose a reply. Logs
	// last, so that nothing logged above is lost.
	_ = rt.comms.Close()
	sink.Close()
	return code
}

// serve reads the first frame and runs the workload it selects.
func (rt *runtime) serve() (code int) {
	defer func() {
		if r := recover(); r != nil {
			rt.log.Critical("Go runtime failed", "exception",
				exceptionDicts(&sdk.PanicError{Value: r, Stack: string(debug.Stack())}))
			code = ExitFatal
		}
	}()
	first, err := rt.comms.ReadFirst()
	if err != nil {
		rt.log.Error("Could not read the first frame", "error", err.Error())
		return ExitFatal
	}
	if e, _ := first.ErrorResponse(); e != nil || first.Error != nil {
		rt.log.Error("First frame carried an error", "error", e)
		return ExitFatal
	}
	kind := first.BodyType()
	if kind != "StartupDetails" && kind != "DagFileParseRequest" {
		var shown any = kind
		if kind == "" {
			shown = nil
		}
		rt.log.Error("Unexpected first frame", "type", shown, "frame_id", first.ID)
		// ADR 0003: any other first frame is an error frame back to the supervisor, then exit 1.
		// A runtime only ever sends requests, so the ErrorResponse travels in a request's body,
		// where Airflow's supervisor logs it ("Unable to decode message", body=...).
		if err := rt.comms.Send(unexpectedFirstFrame(shown, first.ID)); err != nil {
			rt.log.Error("Could not send the error frame", "error", err.Error())
		}
		return ExitFatal
	}
	if first.ID != 0 {
		rt.log.Warn("First frame id is not 0", "frame_id", first.ID)
	}
	if kind == "StartupDetails" {
		return rt.runTask(first)
	}
	return rt.runParse(first)
}

// unexpectedFirstFrame is the ErrorResponse sent back for a first frame of the wrong type.
func unexpectedFirstFrame(kind any, id int64) protocol.ErrorResponse {
	return protocol.ErrorResponse{
		Type:  "ErrorResponse",
		Error: "GENERIC_ERROR",
		Detail: map[string]any{
			"message":  "the first frame must be StartupDetails or DagFileParseRequest",
			"type":     kind,
			"frame_id": id,
		},
	}
}

// exitNow closes both channels and exits (TI.ExitWithoutTerminal).
func (rt *runtime) exitNow(code int) {
	_ = rt.comms.Close()
	rt.sink.Close()
	rt.env.Exit(code)
}
