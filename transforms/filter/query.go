package filter

import (
	"fmt"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/transforms/internal/fieldpath"
)

// expr is a compiled query or part of one.
type expr interface {
	match(doc bson.Raw) bool
}

type andExpr []expr

func (e andExpr) match(doc bson.Raw) bool {
	for _, x := range e {
		if !x.match(doc) {
			return false
		}
	}
	return true
}

type orExpr []expr

func (e orExpr) match(doc bson.Raw) bool {
	for _, x := range e {
		if x.match(doc) {
			return true
		}
	}
	return false
}

type norExpr []expr

func (e norExpr) match(doc bson.Raw) bool { return !orExpr(e).match(doc) }

// fieldExpr tests the values found at a path.
type fieldExpr struct {
	path fieldpath.Path
	cond cond
}

func (e *fieldExpr) match(doc bson.Raw) bool {
	return e.cond.test(resolve(doc, e.path))
}

// values are what a path finds in a document, MongoDB style: through
// arrays of documents, and an array at the end of the path offers itself and
// each of its elements.
type values struct {
	found []bson.RawValue
	// missing is set when some branch of the path ended without the field.
	missing bool
	// exists is set when the field itself was found on some branch.
	exists bool
}

func resolve(doc bson.Raw, p fieldpath.Path) values {
	var vs values
	collect(doc, p, &vs)
	return vs
}

func collect(doc bson.Raw, p fieldpath.Path, vs *values) {
	v, err := doc.LookupErr(p[0])
	if err != nil {
		vs.missing = true
		return
	}
	next(v, p[1:], vs)
}

// next continues the path p from the value v.
func next(v bson.RawValue, p fieldpath.Path, vs *values) {
	if len(p) == 0 {
		vs.exists = true
		vs.found = append(vs.found, v)
		if arr, ok := v.ArrayOK(); ok {
			if els, err := arr.Values(); err == nil {
				vs.found = append(vs.found, els...)
			}
		}
		return
	}
	switch v.Type {
	case bson.TypeEmbeddedDocument:
		collect(v.Document(), p, vs)
	case bson.TypeArray:
		els, err := v.Array().Values()
		if err != nil {
			vs.missing = true
			return
		}
		if fieldpath.IsIndex(p[0]) {
			if i, err := strconv.Atoi(p[0]); err == nil && i < len(els) {
				next(els[i], p[1:], vs)
			}
		}
		for _, e := range els {
			if d, ok := e.DocumentOK(); ok {
				collect(d, p, vs)
			}
		}
	default:
		vs.missing = true
	}
}

// cond is a condition on the values at a path.
type cond interface {
	test(vs values) bool
}

type allConds []cond

func (c allConds) test(vs values) bool {
	for _, x := range c {
		if !x.test(vs) {
			return false
		}
	}
	return true
}

type notCond struct{ c cond }

func (c notCond) test(vs values) bool { return !c.c.test(vs) }

type eqCond struct{ v bson.RawValue }

func (c eqCond) test(vs values) bool {
	if c.v.Type == bson.TypeNull && vs.missing {
		return true
	}
	for _, f := range vs.found {
		if compare(f, c.v) == 0 {
			return true
		}
	}
	return false
}

// cmpCond is $gt, $gte, $lt or $lte: ok says which orders match.
type cmpCond struct {
	v  bson.RawValue
	ok func(c int) bool
}

func (c cmpCond) test(vs values) bool {
	if c.v.Type == bson.TypeNull && vs.missing && c.ok(0) {
		return true
	}
	for _, f := range vs.found {
		if bracket(f.Type) == bracket(c.v.Type) && c.ok(compare(f, c.v)) {
			return true
		}
	}
	return false
}

type inCond []bson.RawValue

func (c inCond) test(vs values) bool {
	for _, v := range c {
		if (eqCond{v}).test(vs) {
			return true
		}
	}
	return false
}

type existsCond bool

func (c existsCond) test(vs values) bool { return vs.exists == bool(c) }

// Operators, for messages.
var fieldOps = []string{"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$not"}

