package coord

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"

	"supervisor-sim/goruntime/protocol"
	"supervisor-sim/goruntime/sdk"
)

// runTask is the task-execution workload. It follows the Python reference runtime's order:
// bind the TI identity into every log record, find the task (TaskState removed when absent),
// clear stale XComs, run the task, push its return value, send exactly one terminal message
// and wait for its ack.
func (rt *runtime) runTask(first protocol.Frame) int {
	var details protocol.StartupDetails
	if err := first.DecodeBody(&details); err != nil {
		rt.log.Error("Could not decode StartupDetails", "error", err.Error())
		return ExitFatal
	}
	ti := details.TI
	rt.sink.Bind(
		"ti_id", ti.ID,
		"dag_id", ti.DagID,
		"task_id", ti.TaskID,
		"run_id", ti.RunID,
		"try_number", ti.TryNumber,
		"map_index", ti.MapIndexOrDefault(),
	)
	log := rt.log
	log.Info("::group::Pre Execute")
	log.Debug("StartupDetails received",
		"start_date", details.StartDate,
		"dag_rel_path", details.DagRelPath,
		"bundle_info", map[string]any{"name": details.BundleInfo.Name, "version": details.BundleInfo.Version},
	)
	// One plain line on stdout so that the supervisor's stdout capture has something to forward.
	fmt.Fprintf(rt.env.Stdout, "go runtime: running %s.%s try %d\n", ti.DagID, ti.TaskID, ti.TryNumber)

	task := rt.bundle.Lookup(ti.DagID, ti.TaskID)
	if task == nil {
		log.Error("DAG or task not found in the bundle; reporting it as removed", "bundle", rt.bundle.Name)
		return rt.sendTerminal(protocol.NewTaskState("removed"))
	}

	client := &commClient{comms: rt.comms, ti: ti}
	taskLog := NewLogger(rt.sink, rt.levels, TaskLogger)
	tctx := sdk.NewTI(client, taskLog, &details, rt.exitNow)
	ctx := context.Background()

	var terminal any
	// Stale XComs from an earlier try go first, as Airflow's runtime does before executing.
	for _, key := range details.TIContext.XComKeysToClear {
		if err := client.DeleteXCom(ctx, key); err != nil {
			taskLog.Error("Could not clear XComs", "exception", exceptionDicts(err))
			terminal = protocol.NewTaskState("failed")
			break
		}
	}
	log.Info("::endgroup::")

	if terminal == nil {
		terminal = rt.execute(ctx, tctx, task)
	}
	if err := rt.comms.Broken(); err != nil {
		// The stream is out of sync: a terminal message now could be matched to the wrong reply.
		log.Error("Comm channel broken; exiting without a terminal message", "reason", err.Error())
		return ExitFatal
	}
	log.Info("::group::Post Execute")
	code := rt.sendTerminal(terminal)
	log.Info("::endgroup::")
	return code
}

// execute runs the task function and returns the terminal message describing its outcome.
func (rt *runtime) execute(ctx context.Context, ti *sdk.TI, task *sdk.Task) any {
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = &sdk.PanicError{Value: r, Stack: string(debug.Stack())}
			}
		}()
		result, err := task.Fn(ctx, ti)
		if err != nil {
			return err
		}
		if !isNil(result) {
			return ti.SetXCom(ctx, "return_value", result)
		}
		return nil
	}()
	if err == nil {
		return protocol.NewSucceedTask()
	}
	var skip *sdk.SkipError
	if errors.As(err, &skip) {
		ti.Log.Info("Skipping task.", "reason", skip.Reason)
		return protocol.NewTaskState("skipped")
	}
	ti.Log.Error("Task failed with exception", "exception", exceptionDicts(err))
	if ti.ShouldRetry {
		reason := err.Error()
		if reason == "" {
			reason = fmt.Sprintf("%T", err)
		}
		return protocol.NewRetryTask(reason)
	}
	return protocol.NewTaskState("failed")
}

// sendTerminal sends the single terminal message and waits for its ack.
func (rt *runtime) sendTerminal(message any) int {
	state := reflect.ValueOf(message).FieldByName("State").String()
	reply, err := rt.comms.Request(message)
	if err != nil {
		rt.log.Error("Could not deliver the terminal message", "state", state, "error", err.Error())
		return ExitFatal
	}
	rejection, _ := reply.ErrorResponse()
	if rejection == nil && reply.BodyType() == "ErrorResponse" {
		rejection = &protocol.ErrorResponse{}
		_ = reply.DecodeBody(rejection)
	}
	if rejection != nil {
		rt.log.Error("Supervisor rejected the terminal message", "state", state,
			"error", map[string]any{"error": rejection.Error, "detail": rejection.Detail})
		return ExitFatal
	}
	rt.log.Info("Task finished", "state", state)
	return ExitOK
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface, reflect.Func, reflect.Chan:
		return rv.IsNil()
	}
	return false
}

// exceptionDicts describes an error chain the way structlog's ExceptionDictTransformer
// describes a Python exception chain, so that the supervisor can show it as error_detail.
func exceptionDicts(err error) []map[string]any {
	var out []map[string]any
	seen := 0
	isCause := false
	for err != nil && seen < 20 {
		seen++
		entry := map[string]any{
			"exc_type":     excType(err),
			"exc_value":    err.Error(),
			"exc_notes":    []string{},
			"syntax_error": nil,
			"is_cause":     isCause,
			"frames":       []map[string]any{},
			"is_group":     false,
			"exceptions":   []any{},
		}
		var p *sdk.PanicError
		if errors.As(err, &p) && p == err {
			entry["frames"] = stackFrames(p.Stack)
		}
		out = append(out, entry)
		err, isCause = errors.Unwrap(err), true
	}
	return out
}

func excType(err error) string {
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.PkgPath() == "" {
		return t.String()
	}
	return t.PkgPath() + "." + t.Name()
}

// stackFrames turns a debug.Stack() text into {filename, lineno, name} frames.
func stackFrames(stack string) []map[string]any {
	var frames []map[string]any
	lines := strings.Split(stack, "\n")
	for i := 1; i+1 < len(lines); i += 2 {
		name := strings.TrimSpace(lines[i])
		loc := strings.TrimSpace(lines[i+1])
		if paren := strings.LastIndex(name, "("); paren > 0 {
			name = name[:paren]
		}
		if sp := strings.LastIndex(loc, " +0x"); sp > 0 {
			loc = loc[:sp]
		}
		file, lineNo := loc, 0
		if colon := strings.LastIndex(loc, ":"); colon > 0 {
			file = loc[:colon]
			fmt.Sscanf(loc[colon+1:], "%d", &lineNo)
		}
		frames = append(frames, map[string]any{"filename": file, "lineno": lineNo, "name": name})
	}
	return frames
}
