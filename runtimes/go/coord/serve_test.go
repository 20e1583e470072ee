package coord

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"supervisor-sim/goruntime/sdk"
)

func testBundle() *sdk.Bundle {
	return &sdk.Bundle{Name: "test", Dags: []*sdk.Dag{{
		ID: "d",
		Tasks: []*sdk.Task{
			{ID: "hello", Fn: func(ctx context.Context, ti *sdk.TI) (any, error) {
				ti.Log.Info("hello", "token", "eyJhbGciOiJIUzI1NiJ9.e30.sig")
				return nil, nil
			}},
			{ID: "push", Fn: func(ctx context.Context, ti *sdk.TI) (any, error) {
				return map[string]any{"n": 1}, nil
			}},
			{ID: "pull", Upstream: []string{"push"}, Fn: func(ctx context.Context, ti *sdk.TI) (any, error) {
				v, err := ti.XComPull(ctx, "push")
				if err != nil || v != nil {
					return nil, errors.New("a missing XCom must read as nil")
				}
				_, err = ti.GetVariable(ctx, "missing")
				if !errors.Is(err, sdk.ErrNotFound) {
					return nil, errors.New("a missing variable must be ErrNotFound")
				}
				return nil, nil
			}},
			{ID: "fail", Fn: func(ctx context.Context, ti *sdk.TI) (any, error) {
				return nil, errors.New("boom")
			}},
			{ID: "panic", Fn: func(ctx context.Context, ti *sdk.TI) (any, error) {
				var m map[string]int
				m["x"] = 1 // nil map write
				return nil, nil
			}},
			{ID: "skip", Fn: func(ctx context.Context, ti *sdk.TI) (any, error) {
				return nil, sdk.Skip("not today")
			}},
			{ID: "exit", Fn: func(ctx context.Context, ti *sdk.TI) (any, error) {
				ti.ExitWithoutTerminal(3)
				return nil, nil
			}},
		},
	}}}
}

// ack answers request r with an empty ack frame [id].
func (s *fakeSupervisor) ack(r request) { s.send(r.ID) }

