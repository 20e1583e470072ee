package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// frameBytes prefixes a payload with its big-endian length.
func frameBytes(payload []byte) []byte {
	out := make([]byte, 4, 4+len(payload))
	binary.BigEndian.PutUint32(out, uint32(len(payload)))
	return append(out, payload...)
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The three msgpack timestamp forms, as msgspec writes them.
var timestampCases = []struct {
	name string
	ext  string // hex of the ext value
	want time.Time
}{
	{"timestamp32", "d6 ff 68136240", time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)},
	// nsec<<34 | sec with nsec = 123456000, sec = 1746100801 (0x68136241).
	{"timestamp64", "d7 ff 1d6f2800 68136241", time.Date(2025, 5, 1, 12, 0, 1, 123456000, time.UTC)},
	// u32 nsec, then i64 seconds: before 1970 only the 96-bit form can carry it.
	{"timestamp96", "c7 0c ff 00000000 ffffffffff2795e4", time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC)},
}

func TestTimestampDecodesAllThreeSizesToUTC(t *testing.T) {
	for _, tc := range timestampCases {
		t.Run(tc.name, func(t *testing.T) {
			var got Time
			if err := Unmarshal(mustHex(t, tc.ext), &got); err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tc.want) || got.Location() != time.UTC {
				t.Fatalf("got %v (%v), want %v in UTC", got.Time, got.Location(), tc.want)
			}
			// The same bytes inside an untyped map decode to a time.Time too.
			m := append([]byte{0x81, 0xa1, 'd'}, mustHex(t, tc.ext)...)
			var generic map[string]any
			if err := Unmarshal(m, &generic); err != nil {
				t.Fatal(err)
			}
			if ts, ok := generic["d"].(time.Time); !ok || !ts.Equal(tc.want) {
				t.Fatalf("generic decode gave %#v", generic["d"])
			}
		})
	}
}

func TestTimestampEncodesTheSmallestForm(t *testing.T) {
	for _, tc := range timestampCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Marshal(NewTime(tc.want))
			if err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, tc.ext); !bytes.Equal(got, want) {
				t.Fatalf("encoded % x, want % x", got, want)
			}
		})
	}
}

func TestTimestampAcceptsNilAndRFC3339Strings(t *testing.T) {
	var ts Time
	if err := Unmarshal([]byte{0xc0}, &ts); err != nil || !ts.IsZero() {
		t.Fatalf("nil: %v %v", ts, err)
	}
	if err := Unmarshal(mustMarshal(t, "2025-05-01T12:00:01.5+02:00"), &ts); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 5, 1, 10, 0, 1, 5e8, time.UTC); !ts.Equal(want) || ts.Location() != time.UTC {
		t.Fatalf("string: got %v", ts.Time)
	}
	var opt struct {
		D *Time `msgpack:"d"`
	}
	if err := Unmarshal(mustMarshal(t, map[string]any{"d": nil}), &opt); err != nil || opt.D != nil {
		t.Fatalf("optional nil: %v %v", opt.D, err)
	}
	// A zero Time is sent as nil, never as a bogus year-1 timestamp.
	if b, _ := Marshal(Time{}); !bytes.Equal(b, []byte{0xc0}) {
		t.Fatalf("zero Time encoded as % x", b)
	}
}

