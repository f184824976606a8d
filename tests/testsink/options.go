package testsink

import (
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dsyncio/dsync/sdk"
)

// Scheme is the URL scheme of the connector.
const Scheme = "testsink"

// Defaults of Options fields.
const (
	// DefaultPartitionDocs is the default of Options.PartitionDocs.
	DefaultPartitionDocs = 10000
	// DefaultPageDocs is the default of Options.PageDocs.
	DefaultPageDocs = 1000
)

const fatalIDPrefix = "fatal-id:"

// Options configure a connector. A URL carries them; see ParseURL.
type Options struct {
	// Dir is the absolute directory of the Pebble store. Required. It is
	// created when missing.
	Dir string
	// FatalIDs makes writes of documents with these ids fail with a fatal
	// error. An id matches when its _id stringifies to it: a string as
	// itself, an int32 or int64 in decimal, a double as strconv.FormatFloat
	// with 'g', an ObjectID in hex, anything else as IDString. Default none.
	FatalIDs []string
	// Delay is slept at the start of every write call. Default 0.
	Delay time.Duration
	// PartitionDocs is the target number of documents of one copy partition
	// of the source side. Default DefaultPartitionDocs.
	PartitionDocs int
	// PageDocs is the largest number of documents of one ListData page;
	// pages are also cut at 4 MiB. Default DefaultPageDocs.
	PageDocs int
}

// EnsureDefaults fills unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.PartitionDocs == 0 {
		o.PartitionDocs = DefaultPartitionDocs
	}
	if o.PageDocs == 0 {
		o.PageDocs = DefaultPageDocs
	}
}

// Validate reports the first problem of o as an sdk.KindInvalidArgument
// error.
func (o *Options) Validate() error {
	switch {
	case o.Dir == "":
		return sdk.InvalidArgument("testsink: no store directory: use testsink:///absolute/path")
	case !filepath.IsAbs(o.Dir):
		return sdk.InvalidArgument("testsink: store directory %q is not absolute: use testsink:///absolute/path", o.Dir)
	case o.Delay < 0:
		return sdk.InvalidArgument("testsink: delay %v is negative", o.Delay)
	case o.PartitionDocs < 0:
		return sdk.InvalidArgument("testsink: partition-docs %d is negative", o.PartitionDocs)
	case o.PageDocs < 0:
		return sdk.InvalidArgument("testsink: page-docs %d is negative", o.PageDocs)
	}
	for _, id := range o.FatalIDs {
		if id == "" {
			return sdk.InvalidArgument("testsink: fail=%s needs an id, e.g. fail=%s42", fatalIDPrefix, fatalIDPrefix)
		}
	}
	return nil
}

// URL returns the connection string for o, which ParseURL turns back into o.
func (o Options) URL() string {
	q := url.Values{}
	for _, id := range o.FatalIDs {
		q.Add("fail", fatalIDPrefix+id)
	}
	if o.Delay != 0 {
		q.Set("delay", o.Delay.String())
	}
	if o.PartitionDocs != 0 {
		q.Set("partition-docs", strconv.Itoa(o.PartitionDocs))
	}
	if o.PageDocs != 0 {
		q.Set("page-docs", strconv.Itoa(o.PageDocs))
	}
	u := url.URL{Scheme: Scheme, Path: o.Dir, RawQuery: q.Encode()}
	return u.String()
}

// URL returns the connection string of the store in dir with default
// options.
func URL(dir string) string { return Options{Dir: dir}.URL() }

// ParseURL parses testsink:///absolute/dir?option=value&... into validated
// Options with defaults filled in. Errors are sdk.KindInvalidArgument and
// fit on one line.
func ParseURL(s string) (Options, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Error quotes the whole URL; the parse reason is enough here.
		var reason error = err
		if ue, ok := err.(*url.Error); ok {
			reason = ue.Err
		}
		return Options{}, sdk.InvalidArgument("testsink: invalid URL: %v", reason)
	}
	switch {
	case !strings.EqualFold(u.Scheme, Scheme):
		return Options{}, sdk.InvalidArgument("testsink: URL scheme is %q, want %q (testsink:///absolute/path)", u.Scheme, Scheme)
	case u.Opaque != "":
		return Options{}, sdk.InvalidArgument("testsink: URL %q has no absolute path: use testsink:///absolute/path", s)
	case u.User != nil:
		return Options{}, sdk.InvalidArgument("testsink: URL must not have a user: use testsink:///absolute/path")
	case u.Host != "":
		return Options{}, sdk.InvalidArgument("testsink: URL has host %q: use three slashes, testsink:///absolute/path", u.Host)
	case u.Fragment != "":
		return Options{}, sdk.InvalidArgument("testsink: URL must not have a fragment (#%s)", u.Fragment)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Options{}, sdk.InvalidArgument("testsink: invalid URL query: %v", err)
	}
	o := Options{Dir: u.Path}
	if o.Dir != "" {
		o.Dir = filepath.Clean(o.Dir)
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vs := q[k]
		switch k {
		case "fail":
			for _, v := range vs {
				id, ok := strings.CutPrefix(v, fatalIDPrefix)
				if !ok {
					return Options{}, sdk.InvalidArgument("testsink: unknown fail mode %q: use fail=%s<id>", v, fatalIDPrefix)
				}
				o.FatalIDs = append(o.FatalIDs, id)
			}
		case "delay":
			if len(vs) > 1 {
				return Options{}, sdk.InvalidArgument("testsink: delay is given %d times", len(vs))
			}
			d, err := time.ParseDuration(vs[0])
			if err != nil {
				return Options{}, sdk.InvalidArgument("testsink: delay %q is not a duration such as 5ms", vs[0])
			}
			o.Delay = d
		case "partition-docs", "page-docs":
			if len(vs) > 1 {
				return Options{}, sdk.InvalidArgument("testsink: %s is given %d times", k, len(vs))
			}
			n, err := strconv.Atoi(vs[0])
			if err != nil || n <= 0 {
				return Options{}, sdk.InvalidArgument("testsink: %s %q is not a positive integer", k, vs[0])
			}
			if k == "page-docs" {
				o.PageDocs = n
			} else {
				o.PartitionDocs = n
			}
		default:
			return Options{}, sdk.InvalidArgument("testsink: unknown option %q (known: fail, delay, partition-docs, page-docs)", k)
		}
	}
	if err := o.Validate(); err != nil {
		return Options{}, err
	}
	o.EnsureDefaults()
	return o, nil
}
