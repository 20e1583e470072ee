package coord

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/exp/slog"

	"supervisor-sim/goruntime/protocol"
	"supervisor-sim/goruntime/sdk"
)

// Logger names, as they appear in the "logger" key.
const (
	RuntimeLogger = "go_runtime" // the runtime's own records
	TaskLogger    = "task"       // records of task code (TI.Log, slog's default logger)
)

// Records made before the logs socket connects are kept up to these limits; beyond them they
// go to stderr so nothing is lost.
const (
	maxPendingRecords = 10000
	maxPendingBytes   = 8 << 20
)

// reservedKeys are the header keys a structured field must never replace.
var reservedKeys = map[string]bool{"timestamp": true, "level": true, "event": true, "logger": true}

// jwtPattern is the token shape Airflow's runtime redacts itself (the supervisor masks the rest).
var jwtPattern = regexp.MustCompile(`eyJ[.A-Za-z0-9_-]*`)

// ---------------------------------------------------------------------------------------------
// LogSink: where JSON lines go
// ---------------------------------------------------------------------------------------------

type sinkState int

const (
	sinkPending sinkState = iota // not connected yet: buffer
	sinkOpen                     // connected: write to the socket
	sinkClosed                   // closed or failed: write to the fallback (stderr)
)

// LogSink writes one JSON record per line to the logs socket. Records written before Attach
// are buffered and flushed on Attach; after Close, or once a write fails, records go to the
// fallback writer (stderr), so a closed sink never blocks or loses a record.
type LogSink struct {
	mu           sync.Mutex
	state        sinkState
	conn         net.Conn
	pending      [][]byte
	pendingBytes int
	fallback     io.Writer
	bound        []slog.Attr
}

// NewLogSink returns a sink that buffers until Attach.
func NewLogSink(fallback io.Writer) *LogSink { return &LogSink{fallback: fallback} }

// Attach connects the sink to the logs socket and flushes the buffered records.
func (s *LogSink) Attach(conn net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != sinkPending {
		_ = conn.Close()
		return
	}
	s.conn, s.state = conn, sinkOpen
	pending := s.pending
	s.pending, s.pendingBytes = nil, 0
	for _, line := range pending {
		s.writeLocked(line)
	}
}

// Close closes the logs socket; later records go to the fallback writer. Buffered records that
// never reached a socket are written to the fallback first.
func (s *LogSink) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, line := range s.pending {
		_, _ = s.fallback.Write(line)
	}
	s.pending, s.pendingBytes = nil, 0
	if s.conn != nil {
		if tcp, ok := s.conn.(*net.TCPConn); ok {
			_ = tcp.CloseWrite() // send FIN after the last record
		}
		_ = s.conn.Close()
		s.conn = nil
	}
	s.state = sinkClosed
}

// Bind adds fields to every later record of every logger (the task instance identity).
func (s *LogSink) Bind(args ...any) {
	attrs := argsToAttrs(args)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bound = append(append([]slog.Attr(nil), s.bound...), attrs...)
}

func (s *LogSink) boundAttrs() []slog.Attr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

// Write sends one complete record line.
func (s *LogSink) Write(line []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == sinkPending {
		if len(s.pending) < maxPendingRecords && s.pendingBytes+len(line) <= maxPendingBytes {
			s.pending = append(s.pending, append([]byte(nil), line...))
			s.pendingBytes += len(line)
			return
		}
		_, _ = s.fallback.Write(line)
		return
	}
	s.writeLocked(line)
}

func (s *LogSink) writeLocked(line []byte) {
	if s.state == sinkOpen {
		if _, err := s.conn.Write(line); err == nil {
			return
		} else {
			// The supervisor went away: keep the task alive and fall back to stderr.
			_ = s.conn.Close()
			s.conn, s.state = nil, sinkClosed
			fmt.Fprintf(s.fallback, "go runtime: logs socket failed: %v\n", err)
		}
	}
	_, _ = s.fallback.Write(line)
}

// ---------------------------------------------------------------------------------------------
// Levels
// ---------------------------------------------------------------------------------------------

