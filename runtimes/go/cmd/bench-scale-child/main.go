// Command bench-scale-child is bench/_load_child.py in mode `scale`, compiled: the child
// bench/scale.py runs with `--child go`.
//
// It exists because 1,000 Python interpreters starting and exiting at once on a small machine
// starve the supervisor of CPU, so with the Python child bench/scale.py measures the children;
// a compiled child doing the same work measures the supervisor. Everything observable is the
// Python child's, so the harness's analysis reads either unchanged:
//
//   - command line: --comm=HOST:PORT --logs=HOST:PORT (or --comm HOST:PORT), both connected
//     before the first frame is read;
//   - environment: BENCH_MODE (only "scale"), BENCH_DAG_ID, BENCH_TASKS, BENCH_RT,
//     BENCH_READY_DIR, BENCH_GO_FIFO, BENCH_GO_MAX, BENCH_HOLD_S, BENCH_OUT_DIR;
//   - a DagFileParseRequest is answered with the same DagFileParsingResult, key for key and in
//     the same order (so the same msgpack bytes): one DAG, BENCH_DAG_ID, of BENCH_TASKS parallel
//     tasks; exit 0, or 1 when the reply carries an error;
//   - a StartupDetails runs the task: BENCH_RT timed GetVariable round trips, a ready file in
//     BENCH_READY_DIR, a wait for BENCH_GO_FIFO's end of file, BENCH_HOLD_S seconds of sleep,
//     BENCH_RT more round trips, SucceedTask; then the measurement as one JSON object in
//     BENCH_OUT_DIR/<task_id>-<map_index>-<pid>.json (same keys, same units) and one JSON log
//     line ("done") on --logs;
//   - request ids count up from the first frame's id, as the Python child's do.
//
// Errors are one line on stderr and exit status 1 (where the Python child would raise).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"supervisor-sim/goruntime/protocol"
)

// tMain is taken when the program's package variables are initialised, before main runs: the
// start of this program as it sees it (the Python child's T_MAIN, taken before its imports).
var tMain = time.Now()

func main() {
	// One P: a child only ever waits on one socket or one FIFO, so a second OS thread running Go
	// code would buy nothing, and with 1,000 children on a 2-vCPU machine every extra runnable
	// thread competes with the supervisor being measured. (The Go runtime still keeps its
	// housekeeping threads; they are idle here.)
	runtime.GOMAXPROCS(1)
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-scale-child: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// parseArgs is child.py's parse_args: --key=value, --key value, or a bare --flag ("1").
func parseArgs(argv []string) map[string]string {
	opts := map[string]string{}
	for i := 0; i < len(argv); i++ {
		arg := argv[i]
		switch {
		case strings.HasPrefix(arg, "--") && strings.Contains(arg, "="):
			kv := strings.SplitN(arg[2:], "=", 2)
			opts[kv[0]] = kv[1]
		case strings.HasPrefix(arg, "--") && i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "--"):
			opts[arg[2:]] = argv[i+1]
			i++
		case strings.HasPrefix(arg, "--"):
			opts[arg[2:]] = "1"
		}
	}
	return opts
}

func getenv(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envInt(name, def string) (int, error) {
	v := strings.TrimSpace(getenv(name, def))
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not an integer", name, v)
	}
	return n, nil
}

