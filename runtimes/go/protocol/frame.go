// Package protocol is the sans-IO part of the coordinator protocol: frame encoding and
// decoding, the msgpack timestamp type, and the message bodies this runtime sends and reads.
//
// Wire rules (protocol.md §1, §2, §9):
//
//   - A frame is a 4-byte big-endian payload length followed by one msgpack array.
//   - Requests (runtime → supervisor) are [id, body, nil], like Airflow's Python runtime.
//   - Replies may be [id], [id, body] or [id, body, error]; missing trailing elements are nil
//     and extra trailing elements are ignored.
//   - Datetimes are msgpack timestamp extensions (type -1) in all three sizes.
//   - Decoders drop unknown map keys and read missing or nil optional keys as zero values.
package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// MaxFrameBytes is the largest payload a u32 length header can describe.
const MaxFrameBytes = 1<<32 - 1

// ProtocolError means the peer broke the framing contract; the stream can no longer be trusted.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "protocol error: " + e.Msg }

func protocolErrorf(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// Frame is one decoded frame. Body and Error stay raw msgpack so that each reader decodes them
// into its own typed struct (dropping unknown fields) or into generic values.
type Frame struct {
	ID       int64
	Body     msgpack.RawMessage // nil when the body slot was missing or nil
	Error    msgpack.RawMessage // nil when the error slot was missing or nil
	Elements int                // how many array elements the frame had
}

// BodyType returns the body's "type" key, or "" when there is no body or no string type.
func (f Frame) BodyType() string {
	if f.Body == nil {
		return ""
	}
	var head struct {
		Type string `msgpack:"type"`
	}
	if err := Unmarshal(f.Body, &head); err != nil {
		return ""
	}
	return head.Type
}

// DecodeBody decodes the body into v (a pointer to a struct or map).
func (f Frame) DecodeBody(v any) error {
	if f.Body == nil {
		return errors.New("frame has no body")
	}
	return Unmarshal(f.Body, v)
}

// ErrorResponse decodes the error slot, or returns nil when there is none.
func (f Frame) ErrorResponse() (*ErrorResponse, error) {
	if f.Error == nil {
		return nil, nil
	}
	var e ErrorResponse
	if err := Unmarshal(f.Error, &e); err != nil {
		return nil, protocolErrorf("error slot is not an ErrorResponse map: %v", err)
	}
	if e.Error == "" {
		e.Error = "GENERIC_ERROR"
	}
	return &e, nil
}

// Marshal encodes v the way every frame body is encoded: compact integers, map keys sorted
// (so that Go maps encode deterministically), struct fields in declaration order.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := newEncoder(&buf)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Unmarshal decodes msgpack data into v. Unknown struct fields are skipped, nil reads as the
// zero value, and untyped values decode loosely (int64/uint64/float64/string/[]any/
// map[string]any/time.Time).
func Unmarshal(data []byte, v any) error {
	dec := msgpack.NewDecoder(bytes.NewReader(data))
	dec.UseLooseInterfaceDecoding(true)
	return dec.Decode(v)
}

func newEncoder(w io.Writer) *msgpack.Encoder {
	enc := msgpack.NewEncoder(w)
	enc.UseCompactInts(true)
	enc.SetSortMapKeys(true)
	return enc
}

// EncodeRequest returns a complete request frame: length header plus [id, body, nil].
func EncodeRequest(id int64, body any) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0, 0}) // length, filled in below
	enc := newEncoder(&buf)
	if err := enc.EncodeArrayLen(3); err != nil {
		return nil, err
	}
	if err := enc.EncodeInt(id); err != nil {
		return nil, err
	}
	if err := enc.Encode(body); err != nil {
		return nil, fmt.Errorf("encoding request body: %w", err)
	}
	if err := enc.EncodeNil(); err != nil {
		return nil, err
	}
	out := buf.Bytes()
	n := len(out) - 4
	if uint64(n) > MaxFrameBytes {
		return nil, errors.New("cannot send messages larger than 4GiB")
	}
	binary.BigEndian.PutUint32(out[:4], uint32(n))
	return out, nil
}

