package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// The flag holds exactly the values given, in order, under either name.
func TestSpecsFlagValues(t *testing.T) {
	for _, args := range [][]string{
		{"x", "--transform", "a:b,c", "--transform", "d:{\"e\":1,\"f\":2}", "--transform", "g"},
		{"x", "-t", "a:b,c", "-t", "d:{\"e\":1,\"f\":2}", "-t", "g"},
	} {
		var got []string
		app := &cli.App{
			Flags:  []cli.Flag{&specsFlag{StringSliceFlag: &cli.StringSliceFlag{Name: "transform", Aliases: []string{"t"}}}},
			Action: func(c *cli.Context) error { got = specsOf(c, "transform"); return nil },
		}
		if err := app.Run(args); err != nil {
			t.Fatal(err)
		}
		if want := []string{"a:b,c", `d:{"e":1,"f":2}`, "g"}; !slices.Equal(got, want) {
			t.Errorf("%q: specs %q, want %q", args[1:], got, want)
		}
	}
}

// Transform specs hold commas: a --transform value, a DSYNC_TRANSFORM line
// and a --config entry each reach the transform whole, with the precedence
// of the other flags.
func TestTransformSpecsKeepCommas(t *testing.T) {
	stateDir := t.TempDir()
	tests := []struct {
		name  string
		file  string
		env   string
		flags []string
		want  string
	}{
		{name: "flag", flags: []string{"--transform", "rename:a=b,_id=x"},
			want: `rename: entry "_id=x": _id cannot be renamed`},
		{name: "flags in order", flags: []string{"-t", "rename:a=b,c=d", "-t", `filter:{"a":1,"b":{"$regex":"x"}}`},
			want: `filter: field "b": unsupported operator "$regex"`},
		{name: "env lines", env: "rename:a=b,c=d\n drop:x,_id\n",
			want: "drop: _id cannot be dropped"},
		{name: "file list", file: "transform: ['rename:a=b,c=d', 'drop:x,_id']",
			want: "drop: _id cannot be dropped"},
		{name: "file string", file: "transform: 'rename:a=b,_id=x'",
			want: `rename: entry "_id=x"`},
		{name: "flag over env and file", file: "transform: ['drop:_id']", env: "drop:_id",
			flags: []string{"--transform", "rename:a=b,_id=x"}, want: `rename: entry "_id=x"`},
		{name: "env over file", file: "transform: ['drop:_id']", env: "rename:a=b,_id=x",
			want: `rename: entry "_id=x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"sync", "--state-dir", stateDir, "--log-level", "error"}
			if tt.file != "" {
				args = append(args, "--config", writeConfig(t, tt.file))
			}
			if tt.env != "" {
				t.Setenv("DSYNC_TRANSFORM", tt.env)
			}
			args = append(append(args, "random://?docs=1", "null://"), tt.flags...)
			checkOneLineError(t, run(t, args...), ExitUsage, tt.want)
		})
	}
}

func TestTransformChainRuns(t *testing.T) {
	r := mustRun(t, "sync", "random://?docs=300", "null://", "--mode", "initial", "--state-dir", t.TempDir(),
		"--progress", "none", "--log-level", "error",
		"-t", "rename:i=index,v=version", "-t", `filter:{"index":{"$lt":100},"version":0}`, "-t", "set:env=\"test\"")
	if !strings.Contains(r.stdout, ": 100 docs (") || !strings.Contains(r.stdout, ", 200 docs dropped by transforms") {
		t.Errorf("summary %q: want 100 docs copied and 200 dropped", r.stdout)
	}
}
