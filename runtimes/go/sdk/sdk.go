// Package sdk is what a bundle author writes against: bundles, DAGs, tasks, the task context
// with its supervisor client, the task logger, and the errors that choose a task's outcome.
//
// A task is a function:
//
//	func extract(ctx context.Context, ti *sdk.TI) (any, error)
//
// A non-nil return value becomes the "return_value" XCom. Returning sdk.Skip(reason) ends the
// task as skipped; any other error (or a panic) fails it, or asks for a retry when the server
// says the try may be retried.
package sdk

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"time"

	"supervisor-sim/goruntime/protocol"
)

// TaskFunc is the body of a task.
type TaskFunc func(ctx context.Context, ti *TI) (any, error)

// Task is one task of a DAG.
type Task struct {
	ID       string
	Fn       TaskFunc
	Upstream []string // ids of the tasks that must run first
	Doc      string   // optional; serialized as doc_md

	// TaskType and TaskModule name the task in the serialized DAG (Airflow shows task_type as
	// the operator name). They default to the Go function's name and package path.
	TaskType   string
	TaskModule string

	// Retries is how many times a failed try is retried (Airflow's retries, so max_tries);
	// RetryDelay is the wait before each retry, Airflow's 300 s when zero.
	Retries    int
	RetryDelay time.Duration
}

// Dag is a DAG: an id and its tasks, in declaration order.
type Dag struct {
	ID          string
	Description string
	Tags        []string
	// StartDate is the DAG's start_date; the zero time leaves it unset.
	StartDate time.Time
	Tasks     []*Task
}

// Task returns the task with this id, or nil.
func (d *Dag) Task(id string) *Task {
	for _, t := range d.Tasks {
		if t.ID == id {
			return t
		}
	}
	return nil
}