// ReadFrame reads one complete frame (header and payload) from r and decodes it.
func ReadFrame(r io.Reader) (Frame, error) {
	var header [4]byte
	if n, err := io.ReadFull(r, header[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return Frame{}, fmt.Errorf("comm socket closed before length: %w", io.EOF)
		}
		return Frame{}, fmt.Errorf("comm socket closed mid-length after %d of 4 bytes: %w", n, err)
	}
	length := binary.BigEndian.Uint32(header[:])
	if length == 0 {
		return Frame{}, protocolErrorf("zero-length frame")
	}
	payload := make([]byte, length)
	if n, err := io.ReadFull(r, payload); err != nil {
		return Frame{}, fmt.Errorf(
			"comm socket closed before response was complete (%d of %d bytes): %w", n, length, err)
	}
	return DecodeFrame(payload)
}

// DecodeFrame decodes one frame payload (without its length header).
func DecodeFrame(payload []byte) (Frame, error) {
	rd := bytes.NewReader(payload)
	dec := msgpack.NewDecoder(rd)
	code, err := dec.PeekCode()
	if err != nil {
		return Frame{}, protocolErrorf("empty frame payload")
	}
	if !msgpcode.IsFixedArray(code) && code != msgpcode.Array16 && code != msgpcode.Array32 {
		return Frame{}, protocolErrorf("frame is not a msgpack array (first byte 0x%02x)", code)
	}
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return Frame{}, protocolErrorf("undecodable frame: %v", err)
	}
	if n < 1 {
		return Frame{}, protocolErrorf("frame is an empty array")
	}
	f := Frame{Elements: n}
	code, err = dec.PeekCode()
	if err != nil {
		return Frame{}, protocolErrorf("undecodable frame id: %v", err)
	}
	if !isIntCode(code) {
		return Frame{}, protocolErrorf("frame id is not an int (code 0x%02x)", code)
	}
	if f.ID, err = dec.DecodeInt64(); err != nil {
		return Frame{}, protocolErrorf("undecodable frame id: %v", err)
	}
	slots := []*msgpack.RawMessage{&f.Body, &f.Error}
	names := []string{"body", "error"}
	for i := 1; i < n; i++ {
		if i-1 >= len(slots) {
			// Extra trailing elements are ignored, but they must still be valid msgpack.
			if err := dec.Skip(); err != nil {
				return Frame{}, protocolErrorf("undecodable frame element %d: %v", i, err)
			}
			continue
		}
		code, err := dec.PeekCode()
		if err != nil {
			return Frame{}, protocolErrorf("truncated frame %s: %v", names[i-1], err)
		}
		if code == msgpcode.Nil {
			_ = dec.Skip()
			continue
		}
		if !isMapCode(code) {
			return Frame{}, protocolErrorf("frame %s is not a map (code 0x%02x)", names[i-1], code)
		}
		raw, err := dec.DecodeRaw()
		if err != nil {
			return Frame{}, protocolErrorf("undecodable frame %s: %v", names[i-1], err)
		}
		*slots[i-1] = raw
	}
	if rd.Len() != 0 {
		return Frame{}, protocolErrorf("%d unexpected bytes after the frame array", rd.Len())
	}
	return f, nil
}

func isIntCode(c byte) bool {
	if msgpcode.IsFixedNum(c) {
		return true
	}
	switch c {
	case msgpcode.Uint8, msgpcode.Uint16, msgpcode.Uint32, msgpcode.Uint64,
		msgpcode.Int8, msgpcode.Int16, msgpcode.Int32, msgpcode.Int64:
		return true
	}
	return false
}

func isMapCode(c byte) bool {
	return msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32
}
