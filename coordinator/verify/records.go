package verify

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/dsyncio/dsync/coordinator/checkpoint"
)

// Keys of a run in the store (checkpoint's verify/<run>/ namespace); see
// doc.go for the schema.
const (
	keyMeta    = "meta"
	prefixPair = "pair/"
	prefixSeen = "seen/"
	prefixDiff = "diff/"
	prefixCov  = "cov/"

	schemaVersion = 1
)

// Phases of a run, in order.
const (
	phaseScan      = "scan"
	phaseReconcile = "reconcile"
	phaseRecheck   = "recheck"
	phaseRepair    = "repair"
	phaseDone      = "done"
)

// side is A or B.
type side byte

const (
	sideA side = 'a'
	sideB side = 'b'
)

func (s side) String() string {
	if s == sideA {
		return "A"
	}
	return "B"
}

func pairKey(i int) string               { return fmt.Sprintf("%s%06d", prefixPair, i) }
func partPrefix(s side) string           { return fmt.Sprintf("p%c/", s) }
func partKey(s side, i int) string       { return fmt.Sprintf("%s%08d", partPrefix(s), i) }
func seenPrefix(pair int) string         { return fmt.Sprintf("%s%06d/", prefixSeen, pair) }
func diffPrefix(pair int) string         { return fmt.Sprintf("%s%06d/", prefixDiff, pair) }
func covPrefix(pair int) string          { return fmt.Sprintf("%s%06d/", prefixCov, pair) }
func diffKey(pair int, id string) string { return diffPrefix(pair) + id }
func covKey(pair int, id string, k Kind) string {
	return covPrefix(pair) + id + "/" + string(k)
}

// seenKey records that side s's scan returned id, as document idx of page
// seq of partition part. Every return of an id has its own key, so that a
// duplicate shows up as two keys with the same id; a page read again after
// a restart writes the same keys again.
func seenKey(pair int, id string, s side, part int, seq int64, idx int) string {
	return fmt.Sprintf("%s%s/%c%08d%010d%06d", seenPrefix(pair), id, s, part, seq, idx)
}

// parseSeenKey splits a key under seenPrefix(pair) into the id and side.
func parseSeenKey(key string, pair int) (id string, s side, err error) {
	rest, ok := strings.CutPrefix(key, seenPrefix(pair))
	i := strings.LastIndexByte(rest, '/')
	if !ok || i <= 0 || i+1 >= len(rest) {
		return "", 0, fmt.Errorf("%w: key %q", ErrCorrupt, key)
	}
	return rest[:i], side(rest[i+1]), nil
}

// idFromKey returns the id part of a key under a per-pair prefix: diffKey
// or covKey.
func idFromKey(key, prefix string) string {
	id := strings.TrimPrefix(key, prefix)
	id, _, _ = strings.Cut(id, "/")
	return id
}

// encodeID returns the stored form of an _id: hex of its BSON type and
// value bytes. int32 1, int64 1 and string "1" are different ids, and the
// ids of one value are adjacent in key order.
func encodeID(v bson.RawValue) string {
	b := make([]byte, 0, 1+len(v.Value))
	b = append(b, byte(v.Type))
	b = append(b, v.Value...)
	return hex.EncodeToString(b)
}

// decodeID reverses encodeID.
func decodeID(s string) (bson.RawValue, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) < 1 {
		return bson.RawValue{}, fmt.Errorf("%w: id %q", ErrCorrupt, s)
	}
	v := bson.RawValue{Type: bson.Type(b[0]), Value: b[1:]}
	if err := bsoncore.Value(bsoncore.Value{Type: bsoncore.Type(v.Type), Data: v.Value}).Validate(); err != nil {
		return bson.RawValue{}, fmt.Errorf("%w: id %q: %v", ErrCorrupt, s, err)
	}
	return v, nil
}

// idJSON renders an id as canonical Extended JSON ({"$numberLong":"5"}),
// which keeps its type.
func idJSON(v bson.RawValue) string { return extJSON(v, true) }

// extJSON renders a value as Extended JSON, canonical or relaxed.
func extJSON(v bson.RawValue, canonical bool) string {
	doc := bsoncore.NewDocumentBuilder().AppendValue("_id", bsoncore.Value{Type: bsoncore.Type(v.Type), Data: v.Value}).Build()
	b, err := bson.MarshalExtJSON(bson.Raw(doc), canonical, false)
	if err != nil {
		return strconv.Quote(v.String())
	}
	return strings.TrimSuffix(strings.TrimPrefix(string(b), `{"_id":`), "}")
}

// idText renders an id for people: relaxed Extended JSON (5, "abc",
// {"$oid":"..."}), which drops the numeric type; reports keep idJSON.
func idText(v bson.RawValue) string {
	s := extJSON(v, false)
	if len(s) > 2*maxValueLen {
		s = s[:2*maxValueLen] + "…"
	}
	return s
}

