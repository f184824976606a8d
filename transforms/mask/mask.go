package mask

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/transforms/internal/fieldpath"
	"github.com/dsyncio/dsync/transforms/internal/rawdoc"
	"github.com/dsyncio/dsync/transforms/internal/xform"
)

// DefaultKey is the HMAC key of hash when the spec gives none.
const DefaultKey = "dsync-mask-v1"

// Redacted is the value of a field masked with redact.
const Redacted = "REDACTED"

// New returns an unconfigured mask transform.
func New() sdk.Transform { return xform.New("mask", parse) }

type method int

const (
	methodHash method = iota
	methodRedact
	methodNull
)

var methods = map[string]method{"hash": methodHash, "redact": methodRedact, "null": methodNull}

type masker struct {
	key   []byte
	paths *fieldpath.Tree[method]
	rw    *rawdoc.Rewrite[method]
	macs  sync.Pool // of keyed HMAC hashes
}

func parse(spec string) (xform.Rewriter, error) {
	fields, opts, _ := strings.Cut(spec, ";")
	entries, err := xform.List(fields)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, errors.New("no fields given: write mask:FIELD=hash|redact|null[,...][;key-env=VARIABLE], e.g. mask:email=hash,ssn=redact")
	}
	m := &masker{key: []byte(DefaultKey), paths: fieldpath.NewTree[method]()}
	for _, e := range entries {
		l, r, ok := xform.Assignment(e)
		if !ok {
			return nil, fmt.Errorf("entry %q has no '=': write FIELD=hash, FIELD=redact or FIELD=null", e)
		}
		p, err := fieldpath.Parse(l)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %v", e, err)
		}
		if p.IsID() {
			return nil, fmt.Errorf("entry %q: _id cannot be masked (documents are replaced and deleted by _id)", e)
		}
		meth, ok := methods[r]
		if !ok {
			return nil, fmt.Errorf("entry %q: unknown method %q: use hash, redact or null", e, r)
		}
		if err := m.paths.Add(p, meth); err != nil {
			return nil, err
		}
	}
	if opts != "" {
		if err := m.parseOptions(opts); err != nil {
			return nil, err
		}
	}
	m.rw = &rawdoc.Rewrite[method]{Leaf: m.leaf, KeepOthers: true, Arrays: true}
	return m, nil
}

func (m *masker) parseOptions(opts string) error {
	seenKey := false
	for _, o := range strings.Split(opts, ";") {
		name, value, ok := xform.Assignment(o)
		if !ok {
			return errors.New("an option after ';' has no '=': write ;key-env=VARIABLE or ;key=SECRET")
		}
		switch name {
		case "key", "key-env":
			if seenKey {
				return errors.New("give the key once, with key-env= or key=")
			}
			seenKey = true
		default:
			return fmt.Errorf("unknown option %q after ';': use key-env=VARIABLE or key=SECRET", name)
		}
		if name == "key" {
			if value == "" {
				return errors.New("key= is empty: give a secret, or use key-env=VARIABLE")
			}
			m.key = []byte(value)
			continue
		}
		if value == "" {
			return errors.New("key-env= names no variable: write key-env=VARIABLE")
		}
		k := os.Getenv(value)
		if k == "" {
			return fmt.Errorf("key-env: environment variable %s is not set or empty", value)
		}
		m.key = []byte(k)
	}
	return nil
}

// leaf masks v, the value at a masked path.
func (m *masker) leaf(t *fieldpath.Tree[method], v bson.RawValue) (bson.RawValue, bool, error) {
	nv, err := m.mask(t.Value, v)
	return nv, true, err
}

func (m *masker) mask(meth method, v bson.RawValue) (bson.RawValue, error) {
	switch meth {
	case methodRedact:
		return rawdoc.String(Redacted), nil
	case methodNull:
		return rawdoc.Null(), nil
	}
	return rawdoc.MapLeaves(v, m.hash)
}

// hash returns the hex HMAC of a value that is neither a document nor an
// array; null stays null.
func (m *masker) hash(v bson.RawValue) bson.RawValue {
	if v.Type == bson.TypeNull {
		return v
	}
	h, _ := m.macs.Get().(hash.Hash)
	if h == nil {
		h = hmac.New(sha256.New, m.key)
	}
	h.Reset()
	if s, ok := v.StringValueOK(); ok {
		h.Write([]byte(s))
	} else {
		h.Write([]byte{byte(v.Type)})
		h.Write(v.Value)
	}
	var sum [sha256.Size]byte
	out := rawdoc.String(hex.EncodeToString(h.Sum(sum[:0])))
	m.macs.Put(h)
	return out
}

func (m *masker) Doc(_ *xform.Call, doc bson.Raw) (bson.Raw, error) {
	return m.rw.Doc(doc, m.paths)
}

func (m *masker) Partial(_ *xform.Call, set bson.Raw, unset []string) (bson.Raw, []string, error) {
	els, err := xform.Elements(set)
	if err != nil {
		return nil, nil, err
	}
	out := xform.NewPartial(len(set))
	whole := map[string]bool{} // masked fields set whole by redact or null
	for _, e := range els {
		key := e.Key()
		u := fieldpath.Split(key)
		mt := m.paths.Match(u, true)
		switch mt.Rel {
		case fieldpath.Unrelated:
			out.SetElement(e)
		case fieldpath.AtOrBelow:
			meth := mt.Node.Value
			if meth == methodHash || len(mt.Rest) == 0 {
				nv, err := m.mask(meth, e.Value())
				if err != nil {
					return nil, nil, fmt.Errorf("field %q: %w", key, err)
				}
				if len(mt.Rest) == 0 {
					whole[key] = true
				}
				out.Set(key, nv)
				continue
			}
			at := u[:len(u)-len(mt.Rest)].String()
			if !whole[at] {
				whole[at] = true
				nv, _ := m.mask(meth, bson.RawValue{})
				out.Set(at, nv)
			}
		case fieldpath.Above:
			nv, _, err := m.rw.Value(e.Value(), mt.Node)
			if err != nil {
				return nil, nil, fmt.Errorf("field %q: %w", key, err)
			}
			out.Set(key, nv)
		}
	}
	for _, path := range unset {
		mt := m.paths.Match(fieldpath.Split(path), true)
		if mt.Rel == fieldpath.AtOrBelow && mt.Node.Value != methodHash && len(mt.Rest) > 0 {
			continue
		}
		out.Unset(path)
	}
	s, us := out.Result()
	return s, us, nil
}