// startupDetailsPayload is a StartupDetails body with fields this runtime does not know, at
// the top level and nested, and with optional fields missing or nil.
func startupDetailsPayload(t *testing.T) []byte {
	started := mustHex(t, timestampCases[1].ext)
	body := map[string]any{
		"type":               "StartupDetails",
		"a_future_field":     map[string]any{"x": []any{1, 2}},
		"dag_rel_path":       "dags/example.py",
		"sentry_integration": "",
		"start_date":         msgpack.RawMessage(started),
		"bundle_info":        map[string]any{"name": "b", "version": nil, "extra": true},
		"ti": map[string]any{
			"id": "0199a3c0-7f6e-7b1a-9c55-3f1e0d2c4b6a", "task_id": "hello",
			"dag_id": "example_dag", "run_id": "r1", "try_number": 2,
			"dag_version_id": "0199a3c0-7f6e-7b1a-9c55-000000000001",
			"pool_slots":     1, "priority_weight": 7, // TaskInstanceDTO extras
			// map_index missing: it means -1.
		},
		"ti_context": map[string]any{
			"dag_run": map[string]any{
				"dag_id": "example_dag", "run_id": "r1",
				"logical_date": nil, "run_after": msgpack.RawMessage(started),
				"run_type": "manual", "state": "running", "consumed_asset_events": []any{},
				"conf":              map[string]any{"epoch_before": msgpack.RawMessage(mustHex(t, timestampCases[2].ext))},
				"new_dag_run_field": "ignored",
			},
			"max_tries":          1,
			"should_retry":       nil,
			"xcom_keys_to_clear": []any{"a", "b"},
		},
	}
	return mustMarshal(t, []any{0, body, nil})
}

func TestStartupDetailsDropsUnknownFieldsAndToleratesMissingOnes(t *testing.T) {
	f, err := DecodeFrame(startupDetailsPayload(t))
	if err != nil {
		t.Fatal(err)
	}
	if f.BodyType() != "StartupDetails" {
		t.Fatalf("type %q", f.BodyType())
	}
	var sd StartupDetails
	if err := f.DecodeBody(&sd); err != nil {
		t.Fatalf("unknown fields must be dropped, got %v", err)
	}
	switch {
	case sd.TI.TaskID != "hello" || sd.TI.TryNumber != 2 || sd.TI.MapIndexOrDefault() != -1:
		t.Fatalf("ti: %+v", sd.TI)
	case sd.StartDate == nil || !sd.StartDate.Equal(timestampCases[1].want):
		t.Fatalf("start_date: %v", sd.StartDate)
	case sd.TIContext.DagRun.LogicalDate != nil || sd.TIContext.DagRun.RunAfter == nil:
		t.Fatalf("dag_run dates: %+v", sd.TIContext.DagRun)
	case sd.TIContext.ShouldRetry || len(sd.TIContext.XComKeysToClear) != 2:
		t.Fatalf("ti_context: %+v", sd.TIContext)
	case sd.BundleInfo.Name != "b" || sd.BundleInfo.Version != nil:
		t.Fatalf("bundle_info: %+v", sd.BundleInfo)
	}
	if ts, ok := sd.TIContext.DagRun.Conf["epoch_before"].(time.Time); !ok || !ts.Equal(timestampCases[2].want) {
		t.Fatalf("conf datetime: %#v", sd.TIContext.DagRun.Conf["epoch_before"])
	}
}

func TestRepliesMayBeShortOrLong(t *testing.T) {
	body := map[string]any{"type": "VariableResult", "key": "k", "value": "v"}
	errMap := map[string]any{"type": "ErrorResponse", "error": "API_SERVER_ERROR", "detail": map[string]any{"status_code": 500}}
	cases := []struct {
		name              string
		frame             []any
		wantBody, wantErr bool
	}{
		{"ack [id]", []any{3}, false, false},
		{"[id, body]", []any{3, body}, true, false},
		{"[id, nil, nil]", []any{3, nil, nil}, false, false},
		{"[id, nil, error]", []any{3, nil, errMap}, false, true},
		{"extra elements ignored", []any{3, body, nil, "future", map[string]any{"x": 1}}, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ReadFrame(bytes.NewReader(frameBytes(mustMarshal(t, tc.frame))))
			if err != nil {
				t.Fatal(err)
			}
			if f.ID != 3 || (f.Body != nil) != tc.wantBody || (f.Error != nil) != tc.wantErr {
				t.Fatalf("frame %+v", f)
			}
			if f.Elements != len(tc.frame) {
				t.Fatalf("elements %d", f.Elements)
			}
			e, err := f.ErrorResponse()
			if err != nil || (e != nil) != tc.wantErr {
				t.Fatalf("error response %v %v", e, err)
			}
			if e != nil && e.Error != "API_SERVER_ERROR" {
				t.Fatalf("error code %q", e.Error)
			}
		})
	}
}

