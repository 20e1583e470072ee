package example

import (
	"testing"
)

func TestSumKeepsIntegersIntegral(t *testing.T) {
	got, err := sum([]any{int64(1), uint64(2), int64(3)})
	if err != nil || got != int64(6) {
		t.Fatalf("got %#v %v", got, err)
	}
	got, err = sum([]any{int64(1), 0.5})
	if err != nil || got != 1.5 {
		t.Fatalf("got %#v %v", got, err)
	}
	if _, err := sum([]any{"x"}); err == nil {
		t.Fatal("a string is not a number")
	}
}

func TestTheBundleIsValidAndMatchesThePythonTaskIds(t *testing.T) {
	b := Bundle()
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []string{"hello", "read_var_conn", "push_xcom", "pull_xcom", "fail", "retry", "sleep",
		"skip", "ignore_sigterm", "no_terminal", "use_secret"}
	d := b.Dag(DagID)
	if len(d.Tasks) != len(want) {
		t.Fatalf("%d tasks", len(d.Tasks))
	}
	for i, task := range d.Tasks {
		if task.ID != want[i] {
			t.Fatalf("task %d is %q, want %q", i, task.ID, want[i])
		}
	}
	if up := d.Task("pull_xcom").Upstream; len(up) != 1 || up[0] != "push_xcom" {
		t.Fatalf("pull_xcom upstream %v", up)
	}
}
