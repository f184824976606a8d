package project

import (
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/transforms/internal/fieldpath"
	"github.com/dsyncio/dsync/transforms/internal/rawdoc"
	"github.com/dsyncio/dsync/transforms/internal/xform"
)

// NewDrop returns an unconfigured drop transform.
func NewDrop() sdk.Transform { return xform.New("drop", parseDrop) }

// NewKeep returns an unconfigured keep transform.
func NewKeep() sdk.Transform { return xform.New("keep", parseKeep) }

type projection struct {
	keep  bool
	paths *fieldpath.Tree[struct{}]
	rw    *rawdoc.Rewrite[struct{}]
}

func parseDrop(spec string) (xform.Rewriter, error) { return parse(spec, false) }
func parseKeep(spec string) (xform.Rewriter, error) { return parse(spec, true) }

func parse(spec string, keep bool) (xform.Rewriter, error) {
	name := "drop"
	if keep {
		name = "keep"
	}
	entries, err := xform.List(spec)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("no fields given: write %s:FIELD[,FIELD...], e.g. %s:password,address.street", name, name)
	}
	p := &projection{keep: keep, paths: fieldpath.NewTree[struct{}]()}
	for _, e := range entries {
		path, err := fieldpath.Parse(e)
		if err != nil {
			return nil, fmt.Errorf("field %q: %v", e, err)
		}
		switch {
		case path.IsID() && !keep:
			return nil, errors.New("_id cannot be dropped")
		case path.IsID() && len(path) > 1:
			return nil, fmt.Errorf("field %q: keep always keeps _id whole: name _id or nothing of it", e)
		case path.IsID():
			continue
		}
		if err := p.paths.Add(path, struct{}{}); err != nil {
			return nil, err
		}
	}
	if keep {
		if err := p.paths.Add(fieldpath.Path{"_id"}, struct{}{}); err != nil {
			return nil, err
		}
	}
	p.rw = &rawdoc.Rewrite[struct{}]{
		Leaf: func(_ *fieldpath.Tree[struct{}], v bson.RawValue) (bson.RawValue, bool, error) {
			return v, keep, nil
		},
		KeepOthers: !keep,
		Arrays:     true,
	}
	return p, nil
}

func (p *projection) Doc(_ *xform.Call, doc bson.Raw) (bson.Raw, error) {
	return p.rw.Doc(doc, p.paths)
}

// errIndexed is the FailedPrecondition of an update path through an array
// index under keep.
func errIndexed(path string) error {
	return sdk.FailedPrecondition(fmt.Errorf("partial update path %q addresses an array element of a kept path, "+
		"and keep removes array elements that are not documents, so the index may differ in the sink: "+
		"use keep with a source that sends full documents for updates", path))
}

func (p *projection) Partial(_ *xform.Call, set bson.Raw, unset []string) (bson.Raw, []string, error) {
	els, err := xform.Elements(set)
	if err != nil {
		return nil, nil, err
	}
	out := xform.NewPartial(len(set))
	for _, e := range els {
		key := e.Key()
		m := p.paths.Match(fieldpath.Split(key), true)
		if p.keep && m.Indexed {
			return nil, nil, errIndexed(key)
		}
		switch m.Rel {
		case fieldpath.Unrelated:
			if !p.keep {
				out.SetElement(e)
			}
		case fieldpath.AtOrBelow:
			if p.keep {
				out.SetElement(e)
			}
		case fieldpath.Above:
			nv, ok, err := p.rw.Value(e.Value(), m.Node)
			if err != nil {
				return nil, nil, fmt.Errorf("field %q: %w", key, err)
			}
			if ok {
				out.Set(key, nv)
			} else {
				out.Unset(key)
			}
		}
	}
	for _, u := range unset {
		m := p.paths.Match(fieldpath.Split(u), true)
		if p.keep && m.Indexed {
			return nil, nil, errIndexed(u)
		}
		switch {
		case m.Rel == fieldpath.Unrelated && !p.keep,
			m.Rel == fieldpath.AtOrBelow && p.keep,
			m.Rel == fieldpath.Above:
			out.Unset(u)
		}
	}
	s, us := out.Result()
	return s, us, nil
}
