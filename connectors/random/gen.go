package random

import (
	"encoding/binary"
	"math"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Documents are written byte by byte rather than through bson.Marshal: the
// layout is fixed, so every document of a dataset has the same size and
// generation costs one hash per 8 payload bytes and no reflection.

// Hash domains keep the streams derived from one seed independent.
const (
	domainDoc     = 0x6a09e667f3bcc908
	domainEvent   = 0xbb67ae8584caa73b
	domainEventNS = 0x3c6ef372fe94f82b
)

const golden = 0x9e3779b97f4a7c15

// mix is the splitmix64 finalizer: a cheap, well-distributed bijection.
func mix(x uint64) uint64 {
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hash3 combines a seed, a domain and three values.
func hash3(seed, domain, a, b, c uint64) uint64 {
	h := mix(seed ^ domain)
	h = mix(h + golden + a)
	h = mix(h + golden + b)
	return mix(h + golden + c)
}

// Payload bytes are '0' + 5 random bits: printable ASCII ('0'..'O') without
// a quote or backslash, hence valid UTF-8 and unescaped in JSON, produced 8
// at a time.
const (
	payloadMask = 0x1f1f1f1f1f1f1f1f
	payloadBase = 0x3030303030303030
)

// baseTime is the origin of the generated "at" dates.
const baseTimeMillis = 1577836800000 // 2020-01-01T00:00:00Z

const fiveYearsMillis = 5 * 365 * 24 * 3600 * 1000

// minDocSize is the size of a document with an empty payload; every field
// but the payload has a fixed size.
var minDocSize = len(appendDoc(nil, 0, 0, 0, 0, 0))

// DocSize returns the size in bytes of every document generated with o: Size,
// or the size of a document with an empty payload if that is larger.
func (o Options) DocSize() int { return max(o.Size, minDocSize) }

func (o Options) payloadLen() int { return max(o.Size-minDocSize, 0) }

// Doc returns document i of namespace index ns as initially generated (before
// any update event). It does not check that ns and i are in range.
func (o Options) Doc(ns int, i int64) bson.Raw {
	return bson.Raw(appendDoc(nil, o.Seed, ns, i, 0, o.payloadLen()))
}

// docVersion returns document i of namespace ns at version v: version 0 is the
// initial document, inserts and replaces of event seq s write version s+1.
func (o Options) docVersion(ns int, i int64, v int64) bson.Raw {
	return bson.Raw(appendDoc(make([]byte, 0, o.DocSize()), o.Seed, ns, i, v, o.payloadLen()))
}

// appendDoc appends the document (seed, ns, i, version v) with a payload of
// plen bytes. Fields:
//
//	_id int64 i, n int32 ns, i int64 i, v int64 version, f double,
//	ok bool, at datetime, tag string, sub {a int64, b string}, arr [3 int32],
//	s string payload
func appendDoc(dst []byte, seed uint64, ns int, i int64, v int64, plen int) []byte {
	h := hash3(seed, domainDoc, uint64(ns), uint64(i), uint64(v))
	h2 := mix(h + golden)
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = appendInt64(dst, "_id", i)
	dst = appendInt32(dst, "n", int32(ns))
	dst = appendInt64(dst, "i", i)
	dst = appendInt64(dst, "v", v)
	dst = appendDouble(dst, "f", unitFloat(h)*1000)
	dst = appendBool(dst, "ok", h&1 == 1)
	dst = appendDateTime(dst, "at", baseTimeMillis+int64(h2%fiveYearsMillis))
	dst = appendString(dst, "tag", tagValue(h))
	sub := len(dst)
	dst = append(dst, byte(bson.TypeEmbeddedDocument), 's', 'u', 'b', 0, 0, 0, 0, 0)
	dst = appendInt64(dst, "a", int64(h2>>1))
	dst = appendString(dst, "b", hex8(h2))
	dst = endDoc(dst, sub+5)
	arr := len(dst)
	dst = append(dst, byte(bson.TypeArray), 'a', 'r', 'r', 0, 0, 0, 0, 0)
	dst = appendInt32(dst, "0", int32(h>>8))
	dst = appendInt32(dst, "1", int32(h>>24))
	dst = appendInt32(dst, "2", int32(h>>40))
	dst = endDoc(dst, arr+5)
	dst = appendPayload(dst, "s", h2, plen)
	return endDoc(dst, start)
}

// tagValue is a two-byte string so that the document size does not depend
// on the tag.
func tagValue(h uint64) string {
	return "t" + strconv.Itoa(int(h>>56)%10)
}

func hex8(h uint64) string {
	const digits = "0123456789abcdef"
	var b [8]byte
	for k := range b {
		b[k] = digits[(h>>(4*k))&15]
	}
	return string(b[:])
}

// unitFloat maps h to [0, 1) with 53 bits of precision.
func unitFloat(h uint64) float64 { return float64(h>>11) / (1 << 53) }

func appendKey(dst []byte, t bson.Type, key string) []byte {
	dst = append(dst, byte(t))
	dst = append(dst, key...)
	return append(dst, 0)
}

func appendInt32(dst []byte, key string, v int32) []byte {
	dst = appendKey(dst, bson.TypeInt32, key)
	return binary.LittleEndian.AppendUint32(dst, uint32(v))
}

func appendInt64(dst []byte, key string, v int64) []byte {
	dst = appendKey(dst, bson.TypeInt64, key)
	return binary.LittleEndian.AppendUint64(dst, uint64(v))
}

func appendDouble(dst []byte, key string, v float64) []byte {
	dst = appendKey(dst, bson.TypeDouble, key)
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

func appendBool(dst []byte, key string, v bool) []byte {
	dst = appendKey(dst, bson.TypeBoolean, key)
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

func appendDateTime(dst []byte, key string, millis int64) []byte {
	dst = appendKey(dst, bson.TypeDateTime, key)
	return binary.LittleEndian.AppendUint64(dst, uint64(millis))
}

func appendString(dst []byte, key, v string) []byte {
	dst = appendKey(dst, bson.TypeString, key)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(v)+1))
	dst = append(dst, v...)
	return append(dst, 0)
}

// appendPayload appends a string of n printable bytes derived from h.
func appendPayload(dst []byte, key string, h uint64, n int) []byte {
	dst = appendKey(dst, bson.TypeString, key)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n+1))
	off := len(dst)
	dst = append(dst, make([]byte, n+1)...)
	p := dst[off : off+n]
	s := h
	for len(p) >= 8 {
		s += golden
		binary.LittleEndian.PutUint64(p, mix(s)&payloadMask+payloadBase)
		p = p[8:]
	}
	s += golden
	z := mix(s)&payloadMask + payloadBase
	for k := range p {
		p[k] = byte(z >> (8 * k))
	}
	return dst
}

// endDoc terminates the document or array whose length prefix is at start.
func endDoc(dst []byte, start int) []byte {
	dst = append(dst, 0)
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst
}
