package fieldpath

import "fmt"

// Tree is a set of paths, none an ancestor of another, each with a value:
// the shape in which a transform walks a document once. The root is the
// document; a leaf ends a path.
type Tree[T any] struct {
	// Leaf marks the end of a path; Value is its value.
	Leaf  bool
	Value T
	// Path is the full path of a leaf.
	Path Path
	// Children are the next segments below an inner node.
	Children map[string]*Tree[T]
}

// NewTree returns an empty tree.
func NewTree[T any]() *Tree[T] { return &Tree[T]{} }

// Add adds p with value v. It fails when p overlaps a path already added
// (the same path, an ancestor or a descendant), naming that path.
func (t *Tree[T]) Add(p Path, v T) error {
	n := t
	for i, seg := range p {
		if n.Leaf {
			return fmt.Errorf("%q overlaps %q", p.String(), n.Path.String())
		}
		c := n.Children[seg]
		if c == nil {
			if n.Children == nil {
				n.Children = make(map[string]*Tree[T])
			}
			c = &Tree[T]{}
			n.Children[seg] = c
		} else if i == len(p)-1 {
			if c.Leaf {
				return fmt.Errorf("%q is given twice", p.String())
			}
			return fmt.Errorf("%q overlaps %q", p.String(), c.anyLeaf().Path.String())
		}
		n = c
	}
	n.Leaf, n.Value, n.Path = true, v, p
	return nil
}

// Empty reports whether the tree holds no path.
func (t *Tree[T]) Empty() bool { return !t.Leaf && len(t.Children) == 0 }

func (t *Tree[T]) anyLeaf() *Tree[T] {
	for n := t; ; {
		if n.Leaf {
			return n
		}
		for _, c := range n.Children {
			n = c
			break
		}
	}
}

// Relation says where an update path lies relative to the paths of a tree.
type Relation int

const (
	// Unrelated: the update path neither contains nor is contained in any
	// path of the tree.
	Unrelated Relation = iota
	// AtOrBelow: the update path is a path of the tree (Rest empty) or lies
	// inside one (Rest is the part below it).
	AtOrBelow
	// Above: the update path is an ancestor of paths of the tree; Node is
	// the subtree of those paths, relative to the update path.
	Above
)

// Match is the result of [Tree.Match].
type Match[T any] struct {
	Rel Relation
	// Node is the leaf for AtOrBelow and the subtree for Above.
	Node *Tree[T]
	// Rest is the part of the update path below the leaf (AtOrBelow).
	Rest Path
	// Indexed is set when array indexes of the update path were skipped.
	Indexed bool
}

// Match relates the path u of a partial update to the tree. With indexes, a
// segment of u that is an array index (see [IsIndex]) and is not a child of
// the node reached so far is taken to address an element of an array there
// and is skipped, as the tree's paths apply to every element of arrays
// (this is MongoDB's reading of "items.1.price" for a path "items.price").
// Indexes are never skipped at the top level, which is a document.
func (t *Tree[T]) Match(u Path, indexes bool) Match[T] {
	n := t
	var m Match[T]
	for i := 0; i < len(u); i++ {
		if n.Leaf {
			m.Rel, m.Node, m.Rest = AtOrBelow, n, u[i:]
			return m
		}
		c := n.Children[u[i]]
		if c == nil {
			if indexes && n != t && IsIndex(u[i]) {
				m.Indexed = true
				continue
			}
			return Match[T]{}
		}
		n = c
	}
	if n.Leaf {
		m.Rel, m.Node = AtOrBelow, n
		return m
	}
	if n == t {
		return Match[T]{}
	}
	m.Rel, m.Node = Above, n
	return m
}
