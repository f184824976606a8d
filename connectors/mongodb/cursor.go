package mongodb

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// Cursors are BSON documents with a format version v:
//
//	partition  {v: 1, ns: "db.coll", lo: <bound>, hi: <bound>}
//	page       {v: 1, after: <last _id returned>, hi: <bound>}
//	updates    {v: 1, m: "changestream", tok: <resume token>}
//	           {v: 1, m: "changestream", at: <cluster time>}
//	           {v: 1, m: "oplog", ts: <oplog timestamp>}
//
// A bound is {b: <bracket index>} for the start of a type bracket, or
// {b: <bracket index>, v: <_id value>}; a missing lo or hi is unbounded.
const cursorVersion = 1

func encodeBound(b *bound) bson.D {
	d := bson.D{{Key: "b", Value: int32(b.B)}}
	if b.hasValue() {
		d = append(d, bson.E{Key: "v", Value: b.V})
	}
	return d
}

func encodePartition(ns string, r idRange) []byte {
	d := bson.D{{Key: "v", Value: int32(cursorVersion)}, {Key: "ns", Value: ns}}
	if r.lo != nil {
		d = append(d, bson.E{Key: "lo", Value: encodeBound(r.lo)})
	}
	if r.hi != nil {
		d = append(d, bson.E{Key: "hi", Value: encodeBound(r.hi)})
	}
	return mustMarshal(d)
}

func mustMarshal(d bson.D) []byte {
	b, err := bson.Marshal(d)
	if err != nil {
		panic("mongodb: marshal cursor: " + err.Error())
	}
	return b
}

func badCursor(what string, err error) error {
	if err != nil {
		return sdk.InvalidArgument("mongodb: %s is not a cursor of this connector (%v): pass cursors back as they were returned", what, err)
	}
	return sdk.InvalidArgument("mongodb: %s is not a cursor of this connector: pass cursors back as they were returned", what)
}

// openCursor validates a cursor document and its version.
func openCursor(what string, c []byte) (bson.Raw, error) {
	raw := bson.Raw(c)
	if err := raw.Validate(); err != nil {
		return nil, badCursor(what, err)
	}
	if v, ok := raw.Lookup("v").Int32OK(); !ok || v != cursorVersion {
		return nil, badCursor(what, nil)
	}
	return raw, nil
}

func decodeBound(v bson.RawValue) (*bound, error) {
	if v.Type == 0 {
		return nil, nil
	}
	d, ok := v.DocumentOK()
	if !ok {
		return nil, errBound
	}
	b, ok := d.Lookup("b").Int32OK()
	if !ok || b < 0 || int(b) >= len(brackets) {
		return nil, errBound
	}
	out := &bound{B: int(b)}
	if val, err := d.LookupErr("v"); err == nil {
		if bracketOf(val.Type) != out.B {
			return nil, errBound
		}
		out.V = copyValue(val)
	}
	return out, nil
}

var errBound = sdk.InvalidArgument("mongodb: malformed range bound")

// decodePartition returns the namespace and _id range of a partition
// cursor.
func decodePartition(c []byte) (string, idRange, []byte, error) {
	raw, err := openCursor("partition", c)
	if err != nil {
		return "", idRange{}, nil, err
	}
	ns, ok := raw.Lookup("ns").StringValueOK()
	if !ok {
		return "", idRange{}, nil, badCursor("partition", nil)
	}
	lo, err := decodeBound(raw.Lookup("lo"))
	if err != nil {
		return "", idRange{}, nil, badCursor("partition", err)
	}
	hiVal := raw.Lookup("hi")
	hi, err := decodeBound(hiVal)
	if err != nil {
		return "", idRange{}, nil, badCursor("partition", err)
	}
	var hiRaw []byte
	if hi != nil {
		hiRaw = hiVal.Value
	}
	return ns, idRange{lo: lo, hi: hi}, hiRaw, nil
}

