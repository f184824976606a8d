// Package fieldpath parses the dotted field paths of transform specs and
// relates them to the paths of partial updates.
//
// A path is a field name, or names joined by dots that descend into embedded
// documents: "address.city". A segment may not be empty, start with '$' or
// hold a NUL byte. Paths written by users are parsed with [Parse]; paths of
// partial updates come from sources and are only split with [Split].
package fieldpath

import (
	"errors"
	"fmt"
	"strings"
)

// Path is a dotted path split at its dots: "a.b.c" is {"a", "b", "c"}.
type Path []string

// Split splits a dotted path without validating it.
func Split(s string) Path { return strings.Split(s, ".") }

// Parse parses a path written in a spec. The error says what is wrong with
// s and does not repeat it.
func Parse(s string) (Path, error) {
	if s == "" {
		return nil, errors.New("empty field path")
	}
	p := Split(s)
	for _, seg := range p {
		switch {
		case seg == "":
			return nil, errors.New("empty field name between dots")
		case strings.HasPrefix(seg, "$"):
			return nil, fmt.Errorf("field name %q starts with '$'", seg)
		case strings.IndexByte(seg, 0) >= 0:
			return nil, errors.New("field name holds a NUL byte")
		case strings.TrimSpace(seg) != seg:
			return nil, fmt.Errorf("field name %q has surrounding spaces", seg)
		}
	}
	return p, nil
}

// String joins p with dots.
func (p Path) String() string { return strings.Join(p, ".") }

// Equal reports whether p and q are the same path.
func (p Path) Equal(q Path) bool {
	if len(p) != len(q) {
		return false
	}
	for i := range p {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

// HasPrefix reports whether q is p or an ancestor of p.
func (p Path) HasPrefix(q Path) bool { return len(q) <= len(p) && p[:len(q)].Equal(q) }

// Overlaps reports whether p and q are equal or one is an ancestor of the
// other, so that they name some field in common.
func (p Path) Overlaps(q Path) bool { return p.HasPrefix(q) || q.HasPrefix(p) }

// IsID reports whether p is _id or a path inside it.
func (p Path) IsID() bool { return len(p) > 0 && p[0] == "_id" }

// Parent returns p without its last segment.
func (p Path) Parent() Path { return p[:len(p)-1] }

// Last returns the last segment of p.
func (p Path) Last() string { return p[len(p)-1] }

// Join returns p followed by q, in a new slice.
func (p Path) Join(q Path) Path {
	out := make(Path, 0, len(p)+len(q))
	return append(append(out, p...), q...)
}

// IsIndex reports whether seg is an array index as update paths write them:
// decimal digits without a leading zero (or "0").
func IsIndex(seg string) bool {
	if seg == "" || len(seg) > 10 || (len(seg) > 1 && seg[0] == '0') {
		return false
	}
	for i := 0; i < len(seg); i++ {
		if seg[i] < '0' || seg[i] > '9' {
			return false
		}
	}
	return true
}
