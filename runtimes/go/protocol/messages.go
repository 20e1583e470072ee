package protocol

// Message bodies. Field order is wire order: it follows the Python reference runtime
// (runtimes/reference/runtime.py), so that both runtimes write the same bytes for the same
// request. Every body carries its "type" key first.
//
// Inbound types (supervisor → runtime) list only the fields this runtime reads; msgpack skips
// every other key, which keeps the runtime forward compatible with newer supervisors.

// ---------------------------------------------------------------------------------------------
// Supervisor → runtime
// ---------------------------------------------------------------------------------------------

// TaskInstance is StartupDetails.ti.
type TaskInstance struct {
	ID             string         `msgpack:"id"`
	TaskID         string         `msgpack:"task_id"`
	DagID          string         `msgpack:"dag_id"`
	RunID          string         `msgpack:"run_id"`
	TryNumber      int            `msgpack:"try_number"`
	DagVersionID   string         `msgpack:"dag_version_id"`
	MapIndex       *int           `msgpack:"map_index"` // nil or missing means -1 (not mapped)
	Hostname       *string        `msgpack:"hostname"`
	ContextCarrier map[string]any `msgpack:"context_carrier"`
	Queue          *string        `msgpack:"queue"`
}

// MapIndexOrDefault is the map index, with a missing or nil value read as -1.
func (ti TaskInstance) MapIndexOrDefault() int {
	if ti.MapIndex == nil {
		return -1
	}
	return *ti.MapIndex
}

// BundleInfo is StartupDetails.bundle_info.
type BundleInfo struct {
	Name    string  `msgpack:"name"`
	Version *string `msgpack:"version"`
}

// DagRun is TIRunContext.dag_run.
type DagRun struct {
	DagID              string         `msgpack:"dag_id"`
	RunID              string         `msgpack:"run_id"`
	LogicalDate        *Time          `msgpack:"logical_date"`
	DataIntervalStart  *Time          `msgpack:"data_interval_start"`
	DataIntervalEnd    *Time          `msgpack:"data_interval_end"`
	RunAfter           *Time          `msgpack:"run_after"`
	StartDate          *Time          `msgpack:"start_date"`
	EndDate            *Time          `msgpack:"end_date"`
	ClearNumber        int            `msgpack:"clear_number"`
	RunType            string         `msgpack:"run_type"`
	State              string         `msgpack:"state"`
	Conf               map[string]any `msgpack:"conf"`
	TriggeringUserName *string        `msgpack:"triggering_user_name"`
	PartitionKey       *string        `msgpack:"partition_key"`
}

// TIRunContext is StartupDetails.ti_context.
type TIRunContext struct {
	DagRun              DagRun   `msgpack:"dag_run"`
	TaskRescheduleCount int      `msgpack:"task_reschedule_count"`
	MaxTries            int      `msgpack:"max_tries"`
	NextMethod          *string  `msgpack:"next_method"`
	NextKwargs          any      `msgpack:"next_kwargs"`
	XComKeysToClear     []string `msgpack:"xcom_keys_to_clear"`
	ShouldRetry         bool     `msgpack:"should_retry"`
	StartDate           *Time    `msgpack:"start_date"`
}

// StartupDetails is the first frame of the task-execution workload.
type StartupDetails struct {
	Type              string       `msgpack:"type"`
	TI                TaskInstance `msgpack:"ti"`
	DagRelPath        string       `msgpack:"dag_rel_path"`
	BundleInfo        BundleInfo   `msgpack:"bundle_info"`
	StartDate         *Time        `msgpack:"start_date"`
	TIContext         TIRunContext `msgpack:"ti_context"`
	SentryIntegration string       `msgpack:"sentry_integration"`
}

// DagFileParseRequest is the first frame of the DAG-parsing workload.
type DagFileParseRequest struct {
	Type             string           `msgpack:"type"`
	File             string           `msgpack:"file"`
	BundlePath       string           `msgpack:"bundle_path"`
	BundleName       string           `msgpack:"bundle_name"`
	CallbackRequests []map[string]any `msgpack:"callback_requests"`
}

// ErrorResponse arrives in the body slot ("not found" style answers) or in the error slot.
type ErrorResponse struct {
	Type   string `msgpack:"type"`
	Error  string `msgpack:"error"`
	Detail any    `msgpack:"detail"`
}

// ConnectionResult answers GetConnection. Nullable fields are pointers.
type ConnectionResult struct {
	Type     string  `msgpack:"type" json:"-"`
	ConnID   string  `msgpack:"conn_id" json:"conn_id"`
	ConnType string  `msgpack:"conn_type" json:"conn_type"`
	Host     *string `msgpack:"host" json:"host"`
	Schema   *string `msgpack:"schema" json:"schema"`
	Login    *string `msgpack:"login" json:"login"`
	Password *string `msgpack:"password" json:"password"`
	Port     *int    `msgpack:"port" json:"port"`
	Extra    *string `msgpack:"extra" json:"extra"` // a JSON-encoded string, not a map
}

