package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dsyncio/dsync/connectors/builtin"
	"github.com/dsyncio/dsync/coordinator/pluginhost"
	"github.com/dsyncio/dsync/sdk/sdktest"
)

func conformanceCommand() *cli.Command {
	return &cli.Command{
		Name:      "conformance",
		Usage:     "check a connector or transform plugin against the protocol",
		ArgsUsage: "URL | SPEC",
		Description: "Runs the conformance suite of sdk/sdktest against a plugin executable, started\n" +
			"as dsync starts it (gRPC, mutual TLS): plan coverage, durable cursors across a\n" +
			"restart, get-by-ids, ordered and resumable updates, idempotent writes, error classes\n" +
			"and cancellation for a connector; data types, bad specs, deterministic and ordered\n" +
			"output and error classes for a transform. Cases the plugin's capabilities do not\n" +
			"cover are skipped and say why.\n\n" +
			"With --plugin PATH, the argument is passed to the plugin verbatim: the connection\n" +
			"string of a connector or the spec of a transform (which of the two the plugin is,\n" +
			"is detected). Otherwise the argument is resolved as by 'dsync sync': a connection\n" +
			"string picks a built-in connector or dsync-connector-<scheme>, and with --transform,\n" +
			"NAME[:SPEC] picks a built-in transform or dsync-transform-<name>.\n\n" +
			"A source URL must name a seeded dataset that spans more than one ListData page.\n" +
			"Sink cases write to the namespace --sink-namespace of the same URL: use a scratch\n" +
			"dataset.\n\n" +
			"Exit codes: 0 every case passed or was skipped, 1 a case failed (or the plugin\n" +
			"could not be started), 2 usage error.\n\n" +
			"Examples:\n" +
			"   dsync conformance 'random://?docs=2000'\n" +
			"   dsync conformance --plugin ./dsync-connector-jsondir --read-back jsondir:///tmp/data\n" +
			"   dsync conformance --plugin ./dsync-transform-upper --bad-spec '' name",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "plugin", Usage: "plugin executable to check; the argument is passed to it verbatim"},
			&cli.BoolFlag{Name: "transform", Usage: "the plugin is a transform (the argument is NAME[:SPEC], or SPEC with --plugin)"},
			&cli.BoolFlag{Name: "source", Usage: "check the connector as a source only (it must be one)"},
			&cli.BoolFlag{Name: "sink", Usage: "check the connector as a sink only (it must be one)"},
			&cli.BoolFlag{Name: "expect-updates", Usage: "fail unless the source claims the updates capability (change streams)"},
			&cli.BoolFlag{Name: "expect-get-by-ids", Usage: "fail unless the source claims the get_by_ids capability"},
			&cli.BoolFlag{Name: "read-back", Usage: "read what the sink cases write back with the plugin's own GetByIds and ListData (a sink and source of the same data)"},
			&cli.StringSliceFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "namespace the source cases plan, repeatable (default: every namespace)"},
			&cli.StringSliceFlag{Name: "expect-count", Usage: "NS=N: the source's namespace NS holds exactly N documents (repeatable; implies --namespace NS)"},
			&cli.StringFlag{Name: "sink-namespace", Value: sdktest.DefaultSinkNamespace, Usage: "namespace the sink cases write to"},
			&cli.StringSliceFlag{Name: "bad-url", Usage: "connection string Configure must reject, repeatable (added to the suite's own)"},
			&cli.StringSliceFlag{Name: "bad-spec", Usage: "transform spec Configure must reject, repeatable"},
			&cli.StringSliceFlag{Name: "skip", Usage: "case not to run, repeatable (see the case names in the output)"},
			&cli.BoolFlag{Name: "insecure", Usage: "run the plugin without mutual TLS (for plugins that cannot negotiate it)"},
			&cli.DurationFlag{Name: "case-timeout", Value: sdktest.DefaultCaseTimeout, Usage: "time limit of each case"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per case and a summary instead of a table"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "also print what each case logged (plugin stderr included)"},
			pluginDirFlag(),
		},
		Action: runConformance,
	}
}

// conformanceRun is what runConformance checks and how.
type conformanceRun struct {
	desc string
	h    sdktest.Harness
}

