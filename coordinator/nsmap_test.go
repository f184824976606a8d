package coordinator

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseNamespaceMap(t *testing.T) {
	tests := []struct {
		name    string
		entries []string
		// canonical entries, or the error's expected text
		want    []string
		wantErr string
		// source namespace -> sink namespace ("" = not selected)
		maps map[string]string
	}{
		{
			name: "empty selects all", entries: nil, want: []string{},
			maps: map[string]string{"a.b": "a.b", "x.y.z": "x.y.z"},
		},
		{
			name: "one namespace", entries: []string{"a.b"}, want: []string{"a.b"},
			maps: map[string]string{"a.b": "a.b", "a.c": "", "b.b": ""},
		},
		{
			name: "rename namespace", entries: []string{"a.b:c.d"}, want: []string{"a.b:c.d"},
			maps: map[string]string{"a.b": "c.d", "a.c": ""},
		},
		{
			name: "identity rename is canonical", entries: []string{" a.b:a.b "}, want: []string{"a.b"},
		},
		{
			name: "whole database", entries: []string{"a"}, want: []string{"a"},
			maps: map[string]string{"a.b": "a.b", "a.b.c": "a.b.c", "ab.c": ""},
		},
		{
			name: "rename database", entries: []string{"a:c"}, want: []string{"a:c"},
			maps: map[string]string{"a.x": "c.x", "a.x.y": "c.x.y", "b.x": ""},
		},
		{
			name: "namespace rule beats database rule", entries: []string{"a:c", "a.users:c.people"},
			want: []string{"a:c", "a.users:c.people"},
			maps: map[string]string{"a.users": "c.people", "a.orders": "c.orders"},
		},
		{
			name: "sorted", entries: []string{"z.b", "b:q", "a.a:m.n"}, want: []string{"a.a:m.n", "b:q", "z.b"},
		},
		{name: "empty entry", entries: []string{""}, wantErr: "empty entry"},
		{name: "blank entry", entries: []string{"  "}, wantErr: "empty entry"},
		{name: "empty source", entries: []string{":x"}, wantErr: `entry ":x" has an empty source`},
		{name: "empty target", entries: []string{"a.b:"}, wantErr: `entry "a.b:" has an empty target`},
		{name: "double colon", entries: []string{"a::b"}, wantErr: `entry "a::b" has more than one ':'`},
		{name: "two colons", entries: []string{"a:b:c"}, wantErr: `more than one ':'`},
		{name: "namespace to database", entries: []string{"a.b:c"}, wantErr: `maps namespace "a.b" to database "c"`},
		{name: "database to namespace", entries: []string{"a:c.d"}, wantErr: `maps database "a" to namespace "c.d"`},
		{name: "empty collection", entries: []string{"a."}, wantErr: `"a." has an empty collection name`},
		{name: "empty database", entries: []string{".b"}, wantErr: `".b" has an empty database name`},
		{name: "empty target collection", entries: []string{"a.b:c."}, wantErr: `"c." has an empty collection name`},
		{name: "space inside", entries: []string{"a b.c"}, wantErr: "space"},
		{name: "duplicate", entries: []string{"a.b", "a.b"}, wantErr: `entry "a.b" is given twice`},
		{name: "same source twice", entries: []string{"a.b", "a.b:c.d"}, wantErr: `entries "a.b" and "a.b:c.d" both name source "a.b"`},
		{name: "same target", entries: []string{"a.b:x.y", "c.d:x.y"}, wantErr: `entries "a.b:x.y" and "c.d:x.y" both map to "x.y"`},
		{name: "same target database", entries: []string{"a:c", "b:c"}, wantErr: `both map to "c"`},
		{name: "database onto itself", entries: []string{"a:c", "c"}, wantErr: `both map to "c"`},
		{name: "implied", entries: []string{"a", "a.b"}, wantErr: `entry "a.b" is already implied by "a"`},
		{name: "implied by rename", entries: []string{"a:c", "a.b:c.b"}, wantErr: `already implied by "a:c"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseNamespaceMap(tt.entries)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseNamespaceMap(%q) = %v, want error containing %q", tt.entries, m, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidNamespaceMap) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q, want ErrInvalidNamespaceMap containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Entries(); !slices.Equal(got, tt.want) {
				t.Errorf("Entries() = %q, want %q", got, tt.want)
			}
			// Canonical entries parse back to the same map.
			again, err := ParseNamespaceMap(m.Entries())
			if err != nil || again.String() != m.String() {
				t.Errorf("re-parse of %q: %v, %v", m.Entries(), again, err)
			}
			for src, dst := range tt.maps {
				if got := m.Selects(src); got != (dst != "") {
					t.Errorf("Selects(%q) = %v", src, got)
				}
				if dst != "" {
					if got := m.Map(src); got != dst {
						t.Errorf("Map(%q) = %q, want %q", src, got, dst)
					}
				}
			}
		})
	}
}

func TestNamespaceMapSourceNamespaces(t *testing.T) {
	m, err := ParseNamespaceMap([]string{"b.x:c.y", "a"})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.SourceNamespaces(); !slices.Equal(got, []string{"a", "b.x"}) {
		t.Errorf("SourceNamespaces() = %q", got)
	}
	if got := (NamespaceMap{}).SourceNamespaces(); got != nil {
		t.Errorf("zero map SourceNamespaces() = %q, want nil", got)
	}
	if got := (NamespaceMap{}).String(); got != "*" {
		t.Errorf("zero map String() = %q", got)
	}
}

func TestNamespaceMapCheck(t *testing.T) {
	m, err := ParseNamespaceMap([]string{"a:c", "x.y:c.z"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check([]string{"a.q", "x.y", "b.z"}); err != nil {
		t.Errorf("no conflict: %v", err)
	}
	err = m.Check([]string{"a.z", "x.y"})
	if !errors.Is(err, ErrNamespaceConflict) || !strings.Contains(err.Error(), `"a.z" and "x.y" both map to "c.z"`) {
		t.Errorf("conflict: %v", err)
	}
}
