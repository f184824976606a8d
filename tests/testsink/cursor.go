package testsink

import (
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Cursors are small BSON documents, so they can be read in a checkpoint
// store dump. The id parts they hold are the id parts of document keys.
//
//	partition: {v: 1, lo: <binary, inclusive>, hi: <binary, exclusive>}
//	progress:  {v: 1, after: <binary>}
//
// A missing bound is unbounded; an empty partition cursor is the whole
// namespace.
const cursorVersion = 1

// keyRange is a partition: the id parts in [lo, hi).
type keyRange struct {
	lo, hi []byte
}

func (r keyRange) encode() []byte {
	d := bson.D{{Key: "v", Value: int32(cursorVersion)}}
	if r.lo != nil {
		d = append(d, bson.E{Key: "lo", Value: bson.Binary{Data: r.lo}})
	}
	if r.hi != nil {
		d = append(d, bson.E{Key: "hi", Value: bson.Binary{Data: r.hi}})
	}
	b, err := bson.Marshal(d)
	if err != nil {
		panic(fmt.Sprintf("testsink: encode partition cursor: %v", err)) // cannot happen
	}
	return b
}

func decodeRange(b []byte) (keyRange, error) {
	if len(b) == 0 {
		return keyRange{}, nil
	}
	doc, err := decodeCursor(b)
	if err != nil {
		return keyRange{}, err
	}
	var r keyRange
	if r.lo, err = cursorField(doc, "lo"); err != nil {
		return keyRange{}, err
	}
	if r.hi, err = cursorField(doc, "hi"); err != nil {
		return keyRange{}, err
	}
	return r, nil
}

func encodeAfter(after []byte) []byte {
	b, err := bson.Marshal(bson.D{
		{Key: "v", Value: int32(cursorVersion)},
		{Key: "after", Value: bson.Binary{Data: after}},
	})
	if err != nil {
		panic(fmt.Sprintf("testsink: encode cursor: %v", err)) // cannot happen
	}
	return b
}

// decodeAfter returns the last id part read, or nil for the start.
func decodeAfter(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, nil
	}
	doc, err := decodeCursor(b)
	if err != nil {
		return nil, err
	}
	after, err := cursorField(doc, "after")
	if err == nil && after == nil {
		err = errors.New("not a testsink cursor: no after field")
	}
	return after, err
}

func decodeCursor(b []byte) (bson.Raw, error) {
	doc := bson.Raw(b)
	if err := doc.Validate(); err != nil {
		return nil, fmt.Errorf("not a testsink cursor: %w", err)
	}
	v, ok := doc.Lookup("v").Int32OK()
	if !ok || v != cursorVersion {
		return nil, fmt.Errorf("not a testsink cursor of version %d", cursorVersion)
	}
	return doc, nil
}

// cursorField returns a binary field, nil when missing.
func cursorField(doc bson.Raw, key string) ([]byte, error) {
	v, err := doc.LookupErr(key)
	if err != nil {
		return nil, nil
	}
	_, data, ok := v.BinaryOK()
	if !ok {
		return nil, fmt.Errorf("not a testsink cursor: %s is %s, want binary", key, v.Type)
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}
