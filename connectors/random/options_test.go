package random

import (
	"strings"
	"testing"

	"github.com/dsyncio/dsync/sdk"
)

func TestParseURL(t *testing.T) {
	def := DefaultOptions()
	with := func(f func(*Options)) Options {
		o := def
		f(&o)
		return o
	}
	tests := []struct {
		url  string
		want Options
	}{
		{"random://", def},
		{"random:", def},
		{"random:///", def},
		{"random://?", def},
		{"random://?docs=0", with(func(o *Options) { o.Docs = 0 })},
		{"random://?namespaces=3&docs=10&size=0&seed=0&partitions=7&updates=50&rate=2.5&page=3",
			Options{Namespaces: 3, Docs: 10, Size: 0, Seed: 0, Partitions: 7, Updates: 50, Rate: 2.5, Page: 3}},
		{"random://?seed=18446744073709551615", with(func(o *Options) { o.Seed = 1<<64 - 1 })},
		{"random://?size=16777216&docs=1000000000000", with(func(o *Options) { o.Size = MaxSize; o.Docs = MaxDocs })},
		{"random://?namespaces=10000&partitions=1000000&docs=100", with(func(o *Options) { o.Namespaces = MaxNamespaces; o.Partitions = MaxPartitions; o.Docs = 100 })},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := ParseURL(tt.url)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseURLInvalid(t *testing.T) {
	tests := []struct {
		url      string
		mentions string // the message must say what to change
	}{
		{"null://", "random://"},
		{"random://host", "host"},
		{"random://?foo=1", `unknown option "foo"`},
		{"random://?docs=abc", "docs"},
		{"random://?docs=-1", "non-negative"},
		{"random://?docs=1.5", "docs"},
		{"random://?docs=1&docs=2", "once"},
		{"random://?partitions=0", "partitions=0"},
		{"random://?namespaces=0", "namespaces=0"},
		{"random://?namespaces=10001", "1 to 10000"},
		{"random://?page=0", "page"},
		{"random://?size=16777217", "size"},
		{"random://?seed=-1", "seed"},
		{"random://?rate=-1", "rate"},
		{"random://?rate=NaN", "rate"},
		{"random://?rate=Inf", "rate"},
		{"random://?updates=1000000000001", "updates"},
		{"random://?docs=%zz", "name=value"},
		{"random://#frag", "fragment"},
		{"random://?namespaces=10&partitions=100001&docs=1000000", "namespaces × partitions"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := ParseURL(tt.url)
			if err == nil {
				t.Fatal("no error")
			}
			if k := sdk.KindOf(err); k != sdk.KindInvalidArgument {
				t.Errorf("kind %v, want invalid argument", k)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.mentions) {
				t.Errorf("message %q does not mention %q", msg, tt.mentions)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("message %q is not one line", msg)
			}
		})
	}
}

func TestConfigureSettings(t *testing.T) {
	c := New()
	err := c.Configure(t.Context(), sdk.Config{URL: "random://?docs=5", Settings: map[string]string{"namespaces": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := c.Options()
	if o.Docs != 5 || o.Namespaces != 2 {
		t.Errorf("options %+v", o)
	}
	err = New().Configure(t.Context(), sdk.Config{URL: "random://?docs=5", Settings: map[string]string{"docs": "2"}})
	if sdk.KindOf(err) != sdk.KindInvalidArgument {
		t.Errorf("option in URL and settings: %v, want invalid argument", err)
	}
}

func TestEnsureDefaults(t *testing.T) {
	var o Options
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatalf("zero options after EnsureDefaults: %v", err)
	}
	if o.Docs != 0 || o.Seed != 0 {
		t.Errorf("EnsureDefaults changed a field whose zero is meaningful: %+v", o)
	}
}

func TestID(t *testing.T) {
	id := func(url string) string {
		o, err := ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		return o.ID()
	}
	base := id("random://?seed=3&docs=10")
	for _, same := range []string{"random://?docs=10&seed=3&partitions=9&page=2&updates=5&rate=1"} {
		if got := id(same); got != base {
			t.Errorf("%s: ID %q, want %q", same, got, base)
		}
	}
	for _, other := range []string{"random://?seed=4&docs=10", "random://?seed=3&docs=11", "random://?seed=3&docs=10&size=10", "random://?seed=3&docs=10&namespaces=2"} {
		if got := id(other); got == base {
			t.Errorf("%s: same ID %q as a different dataset", other, got)
		}
	}
}
