package mongodb

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/dsyncio/dsync/internal/redact"
	"github.com/dsyncio/dsync/sdk"
)

// CDCMode selects how changes are captured.
type CDCMode string

// CDC modes.
const (
	// CDCAuto uses change streams where the server has them, else the oplog.
	CDCAuto CDCMode = "auto"
	// CDCChangeStream uses change streams (replica sets and sharded
	// clusters).
	CDCChangeStream CDCMode = "changestream"
	// CDCOplog tails local.oplog.rs.
	CDCOplog CDCMode = "oplog"
)

// Defaults of Options.
const (
	DefaultPartitionDocs  = 1_000_000
	DefaultPartitionBytes = 256 << 20
	DefaultPageDocs       = 1000
	DefaultPageBytes      = 8 << 20
	DefaultBulkSize       = 1000
	// FerretDBBulkSize is the bulk size used against FerretDB when BulkSize
	// is not set: larger update bulks can hang it.
	FerretDBBulkSize = 16
)

// Options are the dsync options of a connection string. They are removed
// from the URL before it reaches the driver, and may also be given as
// connector settings with the same names.
type Options struct {
	// CDC is the change capture mode (option cdc). Default CDCAuto.
	CDC CDCMode
	// PartitionDocs is the target number of documents of one copy partition
	// (option partitionDocs). Default DefaultPartitionDocs.
	PartitionDocs int64
	// PartitionBytes is the target size of one copy partition in bytes
	// (option partitionBytes). Default DefaultPartitionBytes.
	PartitionBytes int64
	// PageDocs bounds the documents of one ListData page (option pageDocs).
	// Default DefaultPageDocs.
	PageDocs int
	// PageBytes bounds the bytes of one ListData page; a larger document is
	// sent alone (option pageBytes). Default DefaultPageBytes.
	PageBytes int
	// BulkSize bounds the operations of one bulk write (option bulkSize).
	// Default DefaultBulkSize, or FerretDBBulkSize against FerretDB.
	BulkSize int
}

// EnsureDefaults fills in unset fields. BulkSize stays 0 (server-dependent
// default) when unset.
func (o *Options) EnsureDefaults() {
	if o.CDC == "" {
		o.CDC = CDCAuto
	}
	if o.PartitionDocs == 0 {
		o.PartitionDocs = DefaultPartitionDocs
	}
	if o.PartitionBytes == 0 {
		o.PartitionBytes = DefaultPartitionBytes
	}
	if o.PageDocs == 0 {
		o.PageDocs = DefaultPageDocs
	}
	if o.PageBytes == 0 {
		o.PageBytes = DefaultPageBytes
	}
}

// Validate checks the ranges of the options.
func (o *Options) Validate() error {
	switch o.CDC {
	case CDCAuto, CDCChangeStream, CDCOplog:
	default:
		return sdk.InvalidArgument("mongodb: cdc=%s is not a mode: use cdc=changestream, cdc=oplog or leave it out", o.CDC)
	}
	for _, c := range []struct {
		name     string
		v, lo, h int64
	}{
		{"partitionDocs", o.PartitionDocs, 1, 1e12},
		{"partitionBytes", o.PartitionBytes, 1, 1 << 50},
		{"pageDocs", int64(o.PageDocs), 1, 1e6},
		{"pageBytes", int64(o.PageBytes), 1, 48 << 20},
		{"bulkSize", int64(o.BulkSize), 0, 100_000},
	} {
		if c.v < c.lo || c.v > c.h {
			return sdk.InvalidArgument("mongodb: %s=%d is out of range: use a value from %d to %d", c.name, c.v, c.lo, c.h)
		}
	}
	return nil
}

// dsyncOptions are the option names (lower case) that dsync removes from
// the URL.
var dsyncOptions = map[string]string{
	"cdc":            "cdc",
	"partitiondocs":  "partitionDocs",
	"partitionbytes": "partitionBytes",
	"pagedocs":       "pageDocs",
	"pagebytes":      "pageBytes",
	"bulksize":       "bulkSize",
}

// connConfig is a parsed connection string.
type connConfig struct {
	opts Options
	// driverURI is the URL without dsync options, credentials included.
	driverURI string
	// redacted is the URL without its secrets, for messages.
	redacted string
	// secrets are substrings to scrub from driver messages.
	secrets []string
	scheme  string
	// hosts are the seed hosts, lower case with a port, sorted (the SRV
	// name for mongodb+srv).
	hosts []string
	// replicaSet is the replicaSet option, if any.
	replicaSet string
}

