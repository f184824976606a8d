package fieldpath

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for s, want := range map[string]string{
		"":      "empty field path",
		"a..b":  "empty field name between dots",
		".a":    "empty field name between dots",
		"a.$b":  `field name "$b" starts with '$'`,
		"a\x00": "field name holds a NUL byte",
		"a. b":  `field name " b" has surrounding spaces`,
	} {
		if _, err := Parse(s); err == nil || err.Error() != want {
			t.Errorf("Parse(%q) = %v, want %q", s, err, want)
		}
	}
	p, err := Parse("a.b.0")
	if err != nil || p.String() != "a.b.0" || len(p) != 3 {
		t.Errorf("Parse(a.b.0) = %q, %v", p, err)
	}
}

func TestTreeAdd(t *testing.T) {
	cases := []struct {
		paths []string
		err   string
	}{
		{[]string{"a", "b.c", "b.d"}, ""},
		{[]string{"a", "a"}, `"a" is given twice`},
		{[]string{"a", "a.b"}, `"a.b" overlaps "a"`},
		{[]string{"a.b", "a"}, `"a" overlaps "a.b"`},
		{[]string{"a.b.c", "a.b"}, `"a.b" overlaps "a.b.c"`},
	}
	for _, c := range cases {
		tr := NewTree[int]()
		var err error
		for i, p := range c.paths {
			if err = tr.Add(Split(p), i); err != nil {
				break
			}
		}
		if got := ""; err != nil {
			got = err.Error()
			if got != c.err {
				t.Errorf("%q: error %q, want %q", c.paths, got, c.err)
			}
		} else if c.err != "" {
			t.Errorf("%q: no error, want %q", c.paths, c.err)
		}
	}
}

func TestMatch(t *testing.T) {
	tr := NewTree[string]()
	for _, p := range []string{"a", "b.c", "items.price", "x.y.z"} {
		if err := tr.Add(Split(p), p); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		u       string
		indexes bool
		want    string // relation, leaf or subtree, rest, indexed
	}{
		{"a", false, "at a"},
		{"a.q.r", false, "at a rest q.r"},
		{"b", false, "above c"},
		{"b.c", false, "at b.c"},
		{"b.d", false, "unrelated"},
		{"z", false, "unrelated"},
		{"x.y", false, "above z"},
		{"items.1.price", true, "at items.price indexed"},
		{"items.1.price", false, "unrelated"},
		{"items.1", true, "above price indexed"},
		{"items.1.q", true, "unrelated"},
		{"items.01.price", true, "unrelated"},
		{"0.a", true, "unrelated"},
	}
	for _, c := range cases {
		m := tr.Match(Split(c.u), c.indexes)
		var got string
		switch m.Rel {
		case Unrelated:
			got = "unrelated"
		case AtOrBelow:
			got = "at " + m.Node.Value
			if len(m.Rest) > 0 {
				got += " rest " + m.Rest.String()
			}
		case Above:
			var keys []string
			for k := range m.Node.Children {
				keys = append(keys, k)
			}
			got = "above " + strings.Join(keys, ",")
		}
		if m.Indexed {
			got += " indexed"
		}
		if got != c.want {
			t.Errorf("Match(%q, %v) = %s, want %s", c.u, c.indexes, got, c.want)
		}
	}
}

func TestIsIndex(t *testing.T) {
	for s, want := range map[string]bool{"0": true, "12": true, "01": false, "": false, "1a": false, "-1": false, "12345678901": false} {
		if IsIndex(s) != want {
			t.Errorf("IsIndex(%q) = %v", s, !want)
		}
	}
}