// runMeta is the record under keyMeta.
type runMeta struct {
	Schema   int        `json:"schema"`
	Options  runOptions `json:"options"`
	ADisplay string     `json:"a_display,omitempty"`
	BDisplay string     `json:"b_display,omitempty"`
	Created  time.Time  `json:"created"`
	Finished time.Time  `json:"finished,omitzero"`
	Phase    string     `json:"phase"`
	Seed     uint64     `json:"seed,omitempty"`
	Pairs    int        `json:"pairs"`
	PartsA   int        `json:"parts_a"`
	PartsB   int        `json:"parts_b"`
	// Rechecks is the number of recheck attempts made.
	Rechecks int `json:"rechecks,omitempty"`
}

// pairRec is a namespace of A and its counterpart in B.
type pairRec struct {
	A string `json:"a"`
	B string `json:"b"`
	// AAbsent and BAbsent: that side's plan has no partition of the
	// namespace, so it holds no document of it.
	AAbsent bool `json:"a_absent,omitempty"`
	BAbsent bool `json:"b_absent,omitempty"`
	// CountBefore are the sides' namespace counts when the run was planned.
	CountBeforeA uint64 `json:"count_before_a"`
	CountBeforeB uint64 `json:"count_before_b"`

	Reconciled bool `json:"reconciled,omitempty"`
	// Filled by the reconciliation.
	CountAfterA uint64 `json:"count_after_a,omitempty"`
	CountAfterB uint64 `json:"count_after_b,omitempty"`
	DistinctA   uint64 `json:"distinct_a,omitempty"`
	DistinctB   uint64 `json:"distinct_b,omitempty"`
	ReconcileMS int64  `json:"reconcile_ms,omitempty"`
}

// partRec is a partition of one side's plan and its progress.
type partRec struct {
	Pair      int    `json:"pair"`
	Namespace string `json:"ns"`
	Def       []byte `json:"def,omitempty"`
	Estimated uint64 `json:"est,omitempty"`
	// Skipped: not in the sample.
	Skipped bool   `json:"skipped,omitempty"`
	Cursor  []byte `json:"cursor,omitempty"`
	Seq     int64  `json:"seq,omitempty"`
	Done    bool   `json:"done,omitempty"`
	Docs    uint64 `json:"docs,omitempty"`
	Bytes   uint64 `json:"bytes,omitempty"`
	BusyMS  int64  `json:"busy_ms,omitempty"`
}

// Kind is the kind of a mismatch.
type Kind string

// Mismatch kinds. Missing, Extra and Different are differences of data;
// the others are coverage problems: they show that a side's scan did not
// return each of its documents exactly once, so the scan cannot prove
// that the sides are equal.
const (
	// KindMissing: A holds the id, B does not.
	KindMissing Kind = "missing"
	// KindExtra: B holds the id, A does not.
	KindExtra Kind = "extra"
	// KindDifferent: both hold the id with different documents; Fields
	// says how.
	KindDifferent Kind = "different"
	// KindDuplicateA and KindDuplicateB: the side's scan returned the id
	// more than once (its plan's partitions overlap).
	KindDuplicateA Kind = "duplicate_in_a_scan"
	KindDuplicateB Kind = "duplicate_in_b_scan"
	// KindUnscannedA and KindUnscannedB: the side holds the id (a lookup by
	// id found it) but its scan never returned it.
	KindUnscannedA Kind = "unscanned_in_a"
	KindUnscannedB Kind = "unscanned_in_b"
)

// States of a mismatch record.
const (
	// stateOpen: the difference stands.
	stateOpen = ""
	// stateResolved: a recheck found the documents equal: the difference
	// was transient.
	stateResolved = "resolved"
	// stateRepaired: repair rewrote B and the documents then compared
	// equal.
	stateRepaired = "repaired"
)

// diffRec is a mismatch of one id, under diffKey or covKey.
type diffRec struct {
	Kind      Kind        `json:"kind"`
	Fields    []FieldDiff `json:"fields,omitempty"`
	Truncated bool        `json:"truncated,omitempty"`
	// HashA and HashB identify the documents' canonical forms; empty where
	// a side has none.
	HashA string `json:"ha,omitempty"`
	HashB string `json:"hb,omitempty"`
	// Count is how many times a duplicate was returned.
	Count    int    `json:"count,omitempty"`
	State    string `json:"state,omitempty"`
	Rechecks int    `json:"rechecks,omitempty"`
	// Repair is what repair did: "written" or "deleted".
	Repair string `json:"repair,omitempty"`
}

func (r diffRec) coverage() bool {
	switch r.Kind {
	case KindMissing, KindExtra, KindDifferent:
		return false
	}
	return true
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("verify: encode record: %v", err)) // plain structs: cannot fail
	}
	return b
}

func entry(key string, v any) checkpoint.VerifyEntry {
	return checkpoint.VerifyEntry{Key: key, Value: mustJSON(v)}
}

func decode(key string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, key, err)
	}
	return nil
}

// indexFromKey parses the decimal index after prefix.
func indexFromKey(key, prefix string) (int, error) {
	s, ok := strings.CutPrefix(key, prefix)
	if ok {
		s, _, _ = strings.Cut(s, "/")
	}
	i, err := strconv.Atoi(s)
	if !ok || err != nil || i < 0 {
		return 0, fmt.Errorf("%w: key %q", ErrCorrupt, key)
	}
	return i, nil
}