func runConformance(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("conformance takes one argument, the connection string or transform spec (got %d)", c.NArg())
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := prepareConformance(ctx, c)
	if err != nil {
		return err
	}
	out := c.App.Writer
	jsonOut, verbose := c.Bool("json"), c.Bool("verbose")
	if !jsonOut {
		fmt.Fprintf(out, "conformance of %s\n", r.desc)
	}
	width := 0
	for _, n := range sdktest.CaseNames() {
		width = max(width, len(n))
	}
	begin := time.Now()
	results, err := sdktest.RunCases(ctx, r.h, func(res sdktest.CaseResult) {
		if jsonOut {
			printCaseJSON(out, res, verbose)
			return
		}
		printCaseRow(out, res, width, verbose)
	})
	if err != nil {
		return usageErrorf("%v", err)
	}
	var passed, failed, skipped int
	for _, res := range results {
		switch res.Status {
		case sdktest.StatusPass:
			passed++
		case sdktest.StatusFail:
			failed++
		default:
			skipped++
		}
	}
	took := time.Since(begin).Round(100 * time.Millisecond)
	if jsonOut {
		_ = json.NewEncoder(out).Encode(map[string]any{"summary": map[string]any{
			"plugin": r.desc, "passed": passed, "failed": failed, "skipped": skipped,
			"seconds": took.Seconds(), "ok": failed == 0 && ctx.Err() == nil,
		}})
	} else {
		if failed > 0 {
			fmt.Fprintf(out, "\nFailures:\n")
			for _, res := range results {
				if res.Status == sdktest.StatusFail {
					fmt.Fprintf(out, "\n%s:\n    %s\n", res.Name, strings.ReplaceAll(res.Reason, "\n", "\n    "))
				}
			}
		}
		fmt.Fprintf(out, "\n%d passed, %d failed, %d skipped in %s\n", passed, failed, skipped, took)
	}
	switch {
	case ctx.Err() != nil:
		return failure(errors.New("conformance run interrupted"))
	case failed > 0:
		return failure(fmt.Errorf("%s fails %s of the conformance suite", r.desc, plural(failed, "case", "cases")))
	}
	return nil
}

// prepareConformance resolves the plugin, detects its kind and builds the
// harness from the flags.
func prepareConformance(ctx context.Context, c *cli.Context) (*conformanceRun, error) {
	arg := c.Args().First()
	explicit := c.String("plugin")
	asTransform := c.Bool("transform")
	onlySource, onlySink := c.Bool("source"), c.Bool("sink")
	if asTransform && (onlySource || onlySink) {
		return nil, usageErrorf("--source and --sink apply to connectors, not to --transform")
	}
	role := pluginhost.RoleSource
	switch {
	case asTransform:
		role = pluginhost.RoleTransform
	case onlySink && !onlySource:
		role = pluginhost.RoleSink
	}
	opts := pluginhost.Options{
		Builtins:  pluginhost.Builtins{Connectors: builtin.ConnectorSchemes(), Transforms: builtin.TransformNames()},
		PluginDir: c.String("plugin-dir"),
	}
	res, err := pluginhost.Resolve(opts, pluginhost.Spec{Role: role, Arg: arg, ExplicitPath: explicit})
	if err != nil {
		return nil, &exitError{code: ExitUsage, err: err}
	}
	if res.Addr != "" {
		return nil, usageErrorf("conformance starts the plugin itself: %s is a network connector; pass its executable with --plugin", res.Addr)
	}
	h := sdktest.Harness{
		Command:     func() *exec.Cmd { return exec.Command(res.Path, res.Args...) },
		Insecure:    c.Bool("insecure"),
		CaseTimeout: c.Duration("case-timeout"),
		// The leak check covers dsync's side of the connection, which
		// dsync's own tests check; here it would only add noise.
		NoLeakCheck: true,
	}
	if h.CaseTimeout <= 0 {
		return nil, usageErrorf("--case-timeout must be positive")
	}
	kind, err := sdktest.Detect(ctx, h)
	if err != nil {
		return nil, failure(fmt.Errorf("%s: %w", strings.TrimPrefix(res.String(), string(role)+" "), err))
	}
	desc := fmt.Sprintf("%s %s", kind, strings.TrimPrefix(res.String(), string(role)+" "))
	switch {
	case kind == sdktest.KindConnector && asTransform:
		return nil, failure(fmt.Errorf("--transform: %s serves dsync.v1.ConnectorService, not the transform service", res))
	case kind == sdktest.KindTransform && (onlySource || onlySink):
		return nil, usageErrorf("--source and --sink apply to connectors; %s is a transform", res)
	case kind == sdktest.KindTransform && !asTransform && explicit == "":
		return nil, failure(fmt.Errorf("%s serves the transform service, not dsync.v1.ConnectorService", res))
	}

	if kind == sdktest.KindTransform {
		spec := arg
		if explicit == "" {
			_, spec, _ = strings.Cut(arg, ":")
		}
		if err := noConnectorFlags(c); err != nil {
			return nil, err
		}
		h.Transform = &sdktest.TransformHarness{Spec: spec, BadSpecs: c.StringSlice("bad-spec")}
		h.Skip = map[string]string{}
		if err := addSkips(c, h.Skip); err != nil {
			return nil, err
		}
		return &conformanceRun{desc: desc, h: h}, nil
	}

	if c.IsSet("bad-spec") {
		return nil, usageErrorf("--bad-spec applies to transforms; %s is a connector", res)
	}
	h.URL = func(sdktest.TB) string { return arg }
	h.SinkNamespace = c.String("sink-namespace")
	h.ReadBackWithGetByIDs = c.Bool("read-back")
	h.Namespaces = c.StringSlice("namespace")
	for _, kv := range c.StringSlice("expect-count") {
		ns, n, ok := strings.Cut(kv, "=")
		count, err := strconv.Atoi(n)
		if !ok || ns == "" || err != nil || count < 0 {
			return nil, usageErrorf("--expect-count %q: want NAMESPACE=COUNT, e.g. db.users=500", kv)
		}
		if h.ExpectedCounts == nil {
			h.ExpectedCounts = map[string]int{}
		}
		h.ExpectedCounts[ns] = count
	}
	if len(h.ExpectedCounts) > 0 {
		for ns := range h.ExpectedCounts {
			if !containsString(h.Namespaces, ns) {
				h.Namespaces = append(h.Namespaces, ns)
			}
		}
	}
	if extra := c.StringSlice("bad-url"); len(extra) > 0 {
		h.BadURLs = func(good string) []string { return append(sdktest.DefaultBadURLs(good), extra...) }
	}
	h.Expect = sdktest.Expect{
		Source:   onlySource,
		Sink:     onlySink,
		Updates:  c.Bool("expect-updates"),
		GetByIDs: c.Bool("expect-get-by-ids"),
	}
	h.Skip = map[string]string{}
	for _, name := range sdktest.CaseNames() {
		switch {
		case onlySource && !onlySink && strings.HasPrefix(name, "sink/"):
			h.Skip[name] = "not checked: --source"
		case onlySink && !onlySource && strings.HasPrefix(name, "source/"):
			h.Skip[name] = "not checked: --sink"
		}
	}
	if err := addSkips(c, h.Skip); err != nil {
		return nil, err
	}
	return &conformanceRun{desc: desc, h: h}, nil
}

