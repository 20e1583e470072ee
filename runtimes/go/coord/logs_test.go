package coord

import (
	"bytes"
	"encoding/json"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/exp/slog"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestRecordsStartWithTimestampLevelEventLogger(t *testing.T) {
	// A closed sink writes to its fallback writer, which makes the rendered line easy to read.
	var got bytes.Buffer
	closed := NewLogSink(&got)
	closed.Close()
	closed.Bind("ti_id", "x", "try_number", 1)
	log := NewLogger(closed, Levels{Default: slog.InfoLevel}, "task")
	log.With("component", "c").Warn("hi there", "n", 3, "level", "fake", "when", time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC))
	line := strings.TrimSpace(got.String())
	if !regexp.MustCompile(`^\{"timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z","level":"warning","event":"hi there","logger":"task","ti_id":"x","try_number":1,"component":"c","n":3,"field_level":"fake","when":"2025-01-02T03:04:05.000006Z"\}$`).MatchString(line) {
		t.Fatalf("record: %s", line)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
}

func TestLevelsComeFromTheAirflowEnvironment(t *testing.T) {
	levels := LevelsFromEnv(envOf(map[string]string{
		"AIRFLOW__LOGGING__LOGGING_LEVEL":    "WARNING",
		"AIRFLOW__LOGGING__NAMESPACE_LEVELS": "task=DEBUG, task.quiet=error go_runtime=40",
	}))
	cases := map[string]slog.Level{
		"other": slog.WarnLevel, "task": slog.DebugLevel, "task.x": slog.DebugLevel,
		"task.quiet": slog.ErrorLevel, "task.quiet.y": slog.ErrorLevel, "taskx": slog.WarnLevel,
		"go_runtime": slog.ErrorLevel,
	}
	for logger, want := range cases {
		if got := levels.Threshold(logger); got != want {
			t.Errorf("%s: threshold %v, want %v", logger, got, want)
		}
	}
	if LevelsFromEnv(envOf(nil)).Default != slog.InfoLevel {
		t.Error("the default level must be info")
	}
	var got bytes.Buffer
	sink := NewLogSink(&got)
	sink.Close()
	NewLogger(sink, levels, "other").Info("dropped")
	NewLogger(sink, levels, "other").Error("kept")
	NewLogger(sink, levels, "task").Debug("kept too")
	if s := got.String(); strings.Contains(s, "dropped") || !strings.Contains(s, "kept") || !strings.Contains(s, `"level":"debug"`) {
		t.Fatalf("filtering: %s", s)
	}
}

func TestLevelNamesAreLowercaseAirflowNames(t *testing.T) {
	for lvl, want := range map[slog.Level]string{
		slog.DebugLevel: "debug", slog.InfoLevel: "info", slog.WarnLevel: "warning",
		slog.ErrorLevel: "error", slog.ErrorLevel + 4: "critical",
	} {
		if got := LevelName(lvl); got != want {
			t.Errorf("%v: %q, want %q", lvl, got, want)
		}
	}
}

func TestRecordsMadeBeforeConnectingAreBufferedThenFlushed(t *testing.T) {
	var fallback bytes.Buffer
	sink := NewLogSink(&fallback)
	log := NewLogger(sink, Levels{}, "go_runtime")
	log.Info("early one")
	log.Info("early two")
	a, b := net.Pipe()
	defer b.Close()
	lines := make(chan string, 10)
	go func() {
		buf := make([]byte, 0, 4096)
		tmp := make([]byte, 4096)
		for {
			n, err := b.Read(tmp)
			if err != nil {
				close(lines)
				return
			}
			buf = append(buf, tmp[:n]...)
			for {
				i := bytes.IndexByte(buf, '\n')
				if i < 0 {
					break
				}
				lines <- string(buf[:i])
				buf = buf[i+1:]
			}
		}
	}()
	sink.Attach(a)
	log.Info("late")
	sink.Close()
	var got []string
	for l := range lines {
		got = append(got, l)
	}
	if len(got) != 3 || !strings.Contains(got[0], "early one") || !strings.Contains(got[2], "late") {
		t.Fatalf("lines %q", got)
	}
	if fallback.Len() != 0 {
		t.Fatalf("nothing should reach stderr: %q", fallback.String())
	}
}

func TestRecordsGoToStderrOnceTheSocketIsGone(t *testing.T) {
	var fallback bytes.Buffer
	sink := NewLogSink(&fallback)
	a, b := net.Pipe()
	sink.Attach(a)
	b.Close() // the supervisor went away
	log := NewLogger(sink, Levels{}, "task")
	log.Info("after the peer closed")
	log.Info("and another")
	sink.Close()
	log.Info("after close")
	s := fallback.String()
	for _, want := range []string{"after the peer closed", "and another", "after close"} {
		if !strings.Contains(s, want) {
			t.Fatalf("stderr lacks %q: %s", want, s)
		}
	}
}