// Levels are the thresholds the runtime filters with: AIRFLOW__LOGGING__LOGGING_LEVEL for
// every logger, AIRFLOW__LOGGING__NAMESPACE_LEVELS ("<logger>=<LEVEL>" pairs separated by
// whitespace and/or commas) per logger name and its children.
type Levels struct {
	Default    slog.Level
	Namespaces map[string]slog.Level
}

// LevelsFromEnv reads the two Airflow variables through getenv.
func LevelsFromEnv(getenv func(string) string) Levels {
	l := Levels{Default: ParseLevel(getenv("AIRFLOW__LOGGING__LOGGING_LEVEL"), slog.InfoLevel)}
	spec := getenv("AIRFLOW__LOGGING__NAMESPACE_LEVELS")
	for _, pair := range strings.FieldsFunc(spec, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	}) {
		name, level, ok := strings.Cut(pair, "=")
		if ok && name != "" {
			if l.Namespaces == nil {
				l.Namespaces = map[string]slog.Level{}
			}
			l.Namespaces[name] = ParseLevel(level, slog.InfoLevel)
		}
	}
	return l
}

// Threshold is the level below which records of logger are dropped; the most specific
// namespace wins ("task.x=DEBUG" beats "task=ERROR" for logger "task.x").
func (l Levels) Threshold(logger string) slog.Level {
	best, bestLen := l.Default, -1
	for name, level := range l.Namespaces {
		if (logger == name || strings.HasPrefix(logger, name+".")) && len(name) > bestLen {
			best, bestLen = level, len(name)
		}
	}
	return best
}

// ParseLevel maps a level name (any case) or a Python level number to a slog level.
func ParseLevel(text string, def slog.Level) slog.Level {
	t := strings.ToLower(strings.TrimSpace(text))
	if t == "" {
		return def
	}
	if n, err := strconv.Atoi(t); err == nil {
		// Python: DEBUG 10, INFO 20, WARNING 30, ERROR 40, CRITICAL 50 → slog -4, 0, 4, 8, 12.
		return slog.Level((n - 20) * 4 / 10)
	}
	switch t {
	case "debug":
		return slog.DebugLevel
	case "info":
		return slog.InfoLevel
	case "warning", "warn":
		return slog.WarnLevel
	case "error", "exception":
		return slog.ErrorLevel
	case "critical", "fatal":
		return sdk.LevelCritical
	}
	return def
}

// LevelName is the lowercase name Airflow's supervisor recognises for a slog level.
func LevelName(l slog.Level) string {
	switch {
	case l < slog.InfoLevel:
		return "debug"
	case l < slog.WarnLevel:
		return "info"
	case l < slog.ErrorLevel:
		return "warning"
	case l < sdk.LevelCritical:
		return "error"
	default:
		return "critical"
	}
}

// ---------------------------------------------------------------------------------------------
// The slog handler
// ---------------------------------------------------------------------------------------------

// JSONHandler is a slog.Handler that renders each record as one JSON line with the keys
// timestamp (RFC 3339 UTC, microseconds, Z), level (lowercase), event, logger, then the bound
// task-instance fields, then the logger's and the record's attributes.
type JSONHandler struct {
	sink   *LogSink
	levels Levels
	logger string
	attrs  []slog.Attr
	groups []string
	now    func() time.Time
}

// NewJSONHandler returns a handler for records of the named logger.
func NewJSONHandler(sink *LogSink, levels Levels, logger string) *JSONHandler {
	return &JSONHandler{sink: sink, levels: levels, logger: logger, now: time.Now}
}

// NewLogger returns an sdk.Logger writing to sink under the logger name.
func NewLogger(sink *LogSink, levels Levels, logger string) *sdk.Logger {
	return sdk.NewLogger(slog.New(NewJSONHandler(sink, levels, logger)))
}

// Enabled implements slog.Handler.
func (h *JSONHandler) Enabled(l slog.Level) bool { return l >= h.levels.Threshold(h.logger) }

// WithAttrs implements slog.Handler. A "logger" attribute renames the logger instead.
func (h *JSONHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range attrs {
		if len(h.groups) == 0 && a.Key == "logger" && a.Value.Kind() == slog.StringKind {
			h2.logger = a.Value.String()
			continue
		}
		h2.attrs = append(h2.attrs, prefixAttr(h.groups, a))
	}
	return &h2
}

