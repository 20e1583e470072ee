package coord

import (
	"sort"
	"time"

	"supervisor-sim/goruntime/sdk"
)

// SerializerVersion is DagSerialization's SERIALIZER_VERSION in Airflow 3.3.
const SerializerVersion = 3

// SupervisorSchemaVersion is the supervisor ⇄ runtime schema version this runtime speaks
// (protocol.md §6, §9.10).
const SupervisorSchemaVersion = "2026-06-16"

// BundleMetadataVersion is the airflow_bundle_metadata_version of --bundle-metadata.
const BundleMetadataVersion = "1"

// SDKVersion is reported in --bundle-metadata and --dump-bundle-spec.
const SDKVersion = "0.1.0"

// BundleSpecFormatVersion is the format_version of --dump-bundle-spec (the Go SDK's ADR 0002).
const BundleSpecFormatVersion = "1.0"

// defaultRetryDelay is the operator schema's retry_delay default (300 s).
const defaultRetryDelay = 300 * time.Second

// SerializeDag returns one serialized DAG ({"__version": 3, "dag": {...}}) in the shape
// Airflow's DagSerialization.to_dict produces for a DAG without a schedule, so that it
// validates against airflow/serialization/schema.json and deserializes in the scheduler.
//
// fileloc is the DAG file the parse request named, relFileloc that path relative to the
// bundle root, and dagsFolder the bundle root (_processor_dags_folder).
func SerializeDag(d *sdk.Dag, fileloc, relFileloc, dagsFolder string) map[string]any {
	downstream := d.Downstream()
	tasks := make([]any, 0, len(d.Tasks))
	children := map[string]any{}
	for _, t := range d.Tasks {
		typ, mod := t.TypeAndModule()
		op := map[string]any{
			"task_id":         t.ID,
			"task_type":       typ,
			"_task_module":    mod,
			"ui_color":        "#fff",
			"ui_fgcolor":      "#000",
			"template_fields": []string{},
		}
		if ds := downstream[t.ID]; len(ds) > 0 {
			op["downstream_task_ids"] = ds
		}
		if t.Doc != "" {
			op["doc_md"] = t.Doc
		}
		// As Airflow's serializer: a value equal to the schema's default is left out.
		if t.Retries != 0 {
			op["retries"] = t.Retries
		}
		if t.RetryDelay != 0 && t.RetryDelay != defaultRetryDelay {
			op["retry_delay"] = t.RetryDelay.Seconds()
		}
		tasks = append(tasks, map[string]any{"__type": "operator", "__var": op})
		children[t.ID] = []any{"operator", t.ID}
	}
	var processorFolder any
	if dagsFolder != "" {
		processorFolder = dagsFolder
	}
	dag := map[string]any{
		"dag_id":           d.ID,
		"fileloc":          fileloc,
		"relative_fileloc": relFileloc,
		"timezone":         "UTC",
		"timetable": map[string]any{
			"__type": "airflow.timetables.simple.NullTimetable",
			"__var":  map[string]any{},
		},
		"catchup":                         false,
		"max_active_tasks":                16,
		"max_active_runs":                 16,
		"max_consecutive_failed_dag_runs": 0,
		"disable_bundle_versioning":       false,
		"_processor_dags_folder":          processorFolder,
		"tasks":                           tasks,
		"dag_dependencies":                []any{},
		"task_group": map[string]any{
			"_group_id":            nil,
			"group_display_name":   "",
			"prefix_group_id":      true,
			"tooltip":              "",
			"ui_color":             "CornflowerBlue",
			"ui_fgcolor":           "#000",
			"children":             children,
			"upstream_group_ids":   []string{},
			"downstream_group_ids": []string{},
			"upstream_task_ids":    []string{},
			"downstream_task_ids":  []string{},
		},
		"deadline":          nil,
		"allowed_run_types": nil,
		"edge_info":         map[string]any{},
		"params":            []any{},
	}
	if d.Description != "" {
		dag["description"] = d.Description
	}
	if !d.StartDate.IsZero() {
		// Airflow writes datetimes of a serialized DAG as float unix seconds.
		dag["start_date"] = float64(d.StartDate.UnixMicro()) / 1e6
	}
	if len(d.Tags) > 0 {
		tags := append([]string(nil), d.Tags...)
		sort.Strings(tags)
		dag["tags"] = tags
	}
	return map[string]any{"__version": SerializerVersion, "dag": dag}
}

// BundleMetadata is what --bundle-metadata prints: the airflow-metadata manifest of the
// bundle (its SDK, the supervisor schema version it speaks, and its DAGs and task ids).
func BundleMetadata(b *sdk.Bundle) map[string]any {
	dags := map[string]any{}
	for _, d := range b.Dags {
		ids := make([]string, 0, len(d.Tasks))
		for _, t := range d.Tasks {
			ids = append(ids, t.ID)
		}
		dags[d.ID] = map[string]any{"tasks": ids}
	}
	return map[string]any{
		"airflow_bundle_metadata_version": BundleMetadataVersion,
		"sdk": map[string]any{
			"language":                  "go",
			"version":                   SDKVersion,
			"supervisor_schema_version": SupervisorSchemaVersion,
		},
		"dags": dags,
	}
}

// BundleSpec is what --dump-bundle-spec prints, the JSON airflow-go-pack reads to write the
// bundle's manifest (the Go SDK's ADR 0002): the format version, the SDK, and each DAG's task
// ids in declaration order.
func BundleSpec(b *sdk.Bundle) BundleSpecJSON {
	spec := BundleSpecJSON{
		FormatVersion: BundleSpecFormatVersion,
		SDK:           BundleSpecSDK{Language: "go", Version: SDKVersion},
		Dags:          map[string]BundleSpecDag{},
	}
	for _, d := range b.Dags {
		ids := make([]string, 0, len(d.Tasks))
		for _, t := range d.Tasks {
			ids = append(ids, t.ID)
		}
		spec.Dags[d.ID] = BundleSpecDag{Tasks: ids}
	}
	return spec
}

// BundleSpecJSON is the shape of --dump-bundle-spec, key for key.
type BundleSpecJSON struct {
	FormatVersion string                   `json:"format_version"`
	SDK           BundleSpecSDK            `json:"sdk"`
	Dags          map[string]BundleSpecDag `json:"dags"`
}

// BundleSpecSDK names the SDK a bundle was built with.
type BundleSpecSDK struct {
	Language string `json:"language"`
	Version  string `json:"version"`
}

// BundleSpecDag lists one DAG's task ids.
type BundleSpecDag struct {
	Tasks []string `json:"tasks"`
}