// Downstream returns, for each task id, the sorted ids of the tasks that list it upstream.
func (d *Dag) Downstream() map[string][]string {
	out := map[string][]string{}
	for _, t := range d.Tasks {
		for _, up := range t.Upstream {
			out[up] = append(out[up], t.ID)
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

// Bundle is everything one runtime binary can parse and run.
type Bundle struct {
	Name    string
	Version string
	Dags    []*Dag
}

// Dag returns the DAG with this id, or nil.
func (b *Bundle) Dag(id string) *Dag {
	for _, d := range b.Dags {
		if d.ID == id {
			return d
		}
	}
	return nil
}

// Lookup returns the task dagID.taskID, or nil when either is missing.
func (b *Bundle) Lookup(dagID, taskID string) *Task {
	if d := b.Dag(dagID); d != nil {
		return d.Task(taskID)
	}
	return nil
}

// Validate checks that ids are non-empty and unique, every task has a function, and every
// upstream id names a task of the same DAG.
func (b *Bundle) Validate() error {
	seenDags := map[string]bool{}
	for _, d := range b.Dags {
		if d.ID == "" {
			return errors.New("bundle: a DAG has an empty id")
		}
		if seenDags[d.ID] {
			return fmt.Errorf("bundle: DAG %q is defined twice", d.ID)
		}
		seenDags[d.ID] = true
		seen := map[string]bool{}
		for _, t := range d.Tasks {
			switch {
			case t.ID == "":
				return fmt.Errorf("bundle: DAG %q has a task with an empty id", d.ID)
			case seen[t.ID]:
				return fmt.Errorf("bundle: task %q is defined twice in DAG %q", t.ID, d.ID)
			case t.Fn == nil:
				return fmt.Errorf("bundle: task %s.%s has no function", d.ID, t.ID)
			case t.Retries < 0 || t.RetryDelay < 0:
				return fmt.Errorf("bundle: task %s.%s has a negative retry setting", d.ID, t.ID)
			}
			seen[t.ID] = true
		}
		for _, t := range d.Tasks {
			for _, up := range t.Upstream {
				if !seen[up] {
					return fmt.Errorf("bundle: task %s.%s lists unknown upstream %q", d.ID, t.ID, up)
				}
			}
		}
	}
	return nil
}

// TypeAndModule returns the task_type and _task_module to serialize for t.
func (t *Task) TypeAndModule() (string, string) {
	typ, mod := t.TaskType, t.TaskModule
	if (typ == "" || mod == "") && t.Fn != nil {
		full := runtime.FuncForPC(reflect.ValueOf(t.Fn).Pointer()).Name() // e.g. a/b/pkg.fn
		slash := strings.LastIndex(full, "/")
		dot := strings.Index(full[slash+1:], ".")
		fnMod, fnName := full, full
		if dot >= 0 {
			fnMod, fnName = full[:slash+1+dot], full[slash+1+dot+1:]
		}
		if typ == "" {
			typ = fnName
		}
		if mod == "" {
			mod = fnMod
		}
	}
	if typ == "" {
		typ = "GoTask"
	}
	if mod == "" {
		mod = "go"
	}
	return typ, mod
}

// ---------------------------------------------------------------------------------------------
// Task context and client
// ---------------------------------------------------------------------------------------------

// Connection is a connection as the supervisor hands it out.
type Connection = protocol.ConnectionResult

// XComQuery selects one XCom. Empty DagID/RunID mean the current task's; empty Key means
// "return_value"; a nil MapIndex means any.
type XComQuery struct {
	TaskID   string
	Key      string
	DagID    string
	RunID    string
	MapIndex *int
}

// Client is the task's view of the supervisor. In coordinator mode every call is one
// lock-step request over the comm socket.
type Client interface {
	// GetVariable returns a variable's value; a missing variable is a *NotFoundError.
	GetVariable(ctx context.Context, key string) (string, error)
	// GetConnection returns a connection; a missing one is a *NotFoundError.
	GetConnection(ctx context.Context, connID string) (Connection, error)
	// GetXCom returns an XCom value, or nil when it does not exist.
	GetXCom(ctx context.Context, q XComQuery) (any, error)
	// SetXCom pushes an XCom value for the current task instance.
	SetXCom(ctx context.Context, key string, value any) error
	// DeleteXCom removes an XCom of the current task instance.
	DeleteXCom(ctx context.Context, key string) error
	// MaskSecret asks the supervisor to mask value in every later log line.
	MaskSecret(ctx context.Context, value any, name string) error
}

// TI is what a task function receives: its identity, its supervisor client and its logger.
type TI struct {
	Client
	Log *Logger

	ID          string
	DagID       string
	TaskID      string
	RunID       string
	TryNumber   int
	MapIndex    int
	MaxTries    int
	ShouldRetry bool

	// Details is the StartupDetails the supervisor sent.
	Details *protocol.StartupDetails

	exit func(code int)
}

// NewTI builds a task context. exit is what ExitWithoutTerminal calls.
func NewTI(client Client, log *Logger, details *protocol.StartupDetails, exit func(int)) *TI {
	ti := details.TI
	return &TI{
		Client:      client,
		Log:         log,
		ID:          ti.ID,
		DagID:       ti.DagID,
		TaskID:      ti.TaskID,
		RunID:       ti.RunID,
		TryNumber:   ti.TryNumber,
		MapIndex:    ti.MapIndexOrDefault(),
		MaxTries:    details.TIContext.MaxTries,
		ShouldRetry: details.TIContext.ShouldRetry,
		Details:     details,
		exit:        exit,
	}
}

// XComPull returns the "return_value" XCom of taskID in the current run, or nil.
func (ti *TI) XComPull(ctx context.Context, taskID string) (any, error) {
	return ti.GetXCom(ctx, XComQuery{TaskID: taskID})
}

// ExitWithoutTerminal closes both channels and exits the process with code, without sending
// a terminal message. It exists to test how a supervisor handles a runtime that does that.
func (ti *TI) ExitWithoutTerminal(code int) {
	ti.Log.Warn("Exiting without a terminal message", "exit_code", code)
	if ti.exit != nil {
		ti.exit(code)
	}
	panic(fmt.Sprintf("ExitWithoutTerminal(%d) called without an exit hook", code))
}

// ---------------------------------------------------------------------------------------------
// Outcome errors
// ---------------------------------------------------------------------------------------------

// SkipError ends a task as skipped.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "task skipped: " + e.Reason }

// Skip returns the error that ends the task as skipped.
func Skip(reason string) error { return &SkipError{Reason: reason} }

// ErrNotFound matches every *NotFoundError with errors.Is.
var ErrNotFound = errors.New("not found")

// NotFoundError is a "not found" ErrorResponse the supervisor sent in the body slot.
type NotFoundError struct {
	Code   string // e.g. CONNECTION_NOT_FOUND
	Detail any
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s: %v", e.Code, e.Detail) }

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// SupervisorError is a reply whose error slot was set, or an ErrorResponse that does not mean
// "not found", or a reply of the wrong type.
type SupervisorError struct {
	Code   string
	Detail any
}

func (e *SupervisorError) Error() string { return fmt.Sprintf("%s: %v", e.Code, e.Detail) }

// PanicError is a recovered panic from a task function.
type PanicError struct {
	Value any
	Stack string
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }
