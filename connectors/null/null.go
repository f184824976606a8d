package null

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// Version is the connector version reported by Info.
const Version = "1"

// MaxDelay bounds the delay option, which is meant for tests.
const MaxDelay = time.Hour

var _ sdk.Sink = (*Connector)(nil)

// Options configure the sink. The zero value is the default: no delay, no
// failures.
type Options struct {
	// Delay is slept in every write call. Default 0.
	Delay time.Duration
	// Fail injects errors into write calls; see the package documentation
	// for the syntax. Default "" (never).
	Fail string
}

// Validate reports an invalid option as an sdk.InvalidArgument error.
func (o Options) Validate() error {
	if o.Delay < 0 || o.Delay > MaxDelay {
		return sdk.InvalidArgument("null: delay=%s is out of range: use a duration from 0 to %s, e.g. delay=10ms", o.Delay, MaxDelay)
	}
	_, err := parseFail(o.Fail)
	return err
}

// ParseURL parses "null://?delay=D&fail=SPEC" and validates it.
func ParseURL(raw string) (Options, error) { return parseConfig(raw, nil) }

// parseConfig parses the URL and then the settings, which take the same
// names; a name given in both is an error.
func parseConfig(raw string, settings map[string]string) (Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Options{}, sdk.InvalidArgument("null: cannot parse the URL: %v: use null://?delay=D&fail=SPEC", err)
	}
	if u.Scheme != "null" {
		return Options{}, sdk.InvalidArgument("null: URL scheme is %q: use null://", u.Scheme)
	}
	if u.User != nil || u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" || u.Fragment != "" {
		return Options{}, sdk.InvalidArgument("null: the URL has a host, path or fragment: write only options, as in null://?delay=10ms")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Options{}, sdk.InvalidArgument("null: cannot parse the URL options: %v: write them as name=value joined by &", err)
	}
	for k, v := range settings {
		if _, dup := q[k]; dup {
			return Options{}, sdk.InvalidArgument("null: option %q is both in the URL and in the settings: give it once", k)
		}
		q[k] = []string{v}
	}
	var o Options
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vs := q[k]
		if len(vs) != 1 {
			return Options{}, sdk.InvalidArgument("null: option %q is given %d times: give it once", k, len(vs))
		}
		switch v := vs[0]; k {
		case "delay":
			if o.Delay, err = time.ParseDuration(v); err != nil {
				return Options{}, sdk.InvalidArgument("null: delay=%q is not a duration: write e.g. delay=10ms", v)
			}
		case "fail":
			o.Fail = v
		default:
			return Options{}, sdk.InvalidArgument("null: unknown option %q: use delay or fail", k)
		}
	}
	if err := o.Validate(); err != nil {
		return Options{}, err
	}
	return o, nil
}

// Counts are totals since New.
type Counts struct {
	// Docs is the number of documents accepted by WriteData.
	Docs uint64
	// Updates is the number of updates accepted by WriteUpdates.
	Updates uint64
	// Bytes is the size of the accepted documents, and of the documents of
	// the accepted updates.
	Bytes uint64
	// Calls is the number of write calls that reached failure injection:
	// not cancelled, with valid input.
	Calls uint64
	// Failures is the number of write calls that returned an injected error.
	Failures uint64
}

// Connector is the null:// sink. Its methods are safe for concurrent use.
type Connector struct {
	cfg                                   atomic.Pointer[config]
	docs, updates, bytes, calls, failures atomic.Uint64
}

type config struct {
	o     Options
	rules []failRule
}

// New returns an unconfigured connector.
func New() *Connector { return &Connector{} }

// Configure parses cfg.URL; cfg.Settings may hold the same options as the
// URL query.
func (c *Connector) Configure(ctx context.Context, cfg sdk.Config) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o, err := parseConfig(cfg.URL, cfg.Settings)
	if err != nil {
		return err
	}
	rules, _ := parseFail(o.Fail) // validated by parseConfig
	c.cfg.Store(&config{o: o, rules: rules})
	return nil
}

// Options returns the configured options, and false before Configure.
func (c *Connector) Options() (Options, bool) {
	cfg := c.cfg.Load()
	if cfg == nil {
		return Options{}, false
	}
	return cfg.o, true
}

// Info describes the sink. Its ID is "null" whatever the options: every null
// sink holds the same (no) data.
func (c *Connector) Info(ctx context.Context) (sdk.Info, error) {
	if c.cfg.Load() == nil {
		return sdk.Info{}, sdk.FailedPrecondition(sdk.ErrNotConfigured)
	}
	return sdk.Info{ID: "null", DBType: "null", Version: Version, Sink: &sdk.SinkCapabilities{}}, nil
}

// Counts returns the totals so far.
func (c *Connector) Counts() Counts {
	return Counts{
		Docs:     c.docs.Load(),
		Updates:  c.updates.Load(),
		Bytes:    c.bytes.Load(),
		Calls:    c.calls.Load(),
		Failures: c.failures.Load(),
	}
}

// WriteData counts docs after the delay, unless a failure is injected.
func (c *Connector) WriteData(ctx context.Context, namespace string, docs []bson.Raw) error {
	var size uint64
	for k, d := range docs {
		if !isDoc(d) {
			return sdk.Fatal(badInput("document %d of %d written to %q is not a BSON document", k, len(docs), namespace))
		}
		size += uint64(len(d))
	}
	return c.write(ctx, namespace, &c.docs, uint64(len(docs)), size)
}

// WriteUpdates counts updates after the delay, unless a failure is
// injected.
func (c *Connector) WriteUpdates(ctx context.Context, namespace string, updates []sdk.Update) error {
	var size uint64
	for k, u := range updates {
		ok := u.ID.Type != 0
		switch u.Type {
		case sdk.UpdateInsert, sdk.UpdateReplace:
			ok = ok && isDoc(u.Doc)
		case sdk.UpdatePartial:
			ok = ok && (len(u.Doc) == 0 || isDoc(u.Doc))
		case sdk.UpdateDelete:
		default:
			ok = false
		}
		if !ok {
			return sdk.Fatal(badInput("update %d of %d written to %q is malformed (type %s, _id type %s, %d document bytes)", k, len(updates), namespace, u.Type, u.ID.Type, len(u.Doc)))
		}
		size += uint64(len(u.Doc))
	}
	return c.write(ctx, namespace, &c.updates, uint64(len(updates)), size)
}

func (c *Connector) write(ctx context.Context, namespace string, counter *atomic.Uint64, n, size uint64) error {
	cfg := c.cfg.Load()
	if cfg == nil {
		return sdk.FailedPrecondition(sdk.ErrNotConfigured)
	}
	if namespace == "" {
		return sdk.Fatal(badInput("write without a namespace"))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if cfg.o.Delay > 0 {
		t := time.NewTimer(cfg.o.Delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	call := c.calls.Add(1)
	accepted := c.docs.Load() + c.updates.Load()
	for _, r := range cfg.rules {
		if r.matches(call, accepted) {
			c.failures.Add(1)
			return r.err(call)
		}
	}
	counter.Add(n)
	c.bytes.Add(size)
	return nil
}

// isDoc checks the length prefix only: enough to catch a wrong slice
// without paying for a full validation of every document.
func isDoc(d bson.Raw) bool {
	return len(d) >= 5 && int(binary.LittleEndian.Uint32(d)) == len(d) && d[len(d)-1] == 0
}

func badInput(format string, args ...any) error {
	return fmt.Errorf("null: "+format, args...)
}
