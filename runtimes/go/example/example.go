// Package example is the Go twin of runtimes/reference/example_dags.py: the DAG example_dag
// with the same task ids, making the same supervisor requests in the same order with the same
// bodies, so that `supervisor-sim diff` can compare a Go run with a Python run frame by frame.
package example

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"supervisor-sim/goruntime/sdk"
)

// DagID is the example DAG's id.
const DagID = "example_dag"

// Bundle returns the example bundle. The task order and the upstream lists are those of the
// Python bundle's DAGS and DEPENDENCIES.
func Bundle() *sdk.Bundle {
	return &sdk.Bundle{
		Name:    "example",
		Version: "1",
		Dags: []*sdk.Dag{{
			ID:          DagID,
			Description: "Each task exercises one supervisor behaviour.",
			// The Python twin's (compose/dags/example_dag.py) start date and retry settings.
			StartDate: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
			Tasks: []*sdk.Task{
				{ID: "hello", Fn: hello, Doc: "Log one line and succeed, with no XCom."},
				{ID: "read_var_conn", Fn: readVarConn},
				{ID: "push_xcom", Fn: pushXCom},
				{ID: "pull_xcom", Fn: pullXCom, Upstream: []string{"push_xcom"}},
				{ID: "fail", Fn: fail},
				{ID: "retry", Fn: retry, Retries: 1, RetryDelay: time.Second},
				{ID: "sleep", Fn: sleep},
				{ID: "skip", Fn: skip},
				{ID: "ignore_sigterm", Fn: ignoreSigterm},
				{ID: "no_terminal", Fn: noTerminal},
				{ID: "use_secret", Fn: useSecret},
			},
		}},
	}
}

// hello logs one line and succeeds, with no XCom.
func hello(ctx context.Context, ti *sdk.TI) (any, error) {
	ti.Log.Info("Hello from the Go runtime")
	return nil, nil
}

// varConnResult keeps the Python bundle's key order ("var", then "host") on the wire.
type varConnResult struct {
	Var  string  `msgpack:"var" json:"var"`
	Host *string `msgpack:"host" json:"host"`
}

// readVarConn reads a variable and a connection; the result becomes the return_value XCom.
func readVarConn(ctx context.Context, ti *sdk.TI) (any, error) {
	value, err := ti.GetVariable(ctx, "peer_var")
	if err != nil {
		return nil, err
	}
	conn, err := ti.GetConnection(ctx, "peer_conn")
	if err != nil {
		return nil, err
	}
	// No MaskSecret call: the supervisor registers the connection password itself.
	ti.Log.Info("Read connection", "host", conn.Host, "login", conn.Login)
	return varConnResult{Var: value, Host: conn.Host}, nil
}

// pushXCom returns a value, which the runtime pushes as the return_value XCom.
func pushXCom(ctx context.Context, ti *sdk.TI) (any, error) {
	return map[string]any{"numbers": []int{1, 2, 3}}, nil
}

// pullXCom pulls push_xcom's return value from the same run and returns the sum of its numbers.
func pullXCom(ctx context.Context, ti *sdk.TI) (any, error) {
	value, err := ti.XComPull(ctx, "push_xcom")
	if err != nil {
		return nil, err
	}
	if value == nil {
		return nil, errors.New("no return_value XCom from push_xcom in this run")
	}
	m, ok := value.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("push_xcom's XCom is not a map: %T", value)
	}
	numbers, ok := m["numbers"].([]any)
	if !ok {
		return nil, fmt.Errorf("push_xcom's XCom has no list of numbers: %v", m["numbers"])
	}
	total, err := sum(numbers)
	if err != nil {
		return nil, err
	}
	ti.Log.Info("Summed upstream numbers", "total", total)
	return total, nil
}

