package postgres

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

// kind is how a PostgreSQL type maps to BSON.
type kind uint8

const (
	// kString: text, varchar, char(n), name, enums and every type without
	// a better mapping (interval, inet, money, ranges, composites, ...):
	// the PostgreSQL text form as a BSON string.
	kString kind = iota
	kInt32       // int2, int4
	kInt64       // int8, oid
	kFloat4      // real
	kFloat8      // double precision
	kBool
	kNumeric
	kBytea
	kUUID
	kDate
	kTimestamp   // without time zone
	kTimestamptz // with time zone
	kJSON
	kJSONB
	kArray
)

// pgType is a resolved PostgreSQL type.
type pgType struct {
	oid uint32
	// name is the type as written in a cast, e.g. "timestamp with time
	// zone" or "app.mood" (format_type).
	name string
	kind kind
	// elem is the element type of an array type.
	elem *pgType
	// delim is the array delimiter of an element type (',' except box).
	delim byte
}

// Built-in type OIDs (pg_type.dat); they never change.
var builtinKinds = map[uint32]struct {
	name string
	kind kind
}{
	16:   {"boolean", kBool},
	17:   {"bytea", kBytea},
	18:   {`"char"`, kString},
	19:   {"name", kString},
	20:   {"bigint", kInt64},
	21:   {"smallint", kInt32},
	23:   {"integer", kInt32},
	25:   {"text", kString},
	26:   {"oid", kInt64},
	114:  {"json", kJSON},
	700:  {"real", kFloat4},
	701:  {"double precision", kFloat8},
	1042: {"bpchar", kString},
	1043: {"character varying", kString},
	1082: {"date", kDate},
	1114: {"timestamp without time zone", kTimestamp},
	1184: {"timestamp with time zone", kTimestamptz},
	1700: {"numeric", kNumeric},
	2950: {"uuid", kUUID},
	3802: {"jsonb", kJSONB},
}

// typeRegistry resolves type OIDs through the catalog and caches them. It
// is safe for concurrent use.
type typeRegistry struct {
	mu    sync.Mutex
	types map[uint32]*pgType
}

func newTypeRegistry() *typeRegistry {
	r := &typeRegistry{types: map[uint32]*pgType{}}
	for oid, b := range builtinKinds {
		r.types[oid] = &pgType{oid: oid, name: b.name, kind: b.kind, delim: ','}
	}
	return r
}

// querier is what the registry needs from a connection or pool.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// resolve returns the type of oid, looking it up in the catalog when it
// is not cached.
func (r *typeRegistry) resolve(ctx context.Context, q querier, oid uint32) (*pgType, error) {
	r.mu.Lock()
	t := r.types[oid]
	r.mu.Unlock()
	if t != nil {
		return t, nil
	}
	return r.lookup(ctx, q, oid, 0)
}

func (r *typeRegistry) lookup(ctx context.Context, q querier, oid uint32, depth int) (*pgType, error) {
	if depth > 8 {
		return nil, fmt.Errorf("type %d: nesting too deep", oid)
	}
	var (
		name, typtype, delim string
		elem, base           uint32
		isArray              bool
	)
	err := q.QueryRow(ctx, `SELECT format_type(t.oid, -1), t.typtype::text, t.typelem, t.typbasetype,
		t.typdelim::text, t.typinput = 'array_in'::regproc
		FROM pg_type t WHERE t.oid = $1`, oid).Scan(&name, &typtype, &elem, &base, &delim, &isArray)
	if err != nil {
		return nil, fmt.Errorf("look up type %d: %w", oid, err)
	}
	t := &pgType{oid: oid, name: name, kind: kString, delim: ','}
	if len(delim) == 1 {
		t.delim = delim[0]
	}
	switch {
	case typtype == "d":
		bt, err := r.resolveDepth(ctx, q, base, depth+1)
		if err != nil {
			return nil, err
		}
		t.kind, t.elem = bt.kind, bt.elem
	case isArray && elem != 0:
		et, err := r.resolveDepth(ctx, q, elem, depth+1)
		if err != nil {
			return nil, err
		}
		t.kind, t.elem = kArray, et
	}
	r.mu.Lock()
	if prev := r.types[oid]; prev != nil {
		t = prev
	} else {
		r.types[oid] = t
	}
	r.mu.Unlock()
	return t, nil
}

func (r *typeRegistry) resolveDepth(ctx context.Context, q querier, oid uint32, depth int) (*pgType, error) {
	r.mu.Lock()
	t := r.types[oid]
	r.mu.Unlock()
	if t != nil {
		return t, nil
	}
	return r.lookup(ctx, q, oid, depth)
}