// encodePage returns the durable cursor after the document with _id last.
func encodePage(last bson.RawValue, hi *bound) []byte {
	d := bson.D{{Key: "v", Value: int32(cursorVersion)}, {Key: "after", Value: last}}
	if hi != nil {
		d = append(d, bson.E{Key: "hi", Value: encodeBound(hi)})
	}
	return mustMarshal(d)
}

// decodePage returns the last _id of a page cursor, checking that it
// belongs to a partition whose upper bound is hiRaw.
func decodePage(c []byte, hiRaw []byte) (bson.RawValue, error) {
	raw, err := openCursor("ListData cursor", c)
	if err != nil {
		return bson.RawValue{}, err
	}
	after, err := raw.LookupErr("after")
	if err != nil {
		return bson.RawValue{}, badCursor("ListData cursor", err)
	}
	if !bytes.Equal(raw.Lookup("hi").Value, hiRaw) {
		return bson.RawValue{}, sdk.InvalidArgument("mongodb: the ListData cursor belongs to another partition: pass each partition its own cursors")
	}
	return copyValue(after), nil
}

// updatesCursor is a decoded update cursor.
type updatesCursor struct {
	mode CDCMode
	// token is a change stream resume token.
	token bson.Raw
	// at is a cluster time to start a change stream at.
	at bson.Timestamp
	// ts is the last oplog entry handled; zero means the oplog was empty.
	ts bson.Timestamp
}

func (u updatesCursor) encode() []byte {
	d := bson.D{{Key: "v", Value: int32(cursorVersion)}, {Key: "m", Value: string(u.mode)}}
	switch {
	case u.mode == CDCOplog:
		d = append(d, bson.E{Key: "ts", Value: u.ts})
	case u.token != nil:
		d = append(d, bson.E{Key: "tok", Value: u.token})
	default:
		d = append(d, bson.E{Key: "at", Value: u.at})
	}
	return mustMarshal(d)
}

// time returns the source time of the position, or zero when unknown.
func (u updatesCursor) time() time.Time {
	switch {
	case u.mode == CDCOplog && !u.ts.IsZero():
		return time.Unix(int64(u.ts.T), 0)
	case u.token != nil:
		return tokenTime(u.token)
	case !u.at.IsZero():
		return time.Unix(int64(u.at.T), 0)
	}
	return time.Time{}
}

// tokenTime reads the cluster time at the start of a change stream resume
// token ({_data: "82<8 bytes of timestamp, hex>..."}), or zero.
func tokenTime(tok bson.Raw) time.Time {
	data, ok := tok.Lookup("_data").StringValueOK()
	if !ok || len(data) < 18 || !strings.EqualFold(data[:2], "82") {
		return time.Time{}
	}
	b, err := hex.DecodeString(data[2:10])
	if err != nil {
		return time.Time{}
	}
	return time.Unix(int64(binary.BigEndian.Uint32(b)), 0)
}

func decodeUpdates(c []byte) (updatesCursor, error) {
	raw, err := openCursor("update cursor", c)
	if err != nil {
		return updatesCursor{}, err
	}
	var u updatesCursor
	m, _ := raw.Lookup("m").StringValueOK()
	u.mode = CDCMode(m)
	switch u.mode {
	case CDCOplog:
		t, i, ok := raw.Lookup("ts").TimestampOK()
		if !ok {
			return u, badCursor("update cursor", nil)
		}
		u.ts = bson.Timestamp{T: t, I: i}
	case CDCChangeStream:
		if tok, ok := raw.Lookup("tok").DocumentOK(); ok {
			u.token = append(bson.Raw(nil), tok...)
		} else if t, i, ok := raw.Lookup("at").TimestampOK(); ok {
			u.at = bson.Timestamp{T: t, I: i}
		} else {
			return u, badCursor("update cursor", nil)
		}
	default:
		return u, badCursor("update cursor", nil)
	}
	return u, nil
}