// parseURL splits raw into dsync options and a driver connection string,
// and validates both without touching the network.
func parseURL(raw string, settings map[string]string) (connConfig, error) {
	var cc connConfig
	cc.redacted = redact.URL(raw)
	cc.secrets = redact.Secrets(raw)
	usage := "expected mongodb://[user:password@]host[:port][,host...]/[authdb][?options] or mongodb+srv://..."
	switch {
	case strings.TrimSpace(raw) == "":
		return cc, sdk.InvalidArgument("mongodb: empty connection string: %s", usage)
	case strings.HasPrefix(raw, "mongodb://"):
		cc.scheme = "mongodb"
	case strings.HasPrefix(raw, "mongodb+srv://"):
		cc.scheme = "mongodb+srv"
	default:
		return cc, sdk.InvalidArgument("mongodb: %q is not a MongoDB connection string: %s", cc.redacted, usage)
	}
	rest := raw[len(cc.scheme)+3:]
	hostStart := 0
	if at := strings.Index(rest, "@"); at >= 0 {
		hostStart = at + 1
	}
	base, query := rest, ""
	if q := strings.IndexByte(rest[hostStart:], '?'); q >= 0 {
		base, query = rest[:hostStart+q], rest[hostStart+q+1:]
	}

	vals := map[string]string{}
	var kept []string
	for _, kv := range strings.FieldsFunc(query, func(r rune) bool { return r == '&' || r == ';' }) {
		k, v, _ := strings.Cut(kv, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			dk = k
		}
		name, ok := dsyncOptions[strings.ToLower(dk)]
		if !ok {
			kept = append(kept, kv)
			continue
		}
		if _, dup := vals[name]; dup {
			return cc, sdk.InvalidArgument("mongodb: option %s is given twice in %q: give it once", name, cc.redacted)
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return cc, sdk.InvalidArgument("mongodb: option %s has a badly escaped value: %v", name, err)
		}
		vals[name] = dv
	}
	for k, v := range settings {
		name, ok := dsyncOptions[strings.ToLower(k)]
		if !ok {
			return cc, sdk.InvalidArgument("mongodb: unknown setting %q: use one of %s", k, optionList())
		}
		if _, dup := vals[name]; dup {
			return cc, sdk.InvalidArgument("mongodb: option %s is given both in the URL and as a setting: give it once", name)
		}
		vals[name] = v
	}
	if err := cc.opts.set(vals); err != nil {
		return cc, err
	}
	cc.opts.EnsureDefaults()
	if err := cc.opts.Validate(); err != nil {
		return cc, err
	}

	cc.driverURI = cc.scheme + "://" + base
	if len(kept) > 0 {
		cc.driverURI += "?" + strings.Join(kept, "&")
	}
	// Validate syntax and options without the SRV lookup the driver does
	// for mongodb+srv.
	cs, err := connstring.Parse("mongodb://" + base + queryOf(kept))
	if err != nil {
		return cc, sdk.InvalidArgument("mongodb: invalid connection string %q: %s", cc.redacted, redact.String(err.Error(), cc.secrets...))
	}
	for k := range cs.UnknownOptions {
		return cc, sdk.InvalidArgument("mongodb: unknown option %q in %q: use a MongoDB driver option (see https://www.mongodb.com/docs/manual/reference/connection-string-options/) or one of %s", k, cc.redacted, optionList())
	}
	if cc.scheme == "mongodb" {
		if err := cs.Validate(); err != nil {
			return cc, sdk.InvalidArgument("mongodb: invalid connection string %q: %s", cc.redacted, redact.String(err.Error(), cc.secrets...))
		}
	} else if len(cs.Hosts) != 1 || strings.Contains(cs.Hosts[0], ":") {
		return cc, sdk.InvalidArgument("mongodb: a mongodb+srv:// URL names exactly one host without a port, got %q", cc.redacted)
	}
	if len(cs.Hosts) == 0 {
		return cc, sdk.InvalidArgument("mongodb: no host in %q: %s", cc.redacted, usage)
	}
	for _, h := range cs.Hosts {
		h = strings.ToLower(h)
		if cc.scheme == "mongodb" && !strings.HasSuffix(h, ".sock") {
			if _, _, err := net.SplitHostPort(h); err != nil {
				h = net.JoinHostPort(strings.Trim(h, "[]"), "27017")
			}
		}
		cc.hosts = append(cc.hosts, h)
	}
	sort.Strings(cc.hosts)
	cc.replicaSet = cs.ReplicaSet
	return cc, nil
}

func queryOf(kept []string) string {
	if len(kept) == 0 {
		return ""
	}
	return "/?" + strings.Join(kept, "&")
}

func optionList() string {
	names := make([]string, 0, len(dsyncOptions))
	for _, n := range dsyncOptions {
		names = append(names, n)
	}
	sort.Strings(names)
	return "the dsync options " + strings.Join(names, ", ")
}

// set parses option values given by name.
func (o *Options) set(vals map[string]string) error {
	for name, v := range vals {
		if name == "cdc" {
			o.CDC = CDCMode(strings.ToLower(v))
			if o.CDC == "" {
				return sdk.InvalidArgument("mongodb: cdc is empty: use cdc=changestream or cdc=oplog")
			}
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return sdk.InvalidArgument("mongodb: %s=%q is not a positive integer", name, v)
		}
		switch name {
		case "partitionDocs":
			o.PartitionDocs = n
		case "partitionBytes":
			o.PartitionBytes = n
		case "pageDocs":
			o.PageDocs = int(min(n, 1<<40))
		case "pageBytes":
			o.PageBytes = int(min(n, 1<<40))
		case "bulkSize":
			o.BulkSize = int(min(n, 1<<40))
		default:
			panic(fmt.Sprintf("mongodb: option %s has no parser", name))
		}
	}
	return nil
}