func TestMalformedFramesAreProtocolErrors(t *testing.T) {
	cases := map[string][]byte{
		"map instead of array":   mustMarshal(t, map[string]any{"id": 1}),
		"empty array":            mustMarshal(t, []any{}),
		"id not an int":          mustMarshal(t, []any{"1", nil}),
		"body not a map":         mustMarshal(t, []any{1, "body"}),
		"error not a map":        mustMarshal(t, []any{1, nil, []any{1}}),
		"bytes after the array":  append(mustMarshal(t, []any{1}), 0xc0),
		"truncated inside array": mustMarshal(t, []any{1, map[string]any{"type": "X"}})[:5],
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeFrame(payload)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("want a ProtocolError, got %v", err)
			}
		})
	}
	t.Run("zero-length frame", func(t *testing.T) {
		_, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 0}))
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Fatalf("want a ProtocolError, got %v", err)
		}
	})
}

func TestEOFIsReportedWithWhereItHappened(t *testing.T) {
	for name, data := range map[string][]byte{
		"before length": {},
		"mid-length":    {0, 0},
		"mid-body":      {0, 0, 0, 9, 0x91},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(data))
			if err == nil || !(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
				t.Fatalf("want an EOF error, got %v", err)
			}
			if !strings.Contains(err.Error(), strings.Split(name, " ")[0]) && name != "mid-body" {
				t.Fatalf("message %q does not say where", err)
			}
		})
	}
}

func TestRequestsAreThreeElementArraysLikePythons(t *testing.T) {
	got, err := EncodeRequest(1, GetVariable{Type: "GetVariable", Key: "foo"})
	if err != nil {
		t.Fatal(err)
	}
	// [1, {"type": "GetVariable", "key": "foo"}, nil], as msgpack.packb writes it in Python.
	want := mustHex(t, "0000001d 93 01 82 a474797065 ab4765745661726961626c65 a36b6579 a3666f6f c0")
	if !bytes.Equal(got, want) {
		t.Fatalf("got  % x\nwant % x", got, want)
	}
}

func TestRequestIntegersAreCompact(t *testing.T) {
	got, err := EncodeRequest(200, DeleteXCom{Type: "DeleteXCom", Key: "k", MapIndex: -1})
	if err != nil {
		t.Fatal(err)
	}
	f, err := DecodeFrame(got[4:])
	if err != nil {
		t.Fatal(err)
	}
	if f.ID != 200 || got[5] != 0xcc || got[6] != 200 {
		t.Fatalf("id not encoded as uint8: % x", got[:8])
	}
	if !bytes.Contains(got, []byte("map_index\xff")) {
		t.Fatalf("map_index -1 not a negative fixint: % x", got)
	}
	if f.Elements != 3 || f.Error != nil {
		t.Fatalf("request frame %+v", f)
	}
}

func TestTerminalMessagesCarryExactlyTheAcceptedKeys(t *testing.T) {
	for name, tc := range map[string]struct {
		msg  any
		keys []string
	}{
		"SucceedTask": {NewSucceedTask(), []string{"type", "state", "end_date", "task_outlets", "outlet_events", "rendered_map_index"}},
		"TaskState":   {NewTaskState("failed"), []string{"type", "state", "end_date", "rendered_map_index"}},
		"RetryTask":   {NewRetryTask(strings.Repeat("é", 600)), []string{"type", "state", "end_date", "rendered_map_index", "retry_delay_seconds", "retry_reason"}},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if len(m) != len(tc.keys) {
				t.Fatalf("keys %v, want %v", m, tc.keys)
			}
			for _, k := range tc.keys {
				if _, ok := m[k]; !ok {
					t.Fatalf("missing %q in %v", k, m)
				}
			}
			if _, ok := m["end_date"].(time.Time); !ok {
				t.Fatalf("end_date is not a timestamp ext: %#v", m["end_date"])
			}
			if r, ok := m["retry_reason"].(string); ok && len([]rune(r)) != RetryReasonMaxChars {
				t.Fatalf("retry_reason not truncated to %d characters", RetryReasonMaxChars)
			}
		})
	}
}
