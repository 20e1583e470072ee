package protocol

import (
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Time is an instant on the wire: a msgpack timestamp extension (type -1).
//
// Decoding accepts the 32-, 64- and 96-bit timestamp forms, an RFC 3339 string, or nil (the
// zero Time); the result is always in UTC. Encoding writes the smallest timestamp form, as
// msgspec does, so the supervisor reads a timezone-aware UTC datetime. A zero Time encodes as
// nil; use *Time for optional fields.
type Time struct{ time.Time }

// Now is the current instant, in UTC, truncated to microseconds (Python's precision).
func Now() Time { return Time{time.Now().UTC().Truncate(time.Microsecond)} }

// NewTime wraps t, converted to UTC.
func NewTime(t time.Time) Time { return Time{t.UTC()} }

var (
	_ msgpack.CustomEncoder = Time{}
	_ msgpack.CustomDecoder = (*Time)(nil)
)

// EncodeMsgpack implements msgpack.CustomEncoder.
func (t Time) EncodeMsgpack(enc *msgpack.Encoder) error {
	if t.IsZero() {
		return enc.EncodeNil()
	}
	return enc.EncodeTime(t.UTC())
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (t *Time) DecodeMsgpack(dec *msgpack.Decoder) error {
	code, err := dec.PeekCode()
	if err != nil {
		return err
	}
	if code == msgpcode.Nil {
		t.Time = time.Time{}
		return dec.Skip()
	}
	v, err := dec.DecodeTime()
	if err != nil {
		return fmt.Errorf("decoding a datetime: %w", err)
	}
	t.Time = v.UTC()
	return nil
}

// String renders the instant as RFC 3339 UTC with microseconds, like the Python runtime's logs.
func (t Time) String() string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimestampLayout)
}

// MarshalJSON renders the instant as an RFC 3339 string (used in log records).
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + t.String() + `"`), nil
}

// TimestampLayout is RFC 3339 in UTC with exactly six fractional digits and a Z, the form
// structlog's TimeStamper(fmt="iso") writes.
const TimestampLayout = "2006-01-02T15:04:05.000000Z"
