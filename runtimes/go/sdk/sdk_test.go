package sdk

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func noop(ctx context.Context, ti *TI) (any, error) { return nil, nil }

func TestValidateRejectsDuplicatesMissingFunctionsAndUnknownUpstreams(t *testing.T) {
	cases := map[string]*Bundle{
		"defined twice":    {Dags: []*Dag{{ID: "d", Tasks: []*Task{{ID: "a", Fn: noop}, {ID: "a", Fn: noop}}}}},
		"has no function":  {Dags: []*Dag{{ID: "d", Tasks: []*Task{{ID: "a"}}}}},
		"unknown upstream": {Dags: []*Dag{{ID: "d", Tasks: []*Task{{ID: "a", Fn: noop, Upstream: []string{"z"}}}}}},
		"empty id":         {Dags: []*Dag{{ID: ""}}},
	}
	for want, b := range cases {
		if err := b.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
	ok := &Bundle{Dags: []*Dag{{ID: "d", Tasks: []*Task{{ID: "a", Fn: noop}, {ID: "b", Fn: noop, Upstream: []string{"a"}}}}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := ok.Dags[0].Downstream()["a"]; len(got) != 1 || got[0] != "b" {
		t.Fatalf("downstream %v", got)
	}
	if ok.Lookup("d", "b") == nil || ok.Lookup("d", "x") != nil || ok.Lookup("x", "a") != nil {
		t.Fatal("lookup")
	}
}

func TestTaskTypeDefaultsToTheFunctionNameAndPackage(t *testing.T) {
	typ, mod := (&Task{ID: "a", Fn: noop}).TypeAndModule()
	if typ != "noop" || mod != "supervisor-sim/goruntime/sdk" {
		t.Fatalf("got %q %q", typ, mod)
	}
	typ, mod = (&Task{ID: "a", Fn: noop, TaskType: "T", TaskModule: "m"}).TypeAndModule()
	if typ != "T" || mod != "m" {
		t.Fatalf("override: %q %q", typ, mod)
	}
}

func TestNotFoundErrorsMatchErrNotFound(t *testing.T) {
	var err error = &NotFoundError{Code: "VARIABLE_NOT_FOUND"}
	if !errors.Is(err, ErrNotFound) {
		t.Fatal("NotFoundError must match ErrNotFound")
	}
	if errors.Is(&SupervisorError{Code: "API_SERVER_ERROR"}, ErrNotFound) {
		t.Fatal("SupervisorError must not match ErrNotFound")
	}
	var skip *SkipError
	if !errors.As(Skip("why"), &skip) || skip.Reason != "why" {
		t.Fatal("Skip must build a SkipError")
	}
}