// VariableResult answers GetVariable.
type VariableResult struct {
	Type  string  `msgpack:"type"`
	Key   string  `msgpack:"key"`
	Value *string `msgpack:"value"`
}

// XComResult answers GetXCom. A missing XCom is a nil value.
type XComResult struct {
	Type  string `msgpack:"type"`
	Key   string `msgpack:"key"`
	Value any    `msgpack:"value"`
}

// ---------------------------------------------------------------------------------------------
// Runtime → supervisor
// ---------------------------------------------------------------------------------------------

// GetVariable asks for a variable.
type GetVariable struct {
	Type string `msgpack:"type"`
	Key  string `msgpack:"key"`
}

// GetConnection asks for a connection.
type GetConnection struct {
	Type   string `msgpack:"type"`
	ConnID string `msgpack:"conn_id"`
}

// GetXCom asks for one XCom value.
type GetXCom struct {
	Type              string `msgpack:"type"`
	Key               string `msgpack:"key"`
	DagID             string `msgpack:"dag_id"`
	RunID             string `msgpack:"run_id"`
	TaskID            string `msgpack:"task_id"`
	MapIndex          *int   `msgpack:"map_index"`
	IncludePriorDates bool   `msgpack:"include_prior_dates"`
}

// SetXCom pushes an XCom value (answered with an empty ack).
type SetXCom struct {
	Type         string `msgpack:"type"`
	Key          string `msgpack:"key"`
	Value        any    `msgpack:"value"`
	DagID        string `msgpack:"dag_id"`
	RunID        string `msgpack:"run_id"`
	TaskID       string `msgpack:"task_id"`
	MapIndex     int    `msgpack:"map_index"`
	MappedLength *int   `msgpack:"mapped_length"`
	DagResult    bool   `msgpack:"dag_result"`
}

// DeleteXCom removes an XCom (answered with an empty ack).
type DeleteXCom struct {
	Type     string `msgpack:"type"`
	Key      string `msgpack:"key"`
	DagID    string `msgpack:"dag_id"`
	RunID    string `msgpack:"run_id"`
	TaskID   string `msgpack:"task_id"`
	MapIndex int    `msgpack:"map_index"`
}

// MaskSecret registers a value the supervisor must mask in logs (answered with an empty ack).
type MaskSecret struct {
	Type  string  `msgpack:"type"`
	Value any     `msgpack:"value"`
	Name  *string `msgpack:"name"`
}

// SucceedTask is the terminal message of a successful task. The model forbids unknown keys.
type SucceedTask struct {
	Type             string  `msgpack:"type"`
	State            string  `msgpack:"state"`
	EndDate          Time    `msgpack:"end_date"`
	TaskOutlets      []any   `msgpack:"task_outlets"`
	OutletEvents     []any   `msgpack:"outlet_events"`
	RenderedMapIndex *string `msgpack:"rendered_map_index"`
}

// TaskState is the terminal message for failed, skipped and removed.
type TaskState struct {
	Type             string  `msgpack:"type"`
	State            string  `msgpack:"state"`
	EndDate          Time    `msgpack:"end_date"`
	RenderedMapIndex *string `msgpack:"rendered_map_index"`
}

// RetryTask is the terminal message of a failure the server says to retry. The model forbids
// unknown keys.
type RetryTask struct {
	Type              string   `msgpack:"type"`
	State             string   `msgpack:"state"`
	EndDate           Time     `msgpack:"end_date"`
	RenderedMapIndex  *string  `msgpack:"rendered_map_index"`
	RetryDelaySeconds *float64 `msgpack:"retry_delay_seconds"`
	RetryReason       *string  `msgpack:"retry_reason"`
}

// LazyDeserializedDAG wraps one serialized DAG in DagFileParsingResult.
type LazyDeserializedDAG struct {
	Data map[string]any `msgpack:"data"`
}

// DagFileParsingResult is the request that carries the parse result.
type DagFileParsingResult struct {
	Type           string                `msgpack:"type"`
	Fileloc        string                `msgpack:"fileloc"`
	SerializedDags []LazyDeserializedDAG `msgpack:"serialized_dags"`
}

// RetryReasonMaxChars is the length the Python runtime truncates RetryTask.retry_reason to.
const RetryReasonMaxChars = 500

// NewSucceedTask builds the success terminal message, with exactly the keys Airflow accepts.
func NewSucceedTask() SucceedTask {
	return SucceedTask{
		Type: "SucceedTask", State: "success", EndDate: Now(),
		TaskOutlets: []any{}, OutletEvents: []any{},
	}
}

// NewTaskState builds a TaskState terminal message (failed, skipped or removed).
func NewTaskState(state string) TaskState {
	return TaskState{Type: "TaskState", State: state, EndDate: Now()}
}

// NewRetryTask builds a RetryTask terminal message; a nil delay lets the server use the
// task's own retry delay.
func NewRetryTask(reason string) RetryTask {
	if r := []rune(reason); len(r) > RetryReasonMaxChars {
		reason = string(r[:RetryReasonMaxChars])
	}
	return RetryTask{Type: "RetryTask", State: "up_for_retry", EndDate: Now(), RetryReason: &reason}
}
