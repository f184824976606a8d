package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// marshalRelaxed encodes doc as relaxed Extended JSON, except that int64
// values keep their type as {"$numberLong": "n"}. Plain relaxed JSON writes
// an int64 as a bare number, which every parser reads back as int32 when it
// fits, silently changing the type of ids and fields; the canonical form of
// that one type is accepted by every relaxed parser too.
func marshalRelaxed(doc bson.Raw) ([]byte, error) {
	var buf bytes.Buffer
	if err := writeDoc(&buf, doc, false); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeDoc(buf *bytes.Buffer, doc bson.Raw, array bool) error {
	elems, err := doc.Elements()
	if err != nil {
		return err
	}
	if array {
		buf.WriteByte('[')
	} else {
		buf.WriteByte('{')
	}
	for i, e := range elems {
		if i > 0 {
			buf.WriteByte(',')
		}
		if !array {
			k, _ := json.Marshal(e.Key())
			buf.Write(k)
			buf.WriteByte(':')
		}
		if err := writeValue(buf, e.Value()); err != nil {
			return fmt.Errorf("field %q: %w", e.Key(), err)
		}
	}
	if array {
		buf.WriteByte(']')
	} else {
		buf.WriteByte('}')
	}
	return nil
}

func writeValue(buf *bytes.Buffer, v bson.RawValue) error {
	switch v.Type {
	case bson.TypeInt64:
		buf.WriteString(`{"$numberLong":"`)
		buf.WriteString(strconv.FormatInt(v.Int64(), 10))
		buf.WriteString(`"}`)
		return nil
	case bson.TypeEmbeddedDocument:
		return writeDoc(buf, v.Document(), false)
	case bson.TypeArray:
		return writeDoc(buf, bson.Raw(v.Array()), true)
	}
	// Any other type: let the driver encode it inside a one-field document
	// and cut the value out of {"v":...}.
	b, err := bson.MarshalExtJSON(bson.D{{Key: "v", Value: v}}, false, false)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(b, []byte(`{"v":`)) || !bytes.HasSuffix(b, []byte("}")) {
		return fmt.Errorf("unexpected extended JSON %q", b)
	}
	buf.Write(b[len(`{"v":`) : len(b)-1])
	return nil
}