func TestHelloRunsAndSucceeds(t *testing.T) {
	s := newFakeSupervisor(t)
	done, stdout, _ := runMain(t, s.args(), Env{})
	s.accept()
	s.send(0, startupDetails("d", "hello", nil), nil)
	r := s.next()
	if r.ID != 0 || r.Body["type"] != "SucceedTask" || r.Body["state"] != "success" {
		t.Fatalf("want SucceedTask id 0, got %+v", r)
	}
	if _, ok := r.Body["end_date"].(time.Time); !ok {
		t.Fatalf("end_date is not a timestamp: %#v", r.Body["end_date"])
	}
	s.ack(r)
	if code := waitExit(t, done); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	s.expectEOF()
	logs := s.logsText()
	for _, want := range []string{`"event":"hello"`, `"logger":"task"`, `"dag_id":"d"`, `"eyJ***"`, `"event":"Task finished"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "e30.sig") {
		t.Errorf("JWT not redacted:\n%s", logs)
	}
	if !strings.Contains(stdout.String(), "running d.hello try 1") {
		t.Errorf("stdout: %q", stdout.String())
	}
}

func TestXComKeysAreClearedThenTheReturnValueIsPushed(t *testing.T) {
	s := newFakeSupervisor(t)
	done, _, _ := runMain(t, s.args(), Env{})
	s.accept()
	s.send(0, startupDetails("d", "push", map[string]any{"xcom_keys_to_clear": []any{"return_value"}}), nil)
	del := s.next()
	if del.Body["type"] != "DeleteXCom" || del.Body["key"] != "return_value" || del.ID != 0 {
		t.Fatalf("want DeleteXCom first, got %+v", del)
	}
	s.ack(del)
	set := s.next()
	if set.Body["type"] != "SetXCom" || set.ID != 1 || set.Body["map_index"] != int64(-1) {
		t.Fatalf("want SetXCom id 1, got %+v", set)
	}
	if v, _ := set.Body["value"].(map[string]any); v["n"] != int64(1) {
		t.Fatalf("value %#v", set.Body["value"])
	}
	s.send(set.ID, nil, nil) // a 3-element empty ack is an ack too
	term := s.next()
	if term.Body["type"] != "SucceedTask" || term.ID != 2 {
		t.Fatalf("want SucceedTask id 2, got %+v", term)
	}
	s.ack(term)
	if code := waitExit(t, done); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
}

func TestNotFoundRepliesBecomeNilXComsAndErrNotFound(t *testing.T) {
	s := newFakeSupervisor(t)
	done, _, _ := runMain(t, s.args(), Env{})
	s.accept()
	s.send(0, startupDetails("d", "pull", nil), nil)
	get := s.next()
	if get.Body["type"] != "GetXCom" || get.Body["task_id"] != "push" || get.Body["key"] != "return_value" {
		t.Fatalf("GetXCom %+v", get)
	}
	s.send(get.ID, map[string]any{"type": "XComResult", "key": "return_value", "value": nil, "future": 1})
	gv := s.next()
	s.send(gv.ID, map[string]any{"type": "ErrorResponse", "error": "VARIABLE_NOT_FOUND", "detail": map[string]any{"key": "missing"}})
	term := s.next()
	if term.Body["type"] != "SucceedTask" {
		t.Fatalf("want SucceedTask, got %+v", term)
	}
	s.ack(term)
	waitExit(t, done)
}

func TestFailuresPanicsAndSkipsEndInTaskStateOrRetry(t *testing.T) {
	cases := []struct {
		task, wantType, wantState string
		shouldRetry               bool
	}{
		{"fail", "TaskState", "failed", false},
		{"fail", "RetryTask", "up_for_retry", true},
		{"panic", "TaskState", "failed", false},
		{"skip", "TaskState", "skipped", false},
		{"absent", "TaskState", "removed", false},
	}
	for _, tc := range cases {
		t.Run(tc.task+"/"+tc.wantState, func(t *testing.T) {
			s := newFakeSupervisor(t)
			done, _, _ := runMain(t, s.args(), Env{})
			s.accept()
			s.send(0, startupDetails("d", tc.task, map[string]any{"should_retry": tc.shouldRetry}), nil)
			r := s.next()
			if r.Body["type"] != tc.wantType || r.Body["state"] != tc.wantState {
				t.Fatalf("got %+v", r.Body)
			}
			if tc.wantType == "RetryTask" && r.Body["retry_reason"] != "boom" {
				t.Fatalf("retry_reason %v", r.Body["retry_reason"])
			}
			s.ack(r)
			if code := waitExit(t, done); code != ExitOK {
				t.Fatalf("exit %d", code)
			}
			if tc.task == "panic" && !strings.Contains(s.logsText(), "assignment to entry in nil map") {
				t.Fatalf("the panic is not in the logs:\n%s", s.logsText())
			}
		})
	}
}

func TestAReplyWithTheWrongIdIsFatal(t *testing.T) {
	s := newFakeSupervisor(t)
	done, _, _ := runMain(t, s.args(), Env{})
	s.accept()
	s.send(0, startupDetails("d", "push", nil), nil)
	set := s.next()
	s.send(set.ID + 5)
	// The stream is out of sync: no terminal message, exit 1.
	if code := waitExit(t, done); code != ExitFatal {
		t.Fatalf("exit %d", code)
	}
	s.expectEOF()
	if logs := s.logsText(); !strings.Contains(logs, "does not match request id") {
		t.Fatalf("logs:\n%s", logs)
	}
}

func TestARejectedTerminalMessageExitsOne(t *testing.T) {
	s := newFakeSupervisor(t)
	done, _, _ := runMain(t, s.args(), Env{})
	s.accept()
	s.send(0, startupDetails("d", "hello", nil), nil)
	r := s.next()
	s.send(r.ID, nil, map[string]any{"type": "ErrorResponse", "error": "API_SERVER_ERROR", "detail": map[string]any{"status_code": 409}})
	if code := waitExit(t, done); code != ExitFatal {
		t.Fatalf("exit %d", code)
	}
}

func TestAnUnexpectedFirstFrameIsAnsweredWithAnErrorFrameThenExitsOne(t *testing.T) {
	s := newFakeSupervisor(t)
	done, _, _ := runMain(t, s.args(), Env{})
	s.accept()
	s.send(0, map[string]any{"type": "VariableResult", "key": "k", "value": "v"})
	r := s.next()
	detail, _ := r.Body["detail"].(map[string]any)
	if r.ID != 0 || r.Body["type"] != "ErrorResponse" || r.Body["error"] != "GENERIC_ERROR" ||
		detail["type"] != "VariableResult" {
		t.Fatalf("want an ErrorResponse naming VariableResult, got %+v", r)
	}
	if code := waitExit(t, done); code != ExitFatal {
		t.Fatalf("exit %d", code)
	}
	s.expectEOF()
	if logs := s.logsText(); !strings.Contains(logs, `"event":"Unexpected first frame"`) || !strings.Contains(logs, `"level":"error"`) {
		t.Fatalf("logs:\n%s", logs)
	}
}

func TestExitWithoutTerminalClosesBothChannels(t *testing.T) {
	s := newFakeSupervisor(t)
	exited := make(chan int, 1)
	env := Env{Exit: func(code int) { exited <- code; select {} }}
	runMain(t, s.args(), env)
	s.accept()
	s.send(0, startupDetails("d", "exit", nil), nil)
	select {
	case code := <-exited:
		if code != 3 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(ioTimeout):
		t.Fatal("no exit")
	}
	s.expectEOF()
	if logs := s.logsText(); !strings.Contains(logs, "Exiting without a terminal message") {
		t.Fatalf("logs:\n%s", logs)
	}
}

func TestParseRequestGetsOneDagFileParsingResult(t *testing.T) {
	s := newFakeSupervisor(t)
	done, _, _ := runMain(t, s.args(), Env{})
	s.accept()
	s.send(0, map[string]any{
		"type": "DagFileParseRequest", "file": "/bundles/go/bin/rt", "bundle_path": "/bundles/go",
		"bundle_name": "go", "callback_requests": []any{}, "future_field": true,
	}, nil)
	r := s.next()
	if r.Body["type"] != "DagFileParsingResult" || r.Body["fileloc"] != "/bundles/go/bin/rt" {
		t.Fatalf("got %+v", r.Body)
	}
	dags := r.Body["serialized_dags"].([]any)
	data := dags[0].(map[string]any)["data"].(map[string]any)
	dag := data["dag"].(map[string]any)
	if data["__version"] != int64(3) || dag["dag_id"] != "d" || dag["relative_fileloc"] != "bin/rt" {
		t.Fatalf("serialized dag %v", data)
	}
	s.ack(r)
	if code := waitExit(t, done); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	s.expectEOF()
}

func TestOnlyOneOfCommAndLogsIsAUsageError(t *testing.T) {
	for _, args := range [][]string{{"--comm=127.0.0.1:1"}, {"--logs=127.0.0.1:1"}, {}, {"--comm=nohost", "--logs=127.0.0.1:1"}} {
		done, _, stderr := runMain(t, args, Env{})
		if code := waitExit(t, done); code != ExitUsage {
			t.Fatalf("%v: exit %d", args, code)
		}
		if !strings.Contains(stderr.String(), "usage") {
			t.Fatalf("%v: stderr %q", args, stderr.String())
		}
	}
	done, _, stderr := runMain(t, []string{"--comm=127.0.0.1:1"}, Env{})
	waitExit(t, done)
	if !strings.Contains(stderr.String(), "--logs is missing") {
		t.Fatalf("stderr %q", stderr.String())
	}
}

func TestBundleMetadataPrintsDagsAndTasksAsJSON(t *testing.T) {
	done, stdout, _ := runMain(t, []string{"--bundle-metadata"}, Env{})
	if code := waitExit(t, done); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	var meta struct {
		Dags map[string]struct{ Tasks []string } `json:"dags"`
		SDK  map[string]string                   `json:"sdk"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &meta); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if len(meta.Dags["d"].Tasks) != 7 || meta.Dags["d"].Tasks[0] != "hello" || meta.SDK["language"] != "go" {
		t.Fatalf("metadata %+v", meta)
	}
	if meta.SDK["supervisor_schema_version"] != SupervisorSchemaVersion {
		t.Fatalf("schema version %q", meta.SDK["supervisor_schema_version"])
	}
}