// sum adds numbers like Python's sum(): an int result while every item is an integer.
func sum(items []any) (any, error) {
	var ints int64
	var floats float64
	isFloat := false
	for _, it := range items {
		switch n := it.(type) {
		case int64:
			ints += n
		case uint64:
			if n > math.MaxInt64 {
				return nil, fmt.Errorf("number too large: %d", n)
			}
			ints += int64(n)
		case float64:
			floats += n
			isFloat = true
		default:
			return nil, fmt.Errorf("not a number: %v (%T)", it, it)
		}
	}
	if isFloat {
		return floats + float64(ints), nil
	}
	return ints, nil
}

// fail always fails: failed, or up_for_retry when the server says should_retry.
func fail(ctx context.Context, ti *sdk.TI) (any, error) {
	return nil, errors.New("this task always fails")
}

// retry fails on the first try and succeeds from try 2.
func retry(ctx context.Context, ti *sdk.TI) (any, error) {
	if ti.TryNumber < 2 {
		return nil, fmt.Errorf("failing try %d on purpose so that it is retried", ti.TryNumber)
	}
	ti.Log.Info("Succeeded after a retry", "try_number", ti.TryNumber)
	return "ok", nil
}

// sleep sleeps REFERENCE_SLEEP_S seconds (default 3), logging progress every half second.
func sleep(ctx context.Context, ti *sdk.TI) (any, error) {
	total := 3.0
	if s := os.Getenv("REFERENCE_SLEEP_S"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("REFERENCE_SLEEP_S: %w", err)
		}
		total = v
	}
	start := time.Now()
	for elapsed := time.Since(start).Seconds(); elapsed < total; elapsed = time.Since(start).Seconds() {
		time.Sleep(time.Duration(math.Min(0.5, total-elapsed) * float64(time.Second)))
		ti.Log.Info("Sleeping", "elapsed", math.Round(time.Since(start).Seconds()*100)/100, "total", total)
	}
	ti.Log.Info("Done sleeping", "total", total)
	return nil, nil
}

// skip ends the task as skipped.
func skip(ctx context.Context, ti *sdk.TI) (any, error) {
	return nil, sdk.Skip("skipped on purpose")
}

// ignoreSigterm ignores SIGTERM, starts a `sleep 300` grandchild and hangs without sending
// anything, to exercise the supervisor's kill escalation (SIGTERM, then SIGKILL).
func ignoreSigterm(ctx context.Context, ti *sdk.TI) (any, error) {
	signal.Ignore(syscall.SIGTERM)
	grandchild := exec.Command("sleep", "300")
	if err := grandchild.Start(); err != nil {
		return nil, err
	}
	ti.Log.Info("Ignoring SIGTERM", "grandchild_pid", grandchild.Process.Pid, "pid", os.Getpid())
	for {
		time.Sleep(time.Second)
	}
}

// noTerminal closes both sockets and exits with REFERENCE_EXIT_CODE (default 0), with no
// terminal message.
func noTerminal(ctx context.Context, ti *sdk.TI) (any, error) {
	code := 0
	if s := os.Getenv("REFERENCE_EXIT_CODE"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("REFERENCE_EXIT_CODE: %w", err)
		}
		code = v
	}
	ti.ExitWithoutTerminal(code)
	return nil, nil
}

// useSecret logs a connection password and a variable value unmasked (the supervisor masks
// them), and writes both to stdout and stderr too.
func useSecret(ctx context.Context, ti *sdk.TI) (any, error) {
	conn, err := ti.GetConnection(ctx, "peer_conn")
	if err != nil {
		return nil, err
	}
	ti.Log.Info("Using connection", "conn_id", "peer_conn", "password", conn.Password)
	token, err := ti.GetVariable(ctx, "api_token")
	if err != nil {
		return nil, err
	}
	ti.Log.Info("Using API token", "api_token", token)
	fmt.Fprintf(os.Stdout, "use_secret: password=%s\n", deref(conn.Password))
	fmt.Fprintf(os.Stderr, "use_secret: api_token=%s\n", token)
	return nil, nil
}

func deref(s *string) string {
	if s == nil {
		return "None"
	}
	return *s
}
