package cli

import (
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
)

// interspersed moves the flags of the invoked (sub)command in front of its
// positional arguments, so `dsync sync SRC DST --mode initial` works:
// urfave/cli v2 stops parsing flags at the first positional argument. It uses
// the command's flag definitions to know which flags take a value. "--"
// ends the reordering; it is kept in front of every positional argument, so
// that what follows it stays positional even after an earlier positional
// argument (`dsync sync SRC --mode initial -- -odd-sink`). Aliases are
// replaced by the primary flag name, and --help on a command without
// subcommands drops everything else.
func interspersed(app *cli.App, args []string) []string {
	if len(args) == 0 {
		return args
	}
	cmds := app.Commands
	out := []string{}
	i := 0
	// Global flags (before the command) stay as they are.
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		out = append(out, args[i])
		i++
	}
	var cmd *cli.Command
	for i < len(args) {
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(args[i]) {
				next = c
			}
		}
		if next == nil {
			break
		}
		cmd = next
		out = append(out, args[i])
		i++
		cmds = cmd.Subcommands
	}
	if cmd == nil {
		return args
	}
	takesValue := map[string]bool{}
	primary := map[string]string{}
	for _, f := range cmd.Flags {
		v := !isBool(f)
		for _, n := range f.Names() {
			takesValue[n] = v
			primary[n] = f.Names()[0]
		}
	}
	var flags, positional, rest []string
	help := false
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = args[i+1:]
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if p := primary[name]; p != "" && p != name {
			// urfave/cli rejects a flag given under two of its names
			// (`-n a.b --namespace c.d`): always pass the primary one.
			a = "--" + p
			if hasValue {
				a += "=" + value
			}
		}
		flags = append(flags, a)
		if hasValue {
			continue
		}
		help = help || name == "help" || name == "h"
		if takesValue[name] {
			if i+1 == len(args) {
				// The value is missing: leave the flag last so that the
				// parser reports it rather than taking an argument as
				// its value.
				return append(out, flags...)
			}
			i++
			flags = append(flags, args[i])
		}
	}
	if help && len(cmd.Subcommands) == 0 {
		// urfave/cli reads `sync --help SRC` as a request for help on a
		// subcommand named SRC.
		return append(out, "--help")
	}
	out = append(out, flags...)
	if i < len(args) {
		// The flag parser honours "--" only before the first positional
		// argument.
		out = append(out, "--")
	}
	return append(append(out, positional...), rest...)
}

func isBool(f cli.Flag) bool {
	switch f.(type) {
	case *cli.BoolFlag, *altsrc.BoolFlag:
		return true
	}
	return false
}
