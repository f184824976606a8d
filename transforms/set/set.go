package set

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/transforms/internal/fieldpath"
	"github.com/dsyncio/dsync/transforms/internal/rawdoc"
	"github.com/dsyncio/dsync/transforms/internal/xform"
)

// New returns an unconfigured set transform.
func New() sdk.Transform { return newTransform() }

func newTransform() *xform.Transform { return xform.New("set", parse) }

type kind int

const (
	constant kind = iota
	namespace
	id
	now
)

var computed = map[string]kind{"$namespace": namespace, "$id": id, "$now": now}

type field struct {
	path  fieldpath.Path
	kind  kind
	value bson.RawValue // of a constant
}

func (f *field) valueFor(c *xform.Call) bson.RawValue {
	switch f.kind {
	case namespace:
		return rawdoc.String(c.Namespace)
	case id:
		return c.ID
	case now:
		return rawdoc.DateTime(c.Now.UnixMilli())
	}
	return f.value
}

type setter struct {
	fields []field
	paths  *fieldpath.Tree[*field]
	hasNow bool
}

func parse(spec string) (xform.Rewriter, error) {
	s := &setter{paths: fieldpath.NewTree[*field]()}
	rest := spec
	for n := 1; strings.TrimSpace(rest) != ""; n++ {
		name, after, ok := strings.Cut(rest, "=")
		name = strings.TrimSpace(name)
		if !ok || strings.Contains(name, ",") {
			entry, _, _ := strings.Cut(rest, ",")
			return nil, fmt.Errorf("entry %q has no '=': write FIELD=VALUE, e.g. set:env=\"staging\"", strings.TrimSpace(entry))
		}
		p, err := fieldpath.Parse(name)
		if err != nil {
			return nil, fmt.Errorf("entry %d: field %q: %v", n, name, err)
		}
		if p.IsID() {
			return nil, errors.New("_id cannot be set: documents are replaced and deleted by _id")
		}
		f := field{path: p}
		if f.kind, f.value, rest, err = parseValue(after); err != nil {
			return nil, fmt.Errorf("value of %q: %v", name, err)
		}
		s.fields = append(s.fields, f)
		s.hasNow = s.hasNow || f.kind == now
	}
	if len(s.fields) == 0 {
		return nil, errors.New(`no fields given: write set:FIELD=VALUE[,FIELD=VALUE...], e.g. set:env="staging",syncedAt=$now`)
	}
	for i := range s.fields {
		if err := s.paths.Add(s.fields[i].path, &s.fields[i]); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// parseValue reads one value from the start of s and returns what follows
// the comma after it.
func parseValue(s string) (kind, bson.RawValue, string, error) {
	t := strings.TrimLeft(s, " \t")
	if strings.HasPrefix(t, "$") {
		word, rest, _ := strings.Cut(t, ",")
		word = strings.TrimSpace(word)
		k, ok := computed[word]
		if !ok {
			return 0, bson.RawValue{}, "", fmt.Errorf("unknown computed value %q: use $namespace, $id or $now (quote a string that starts with '$')", word)
		}
		return k, bson.RawValue{}, rest, nil
	}
	dec := json.NewDecoder(strings.NewReader(t))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return 0, bson.RawValue{}, "", fmt.Errorf("not a JSON value (strings need double quotes, e.g. env=\"staging\"): %v", err)
	}
	rest := strings.TrimLeft(t[dec.InputOffset():], " \t")
	if rest != "" {
		if rest[0] != ',' {
			return 0, bson.RawValue{}, "", fmt.Errorf("unexpected %q after the value: separate entries with ','", rest)
		}
		rest = rest[1:]
		if strings.TrimSpace(rest) == "" {
			return 0, bson.RawValue{}, "", errors.New("the spec ends with ','")
		}
	}
	var doc bson.Raw
	if err := bson.UnmarshalExtJSON(append(append([]byte(`{"v":`), raw...), '}'), false, &doc); err != nil {
		return 0, bson.RawValue{}, "", fmt.Errorf("not a valid Extended JSON value: %v", err)
	}
	v, err := doc.LookupErr("v")
	if err != nil {
		return 0, bson.RawValue{}, "", err
	}
	return constant, v, rest, nil
}

// Doc sets the fields last to first, each first in its parent (a field
// already there is moved), so they end up in spec order.
func (s *setter) Doc(c *xform.Call, doc bson.Raw) (bson.Raw, error) {
	for i := len(s.fields) - 1; i >= 0; i-- {
		f := &s.fields[i]
		var err error
		if doc, _, _, err = rawdoc.Remove(doc, f.path); err != nil {
			return nil, err
		}
		if doc, err = rawdoc.Set(doc, f.path, f.valueFor(c), rawdoc.First); err != nil {
			return nil, fmt.Errorf("set %q: %w", f.path.String(), err)
		}
	}
	return doc, nil
}

// inside returns the value at u of a document holding only v at u (or
// nothing at u when unset) after the fields are set.
func (s *setter) inside(c *xform.Call, u fieldpath.Path, v bson.RawValue, unset bool) (bson.RawValue, error) {
	d := rawdoc.Empty()
	if !unset {
		var err error
		if d, err = rawdoc.Set(d, u, v, rawdoc.Last); err != nil {
			return bson.RawValue{}, err
		}
	}
	d, err := s.Doc(c, d)
	if err != nil {
		return bson.RawValue{}, err
	}
	nv, ok := rawdoc.Lookup(d, u)
	if !ok {
		return bson.RawValue{}, fmt.Errorf("field %q vanished while setting fields inside it", u.String())
	}
	return nv, nil
}

func (s *setter) Partial(c *xform.Call, set bson.Raw, unset []string) (bson.Raw, []string, error) {
	els, err := xform.Elements(set)
	if err != nil {
		return nil, nil, err
	}
	out := xform.NewPartial(len(set))
	var covered []fieldpath.Path // set paths whose values hold the fields
	for _, e := range els {
		key := e.Key()
		u := fieldpath.Split(key)
		m := s.paths.Match(u, false)
		switch m.Rel {
		case fieldpath.Unrelated:
			out.SetElement(e)
		case fieldpath.AtOrBelow:
			if len(m.Rest) == 0 {
				out.Set(key, m.Node.Value.valueFor(c))
				covered = append(covered, u)
			}
		case fieldpath.Above:
			nv, err := s.inside(c, u, e.Value(), false)
			if err != nil {
				return nil, nil, err
			}
			out.Set(key, nv)
			covered = append(covered, u)
		}
	}
	for _, path := range unset {
		u := fieldpath.Split(path)
		m := s.paths.Match(u, false)
		switch m.Rel {
		case fieldpath.Unrelated:
			out.Unset(path)
		case fieldpath.Above:
			nv, err := s.inside(c, u, bson.RawValue{}, true)
			if err != nil {
				return nil, nil, err
			}
			out.Set(path, nv)
			covered = append(covered, u)
		}
	}
	if s.hasNow {
	fields:
		for i := range s.fields {
			f := &s.fields[i]
			if f.kind != now {
				continue
			}
			for _, u := range covered {
				if f.path.HasPrefix(u) {
					continue fields
				}
			}
			out.Set(f.path.String(), f.valueFor(c))
		}
	}
	r, us := out.Result()
	return r, us, nil
}
