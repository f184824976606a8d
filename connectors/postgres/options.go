package postgres

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/dsyncio/dsync/sdk"
)

// Option names, in the URL query or as connector settings.
const (
	optSlot          = "slot"
	optPublication   = "publication"
	optNoPK          = "no_pk"
	optLossless      = "lossless"
	optPageRows      = "page_rows"
	optPartitionRows = "partition_rows"
	optMaxPartitions = "max_partitions"
	optFlow          = "flow"
)

var dsyncOptions = []string{optSlot, optPublication, optNoPK, optLossless, optPageRows, optPartitionRows, optMaxPartitions, optFlow}

// Values of the no_pk option.
const (
	// NoPKSkip leaves tables without a primary key out of default plans.
	NoPKSkip = "skip"
	// NoPKReplicaIdentityFull copies tables without a primary key,
	// identifying rows by their whole content, and sets their REPLICA
	// IDENTITY to FULL when change data capture is planned.
	NoPKReplicaIdentityFull = "replica-identity-full"
)

// Options are the dsync-specific options of a postgres URL. The connector
// strips them from the URL before handing it to pgx; every other query
// parameter is pgx's (sslmode, pool_max_conns, ...) or a server setting.
type Options struct {
	// Slot is the logical replication slot CDC reads. Default: a name
	// derived from the dataset and the planned tables (or Flow),
	// "dsync_<hash>", which dsync creates when absent and owns. A slot
	// named here is created when absent but never dropped by dsync.
	Slot string
	// Publication is the publication the slot decodes. Default: derived
	// like Slot. A publication named here must publish every planned
	// table; dsync creates it when absent, never alters or drops it.
	Publication string
	// NoPK is what to do with tables without a primary key: NoPKSkip
	// (default) or NoPKReplicaIdentityFull.
	NoPK string
	// Lossless adds the metadata field (see the package documentation)
	// to documents whose values have no exact BSON form. Default true.
	Lossless bool
	// PageRows is the number of rows per ListData page (pages are also
	// limited to 4 MiB). Default 1000, at most 100000.
	PageRows int
	// PartitionRows is the number of rows a copy partition aims at.
	// Default 100000.
	PartitionRows int
	// MaxPartitions bounds the copy partitions of one table. Default 256.
	MaxPartitions int
	// Flow names the flow, e.g. the coordinator's flow id; when set, the
	// derived slot and publication names come from it instead of from the
	// dataset and the planned tables.
	Flow string
}

// EnsureDefaults fills in unset fields.
func (o *Options) EnsureDefaults() {
	if o.NoPK == "" {
		o.NoPK = NoPKSkip
	}
	if o.PageRows == 0 {
		o.PageRows = 1000
	}
	if o.PartitionRows == 0 {
		o.PartitionRows = 100000
	}
	if o.MaxPartitions == 0 {
		o.MaxPartitions = 256
	}
}

var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// Validate checks the options after EnsureDefaults.
func (o *Options) Validate() error {
	if o.Slot != "" && !slotName.MatchString(o.Slot) {
		return sdk.InvalidArgument("postgres: slot %q is not a valid replication slot name: use 1 to 63 lower-case letters, digits and underscores", o.Slot)
	}
	if len(o.Publication) > 63 {
		return sdk.InvalidArgument("postgres: publication name %q is longer than 63 bytes", o.Publication)
	}
	if o.NoPK != NoPKSkip && o.NoPK != NoPKReplicaIdentityFull {
		return sdk.InvalidArgument("postgres: no_pk=%q: use %q (default) or %q", o.NoPK, NoPKSkip, NoPKReplicaIdentityFull)
	}
	if o.PageRows < 1 || o.PageRows > 100000 {
		return sdk.InvalidArgument("postgres: page_rows=%d: use 1 to 100000", o.PageRows)
	}
	if o.PartitionRows < 1 {
		return sdk.InvalidArgument("postgres: partition_rows=%d: use a positive number", o.PartitionRows)
	}
	if o.MaxPartitions < 1 || o.MaxPartitions > 100000 {
		return sdk.InvalidArgument("postgres: max_partitions=%d: use 1 to 100000", o.MaxPartitions)
	}
	return nil
}

// parseConfig splits a connection string into the dsync options (from the
// query and the settings) and the URL pgx reads.
func parseConfig(raw string, settings map[string]string) (Options, string, error) {
	var o Options
	o.Lossless = true
	if raw == "" {
		return o, "", sdk.InvalidArgument("postgres: empty connection string: use postgres://user:password@host:port/database")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return o, "", sdk.InvalidArgument("postgres: the connection string is not a URL: use postgres://user:password@host:port/database")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return o, "", sdk.InvalidArgument("postgres: unsupported scheme %q: use postgres:// or postgresql://", u.Scheme)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return o, "", sdk.InvalidArgument("postgres: cannot parse the query of the connection string: %v", err)
	}
	vals := map[string]string{}
	for _, name := range dsyncOptions {
		v, ok := q[name]
		if !ok {
			continue
		}
		if len(v) != 1 {
			return o, "", sdk.InvalidArgument("postgres: option %s is given %d times: give it once", name, len(v))
		}
		vals[name] = v[0]
		q.Del(name)
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		known := false
		for _, name := range dsyncOptions {
			known = known || k == name
		}
		if !known {
			return o, "", sdk.InvalidArgument("postgres: unknown setting %q: use one of %s", k, strings.Join(dsyncOptions, ", "))
		}
		if prev, dup := vals[k]; dup && prev != settings[k] {
			return o, "", sdk.InvalidArgument("postgres: option %s is given in the URL (%q) and as a setting (%q): give it once", k, prev, settings[k])
		}
		vals[k] = settings[k]
	}
	for name, v := range vals {
		if err := o.set(name, v); err != nil {
			return o, "", err
		}
	}
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return o, "", err
	}
	u.RawQuery = q.Encode()
	return o, u.String(), nil
}

func (o *Options) set(name, v string) error {
	num := func() (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, sdk.InvalidArgument("postgres: %s=%q is not a whole number", name, v)
		}
		return n, nil
	}
	var err error
	switch name {
	case optSlot:
		o.Slot = v
	case optPublication:
		o.Publication = v
	case optNoPK:
		o.NoPK = v
	case optFlow:
		o.Flow = v
	case optLossless:
		b, perr := strconv.ParseBool(v)
		if perr != nil {
			return sdk.InvalidArgument("postgres: lossless=%q: use true or false", v)
		}
		o.Lossless = b
	case optPageRows:
		o.PageRows, err = num()
	case optPartitionRows:
		o.PartitionRows, err = num()
	case optMaxPartitions:
		o.MaxPartitions, err = num()
	default:
		err = fmt.Errorf("postgres: option %s is not handled", name)
	}
	return err
}