// noConnectorFlags rejects the connector-only flags for a transform.
func noConnectorFlags(c *cli.Context) error {
	for _, f := range []string{"expect-updates", "expect-get-by-ids", "read-back", "namespace", "expect-count", "sink-namespace", "bad-url"} {
		if c.IsSet(f) {
			return usageErrorf("--%s applies to connectors, not to transforms", f)
		}
	}
	return nil
}

// addSkips adds the --skip cases to skip, checking their names.
func addSkips(c *cli.Context, skip map[string]string) error {
	for _, name := range c.StringSlice("skip") {
		if !containsString(sdktest.CaseNames(), name) {
			return usageErrorf("--skip %q: no such case (cases: %s)", name, strings.Join(sdktest.CaseNames(), ", "))
		}
		skip[name] = "skipped with --skip"
	}
	return nil
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// printCaseRow prints one row of the result table: status, case, time and
// the first line of the reason.
func printCaseRow(w io.Writer, res sdktest.CaseResult, width int, verbose bool) {
	reason, more, _ := strings.Cut(res.Reason, "\n")
	if more != "" {
		reason += fmt.Sprintf(" (+%s, see below)", plural(strings.Count(more, "\n")+1, "line", "lines"))
	}
	fmt.Fprintf(w, "%-4s  %-*s  %6s  %s\n", strings.ToUpper(res.Status.String()), width, res.Name,
		res.Duration.Round(10*time.Millisecond), reason)
	if verbose {
		for _, l := range res.Log {
			fmt.Fprintf(w, "      | %s\n", strings.ReplaceAll(l, "\n", "\n      | "))
		}
	}
}

func printCaseJSON(w io.Writer, res sdktest.CaseResult, verbose bool) {
	v := map[string]any{
		"case":    res.Name,
		"status":  res.Status.String(),
		"seconds": res.Duration.Seconds(),
	}
	if res.Reason != "" {
		v["reason"] = res.Reason
	}
	if verbose {
		v["log"] = res.Log
	}
	_ = json.NewEncoder(w).Encode(v)
}
