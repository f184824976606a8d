package rename

import (
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/transforms/internal/fieldpath"
	"github.com/dsyncio/dsync/transforms/internal/rawdoc"
	"github.com/dsyncio/dsync/transforms/internal/xform"
)

// New returns an unconfigured rename transform.
func New() sdk.Transform { return xform.New("rename", parse) }

type rule struct {
	old, new fieldpath.Path
	// inPlace: old and new have the same parent, so the field is renamed
	// where it is.
	inPlace bool
}

// op is what happens to the field at one path of the spec.
type op struct {
	// rule is the index of the rule whose old path this is, or -1.
	rule int
	// newKey is the new name of a field renamed in place.
	newKey string
}

type renamer struct {
	rules []rule
	ops   *fieldpath.Tree[op]
}

func parse(spec string) (xform.Rewriter, error) {
	entries, err := xform.List(spec)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, errors.New("no fields given: write rename:OLD=NEW[,OLD=NEW...], e.g. rename:name=fullName")
	}
	r := &renamer{ops: fieldpath.NewTree[op]()}
	olds := map[string]bool{}
	news := map[string]bool{}
	for _, e := range entries {
		l, rt, ok := xform.Assignment(e)
		if !ok {
			return nil, fmt.Errorf("entry %q has no '=': write OLD=NEW, e.g. rename:name=fullName", e)
		}
		old, err := fieldpath.Parse(l)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %v", e, err)
		}
		nw, err := fieldpath.Parse(rt)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %v", e, err)
		}
		switch {
		case old.IsID() || nw.IsID():
			return nil, fmt.Errorf("entry %q: _id cannot be renamed, nor fields moved into it", e)
		case old.Overlaps(nw):
			return nil, fmt.Errorf("entry %q: a field cannot move into itself or its parent", e)
		case olds[old.String()]:
			return nil, fmt.Errorf("field %q is renamed twice", old.String())
		case news[nw.String()]:
			return nil, fmt.Errorf("two fields are renamed to %q", nw.String())
		}
		olds[old.String()], news[nw.String()] = true, true
		r.rules = append(r.rules, rule{old: old, new: nw,
			inPlace: len(old) == len(nw) && old.Parent().Equal(nw.Parent())})
	}
	// Every old path gets its operation, then every new path that is no
	// old path is a field to discard; no other overlap is allowed.
	for i, ru := range r.rules {
		o := op{rule: i}
		if ru.inPlace {
			o.newKey = ru.new.Last()
		}
		if err := r.ops.Add(ru.old, o); err != nil {
			return nil, err
		}
	}
	for _, ru := range r.rules {
		if olds[ru.new.String()] {
			continue
		}
		if err := r.ops.Add(ru.new, op{rule: -1}); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Doc renames in one pass over the document, then adds the moved fields.
func (r *renamer) Doc(_ *xform.Call, doc bson.Raw) (bson.Raw, error) {
	out, err := r.walk(doc, r.ops)
	if err != nil {
		return nil, err
	}
	for _, ru := range r.rules {
		if ru.inPlace {
			continue
		}
		v, ok := rawdoc.Lookup(doc, ru.old)
		if !ok {
			continue
		}
		if out, err = rawdoc.Set(out, ru.new, v, rawdoc.Last); err != nil {
			return nil, fmt.Errorf("move %q to %q: %w", ru.old.String(), ru.new.String(), err)
		}
	}
	return out, nil
}

// walk renames fields in place and removes moved and discarded ones.
func (r *renamer) walk(doc bson.Raw, t *fieldpath.Tree[op]) (bson.Raw, error) {
	b := rawdoc.NewBuilder(len(doc))
	err := rawdoc.Each(doc, func(key []byte, e bson.RawElement, v bson.RawValue) error {
		c := t.Children[string(key)]
		switch {
		case c == nil:
			b.AppendElement(e)
		case c.Leaf && c.Value.newKey != "":
			b.Append(c.Value.newKey, v)
		case c.Leaf:
			// moved or discarded
		case v.Type == bson.TypeEmbeddedDocument:
			sub, err := r.walk(v.Value, c)
			if err != nil {
				return err
			}
			b.AppendKey(key, rawdoc.DocValue(sub))
		default:
			b.AppendElement(e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b.Build(), nil
}

func errAboveTarget(path string, ru rule) error {
	return sdk.FailedPrecondition(fmt.Errorf("partial update of %q replaces the field %q renamed from %q, "+
		"which it does not hold: use rename with a source that sends full documents for updates, "+
		"or a NEW path outside fields the source updates as a whole", path, ru.new.String(), ru.old.String()))
}

func (r *renamer) Partial(c *xform.Call, set bson.Raw, unset []string) (bson.Raw, []string, error) {
	els, err := xform.Elements(set)
	if err != nil {
		return nil, nil, err
	}
	out := xform.NewPartial(len(set))
	for _, e := range els {
		key := e.Key()
		u := fieldpath.Split(key)
		m := r.ops.Match(u, false)
		switch m.Rel {
		case fieldpath.Unrelated:
			out.SetElement(e)
		case fieldpath.AtOrBelow:
			if o := m.Node.Value; o.rule >= 0 {
				out.Set(r.rules[o.rule].new.Join(m.Rest).String(), e.Value())
			}
		case fieldpath.Above:
			if err := r.checkAbove(key, u); err != nil {
				return nil, nil, err
			}
			// Rename within a document holding only the new value at u.
			d, err := rawdoc.Set(rawdoc.Empty(), u, e.Value(), rawdoc.Last)
			if err != nil {
				return nil, nil, err
			}
			td, err := r.Doc(c, d)
			if err != nil {
				return nil, nil, err
			}
			nv, ok := rawdoc.Lookup(td, u)
			if !ok {
				return nil, nil, fmt.Errorf("field %q vanished while renaming inside it", key)
			}
			out.Set(key, nv)
			for _, ru := range r.rules {
				if !ru.old.HasPrefix(u) || ru.new.HasPrefix(u) {
					continue
				}
				if v, ok := rawdoc.Lookup(td, ru.new); ok {
					out.Set(ru.new.String(), v)
				} else {
					out.Unset(ru.new.String())
				}
			}
		}
	}
	for _, path := range unset {
		u := fieldpath.Split(path)
		m := r.ops.Match(u, false)
		switch m.Rel {
		case fieldpath.Unrelated:
			out.Unset(path)
		case fieldpath.AtOrBelow:
			if o := m.Node.Value; o.rule >= 0 {
				out.Unset(r.rules[o.rule].new.Join(m.Rest).String())
			}
		case fieldpath.Above:
			if err := r.checkAbove(path, u); err != nil {
				return nil, nil, err
			}
			out.Unset(path)
			for _, ru := range r.rules {
				if ru.old.HasPrefix(u) && !ru.new.HasPrefix(u) {
					out.Unset(ru.new.String())
				}
			}
		}
	}
	s, us := out.Result()
	return s, us, nil
}

// checkAbove fails when the field at u holds the NEW path of a rule whose
// OLD lies outside it: replacing or removing u would lose NEW in the sink,
// and its value is not in the update.
func (r *renamer) checkAbove(path string, u fieldpath.Path) error {
	for _, ru := range r.rules {
		if ru.new.HasPrefix(u) && !ru.old.HasPrefix(u) {
			return errAboveTarget(path, ru)
		}
	}
	return nil
}
