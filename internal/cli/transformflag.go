package cli

import (
	"encoding/json"
	"flag"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
)

// specsFlag is a repeatable flag whose every value is kept whole. Transform
// specs hold commas (rename:a=b,c=d, filter queries), so unlike the other
// repeatable flags a value given on the command line is never split at
// commas; in its environment variable, specs are separated by newlines; in
// a --config file, it takes a list or a single string. Precedence is that
// of the other flags: command line, environment, file.
type specsFlag struct {
	*cli.StringSliceFlag
	set *flag.FlagSet
}

var (
	_ cli.DocGenerationSliceFlag      = (*specsFlag)(nil)
	_ altsrc.FlagInputSourceExtension = (*specsFlag)(nil)
)

// specsValue holds the specs; values from the environment are replaced by
// the first value from the command line.
type specsValue struct {
	specs   []string
	fromEnv bool
}

// serialPrefix marks the serialized form (see Serialize); no argument can
// start with it, since arguments cannot hold NUL bytes.
const serialPrefix = "\x00specs:"

// Set appends s, or replaces the specs with those of a serialized value.
func (v *specsValue) Set(s string) error {
	if rest, ok := strings.CutPrefix(s, serialPrefix); ok {
		var specs []string
		if err := json.Unmarshal([]byte(rest), &specs); err != nil {
			return err
		}
		v.specs, v.fromEnv = specs, false
		return nil
	}
	if v.fromEnv {
		v.specs, v.fromEnv = nil, false
	}
	v.specs = append(v.specs, s)
	return nil
}

// Serialize returns the specs in a form Set restores as they are; the CLI
// library copies a flag's value to its aliases with it.
func (v *specsValue) Serialize() string {
	b, _ := json.Marshal(v.specs)
	return serialPrefix + string(b)
}

func (v *specsValue) String() string {
	if v == nil {
		return ""
	}
	return strings.Join(v.specs, "\n")
}

// Get returns the specs as a []string.
func (v *specsValue) Get() any { return v.specs }

// Apply registers the flag and reads its environment variable.
func (f *specsFlag) Apply(set *flag.FlagSet) error {
	f.set = set
	v := &specsValue{}
	for _, name := range f.EnvVars {
		s, ok := os.LookupEnv(name)
		if !ok || strings.TrimSpace(s) == "" {
			continue
		}
		for _, line := range strings.Split(s, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				v.specs = append(v.specs, line)
			}
		}
		v.fromEnv = true
		f.HasBeenSet = true
		break
	}
	for _, n := range f.Names() {
		set.Var(v, n, f.Usage)
	}
	return nil
}

// ApplyInputSourceValue takes the specs from a --config file unless the
// command line or the environment gave some.
func (f *specsFlag) ApplyInputSourceValue(c *cli.Context, isc altsrc.InputSourceContext) error {
	if f.set == nil || c.IsSet(f.Name) || f.HasBeenSet {
		return nil
	}
	for _, name := range f.Names() {
		specs, err := isc.StringSlice(name)
		if err != nil {
			return err
		}
		if specs == nil {
			continue
		}
		v := f.set.Lookup(f.Name).Value.(*specsValue)
		v.specs = append([]string(nil), specs...)
		return nil
	}
	return nil
}

// specsOf returns the values of the specsFlag name.
func specsOf(c *cli.Context, name string) []string {
	specs, _ := c.Value(name).([]string)
	return specs
}
