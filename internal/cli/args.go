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
// argument (`dsync sync SRC --mode initial -- -odd-sink`).
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
	for _, f := range cmd.Flags {
		v := !isBool(f)
		for _, n := range f.Names() {
			takesValue[n] = v
		}
	}
	var flags, positional, rest []string
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
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if takesValue[name] && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
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
