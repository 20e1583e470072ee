package coord

import (
	"path/filepath"
	"strings"

	"supervisor-sim/goruntime/protocol"
)

// runParse is the DAG-parsing workload: serialize every DAG of the bundle, send them in one
// DagFileParsingResult request, wait for its ack, exit.
func (rt *runtime) runParse(first protocol.Frame) int {
	var req protocol.DagFileParseRequest
	if err := first.DecodeBody(&req); err != nil {
		rt.log.Error("Could not decode DagFileParseRequest", "error", err.Error())
		return ExitFatal
	}
	log := rt.log
	if n := len(req.CallbackRequests); n > 0 {
		// Airflow's runtime runs the callbacks instead of parsing and sends no result. This
		// runtime has no DAG callbacks, so there is nothing to run.
		log.Warn("DAG callbacks are not supported by this runtime; ignoring the callback requests",
			"count", n, "file", req.File)
		return ExitOK
	}
	rel := relativeFileloc(req.BundlePath, req.File)
	result := protocol.DagFileParsingResult{
		Type:           "DagFileParsingResult",
		Fileloc:        req.File,
		SerializedDags: make([]protocol.LazyDeserializedDAG, 0, len(rt.bundle.Dags)),
	}
	for _, d := range rt.bundle.Dags {
		result.SerializedDags = append(result.SerializedDags, protocol.LazyDeserializedDAG{
			Data: SerializeDag(d, req.File, rel, req.BundlePath),
		})
	}
	reply, err := rt.comms.Request(result)
	if err != nil {
		log.Error("Could not send the DagFileParsingResult", "error", err.Error())
		return ExitFatal
	}
	if e, _ := reply.ErrorResponse(); e != nil {
		log.Error("Supervisor rejected the DagFileParsingResult",
			"error", map[string]any{"error": e.Error, "detail": e.Detail})
		return ExitFatal
	}
	log.Info("Parsed the bundle", "file", req.File, "dags", len(result.SerializedDags))
	return ExitOK
}

// relativeFileloc is file relative to the bundle root, or file's base name when it is not
// under the root.
func relativeFileloc(bundlePath, file string) string {
	if bundlePath != "" && file != "" {
		if rel, err := filepath.Rel(bundlePath, file); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return filepath.Base(file)
}
