package coord

import (
	"context"
	"fmt"

	"supervisor-sim/goruntime/protocol"
	"supervisor-sim/goruntime/sdk"
)

// notFoundErrors are the ErrorResponse codes that mean "what you asked for is not there";
// they arrive in the body slot.
var notFoundErrors = map[string]bool{
	"CONNECTION_NOT_FOUND":  true,
	"VARIABLE_NOT_FOUND":    true,
	"XCOM_NOT_FOUND":        true,
	"ASSET_NOT_FOUND":       true,
	"TASK_STORE_NOT_FOUND":  true,
	"ASSET_STORE_NOT_FOUND": true,
}

// commClient implements sdk.Client with lock-step requests over the comm socket. Request
// bodies are the same as the Python reference runtime's, key for key.
type commClient struct {
	comms *Comms
	ti    protocol.TaskInstance
}

var _ sdk.Client = (*commClient)(nil)

// call sends body and turns error replies into errors. expected is the reply body type, or ""
// for requests answered with an empty ack.
func (c *commClient) call(ctx context.Context, body any, expected string) (protocol.Frame, error) {
	if err := ctx.Err(); err != nil {
		return protocol.Frame{}, err
	}
	reply, err := c.comms.Request(body)
	if err != nil {
		return protocol.Frame{}, err
	}
	if e, err := reply.ErrorResponse(); err != nil {
		return protocol.Frame{}, err
	} else if e != nil {
		return protocol.Frame{}, &sdk.SupervisorError{Code: e.Error, Detail: e.Detail}
	}
	got := reply.BodyType()
	if got == "ErrorResponse" {
		var e protocol.ErrorResponse
		_ = reply.DecodeBody(&e)
		if e.Error == "" {
			e.Error = "GENERIC_ERROR"
		}
		if notFoundErrors[e.Error] {
			return protocol.Frame{}, &sdk.NotFoundError{Code: e.Error, Detail: e.Detail}
		}
		return protocol.Frame{}, &sdk.SupervisorError{Code: e.Error, Detail: e.Detail}
	}
	if expected != "" && got != expected {
		return protocol.Frame{}, &sdk.SupervisorError{
			Code:   "GENERIC_ERROR",
			Detail: fmt.Sprintf("expected %s reply, got %s", expected, typeOrNone(got)),
		}
	}
	return reply, nil
}

func typeOrNone(t string) string {
	if t == "" {
		return "None"
	}
	return t
}

func (c *commClient) GetVariable(ctx context.Context, key string) (string, error) {
	reply, err := c.call(ctx, protocol.GetVariable{Type: "GetVariable", Key: key}, "VariableResult")
	if err != nil {
		return "", err
	}
	var v protocol.VariableResult
	if err := reply.DecodeBody(&v); err != nil {
		return "", err
	}
	if v.Value == nil {
		return "", nil
	}
	return *v.Value, nil
}

func (c *commClient) GetConnection(ctx context.Context, connID string) (sdk.Connection, error) {
	body := protocol.GetConnection{Type: "GetConnection", ConnID: connID}
	reply, err := c.call(ctx, body, "ConnectionResult")
	if err != nil {
		return sdk.Connection{}, err
	}
	var conn sdk.Connection
	err = reply.DecodeBody(&conn)
	return conn, err
}

func (c *commClient) GetXCom(ctx context.Context, q sdk.XComQuery) (any, error) {
	body := protocol.GetXCom{
		Type:     "GetXCom",
		Key:      orDefault(q.Key, "return_value"),
		DagID:    orDefault(q.DagID, c.ti.DagID),
		RunID:    orDefault(q.RunID, c.ti.RunID),
		TaskID:   q.TaskID,
		MapIndex: q.MapIndex,
	}
	reply, err := c.call(ctx, body, "XComResult")
	if err != nil {
		if _, ok := err.(*sdk.NotFoundError); ok {
			return nil, nil
		}
		return nil, err
	}
	var x protocol.XComResult
	if err := reply.DecodeBody(&x); err != nil {
		return nil, err
	}
	return x.Value, nil
}

func (c *commClient) SetXCom(ctx context.Context, key string, value any) error {
	_, err := c.call(ctx, protocol.SetXCom{
		Type:     "SetXCom",
		Key:      key,
		Value:    value,
		DagID:    c.ti.DagID,
		RunID:    c.ti.RunID,
		TaskID:   c.ti.TaskID,
		MapIndex: c.ti.MapIndexOrDefault(),
	}, "")
	return err
}

func (c *commClient) DeleteXCom(ctx context.Context, key string) error {
	_, err := c.call(ctx, protocol.DeleteXCom{
		Type:     "DeleteXCom",
		Key:      key,
		DagID:    c.ti.DagID,
		RunID:    c.ti.RunID,
		TaskID:   c.ti.TaskID,
		MapIndex: c.ti.MapIndexOrDefault(),
	}, "")
	return err
}

func (c *commClient) MaskSecret(ctx context.Context, value any, name string) error {
	body := protocol.MaskSecret{Type: "MaskSecret", Value: value}
	if name != "" {
		body.Name = &name
	}
	_, err := c.call(ctx, body, "")
	return err
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