// WithGroup implements slog.Handler: later attributes nest under name.
func (h *JSONHandler) WithGroup(name string) slog.Handler {
	h2 := *h
	h2.groups = append(append([]string(nil), h.groups...), name)
	return &h2
}

// Handle implements slog.Handler.
func (h *JSONHandler) Handle(r slog.Record) error {
	ts := r.Time
	if ts.IsZero() {
		ts = h.now()
	}
	rec := &orderedObject{}
	rec.set("timestamp", ts.UTC().Format(protocol.TimestampLayout))
	rec.set("level", LevelName(r.Level))
	rec.set("event", r.Message)
	rec.set("logger", h.logger)
	for _, a := range h.sink.boundAttrs() {
		rec.setField(a.Key, valueOf(a.Value))
	}
	for _, a := range h.attrs {
		rec.setField(a.Key, valueOf(a.Value))
	}
	r.Attrs(func(a slog.Attr) {
		a = prefixAttr(h.groups, a)
		rec.setField(a.Key, valueOf(a.Value))
	})
	line, err := rec.MarshalJSON()
	if err != nil {
		return err
	}
	line = jwtPattern.ReplaceAll(line, []byte("eyJ***"))
	h.sink.Write(append(line, '\n'))
	return nil
}

func prefixAttr(groups []string, a slog.Attr) slog.Attr {
	for i := len(groups) - 1; i >= 0; i-- {
		a = slog.Group(groups[i], a)
	}
	return a
}

// orderedObject is a JSON object that keeps insertion order.
type orderedObject struct {
	keys   []string
	values map[string]any
}

func (o *orderedObject) set(key string, v any) {
	if o.values == nil {
		o.values = map[string]any{}
	}
	if _, ok := o.values[key]; !ok {
		o.keys = append(o.keys, key)
	}
	o.values[key] = v
}

// setField sets a structured field; empty keys are dropped and header keys get a "field_"
// prefix so that they can never replace the record header.
func (o *orderedObject) setField(key string, v any) {
	if key == "" {
		return
	}
	if reservedKeys[key] {
		key = "field_" + key
	}
	o.set(key, v)
}

func (o *orderedObject) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(jsonBytes(k))
		buf.WriteByte(':')
		buf.Write(jsonBytes(o.values[k]))
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// jsonBytes encodes v without HTML escaping; anything encoding/json cannot encode becomes
// its %+v text, so that logging never fails a task.
func jsonBytes(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		buf.Reset()
		_ = enc.Encode(fmt.Sprintf("%+v", v))
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// valueOf converts a slog value into something encoding/json renders well.
func valueOf(v slog.Value) any {
	v = v.Resolve()
	switch v.Kind() {
	case slog.StringKind:
		return v.String()
	case slog.Int64Kind:
		return v.Int64()
	case slog.Uint64Kind:
		return v.Uint64()
	case slog.Float64Kind:
		f := v.Float64()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return f
	case slog.BoolKind:
		return v.Bool()
	case slog.DurationKind:
		return v.Duration().String()
	case slog.TimeKind:
		return v.Time().UTC().Format(protocol.TimestampLayout)
	case slog.GroupKind:
		obj := &orderedObject{}
		for _, a := range v.Group() {
			obj.set(a.Key, valueOf(a.Value))
		}
		return obj
	}
	switch x := v.Any().(type) {
	case nil:
		return nil
	case json.Marshaler:
		return x
	case error:
		return x.Error()
	case time.Time:
		return x.UTC().Format(protocol.TimestampLayout)
	case []byte:
		return string(x)
	default:
		return x
	}
}

func argsToAttrs(args []any) []slog.Attr {
	var out []slog.Attr
	for len(args) > 0 {
		switch a := args[0].(type) {
		case slog.Attr:
			out, args = append(out, a), args[1:]
		case string:
			if len(args) == 1 {
				out, args = append(out, slog.String("!BADKEY", a)), nil
			} else {
				out, args = append(out, slog.Any(a, args[1])), args[2:]
			}
		default:
			out, args = append(out, slog.Any("!BADKEY", a)), args[1:]
		}
	}
	return out
}