func TestDumpBundleSpecPrintsTheSpecAirflowGoPackReads(t *testing.T) {
	done, stdout, _ := runMain(t, []string{"--dump-bundle-spec"}, Env{})
	if code := waitExit(t, done); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	var spec map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &spec); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	want := map[string]any{
		"format_version": "1.0",
		"sdk":            map[string]any{"language": "go", "version": SDKVersion},
		"dags": map[string]any{"d": map[string]any{"tasks": []any{
			"hello", "push", "pull", "fail", "panic", "skip", "exit"}}},
	}
	got, _ := json.Marshal(spec)
	wantJSON, _ := json.Marshal(want)
	if string(got) != string(wantJSON) {
		t.Fatalf("spec %s, want %s", got, wantJSON)
	}
	if !strings.HasPrefix(stdout.String(), "{\n    \"format_version\"") {
		t.Fatalf("not indented as the Go SDK prints it: %q", stdout.String())
	}
	// --bundle-metadata wins when both are given, as in the Go SDK's Serve.
	done, stdout, _ = runMain(t, []string{"--dump-bundle-spec", "--bundle-metadata"}, Env{})
	waitExit(t, done)
	if !strings.Contains(stdout.String(), "airflow_bundle_metadata_version") {
		t.Fatalf("stdout %s", stdout)
	}
}

func TestRetriesRetryDelayAndStartDateAreSerializedAsAirflowDoes(t *testing.T) {
	d := &sdk.Dag{ID: "r", StartDate: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Tasks: []*sdk.Task{
		{ID: "a", Fn: func(context.Context, *sdk.TI) (any, error) { return nil, nil },
			Retries: 1, RetryDelay: time.Second},
		{ID: "b", Fn: func(context.Context, *sdk.TI) (any, error) { return nil, nil },
			RetryDelay: 300 * time.Second},
	}}
	dag := SerializeDag(d, "/f", "f", "/")["dag"].(map[string]any)
	if dag["start_date"] != 1704067200.0 {
		t.Fatalf("start_date %v", dag["start_date"])
	}
	tasks := dag["tasks"].([]any)
	a := tasks[0].(map[string]any)["__var"].(map[string]any)
	b := tasks[1].(map[string]any)["__var"].(map[string]any)
	if a["retries"] != 1 || a["retry_delay"] != 1.0 {
		t.Fatalf("task a %v", a)
	}
	if _, ok := b["retries"]; ok {
		t.Fatalf("retries=0 is the default and is left out: %v", b)
	}
	if _, ok := b["retry_delay"]; ok {
		t.Fatalf("a 300 s retry delay is the default and is left out: %v", b)
	}
}
