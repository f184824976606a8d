package cli

import (
	"io"
	"slices"
	"strings"
	"testing"
)

// TestUsageErrors: every usage error exits 2 with one line on stderr, no
// help text and nothing on stdout, and starts nothing (each would otherwise
// run a sync that never ends: the default mode streams changes).
func TestUsageErrors(t *testing.T) {
	stateDir := t.TempDir()
	syncArgs := func(extra ...string) []string {
		return append([]string{"sync", "random://?docs=10", "null://", "--state-dir", stateDir}, extra...)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"nosuch"}, `unknown command "nosuch"`},
		{"unknown help topic after --help", []string{"--help", "nosuch"}, "No help topic for 'nosuch'"},
		{"unknown subcommand", []string{"state", "nosuch"}, `unknown command "nosuch" (run 'dsync state --help'`},
		{"unknown help topic", []string{"help", "nosuch"}, `unknown command "nosuch"`},
		{"unknown help topic of subcommand", []string{"state", "help", "nosuch"}, `unknown command "nosuch"`},
		{"unknown global flag", []string{"--nosuch"}, "flag provided but not defined: -nosuch"},
		{"unknown sync flag", syncArgs("--nosuch"), "flag provided but not defined: -nosuch"},
		{"unknown connectors flag", []string{"connectors", "--nosuch"}, "flag provided but not defined"},
		{"sync without arguments", []string{"sync", "--state-dir", stateDir}, "sync needs SOURCE and SINK"},
		{"sync with one argument", []string{"sync", "random://", "--state-dir", stateDir}, "sync needs SOURCE and SINK, got 1 argument(s)"},
		{"sync with three arguments", append(syncArgs(), "extra"), "got 3 argument(s)"},
		{"flag value missing at the end", syncArgs("--mode"), "flag needs an argument: -mode"},
		{"bad mode", syncArgs("--mode", "bogus"), `unknown mode "bogus"`},
		{"bad progress", syncArgs("--progress", "bars"), `--progress "bars": want auto, tty, json or none`},
		{"bad batch-bytes", syncArgs("--batch-bytes", "4x"), `--batch-bytes "4x": want a positive size`},
		{"zero batch-bytes", syncArgs("--batch-bytes", "0"), `--batch-bytes "0"`},
		{"negative max-inflight", syncArgs("--max-inflight", "-1MiB"), `--max-inflight "-1MiB"`},
		{"batch-bytes above max-inflight", syncArgs("--batch-bytes", "128MiB"), "--batch-bytes (134217728) must not exceed --max-inflight (67108864)"},
		{"batch-bytes above explicit max-inflight", syncArgs("--batch-bytes", "2MiB", "--max-inflight", "1MiB"), "must not exceed --max-inflight"},
		{"until-lag with initial mode", syncArgs("--until-lag", "5s", "--mode", "initial"), "--until-lag needs a positive duration and --mode full or cdc"},
		{"negative until-lag", syncArgs("--until-lag", "-5s"), "--until-lag needs a positive duration"},
		{"bad until-lag", syncArgs("--until-lag", "soon"), `invalid value "soon" for flag -until-lag`},
		{"namespace with two colons", syncArgs("--namespace", "a.b:c.d:e"), `entry "a.b:c.d:e" has more than one ':'`},
		{"empty namespace", syncArgs("-n", ""), "--namespace"},
		{"namespace given twice", syncArgs("-n", "db.coll", "--namespace", "db.coll"), "is given twice"},
		{"namespace renamed to a database", syncArgs("-n", "db.coll:other"), "maps namespace"},
		{"zero parallel", syncArgs("--parallel", "0"), "--parallel and --writers must be at least 1"},
		{"non-numeric writers", syncArgs("--writers", "many"), `invalid value "many" for flag -writers`},
		{"bad log level", syncArgs("--log-level", "loud"), `--log-level "loud": want debug, info, warn or error`},
		{"transform-plugin without transform", syncArgs("--transform-plugin", "/bin/true"), "--transform-plugin given 1 times but --transform only 0 times"},
		{"unknown scheme", []string{"sync", "nosuchdb://host/db", "null://", "--state-dir", stateDir}, `unknown scheme "nosuchdb"`},
		{"no scheme", []string{"sync", "just-a-name", "null://", "--state-dir", stateDir}, "want scheme://"},
		{"state show without FLOW", []string{"state", "show", "--state-dir", stateDir}, "usage: dsync state show FLOW"},
		{"state show with two FLOWs", []string{"state", "show", "a", "b", "--state-dir", stateDir}, "usage: dsync state show FLOW"},
		{"state reset without FLOW", []string{"state", "reset", "--state-dir", stateDir}, "usage: dsync state reset FLOW"},
		{"state list with an argument", []string{"state", "list", "x", "--state-dir", stateDir}, "state list takes no arguments"},
		{"version with an argument", []string{"version", "x"}, "version takes no arguments"},
		{"connectors with an argument", []string{"connectors", "x"}, "connectors takes no arguments"},
		{"plugin serve bad kind", []string{"plugin", "serve", "widget", "x"}, `plugin kind must be connector or transform, not "widget"`},
		{"plugin serve without arguments", []string{"plugin", "serve"}, "usage: dsync plugin serve connector SCHEME | transform NAME"},
		{"plugin serve unknown connector", []string{"plugin", "serve", "connector", "nosuch"}, `no built-in connector "nosuch"`},
		{"plugin serve unknown transform", []string{"plugin", "serve", "transform", "nosuch"}, `no built-in transform "nosuch"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.args...)
			checkOneLineError(t, r, ExitUsage, tt.want)
			for _, helpText := range []string{"USAGE:", "OPTIONS:", "Incorrect Usage"} {
				if strings.Contains(r.stderr+r.stdout, helpText) {
					t.Errorf("help text dumped on a usage error:\n%v", r)
				}
			}
		})
	}
}

// TestFlagsAfterArguments runs commands with their flags after the
// positional arguments, the way users type them.
func TestFlagsAfterArguments(t *testing.T) {
	dir := t.TempDir()
	// A flag after the arguments is honoured: --mode initial makes the run
	// end, --progress none keeps stdout to the summary line.
	r := mustRun(t, "sync", "random://?docs=20", "null://", "--mode", "initial", "--progress=none", "--state-dir", dir)
	if !strings.Contains(r.stdout, "done") || !strings.Contains(r.stdout, "20 docs") {
		t.Errorf("want a summary of 20 docs copied:\n%v", r)
	}
	// Flags between the arguments, and after the FLOW of state show.
	r = mustRun(t, "state", "list", "--json", "--state-dir", dir)
	id := strings.Split(strings.Split(r.stdout, `"id":"`)[1], `"`)[0]
	mustRun(t, "state", "show", id, "--state-dir", dir, "--json")
	// After "--" everything is an argument, even after a first argument.
	r = run(t, "sync", "random://?docs=20", "--state-dir", dir, "--", "null://", "--mode", "initial")
	checkOneLineError(t, r, ExitUsage, "got 4 argument(s)")
}

// TestInterspersed checks the argument reordering that lets flags follow
// positional arguments.
func TestInterspersed(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"nothing", "", ""},
		{"flags first already", "sync --mode initial SRC DST", "sync --mode initial SRC DST"},
		{"flag with value after arguments", "sync SRC DST --mode initial", "sync --mode initial SRC DST"},
		{"flag between arguments", "sync SRC --mode initial DST", "sync --mode initial SRC DST"},
		{"flag=value", "sync SRC DST --mode=initial", "sync --mode=initial SRC DST"},
		{"bool flag does not take the next argument", "sync SRC --reset DST", "sync --reset SRC DST"},
		{"bool flag=value", "sync SRC DST --reset=false", "sync --reset=false SRC DST"},
		{"alias becomes the flag name", "sync SRC DST -n db.coll -t mask", "sync --namespace db.coll --transform mask SRC DST"},
		{"alias=value", "sync SRC DST -n=db.coll", "sync --namespace=db.coll SRC DST"},
		{"alias and name mixed", "sync SRC -n a.b DST --namespace c.d", "sync --namespace a.b --namespace c.d SRC DST"},
		{"single dash is an argument", "sync - DST --mode cdc", "sync --mode cdc - DST"},
		{"value that looks like a flag", "sync SRC DST --log-file -weird", "sync --log-file -weird SRC DST"},
		{"unknown flag is kept as a flag", "sync SRC DST --nosuch", "sync --nosuch SRC DST"},
		{"double dash before arguments", "sync --mode initial -- -src DST", "sync --mode initial -- -src DST"},
		{"double dash after an argument", "sync SRC --mode initial -- -dst", "sync --mode initial -- SRC -dst"},
		{"flags after double dash stay arguments", "sync SRC DST -- --mode initial", "sync -- SRC DST --mode initial"},
		{"second double dash is an argument", "sync SRC -- -- DST", "sync -- SRC -- DST"},
		{"value missing at the end", "sync SRC DST --mode", "sync --mode"},
		{"subcommand", "state show FLOW --state-dir D --json", "state show --state-dir D --json FLOW"},
		{"global flags stay in front", "--help sync SRC --mode x", "--help sync --mode x SRC"},
		{"argument named like a command", "sync sync DST --reset", "sync --reset sync DST"},
		{"unknown command is left alone", "nosuch a --b c", "nosuch a --b c"},
		{"command without flags", "plugin serve connector random", "plugin serve connector random"},
		{"help after arguments", "sync SRC DST --mode initial --help", "sync --help"},
		{"help before arguments", "sync -h SRC DST", "sync --help"},
		{"help on a command with subcommands", "state --help nosuch", "state --help nosuch"},
		{"help after a subcommand", "state list --json --help", "state list --help"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(interspersed(app, strings.Fields(tt.in)), " ")
			if got != tt.want {
				t.Errorf("interspersed(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestInterspersedDoesNotModifyInput: the caller's slice is left alone.
func TestInterspersedDoesNotModifyInput(t *testing.T) {
	in := []string{"sync", "SRC", "DST", "--mode", "initial", "--", "x"}
	orig := slices.Clone(in)
	interspersed(newApp(io.Discard, io.Discard), in)
	if !slices.Equal(in, orig) {
		t.Errorf("input changed to %q", in)
	}
}