// compile compiles a query document. paths collects the paths it reads.
func compile(q bson.Raw, paths *[]fieldpath.Path) (expr, error) {
	els, err := q.Elements()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var and andExpr
	for _, e := range els {
		key := e.Key()
		if seen[key] {
			return nil, fmt.Errorf("%q is given twice in one document: combine the conditions or use $and", key)
		}
		seen[key] = true
		switch key {
		case "$and", "$or", "$nor":
			subs, err := compileList(key, e.Value(), paths)
			if err != nil {
				return nil, err
			}
			switch key {
			case "$and":
				and = append(and, andExpr(subs))
			case "$or":
				and = append(and, orExpr(subs))
			default:
				and = append(and, norExpr(subs))
			}
			continue
		}
		if strings.HasPrefix(key, "$") {
			return nil, fmt.Errorf("unsupported top-level operator %q: use $and, $or, $nor or field conditions", key)
		}
		p, err := fieldpath.Parse(key)
		if err != nil {
			return nil, fmt.Errorf("field %q: %v", key, err)
		}
		c, err := compileCond(key, e.Value())
		if err != nil {
			return nil, err
		}
		*paths = append(*paths, p)
		and = append(and, &fieldExpr{path: p, cond: c})
	}
	if len(and) == 1 {
		return and[0], nil
	}
	return and, nil
}

func compileList(op string, v bson.RawValue, paths *[]fieldpath.Path) ([]expr, error) {
	arr, ok := v.ArrayOK()
	if !ok {
		return nil, fmt.Errorf("%s needs an array of query documents", op)
	}
	vals, err := arr.Values()
	if err != nil {
		return nil, err
	}
	if len(vals) == 0 {
		return nil, fmt.Errorf("%s needs a non-empty array", op)
	}
	out := make([]expr, 0, len(vals))
	for _, x := range vals {
		d, ok := x.DocumentOK()
		if !ok {
			return nil, fmt.Errorf("%s needs an array of query documents, not of %s", op, x.Type)
		}
		e, err := compile(d, paths)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// isOperatorDoc reports whether v is a document of operators ({"$gt": 1}).
// A document mixing operators and fields is an error.
func isOperatorDoc(field string, v bson.RawValue) (bool, error) {
	d, ok := v.DocumentOK()
	if !ok {
		return false, nil
	}
	els, err := d.Elements()
	if err != nil || len(els) == 0 {
		return false, err
	}
	ops := 0
	for _, e := range els {
		if strings.HasPrefix(e.Key(), "$") {
			ops++
		}
	}
	switch ops {
	case 0:
		return false, nil
	case len(els):
		return true, nil
	}
	return false, fmt.Errorf("field %q: a document mixes operators and field names", field)
}

func compileCond(field string, v bson.RawValue) (cond, error) {
	isOps, err := isOperatorDoc(field, v)
	if err != nil {
		return nil, err
	}
	if !isOps {
		return eqCond{v}, nil
	}
	els, _ := v.Document().Elements()
	var all allConds
	for _, e := range els {
		c, err := compileOp(field, e.Key(), e.Value())
		if err != nil {
			return nil, err
		}
		all = append(all, c)
	}
	if len(all) == 1 {
		return all[0], nil
	}
	return all, nil
}

func compileOp(field, op string, v bson.RawValue) (cond, error) {
	switch op {
	case "$eq":
		return eqCond{v}, nil
	case "$ne":
		return notCond{eqCond{v}}, nil
	case "$gt":
		return cmpCond{v, func(c int) bool { return c > 0 }}, nil
	case "$gte":
		return cmpCond{v, func(c int) bool { return c >= 0 }}, nil
	case "$lt":
		return cmpCond{v, func(c int) bool { return c < 0 }}, nil
	case "$lte":
		return cmpCond{v, func(c int) bool { return c <= 0 }}, nil
	case "$in", "$nin":
		arr, ok := v.ArrayOK()
		if !ok {
			return nil, fmt.Errorf("field %q: %s needs an array", field, op)
		}
		vals, err := arr.Values()
		if err != nil {
			return nil, err
		}
		if op == "$in" {
			return inCond(vals), nil
		}
		return notCond{inCond(vals)}, nil
	case "$exists":
		switch v.Type {
		case bson.TypeBoolean:
			return existsCond(v.Boolean()), nil
		case bson.TypeInt32, bson.TypeInt64, bson.TypeDouble:
			return existsCond(v.AsFloat64() != 0), nil
		}
		return nil, fmt.Errorf("field %q: $exists needs true or false", field)
	case "$not":
		isOps, err := isOperatorDoc(field, v)
		if err != nil {
			return nil, err
		}
		if !isOps {
			return nil, fmt.Errorf("field %q: $not needs a document of operators, e.g. {\"$not\": {\"$gt\": 5}}", field)
		}
		c, err := compileCond(field, v)
		if err != nil {
			return nil, err
		}
		return notCond{c}, nil
	}
	return nil, fmt.Errorf("field %q: unsupported operator %q: use %s", field, op, strings.Join(fieldOps, ", "))
}
