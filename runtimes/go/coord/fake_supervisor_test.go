package coord

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"supervisor-sim/goruntime/protocol"
)

// ioTimeout bounds every blocking socket operation in these tests: a misbehaving runtime
// fails a test instead of hanging it.
const ioTimeout = 10 * time.Second

// writeFrame writes [elements...] as one length-prefixed frame.
func writeFrame(t *testing.T, w io.Writer, elements ...any) {
	t.Helper()
	payload, err := msgpack.Marshal(elements)
	if err != nil {
		t.Fatal(err)
	}
	header := make([]byte, 4)
	binary.BigEndian.PutUint32(header, uint32(len(payload)))
	if _, err := w.Write(append(header, payload...)); err != nil {
		t.Fatal(err)
	}
}

// request is one request the fake supervisor read: its id and its body as a generic map.
type request struct {
	ID   int64
	Body map[string]any
}

func readRequest(t *testing.T, r io.Reader) (request, error) {
	t.Helper()
	f, err := protocol.ReadFrame(r)
	if err != nil {
		return request{}, err
	}
	if f.Elements != 3 {
		t.Errorf("request has %d elements, want 3 ([id, body, nil])", f.Elements)
	}
	var body map[string]any
	if err := f.DecodeBody(&body); err != nil {
		t.Fatalf("request body: %v", err)
	}
	return request{ID: f.ID, Body: body}, nil
}

// fakeSupervisor listens on two loopback ports and plays the supervisor's side of one run.
type fakeSupervisor struct {
	t          *testing.T
	commLn     net.Listener
	logsLn     net.Listener
	comm       net.Conn
	commReader *bufio.Reader
	logs       net.Conn
	logLines   []string
	logsDone   chan struct{}
	mu         sync.Mutex
}

func newFakeSupervisor(t *testing.T) *fakeSupervisor {
	t.Helper()
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	return &fakeSupervisor{t: t, commLn: listen(), logsLn: listen(), logsDone: make(chan struct{})}
}

func (s *fakeSupervisor) args() []string {
	return []string{"--comm=" + s.commLn.Addr().String(), "--logs=" + s.logsLn.Addr().String()}
}

// accept waits for both connections, in either order, then collects log lines until EOF.
func (s *fakeSupervisor) accept() {
	s.t.Helper()
	accept := func(ln net.Listener) net.Conn {
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(ioTimeout))
		c, err := ln.Accept()
		if err != nil {
			s.t.Fatalf("runtime did not connect: %v", err)
		}
		c.SetDeadline(time.Now().Add(ioTimeout))
		s.t.Cleanup(func() { c.Close() })
		return c
	}
	s.comm, s.logs = accept(s.commLn), accept(s.logsLn)
	s.commReader = bufio.NewReader(s.comm)
	go func() {
		defer close(s.logsDone)
		sc := bufio.NewScanner(s.logs)
		for sc.Scan() {
			s.mu.Lock()
			s.logLines = append(s.logLines, sc.Text())
			s.mu.Unlock()
		}
	}()
}

func (s *fakeSupervisor) send(elements ...any) { writeFrame(s.t, s.comm, elements...) }

func (s *fakeSupervisor) next() request {
	s.t.Helper()
	r, err := readRequest(s.t, s.commReader)
	if err != nil {
		s.t.Fatalf("reading a request: %v", err)
	}
	return r
}

// expectEOF checks that the runtime closed the comm socket without sending anything more.
func (s *fakeSupervisor) expectEOF() {
	s.t.Helper()
	extra, err := io.ReadAll(s.commReader)
	if err != nil || len(extra) != 0 {
		s.t.Fatalf("want EOF on comm, got %d bytes, %v", len(extra), err)
	}
}

// logs waits for the logs socket to close and returns its lines.
func (s *fakeSupervisor) logsText() string {
	select {
	case <-s.logsDone:
	case <-time.After(ioTimeout):
		s.t.Fatal("logs socket never closed")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.logLines, "\n")
}

// runMain runs Main in a goroutine and returns a channel with its exit code.
func runMain(t *testing.T, args []string, env Env) (<-chan int, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env.Stdout, env.Stderr = &lockedWriter{w: &stdout}, &lockedWriter{w: &stderr}
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	done := make(chan int, 1)
	go func() { done <- Main(testBundle(), "airflow-go-runtime", args, env) }()
	return done, &stdout, &stderr
}

func waitExit(t *testing.T, done <-chan int) int {
	t.Helper()
	select {
	case code := <-done:
		return code
	case <-time.After(ioTimeout):
		t.Fatal("runtime did not exit")
		return -1
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// startupDetails is a realistic StartupDetails body for dag_id.task_id.
func startupDetails(dagID, taskID string, ctx map[string]any) map[string]any {
	now := time.Date(2025, 5, 1, 12, 0, 1, 123456000, time.UTC)
	tiContext := map[string]any{
		"dag_run": map[string]any{
			"dag_id": dagID, "run_id": "manual__r1", "logical_date": now, "data_interval_start": nil,
			"data_interval_end": nil, "run_after": now, "start_date": now, "end_date": nil,
			"clear_number": 0, "run_type": "manual", "state": "running", "conf": map[string]any{},
			"consumed_asset_events": []any{}, "partition_key": nil,
		},
		"task_reschedule_count": 0, "max_tries": 0, "should_retry": false,
	}
	for k, v := range ctx {
		tiContext[k] = v
	}
	return map[string]any{
		"type": "StartupDetails",
		"ti": map[string]any{
			"id": "0199a3c0-7f6e-7b1a-9c55-3f1e0d2c4b6a", "task_id": taskID, "dag_id": dagID,
			"run_id": "manual__r1", "try_number": 1, "dag_version_id": "0199a3c0-7f6e-7b1a-9c55-000000000001",
			"map_index": -1, "hostname": nil, "context_carrier": nil, "queue": "default",
		},
		"dag_rel_path": "example.go", "bundle_info": map[string]any{"name": "go", "version": nil},
		"start_date": now, "ti_context": tiContext, "sentry_integration": "",
	}
}