func envSeconds(name, def string) (time.Duration, error) {
	v := strings.TrimSpace(getenv(name, def))
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 {
		return 0, fmt.Errorf("%s=%q is not a number of seconds", name, v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// client is the lock-step request/response loop on --comm (child.py's Comm plus
// _load_child.py's Client): one request in flight, every reply's id checked.
type client struct {
	conn  net.Conn
	r     *bufio.Reader
	reqID int64
}

func (c *client) request(body any) (protocol.Frame, error) {
	c.reqID++
	frame, err := protocol.EncodeRequest(c.reqID, body)
	if err != nil {
		return protocol.Frame{}, err
	}
	if _, err := c.conn.Write(frame); err != nil {
		return protocol.Frame{}, fmt.Errorf("sending request %d: %w", c.reqID, err)
	}
	reply, err := protocol.ReadFrame(c.r)
	if err != nil {
		return protocol.Frame{}, fmt.Errorf("reading the reply to request %d: %w", c.reqID, err)
	}
	if reply.ID != c.reqID {
		return protocol.Frame{}, fmt.Errorf("reply id %d for request %d", reply.ID, c.reqID)
	}
	return reply, nil
}

// roundTrips makes count timed GetVariable requests; each one's seconds, request sent to
// reply read.
func (c *client) roundTrips(count int) ([]float64, error) {
	out := make([]float64, 0, count)
	body := protocol.GetVariable{Type: "GetVariable", Key: "bench_var"}
	for i := 0; i < count; i++ {
		t0 := time.Now()
		reply, err := c.request(body)
		took := time.Since(t0).Seconds()
		if err != nil {
			return nil, err
		}
		if got := reply.BodyType(); got != "VariableResult" {
			return nil, fmt.Errorf("unexpected GetVariable reply: body type %q", got)
		}
		out = append(out, took)
	}
	return out, nil
}

// The DagFileParsingResult, as structs so that the keys go out in the Python child's order.

type parseResult struct {
	Fileloc        string          `msgpack:"fileloc"`
	SerializedDags []serializedDag `msgpack:"serialized_dags"`
	Warnings       []any           `msgpack:"warnings"`
	ImportErrors   map[string]any  `msgpack:"import_errors"`
	Type           string          `msgpack:"type"`
}

type serializedDag struct {
	Data serializedData `msgpack:"data"`
}

type serializedData struct {
	Version int `msgpack:"__version"`
	Dag     dag `msgpack:"dag"`
}

type dag struct {
	DagID           string         `msgpack:"dag_id"`
	Fileloc         string         `msgpack:"fileloc"`
	RelativeFileloc string         `msgpack:"relative_fileloc"`
	Timezone        string         `msgpack:"timezone"`
	Timetable       typed          `msgpack:"timetable"`
	Catchup         bool           `msgpack:"catchup"`
	FailFast        bool           `msgpack:"fail_fast"`
	MaxActiveTasks  int            `msgpack:"max_active_tasks"`
	MaxActiveRuns   int            `msgpack:"max_active_runs"`
	Tags            []string       `msgpack:"tags"`
	EdgeInfo        map[string]any `msgpack:"edge_info"`
	DagDependencies []any          `msgpack:"dag_dependencies"`
	Params          []any          `msgpack:"params"`
	Tasks           []operator     `msgpack:"tasks"`
}

type typed struct {
	Type string         `msgpack:"__type"`
	Var  map[string]any `msgpack:"__var"`
}

type operator struct {
	Type string      `msgpack:"__type"`
	Var  operatorVar `msgpack:"__var"`
}

type operatorVar struct {
	TaskID            string `msgpack:"task_id"`
	TaskType          string `msgpack:"task_type"`
	TaskModule        string `msgpack:"_task_module"`
	UIColor           string `msgpack:"ui_color"`
	UIFgcolor         string `msgpack:"ui_fgcolor"`
	TemplateFields    []any  `msgpack:"template_fields"`
	DownstreamTaskIDs []any  `msgpack:"downstream_task_ids"`
}

func buildParseResult(request map[string]any) (parseResult, error) {
	dagID := getenv("BENCH_DAG_ID", "scale_dag")
	tasks, err := envInt("BENCH_TASKS", "1")
	if err != nil {
		return parseResult{}, err
	}
	fileloc := pyStr(request["file"])
	if !truthy(request["file"]) {
		fileloc, _ = os.Executable() // the Python child names its own file
	}
	operators := make([]operator, 0, max(tasks, 0))
	for i := 0; i < tasks; i++ {
		operators = append(operators, operator{
			Type: "operator",
			Var: operatorVar{
				TaskID:            fmt.Sprintf("t%04d", i),
				TaskType:          "BenchTask",
				TaskModule:        "bench_load_child",
				UIColor:           "#ededed",
				UIFgcolor:         "#000",
				TemplateFields:    []any{},
				DownstreamTaskIDs: []any{},
			},
		})
	}
	d := dag{
		DagID:           dagID,
		Fileloc:         fileloc,
		RelativeFileloc: filepath.Base(fileloc),
		Timezone:        "UTC",
		Timetable:       typed{Type: "airflow.timetables.simple.NullTimetable", Var: map[string]any{}},
		MaxActiveTasks:  tasks,
		MaxActiveRuns:   16,
		Tags:            []string{"bench"},
		EdgeInfo:        map[string]any{},
		DagDependencies: []any{},
		Params:          []any{},
		Tasks:           operators,
	}
	return parseResult{
		Fileloc:        fileloc,
		SerializedDags: []serializedDag{{Data: serializedData{Version: 3, Dag: d}}},
		Warnings:       []any{},
		ImportErrors:   map[string]any{},
		Type:           "DagFileParsingResult",
	}, nil
}

const nonblock = syscall.O_NONBLOCK

func max(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// succeedTask is the Python child's SucceedTask, key for key (no rendered_map_index).
type succeedTask struct {
	Type         string        `msgpack:"type"`
	State        string        `msgpack:"state"`
	EndDate      protocol.Time `msgpack:"end_date"`
	TaskOutlets  []any         `msgpack:"task_outlets"`
	OutletEvents []any         `msgpack:"outlet_events"`
}

// result is the measurement file, keys in the Python child's order.
type result struct {
	Mode            string    `json:"mode"`
	Pid             int       `json:"pid"`
	TaskID          any       `json:"task_id"`
	MainToStartupMs float64   `json:"main_to_startup_ms"`
	WaitedForGoS    *float64  `json:"waited_for_go_s,omitempty"` // only with BENCH_GO_FIFO
	RtMsBefore      []float64 `json:"rt_ms_before"`
	RtMsAfter       []float64 `json:"rt_ms_after"`
	RoundTrips      int       `json:"round_trips"`
	RtP50Ms         float64   `json:"rt_p50_ms"`
	RtP99Ms         float64   `json:"rt_p99_ms"`
	RtMaxMs         *float64  `json:"rt_max_ms"` // null when there were no round trips
	RtMs            []float64 `json:"rt_ms"`
	SucceededWall   float64   `json:"succeeded_wall"`
	PeakRssKB       int       `json:"peak_rss_kb"`
}

func run(argv []string) (int, error) {
	opts := parseArgs(argv)
	mode := getenv("BENCH_MODE", "scale")
	if opts["comm"] == "" || opts["logs"] == "" {
		return 0, errors.New("usage: bench-scale-child --comm=HOST:PORT --logs=HOST:PORT")
	}
	commConn, err := net.Dial("tcp", opts["comm"])
	if err != nil {
		return 0, fmt.Errorf("connecting --comm %s: %w", opts["comm"], err)
	}
	logsConn, err := net.Dial("tcp", opts["logs"])
	if err != nil {
		return 0, fmt.Errorf("connecting --logs %s: %w", opts["logs"], err)
	}
	// net.Dial sets TCP_NODELAY, as the Python child does by hand.
	c := &client{conn: commConn, r: bufio.NewReaderSize(commConn, 64<<10)}
	first, err := protocol.ReadFrame(c.r)
	if err != nil {
		return 0, fmt.Errorf("reading the first frame: %w", err)
	}
	c.reqID = first.ID
	var body map[string]any
	if first.Body != nil {
		if err := first.DecodeBody(&body); err != nil {
			return 0, fmt.Errorf("decoding the first frame: %w", err)
		}
	}
	switch body["type"] {
	case "DagFileParseRequest":
		answer, err := buildParseResult(body)
		if err != nil {
			return 0, err
		}
		reply, err := c.request(answer)
		if err != nil {
			return 0, err
		}
		if hasError(reply) {
			return 1, nil
		}
		return 0, nil
	case "StartupDetails":
	default:
		line, _ := json.Marshal(map[string]string{"error": truncate(
			fmt.Sprintf("first frame: [%d, %v]", first.ID, body), 500)})
		fmt.Println(string(line))
		return 1, nil
	}
	ti, _ := body["ti"].(map[string]any)
	res := result{Mode: mode, Pid: os.Getpid(), TaskID: ti["task_id"]}
	res.MainToStartupMs = time.Since(tMain).Seconds() * 1e3
	if mode != "scale" {
		return 0, fmt.Errorf("unknown BENCH_MODE %q (this child runs only mode scale)", mode)
	}
	if err := modeScale(c, ti, &res); err != nil {
		return 0, err
	}
	end := succeedTask{
		Type: "SucceedTask", State: "success", EndDate: protocol.Now(),
		TaskOutlets: []any{}, OutletEvents: []any{},
	}
	if _, err := c.request(end); err != nil {
		return 0, err
	}
	res.SucceededWall = wallSeconds(time.Now())
	if res.PeakRssKB, err = vmHWMKB(); err != nil {
		return 0, err
	}
	if outDir := os.Getenv("BENCH_OUT_DIR"); outDir != "" {
		data, err := json.Marshal(res)
		if err != nil {
			return 0, err
		}
		name := fmt.Sprintf("%s-%s-%d.json", pyStr(ti["task_id"]), pyStr(ti["map_index"]), os.Getpid())
		if err := os.WriteFile(filepath.Join(outDir, name), data, 0o666); err != nil {
			return 0, err
		}
	}
	if err := logLine(logsConn, "done"); err != nil {
		return 0, fmt.Errorf("writing to --logs: %w", err)
	}
	_ = commConn.Close()
	_ = logsConn.Close()
	return 0, nil
}

func modeScale(c *client, ti map[string]any, res *result) error {
	rt, err := envInt("BENCH_RT", "5")
	if err != nil {
		return err
	}
	hold, err := envSeconds("BENCH_HOLD_S", "3")
	if err != nil {
		return err
	}
	before, err := c.roundTrips(rt)
	if err != nil {
		return err
	}
	if ready := os.Getenv("BENCH_READY_DIR"); ready != "" {
		name := fmt.Sprintf("%s-%s-%d", pyStr(ti["task_id"]), pyStr(ti["map_index"]), os.Getpid())
		f, err := os.OpenFile(filepath.Join(ready, name), os.O_WRONLY|os.O_CREATE, 0o666)
		if err != nil {
			return fmt.Errorf("writing the ready file: %w", err)
		}
		_ = f.Close()
	}
	if fifo := os.Getenv("BENCH_GO_FIFO"); fifo != "" {
		deadline, err := envSeconds("BENCH_GO_MAX", "600")
		if err != nil {
			return err
		}
		waited, err := waitForGo(fifo, deadline)
		if err != nil {
			return err
		}
		res.WaitedForGoS = &waited
	}
	time.Sleep(hold)
	after, err := c.roundTrips(rt)
	if err != nil {
		return err
	}
	res.RtMsBefore = millis(before)
	res.RtMsAfter = millis(after)
	lat := append(append(make([]float64, 0, len(before)+len(after)), before...), after...)
	sort.Float64s(lat)
	res.RoundTrips = len(lat)
	res.RtP50Ms = percentile(lat, 0.5) * 1e3
	res.RtP99Ms = percentile(lat, 0.99) * 1e3
	if len(lat) > 0 {
		m := lat[len(lat)-1] * 1e3
		res.RtMaxMs = &m
	}
	res.RtMs = millis(lat)
	return nil
}

// waitForGo blocks until the harness closes the FIFO's write end (end of file), or until
// deadline; the seconds waited.
func waitForGo(fifo string, deadline time.Duration) (float64, error) {
	t0 := time.Now()
	// Non-blocking open, as the Python child's: it must not wait for a writer. Go then reads
	// the FIFO through its poller, so Read blocks until data, end of file or the deadline.
	f, err := os.OpenFile(fifo, os.O_RDONLY|nonblock, 0)
	if err != nil {
		return 0, fmt.Errorf("opening BENCH_GO_FIFO: %w", err)
	}
	defer f.Close()
	_ = f.SetReadDeadline(t0.Add(deadline))
	buf := make([]byte, 4096)
	for {
		_, err := f.Read(buf)
		if err != nil { // io.EOF (released), the deadline, or a real error: stop waiting
			break
		}
	}
	return time.Since(t0).Seconds(), nil
}

// percentile is child.py's: the value at round(q*(n-1)), rounding half to even as Python does.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.RoundToEven(q * float64(len(sorted)-1)))
	if i < 0 {
		i = 0
	}
	if i > len(sorted)-1 {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func millis(seconds []float64) []float64 {
	out := make([]float64, len(seconds))
	for i, s := range seconds {
		out[i] = s * 1e3
	}
	return out
}

func wallSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// vmHWMKB is the process's peak resident set (VmHWM in /proc/self/status), in kB.
func vmHWMKB() (int, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			fields := strings.Fields(line)
			if len(fields) >= 2 {
				return strconv.Atoi(fields[1])
			}
		}
	}
	return 0, nil
}

// logLine writes child.py's log(): one JSON object per line, keys and separators as
// json.dumps writes them, the timestamp as datetime.isoformat() does.
func logLine(conn net.Conn, event string) error {
	line := fmt.Sprintf(`{"timestamp": %s, "level": "info", "event": %s, "logger": "bench_child"}`+"\n",
		jsonString(isoformat(time.Now())), jsonString(event))
	_, err := conn.Write([]byte(line))
	return err
}

// isoformat renders t as Python's datetime.now(UTC).isoformat(): microseconds unless they are
// zero, and a +00:00 offset.
func isoformat(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05+00:00")
	}
	return t.Format("2006-01-02T15:04:05.000000+00:00")
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// pyStr is Python's f"{value}" for the values a frame carries.
func pyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	default:
		return fmt.Sprint(x)
	}
}

// truthy is Python's bool() for the values a frame carries.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case bool:
		return x
	case int64:
		return x != 0
	case uint64:
		return x != 0
	case float64:
		return x != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	default:
		return true
	}
}

// hasError is the Python child's `len(reply) > 2 and reply[2]`: a non-empty error map.
func hasError(reply protocol.Frame) bool {
	return reply.Error != nil && !bytes.Equal(reply.Error, []byte{0x80})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
