// Package cli is the dsync command tree. It is a library so that every
// command can be tested without building the binary; cmd/dsync only wires
// it to the process (arguments, standard streams, exit code).
//
// Exit codes: 0 success, 1 failure, 2 usage error. Commands with other codes
// (verify) document them.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dsyncio/dsync/internal/version"
)

// Exit codes shared by every command.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// exitError carries an exit code and a one-line message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

func failure(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: ExitFailure, err: err}
}

// Run runs dsync with args (without the program name) and returns the exit
// code. Errors are printed to stderr as one line. Calls must not overlap:
// urfave/cli v2 keeps the state of the --help and --version flags in package
// variables.
//
// An empty DSYNC_* environment variable counts as unset (Run removes it from
// the environment): urfave/cli would otherwise let it hide the --config
// file's value, and give string flags an empty value instead of their
// default.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); v == "" && strings.HasPrefix(k, "DSYNC_") {
			os.Unsetenv(k)
		}
	}
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, append([]string{"dsync"}, interspersed(app, args)...))
	if err == nil {
		return ExitOK
	}
	code := ExitFailure
	var ee *exitError
	var ec cli.ExitCoder
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case errors.As(err, &ec):
		// urfave/cli's own exit errors are about usage: an unknown help
		// topic (`dsync --help nosuch`).
		code = ExitUsage
	}
	fmt.Fprintf(stderr, "dsync: %s\n", oneLine(err.Error()))
	return code
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

func onUsageError(_ *cli.Context, err error, _ bool) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf("%v (see --help)", err)}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "dsync",
		Usage:   "copy a live database to another and keep it in sync",
		Version: version.String(),
		Description: "dsync copies every namespace (collection or table) from a source to a sink with\n" +
			"parallel partitions, then streams changes until stopped, resuming exactly where it\n" +
			"left off after any crash. Connectors and transforms are plugins: built-ins ship in\n" +
			"this binary; others are executables named dsync-connector-<scheme> on PATH.",
		Writer:                 stdout,
		ErrWriter:              stderr,
		HideVersion:            false,
		UseShortOptionHandling: true,
		OnUsageError:           onUsageError,
		ExitErrHandler:         func(*cli.Context, error) {},
		Before:                 rejectUnknownCommand,
		Commands: []*cli.Command{
			versionCommand(),
			connectorsCommand(),
			pluginCommand(),
			stateCommand(),
			syncCommand(),
			conformanceCommand(),
			verifyCommand(),
		},
	}
	for _, c := range app.Commands {
		setUsageHandler(c)
	}
	return app
}

func setUsageHandler(c *cli.Command) {
	c.OnUsageError = onUsageError
	if len(c.Subcommands) > 0 && c.Before == nil {
		c.Before = rejectUnknownCommand
	}
	for _, sub := range c.Subcommands {
		setUsageHandler(sub)
	}
}

// rejectUnknownCommand turns an unknown command or subcommand name, also as
// the topic of help (`dsync help nosuch`, `dsync state nosuch`), into a
// usage error instead of urfave/cli's silent exit 0.
func rejectUnknownCommand(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return nil
	}
	// c.Command is the root command (whose subcommands are the app's
	// commands) or the command whose subcommand is being chosen.
	name := args[0]
	if (name == "help" || name == "h") && len(args) > 1 {
		name = args[1]
	}
	if name == "help" || name == "h" || c.Command.Command(name) != nil {
		return nil
	}
	return usageErrorf("unknown command %q (run '%s --help' for the list)", name, c.Command.HelpName)
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the dsync and protocol versions",
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageErrorf("version takes no arguments")
			}
			fmt.Fprintf(c.App.Writer, "dsync %s\n", version.String())
			if commit := version.Commit(); commit != "" {
				fmt.Fprintf(c.App.Writer, "commit %s\n", commit)
			}
			fmt.Fprintf(c.App.Writer, "plugin protocol v%d\n", 1)
			return nil
		},
	}
}
